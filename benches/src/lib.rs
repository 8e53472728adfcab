//! Shared harness for strongroom's benches and the `ratios` runner.
//!
//! The `ratios` runner (`cargo run --release -p strongroom-benches --bin ratios`) measures,
//! in one process and one run, an operation of strongroom and the raw limit it is built on
//! (raw `ring` AEAD, raw `rusqlite`, …), and prints one JSON line per case:
//!
//! ```text
//! {"case":"envelope/seal/1KiB","strongroom_ops_s":301234.5,"raw_ops_s":335000.1,"ratio":0.899,"target":0.7}
//! ```
//!
//! Ratios, not absolute numbers, are what is compared across machines: both sides see the
//! same CPU, the same noise and the same build.

pub mod ratios_envelope;
pub mod ratios_sharing;
pub mod ratios_store;
pub mod ratios_vault;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// How long each side of a ratio is measured by default.
pub const DEFAULT_MEASURE: Duration = Duration::from_millis(700);

/// One measured case of the `ratios` runner.
#[derive(Debug, Clone)]
pub struct Ratio {
    /// Case name, `area/op/size` (e.g. `envelope/seal/1KiB`).
    pub case: String,
    /// Operations per second through strongroom.
    pub strongroom_ops_s: f64,
    /// Operations per second of the raw limit (or the peer crate).
    pub raw_ops_s: f64,
    /// What the raw side is (`ring-aes256gcm`, `rusqlite`, `cocoon`, …).
    pub baseline: &'static str,
    /// The ratio the project aims for, if any.
    pub target: Option<f64>,
    /// Extra fields printed verbatim (already JSON-encoded values).
    pub extra: Vec<(&'static str, String)>,
}

impl Ratio {
    /// Builds a case from two measured throughputs.
    pub fn new(
        case: impl Into<String>,
        baseline: &'static str,
        strongroom_ops_s: f64,
        raw_ops_s: f64,
        target: Option<f64>,
    ) -> Self {
        Self {
            case: case.into(),
            strongroom_ops_s,
            raw_ops_s,
            baseline,
            target,
            extra: Vec::new(),
        }
    }

    /// strongroom / raw.
    pub fn ratio(&self) -> f64 {
        if self.raw_ops_s > 0.0 {
            self.strongroom_ops_s / self.raw_ops_s
        } else {
            0.0
        }
    }

    /// Adds an extra JSON field; `value` must already be valid JSON.
    #[must_use]
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// Whether the ratio meets its target (true when there is no target).
    pub fn meets_target(&self) -> bool {
        self.target.is_none_or(|t| self.ratio() >= t)
    }

    /// The case as one JSON line.
    pub fn to_json_line(&self) -> String {
        let mut s = format!(
            "{{\"case\":{},\"strongroom_ops_s\":{:.1},\"raw_ops_s\":{:.1},\"ratio\":{:.3},\"baseline\":{}",
            json_str(&self.case),
            self.strongroom_ops_s,
            self.raw_ops_s,
            self.ratio(),
            json_str(self.baseline)
        );
        if let Some(t) = self.target {
            let _ = write!(
                s,
                ",\"target\":{t},\"meets_target\":{}",
                self.meets_target()
            );
        }
        for (k, v) in &self.extra {
            let _ = write!(s, ",{}:{v}", json_str(k));
        }
        s.push('}');
        s
    }
}

/// Encodes a string as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `op` repeatedly for about `budget` and returns operations per second.
///
/// `op` returns how many operations it performed (so a batched op can count its rows).
/// A short warm-up precedes the measurement.
pub fn ops_per_sec<T>(budget: Duration, mut op: impl FnMut() -> (usize, T)) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        black_box(op());
    }
    let start = Instant::now();
    let mut n = 0usize;
    loop {
        let (k, out) = op();
        black_box(out);
        n += k;
        let el = start.elapsed();
        if el >= budget {
            return n as f64 / el.as_secs_f64();
        }
    }
}

/// Measures two sides interleaved (A, B, A, B, …, `rounds` times each) and returns the best
/// throughput of each side, which cancels most of the drift of a noisy machine.
pub fn compare<T, U>(
    rounds: usize,
    budget: Duration,
    mut strongroom: impl FnMut() -> (usize, T),
    mut raw: impl FnMut() -> (usize, U),
) -> (f64, f64) {
    let mut best_s = 0f64;
    let mut best_r = 0f64;
    for _ in 0..rounds.max(1) {
        best_r = best_r.max(ops_per_sec(budget, &mut raw));
        best_s = best_s.max(ops_per_sec(budget, &mut strongroom));
    }
    (best_s, best_r)
}

/// Human size label used in case names: `64B`, `1KiB`, `64KiB`, `1MiB`.
pub fn size_label(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_well_formed() {
        let r = Ratio::new("a/\"b\"", "raw", 10.0, 20.0, Some(0.4)).with("rss_mib", "12");
        let line = r.to_json_line();
        assert_eq!(
            line,
            "{\"case\":\"a/\\\"b\\\"\",\"strongroom_ops_s\":10.0,\"raw_ops_s\":20.0,\"ratio\":0.500,\"baseline\":\"raw\",\"target\":0.4,\"meets_target\":true,\"rss_mib\":12}"
        );
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(64), "64B");
        assert_eq!(size_label(1024), "1KiB");
        assert_eq!(size_label(64 * 1024), "64KiB");
        assert_eq!(size_label(1 << 20), "1MiB");
        assert_eq!(size_label(1000), "1000B");
    }
}
