//! `run`: what reaches the command's environment (the vault's key does not; names that
//! change how programs start need an explicit override).

#[path = "helpers/env.rs"]
mod env;

use env::{Env, new_kek, stderr};
use predicates::prelude::*;

/// `strongroom --kek-env ENCRYPTION_KEY …` with the key in the environment.
fn with_kek(e: &Env, kek: &str) -> assert_cmd::Command {
    let mut c = e.bare();
    c.env("ENCRYPTION_KEY", kek)
        .args(["--kek-env", "ENCRYPTION_KEY"]);
    c
}

#[test]
fn the_kek_env_variable_stays_out_of_the_command_unless_kept() {
    let e = Env::new();
    let kek = new_kek();
    with_kek(&e, &kek)
        .args(["init", "--name", "svc", "--no-recovery-key"])
        .assert()
        .success();
    with_kek(&e, &kek)
        .args(["put", "core/app", "DB_PASSWORD", "--stdin"])
        .write_stdin("hunter2")
        .assert()
        .success();
    // the secrets arrive, the key does not
    with_kek(&e, &kek)
        .args([
            "run",
            "--namespace",
            "core/app",
            "--",
            "sh",
            "-c",
            "test \"$DB_PASSWORD\" = hunter2 && test -z \"${ENCRYPTION_KEY+set}\"",
        ])
        .assert()
        .success();
    // other variables of strongroom's environment still arrive
    with_kek(&e, &kek)
        .env("UNRELATED_SETTING", "kept")
        .args([
            "run",
            "--namespace",
            "core/app",
            "--",
            "sh",
            "-c",
            "test \"$UNRELATED_SETTING\" = kept",
        ])
        .assert()
        .success();
    // explicitly kept
    with_kek(&e, &kek)
        .env("EXPECTED", &kek)
        .args([
            "run",
            "--namespace",
            "core/app",
            "--keep-kek-env",
            "--",
            "sh",
            "-c",
            "test \"$ENCRYPTION_KEY\" = \"$EXPECTED\"",
        ])
        .assert()
        .success();
}

#[test]
fn secrets_named_like_loader_or_shell_variables_are_refused_unless_allowed() {
    let e = Env::new();
    e.init();
    e.put("core/app", "TOKEN", "tok");
    e.put("core/app", "LD_LIBRARY_PATH", "/nonexistent-lib-dir");
    e.put("core/app", "PATH", "/usr/bin:/bin");
    let marker = e.path("started");
    let run = |extra: &[&str]| {
        let mut c = e.sr();
        c.args(["run", "--namespace", "core/app"])
            .args(extra)
            .args(["--", "/usr/bin/touch"])
            .arg(&marker);
        c
    };
    // refused, naming both (never a value), and nothing started
    let out = run(&[]).assert().code(1);
    let err = stderr(out.get_output());
    assert!(err.contains("LD_LIBRARY_PATH, PATH"), "{err}");
    assert!(err.contains("--allow-env-override"), "{err}");
    assert!(!err.contains("/nonexistent-lib-dir"), "{err}");
    assert!(!err.contains("/usr/bin:/bin"), "{err}");
    assert!(!err.contains("TOKEN"), "{err}");
    assert!(!marker.exists());
    // allowing one is not enough
    run(&["--allow-env-override", "PATH"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("named LD_LIBRARY_PATH:"));
    assert!(!marker.exists());
    // both allowed: started, with the values
    run(&[
        "--allow-env-override",
        "PATH",
        "--allow-env-override",
        "LD_LIBRARY_PATH",
    ])
    .assert()
    .success();
    assert!(marker.exists());
    let mut c = e.sr();
    c.args([
        "run",
        "--namespace",
        "core/app",
        "--allow-env-override",
        "PATH",
        "--allow-env-override",
        "LD_LIBRARY_PATH",
        "--",
        "/bin/sh",
        "-c",
        "test \"$LD_LIBRARY_PATH\" = /nonexistent-lib-dir && test \"$PATH\" = /usr/bin:/bin",
    ])
    .assert()
    .success();
}

/// Nothing that can locate or unlock the vault reaches the command: STRONGROOM_VAULT (a
/// PostgreSQL connection string may carry a password), STRONGROOM_PASSPHRASE_FILE,
/// STRONGROOM_PKCS11_PIN_FILE, STRONGROOM_STATE_DIR and every other STRONGROOM_* variable
/// are removed unless kept by name with --keep-env; a secret of the same name still
/// arrives.
#[test]
fn variables_that_locate_or_unlock_the_vault_stay_out_of_the_command() {
    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2");
    let pass = e.pass.display().to_string();
    let vault = e.vault.display().to_string();
    let state = e.state.display().to_string();
    let run = |extra: &[&str], script: &str| {
        let mut c = e.bare();
        c.env("STRONGROOM_VAULT", &vault)
            .env("STRONGROOM_STATE_DIR", &state)
            .env("STRONGROOM_PASSPHRASE_FILE", &pass)
            .env("STRONGROOM_PKCS11_PIN_FILE", "/run/secrets/pin")
            .env("STRONGROOM_SOMETHING_NEW", "x")
            .args(["--profile", "constrained", "run", "--namespace", "core/app"])
            .args(extra)
            .args(["--", "sh", "-c", script]);
        c
    };
    run(
        &[],
        "test \"$DB_PASSWORD\" = hunter2 \
         && test -z \"${STRONGROOM_VAULT+set}\" \
         && test -z \"${STRONGROOM_STATE_DIR+set}\" \
         && test -z \"${STRONGROOM_PASSPHRASE_FILE+set}\" \
         && test -z \"${STRONGROOM_PKCS11_PIN_FILE+set}\" \
         && test -z \"${STRONGROOM_SOMETHING_NEW+set}\"",
    )
    .assert()
    .success();
    // kept by name, one at a time
    run(
        &["--keep-env", "STRONGROOM_STATE_DIR"],
        "test -n \"$STRONGROOM_STATE_DIR\" && test -z \"${STRONGROOM_VAULT+set}\"",
    )
    .assert()
    .success();
    // a secret of the same name still reaches the command
    e.put("core/app", "STRONGROOM_VAULT", "the-secret-value");
    run(&[], "test \"$STRONGROOM_VAULT\" = the-secret-value")
        .assert()
        .success();
}
