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
//!
//! # How a ratio is measured, and when not to trust it
//!
//! [`compare`] runs the two sides in interleaved rounds, alternating which side goes first
//! (raw, strongroom; strongroom, raw; …), so that drift of a noisy machine (frequency
//! scaling, another process) falls on both. Each round gives one ratio; the printed
//! throughputs and ratio are the **medians** over the rounds, and `spread` is
//! `(max − min) / median` of the per-round ratios.
//!
//! Most baselines do a *subset* of strongroom's work (the raw AEAD under a seal, the raw
//! SQLite statement under a put), so a ratio above 1.0 against one of them cannot be real:
//! it is a measurement bug (a baseline doing more than it should, a cache only one side
//! hits, noise). Such a case, and any case whose rounds disagree by more than 25 %, is
//! printed with `"suspect":true`; do not quote its figure. Cases against a *peer* (another
//! crate doing comparable work, such as `cocoon` or `age`) carry `"peer":true` and may
//! exceed 1.0 legitimately.

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
    /// strongroom / raw of each interleaved round (empty when not measured by [`compare`]).
    pub rounds: Vec<f64>,
    /// Whether the baseline is a peer doing comparable work (a ratio above 1.0 is then
    /// possible) rather than a subset of strongroom's work.
    pub peer: bool,
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
            rounds: Vec::new(),
            peer: false,
        }
    }

    /// Builds a case from a [`compare`] measurement: its median throughputs and the ratio
    /// of each round (so the spread is reported and checked).
    pub fn measured(
        case: impl Into<String>,
        baseline: &'static str,
        m: &Measured,
        target: Option<f64>,
    ) -> Self {
        let mut r = Self::new(case, baseline, m.strongroom_ops_s, m.raw_ops_s, target);
        r.rounds.clone_from(&m.round_ratios);
        r
    }

    /// Marks the baseline as a peer doing comparable work, not a subset of strongroom's.
    #[must_use]
    pub fn peer(mut self) -> Self {
        self.peer = true;
        self
    }

    /// `(max − min) / median` of the per-round ratios, if there were at least two rounds.
    pub fn spread(&self) -> Option<f64> {
        if self.rounds.len() < 2 {
            return None;
        }
        let med = median(&self.rounds);
        if med <= 0.0 {
            return None;
        }
        let max = self.rounds.iter().copied().fold(f64::MIN, f64::max);
        let min = self.rounds.iter().copied().fold(f64::MAX, f64::min);
        Some((max - min) / med)
    }

    /// Whether the figure should not be trusted: a ratio above 1.0 against a baseline
    /// doing a subset of the work, or rounds more than 25 % apart.
    pub fn suspect(&self) -> bool {
        (!self.peer && self.ratio() > 1.0) || self.spread().is_some_and(|s| s > 0.25)
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
        if !self.rounds.is_empty() {
            let rounds: Vec<String> = self.rounds.iter().map(|r| format!("{r:.3}")).collect();
            let _ = write!(s, ",\"rounds\":[{}]", rounds.join(","));
        }
        if let Some(spread) = self.spread() {
            let _ = write!(s, ",\"spread\":{spread:.3}");
        }
        if self.peer {
            s.push_str(",\"peer\":true");
        }
        if self.suspect() {
            s.push_str(",\"suspect\":true");
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

/// The result of [`compare`]: median throughputs and the ratio of each round.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Median operations per second through strongroom.
    pub strongroom_ops_s: f64,
    /// Median operations per second of the baseline.
    pub raw_ops_s: f64,
    /// strongroom / baseline of each round, in order.
    pub round_ratios: Vec<f64>,
}

/// The median of `xs` (the mean of the two middle values for an even count; 0 when empty).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        f64::midpoint(v[mid - 1], v[mid])
    } else {
        v[mid]
    }
}

/// Measures two sides in `rounds` interleaved rounds, alternating which side runs first,
/// and returns the median throughput of each side with the ratio of every round (see the
/// crate documentation).
pub fn compare<T, U>(
    rounds: usize,
    budget: Duration,
    mut strongroom: impl FnMut() -> (usize, T),
    mut raw: impl FnMut() -> (usize, U),
) -> Measured {
    let rounds = rounds.max(1);
    let mut s_all = Vec::with_capacity(rounds);
    let mut r_all = Vec::with_capacity(rounds);
    let mut round_ratios = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let (s, r) = if i % 2 == 0 {
            let r = ops_per_sec(budget, &mut raw);
            (ops_per_sec(budget, &mut strongroom), r)
        } else {
            let s = ops_per_sec(budget, &mut strongroom);
            (s, ops_per_sec(budget, &mut raw))
        };
        s_all.push(s);
        r_all.push(r);
        round_ratios.push(if r > 0.0 { s / r } else { 0.0 });
    }
    Measured {
        strongroom_ops_s: median(&s_all),
        raw_ops_s: median(&r_all),
        round_ratios,
    }
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
    fn medians() {
        assert!(median(&[]).abs() < f64::EPSILON);
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < f64::EPSILON);
    }

    #[test]
    fn spread_and_suspect() {
        let m = Measured {
            strongroom_ops_s: 85.0,
            raw_ops_s: 100.0,
            round_ratios: vec![0.80, 0.85, 0.90],
        };
        let r = Ratio::measured("c", "raw", &m, None);
        assert!((r.ratio() - 0.85).abs() < 1e-12);
        assert!((r.spread().unwrap() - 0.10 / 0.85).abs() < 1e-12);
        assert!(!r.suspect());
        let line = r.to_json_line();
        assert!(line.contains("\"rounds\":[0.800,0.850,0.900]"), "{line}");
        assert!(line.contains("\"spread\":0.118"), "{line}");
        assert!(!line.contains("suspect"), "{line}");

        // Above 1.0 against a subset baseline: a measurement bug, flagged.
        let over = Ratio::new("c", "raw", 110.0, 100.0, None);
        assert!(over.suspect());
        assert!(over.to_json_line().ends_with(",\"suspect\":true}"));
        // The same against a peer is possible.
        assert!(!over.clone().peer().suspect());
        // Rounds too far apart.
        let noisy = Measured {
            strongroom_ops_s: 50.0,
            raw_ops_s: 100.0,
            round_ratios: vec![0.40, 0.50, 0.70],
        };
        assert!(Ratio::measured("c", "raw", &noisy, None).suspect());
    }

    #[test]
    fn compare_interleaves_and_counts_every_round() {
        let mut order = Vec::new();
        let order_cell = std::cell::RefCell::new(&mut order);
        let m = compare(
            4,
            Duration::from_millis(2),
            || {
                order_cell.borrow_mut().push('s');
                (1, ())
            },
            || {
                order_cell.borrow_mut().push('r');
                (1, ())
            },
        );
        assert_eq!(m.round_ratios.len(), 4);
        assert!(m.strongroom_ops_s > 0.0 && m.raw_ops_s > 0.0);
        // Collapse each side's run of calls: rounds alternate which side goes first.
        let mut runs: Vec<char> = order.clone();
        runs.dedup();
        assert_eq!(runs.iter().collect::<String>(), "rsrsr");
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
