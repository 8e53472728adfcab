//! The ratios runner: `cargo run --release -p strongroom-benches --bin ratios [-- FILTER]`.
//!
//! Prints one JSON line per case (see the crate docs), measuring strongroom and its raw limit
//! in the same run. `FILTER` keeps the cases whose name contains it. `RATIOS_MS` sets the
//! measuring time per side and round (default 700), `RATIOS_ROUNDS` the interleaved rounds
//! (default 5; the printed figures are the medians, see the crate docs). `ROTATE_N` sets the records of the vault rotation case (default 1 000 000;
//! a comma-separated list runs several sizes). The exit code is 0 even when a target is
//! missed: targets are reported, not enforced, because machines differ. Cases flagged
//! `"suspect"` are listed again on stderr at the end: do not quote them.

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // One side of the vault rotation case, run in a fresh process for its peak RSS.
    if args.get(1).map(String::as_str) == Some(strongroom_benches::ratios_vault::ROTATE_CHILD_ARG) {
        strongroom_benches::ratios_vault::rotate_child(&args[2..]);
        return;
    }
    let filter = std::env::args().nth(1).unwrap_or_default();
    let ms: u64 = std::env::var("RATIOS_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(700);
    let rounds: usize = std::env::var("RATIOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let budget = Duration::from_millis(ms);
    let wants = |area: &str| filter.is_empty() || area.contains(&filter) || filter.contains(area);
    let mut all = Vec::new();
    if wants("envelope") {
        all.extend(strongroom_benches::ratios_envelope::cases(budget, rounds));
    }
    if wants("sharing") {
        all.extend(strongroom_benches::ratios_sharing::cases(budget, rounds));
    }
    if wants("store") {
        all.extend(strongroom_benches::ratios_store::cases(budget, rounds));
    }
    if wants("vault") {
        all.extend(strongroom_benches::ratios_vault::cases(budget, rounds));
    }
    let shown: Vec<_> = all.iter().filter(|r| r.case.contains(&filter)).collect();
    for r in &shown {
        println!("{}", r.to_json_line());
    }
    let suspect: Vec<&str> = shown
        .iter()
        .filter(|r| r.suspect())
        .map(|r| r.case.as_str())
        .collect();
    if !suspect.is_empty() {
        eprintln!(
            "suspect (a ratio above 1.0 against a baseline doing a subset of the work, or rounds \
             more than 25 % apart; re-run on a quiet machine): {}",
            suspect.join(", ")
        );
    }
}
