//! `init`, `put`, `get`, `list`, `delete`, `history` through the real binary.

#[path = "helpers/env.rs"]
mod env;

use env::{Env, stderr, stdout};
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn init_prints_the_recovery_key_once_and_warns() {
    let e = Env::new();
    let out = e.sr().args(["init", "--name", "alice"]).assert().success();
    let (o, err) = (stdout(out.get_output()), stderr(out.get_output()));
    assert!(o.contains("RECOVERY KEY"), "{o}");
    assert!(o.contains("SRK1Q-"), "{o}");
    assert!(o.contains("24 words"), "{o}");
    assert!(o.contains("OFFLINE"), "{o}");
    // the words: four indented lines of six
    let lines: Vec<&str> = o
        .lines()
        .skip_while(|l| !l.contains("24 words"))
        .skip(1)
        .take(5)
        .collect();
    for l in &lines[..4] {
        assert!(l.starts_with("    "), "{o}");
        assert_eq!(l.split_whitespace().count(), 6, "{o}");
    }
    assert!(lines[4].trim().is_empty(), "{o}");
    assert!(err.contains("warning:"), "the single-member warning: {err}");
    // the vault file and the pins are private
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.vault), 0o600);
    assert_eq!(mode(&e.state), 0o700);
    let pins: Vec<_> = std::fs::read_dir(&e.state).unwrap().collect();
    assert_eq!(pins.len(), 1);
    assert_eq!(mode(&pins[0].as_ref().unwrap().path()), 0o600);
    // a second init refuses
    e.sr()
        .args(["init"])
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("already holds vault"));
}

#[test]
fn init_without_recovery_key_warns_loudly() {
    let e = Env::new();
    e.sr()
        .args(["init", "--member", "alice", "--no-recovery-key"])
        .assert()
        .success()
        .stdout(predicate::str::contains("RECOVERY KEY").not())
        .stderr(predicate::str::contains("WARNING: no recovery key"));
    // `--member` names the owner when `--name` is not given
    e.sr()
        .args(["member", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("alice"));
}

#[test]
fn put_get_list_delete_history() {
    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2\n");
    // exactly the value on stdout, the trailing newline of stdin dropped
    assert_eq!(e.get("core/app", "DB_PASSWORD"), "hunter2");
    // --keep-newline and --from-file keep bytes as they are
    e.sr()
        .args(["put", "core/app", "MULTI", "--stdin", "--keep-newline"])
        .write_stdin("line1\nline2\n")
        .assert()
        .success();
    assert_eq!(e.get("core/app", "MULTI"), "line1\nline2\n");
    let f = e.file("cert.pem", "-----BEGIN-----\nabc\n");
    e.sr()
        .args(["put", "core/tls", "CERT", "--from-file"])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::contains("stored core/tls/CERT version 1"));
    assert_eq!(e.get("core/tls", "CERT"), "-----BEGIN-----\nabc\n");

    e.put("core/app", "DB_PASSWORD", "hunter3");
    assert_eq!(e.get("core/app", "DB_PASSWORD"), "hunter3");
    e.sr()
        .args(["get", "core/app", "DB_PASSWORD", "--version", "1"])
        .assert()
        .success()
        .stdout("hunter2");

    // --json: metadata only unless --show-value
    let meta = env::json({
        let mut c = e.sr();
        c.args(["get", "core/app", "DB_PASSWORD"]);
        c
    });
    assert_eq!(meta["version"], 2);
    assert_eq!(meta["len"], 7);
    assert!(meta.get("value").is_none(), "{meta}");
    assert!(!meta.to_string().contains("hunter3"));
    let with = env::json({
        let mut c = e.sr();
        c.args(["get", "core/app", "DB_PASSWORD", "--show-value"]);
        c
    });
    assert_eq!(with["value"], "hunter3");
    // --show-value needs --json
    e.sr()
        .args(["get", "core/app", "DB_PASSWORD", "--show-value"])
        .assert()
        .code(2);

    let out = e.sr().args(["list", "core/app"]).assert().success();
    let listing = stdout(out.get_output());
    assert!(
        listing.contains("DB_PASSWORD") && listing.contains("MULTI"),
        "{listing}"
    );
    assert!(!listing.contains("hunter"), "{listing}");
    let listed = env::json({
        let mut c = e.sr();
        c.args(["list", "core/app"]);
        c
    });
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["DB_PASSWORD", "MULTI"]);

    let hist = env::json({
        let mut c = e.sr();
        c.args(["history", "core/app", "DB_PASSWORD"]);
        c
    });
    assert_eq!(hist.as_array().unwrap().len(), 2);
    e.sr()
        .args(["history", "core/app", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout(predicate::str::contains("VERSION"));

    e.sr()
        .args(["delete", "core/app", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("deleted core/app/DB_PASSWORD\n");
    e.sr()
        .args(["get", "core/app", "DB_PASSWORD"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::starts_with(
            "error: no secret named \"DB_PASSWORD\"",
        ));
}

#[test]
fn failure_modes() {
    let e = Env::new();
    // no vault yet: no file is created by a read
    e.sr()
        .args(["list", "ns"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no vault at"));
    assert!(!e.vault.exists());
    e.init();
    e.put("ns", "A", "v");

    // wrong passphrase
    let wrong = e.file("wrong.txt", "not the passphrase");
    e.bare()
        .arg("--passphrase-file")
        .arg(&wrong)
        .args(["get", "ns", "A"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::starts_with(
            "error: unlock failed: wrong passphrase",
        ));
    // missing secret, bad namespace, bad name
    e.sr()
        .args(["get", "ns", "NOPE"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no secret named \"NOPE\""));
    for bad in ["/ns", "a//b", "white space", "a/../b"] {
        e.sr()
            .args(["put", bad, "X", "--stdin"])
            .write_stdin("v")
            .assert()
            .code(1)
            .stderr(predicate::str::contains("invalid namespace"));
    }
    // no keyholder and no terminal: a clear error, not a hang
    e.bare()
        .args(["get", "ns", "A"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("standard input is not a terminal"));
    // no value source and no terminal
    e.sr()
        .args(["put", "ns", "B"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--stdin or --from-file"));
    // stdin cannot carry two secrets
    e.bare()
        .args(["--passphrase-stdin", "put", "ns", "B", "--stdin"])
        .write_stdin(format!("{}\n", env::PASS))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("only one secret"));
    // two keyholders at once
    e.sr()
        .args(["--kek-env", "X", "get", "ns", "A"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("choose one keyholder"));
    // usage errors exit 2
    e.sr().args(["get", "ns"]).assert().code(2);
    e.sr().arg("no-such-command").assert().code(2);
    // the passphrase from the environment variable and from stdin work too
    e.bare()
        .env("STRONGROOM_PASSPHRASE_FILE", &e.pass)
        .args(["get", "ns", "A"])
        .assert()
        .success()
        .stdout("v");
    e.bare()
        .args(["--passphrase-stdin", "get", "ns", "A"])
        .write_stdin(format!("{}\n", env::PASS))
        .assert()
        .success()
        .stdout("v");
}

#[test]
fn vault_location_forms() {
    let e = Env::new();
    let url = format!("sqlite://{}", e.path("url.sqlite").display());
    let with_pass = |c: &mut assert_cmd::Command| {
        c.arg("--passphrase-file")
            .arg(&e.pass)
            .args(["--profile", "constrained"]);
    };
    let mut c = e.clean();
    with_pass(&mut c);
    c.args(["--vault", &url, "init", "--no-recovery-key"])
        .assert()
        .success();
    assert!(e.path("url.sqlite").exists());
    let mut c = e.clean();
    with_pass(&mut c);
    c.args(["--vault", &url, "put", "ns", "K", "--stdin"])
        .write_stdin("x")
        .assert()
        .success();
    // STRONGROOM_VAULT
    let mut c = e.clean();
    with_pass(&mut c);
    c.env("STRONGROOM_VAULT", &url)
        .args(["get", "ns", "K"])
        .assert()
        .success()
        .stdout("x");
    // the default location under XDG_DATA_HOME, pins under ~/.local/state
    let mut c = e.clean();
    with_pass(&mut c);
    c.env("XDG_DATA_HOME", e.path("data"))
        .args(["init", "--no-recovery-key"])
        .assert()
        .success();
    assert!(e.path("data/strongroom/vault.sqlite").exists());
    assert!(e.path(".local/state/strongroom").is_dir());
    // and ~/.local/share without XDG_DATA_HOME
    let mut c = e.clean();
    with_pass(&mut c);
    c.args(["init", "--no-recovery-key"]).assert().success();
    assert!(e.path(".local/share/strongroom/vault.sqlite").exists());
}

#[test]
fn init_options_and_a_closed_stdout() {
    let e = Env::new();
    e.sr()
        .args([
            "init",
            "--no-recovery-key",
            "--history",
            "2",
            "--suite",
            "chacha",
        ])
        .args(["--rotation-days", "0", "--profile", "calibrate:50"])
        .assert()
        .success()
        .stderr(predicate::str::contains("calibrated"));
    for v in ["v1", "v2", "v3"] {
        e.put("ns", "K", v);
    }
    let hist = env::json({
        let mut c = e.sr();
        c.args(["history", "ns", "K"]);
        c
    });
    let versions: Vec<u64> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 3], "two versions kept");
    e.sr()
        .args(["get", "ns", "K", "--version", "1"])
        .assert()
        .code(1);
    let st = env::json({
        let mut c = e.sr();
        c.arg("status");
        c
    });
    assert_eq!(st["rotation_policy_days"], 0);
    assert_eq!(st["rotation_due"], false);

    // a listing larger than a pipe's buffer, read by nobody: the SIGPIPE exit code, no panic
    let long = "N".repeat(300);
    let mut dotenv = String::new();
    for i in 0..300 {
        dotenv.push_str("NAME_");
        dotenv.push_str(&i.to_string());
        dotenv.push('_');
        dotenv.push_str(&long);
        dotenv.push_str("=x\n");
    }
    e.sr()
        .args(["import", "big", "--format", "dotenv", "--in", "-"])
        .write_stdin(dotenv)
        .assert()
        .success();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .env("HOME", e.dir.path())
        .arg("--vault")
        .arg(&e.vault)
        .arg("--state-dir")
        .arg(&e.state)
        .arg("--passphrase-file")
        .arg(&e.pass)
        .args(["list", "big"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}
