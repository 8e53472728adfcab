//! Keyholders through the real binary: raw KEKs (env and file), passphrases, recovery keys.

#[path = "helpers/env.rs"]
mod env;

use env::{Env, json, new_kek, stderr, stdout, write_private};
use predicates::prelude::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

fn keyholders(mut cmd: assert_cmd::Command) -> Vec<Value> {
    cmd.args(["keyholder", "list"]);
    json(cmd).as_array().unwrap().clone()
}

fn id_of(list: &[Value], kind: &str) -> String {
    list.iter()
        .find(|k| k["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} keyholder in {list:?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn raw_kek_from_env_rotates_in_place() {
    let e = Env::new();
    let k1 = new_kek();
    let k2 = new_kek();
    assert_ne!(k1, k2);
    let with = |key: &str| {
        let mut c = e.bare();
        c.env("ENCRYPTION_KEY", key)
            .args(["--kek-env", "ENCRYPTION_KEY"]);
        c
    };
    let out = with(&k1)
        .args(["init", "--name", "app", "--no-recovery-key"])
        .assert()
        .success();
    assert!(!stdout(out.get_output()).contains(&k1));
    for (name, value) in [
        ("DB_PASSWORD", "hunter2"),
        ("API_TOKEN", "tok-1"),
        ("SMTP", "pw-3"),
    ] {
        with(&k1)
            .args(["put", "core/app", name, "--stdin"])
            .write_stdin(value)
            .assert()
            .success();
    }
    let list = keyholders(with(&k1));
    assert_eq!(list.len(), 1);
    let old_id = id_of(&list, "raw-kek");
    assert_eq!(list[0]["unlocked_with"], true);

    // rotate to the key in NEW_KEY: O(1), the old key stops working
    let out = with(&k1)
        .env("NEW_KEY", &k2)
        .args(["keyholder", "rotate", &old_id, "--new-kek-env", "NEW_KEY"])
        .assert()
        .success();
    let o = out.get_output();
    assert!(stdout(o).contains("replaced keyholder"), "{}", stdout(o));
    for s in [stdout(o), stderr(o)] {
        assert!(
            !s.contains(&k1) && !s.contains(&k2),
            "a KEK was printed: {s}"
        );
    }
    with(&k1)
        .args(["get", "core/app", "DB_PASSWORD"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("does not open this vault"));
    for (name, value) in [
        ("DB_PASSWORD", "hunter2"),
        ("API_TOKEN", "tok-1"),
        ("SMTP", "pw-3"),
    ] {
        with(&k2)
            .args(["get", "core/app", name])
            .assert()
            .success()
            .stdout(value);
    }
    let list = keyholders(with(&k2));
    assert_eq!(list.len(), 1);
    assert_ne!(id_of(&list, "raw-kek"), old_id);

    // an unset variable, and a key given where the NAME belongs (never echoed)
    e.bare()
        .env_remove("ENCRYPTION_KEY")
        .args(["--kek-env", "ENCRYPTION_KEY", "get", "core/app", "SMTP"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("ENCRYPTION_KEY is not set"));
    let out = e
        .bare()
        .args(["--kek-env", &k2, "get", "core/app", "SMTP"])
        .assert()
        .code(1);
    assert!(!stderr(out.get_output()).contains(&k2));
}

#[test]
fn kek_files_world_readable_refused() {
    let e = Env::new();
    let k = new_kek();
    let file = e.path("vault.kek");
    write_private(&file, format!("{k}\n").as_bytes());
    e.bare()
        .arg("--kek-file")
        .arg(&file)
        .args(["init", "--no-recovery-key"])
        .assert()
        .success();
    e.bare()
        .arg("--kek-file")
        .arg(&file)
        .args(["put", "ns", "A", "--stdin"])
        .write_stdin("a")
        .assert()
        .success();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    e.bare()
        .arg("--kek-file")
        .arg(&file)
        .args(["get", "ns", "A"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("readable by every user"))
        .stderr(predicate::str::contains("--allow-world-readable-kek"));
    e.bare()
        .arg("--kek-file")
        .arg(&file)
        .args(["--allow-world-readable-kek", "get", "ns", "A"])
        .assert()
        .success()
        .stdout("a");
    // the new keyholder of a rotation is checked the same way
    let k2 = e.path("new.kek");
    std::fs::write(&k2, new_kek()).unwrap();
    std::fs::set_permissions(&k2, std::fs::Permissions::from_mode(0o644)).unwrap();
    e.bare()
        .arg("--kek-file")
        .arg(&file)
        .args([
            "--allow-world-readable-kek",
            "keyholder",
            "add",
            "--new-kek-file",
        ])
        .arg(&k2)
        .assert()
        .success();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    e.bare()
        .arg("--kek-file")
        .arg(&file)
        .args(["keyholder", "add", "--new-kek-file"])
        .arg(&k2)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("readable by every user"));
    // a file that is not a key
    let junk = e.file("junk.kek", "not a key");
    e.bare()
        .arg("--kek-file")
        .arg(&junk)
        .args(["get", "ns", "A"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("key-encryption key"));
}

#[test]
fn passphrase_keyholders_add_remove_rotate() {
    let e = Env::new();
    e.init();
    e.put("ns", "A", "secret-a");
    let list = keyholders(e.sr());
    assert_eq!(list.len(), 2, "passphrase + recovery key: {list:?}");
    let pass_id = id_of(&list, "passphrase");
    let rk_entry = list.iter().find(|k| k["kind"] == "recovery-key").unwrap();
    assert!(rk_entry["recovery_key_id"].as_str().unwrap().contains('-'));

    // add a second passphrase, unlock with it, remove it
    let second = e.file("second.txt", "a second passphrase for the test");
    e.sr()
        .args(["keyholder", "add", "--new-passphrase-file"])
        .arg(&second)
        .assert()
        .success()
        .stdout(predicate::str::contains("added passphrase keyholder"));
    let mut c = e.bare();
    c.arg("--passphrase-file").arg(&second);
    let list = keyholders(c);
    assert_eq!(list.len(), 3);
    let second_id = list
        .iter()
        .filter(|k| k["kind"] == "passphrase")
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .find(|id| *id != pass_id)
        .unwrap();
    e.sr()
        .args(["keyholder", "remove", &second_id])
        .assert()
        .success();
    e.bare()
        .arg("--passphrase-file")
        .arg(&second)
        .args(["get", "ns", "A"])
        .assert()
        .code(1);
    e.sr()
        .args(["keyholder", "remove", "zz"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("16 hexadecimal digits"));

    // rotate the passphrase: the old one stops working
    let newpass = e.file("new.txt", "the new passphrase of the test");
    e.sr()
        .args(["keyholder", "rotate", &pass_id, "--new-passphrase-file"])
        .arg(&newpass)
        .assert()
        .success();
    e.sr().args(["get", "ns", "A"]).assert().code(1);
    e.bare()
        .arg("--passphrase-file")
        .arg(&newpass)
        .args(["get", "ns", "A"])
        .assert()
        .success()
        .stdout("secret-a");
    // --new-keyring without a value follows the --keyring entry, which is not given here
    e.bare()
        .arg("--passphrase-file")
        .arg(&newpass)
        .args(["keyholder", "rotate", &pass_id, "--new-keyring"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unlock with --keyring"));
    // nothing names the new keyholder, or two of them
    e.bare()
        .arg("--passphrase-file")
        .arg(&newpass)
        .args(["keyholder", "add"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("name the new keyholder"));
    e.bare()
        .arg("--passphrase-file")
        .arg(&newpass)
        .args([
            "keyholder",
            "add",
            "--new-recovery-key",
            "--new-kek-env",
            "X",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("choose one new keyholder"));
}

#[test]
fn recovery_keys_verify_replace_and_unlock() {
    let e = Env::new();
    let init = e.init_json();
    let rk1 = init["recovery_key"]["text"].as_str().unwrap().to_owned();
    let words1 = init["recovery_key"]["words"].as_str().unwrap().to_owned();
    assert_eq!(words1.split(' ').count(), 24);
    e.put("ns", "A", "secret-a");
    let f1 = e.file("rk1.txt", &format!("{rk1}\n"));
    e.bare()
        .args(["recovery-key", "verify", "--recovery-key-file"])
        .arg(&f1)
        .assert()
        .success()
        .stdout(predicate::str::contains("opens vault"));
    // the 24-word form, from stdin
    e.bare()
        .args(["recovery-key", "verify", "--recovery-key-stdin"])
        .write_stdin(words1.clone())
        .assert()
        .success();
    // unlock with the recovery key
    e.bare()
        .arg("--recovery-key-file")
        .arg(&f1)
        .args(["get", "ns", "A"])
        .assert()
        .success()
        .stdout("secret-a");
    // a typo is located, and never echoes the key
    let mut typo: Vec<char> = rk1.chars().collect();
    let i = 20;
    typo[i] = if typo[i] == 'Q' { 'P' } else { 'Q' };
    let typo: String = typo.into_iter().collect();
    let bad = e.file("typo.txt", &typo);
    let out = e
        .bare()
        .args(["recovery-key", "verify", "--recovery-key-file"])
        .arg(&bad)
        .assert()
        .code(1);
    let err = stderr(out.get_output());
    assert!(err.contains("group"), "{err}");
    assert!(!err.contains(&typo) && !err.contains(&rk1), "{err}");

    // replace it: printed once, the old one stops working
    let new = json({
        let mut c = e.sr();
        c.args(["recovery-key", "new"]);
        c
    });
    let rk2 = new["recovery_key"]["text"].as_str().unwrap().to_owned();
    assert_ne!(rk1, rk2);
    assert!(new["replaced"].is_string());
    e.bare()
        .args(["recovery-key", "verify", "--recovery-key-file"])
        .arg(&f1)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not open"));
    let f2 = e.file("rk2.txt", &rk2);
    e.bare()
        .args(["recovery-key", "verify", "--recovery-key-file"])
        .arg(&f2)
        .assert()
        .success();
    let list = json({
        let mut c = e.sr();
        c.args(["keyholder", "list"]);
        c
    });
    let rks: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "recovery-key")
        .collect();
    assert_eq!(rks.len(), 1);

    // the human form prints the key once with the instructions
    let out = e.sr().args(["recovery-key", "new"]).assert().success();
    let text = stdout(out.get_output());
    assert!(
        text.contains("RECOVERY KEY") && text.contains("OFFLINE"),
        "{text}"
    );
    assert!(text.contains("no longer opens"), "{text}");
    e.bare()
        .args(["recovery-key", "verify", "--recovery-key-file"])
        .arg(&f2)
        .assert()
        .code(1);

    // keyholder rotate to a new recovery key works the same way
    let rk_id = json({
        let mut c = e.sr();
        c.args(["keyholder", "list"]);
        c
    })
    .as_array()
    .unwrap()
    .iter()
    .find(|k| k["kind"] == "recovery-key")
    .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = json({
        let mut c = e.sr();
        c.args(["keyholder", "rotate", &rk_id, "--new-recovery-key"]);
        c
    });
    let rk4 = rotated["recovery_key"]["text"].as_str().unwrap();
    let f4 = e.file("rk4.txt", rk4);
    e.bare()
        .args(["recovery-key", "verify", "--recovery-key-file"])
        .arg(&f4)
        .assert()
        .success();
    // a recovery key cannot create a vault
    let other = Env::new();
    other
        .bare()
        .args(["--recovery-key-file"])
        .arg(&f4)
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot create"));
}

#[test]
fn kek_generate_prints_a_fresh_key() {
    let a = new_kek();
    let b = new_kek();
    assert_ne!(a, b);
    assert_eq!(a.len(), 44, "{a}");
    assert_eq!(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &a)
            .unwrap()
            .len(),
        32
    );
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["kek", "generate"])
        .assert()
        .success();
    assert!(stderr(out.get_output()).contains("key id"));
}
