//! Post-quantum age files (`mlkem768x25519`, `age1pq1…` recipients, `AGE-SECRET-KEY-PQ-1…`
//! identities) against typage, the `age-encryption` npm package (tests/typage/README.md):
//! typage decrypts strongroom's exports and strongroom imports typage's files.
//!
//! Without Node or the package in `target/typage` (or `STRONGROOM_TYPAGE_DIR`) the interop
//! test prints `SKIPPED:` and passes, unless `STRONGROOM_REQUIRE_TYPAGE=1`.

#[path = "helpers/env.rs"]
mod env;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret;
use env::{Env, write_private};

fn typage_dir() -> PathBuf {
    std::env::var_os("STRONGROOM_TYPAGE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/typage"),
        PathBuf::from,
    )
}

/// The interop script, copied next to the installed package (Node resolves
/// `age-encryption` from the script's own folder).
fn typage() -> Option<PathBuf> {
    let dir = typage_dir();
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = dir
        .join("node_modules/age-encryption/package.json")
        .is_file();
    if !(node_ok && installed) {
        let why = if node_ok {
            format!("age-encryption is not installed in {}", dir.display())
        } else {
            "node is not installed".to_owned()
        };
        assert!(
            std::env::var("STRONGROOM_REQUIRE_TYPAGE").as_deref() != Ok("1"),
            "{why} but STRONGROOM_REQUIRE_TYPAGE=1: see crates/strongroom-cli/tests/typage/README.md"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: age_pq: {why} (crates/strongroom-cli/tests/typage/README.md; STRONGROOM_REQUIRE_TYPAGE=1 makes this a failure)"
        );
        return None;
    }
    let script = dir.join("interop.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/typage/interop.mjs"),
        &script,
    )
    .unwrap();
    Some(script)
}

fn node(script: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "typage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn typage_reads_strongroom_pq_exports_and_strongroom_imports_typage_files() {
    let Some(script) = typage() else { return };
    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2");
    e.put("core/app", "API_TOKEN", "line1\nline2 \"q\" $HOME");

    // A hybrid identity made by typage.
    let keys = node(&script, &["keygen".as_ref()]);
    let mut lines = keys.lines();
    let (identity, recipient) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(identity.starts_with("AGE-SECRET-KEY-PQ-1") && recipient.starts_with("age1pq1"));
    let id_file = e.path("typage.key");
    write_private(&id_file, format!("{identity}\n").as_bytes());

    // strongroom exports to typage's recipient: an mlkem768x25519 stanza, which typage opens.
    let export = e.path("app.env.age");
    e.sr()
        .args(["export", "--namespace", "core/app", "--format", "dotenv"])
        .args(["--age-recipient", recipient])
        .arg("--out")
        .arg(&export)
        .assert()
        .success();
    let raw = std::fs::read(&export).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1\n-> mlkem768x25519 "));
    // One hybrid stanza, no classical one (age may add a random "grease" stanza).
    let header =
        String::from_utf8_lossy(&raw[..raw.windows(4).position(|w| w == b"\n---").unwrap()]);
    assert_eq!(
        header.matches("\n-> mlkem768x25519 ").count(),
        1,
        "{header}"
    );
    assert!(!header.contains("-> X25519 "), "{header}");
    let plain = node(
        &script,
        &["decrypt".as_ref(), id_file.as_os_str(), export.as_os_str()],
    );
    assert!(plain.contains("DB_PASSWORD=\"hunter2\""), "{plain}");

    // typage encrypts a dotenv file to its recipient; strongroom imports it with the
    // identity file (the secret key never on the command line).
    let dotenv = e.file("in.env", "FROM_TYPAGE=\"pq secret\"\nOTHER=2\n");
    let encrypted = e.path("in.env.age");
    node(
        &script,
        &[
            "encrypt".as_ref(),
            recipient.as_ref(),
            dotenv.as_os_str(),
            encrypted.as_os_str(),
        ],
    );
    e.sr()
        .args(["import", "copy", "--format", "dotenv", "--in"])
        .arg(&encrypted)
        .arg("--age-identity")
        .arg(&id_file)
        .assert()
        .success();
    assert_eq!(e.get("copy", "FROM_TYPAGE"), "pq secret");

    // A wrong identity: nothing imported, and the error says why.
    let other = strongroom::HybridIdentity::generate().unwrap();
    let other_file = e.path("other.key");
    write_private(
        &other_file,
        format!("{}\n", other.to_secret_string().expose_secret()).as_bytes(),
    );
    let out = e
        .sr()
        .args(["import", "copy2", "--format", "dotenv", "--in"])
        .arg(&encrypted)
        .arg("--age-identity")
        .arg(&other_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("none of the identities"));
}

/// Without any outside tool: strongroom's own hybrid round trip, and a file mixing hybrid
/// and X25519 recipients is refused before anything is written.
#[test]
fn pq_export_round_trip_and_no_mixing() {
    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2");
    let id = strongroom::HybridIdentity::generate().unwrap();
    let id_file = e.path("pq.key");
    write_private(
        &id_file,
        format!("# a comment\n{}\n", id.to_secret_string().expose_secret()).as_bytes(),
    );
    let out = e.path("out.age");
    e.sr()
        .args(["export", "--namespace", "core/app", "--format", "dotenv"])
        .args(["--age-recipient", &id.to_public().to_string()])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    e.sr()
        .args(["import", "copy", "--format", "dotenv", "--in"])
        .arg(&out)
        .arg("--age-identity")
        .arg(&id_file)
        .assert()
        .success();
    assert_eq!(e.get("copy", "DB_PASSWORD"), "hunter2");

    let classical = age::x25519::Identity::generate().to_public().to_string();
    let mixed = e.path("mixed.age");
    let res = e
        .sr()
        .args(["export", "--namespace", "core/app", "--format", "dotenv"])
        .args(["--age-recipient", &id.to_public().to_string()])
        .args(["--age-recipient", &classical])
        .arg("--out")
        .arg(&mixed)
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("cannot share one file"));
    assert!(!mixed.exists());
}
