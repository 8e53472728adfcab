//! A temporary vault and state directory, and the `strongroom` binary pointed at them.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The owner's passphrase in the tests (a test value, written to a file).
pub(crate) const PASS: &str = "correct horse battery staple (test)";

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) vault: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) pass: PathBuf,
}

impl Env {
    pub(crate) fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("v.sqlite");
        let state = dir.path().join("state");
        let pass = dir.path().join("pass.txt");
        write_private(&pass, PASS.as_bytes());
        Env {
            dir,
            vault,
            state,
            pass,
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file (0600) in the temporary directory.
    pub(crate) fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        write_private(&p, content.as_bytes());
        p
    }

    /// `strongroom` with a clean environment (HOME in the temporary directory), no option.
    pub(crate) fn clean(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strongroom"));
        for var in [
            "STRONGROOM_VAULT",
            "STRONGROOM_STATE_DIR",
            "STRONGROOM_PASSPHRASE_FILE",
            "STRONGROOM_PKCS11_PIN_FILE",
            "RUST_LOG",
            "XDG_DATA_HOME",
            "XDG_STATE_HOME",
        ] {
            c.env_remove(var);
        }
        c.env("HOME", self.dir.path());
        c
    }

    /// `strongroom --vault … --state-dir …` with a clean environment, no keyholder.
    pub(crate) fn bare(&self) -> Command {
        let mut c = self.clean();
        c.arg("--vault").arg(&self.vault);
        c.arg("--state-dir").arg(&self.state);
        c
    }

    /// `bare()` unlocking with the owner's passphrase file, constrained profile.
    pub(crate) fn sr(&self) -> Command {
        let mut c = self.bare();
        c.arg("--passphrase-file")
            .arg(&self.pass)
            .args(["--profile", "constrained"]);
        c
    }

    /// Creates the vault (owner `alice`, with a recovery key); returns init's stdout.
    pub(crate) fn init(&self) -> String {
        let out = self
            .sr()
            .args(["init", "--name", "alice"])
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    /// Creates the vault with `--json`; returns the parsed output.
    pub(crate) fn init_json(&self) -> serde_json::Value {
        let out = self
            .sr()
            .args(["init", "--name", "alice", "--json"])
            .assert()
            .success();
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    }

    pub(crate) fn put(&self, ns: &str, name: &str, value: &str) {
        self.sr()
            .args(["put", ns, name, "--stdin"])
            .write_stdin(value)
            .assert()
            .success();
    }

    pub(crate) fn get(&self, ns: &str, name: &str) -> String {
        let out = self.sr().args(["get", ns, name]).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }
}

/// Runs with `--json` and parses stdout.
pub(crate) fn json(mut cmd: Command) -> serde_json::Value {
    let out = cmd.arg("--json").assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&out.get_output().stdout)
        )
    })
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

pub(crate) fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh KEK from `strongroom kek generate`.
pub(crate) fn new_kek() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["kek", "generate"])
        .assert()
        .success();
    String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}
