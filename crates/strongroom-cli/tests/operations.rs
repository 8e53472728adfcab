//! Rotation, status, doctor, audit, snapshots, export/import and `run` through the binary.

#[path = "helpers/env.rs"]
mod env;

use env::{Env, json, stderr, stdout};
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn cmd(e: &Env, args: &[&str]) -> assert_cmd::Command {
    let mut c = e.sr();
    c.args(args);
    c
}

#[test]
fn rotate_reencrypt_status_pending() {
    let e = Env::new();
    e.init();
    for i in 0..12 {
        e.put("ns", &format!("S{i}"), &format!("value-{i}"));
    }
    let st = json(cmd(&e, &["status"]));
    assert_eq!(st["epoch"], 1);
    assert_eq!(st["secrets"], 12);
    assert_eq!(st["pending_rewrap"], 0);
    assert_eq!(st["recoverability"]["single_point_of_failure"], true);
    let human = cmd(&e, &["status"]).assert().success();
    assert!(stdout(human.get_output()).contains("vault key:      epoch 1"));

    let r = json(cmd(&e, &["rotate", "--batch-size", "5"]));
    assert_eq!(r["epoch"], 2);
    assert_eq!(r["processed"], 12);
    assert_eq!(r["min_epoch"], 2);
    assert_eq!(r["resumed"], false);
    // A rotation that also replaces the metadata key: every index row moves, and every
    // secret still reads (below) and the audit log still verifies.
    cmd(&e, &["rotate", "--new-metadata-key"])
        .assert()
        .success()
        .stdout(predicate::str::contains("vault key rotated to epoch 3"));
    cmd(&e, &["audit", "verify"]).assert().success();
    cmd(&e, &["rotate", "--batch-size", "0"]).assert().code(1);

    let r = json(cmd(&e, &["reencrypt", "--batch-size", "4"]));
    assert_eq!(r["epoch"], 4);
    assert_eq!(r["processed"], 12);
    for i in 0..12 {
        assert_eq!(e.get("ns", &format!("S{i}")), format!("value-{i}"));
    }
    let p = json(cmd(&e, &["pending-rewrap"]));
    assert_eq!(p["current_epoch"], 4);
    assert_eq!(p["pending"].as_array().unwrap().len(), 0);
    cmd(&e, &["pending-rewrap"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "every record version is under the current epoch",
        ));
    let st = json(cmd(&e, &["status"]));
    assert_eq!(
        (st["epoch"].as_u64(), st["min_epoch"].as_u64()),
        (Some(4), Some(4))
    );
}

#[test]
fn doctor_and_audit_detect_tampering() {
    let e = Env::new();
    e.init();
    e.put("ns", "A", "a");
    e.put("ns", "B", "b");
    // one member: a recoverability warning, exit 1
    let out = cmd(&e, &["doctor", "--full"]).assert().code(1);
    let text = stdout(out.get_output());
    assert!(text.contains("[WARN] recoverability"), "{text}");
    assert!(
        text.contains("[ ok ] decrypt: all 2 secrets decrypt"),
        "{text}"
    );
    let d = {
        let mut c = cmd(&e, &["doctor"]);
        c.arg("--json");
        let out = c.assert().code(1);
        serde_json::from_slice::<serde_json::Value>(&out.get_output().stdout).unwrap()
    };
    assert_eq!(d["result"], "warn");

    let list = json(cmd(&e, &["audit", "list"]));
    let actions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "create");
    assert!(
        actions.contains(&"put") && actions.contains(&"unlock"),
        "{actions:?}"
    );
    let page = json(cmd(&e, &["audit", "list", "--from", "1", "--limit", "2"]));
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["seq"], 1);
    cmd(&e, &["audit", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ACTION"));
    let v = json(cmd(&e, &["audit", "verify"]));
    assert_eq!(v["ok"], true);

    // a failed unlock is recorded, then shows up
    e.bare()
        .arg("--passphrase-file")
        .arg(e.file("wrong.txt", "wrong"))
        .args(["status"])
        .assert()
        .code(1);
    let list = json(cmd(&e, &["audit", "list", "--limit", "1000"]));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "unlock-failed"),
        "{list}"
    );

    // flip one byte of an old audit entry in the SQLite file
    let db = rusqlite::Connection::open(&e.vault).unwrap();
    let key = 2u64.to_be_bytes().to_vec();
    let mut v: Vec<u8> = db
        .query_row("SELECT v FROM sr_audit WHERE k = ?1", [&key], |r| r.get(0))
        .unwrap();
    let i = v.len() - 40;
    v[i] ^= 1;
    db.execute("UPDATE sr_audit SET v = ?1 WHERE k = ?2", (&v, &key))
        .unwrap();
    drop(db);
    cmd(&e, &["audit", "verify"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("audit log"))
        .stderr(predicate::str::contains("entry 2"));
    // doctor reports a failure: exit 2
    let out = cmd(&e, &["doctor"]).assert().code(2);
    assert!(stdout(out.get_output()).contains("[FAIL] audit-chain"));
}

#[test]
fn recoverability_report() {
    let e = Env::new();
    e.init();
    let r = json(cmd(&e, &["recoverability"]));
    assert_eq!(r["members"], 1);
    assert_eq!(r["members_with_recovery_key"], 1);
    assert_eq!(r["single_point_of_failure"], true);
    let out = cmd(&e, &["recoverability"]).assert().success();
    assert!(stdout(out.get_output()).contains("alice"));
    assert!(stderr(out.get_output()).contains("warning: Only one member"));
}

#[test]
fn snapshot_verify_restore() {
    let e = Env::new();
    e.init();
    e.put("ns", "KEEP", "kept");
    let snap = e.path("v.snap");
    let info = json({
        let mut c = cmd(&e, &["snapshot"]);
        c.arg(&snap);
        c
    });
    assert!(info["rows"].as_u64().unwrap() > 0);
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(mode(&snap), 0o600);
    let v = json({
        let mut c = cmd(&e, &["verify-snapshot"]);
        c.arg(&snap);
        c
    });
    assert_eq!(v["secrets"], 1);

    // later changes are undone by the restore
    e.put("ns", "LATER", "later");
    e.put("ns", "KEEP", "changed");
    cmd(&e, &["restore"])
        .arg(&snap)
        .assert()
        .success()
        .stdout(predicate::str::contains("restored vault"));
    assert_eq!(e.get("ns", "KEEP"), "kept");
    cmd(&e, &["get", "ns", "LATER"]).assert().code(1);
    // the vault keeps working (pins follow the restored log)
    e.put("ns", "AFTER", "after");
    assert_eq!(e.get("ns", "AFTER"), "after");

    // from standard input (`-`), as from a pipe out of a decompressor or ssh
    let bytes = std::fs::read(&snap).unwrap();
    let v = json({
        let mut c = cmd(&e, &["verify-snapshot", "-"]);
        c.write_stdin(bytes.clone());
        c
    });
    assert_eq!(v["secrets"], 1);
    cmd(&e, &["restore", "-"])
        .write_stdin(bytes)
        .assert()
        .success()
        .stdout(predicate::str::contains("restored vault"));
    cmd(&e, &["get", "ns", "AFTER"]).assert().code(1);
    e.put("ns", "AFTER", "after");

    // a corrupt snapshot is refused and the live vault is untouched
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    let bad = e.path("bad.snap");
    env::write_private(&bad, &bytes);
    cmd(&e, &["verify-snapshot"]).arg(&bad).assert().code(1);
    cmd(&e, &["restore"])
        .arg(&bad)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the live vault was not touched"));
    assert_eq!(e.get("ns", "AFTER"), "after");
    // the wrong keyholder cannot verify it
    e.bare()
        .arg("--passphrase-file")
        .arg(e.file("wrong.txt", "wrong"))
        .arg("verify-snapshot")
        .arg(&snap)
        .assert()
        .code(1);

    // into a new, empty location
    let fresh = e.path("fresh.sqlite");
    let mut c = e.clean();
    c.arg("--vault")
        .arg(&fresh)
        .arg("--state-dir")
        .arg(&e.state)
        .arg("--passphrase-file")
        .arg(&e.pass)
        .arg("restore")
        .arg(&snap)
        .assert()
        .success();
    let mut c = e.clean();
    c.arg("--vault")
        .arg(&fresh)
        .arg("--passphrase-file")
        .arg(&e.pass)
        .args(["get", "ns", "KEEP"])
        .assert()
        .success()
        .stdout("kept");

    // another vault's snapshot is refused unless asked for
    let other = Env::new();
    other.init();
    other.put("other", "X", "x");
    let other_snap = other.path("o.snap");
    cmd(&other, &["snapshot"])
        .arg(&other_snap)
        .assert()
        .success();
    cmd(&e, &["restore"])
        .arg(&other_snap)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("another vault"));
    cmd(&e, &["restore", "--allow-other-vault"])
        .arg(&other_snap)
        .assert()
        .success();
    assert_eq!(e.get("other", "X"), "x");
}

#[test]
fn export_import_plaintext_and_targets() {
    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2");
    e.put("core/app", "API_TOKEN", "tok \"quoted\" $x");
    e.put("other", "N", "n");

    // exactly one target
    cmd(&e, &["export", "--format", "json", "--out", "-"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("choose one export target"));
    cmd(
        &e,
        &[
            "export",
            "--format",
            "json",
            "--plaintext-i-understand",
            "--age-passphrase",
            "--out",
            "-",
        ],
    )
    .assert()
    .code(1);
    // dotenv needs a namespace
    cmd(
        &e,
        &[
            "export",
            "--format",
            "dotenv",
            "--plaintext-i-understand",
            "--out",
            "-",
        ],
    )
    .assert()
    .code(1)
    .stderr(predicate::str::contains("namespace"));

    let out = cmd(
        &e,
        &[
            "export",
            "--namespace",
            "core/app",
            "--format",
            "dotenv",
            "--plaintext-i-understand",
            "--out",
            "-",
        ],
    )
    .assert()
    .success();
    let dotenv = stdout(out.get_output());
    assert!(dotenv.contains("DB_PASSWORD=\"hunter2\""), "{dotenv}");
    let err = stderr(out.get_output());
    assert!(err.contains("PLAINTEXT"), "{err}");
    assert!(err.contains("exported 2 secrets"), "{err}");

    // JSON of every namespace to a 0600 file, never overwritten
    let file = e.path("all.json");
    cmd(
        &e,
        &[
            "export",
            "--format",
            "json",
            "--plaintext-i-understand",
            "--out",
        ],
    )
    .arg(&file)
    .assert()
    .success()
    .stdout(predicate::str::contains("exported 3 secrets"));
    assert_eq!(mode(&file), 0o600);
    cmd(
        &e,
        &[
            "export",
            "--format",
            "json",
            "--plaintext-i-understand",
            "--out",
        ],
    )
    .arg(&file)
    .assert()
    .code(1)
    .stderr(predicate::str::contains("refusing to overwrite"));

    // import both back into a fresh vault
    let f = Env::new();
    f.init();
    cmd(&f, &["import", "imported", "--format", "json", "--in"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("imported 3 secrets"));
    assert_eq!(f.get("core/app", "API_TOKEN"), "tok \"quoted\" $x");
    cmd(
        &f,
        &["import", "from-env", "--format", "dotenv", "--in", "-"],
    )
    .write_stdin(dotenv)
    .assert()
    .success();
    assert_eq!(f.get("from-env", "API_TOKEN"), "tok \"quoted\" $x");
    assert_eq!(f.get("from-env", "DB_PASSWORD"), "hunter2");
    cmd(&f, &["import", "x", "--format", "dotenv", "--in", "-"])
        .write_stdin("this is not dotenv\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("import"));
    // an invalid recipient
    cmd(
        &e,
        &[
            "export",
            "--namespace",
            "core/app",
            "--format",
            "dotenv",
            "--age-recipient",
            "age1nope",
            "--out",
            "-",
        ],
    )
    .assert()
    .code(1)
    .stderr(predicate::str::contains("recipient"))
    .stderr(predicate::str::contains("age1nope").not());
    // a secret key pasted as a recipient: refused, never echoed
    let key = {
        use secrecy::ExposeSecret;
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret()
            .to_owned()
    };
    let out = cmd(
        &e,
        &[
            "export",
            "--namespace",
            "core/app",
            "--format",
            "dotenv",
            "--age-recipient",
            &key,
            "--out",
            "-",
        ],
    )
    .assert()
    .code(1)
    .stdout("")
    .stderr(predicate::str::contains(
        "this is an age identity (a secret key), not a recipient",
    ));
    assert!(!stderr(out.get_output()).contains(&key));
    assert!(!stderr(out.get_output()).contains(&key[15..]));
}

#[test]
fn run_injects_secrets_and_passes_the_exit_code() {
    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2");
    e.put("core/app", "API_TOKEN", "tok");
    cmd(
        &e,
        &[
            "run",
            "--namespace",
            "core/app",
            "--",
            "sh",
            "-c",
            "test \"$DB_PASSWORD\" = hunter2 && exit 7",
        ],
    )
    .assert()
    .code(7)
    .stdout("")
    .stderr("");
    cmd(
        &e,
        &[
            "run",
            "--namespace",
            "core/app",
            "--",
            "sh",
            "-c",
            "test \"$API_TOKEN\" = tok",
        ],
    )
    .assert()
    .success();
    cmd(
        &e,
        &[
            "run",
            "--namespace",
            "core/app",
            "--",
            "sh",
            "-c",
            "kill -9 $$",
        ],
    )
    .assert()
    .code(137);
    cmd(
        &e,
        &["run", "--namespace", "core/app", "--", "/no/such/program"],
    )
    .assert()
    .code(1)
    .stderr(predicate::str::contains("cannot start"));
    // a name that is not an environment variable name: refused, nothing started
    e.put("core/app", "not-an-env-name", "x");
    let marker = e.path("started");
    cmd(&e, &["run", "--namespace", "core/app", "--", "touch"])
        .arg(&marker)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not-an-env-name"))
        .stderr(predicate::str::contains("hunter2").not());
    assert!(!marker.exists());
}

#[test]
fn pins_detect_a_rolled_back_vault() {
    let e = Env::new();
    e.init();
    e.put("ns", "A", "a");
    // the storage is later replaced by this older copy
    let old = e.path("old.sqlite");
    std::fs::copy(&e.vault, &old).unwrap();
    cmd(&e, &["rotate"]).assert().success();
    let pins: Vec<_> = std::fs::read_dir(&e.state)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(pins.len(), 1);
    assert!(pins[0].to_string_lossy().ends_with(".pins"));
    assert_eq!(mode(&pins[0]), 0o600);
    std::fs::copy(&old, &e.vault).unwrap();
    cmd(&e, &["get", "ns", "A"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("rolled it back"));
    // another machine (no pins yet) trusts it on first use
    let fresh_state = e.path("other-state");
    e.clean()
        .arg("--vault")
        .arg(&e.vault)
        .arg("--state-dir")
        .arg(&fresh_state)
        .arg("--passphrase-file")
        .arg(&e.pass)
        .args(["get", "ns", "A"])
        .assert()
        .success()
        .stdout("a");
    // a damaged pins file is a clear error, never silently ignored
    std::fs::write(&pins[0], b"garbage").unwrap();
    cmd(&e, &["status"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pins file"));
}

#[test]
fn audit_verify_catches_a_log_cut_short_since_the_last_verification() {
    let e = Env::new();
    e.init();
    cmd(&e, &["put", "app", "A", "--stdin"])
        .write_stdin("1")
        .assert()
        .success();
    let first = json(cmd(&e, &["audit", "verify"]));
    let n = first["entries"].as_u64().unwrap();
    // The storage drops the last three entries: what is left still chains correctly.
    let db = rusqlite::Connection::open(&e.vault).unwrap();
    db.execute(
        "DELETE FROM sr_audit WHERE k >= ?1",
        [(n - 3).to_be_bytes().to_vec()],
    )
    .unwrap();
    drop(db);
    cmd(&e, &["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("removed from its end"));
}

/// A data-key row that does not open (planted or damaged) no longer blocks `rotate`: it
/// is set aside with a warning, listed by `pending-rewrap` and `status`, failed by
/// `doctor`, and deleted by `purge-quarantined`.
#[test]
fn rotate_sets_aside_a_bad_data_key_and_purge_deletes_it() {
    let e = Env::new();
    e.init();
    for i in 0..5 {
        e.put("ns", &format!("S{i}"), &format!("value-{i}"));
    }
    {
        let db = rusqlite::Connection::open(&e.vault).unwrap();
        // The tag of one head's wrapped data key (bytes 148..164 of its index entry)
        // zeroed: the entry parses, the key does not open.
        let (k, mut v): (Vec<u8>, Vec<u8>) = db
            .query_row("SELECT k, v FROM sr_index ORDER BY k LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        v[148..164].fill(0);
        db.execute("UPDATE sr_index SET v = ?1 WHERE k = ?2", (&v, &k))
            .unwrap();
    }
    let out = cmd(&e, &["rotate"]).assert().success();
    assert!(
        stderr(out.get_output()).contains("1 record versions could not be rewrapped"),
        "{}",
        stderr(out.get_output())
    );
    let p = json(cmd(&e, &["pending-rewrap"]));
    assert_eq!(p["quarantined"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["pending"][0]["quarantined"], true);
    assert_eq!(json(cmd(&e, &["status"]))["quarantined"], 1);
    cmd(&e, &["doctor"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("quarantine"));
    let r = json(cmd(&e, &["purge-quarantined"]));
    assert_eq!(r["purged"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(json(cmd(&e, &["status"]))["quarantined"], 0);
    let remaining = (0..5)
        .filter(|i| {
            cmd(&e, &["get", "ns", &format!("S{i}")])
                .output()
                .unwrap()
                .status
                .success()
        })
        .count();
    assert_eq!(remaining, 4);
}
