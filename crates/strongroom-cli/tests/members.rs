//! Identities and members through the real binary: add (fingerprint checked), join, roles,
//! removal with the exposure report, teammate restore.

#[path = "helpers/env.rs"]
mod env;

use env::{Env, json, stderr, stdout};
use predicates::prelude::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

struct Person {
    pass: std::path::PathBuf,
    identity: std::path::PathBuf,
    public: Value,
}

fn identity(e: &Env, name: &str) -> Person {
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
    let public = json(c);
    Person {
        pass,
        identity: file,
        public,
    }
}

fn as_person(e: &Env, p: &Person) -> assert_cmd::Command {
    let mut c = e.bare();
    c.arg("--passphrase-file").arg(&p.pass);
    c
}

fn alice(e: &Env) -> assert_cmd::Command {
    let mut c = e.sr();
    c.args(["--member", "alice"]);
    c
}

#[test]
fn identities_are_private_files_with_a_public_half() {
    let e = Env::new();
    let bob = identity(&e, "bob");
    assert_eq!(
        std::fs::metadata(&bob.identity)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let pub_file = e.path("bob.identity.pub");
    let text = std::fs::read_to_string(&pub_file).unwrap();
    assert_eq!(text.trim(), bob.public["public_identity"].as_str().unwrap());
    assert!(bob.public["recovery_key"]["text"].is_string());
    // show: same identity, needs the passphrase
    let mut c = as_person(&e, &bob);
    c.args(["identity", "show", "--file"]).arg(&bob.identity);
    let shown = json(c);
    assert_eq!(shown["fingerprint"], bob.public["fingerprint"]);
    assert_eq!(shown["member_id"], bob.public["member_id"]);
    e.sr()
        .args(["identity", "show", "--file"])
        .arg(&bob.identity)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong passphrase"));
    // the recovery key opens it too
    let rk = e.file(
        "bob.rk",
        bob.public["recovery_key"]["text"].as_str().unwrap(),
    );
    e.bare()
        .arg("--recovery-key-file")
        .arg(&rk)
        .args(["identity", "show", "--file"])
        .arg(&bob.identity)
        .assert()
        .success()
        .stdout(predicate::str::contains("fingerprint:"));
    // never overwritten
    as_person(&e, &bob)
        .args(["identity", "create", "--name", "bob", "--out"])
        .arg(&bob.identity)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("refusing to overwrite"));
}

#[test]
fn add_join_roles_remove_with_exposure_regrant() {
    let e = Env::new();
    e.init();
    e.put("team", "DB_PASSWORD", "hunter2");
    e.put("team", "API_TOKEN", "tok");
    let bob = identity(&e, "bob");
    let at_bob = format!("@{}", e.path("bob.identity.pub").display());
    let fp = bob.public["fingerprint"].as_str().unwrap().to_owned();

    // a wrong fingerprint is refused and nothing is added
    let mut wrong: Vec<char> = fp.chars().collect();
    wrong[0] = if wrong[0] == '1' { '2' } else { '1' };
    let wrong: String = wrong.into_iter().collect();
    e.sr()
        .args([
            "member",
            "add",
            "--identity",
            &at_bob,
            "--fingerprint",
            &wrong,
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not match"));
    // neither a fingerprint nor the explicit skip: usage error
    e.sr()
        .args(["member", "add", "--identity", &at_bob])
        .assert()
        .code(2);
    assert_eq!(
        json({
            let mut c = e.sr();
            c.args(["member", "list"]);
            c
        })
        .as_array()
        .unwrap()
        .len(),
        1
    );

    // spaces and dashes in the typed fingerprint are fine
    let typed = fp.replace(' ', "-");
    e.sr()
        .args([
            "member",
            "add",
            "--identity",
            &at_bob,
            "--role",
            "member",
            "--fingerprint",
            &typed,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("member join"));
    as_person(&e, &bob)
        .args([
            "--profile",
            "constrained",
            "member",
            "join",
            "--identity-file",
        ])
        .arg(&bob.identity)
        .assert()
        .success()
        .stdout(predicate::str::contains("joined vault"));
    // two members keep credentials here now: pick one
    e.sr()
        .args(["get", "team", "API_TOKEN"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--member"));
    as_person(&e, &bob)
        .args(["--member", "bob", "get", "team", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("hunter2");
    as_person(&e, &bob)
        .args(["--member", "bob", "put", "team", "FROM_BOB", "--stdin"])
        .write_stdin("b")
        .assert()
        .success();
    // a member id works as well as a name; an unknown name is a clear error
    let bob_id = bob.public["member_id"].as_str().unwrap();
    as_person(&e, &bob)
        .args(["--member", bob_id, "get", "team", "FROM_BOB"])
        .assert()
        .success()
        .stdout("b");
    e.sr()
        .args(["--member", "mallory", "status"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no member named \"mallory\""));

    // two members, the owner has a recovery key: healthy
    alice(&e).arg("doctor").assert().code(0);
    let list = json({
        let mut c = alice(&e);
        c.args(["member", "list"]);
        c
    });
    let roles: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("alice".into(), "owner".into()),
            ("bob".into(), "member".into())
        ]
    );
    alice(&e)
        .args(["member", "role", "bob", "admin"])
        .assert()
        .success()
        .stdout("bob is now admin\n");
    // a read-only member cannot write
    alice(&e)
        .args(["member", "role", "bob", "read-only"])
        .assert()
        .success();
    as_person(&e, &bob)
        .args(["--member", "bob", "put", "team", "NOPE", "--stdin"])
        .write_stdin("x")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("permission denied"));
    // What bob wrote while he could is readable: the demotion re-attested it (vouched for
    // by alice), and nothing waits.
    alice(&e)
        .args(["get", "team", "FROM_BOB"])
        .assert()
        .success()
        .stdout("b");
    let status = json({
        let mut c = alice(&e);
        c.arg("status");
        c
    });
    assert_eq!(status["pending_reattestation"], serde_json::json!([]));
    alice(&e)
        .args(["member", "reattest"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to do"));
    let audit = alice(&e).args(["audit", "list"]).assert().success();
    assert!(stdout(audit.get_output()).contains("reattest"));

    // removal: the exposure report names every secret bob could read
    let out = alice(&e)
        .args(["member", "remove", "bob"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    for name in ["team/DB_PASSWORD", "team/API_TOKEN", "team/FROM_BOB"] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("strongroom rotate"), "{text}");
    assert!(!text.contains("hunter2"));
    assert!(stderr(out.get_output()).contains("warning: Only one member"));
    as_person(&e, &bob)
        .args(["--member", "bob", "get", "team", "DB_PASSWORD"])
        .assert()
        .code(1);
    let pending = json({
        let mut c = alice(&e);
        c.arg("pending-rewrap");
        c
    });
    assert_eq!(pending["pending"].as_array().unwrap().len(), 3);
    alice(&e).arg("rotate").assert().success();
    let pending = json({
        let mut c = alice(&e);
        c.arg("pending-rewrap");
        c
    });
    assert_eq!(pending["pending"].as_array().unwrap().len(), 0);

    // teammate restore: carol joins, loses her passphrase, gets a new identity re-granted
    let carol = identity(&e, "carol");
    let at_carol = format!("@{}", e.path("carol.identity.pub").display());
    let out = e
        .sr()
        .args([
            "member",
            "add",
            "--identity",
            &at_carol,
            "--skip-fingerprint-check-i-accept-the-risk",
        ])
        .assert()
        .success();
    assert!(stderr(out.get_output()).contains("WARNING: fingerprint not compared"));
    as_person(&e, &carol)
        .args([
            "--profile",
            "constrained",
            "member",
            "join",
            "--identity-file",
        ])
        .arg(&carol.identity)
        .assert()
        .success();
    let carol2 = identity(&e, "carol2");
    let at_carol2 = format!("@{}", e.path("carol2.identity.pub").display());
    let fp2 = carol2.public["fingerprint"].as_str().unwrap();
    alice(&e)
        .args([
            "member",
            "regrant",
            "carol",
            "--identity",
            &at_carol2,
            "--fingerprint",
            fp2,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("re-granted"));
    as_person(&e, &carol2)
        .args([
            "--profile",
            "constrained",
            "member",
            "join",
            "--identity-file",
        ])
        .arg(&carol2.identity)
        .assert()
        .success();
    as_person(&e, &carol2)
        .args(["--member", "carol2", "get", "team", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("hunter2");
    let r = json({
        let mut c = alice(&e);
        c.arg("recoverability");
        c
    });
    assert_eq!(r["members"], 2);
}

fn member_names(e: &Env) -> Vec<String> {
    json({
        let mut c = alice(e);
        c.args(["member", "list"]);
        c
    })
    .as_array()
    .unwrap()
    .iter()
    .map(|m| m["name"].as_str().unwrap().to_owned())
    .collect()
}

#[test]
fn a_snapshot_from_before_a_removal_is_restored_only_when_asked() {
    let e = Env::new();
    e.init();
    e.put("team", "DB_PASSWORD", "hunter2");
    let bob = identity(&e, "bob");
    let at_bob = format!("@{}", e.path("bob.identity.pub").display());
    e.sr()
        .args([
            "member",
            "add",
            "--identity",
            &at_bob,
            "--fingerprint",
            bob.public["fingerprint"].as_str().unwrap(),
        ])
        .assert()
        .success();
    let snap = e.path("with-bob.snap");
    alice(&e).arg("snapshot").arg(&snap).assert().success();
    alice(&e)
        .args(["member", "remove", "bob"])
        .assert()
        .success();
    assert_eq!(member_names(&e), ["alice"]);

    // checked against the pins saved for this vault: the older membership log is reported
    let out = alice(&e)
        .args(["verify-snapshot", "--json"])
        .arg(&snap)
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["membership_rollback"], true);
    assert!(stderr(out.get_output()).contains("--allow-membership-rollback"));

    // and restoring it would bring bob back: refused, the live vault untouched
    alice(&e)
        .arg("restore")
        .arg(&snap)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--allow-membership-rollback"));
    assert_eq!(member_names(&e), ["alice"]);

    // asked for: restored, with a warning, and the pins follow the restored log
    alice(&e)
        .args(["restore", "--allow-membership-rollback"])
        .arg(&snap)
        .assert()
        .success()
        .stderr(predicate::str::contains("warning"))
        .stderr(predicate::str::contains("member list"));
    assert_eq!(member_names(&e), ["alice", "bob"]);
    alice(&e)
        .args(["get", "team", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("hunter2");

    // a snapshot as recent as the pins needs no flag and reports no rollback
    let now = e.path("now.snap");
    alice(&e).arg("snapshot").arg(&now).assert().success();
    let v = json({
        let mut c = alice(&e);
        c.arg("verify-snapshot").arg(&now);
        c
    });
    assert_eq!(v["membership_rollback"], false);
    alice(&e).arg("restore").arg(&now).assert().success();
}

/// Signed writes through the binary: a new vault requires them (`status`, `doctor`,
/// `history`); a vault of an earlier release (the frozen format-2 snapshot, written
/// unsigned) is moved by `member require-signed-writes`, and only once.
#[test]
fn signed_writes_are_required_by_new_vaults_and_reached_by_old_ones() {
    let e = Env::new();
    e.init();
    e.put("team", "DB_PASSWORD", "hunter2");
    let status = json({
        let mut c = e.sr();
        c.args(["status"]);
        c
    });
    assert_eq!(status["signed_writes_required"], true);
    let history = e
        .sr()
        .args(["history", "team", "DB_PASSWORD"])
        .assert()
        .success();
    let history = stdout(history.get_output());
    assert!(
        history.lines().next().unwrap().ends_with("SIGNED"),
        "{history}"
    );
    assert!(
        history.lines().nth(1).unwrap().ends_with("yes"),
        "{history}"
    );
    e.sr()
        .args(["member", "require-signed-writes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already"));

    // The frozen vault of the release that introduced format 2, restored with its raw KEK.
    let old = Env::new();
    let kek = old.file(
        "frozen.kek",
        "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90", // pragma: allowlist secret
    );
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let snapshot = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../strongroom/tests/data/v2/vault.snapshot"
    );
    let with_kek = || {
        let mut c = old.bare();
        c.arg("--kek-file").arg(&kek);
        c
    };
    with_kek().arg("restore").arg(snapshot).assert().success();
    let doctor = with_kek().args(["doctor"]).assert();
    let doctor = stdout(doctor.get_output());
    assert!(doctor.contains("require-signed-writes"), "{doctor}");
    let history = with_kek()
        .args(["history", "core/app", "DB_PASSWORD"])
        .assert()
        .success();
    assert!(
        stdout(history.get_output())
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("no")
    );

    let moved = json({
        let mut c = with_kek();
        c.args(["member", "require-signed-writes"]);
        c
    });
    assert_eq!(moved["signed_writes_required"], true);
    assert!(moved["reencrypted"].as_u64().unwrap() >= 5, "{moved}");
    let history = with_kek()
        .args(["history", "core/app", "DB_PASSWORD", "--json"])
        .assert()
        .success();
    let versions: Value = serde_json::from_slice(&history.get_output().stdout).unwrap();
    for v in versions.as_array().unwrap() {
        assert_eq!(v["authorship"]["signed"], true, "{v}");
        assert!(v["authorship"]["vouched_by"].is_string(), "{v}");
    }
    with_kek()
        .args(["get", "core/app", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("second");
    with_kek()
        .args(["member", "require-signed-writes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already"));
}
