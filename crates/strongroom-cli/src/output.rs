//! Printing: JSON, times, ids, progress bars and the once-only recovery key.

use std::io::Write;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use serde_json::Value;
use zeroize::Zeroize;

use crate::keyholders::RecoveryText;

/// Prints pretty JSON to stdout, then zeroizes every string in it: some outputs carry a
/// secret (a new recovery key, `kek generate`, `get --show-value`), and none of them needs to
/// outlive the printing.
pub(crate) fn json(v: Value) -> Result<()> {
    json_to(&mut std::io::stdout().lock(), v)
}

/// [`json`] to `out` (a [`SecretOut`] when the value holds a secret shown once).
pub(crate) fn json_to(out: &mut dyn Write, mut v: Value) -> Result<()> {
    let printed = (|| {
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
        out.flush()
    })();
    scrub(&mut v);
    printed.context("cannot write to stdout")
}

/// Why a secret shown once cannot be shown on this standard output.
const STDOUT_LOST: &str = "standard output is closed or /dev/null, so the recovery key could not be shown: nothing was changed; run the command again with standard output on a terminal, a file or a pipe (or pass --no-recovery-key where the command has it)";

/// Standard output for a secret shown only once. `std::io::stdout()` treats a closed
/// descriptor as a sink that accepts everything, which would lose a recovery key without
/// a word: this is an unbuffered duplicate of descriptor 1 on which every failure (closed,
/// full disk, closed pipe) is an error the caller acts on. Open it before committing
/// anything, so a closed standard output stops the command first.
pub(crate) struct SecretOut(std::fs::File);

impl SecretOut {
    pub(crate) fn open() -> Result<Self> {
        use std::os::fd::AsFd;
        std::io::stdout()
            .flush()
            .context("cannot write to standard output")?;
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context(STDOUT_LOST)?;
        let file = std::fs::File::from(fd);
        // The Rust runtime reopens a closed descriptor 1 as /dev/null at start: a key
        // written there is as lost as one written to a closed descriptor.
        if is_dev_null(&file) {
            anyhow::bail!(STDOUT_LOST);
        }
        Ok(Self(file))
    }
}

fn is_dev_null(file: &std::fs::File) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (Ok(out), Ok(null)) = (file.metadata(), std::fs::metadata("/dev/null")) else {
        return false;
    };
    out.file_type().is_char_device() && out.rdev() == null.rdev()
}

impl Write for SecretOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Runs `show` (which prints a recovery key just added as keyholder `id`); when it fails,
/// removes that keyholder again, so the vault never keeps a key nobody saw.
pub(crate) fn show_or_remove(
    vault: &strongroom::Vault,
    id: [u8; 8],
    show: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let Err(e) = show() else {
        return Ok(());
    };
    match vault.remove_keyholder(&id) {
        Ok(()) => Err(e.context(
            "the recovery key could not be shown, so it was removed from the vault again (nothing else changed): run `strongroom recovery-key new` where its output can be read",
        )),
        Err(undo) => Err(e.context(format!(
            "the recovery key could not be shown, and removing it again failed ({undo}): remove keyholder {} with `strongroom keyholder remove` and create a new recovery key",
            hex::encode(id)
        ))),
    }
}

/// Zeroizes every string of a JSON value (object keys are names, not secrets).
fn scrub(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn time(t: u64) -> String {
    let days = t / 86_400;
    let secs = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40.cyan/blue}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A spinner with a running count on stderr, for work of unknown size.
pub(crate) fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}: {pos} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Prints a newly generated recovery key, once, to stdout, with what to do with it.
pub(crate) fn recovery_key(out: &mut dyn Write, rk: &RecoveryText, what: &str) -> Result<()> {
    let w = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(out)?;
        writeln!(
            out,
            "RECOVERY KEY for {what} (id {}), shown only this once:",
            rk.id
        )?;
        writeln!(out)?;
        writeln!(out, "    {}", rk.text.expose_secret())?;
        writeln!(out)?;
        writeln!(out, "The same key as 24 words:")?;
        // Written word by word: joining them would leave a copy of the key in a String.
        for (i, word) in rk.words.expose_secret().split(' ').enumerate() {
            let sep = match i % 6 {
                0 if i > 0 => "\n    ",
                0 => "    ",
                _ => " ",
            };
            write!(out, "{sep}{word}")?;
        }
        writeln!(out)?;
        writeln!(out)?;
        writeln!(
            out,
            "Write it down or print it and store it OFFLINE (a safe, not this computer). It is not"
        )?;
        writeln!(
            out,
            "stored anywhere: it opens the vault when every other keyholder is lost."
        )?;
        writeln!(out)?;
        out.flush()
    };
    w(out).context("cannot print the recovery key")
}

/// The recovery key as JSON fields (for --json output of the commands that create one).
pub(crate) fn recovery_key_json(rk: &RecoveryText) -> Value {
    serde_json::json!({
        "id": rk.id.to_string(),
        "text": rk.text.expose_secret(),
        "words": rk.words.expose_secret(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_zeroized_after_printing() {
        let mut v = serde_json::json!({
            "recovery_key": {"text": "SRK1Q-SECRET", "words": "abandon ability"},
            "list": ["value", 1, null, {"nested": "x"}],
            "n": 3,
        });
        scrub(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "recovery_key": {"text": "", "words": ""},
                "list": ["", 1, null, {"nested": ""}],
                "n": 3,
            })
        );
    }

    #[test]
    fn times() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
