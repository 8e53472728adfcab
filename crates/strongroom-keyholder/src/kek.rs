//! The KEK stanza layout, shared by the raw KEK and by custody backends that keep a 32-byte
//! key-encryption key for the application (the OS keyring, Secret Service).
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;

use strongroom_crypto::aead::{WRAPPED_KEY_LEN, WrapKey, unwrap_key, wrap_key};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, Key256, KeyId, kdf};

use crate::error::KeyholderError;
use crate::keyholder::Keyholder;
use crate::kind::KeyholderKind;
use crate::stanza::{Stanza, WrapContext, stanza_aad};

const ID_LABEL: &str = "strongroom/v1/kek-id";
const WRAP_LABEL: &str = "strongroom/v1/kek-wrap";
const BODY_VERSION: u8 = 1;
const BODY_FORMAT: &str = "KEK stanza body";
/// The largest locator a KEK stanza carries.
pub const MAX_LOCATOR: usize = 1024;

/// A 32-byte key-encryption key bound to a keyholder kind and a locator: the wrapping of the
/// raw KEK (`strongroom-recovery`'s `RawKek`: kind [`KeyholderKind::RawKek`], empty locator)
/// and of custody backends that keep a KEK for the application (kind
/// [`KeyholderKind::OsKeyring`], locator naming the keyring entry).
///
/// # Stanza body, version 1 (77 + L bytes)
///
/// ```text
/// offset  size  field
/// 0       1     body version = 1
/// 1       4     locator length L (u32 big-endian, L <= 1024)
/// 5       L     locator: where the KEK is kept (custody-specific, not secret; empty for a
///               raw KEK)
/// 5+L     24    XChaCha20-Poly1305 nonce (random per wrap)
/// 29+L    32    wrapped key
/// 61+L    16    Poly1305 tag
/// ```
///
/// - Stanza id: the KEK's [`KeyId`], `HKDF-SHA256(ikm = KEK, info = "strongroom/v1/kek-id")[0..8]`.
/// - Wrapping key: `HKDF-SHA256(ikm = KEK, info = "strongroom/v1/kek-wrap" ‖ 0x00 ‖ kind id)`.
/// - Associated data: [`stanza_aad`]`(kind, stanza id, body[0..5+L], ctx)`: the locator is
///   authenticated, so a storage cannot redirect a stanza to another keyring entry.
///
/// A stanza of the keyholder's kind whose id is not this KEK's is "not mine"; when every
/// stanza of the kind says so, [`unwrap_any`](crate::unwrap_any) reports
/// [`KeyholderError::WrongKek`] with the id of the KEK that was tried.
pub struct KekKeyholder {
    key: Key256,
    id: KeyId,
    kind: KeyholderKind,
    locator: Vec<u8>,
}

impl KekKeyholder {
    /// Binds `key` to `kind` and `locator` (at most [`MAX_LOCATOR`] bytes).
    pub fn new(key: Key256, kind: KeyholderKind, locator: &[u8]) -> Result<Self, KeyholderError> {
        if locator.len() > MAX_LOCATOR {
            return Err(DecodeError::TooLong {
                format: BODY_FORMAT,
                field: "locator",
                len: locator.len(),
                max: MAX_LOCATOR,
            }
            .into());
        }
        Ok(Self {
            id: Self::key_id_of(&key),
            key,
            kind,
            locator: locator.to_vec(),
        })
    }

    /// The id of a KEK (its stanza id): `HKDF-SHA256(KEK, "strongroom/v1/kek-id")[0..8]`.
    pub fn key_id_of(key: &Key256) -> KeyId {
        KeyId::derive(key, ID_LABEL)
    }

    /// The non-secret id of the KEK (also the stanza id).
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The KEK's bytes, for custody backends that store them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }

    /// The locator written into new stanzas.
    pub fn locator(&self) -> &[u8] {
        &self.locator
    }

    /// The locator of a KEK stanza (of any kind that uses this layout), read without any key
    /// (untrusted bytes: errors, never panics).
    pub fn locator_of(stanza: &Stanza) -> Result<&[u8], DecodeError> {
        Ok(KekBody::parse(&stanza.body)?.locator)
    }

    fn wrap_key(&self) -> WrapKey {
        WrapKey::new(&kdf::derive_key(
            &self.key,
            WRAP_LABEL,
            &[&[self.kind.id()]],
        ))
    }
}

impl fmt::Debug for KekKeyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekKeyholder({}, {}, <redacted>)", self.kind, self.id)
    }
}

/// A parsed KEK stanza body.
struct KekBody<'a> {
    header: &'a [u8],
    locator: &'a [u8],
    wrapped: &'a [u8],
}

impl<'a> KekBody<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(BODY_FORMAT, body);
        r.version(&[BODY_VERSION])?;
        let locator = r.var_bytes("locator", MAX_LOCATOR)?;
        let header_len = r.position();
        let wrapped = r.bytes(WRAPPED_KEY_LEN, "wrapped key")?;
        r.finish()?;
        Ok(Self {
            header: &body[..header_len],
            locator,
            wrapped,
        })
    }
}

impl Keyholder for KekKeyholder {
    fn kind(&self) -> KeyholderKind {
        self.kind
    }

    fn describe(&self) -> String {
        format!("{} {}", self.kind, self.id)
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        let id = *self.id.as_bytes();
        let mut w = Writer::with_capacity(5 + self.locator.len() + WRAPPED_KEY_LEN);
        w.u8(BODY_VERSION).var_bytes(&self.locator);
        let aad = stanza_aad(self.kind, &id, w.as_slice(), ctx);
        w.bytes(&wrap_key(&self.wrap_key(), &aad, key)?);
        Ok(Stanza {
            kind: self.kind,
            id,
            body: w.into_vec(),
        })
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        if stanza.kind != self.kind || stanza.id != *self.id.as_bytes() {
            return Ok(None);
        }
        let body = KekBody::parse(&stanza.body)?;
        let aad = stanza_aad(self.kind, &stanza.id, body.header, ctx);
        Ok(Some(unwrap_key(&self.wrap_key(), &aad, body.wrapped)?))
    }

    fn mismatch_error(&self) -> KeyholderError {
        KeyholderError::WrongKek {
            key_id: self.id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> WrapContext<'static> {
        WrapContext {
            purpose: "strongroom/v1/member-key",
            subject: b"vault-1",
        }
    }

    #[test]
    fn wrap_unwrap_and_locator() {
        let kh = KekKeyholder::new(
            Key256::generate().unwrap(),
            KeyholderKind::OsKeyring,
            b"loc",
        )
        .unwrap();
        let key = Key256::generate().unwrap();
        let s = kh.wrap(&ctx(), &key).unwrap();
        assert_eq!(s.body.len(), 77 + 3);
        assert_eq!(KekKeyholder::locator_of(&s).unwrap(), b"loc");
        assert!(bool::from(
            kh.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
        ));
        // Relabelled as another kind: not this keyholder's.
        let mut t = s.clone();
        t.kind = KeyholderKind::RawKek;
        assert!(kh.unwrap(&ctx(), &t).unwrap().is_none());
        // The locator is authenticated.
        let mut t = s.clone();
        t.body[5] ^= 1;
        assert!(matches!(
            kh.unwrap(&ctx(), &t),
            Err(KeyholderError::Crypto(_))
        ));
        assert!(
            KekKeyholder::new(
                Key256::generate().unwrap(),
                KeyholderKind::OsKeyring,
                &[0; 1025]
            )
            .is_err()
        );
        let d = format!("{kh:?}");
        assert!(
            d.contains(&kh.key_id().to_string()) && d.contains("redacted"),
            "{d}"
        );
    }

    proptest! {
        #[test]
        fn body_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = Stanza { kind: KeyholderKind::OsKeyring, id: [0; 8], body: bytes };
            let _ = KekKeyholder::locator_of(&s);
        }
    }
}
