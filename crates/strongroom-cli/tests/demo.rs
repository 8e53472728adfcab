//! `strongroom demo` runs end to end with no prompt and exits 0.

#[path = "helpers/env.rs"]
mod env;

#[test]
fn demo_runs_end_to_end() {
    let e = env::Env::new();
    let out = e.clean().arg("demo").assert().success();
    let text = env::stdout(out.get_output());
    for step in [
        "created vault",
        "RECOVERY KEY",
        "stored core/app/DB_PASSWORD version 2",
        "vault key rotated to epoch 2",
        "verified",
        "restored vault",
        "values match the vault",
        "the child sees DB_PASSWORD (7 characters)",
        "EXPOSURE: bob could read",
        "audit log verified",
        "[ ok ] decrypt",
        "demo finished",
    ] {
        assert!(
            text.contains(step),
            "{step:?} missing from the demo:\n{text}"
        );
    }
    // the demo directory is gone afterwards
    let dir = text
        .lines()
        .find_map(|l| l.split("$DEMO = ").nth(1))
        .unwrap()
        .trim();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was not removed");
}
