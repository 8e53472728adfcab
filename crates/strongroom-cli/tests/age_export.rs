//! Encrypted exports read by the real `age` command-line tool (Debian package `age`).
//!
//! Without `age` the test prints `SKIPPED:` and passes, unless `STRONGROOM_REQUIRE_AGE=1`,
//! which makes that a failure.

#[path = "helpers/env.rs"]
mod env;

use std::io::{Read, Write};
use std::process::Command;

use age::secrecy::ExposeSecret;
use env::{Env, write_private};

fn have_age() -> bool {
    let found = Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("STRONGROOM_REQUIRE_AGE").as_deref() != Ok("1"),
            "the `age` tool is not installed but STRONGROOM_REQUIRE_AGE=1: install the Debian package age"
        );
        // Written straight to the file descriptor: the test harness does not capture it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: age_export: the `age` tool is not installed (Debian package age; STRONGROOM_REQUIRE_AGE=1 makes this a failure)"
        );
    }
    found
}

fn age_decrypt(identity_file: &std::path::Path, file: &std::path::Path) -> String {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity_file)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn exports_decrypt_with_the_age_tool() {
    if !have_age() {
        return;
    }
    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2");
    e.put("core/app", "API_TOKEN", "line1\nline2 \"q\" $HOME");
    e.put("plugins/x", "KEY", "k");

    let alice = age::x25519::Identity::generate();
    let bob = age::x25519::Identity::generate();
    let alice_file = e.path("alice.age.txt");
    write_private(
        &alice_file,
        format!("{}\n", alice.to_string().expose_secret()).as_bytes(),
    );
    let bob_file = e.path("bob.age.txt");
    write_private(
        &bob_file,
        format!("{}\n", bob.to_string().expose_secret()).as_bytes(),
    );

    // dotenv of one namespace to two recipients
    let dotenv = e.path("app.env.age");
    e.sr()
        .args(["export", "--namespace", "core/app", "--format", "dotenv"])
        .args(["--age-recipient", &alice.to_public().to_string()])
        .args(["--age-recipient", &bob.to_public().to_string()])
        .arg("--out")
        .arg(&dotenv)
        .assert()
        .success();
    let raw = std::fs::read(&dotenv).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1\n"));
    assert!(!raw.windows(7).any(|w| w == b"hunter2"));
    for id in [&alice_file, &bob_file] {
        let plain = age_decrypt(id, &dotenv);
        assert!(plain.contains("DB_PASSWORD=\"hunter2\""), "{plain}");
        assert!(plain.contains("API_TOKEN="), "{plain}");
        assert!(
            !plain.contains("KEY="),
            "another namespace leaked in: {plain}"
        );
        // the decrypted file imports back to the same values
        let f = Env::new();
        f.init();
        f.sr()
            .args(["import", "copy", "--format", "dotenv", "--in", "-"])
            .write_stdin(plain)
            .assert()
            .success();
        assert_eq!(f.get("copy", "API_TOKEN"), "line1\nline2 \"q\" $HOME");
    }

    // JSON of every namespace, to stdout
    let out = e
        .sr()
        .args(["export", "--format", "json", "--age-recipient"])
        .arg(alice.to_public().to_string())
        .args(["--out", "-"])
        .assert()
        .success();
    let json_age = e.path("all.json.age");
    std::fs::write(&json_age, &out.get_output().stdout).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&age_decrypt(&alice_file, &json_age)).unwrap();
    let secrets = doc["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 3, "{doc}");

    // a passphrase export (the age tool asks for passphrases on a terminal only, so it is
    // read back with the age library, the same format)
    let pass = e.file("export.pass", "an export passphrase for the test");
    let pw_file = e.path("app.pw.age");
    e.sr()
        .args([
            "export",
            "--namespace",
            "core/app",
            "--format",
            "dotenv",
            "--age-passphrase-file",
        ])
        .arg(&pass)
        .arg("--out")
        .arg(&pw_file)
        .assert()
        .success();
    let bytes = std::fs::read(&pw_file).unwrap();
    let dec = age::Decryptor::new_buffered(&bytes[..]).unwrap();
    assert!(dec.is_scrypt());
    let id = age::scrypt::Identity::new("an export passphrase for the test".to_owned().into());
    let mut plain = String::new();
    dec.decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap()
        .read_to_string(&mut plain)
        .unwrap();
    assert!(plain.contains("DB_PASSWORD=\"hunter2\""), "{plain}");
}
