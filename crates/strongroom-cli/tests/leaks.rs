//! Every command at the highest log level (`-vvv`, `RUST_LOG=trace`): no secret value,
//! passphrase, KEK or recovery key appears in any output, except the one stdout of `get`
//! that asks for the value and the one-time display of a newly generated recovery key.

#[path = "helpers/env.rs"]
mod env;

use assert_cmd::Command;
use env::{Env, new_kek};

const VALUE_1: &str = "leak-canary-value-7d1e9c";
const VALUE_2: &str = "leak-canary-token-35af02";
const VALUE_3: &str = "leak-canary-file-c0ffee";
const NEW_PASS: &str = "leak-canary-new-passphrase-4411";
const BOB_PASS: &str = "leak-canary-bob-passphrase-9a9a";

struct Session {
    e: Env,
    needles: Vec<String>,
    runs: usize,
}

impl Session {
    /// Runs `cmd` at trace level and checks both streams; `allowed` may appear on stdout.
    fn check(&mut self, mut cmd: Command, what: &str, allowed: &[&str]) -> std::process::Output {
        cmd.arg("-vvv").env("RUST_LOG", "trace");
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.contains("TRACE") || stderr.contains("DEBUG") || stderr.contains("INFO"),
            "{what}: no logs at trace level?\n{stderr}"
        );
        // an explicit RUST_LOG is obeyed, with a warning about the database driver's logs
        assert!(
            stderr.starts_with("warning: RUST_LOG is set"),
            "{what}: no RUST_LOG warning\n{stderr}"
        );
        for needle in &self.needles {
            assert!(
                !stderr.contains(needle.as_str()),
                "{what}: a secret appears on stderr:\n{stderr}"
            );
            if !allowed.contains(&needle.as_str()) {
                assert!(
                    !stdout.contains(needle.as_str()),
                    "{what}: a secret appears on stdout:\n{stdout}"
                );
            }
        }
        self.runs += 1;
        out
    }

    fn ok(&mut self, cmd: Command, what: &str) -> std::process::Output {
        let out = self.check(cmd, what, &[]);
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn sr(&self, args: &[&str]) -> Command {
        let mut c = self.e.sr();
        c.args(args);
        c
    }
}

#[test]
fn no_secret_in_any_output_at_trace_level() {
    let e = Env::new();
    let kek = new_kek();
    let kek2 = new_kek();
    let mut s = Session {
        needles: vec![
            VALUE_1.into(),
            VALUE_2.into(),
            VALUE_3.into(),
            env::PASS.into(),
            NEW_PASS.into(),
            BOB_PASS.into(),
            kek.clone(),
            kek2.clone(),
        ],
        e,
        runs: 0,
    };
    let init = s.ok(s.sr(&["init", "--name", "alice", "--json"]), "init");
    let init: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let rk = init["recovery_key"]["text"].as_str().unwrap().to_owned();
    let words = init["recovery_key"]["words"].as_str().unwrap().to_owned();
    s.needles.push(rk.clone());
    s.needles.push(words);

    let mut put = s.sr(&["put", "core/app", "DB_PASSWORD", "--stdin"]);
    put.write_stdin(VALUE_1);
    s.ok(put, "put --stdin");
    let mut put = s.sr(&["put", "core/app", "API_TOKEN", "--stdin"]);
    put.write_stdin(VALUE_2);
    s.ok(put, "put --stdin (2)");
    let f = s.e.file("value.txt", VALUE_3);
    let mut put = s.sr(&["put", "core/app", "FILE_VALUE", "--from-file"]);
    put.arg(&f);
    s.ok(put, "put --from-file");

    // the one command whose stdout carries a value
    let out = s.check(s.sr(&["get", "core/app", "DB_PASSWORD"]), "get", &[VALUE_1]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), VALUE_1);

    for args in [
        &["get", "core/app", "DB_PASSWORD", "--json"][..],
        &["get", "core/app", "DB_PASSWORD", "--version", "1", "--json"],
        &["list", "core/app"],
        &["list", "core/app", "--json"],
        &["history", "core/app", "DB_PASSWORD"],
        &["history", "core/app", "DB_PASSWORD", "--json"],
        &["status"],
        &["status", "--json"],
        &["pending-rewrap"],
        &["rotate", "--batch-size", "1"],
        &["reencrypt", "--batch-size", "2"],
        &["audit", "list", "--json"],
        &["audit", "list"],
        &["audit", "verify"],
        &["keyholder", "list"],
        &["recoverability"],
        &["member", "list"],
    ] {
        s.ok(s.sr(args), &args.join(" "));
    }
    let out = s.check(s.sr(&["doctor", "--full"]), "doctor", &[]);
    assert_eq!(out.status.code(), Some(1), "one member: warnings");

    // failures
    let wrong = s.e.file("wrong.txt", "not-the-passphrase");
    let mut c = s.e.bare();
    c.arg("--passphrase-file")
        .arg(&wrong)
        .args(["get", "core/app", "DB_PASSWORD"]);
    let out = s.check(c, "wrong passphrase", &[]);
    assert_eq!(out.status.code(), Some(1));
    let out = s.check(s.sr(&["get", "core/app", "MISSING"]), "missing secret", &[]);
    assert_eq!(out.status.code(), Some(1));
    let mut c = s.e.bare();
    c.args(["--kek-env", &kek, "status"]);
    let out = s.check(c, "a key passed as --kek-env", &[]);
    assert_eq!(out.status.code(), Some(1));

    // keyholders: a raw KEK added, rotated, removed; the passphrase rotated
    let mut c = s.sr(&["keyholder", "add", "--new-kek-env", "ENCRYPTION_KEY"]);
    c.env("ENCRYPTION_KEY", &kek);
    s.ok(c, "keyholder add --new-kek-env");
    let mut c = s.e.bare();
    c.env("ENCRYPTION_KEY", &kek).args([
        "--kek-env",
        "ENCRYPTION_KEY",
        "keyholder",
        "list",
        "--json",
    ]);
    let list = s.ok(c, "keyholder list with the KEK");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let kek_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "raw-kek")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pass_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "passphrase")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = s.e.bare();
    c.env("ENCRYPTION_KEY", &kek).env("NEW_KEY", &kek2).args([
        "--kek-env",
        "ENCRYPTION_KEY",
        "keyholder",
        "rotate",
        &kek_id,
        "--new-kek-env",
        "NEW_KEY",
    ]);
    s.ok(c, "keyholder rotate KEK");
    let new_pass = s.e.file("new.pass", NEW_PASS);
    let mut c = s.sr(&["keyholder", "rotate", &pass_id, "--new-passphrase-file"]);
    c.arg(&new_pass);
    s.ok(c, "keyholder rotate passphrase");
    let as_new = |s: &Session, args: &[&str]| {
        let mut c = s.e.bare();
        c.arg("--passphrase-file").arg(&new_pass).args(args);
        c
    };
    let mut c = s.e.bare();
    c.env("NEW_KEY", &kek2)
        .args(["--kek-env", "NEW_KEY", "keyholder", "list", "--json"]);
    let list = s.ok(c, "keyholder list with the new KEK");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let kek2_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "raw-kek")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        as_new(&s, &["keyholder", "remove", &kek2_id]),
        "keyholder remove",
    );

    // recovery keys
    let rk_file = s.e.file("rk.txt", &rk);
    let mut c = s.e.bare();
    c.args(["recovery-key", "verify", "--recovery-key-file"])
        .arg(&rk_file);
    s.ok(c, "recovery-key verify");
    let mut c = s.e.bare();
    c.arg("--recovery-key-file")
        .arg(&rk_file)
        .args(["get", "core/app", "API_TOKEN"]);
    let out = s.check(c, "get with the recovery key", &[VALUE_2]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), VALUE_2);
    // the new key may be shown by the command that makes it, and nowhere else
    let out = s.check(
        as_new(&s, &["recovery-key", "new", "--json"]),
        "recovery-key new",
        &[],
    );
    assert!(out.status.success());
    let new_rk: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    s.needles
        .push(new_rk["recovery_key"]["text"].as_str().unwrap().to_owned());

    // members
    let bob_pass = s.e.file("bob.pass", BOB_PASS);
    let bob_file = s.e.path("bob.identity");
    let mut c = s.e.bare();
    c.arg("--passphrase-file")
        .arg(&bob_pass)
        .args([
            "--profile",
            "constrained",
            "identity",
            "create",
            "--name",
            "bob",
            "--no-recovery-key",
            "--json",
            "--out",
        ])
        .arg(&bob_file);
    let bob = s.ok(c, "identity create");
    let bob: serde_json::Value = serde_json::from_slice(&bob.stdout).unwrap();
    let mut c = s.e.bare();
    c.arg("--passphrase-file")
        .arg(&bob_pass)
        .args(["identity", "show", "--file"])
        .arg(&bob_file);
    s.ok(c, "identity show");
    let at_bob = format!("@{}", s.e.path("bob.identity.pub").display());
    s.ok(
        as_new(
            &s,
            &[
                "member",
                "add",
                "--identity",
                &at_bob,
                "--fingerprint",
                bob["fingerprint"].as_str().unwrap(),
            ],
        ),
        "member add",
    );
    let mut c = s.e.bare();
    c.arg("--passphrase-file")
        .arg(&bob_pass)
        .args([
            "--profile",
            "constrained",
            "member",
            "join",
            "--identity-file",
        ])
        .arg(&bob_file);
    s.ok(c, "member join");
    s.ok(
        as_new(&s, &["--member", "alice", "member", "role", "bob", "admin"]),
        "member role",
    );
    s.ok(
        as_new(&s, &["--member", "alice", "member", "remove", "bob"]),
        "member remove",
    );

    // snapshots, export, import, run
    let snap = s.e.path("v.snap");
    let mut c = as_new(&s, &["snapshot"]);
    c.arg(&snap);
    s.ok(c, "snapshot");
    let mut c = as_new(&s, &["verify-snapshot"]);
    c.arg(&snap);
    s.ok(c, "verify-snapshot");
    let mut c = as_new(&s, &["restore"]);
    c.arg(&snap);
    s.ok(c, "restore");
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let exported = s.e.path("app.env.age");
    let mut c = as_new(
        &s,
        &[
            "export",
            "--namespace",
            "core/app",
            "--format",
            "dotenv",
            "--age-recipient",
            &recipient,
            "--out",
        ],
    );
    c.arg(&exported);
    s.ok(c, "export");
    let plain = s.e.path("plain.json");
    let mut c = as_new(
        &s,
        &[
            "export",
            "--format",
            "json",
            "--plaintext-i-understand",
            "--out",
        ],
    );
    c.arg(&plain);
    s.ok(c, "export plaintext to a file");
    let mut c = as_new(&s, &["import", "copied", "--format", "json", "--in"]);
    c.arg(&plain);
    s.ok(c, "import");
    let out = s.check(
        as_new(
            &s,
            &[
                "run",
                "--namespace",
                "core/app",
                "--",
                "sh",
                "-c",
                "test \"$DB_PASSWORD\" = leak-canary-value-7d1e9c",
            ],
        ),
        "run",
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(s.runs > 40, "{} commands checked", s.runs);
}
