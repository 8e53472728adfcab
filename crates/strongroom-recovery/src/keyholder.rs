//! The [`Keyholder`] trait and the [`Stanza`] format every keyholder writes.

use core::fmt;

use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, Key256};

/// The kinds of keyholder. The id byte is part of the stanza format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyholderKind {
    /// A passphrase stretched with Argon2id.
    Passphrase,
    /// A one-time 256-bit recovery key.
    RecoveryKey,
    /// A raw 32-byte key-encryption key supplied by the application.
    RawKek,
    /// A key kept in the operating system's keyring.
    OsKeyring,
    /// An AES key held in a PKCS#11 token (HSM).
    Pkcs11,
}

impl KeyholderKind {
    /// Every kind, in id order.
    pub const ALL: [KeyholderKind; 5] = [
        KeyholderKind::Passphrase,
        KeyholderKind::RecoveryKey,
        KeyholderKind::RawKek,
        KeyholderKind::OsKeyring,
        KeyholderKind::Pkcs11,
    ];

    /// The id byte.
    pub const fn id(self) -> u8 {
        match self {
            KeyholderKind::Passphrase => 1,
            KeyholderKind::RecoveryKey => 2,
            KeyholderKind::RawKek => 3,
            KeyholderKind::OsKeyring => 4,
            KeyholderKind::Pkcs11 => 5,
        }
    }

    /// Looks a kind up by id.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    /// A stable lowercase name (`passphrase`, `recovery-key`, `raw-kek`, `os-keyring`,
    /// `pkcs11`).
    pub const fn name(self) -> &'static str {
        match self {
            KeyholderKind::Passphrase => "passphrase",
            KeyholderKind::RecoveryKey => "recovery-key",
            KeyholderKind::RawKek => "raw-kek",
            KeyholderKind::OsKeyring => "os-keyring",
            KeyholderKind::Pkcs11 => "pkcs11",
        }
    }
}

impl fmt::Display for KeyholderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a wrap is bound to. Every keyholder authenticates both fields (as AEAD associated
/// data or the equivalent), so a stanza cannot be moved to another purpose or subject.
///
/// `purpose` is a domain label such as `"strongroom/v1/member-key"`; `subject` identifies the
/// wrapped key's owner (for a member key: vault id ‖ member id).
#[derive(Clone, Copy, Debug)]
pub struct WrapContext<'a> {
    /// Domain-separation label.
    pub purpose: &'static str,
    /// The wrapped key's owner.
    pub subject: &'a [u8],
}

impl WrapContext<'_> {
    /// `purpose ‖ 0x00 ‖ u32(len(subject)) ‖ subject`: the canonical associated data.
    pub fn aad(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.purpose.len() + 5 + self.subject.len());
        w.bytes(self.purpose.as_bytes())
            .u8(0)
            .var_bytes(self.subject);
        w.into_vec()
    }
}

/// The associated data every strongroom keyholder authenticates for one stanza:
///
/// ```text
/// "strongroom/v1/stanza" ‖ 0x00 ‖ kind id (1) ‖ stanza id (8)
///   ‖ u32(len(header)) ‖ header ‖ WrapContext::aad()
/// ```
///
/// `header` is the stanza body up to (not including) its nonce/IV: the body version and
/// every cleartext parameter (KDF costs, salt, locator…). Binding the kind and the id as well
/// means no field of a stored stanza can be edited, and no stanza relabelled as another
/// kind or moved to another context, without the unwrap failing authentication.
pub fn stanza_aad(
    kind: KeyholderKind,
    id: &[u8; 8],
    header: &[u8],
    ctx: &WrapContext<'_>,
) -> Vec<u8> {
    let ctx_aad = ctx.aad();
    let mut w = Writer::with_capacity(STANZA_AAD_LABEL.len() + 14 + header.len() + ctx_aad.len());
    w.bytes(STANZA_AAD_LABEL.as_bytes())
        .u8(0)
        .u8(kind.id())
        .bytes(id)
        .var_bytes(header)
        .bytes(&ctx_aad);
    w.into_vec()
}

const STANZA_AAD_LABEL: &str = "strongroom/v1/stanza";

/// A keyholder's wrap of one 256-bit key, as stored.
///
/// Byte layout (version 1):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       1     kind id (KeyholderKind::id)
/// 2       8     stanza id: non-secret, lets a keyholder recognise its own stanzas
/// 10      4     body length n (big-endian u32, n <= 65536)
/// 14      n     body: kind-specific, opaque here
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Stanza {
    /// Which kind of keyholder wrote it.
    pub kind: KeyholderKind,
    /// A non-secret id (e.g. derived from a recovery key or a raw KEK, or random for a
    /// passphrase).
    pub id: [u8; 8],
    /// Kind-specific wrapped data.
    pub body: Vec<u8>,
}

impl Stanza {
    /// The current version byte.
    pub const VERSION: u8 = 1;
    /// The largest body accepted.
    pub const MAX_BODY: usize = 65536;
    const FORMAT: &'static str = "keyholder stanza";

    /// Encodes the stanza.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(14 + self.body.len());
        w.u8(Self::VERSION)
            .u8(self.kind.id())
            .bytes(&self.id)
            .var_bytes(&self.body);
        w.into_vec()
    }

    /// Decodes a stanza from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let kind_id = r.u8("kind")?;
        let kind = KeyholderKind::from_id(kind_id)
            .ok_or_else(|| r.invalid("kind", "unknown keyholder kind"))?;
        let id = r.array("stanza id")?;
        let body = r.var_bytes("body", Self::MAX_BODY)?.to_vec();
        r.finish()?;
        Ok(Self { kind, id, body })
    }

    /// The id as hex, for listings.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

impl fmt::Debug for Stanza {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Stanza({}, id {}, {} bytes)",
            self.kind,
            self.id_hex(),
            self.body.len()
        )
    }
}

/// Something that can wrap and unwrap a 256-bit key: a passphrase, a recovery key, a raw
/// KEK, an OS keyring entry, an HSM key.
///
/// Implementation notes:
/// - `wrap` must authenticate [`WrapContext::aad`] and produce a fresh stanza (fresh salt or
///   nonce) on every call.
/// - `unwrap` returns `Ok(None)` when the stanza is not this keyholder's (another kind, or an
///   id that does not match), and an error when it is this keyholder's kind and id but
///   unwrapping failed (wrong passphrase, missing token, tampered stanza…), so a caller can try
///   every stanza and report the most specific failure.
/// - Parameters read from a stanza (KDF costs) are untrusted: check them before use.
/// - Never put secret bytes into errors.
pub trait Keyholder {
    /// The kind.
    fn kind(&self) -> KeyholderKind;

    /// A human description for listings and errors (no secret: e.g. `passphrase`,
    /// `os-keyring strongroom/vault-1`).
    fn describe(&self) -> String {
        self.kind().name().to_owned()
    }

    /// Wraps `key`, bound to `ctx`.
    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError>;

    /// Unwraps `stanza` if it is this keyholder's.
    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError>;

    /// The error [`unwrap_any`] reports when stanzas of this keyholder's kind are present but
    /// every one of them said "not mine" (`Ok(None)`): for a key whose stanza id is derived
    /// from the key (recovery key, raw KEK), that means the caller supplied the wrong key,
    /// and the error should say which key was tried (by its non-secret id).
    ///
    /// The default is [`KeyholderError::NoMatchingStanza`].
    fn mismatch_error(&self) -> KeyholderError {
        KeyholderError::NoMatchingStanza { kind: self.kind() }
    }
}

impl<K: Keyholder + ?Sized> Keyholder for &K {
    fn kind(&self) -> KeyholderKind {
        (**self).kind()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        (**self).wrap(ctx, key)
    }
    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        (**self).unwrap(ctx, stanza)
    }
    fn mismatch_error(&self) -> KeyholderError {
        (**self).mismatch_error()
    }
}

impl<K: Keyholder + ?Sized> Keyholder for Box<K> {
    fn kind(&self) -> KeyholderKind {
        (**self).kind()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        (**self).wrap(ctx, key)
    }
    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        (**self).unwrap(ctx, stanza)
    }
    fn mismatch_error(&self) -> KeyholderError {
        (**self).mismatch_error()
    }
}

/// Tries `keyholder` on every stanza and returns the first key it unwraps, with the index
/// of the stanza that opened.
///
/// When no stanza opens, the error is, in this order:
/// - the keyholder's own most specific failure on a stanza it recognised (e.g.
///   [`KeyholderError::WrongPassphrase`]);
/// - [`Keyholder::mismatch_error`] when stanzas of the keyholder's kind exist but none is
///   its own (e.g. [`KeyholderError::WrongKek`] naming the id of the key that was tried);
/// - [`KeyholderError::NoMatchingStanza`] when no stanza is of the keyholder's kind.
pub fn unwrap_any(
    keyholder: &dyn Keyholder,
    ctx: &WrapContext<'_>,
    stanzas: &[Stanza],
) -> Result<(Key256, usize), KeyholderError> {
    let mut last_err = None;
    let mut same_kind = false;
    for (i, s) in stanzas.iter().enumerate() {
        same_kind |= s.kind == keyholder.kind();
        match keyholder.unwrap(ctx, s) {
            Ok(Some(k)) => return Ok((k, i)),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
    }
    Err(match last_err {
        Some(e) => e,
        None if same_kind => keyholder.mismatch_error(),
        None => KeyholderError::NoMatchingStanza {
            kind: keyholder.kind(),
        },
    })
}

/// A keyholder could not wrap or unwrap.
///
/// Each way an unlock can fail has its own variant, so callers can count failed unlocks and
/// tell an operator what to do. None carries secret bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyholderError {
    /// The passphrase does not open this stanza.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The recovery key does not belong to this vault or member.
    #[error(
        "this recovery key does not open the vault (key id {key_id}); check you picked the recovery key printed for this vault"
    )]
    WrongRecoveryKey {
        /// The non-secret id of the key that was tried.
        key_id: String,
    },
    /// The raw KEK does not open this vault.
    #[error(
        "the supplied key-encryption key (id {key_id}) does not open this vault; is it the key this vault was created or last rotated with?"
    )]
    WrongKek {
        /// The non-secret id of the key that was tried.
        key_id: String,
    },
    /// A keyholder of this kind has no stanza here.
    #[error(
        "no {kind} keyholder is registered for this vault member; use one of its registered keyholders"
    )]
    NoMatchingStanza {
        /// The kind that was tried.
        kind: KeyholderKind,
    },
    /// The OS keyring has no entry where one was expected.
    #[error(
        "the OS keyring has no entry {entry}; it may have been deleted, or this is another user or session"
    )]
    KeyringEntryMissing {
        /// The entry (service/user), not secret.
        entry: String,
    },
    /// The OS keyring refused access.
    #[error("the OS keyring denied access: {hint}")]
    KeyringAccessDenied {
        /// What to do.
        hint: String,
    },
    /// The PKCS#11 token or key is not present.
    #[error("the PKCS#11 token or key is not available: {what}")]
    TokenMissing {
        /// Which token/key, not secret.
        what: String,
    },
    /// A custody backend (keyring, HSM) failed otherwise.
    #[error("{kind} keyholder failed: {reason}")]
    Backend {
        /// The kind.
        kind: KeyholderKind,
        /// The backend's message (never secret).
        reason: String,
    },
    /// The stanza is malformed.
    #[error("malformed keyholder stanza: {0}")]
    Malformed(#[from] DecodeError),
    /// A cryptographic check failed (e.g. KDF parameters below the floor).
    #[error(transparent)]
    Crypto(#[from] strongroom_crypto::CryptoError),
    /// The input text of a key (recovery key, KEK) could not be parsed.
    #[error("{0}")]
    InvalidKeyText(String),
    /// An empty passphrase was offered for wrapping.
    #[error("the passphrase is empty: choose a non-empty passphrase")]
    EmptyPassphrase,
    /// A custody object (keyring entry, HSM key label) to be created already exists.
    #[error("{what} already exists: refusing to overwrite it; open it, or choose another name")]
    AlreadyExists {
        /// What exists (entry or token/key label), not secret.
        what: String,
    },
    /// The PKCS#11 token refused the user PIN.
    #[error(
        "the PKCS#11 token {token} refused the PIN: check the user PIN (too many failures lock it, then the security officer must reset it)"
    )]
    WrongPin {
        /// The token label.
        token: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_round_trip_and_rejects() {
        let s = Stanza {
            kind: KeyholderKind::RawKek,
            id: [1, 2, 3, 4, 5, 6, 7, 8],
            body: vec![9; 40],
        };
        let b = s.encode();
        assert_eq!(b.len(), 14 + 40);
        assert_eq!(Stanza::decode(&b).unwrap(), s);
        assert!(Stanza::decode(&b[..b.len() - 1]).is_err());
        let mut bad = b.clone();
        bad[0] = 2;
        assert!(
            Stanza::decode(&bad)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
        let mut bad = b.clone();
        bad[1] = 99;
        assert!(
            Stanza::decode(&bad)
                .unwrap_err()
                .to_string()
                .contains("kind")
        );
        let mut long = b.clone();
        long.push(0);
        assert!(Stanza::decode(&long).is_err());
        assert!(!format!("{s:?}").contains("9, 9"));
    }

    #[test]
    fn kinds_round_trip() {
        for k in KeyholderKind::ALL {
            assert_eq!(KeyholderKind::from_id(k.id()), Some(k));
        }
        assert_eq!(KeyholderKind::from_id(0), None);
    }

    #[test]
    fn context_aad_is_unambiguous() {
        let a = WrapContext {
            purpose: "p",
            subject: b"ab",
        }
        .aad();
        let b = WrapContext {
            purpose: "pa",
            subject: b"b",
        }
        .aad();
        assert_ne!(a, b);
    }
}
