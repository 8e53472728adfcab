//! The [`Stanza`] format every keyholder writes, and what a wrap is bound to.
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;

use strongroom_crypto::DecodeError;
use strongroom_crypto::encoding::{Reader, Writer};

use crate::kind::KeyholderKind;

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
    ///
    /// ```
    /// use strongroom_keyholder::WrapContext;
    /// let ctx = WrapContext { purpose: "p", subject: b"s" };
    /// assert_eq!(ctx.aad(), b"p\0\0\0\0\x01s");
    /// ```
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
/// `header` is the stanza body up to (not including) its nonce/IV or ciphertext: the body
/// version and every cleartext parameter (KDF costs, salt, locator…). Binding the kind and
/// the id as well means no field of a stored stanza can be edited, and no stanza relabelled
/// as another kind or moved to another context, without the unwrap failing authentication.
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
/// 1       1     kind id (KeyholderKind::id; any value: unknown ids decode as
///               KeyholderKind::Unknown)
/// 2       8     stanza id: non-secret, lets a keyholder recognise its own stanzas
/// 10      4     body length n (big-endian u32, n <= 65536)
/// 14      n     body: kind-specific, opaque here
/// ```
///
/// ```
/// use strongroom_keyholder::{KeyholderKind, Stanza};
/// let s = Stanza { kind: KeyholderKind::RawKek, id: [7; 8], body: vec![1, 2] };
/// let bytes = s.encode();
/// assert_eq!(bytes[..2], [1, 3]);
/// assert_eq!(Stanza::decode(&bytes)?, s);
/// // A kind from a newer release is kept, not refused.
/// let mut newer = bytes.clone();
/// newer[1] = 200;
/// assert_eq!(Stanza::decode(&newer)?.kind, KeyholderKind::Unknown(200));
/// # Ok::<(), strongroom_crypto::DecodeError>(())
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

    /// Decodes a stanza from untrusted bytes. A kind id this release does not know gives
    /// [`KeyholderKind::Unknown`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let kind = KeyholderKind::from_stored(r.u8("kind")?);
        let id = r.array("stanza id")?;
        let body = r.var_bytes("body", Self::MAX_BODY)?.to_vec();
        r.finish()?;
        Ok(Self { kind, id, body })
    }

    /// The id as lowercase hex, for listings.
    pub fn id_hex(&self) -> String {
        id_hex(self.id)
    }
}

/// Lowercase hex of a stanza id.
pub(crate) fn id_hex(id: [u8; 8]) -> String {
    use core::fmt::Write as _;
    let mut out = String::with_capacity(16);
    for b in id {
        let _ = write!(out, "{b:02x}");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        let mut newer = b.clone();
        newer[1] = 99;
        let decoded = Stanza::decode(&newer).unwrap();
        assert_eq!(decoded.kind, KeyholderKind::Unknown(99));
        assert_eq!(decoded.encode(), newer, "unknown kinds re-encode unchanged");
        let mut long = b.clone();
        long.push(0);
        assert!(Stanza::decode(&long).is_err());
        assert!(!format!("{s:?}").contains("9, 9"));
        assert_eq!(s.id_hex(), "0102030405060708");
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

    proptest! {
        #[test]
        fn stanza_round_trip(kind in any::<u8>(), id in any::<[u8; 8]>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = Stanza { kind: KeyholderKind::from_stored(kind), id, body };
            let bytes = s.encode();
            prop_assert_eq!(Stanza::decode(&bytes).unwrap(), s);
        }

        #[test]
        fn stanza_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(s) = Stanza::decode(&bytes) {
                prop_assert_eq!(s.encode(), bytes);
            }
        }
    }
}
