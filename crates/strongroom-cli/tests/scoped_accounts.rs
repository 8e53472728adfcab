//! A service account for one application, through the real binary: added with
//! `member add --namespace`, it reads and writes its scope and is refused everywhere else;
//! `member list` and `scope list` show its scopes; a revocation and a removal take them
//! away, and the removal's exposure report lists only what it could read.

#[path = "helpers/env.rs"]
mod env;

use env::{Env, json, stdout};
use predicates::prelude::*;
use serde_json::Value;

/// A new identity file for `name`, under a passphrase of its own: its passphrase file,
/// identity file and public part.
fn identity(e: &Env, name: &str) -> (std::path::PathBuf, std::path::PathBuf, Value) {
    let pass = e.file(
        &format!("{name}.pass"),
        &format!("passphrase of {name} (test)"),
    );
    let file = e.path(&format!("{name}.identity"));
    let mut c = e.bare();
    c.arg("--passphrase-file")
        .arg(&pass)
        .args([
            "--profile",
            "constrained",
            "identity",
            "create",
            "--name",
            name,
            "--out",
        ])
        .arg(&file);
    (pass, file, json(c))
}

#[test]
fn a_service_account_reads_and_writes_its_scope_only() {
    let e = Env::new();
    e.init();
    e.put("core/auth", "DB_PASSWORD", "hunter2");
    let (pass, file, public) = identity(&e, "billing-app");
    let fp = public["fingerprint"].as_str().unwrap().to_owned();
    let at = format!("@{}", e.path("billing-app.identity.pub").display());
    e.sr()
        .args([
            "member",
            "add",
            "--identity",
            &at,
            "--namespace",
            "core/billing",
        ])
        .args(["--fingerprint", &fp])
        .assert()
        .success()
        .stdout(predicate::str::contains("scoped member"));
    e.put("core/billing", "STRIPE_KEY", "sk_live_1");
    let app = || {
        let mut c = e.bare();
        c.arg("--passphrase-file").arg(&pass).args([
            "--profile",
            "constrained",
            "--member",
            "billing-app",
        ]);
        c
    };
    let alice = || {
        let mut c = e.sr();
        c.args(["--member", "alice"]);
        c
    };
    app()
        .args(["member", "join", "--identity-file"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("scoped member billing-app"));

    // Its scope: read, write, list, run.
    app()
        .args(["get", "core/billing", "STRIPE_KEY"])
        .assert()
        .success()
        .stdout("sk_live_1");
    app()
        .args(["put", "core/billing", "WEBHOOK", "--stdin"])
        .write_stdin("whsec")
        .assert()
        .success();
    let listed = json({
        let mut c = app();
        c.args(["list", "core/billing"]);
        c
    });
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let out = app()
        .args([
            "run",
            "--namespace",
            "core/billing",
            "--",
            "sh",
            "-c",
            "echo $STRIPE_KEY/$WEBHOOK",
        ])
        .assert()
        .success();
    assert_eq!(stdout(out.get_output()).trim(), "sk_live_1/whsec");
    // Anything else: refused, with what to do.
    for args in [
        vec!["get", "core/auth", "DB_PASSWORD"],
        vec!["list", "core/auth"],
        vec!["history", "core/auth", "DB_PASSWORD"],
    ] {
        app()
            .args(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("outside this member's scopes"))
            .stdout("");
    }
    // Full members see its writes, signed by it.
    let got = json({
        let mut c = alice();
        c.args(["get", "core/billing", "WEBHOOK"]);
        c
    });
    assert_eq!(got["updated_by"], public["member_id"]);

    // What members and scopes show.
    let members = json({
        let mut c = alice();
        c.args(["member", "list"]);
        c
    });
    let m = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "billing-app")
        .unwrap();
    assert_eq!(m["role"], "scoped");
    assert_eq!(m["scopes"][0]["prefix"], "core/billing");
    assert_eq!(m["scopes"][0]["role"], "member");
    alice().args(["scope", "list"]).assert().success().stdout(
        predicate::str::contains("core/billing")
            .and(predicate::str::contains("billing-app (member)")),
    );

    let status = json({
        let mut c = alice();
        c.arg("status");
        c
    });
    assert_eq!(status["scopes"][0]["prefix"], "core/billing");
    assert_eq!(status["scopes"][0]["members"][0]["role"], "member");
    alice()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "scopes:         core/billing (key epoch 1, 1 scoped members)",
        ));
    // Doctor exits 1 on warnings (this one-owner vault has no recovery key): its JSON
    // still says how the scopes are.
    let out = alice().args(["doctor", "--json"]).output().unwrap();
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scopes = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "scopes")
        .unwrap()
        .clone();
    assert_eq!(scopes["level"], "ok", "{scopes}");

    // Read-only from now on: its writes are refused, its reads go on.
    alice()
        .args([
            "scope",
            "grant",
            "billing-app",
            "core/billing",
            "--read-only",
        ])
        .assert()
        .success();
    app()
        .args(["put", "core/billing", "WEBHOOK", "--stdin"])
        .write_stdin("mine")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("permission denied"));
    app()
        .args(["get", "core/billing", "WEBHOOK"])
        .assert()
        .success()
        .stdout("whsec");

    // Revoked: nothing left.
    alice()
        .args(["scope", "revoke", "billing-app", "core/billing"])
        .assert()
        .success();
    app()
        .args(["get", "core/billing", "STRIPE_KEY"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("outside this member's scopes"));

    // Removed: the exposure lists the scope's secrets and nothing else.
    alice()
        .args(["scope", "grant", "billing-app", "core/billing"])
        .assert()
        .success();
    let removed = json({
        let mut c = alice();
        c.args(["member", "remove", "billing-app"]);
        c
    });
    let exposed: Vec<String> = removed["exposed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            format!(
                "{}/{}",
                x["namespace"].as_str().unwrap(),
                x["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(exposed, ["core/billing/STRIPE_KEY", "core/billing/WEBHOOK"]);
    assert_eq!(removed["scoped"], true);
    app()
        .args(["get", "core/billing", "STRIPE_KEY"])
        .assert()
        .code(1);
}

#[test]
fn a_prefix_inside_another_scope_is_refused_before_anything_is_added() {
    let e = Env::new();
    e.init();
    e.sr().args(["scope", "create", "core"]).assert().success();
    let (_, _, public) = identity(&e, "svc");
    let at = format!("@{}", e.path("svc.identity.pub").display());
    e.sr()
        .args([
            "member",
            "add",
            "--identity",
            &at,
            "--namespace",
            "core/billing",
        ])
        .args(["--fingerprint", public["fingerprint"].as_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("inside the scope core"));
    let members = json({
        let mut c = e.sr();
        c.args(["member", "list"]);
        c
    });
    assert_eq!(members.as_array().unwrap().len(), 1, "nothing was added");
    // --role and --namespace do not go together.
    e.sr()
        .args([
            "member",
            "add",
            "--identity",
            &at,
            "--role",
            "admin",
            "--namespace",
            "x",
        ])
        .args(["--fingerprint", public["fingerprint"].as_str().unwrap()])
        .assert()
        .code(2);
}
