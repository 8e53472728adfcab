//! Reading secrets: from a no-echo prompt, standard input or a file. Never from argv.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};

/// Largest secret read from stdin or a file: the vault's own value limit (64 MiB).
const MAX_INPUT: usize = strongroom::MAX_VALUE_LEN;

/// The least free space a read from standard input is given: std's stdin reader skips its
/// own 8 KiB buffer for reads at least that large, so the bytes land in the zeroizing
/// buffer only instead of also in a buffer that is never cleared.
const MIN_STDIN_ROOM: usize = 8 << 10;

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
    read_secret(
        std::io::stdin().lock(),
        &format!("the {what} on standard input"),
    )
}

/// Reads a stream of secret bytes (a decrypting reader) to its end, the way stdin is read.
pub(crate) fn read_secret(reader: impl Read, source: &str) -> Result<Bytes> {
    read_all(reader, 2 * MIN_STDIN_ROOM, MIN_STDIN_ROOM, source)
}

/// Reads a file whole, into a buffer sized from its metadata (one byte more, to notice a
/// file that grows while it is read).
pub(crate) fn file_bytes(path: &Path, what: &str) -> Result<Bytes> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open the {what} file {}", path.display()))?;
    let source = format!("the {what} file {}", path.display());
    let meta = f
        .metadata()
        .with_context(|| format!("cannot read {source}"))?;
    if !meta.is_file() {
        // A pipe or device (`/dev/stdin`, `<(…)`): no size to go by.
        return read_secret(f, &source);
    }
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if size > MAX_INPUT {
        bail!("{source} is larger than {} MiB", MAX_INPUT >> 20);
    }
    read_all(f, size + 1, 1, &source)
}

/// Reads `reader` to its end into zeroizing memory, starting with `initial` bytes and
/// giving each read at least `min_room` free bytes (less only at the size limit).
///
/// `read_to_end` into a `Vec` would reallocate as it grows and free each old buffer, a
/// copy of the secret so far, without clearing it. Here a full buffer is replaced by hand:
/// a new zeroized buffer twice the size receives the bytes, and the old one is zeroized as
/// it is dropped.
fn read_all(mut reader: impl Read, initial: usize, min_room: usize, source: &str) -> Result<Bytes> {
    const LIMIT: usize = MAX_INPUT + 1;
    let mut buf: Bytes = Zeroizing::new(vec![0; initial.clamp(1, LIMIT)]);
    let mut filled = 0;
    loop {
        if buf.len() - filled < min_room && buf.len() < LIMIT {
            let len = (buf.len() * 2).max(filled + min_room).min(LIMIT);
            let mut bigger: Bytes = Zeroizing::new(vec![0; len]);
            bigger[..filled].copy_from_slice(&buf[..filled]);
            buf = bigger;
        }
        if filled == buf.len() {
            bail!("{source} is larger than {} MiB", MAX_INPUT >> 20);
        }
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {source}")),
        }
    }
    buf.truncate(filled);
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

/// Wraps a `String` holding a secret. `SecretString::from` would shrink one with spare
/// capacity (a line read from the terminal has some) by reallocating, freeing the old buffer
/// unzeroized: the text is copied into an exact allocation and the original zeroized.
pub(crate) fn into_secret(mut s: String) -> SecretString {
    if s.capacity() == s.len() {
        return SecretString::from(s);
    }
    let exact = exact_copy(&s);
    s.zeroize();
    SecretString::from(exact)
}

/// A copy of `s` with no spare capacity (`str::to_owned` allocates exactly its length).
pub(crate) fn exact_copy(s: &str) -> String {
    s.to_owned()
}

/// UTF-8 text of secret bytes.
pub(crate) fn text(b: &Bytes, what: &str) -> Result<SecretString> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(SecretString::from(exact_copy(s))),
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
    let s = into_secret(s);
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

    /// A reader serving `data` in chunks of at most `chunk` bytes, recording the smallest
    /// room it was given.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
        smallest_room: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.data.is_empty() {
                return Ok(0);
            }
            self.smallest_room = self.smallest_room.min(buf.len());
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn stdin_reads_always_have_room_to_skip_the_std_buffer() {
        for len in [0, 1, 100, MIN_STDIN_ROOM, 3 * MIN_STDIN_ROOM + 5, 300_000] {
            let data = pattern(len);
            let mut r = Chunked {
                data: &data,
                chunk: 3000,
                smallest_room: usize::MAX,
            };
            let got = read_all(&mut r, 2 * MIN_STDIN_ROOM, MIN_STDIN_ROOM, "test input").unwrap();
            assert_eq!(got.as_slice(), data.as_slice(), "{len}");
            assert!(
                r.smallest_room >= MIN_STDIN_ROOM,
                "{len}: {}",
                r.smallest_room
            );
        }
    }

    #[test]
    fn file_buffer_is_sized_from_the_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value");
        let data = pattern(100_000);
        std::fs::write(&path, &data).unwrap();
        let got = file_bytes(&path, "value").unwrap();
        assert_eq!(got.as_slice(), data.as_slice());
        // One allocation of exactly size + 1: never reallocated while reading.
        assert_eq!(got.capacity(), data.len() + 1);
        std::fs::write(&path, b"").unwrap();
        assert!(file_bytes(&path, "value").unwrap().is_empty());
    }

    #[test]
    fn input_that_outgrows_its_first_buffer_is_read_whole() {
        // a file that grew after its size was taken: more bytes than the initial buffer
        let data = pattern(70_000);
        let mut r = Chunked {
            data: &data,
            chunk: 4096,
            smallest_room: usize::MAX,
        };
        let got = read_all(&mut r, 10, 1, "test input").unwrap();
        assert_eq!(got.as_slice(), data.as_slice());
    }

    #[test]
    fn input_over_the_limit_is_refused() {
        let err = read_all(
            std::io::repeat(b'x'),
            2 * MIN_STDIN_ROOM,
            MIN_STDIN_ROOM,
            "the value on standard input",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the value on standard input is larger than 64 MiB"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_INPUT as u64 + 1).unwrap();
        let err = file_bytes(&path, "value").unwrap_err().to_string();
        assert!(err.ends_with("is larger than 64 MiB"), "{err}");
        f.set_len(MAX_INPUT as u64).unwrap();
        assert_eq!(file_bytes(&path, "value").unwrap().len(), MAX_INPUT);
    }

    #[test]
    fn secrets_are_wrapped_from_exact_copies() {
        let mut s = String::with_capacity(100);
        s.push_str("hunter2");
        assert_eq!(into_secret(s).expose_secret(), "hunter2");
        let c = exact_copy("correct horse");
        assert_eq!(c.capacity(), c.len());
    }
}
