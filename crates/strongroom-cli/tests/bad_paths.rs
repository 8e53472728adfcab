//! Output failures and bad vault paths get accurate errors, and leave nothing behind that
//! nobody saw: a recovery key that could not be printed does not open the vault.

#[path = "helpers/env.rs"]
mod env;

use std::process::{Command, Stdio};

use env::{Env, json, stderr};

/// `strongroom` as `Env::sr` builds it, as a plain `std::process::Command` (for control of
/// its standard output).
fn sr_std(e: &Env) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    for var in [
        "STRONGROOM_VAULT",
        "STRONGROOM_STATE_DIR",
        "STRONGROOM_PASSPHRASE_FILE",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c.env("HOME", e.dir.path())
        .arg("--vault")
        .arg(&e.vault)
        .arg("--state-dir")
        .arg(&e.state)
        .arg("--passphrase-file")
        .arg(&e.pass)
        .args(["--profile", "constrained"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn recovery_keyholders(e: &Env) -> usize {
    let list = json({
        let mut c = e.sr();
        c.args(["keyholder", "list"]);
        c
    });
    list.as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "recovery-key")
        .count()
}

fn assert_refused_and_undone(out: &std::process::Output, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "{what}: {err}"
    );
    assert!(!err.contains("RECOVERY KEY"), "{what}: {err}");
}

#[test]
fn init_with_stdout_on_a_full_disk_keeps_no_unseen_recovery_key() {
    let e = Env::new();
    let out = sr_std(&e)
        .args(["init", "--name", "alice"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_refused_and_undone(&out, "/dev/full");
    assert!(
        stderr(&out).contains("so no vault was created"),
        "{}",
        stderr(&out)
    );
    // The vault and its keyholders are created in one commit after the key was shown:
    // nothing was created, and a second init where the output can be read works.
    assert_no_vault_then_init(&e);
}

/// No vault exists at `e`'s path (the unseen recovery key opens nothing), and `init` there
/// works.
fn assert_no_vault_then_init(e: &Env) {
    let status = e.sr().arg("status").output().unwrap();
    assert_eq!(status.status.code(), Some(1));
    e.init();
    assert_eq!(recovery_keyholders(e), 1);
    e.put("app", "k", "v");
}

#[test]
fn init_into_a_closed_pipe_keeps_no_unseen_recovery_key() {
    let e = Env::new();
    let mut child = sr_std(&e)
        .args(["init", "--name", "alice"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the key is printed (key derivation comes first).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_refused_and_undone(&out, "closed pipe");
    assert_no_vault_then_init(&e);
}

#[test]
fn init_with_stdout_closed_changes_nothing() {
    let e = Env::new();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"exec "$0" "$@" >&-"#)
        .arg(env!("CARGO_BIN_EXE_strongroom"));
    let inner = sr_std(&e);
    c.args(inner.get_args())
        .args(["init", "--name", "alice"])
        .env("HOME", e.dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let out = c.output().unwrap();
    assert_refused_and_undone(&out, "closed stdout");
    assert!(
        stderr(&out).contains("standard output is closed"),
        "{}",
        stderr(&out)
    );
    assert!(
        !e.vault.exists(),
        "nothing is created before the key can be shown"
    );
}

#[test]
fn recovery_key_new_with_stdout_on_a_full_disk_is_undone() {
    let e = Env::new();
    e.init();
    assert_eq!(recovery_keyholders(&e), 1);
    let out = sr_std(&e)
        .args(["recovery-key", "new"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_refused_and_undone(&out, "recovery-key new");
    // The old recovery key stays; the new one, never shown, is gone.
    assert_eq!(recovery_keyholders(&e), 1);
}

#[test]
fn commands_on_an_empty_or_wrong_path_change_nothing() {
    let e = Env::new();
    std::fs::write(&e.vault, b"").unwrap();
    for args in [&["status"][..], &["get", "app", "k"], &["doctor"]] {
        let out = e.sr().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("empty file, not a strongroom vault"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::metadata(&e.vault).unwrap().len(), 0, "{args:?}");
    }
    // `init` makes the vault in it (a power cut during an earlier init can leave one).
    e.init();
    e.sr().arg("status").assert().success();
    let out = e
        .clean()
        .arg("--vault")
        .arg(e.dir.path())
        .arg("--state-dir")
        .arg(&e.state)
        .arg("status")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is a directory"), "{err}");
    assert!(!err.contains("retry"), "{err}");
}

/// `doctor` checks that the vault's files are private: a vault made readable by others
/// (a `chmod`, a copy, an unpacked backup) is a warning naming the file and what to do.
#[test]
fn doctor_warns_about_a_vault_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    e.init();
    let finding = |e: &Env| {
        let out = e.sr().args(["doctor", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let f = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "file-mode")
            .cloned()
            .expect("doctor checks the file modes");
        (out.status.code(), f)
    };
    let (_, ok) = finding(&e);
    assert_eq!(ok["level"], "ok", "{ok}");
    std::fs::set_permissions(&e.vault, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, warn) = finding(&e);
    assert_eq!(code, Some(1), "a warning");
    assert_eq!(warn["level"], "warn", "{warn}");
    let msg = warn["message"].as_str().unwrap();
    assert!(
        msg.contains("mode 0644") && msg.contains("chmod 600"),
        "{msg}"
    );
    assert!(msg.contains(&e.vault.display().to_string()), "{msg}");
}
