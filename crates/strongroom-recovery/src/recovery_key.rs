//! The one-time recovery key: 256 random bits, a checksummed text form, a 24-word form.
//!
//! The stanza body is specified in `docs/spec/stanza.md`.

use core::fmt;
use core::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, UncheckedHrpstring};
use bech32::{Bech32m, Hrp};
use secrecy::SecretString;
use strongroom_crypto::aead::{WRAPPED_KEY_LEN, WrapKey, unwrap_key, wrap_key};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{CryptoError, DecodeError, Key256, kdf};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::ParseRecoveryKeyError;
use crate::exact;
use crate::keyholder::{Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext, stanza_aad};

const ID_LABEL: &str = "strongroom/v1/recovery-key-id";
const WRAP_LABEL: &str = "strongroom/v1/recovery-key-wrap";

/// The bech32m human-readable part; with the separator, every key text starts `srk1`.
const HRP: &str = "srk";
const PREFIX: &str = "srk1";
/// Version of the text form (the first payload byte).
const TEXT_VERSION: u8 = 1;
/// version (1) ‖ key id (4) ‖ key (32)
const PAYLOAD_LEN: usize = 1 + RecoveryKeyId::LEN + 32;
/// `srk1` + 60 data characters (296 bits, 4 zero padding bits) + 6 checksum characters.
pub(crate) const TEXT_LEN: usize = 70;
const GROUP: usize = 5;
/// The bech32 alphabet (BIP 173), in value order.
const ALPHABET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// The body version of a recovery-key stanza.
pub(crate) const BODY_VERSION: u8 = 1;
const BODY_LEN: usize = 1 + WRAPPED_KEY_LEN;

/// The short, non-secret id of a [`RecoveryKey`]: 4 bytes derived with HKDF-SHA256 under
/// the label `strongroom/v1/recovery-key-id`, shown as `ABCD-1234`.
///
/// It is printed next to the key and stored as the first 4 bytes of the key's stanza id,
/// so an operator can match a printed key to the vault it opens without typing the key in
/// ([`RecoveryKeyId::of_stanza`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecoveryKeyId([u8; 4]);

impl RecoveryKeyId {
    /// Length in bytes.
    pub const LEN: usize = 4;

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        Self(bytes)
    }

    /// The id of the recovery key that wrote `stanza`, read from its stanza id (no key
    /// needed), or `None` for a stanza of another kind.
    pub fn of_stanza(stanza: &Stanza) -> Option<Self> {
        (stanza.kind == KeyholderKind::RecoveryKey).then(|| {
            let mut id = [0u8; 4];
            id.copy_from_slice(&stanza.id[..4]);
            Self(id)
        })
    }
}

impl fmt::Display for RecoveryKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.0;
        write!(f, "{:02X}{:02X}-{:02X}{:02X}", id[0], id[1], id[2], id[3])
    }
}

impl fmt::Debug for RecoveryKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryKeyId({self})")
    }
}

impl FromStr for RecoveryKeyId {
    type Err = ParseRecoveryKeyError;

    /// Parses `ABCD-1234` (case, spaces and dashes ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let mut out = [0u8; 4];
        hex::decode_to_slice(&compact, &mut out)
            .map_err(|_| ParseRecoveryKeyError::InvalidKeyId)?;
        Ok(Self(out))
    }
}

/// A one-time recovery key: 256 random bits that wrap a key with HKDF-SHA256 and
/// XChaCha20-Poly1305 (no slow KDF: the key is already full-entropy).
///
/// Shown once to the user, never stored: only its stanza is. The key and its text are
/// secrets: zeroized on drop, `Debug` shows only the [`RecoveryKeyId`], there is no
/// `Display`; [`RecoveryKey::to_text`] and [`RecoveryKey::to_words`] return
/// [`SecretString`]s.
///
/// # Text form, version 1
///
/// ```text
/// SRK1Q-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX
/// ```
///
/// bech32m (BIP 350) with human-readable part `srk`, over the payload
/// `version (1 byte, = 1) ‖ key id (4 bytes) ‖ key (32 bytes)`: 70 characters, shown
/// uppercase in 14 groups of 5 separated by dashes. The checksum detects any error in up to
/// four characters; [`RecoveryKey::parse`] ignores case, spaces and dashes, and when the
/// checksum fails it names the group holding a mistyped character or a swapped pair.
///
/// # Word form
///
/// The 32 key bytes as 24 words of the BIP 39 English list (the list's own 8-bit checksum
/// included). It carries no version and a weaker checksum: prefer the text form, and
/// compare the [`RecoveryKeyId`] after parsing.
///
/// # Stanza body, version 1 (73 bytes)
///
/// ```text
/// offset  size  field
/// 0       1     body version = 1
/// 1       24    XChaCha20-Poly1305 nonce (random per wrap)
/// 25      32    wrapped key
/// 57      16    Poly1305 tag
/// ```
///
/// - Stanza id: `HKDF-SHA256(ikm = key, info = "strongroom/v1/recovery-key-id")[0..8]`; its
///   first 4 bytes are the [`RecoveryKeyId`]. A different key therefore recognises the
///   stanza is not its own without decrypting anything.
/// - Wrapping key: `HKDF-SHA256(ikm = key, info = "strongroom/v1/recovery-key-wrap" ‖ 0x00)`.
/// - Associated data: [`stanza_aad`]`(RecoveryKey, stanza id, body[0..1], ctx)`.
pub struct RecoveryKey {
    key: Key256,
    stanza_id: [u8; 8],
}

impl RecoveryKey {
    /// A fresh recovery key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        Key256::generate().map(Self::from_key)
    }

    fn from_key(key: Key256) -> Self {
        let mut stanza_id = [0u8; 8];
        kdf::hkdf_sha256(
            None,
            key.expose_secret(),
            &[ID_LABEL.as_bytes()],
            &mut stanza_id,
        )
        .unwrap_or_else(|_| unreachable!("8 bytes is a valid HKDF-SHA256 length"));
        Self { key, stanza_id }
    }

    /// The non-secret id, to print next to the key and to match it to a vault.
    pub fn key_id(&self) -> RecoveryKeyId {
        let mut id = [0u8; 4];
        id.copy_from_slice(&self.stanza_id[..4]);
        RecoveryKeyId(id)
    }

    /// The stanza id this key writes and recognises.
    pub fn stanza_id(&self) -> [u8; 8] {
        self.stanza_id
    }

    /// The text form: `SRK1Q-XXXXX-…`, 14 uppercase groups of 5.
    pub fn to_text(&self) -> SecretString {
        SecretString::from(self.text_exact())
    }

    /// The text form in an allocation of exactly its length (`SecretString::from` would
    /// otherwise reallocate and free an unzeroized copy).
    fn text_exact(&self) -> String {
        let compact = encode_compact(TEXT_VERSION, self.key_id(), &self.key);
        // 70 characters in 14 groups: 13 dashes.
        let mut out = String::with_capacity(TEXT_LEN + TEXT_LEN / GROUP - 1);
        for (i, c) in compact.chars().enumerate() {
            if i > 0 && i % GROUP == 0 {
                out.push('-');
            }
            out.push(c.to_ascii_uppercase());
        }
        exact::exact(out)
    }

    /// The 24-word form (BIP 39 English word list, lowercase, single spaces).
    pub fn to_words(&self) -> SecretString {
        SecretString::from(self.words_exact())
    }

    /// The word form in an allocation of exactly its length: built in a buffer sized for
    /// the longest words (8 letters), then copied out exactly and zeroized.
    fn words_exact(&self) -> String {
        // The words encode the key; the mnemonic (bip39's `zeroize` feature) and the
        // buffers here are zeroized when dropped.
        let m =
            bip39::Mnemonic::from_entropy_in(bip39::Language::English, self.key.expose_secret())
                .unwrap_or_else(|_| unreachable!("32 bytes is a valid BIP 39 entropy length"));
        let mut out = String::with_capacity(24 * 9);
        for (i, w) in m.words().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(w);
        }
        exact::exact(out)
    }

    /// Parses the text form. Case, spaces (any whitespace) and dashes are ignored.
    ///
    /// Errors say what is wrong and, for a typo, where: a mistyped character or two swapped
    /// neighbours are located to their group, and so is a missing or extra character when
    /// that is unambiguous. Nothing of the key appears in an error.
    pub fn parse(text: &str) -> Result<Self, ParseRecoveryKeyError> {
        let mut compact = Zeroizing::new(Vec::with_capacity(text.len()));
        for c in text.chars() {
            if c.is_whitespace() || c == '-' {
                continue;
            }
            if !c.is_ascii() {
                return Err(ParseRecoveryKeyError::InvalidCharacter {
                    group: compact.len() / GROUP + 1,
                });
            }
            compact.push(c.to_ascii_lowercase() as u8);
        }
        if !compact.starts_with(PREFIX.as_bytes()) {
            return Err(if looks_like_words(text) {
                ParseRecoveryKeyError::LooksLikeWords
            } else {
                ParseRecoveryKeyError::NotARecoveryKey
            });
        }
        if let Some(i) = compact[PREFIX.len()..]
            .iter()
            .position(|c| !ALPHABET.contains(c))
        {
            return Err(ParseRecoveryKeyError::InvalidCharacter {
                group: (PREFIX.len() + i) / GROUP + 1,
            });
        }
        // Only ASCII bytes were pushed.
        let s =
            core::str::from_utf8(&compact).unwrap_or_else(|_| unreachable!("ASCII is valid UTF-8"));
        let Ok(checked) = CheckedHrpstring::new::<Bech32m>(s) else {
            return Err(if compact.len() == TEXT_LEN {
                ParseRecoveryKeyError::Checksum {
                    groups: locate_typo(&compact),
                }
            } else {
                ParseRecoveryKeyError::WrongLength {
                    got: compact.len(),
                    groups: locate_length_error(&compact),
                }
            });
        };
        let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
        let mut n = 0;
        for b in checked.byte_iter() {
            if n < PAYLOAD_LEN {
                payload[n] = b;
            }
            n += 1;
        }
        if n >= 1 && payload[0] != TEXT_VERSION {
            return Err(ParseRecoveryKeyError::UnsupportedVersion {
                version: payload[0],
            });
        }
        if n != PAYLOAD_LEN || compact.len() != TEXT_LEN {
            return Err(ParseRecoveryKeyError::WrongLength {
                got: compact.len(),
                groups: Vec::new(),
            });
        }
        let key = Key256::init_with(|k| k.copy_from_slice(&payload[5..]));
        let rk = Self::from_key(key);
        if rk.key_id().0 != payload[1..5] {
            return Err(ParseRecoveryKeyError::KeyIdMismatch);
        }
        // Reject non-zero padding bits: exactly one text per key.
        let canonical = encode_compact(TEXT_VERSION, rk.key_id(), &rk.key);
        if !bool::from(canonical.as_bytes().ct_eq(compact.as_slice())) {
            return Err(ParseRecoveryKeyError::NonCanonical);
        }
        Ok(rk)
    }

    /// Parses the 24-word form. Case and extra whitespace are ignored.
    pub fn parse_words(words: &str) -> Result<Self, ParseRecoveryKeyError> {
        let mut joined = Zeroizing::new(String::with_capacity(words.len()));
        let mut count = 0usize;
        for w in words.split_whitespace() {
            if count > 0 {
                joined.push(' ');
            }
            joined.extend(w.chars().map(|c| c.to_ascii_lowercase()));
            count += 1;
        }
        if count != 24 {
            return Err(ParseRecoveryKeyError::WrongWordCount { got: count });
        }
        let m = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &joined).map_err(
            |e| match e {
                bip39::Error::UnknownWord(i) => {
                    ParseRecoveryKeyError::UnknownWord { position: i + 1 }
                }
                bip39::Error::BadWordCount(n) => ParseRecoveryKeyError::WrongWordCount { got: n },
                _ => ParseRecoveryKeyError::WordChecksum,
            },
        )?;
        let (mut entropy, len) = m.to_entropy_array();
        let key = (len == 32).then(|| Key256::init_with(|k| k.copy_from_slice(&entropy[..32])));
        entropy.zeroize();
        key.map(Self::from_key)
            .ok_or(ParseRecoveryKeyError::WrongWordCount { got: count })
    }

    /// Parses either form: the word form when the input is a list of words, the text form
    /// otherwise.
    pub fn parse_any(input: &str) -> Result<Self, ParseRecoveryKeyError> {
        if looks_like_words(input) {
            Self::parse_words(input)
        } else {
            Self::parse(input)
        }
    }

    fn wrap_key(&self) -> WrapKey {
        WrapKey::new(&kdf::derive_key(&self.key, WRAP_LABEL, &[]))
    }
}

impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryKey({}, <redacted>)", self.key_id())
    }
}

/// `srk1…` lowercase, no dashes, in a zeroizing string.
fn encode_compact(version: u8, id: RecoveryKeyId, key: &Key256) -> Zeroizing<String> {
    let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
    payload[0] = version;
    payload[1..5].copy_from_slice(&id.0);
    payload[5..].copy_from_slice(key.expose_secret());
    let mut out = Zeroizing::new(String::with_capacity(TEXT_LEN));
    bech32::encode_lower_to_fmt::<Bech32m, String>(&mut out, hrp(), payload.as_slice())
        .unwrap_or_else(|_| unreachable!("37 bytes fit a bech32m string"));
    out
}

fn hrp() -> Hrp {
    Hrp::parse_unchecked(HRP)
}

fn valid(candidate: &[u8]) -> bool {
    core::str::from_utf8(candidate)
        .ok()
        .and_then(|s| UncheckedHrpstring::new(s).ok())
        .is_some_and(|u| u.hrp() == hrp() && u.has_valid_checksum::<Bech32m>())
}

fn groups_of(positions: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut g: Vec<usize> = positions.into_iter().map(|i| i / GROUP + 1).collect();
    g.sort_unstable();
    g.dedup();
    g
}

/// Finds the group(s) of a single mistyped character or a swapped neighbour pair in a
/// full-length text whose checksum fails. Empty when the error is not one of those (the
/// bech32m code then cannot tell where it is).
fn locate_typo(s: &[u8]) -> Vec<usize> {
    let mut buf = Zeroizing::new(s.to_vec());
    let mut found = Vec::new();
    for i in PREFIX.len()..buf.len() {
        let orig = buf[i];
        for &c in ALPHABET {
            if c == orig {
                continue;
            }
            buf[i] = c;
            if valid(&buf) {
                found.push(i);
            }
        }
        buf[i] = orig;
    }
    for i in PREFIX.len()..buf.len() - 1 {
        if buf[i] == buf[i + 1] {
            continue;
        }
        buf.swap(i, i + 1);
        if valid(&buf) {
            found.extend([i, i + 1]);
        }
        buf.swap(i, i + 1);
    }
    groups_of(found)
}

/// Finds where a single character is missing or extra.
fn locate_length_error(s: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    if s.len() + 1 == TEXT_LEN {
        let mut buf = Zeroizing::new(Vec::with_capacity(TEXT_LEN));
        for i in PREFIX.len()..=s.len() {
            for &c in ALPHABET {
                buf.clear();
                buf.extend_from_slice(&s[..i]);
                buf.push(c);
                buf.extend_from_slice(&s[i..]);
                if valid(&buf) {
                    found.push(i);
                }
            }
        }
    } else if s.len() == TEXT_LEN + 1 {
        let mut buf = Zeroizing::new(Vec::with_capacity(TEXT_LEN));
        for i in PREFIX.len()..s.len() {
            buf.clear();
            buf.extend_from_slice(&s[..i]);
            buf.extend_from_slice(&s[i + 1..]);
            if valid(&buf) {
                found.push(i);
            }
        }
    }
    groups_of(found)
}

/// Several alphabetic words separated by whitespace.
fn looks_like_words(input: &str) -> bool {
    let mut n = 0;
    for w in input.split_whitespace() {
        if w.len() < 3 || !w.chars().all(|c| c.is_ascii_alphabetic()) {
            return false;
        }
        n += 1;
    }
    n >= 12
}

/// A parsed recovery-key stanza body.
pub(crate) struct RecoveryBody<'a> {
    pub(crate) header: &'a [u8],
    pub(crate) wrapped: &'a [u8],
}

impl<'a> RecoveryBody<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new("recovery-key stanza body", body);
        r.version(&[BODY_VERSION])?;
        let wrapped = r.bytes(WRAPPED_KEY_LEN, "wrapped key")?;
        r.finish()?;
        Ok(Self {
            header: &body[..1],
            wrapped,
        })
    }
}

impl Keyholder for RecoveryKey {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::RecoveryKey
    }

    fn describe(&self) -> String {
        format!("recovery-key {}", self.key_id())
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        let mut w = Writer::with_capacity(BODY_LEN);
        w.u8(BODY_VERSION);
        let aad = stanza_aad(
            KeyholderKind::RecoveryKey,
            &self.stanza_id,
            w.as_slice(),
            ctx,
        );
        w.bytes(&wrap_key(&self.wrap_key(), &aad, key)?);
        Ok(Stanza {
            kind: KeyholderKind::RecoveryKey,
            id: self.stanza_id,
            body: w.into_vec(),
        })
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        if stanza.kind != KeyholderKind::RecoveryKey || stanza.id != self.stanza_id {
            return Ok(None);
        }
        let body = RecoveryBody::parse(&stanza.body)?;
        let aad = stanza_aad(KeyholderKind::RecoveryKey, &stanza.id, body.header, ctx);
        Ok(Some(unwrap_key(&self.wrap_key(), &aad, body.wrapped)?))
    }

    fn mismatch_error(&self) -> KeyholderError {
        KeyholderError::WrongRecoveryKey {
            key_id: self.key_id().to_string(),
        }
    }
}

/// Checks that `key` opens `stanza` in `ctx`, changing nothing (the unwrapped key is
/// dropped and zeroized at once).
///
/// - `Ok(())`: this recovery key still works.
/// - [`KeyholderError::WrongRecoveryKey`]: the stanza is another recovery key's (for example
///   the key was replaced since this one was printed).
/// - [`KeyholderError::NoMatchingStanza`]: `stanza` is not a recovery-key stanza.
/// - [`KeyholderError::Crypto`] / [`KeyholderError::Malformed`]: the stanza is this key's but
///   was modified, or belongs to another context.
///
/// Replacing a recovery key is a stanza replacement at the storage layer: wrap the same key
/// with a new [`RecoveryKey`], store the new stanza, check it with this function, then
/// delete the old stanza (found by [`RecoveryKeyId::of_stanza`]). From then on the old key
/// finds no stanza of its own and fails with [`KeyholderError::WrongRecoveryKey`].
pub fn verify_recovery_key(
    key: &RecoveryKey,
    ctx: &WrapContext<'_>,
    stanza: &Stanza,
) -> Result<(), KeyholderError> {
    if stanza.kind != KeyholderKind::RecoveryKey {
        return Err(KeyholderError::NoMatchingStanza {
            kind: KeyholderKind::RecoveryKey,
        });
    }
    match key.unwrap(ctx, stanza)? {
        Some(_) => Ok(()),
        None => Err(key.mismatch_error()),
    }
}

#[cfg(test)]
pub(crate) fn text_with(version: u8, id: [u8; 4], key: &Key256) -> String {
    encode_compact(version, RecoveryKeyId(id), key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bech32::primitives::iter::Fe32IterExt;
    use secrecy::ExposeSecret;

    fn fixed() -> RecoveryKey {
        RecoveryKey::from_key(Key256::init_with(|k| {
            for (i, b) in k.iter_mut().enumerate() {
                *b = i as u8;
            }
        }))
    }

    #[test]
    fn text_shape() {
        let k = fixed();
        let t = k.to_text();
        let t = t.expose_secret();
        assert_eq!(t.len(), TEXT_LEN + 13);
        assert!(t.starts_with("SRK1Q-"), "{t}");
        assert!(t.split('-').all(|g| g.len() == 5), "{t}");
        assert_eq!(t.split('-').count(), 14);
        assert_eq!(t, t.to_ascii_uppercase());
    }

    #[test]
    fn key_id_is_stanza_id_prefix() {
        let k = fixed();
        assert_eq!(&k.stanza_id()[..4], k.key_id().as_bytes());
        let id = k.key_id();
        let shown = id.to_string();
        assert_eq!(shown.len(), 9);
        assert_eq!(shown.parse::<RecoveryKeyId>().unwrap(), id);
        assert_eq!(
            shown
                .to_lowercase()
                .replace('-', " ")
                .parse::<RecoveryKeyId>()
                .unwrap(),
            id
        );
        assert!("XYZ".parse::<RecoveryKeyId>().is_err());
    }

    #[test]
    fn text_and_words_have_no_spare_capacity() {
        // Spare capacity would make `SecretString::from` reallocate and free an unzeroized
        // copy of the key's text.
        for _ in 0..32 {
            let k = RecoveryKey::generate().unwrap();
            let t = k.text_exact();
            assert_eq!(t.capacity(), t.len());
            let w = k.words_exact();
            assert_eq!(w.capacity(), w.len(), "{} words", w.split(' ').count());
        }
    }

    #[test]
    fn debug_is_redacted() {
        let k = fixed();
        let d = format!("{k:?}");
        assert_eq!(d, format!("RecoveryKey({}, <redacted>)", k.key_id()));
        let t = k.to_text();
        assert!(!format!("{t:?}").contains("SRK1"));
    }

    #[test]
    fn unsupported_version_and_id_mismatch_and_padding() {
        let key = Key256::init_with(|k| k.fill(7));
        let good = RecoveryKey::from_key(key.clone_secret());
        let v2 = text_with(2, good.key_id().0, &key);
        assert!(matches!(
            RecoveryKey::parse(&v2),
            Err(ParseRecoveryKeyError::UnsupportedVersion { version: 2 })
        ));
        let wrong_id = text_with(1, [0, 0, 0, 0], &key);
        assert!(matches!(
            RecoveryKey::parse(&wrong_id),
            Err(ParseRecoveryKeyError::KeyIdMismatch)
        ));
        // Set a padding bit in the last data character and fix the checksum.
        let good_text = text_with(1, good.key_id().0, &key);
        let data: Vec<u8> = good_text.as_bytes()[4..TEXT_LEN - 6]
            .iter()
            .map(|c| ALPHABET.iter().position(|a| a == c).unwrap() as u8)
            .collect();
        let mut fes: Vec<bech32::Fe32> = data
            .iter()
            .map(|&v| bech32::Fe32::try_from(v).unwrap())
            .collect();
        let last = fes.len() - 1;
        fes[last] = bech32::Fe32::try_from(data[last] | 1).unwrap();
        let padded: String = fes
            .into_iter()
            .with_checksum::<Bech32m>(&hrp())
            .chars()
            .collect();
        assert!(
            matches!(
                RecoveryKey::parse(&padded),
                Err(ParseRecoveryKeyError::NonCanonical)
            ),
            "{padded}"
        );
    }
}
