//! The OS keyring and PKCS#11 keyholders through the real binary.
//!
//! Keyring: the test re-runs itself inside a fresh session keyring (`keyctl session -`), so
//! the binaries it starts share that keyring and nothing touches the caller's. PKCS#11: a
//! SoftHSM2 token in a temporary directory (`SOFTHSM2_CONF`). Without `keyctl` or SoftHSM2
//! the tests print `SKIPPED:` and pass, unless `STRONGROOM_REQUIRE_KEYRING=1` /
//! `STRONGROOM_REQUIRE_SOFTHSM=1`, which make that a failure.

#[path = "helpers/env.rs"]
mod env;

use std::io::Write;
use std::process::Command;

use env::{Env, json};
use predicates::prelude::*;

const CHILD: &str = "STRONGROOM_CLI_KEYRING_CHILD";

fn tool_present(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skip(name: &str, what: &str, require: &str, package: &str) {
    assert!(
        std::env::var(require).as_deref() != Ok("1"),
        "{name}: {what} not found but {require}=1: install the Debian package {package}"
    );
    // Written straight to the file descriptor: the test harness does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {name}: {what} not found (install the Debian package {package}; {require}=1 makes this a failure)"
    );
}

/// Runs `body` in a child process joined to a fresh session keyring.
fn in_fresh_session(name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    if !tool_present("keyctl") {
        skip(name, "`keyctl`", "STRONGROOM_REQUIRE_KEYRING", "keyutils");
        return;
    }
    let out = Command::new("keyctl")
        .args(["session", "-"])
        .arg(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its session keyring:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("test {name} ... ok")),
        "{name} did not run in the child:\n{stdout}\n{stderr}"
    );
}

fn keyholder_id(list: &serde_json::Value, kind: &str) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} keyholder: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn keyring_vault_rotates_to_the_next_entry() {
    in_fresh_session("keyring_vault_rotates_to_the_next_entry", || {
        let e = Env::new();
        let ring = |entry: &str| {
            let mut c = e.bare();
            c.args(["--keyring", &format!("strongroom-cli-test/{entry}")]);
            c
        };
        ring("vault")
            .args(["init", "--no-recovery-key"])
            .assert()
            .success()
            .stderr(predicate::str::contains("created the OS keyring entry"));
        ring("vault")
            .args(["put", "ns", "A", "--stdin"])
            .write_stdin("a")
            .assert()
            .success();
        let old = keyholder_id(
            &json({
                let mut c = ring("vault");
                c.args(["keyholder", "list"]);
                c
            }),
            "os-keyring",
        );
        ring("vault")
            .args(["keyholder", "rotate", &old, "--new-keyring"])
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "deleted the old OS keyring entry strongroom-cli-test/vault",
            ));
        ring("vault")
            .args(["get", "ns", "A"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("no entry"));
        ring("vault.g2")
            .args(["get", "ns", "A"])
            .assert()
            .success()
            .stdout("a");

        // re-run after an interruption that left the next entry and its stanza in place
        let g2 = keyholder_id(
            &json({
                let mut c = ring("vault.g2");
                c.args(["keyholder", "list"]);
                c
            }),
            "os-keyring",
        );
        ring("vault.g2")
            .args([
                "keyholder",
                "add",
                "--new-keyring",
                "strongroom-cli-test/vault.g3",
            ])
            .assert()
            .success();
        ring("vault.g2")
            .args(["keyholder", "rotate", &g2, "--new-keyring"])
            .assert()
            .success();
        ring("vault.g3")
            .args(["get", "ns", "A"])
            .assert()
            .success()
            .stdout("a");
        ring("vault.g2").args(["get", "ns", "A"]).assert().code(1);

        // re-run after an interruption that removed the old stanza but kept the old entry
        let g3 = keyholder_id(
            &json({
                let mut c = ring("vault.g3");
                c.args(["keyholder", "list"]);
                c
            }),
            "os-keyring",
        );
        ring("vault.g3")
            .args([
                "keyholder",
                "add",
                "--new-keyring",
                "strongroom-cli-test/vault.g4",
            ])
            .assert()
            .success();
        ring("vault.g4")
            .args(["keyholder", "remove", &g3])
            .assert()
            .success();
        ring("vault.g3")
            .args(["keyholder", "rotate", &g3, "--new-keyring"])
            .assert()
            .success()
            .stdout(predicate::str::contains("finished an interrupted rotation"));
        ring("vault.g3")
            .args(["status"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("no entry"));
        ring("vault.g4")
            .args(["get", "ns", "A"])
            .assert()
            .success()
            .stdout("a");
    });
}

#[test]
fn pkcs11_vault_rotates_to_a_new_hsm_key() {
    let name = "pkcs11_vault_rotates_to_a_new_hsm_key";
    if !tool_present("softhsm2-util") || strongroom_pkcs11::find_softhsm().is_none() {
        skip(name, "SoftHSM2", "STRONGROOM_REQUIRE_SOFTHSM", "softhsm2");
        return;
    }
    let e = Env::new();
    let tokens = e.path("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = e.file(
        "softhsm2.conf",
        &format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    );
    let pin = "31415926";
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "strongroom-cli",
            "--pin",
            pin,
            "--so-pin",
            "27182818",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pin_file = e.file("pin.txt", pin);
    let hsm = |key: &str| {
        let mut c = e.bare();
        c.env("SOFTHSM2_CONF", &conf)
            .env("STRONGROOM_PKCS11_PIN_FILE", &pin_file)
            .args(["--pkcs11-token", "strongroom-cli", "--pkcs11-key", key]);
        c
    };
    hsm("kek-1")
        .args(["init", "--no-recovery-key"])
        .assert()
        .success()
        .stderr(predicate::str::contains("created the AES key"));
    hsm("kek-1")
        .args(["put", "ns", "A", "--stdin"])
        .write_stdin("a")
        .assert()
        .success();
    let old = keyholder_id(
        &json({
            let mut c = hsm("kek-1");
            c.args(["keyholder", "list"]);
            c
        }),
        "pkcs11",
    );
    hsm("kek-1")
        .args([
            "keyholder",
            "rotate",
            &old,
            "--new-pkcs11-token",
            "strongroom-cli",
            "--new-pkcs11-key",
            "kek-2",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("pkcs11 keyholder"));
    hsm("kek-1").args(["get", "ns", "A"]).assert().code(1);
    hsm("kek-2")
        .args(["get", "ns", "A"])
        .assert()
        .success()
        .stdout("a");
    // a wrong PIN and a missing key are clear errors
    let wrong = e.file("wrong-pin.txt", "00000000");
    hsm("kek-2")
        .env("STRONGROOM_PKCS11_PIN_FILE", &wrong)
        .args(["get", "ns", "A"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("PIN"));
    hsm("no-such-key")
        .args(["get", "ns", "A"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not available"));
}
