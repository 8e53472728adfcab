//! The no-echo prompts, driven through a pseudo-terminal (`script` from util-linux). Without
//! `script` the test prints `SKIPPED:` and passes.

#[path = "helpers/env.rs"]
mod env;

use std::io::Write;
use std::process::{Command, Stdio};

use env::Env;

/// Runs `strongroom <args>` on a pseudo-terminal fed with `input`; returns (exit code,
/// everything the terminal showed).
fn on_tty(e: &Env, args: &str, input: &str) -> (i32, String) {
    let line = format!(
        "{} --vault {} --state-dir {} --profile constrained {args}",
        env!("CARGO_BIN_EXE_strongroom"),
        e.vault.display(),
        e.state.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HOME", e.dir.path())
        .env_remove("STRONGROOM_PASSPHRASE_FILE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    (out.status.code().unwrap_or(-1), shown)
}

#[test]
fn passphrases_and_values_are_prompted_on_a_terminal() {
    let have_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: prompts: `script` (util-linux) not found"
        );
        return;
    }
    let e = Env::new();
    let pass = "a passphrase typed at the prompt";
    // two different passphrases: refused, nothing created
    let (code, shown) = on_tty(
        &e,
        "init --no-recovery-key",
        &format!("{pass}\nsomething else\n"),
    );
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("New passphrase:"), "{shown}");
    assert!(shown.contains("differ"), "{shown}");
    // typed twice: created
    let (code, shown) = on_tty(&e, "init --no-recovery-key", &format!("{pass}\n{pass}\n"));
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("New passphrase again:"), "{shown}");
    // the passphrase and then the value are prompted for
    let (code, shown) = on_tty(&e, "put ns A", &format!("{pass}\nvalue-typed-in\n"));
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("Passphrase:"), "{shown}");
    assert!(shown.contains("Value of ns/A:"), "{shown}");
    let (code, shown) = on_tty(&e, "get ns A", &format!("{pass}\n"));
    assert_eq!(code, 0, "{shown}");
    assert!(shown.trim_end().ends_with("value-typed-in"), "{shown}");
    // a wrong passphrase at the prompt
    let (code, shown) = on_tty(&e, "get ns A", "wrong passphrase\n");
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("wrong passphrase"), "{shown}");
}
