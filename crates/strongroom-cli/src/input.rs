//! Reading secrets: from a no-echo prompt, standard input or a file. Never from argv.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Largest secret read from stdin or a file (the vault's own value limit is 64 MiB).
const MAX_INPUT: u64 = 64 << 20;

static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Secret bytes read from somewhere, zeroized on drop.
pub(crate) type Bytes = Zeroizing<Vec<u8>>;

/// Reads all of standard input (once per process: stdin can carry one secret).
pub(crate) fn stdin_bytes(what: &str) -> Result<Bytes> {
    if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
        bail!(
            "standard input can supply only one secret per command; read the {what} from a file instead"
        );
    }
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    if buf.len() as u64 > MAX_INPUT {
        bail!("the {what} on standard input is larger than 64 MiB");
    }
    Ok(buf)
}

/// Reads a file whole.
pub(crate) fn file_bytes(path: &Path, what: &str) -> Result<Bytes> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open the {what} file {}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    if buf.len() as u64 > MAX_INPUT {
        bail!("the {what} file {} is larger than 64 MiB", path.display());
    }
    Ok(buf)
}

/// Drops one trailing `\n` or `\r\n`.
pub(crate) fn trim_newline(mut b: Bytes) -> Bytes {
    if b.last() == Some(&b'\n') {
        b.pop();
        if b.last() == Some(&b'\r') {
            b.pop();
        }
    }
    b
}

/// UTF-8 text of secret bytes.
pub(crate) fn text(b: &Bytes, what: &str) -> Result<SecretString> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(SecretString::from(s.to_owned())),
        Err(_) => bail!("the {what} is not valid UTF-8 text"),
    }
}

/// A passphrase (or PIN) from a file: the whole file minus one trailing newline.
pub(crate) fn secret_from_file(path: &Path, what: &str) -> Result<SecretString> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            eprintln!(
                "warning: the {what} file {} is readable by every user; `chmod 600` it",
                path.display()
            );
        }
    }
    let s = text(&trim_newline(file_bytes(path, what)?), what)?;
    if s.expose_secret().is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(s)
}

/// A passphrase (or PIN) from standard input, minus one trailing newline.
pub(crate) fn secret_from_stdin(what: &str) -> Result<SecretString> {
    let s = text(&trim_newline(stdin_bytes(what)?), what)?;
    if s.expose_secret().is_empty() {
        bail!("the {what} on standard input is empty");
    }
    Ok(s)
}

/// Whether a prompt is possible.
pub(crate) fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

/// Prompts without echo for `what` (lowercase, e.g. "passphrase").
pub(crate) fn prompt(what: &str, hint: &str) -> Result<SecretString> {
    if !can_prompt() {
        bail!("no {what} given, and standard input is not a terminal to prompt for it: {hint}");
    }
    let mut label = what.to_owned();
    if let Some(first) = label.get(..1) {
        label.replace_range(..1, &first.to_uppercase());
    }
    let s = rpassword::prompt_password(format!("{label}: "))
        .with_context(|| format!("cannot read the {what} from the terminal"))?;
    let s = SecretString::from(s);
    if s.expose_secret().is_empty() {
        bail!("empty {what}");
    }
    Ok(s)
}

/// Prompts twice for a new secret and checks both match.
pub(crate) fn prompt_new(what: &str, hint: &str) -> Result<SecretString> {
    let first = prompt(&format!("new {what}"), hint)?;
    let again = prompt(&format!("new {what} again"), hint)?;
    if first.expose_secret() != again.expose_secret() {
        bail!("the two {what}s differ; nothing was changed");
    }
    Ok(first)
}

/// Warns about a short new passphrase (it is still accepted).
pub(crate) fn check_new_passphrase(p: &SecretString) {
    if p.expose_secret().chars().count() < 10 {
        eprintln!(
            "warning: this passphrase is shorter than 10 characters; a few random words are stronger"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_trimming() {
        let t = |s: &[u8]| trim_newline(Zeroizing::new(s.to_vec())).to_vec();
        assert_eq!(t(b"abc\n"), b"abc");
        assert_eq!(t(b"abc\r\n"), b"abc");
        assert_eq!(t(b"abc\n\n"), b"abc\n");
        assert_eq!(t(b"abc"), b"abc");
        assert_eq!(t(b""), b"");
    }
}
