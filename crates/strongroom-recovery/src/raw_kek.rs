//! Raw key-encryption keys (an application's `ENCRYPTION_KEY`). The KEK stanza layout they
//! share with custody keyholders (OS keyring) is `strongroom-keyholder`'s [`KekKeyholder`].
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use secrecy::SecretString;
use strongroom_crypto::{CryptoError, Key256, KeyId};
use strongroom_keyholder::KekKeyholder;
use zeroize::Zeroizing;

use crate::error::LoadKekError;
use crate::exact;
use crate::keyholder::{Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext};

/// The largest key file read.
const MAX_FILE: u64 = 4096;

/// A 32-byte key-encryption key supplied by the application (an environment variable or a
/// file, like the `ENCRYPTION_KEY` of many self-hosted services), used as a keyholder.
///
/// Because the KEK only wraps the vault's key, rotating it rewraps one small stanza and
/// never touches data: wrap with the new KEK, store the new stanza, check it opens, then
/// delete the old stanza (see the crate README).
///
/// The stanza id is the KEK's [`KeyId`] (HKDF-SHA256 under `strongroom/v1/kek-id`), so a
/// mismatched KEK is recognised before any decryption, and [`crate::unwrap_any`] reports
/// [`KeyholderError::WrongKek`] with the id of the key that was tried. The stanza layout is
/// the one of [`KekKeyholder`] with kind [`KeyholderKind::RawKek`] and an empty locator.
///
/// `Debug` shows only the key id; [`RawKek::to_base64`] returns a [`SecretString`].
pub struct RawKek {
    inner: KekKeyholder,
}

impl RawKek {
    /// Length of a KEK in bytes.
    pub const LEN: usize = 32;

    /// A fresh KEK from the operating system's CSPRNG (for operators creating one; print it
    /// with [`RawKek::to_base64`]).
    pub fn generate() -> Result<Self, CryptoError> {
        Key256::generate().map(Self::from_key)
    }

    /// Uses an existing key.
    pub fn from_key(key: Key256) -> Self {
        let inner = KekKeyholder::new(key, KeyholderKind::RawKek, &[])
            .unwrap_or_else(|_| unreachable!("an empty locator is within the limit"));
        Self { inner }
    }

    /// The non-secret id of this KEK (its stanza id), for listings and error messages.
    pub fn key_id(&self) -> KeyId {
        self.inner.key_id()
    }

    /// The key bytes, for custody backends that store them (an OS keyring entry).
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.inner.expose_secret()
    }

    /// The KEK as standard padded base64 (44 characters).
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(self.base64_exact())
    }

    /// The base64 text in an allocation of exactly its length (`SecretString::from` would
    /// otherwise reallocate and free an unzeroized copy).
    fn base64_exact(&self) -> String {
        exact::exact(general_purpose::STANDARD.encode(self.expose_secret()))
    }

    /// Reads 64 hexadecimal characters (either case); surrounding whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<Self, LoadKekError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LoadKekError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LoadKekError::NotHex);
        }
        if text.len() != 64 {
            return Err(LoadKekError::WrongLength {
                got: text.len() / 2,
            });
        }
        let mut err = false;
        let key = Key256::init_with(|k| err = hex::decode_to_slice(text, k).is_err());
        if err {
            return Err(LoadKekError::NotHex);
        }
        Ok(Self::from_key(key))
    }

    /// Reads base64, standard (`+/`) or URL-safe (`-_`) alphabet, padded or not; surrounding
    /// whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<Self, LoadKekError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LoadKekError::Empty);
        }
        // 32 bytes are 43 characters unpadded, 44 padded; anything much longer is not a key
        // (and is not decoded into memory).
        if text.len() > 88 {
            return Err(LoadKekError::WrongLength {
                got: text.len() * 3 / 4,
            });
        }
        let config = GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(false);
        let mut buf = Zeroizing::new([0u8; 66]);
        let n = [
            GeneralPurpose::new(&base64::alphabet::STANDARD, config),
            GeneralPurpose::new(&base64::alphabet::URL_SAFE, config),
        ]
        .iter()
        .find_map(|engine| engine.decode_slice(text, buf.as_mut_slice()).ok())
        .ok_or(LoadKekError::NotBase64)?;
        if n != Self::LEN {
            return Err(LoadKekError::WrongLength { got: n });
        }
        Ok(Self::from_key(Key256::init_with(|k| {
            k.copy_from_slice(&buf[..32]);
        })))
    }

    /// Reads hex or base64, whichever the text is; surrounding whitespace and a trailing
    /// newline are ignored.
    ///
    /// Text of hexadecimal digits only, of even length other than 44, is read as hex (so a
    /// truncated hex key reports its decoded length); anything else as base64.
    pub fn from_text(text: &str) -> Result<Self, LoadKekError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(LoadKekError::Empty);
        }
        if t.bytes().all(|b| b.is_ascii_hexdigit()) && t.len().is_multiple_of(2) && t.len() != 44 {
            Self::from_hex(t)
        } else {
            Self::from_base64(t)
        }
    }

    /// Reads a key file holding hex or base64 text (see [`RawKek::from_text`]).
    ///
    /// Refuses, on Unix, a file that every user of the machine can read
    /// ([`LoadKekError::WorldReadable`]): a KEK there is as good as published. Group-readable
    /// files (mode `0640` with a dedicated group) are accepted. Read-only secret mounts of
    /// container platforms are often `0444`/`0644`; load those with
    /// [`RawKek::from_file_allow_world_readable`] after deciding that is acceptable.
    /// Symbolic links are followed; files larger than 4 KiB are refused.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadKekError> {
        Self::read_file(path.as_ref(), false)
    }

    /// [`RawKek::from_file`] without the world-readable check.
    pub fn from_file_allow_world_readable(path: impl AsRef<Path>) -> Result<Self, LoadKekError> {
        Self::read_file(path.as_ref(), true)
    }

    fn read_file(path: &Path, allow_world_readable: bool) -> Result<Self, LoadKekError> {
        let io = |source| LoadKekError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(LoadKekError::NotAFile {
                path: path.to_owned(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o004 != 0 && !allow_world_readable {
                return Err(LoadKekError::WorldReadable {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = allow_world_readable;
        if meta.len() > MAX_FILE {
            return Err(LoadKekError::FileTooLarge {
                path: path.to_owned(),
                max: MAX_FILE,
            });
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_FILE as usize + 1));
        file.take(MAX_FILE + 1).read_to_end(&mut buf).map_err(io)?;
        if buf.len() as u64 > MAX_FILE {
            return Err(LoadKekError::FileTooLarge {
                path: path.to_owned(),
                max: MAX_FILE,
            });
        }
        let text = core::str::from_utf8(&buf).map_err(|_| LoadKekError::NotBase64)?;
        Self::from_text(text)
    }
}

impl fmt::Debug for RawKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawKek({}, <redacted>)", self.key_id())
    }
}

impl Keyholder for RawKek {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::RawKek
    }

    fn describe(&self) -> String {
        format!("raw-kek {}", self.key_id())
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        self.inner.wrap(ctx, key)
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        self.inner.unwrap(ctx, stanza)
    }

    fn mismatch_error(&self) -> KeyholderError {
        self.inner.mismatch_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn hex_and_base64_forms_agree() {
        let a = RawKek::from_hex(HEX).unwrap();
        let b64 = a.to_base64();
        assert_eq!(b64.expose_secret().len(), 44);
        let b = RawKek::from_base64(b64.expose_secret()).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.key_id(), b.key_id());
        // URL-safe, unpadded, upper-case hex, surrounding whitespace
        let url = general_purpose::URL_SAFE_NO_PAD.encode(a.expose_secret());
        assert_eq!(
            RawKek::from_text(&format!("  {url}\n")).unwrap().key_id(),
            a.key_id()
        );
        let upper = format!("{}\n", HEX.to_uppercase());
        assert_eq!(RawKek::from_text(&upper).unwrap().key_id(), a.key_id());
        assert_eq!(
            RawKek::from_text(b64.expose_secret()).unwrap().key_id(),
            a.key_id()
        );
    }

    #[test]
    fn text_errors_are_specific() {
        assert!(matches!(RawKek::from_text(" \n"), Err(LoadKekError::Empty)));
        assert!(matches!(
            RawKek::from_text(&HEX[..62]),
            Err(LoadKekError::WrongLength { got: 31 })
        ));
        assert!(matches!(
            RawKek::from_hex(&HEX.replace('0', "g")),
            Err(LoadKekError::NotHex)
        ));
        assert!(matches!(
            RawKek::from_text("not a key!"),
            Err(LoadKekError::NotBase64)
        ));
        let short = general_purpose::STANDARD.encode([1u8; 16]);
        assert!(matches!(
            RawKek::from_text(&short),
            Err(LoadKekError::WrongLength { got: 16 })
        ));
        let long = "A".repeat(200);
        assert!(matches!(
            RawKek::from_base64(&long),
            Err(LoadKekError::WrongLength { .. })
        ));
        let e = RawKek::from_text(&HEX[..62]).unwrap_err().to_string();
        assert!(e.contains("exactly 32 bytes"), "{e}");
        assert!(!e.contains(&HEX[..10]), "{e}");
    }

    #[test]
    fn base64_has_no_spare_capacity() {
        let k = RawKek::generate().unwrap();
        let t = k.base64_exact();
        assert_eq!((t.len(), t.capacity()), (44, 44));
    }

    #[test]
    fn debug_is_redacted() {
        let k = RawKek::from_hex(HEX).unwrap();
        let d = format!("{k:?}");
        assert!(d.contains(&k.key_id().to_string()), "{d}");
        assert!(!d.contains("0102"), "{d}");
        assert!(!format!("{:?}", k.to_base64()).contains("AAECAw"));
    }
}
