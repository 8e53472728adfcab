//! Byte layouts of the two stored parts of a record: the body header and the wrapped DEK.
//!
//! Specified in `docs/spec/envelope.md`.

use strongroom_crypto::aead::Suite;
use strongroom_crypto::encoding::Reader;
use strongroom_crypto::{DecodeError, KeyId, RecordId, VaultId};

use crate::{EnvelopeError, Epoch};

/// Plaintext bytes per body segment (64 KiB).
pub const SEGMENT_LEN: usize = 64 * 1024;
/// Tag bytes per segment.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full segment.
pub const SEGMENT_CT_LEN: usize = SEGMENT_LEN + TAG_LEN;

pub(crate) const BODY_VERSION: u8 = 1;
pub(crate) const DEK_VERSION: u8 = 2;
pub(crate) const DEK_VERSION_V1: u8 = 1;
pub(crate) const DEK_ALG_XCHACHA20POLY1305: u8 = 1;

pub(crate) const BODY_AAD_LABEL: &[u8; 18] = b"strongroom/v1/body";
pub(crate) const DEK_AAD_LABEL_V1: &[u8; 17] = b"strongroom/v1/dek";
pub(crate) const DEK_AAD_LABEL: &[u8; 17] = b"strongroom/v2/dek";
pub(crate) const BODY_DIGEST_LABEL: &[u8; 25] = b"strongroom/v2/body-digest";
pub(crate) const RECORD_KEYS_LABEL: &[u8; 20] = b"strongroom/v1/record";

/// Where a record lives: bound into every key derivation and associated data, so a body or a
/// wrapped DEK moved to another vault, record or version does not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordContext {
    /// The vault.
    pub vault_id: VaultId,
    /// The record.
    pub record_id: RecordId,
    /// The record's version (1 for the first write, +1 on every later write).
    pub version: u64,
}

/// The fixed-size header at the start of every body.
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       1     suite id: 1 = AES-256-GCM, 2 = ChaCha20-Poly1305
/// 2       1     flags, must be 0 in version 1
/// 3       4     epoch of the vault key that first wrapped the DEK (u32 BE)
/// 7       8     record version (u64 BE)
/// 15      32    key commitment
/// 47            segments
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyHeader {
    /// Body cipher suite.
    pub suite: Suite,
    /// Epoch at seal time (rotation rewraps the DEK but never rewrites the body, so this
    /// stays the epoch of the first wrap).
    pub epoch: Epoch,
    /// Record version.
    pub record_version: u64,
    /// Key commitment: the second 32 bytes of the record-key derivation.
    pub commitment: [u8; 32],
}

impl BodyHeader {
    /// Encoded length.
    pub const LEN: usize = 47;
    const FORMAT: &'static str = "record body v1";

    /// Encodes the header.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = BODY_VERSION;
        out[1] = self.suite.id();
        out[2] = 0;
        out[3..7].copy_from_slice(&self.epoch.0.to_be_bytes());
        out[7..15].copy_from_slice(&self.record_version.to_be_bytes());
        out[15..47].copy_from_slice(&self.commitment);
        out
    }

    /// Parses the header at the start of `body` (the rest is ignored).
    pub fn decode(body: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(Self::FORMAT, body);
        r.version(&[BODY_VERSION])?;
        let suite = Suite::from_id(r.u8("suite")?).map_err(EnvelopeError::Crypto)?;
        if r.u8("flags")? != 0 {
            return Err(r.invalid("flags", "reserved flags set").into());
        }
        let epoch = Epoch(r.u32("epoch")?);
        let record_version = r.u64("record version")?;
        let commitment = r.array("key commitment")?;
        Ok(Self {
            suite,
            epoch,
            record_version,
            commitment,
        })
    }
}

/// A DEK wrapped under a vault key, stored apart from the body, so rotating the vault key
/// rewrites these and never a body.
///
/// Version 2 (written by this release, 122 bytes):
///
/// ```text
/// offset  size  field
/// 0       1     version = 2
/// 1       1     algorithm: 1 = XChaCha20-Poly1305
/// 2       4     epoch of the wrapping vault key (u32 BE)
/// 6       8     key id of the wrapping vault key
/// 14      4     sealed epoch: the epoch the record version was sealed in (u32 BE)
/// 18      32    body digest: SHA-256("strongroom/v2/body-digest" ‖ body)
/// 50      24    nonce (random)
/// 74      32    encrypted DEK
/// 106     16    tag
/// ```
///
/// Associated data: `"strongroom/v2/dek" ‖ bytes 0..50 ‖ vault id (16) ‖ record id (16) ‖
/// record version (u64 BE)`. The sealed epoch and the body digest are authenticated by the
/// current vault key and carried unchanged by every rewrap, so a former member who kept a
/// record's DEK (and can therefore seal a body that passes the key commitment and the AEAD)
/// still cannot substitute a body: its digest does not match.
///
/// Version 1 (86 bytes, decrypt-only): bytes 0..14 as above with version = 1, then nonce
/// (24), encrypted DEK (32), tag (16); associated data `"strongroom/v1/dek" ‖ bytes 0..14 ‖
/// vault id ‖ record id ‖ record version`. It carries no body digest: a rotation upgrades it
/// to version 2 (see [`rewrap_with_body`](crate::rewrap_with_body)).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WrappedDek(Repr);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Repr {
    V1([u8; WrappedDek::V1_LEN]),
    V2([u8; WrappedDek::LEN]),
}

/// Where the fields of a wrap sit, per version: (head length, nonce, encrypted DEK, tag).
const V1_PARTS: (usize, usize, usize, usize) = (14, 14, 38, 70);
const V2_PARTS: (usize, usize, usize, usize) = (50, 50, 74, 106);

impl WrappedDek {
    /// Encoded length of the version this release writes (2).
    pub const LEN: usize = 122;
    /// Encoded length of a version-1 wrap.
    pub const V1_LEN: usize = 86;
    const FORMAT: &'static str = "wrapped data key";

    /// Parses untrusted bytes (structure only; authentication happens on unwrap).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        let version = r.version(&[DEK_VERSION_V1, DEK_VERSION])?;
        if r.u8("algorithm")? != DEK_ALG_XCHACHA20POLY1305 {
            return Err(r.invalid("algorithm", "unknown key-wrap algorithm").into());
        }
        let want = if version == DEK_VERSION {
            Self::LEN
        } else {
            Self::V1_LEN
        };
        if bytes.len() != want {
            return Err(if bytes.len() < want {
                DecodeError::Truncated {
                    format: Self::FORMAT,
                    field: "wrapped key",
                    needed: want,
                    available: bytes.len(),
                }
            } else {
                DecodeError::TrailingBytes {
                    format: Self::FORMAT,
                    count: bytes.len() - want,
                }
            }
            .into());
        }
        Ok(if version == DEK_VERSION {
            let mut out = [0u8; Self::LEN];
            out.copy_from_slice(bytes);
            Self(Repr::V2(out))
        } else {
            let mut out = [0u8; Self::V1_LEN];
            out.copy_from_slice(bytes);
            Self(Repr::V1(out))
        })
    }

    /// The format version: 1 (no body digest) or 2.
    pub fn version(&self) -> u8 {
        self.as_bytes()[0]
    }

    /// The epoch of the vault key that wraps this DEK.
    pub fn epoch(&self) -> Epoch {
        let b = self.as_bytes();
        Epoch(u32::from_be_bytes([b[2], b[3], b[4], b[5]]))
    }

    /// The id of the vault key that wraps this DEK.
    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.as_bytes()[6..14]);
        KeyId::from_bytes(id)
    }

    /// The epoch the record version was sealed in (version 2; authenticated once the wrap
    /// opens). A version-1 wrap does not say.
    pub fn sealed_epoch(&self) -> Option<Epoch> {
        match &self.0 {
            Repr::V1(_) => None,
            Repr::V2(b) => Some(Epoch(u32::from_be_bytes([b[14], b[15], b[16], b[17]]))),
        }
    }

    /// The body digest (version 2; authenticated once the wrap opens).
    pub fn body_digest(&self) -> Option<[u8; 32]> {
        match &self.0 {
            Repr::V1(_) => None,
            Repr::V2(b) => {
                let mut d = [0u8; 32];
                d.copy_from_slice(&b[18..50]);
                Some(d)
            }
        }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::V1(b) => b,
            Repr::V2(b) => b,
        }
    }

    /// A version-2 wrap's fixed part, before the nonce is filled in and the DEK sealed.
    pub(crate) fn v2(
        epoch: Epoch,
        key_id: KeyId,
        sealed_epoch: Epoch,
        digest: &[u8; 32],
        nonce: &[u8; 24],
    ) -> Self {
        let mut out = [0u8; Self::LEN];
        out[0] = DEK_VERSION;
        out[1] = DEK_ALG_XCHACHA20POLY1305;
        out[2..6].copy_from_slice(&epoch.0.to_be_bytes());
        out[6..14].copy_from_slice(key_id.as_bytes());
        out[14..18].copy_from_slice(&sealed_epoch.0.to_be_bytes());
        out[18..50].copy_from_slice(digest);
        out[50..74].copy_from_slice(nonce);
        Self(Repr::V2(out))
    }

    fn parts(&self) -> (usize, usize, usize, usize) {
        match self.0 {
            Repr::V1(_) => V1_PARTS,
            Repr::V2(_) => V2_PARTS,
        }
    }

    /// The nonce, the encrypted DEK and the tag.
    pub(crate) fn sealed_parts(&self) -> (&[u8], &[u8], &[u8]) {
        let (_, n, c, t) = self.parts();
        let b = self.as_bytes();
        (&b[n..c], &b[c..t], &b[t..])
    }

    /// The encrypted DEK and the tag, to fill in when sealing.
    pub(crate) fn sealed_parts_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let (_, _, c, t) = self.parts();
        let b: &mut [u8] = match &mut self.0 {
            Repr::V1(b) => b,
            Repr::V2(b) => b,
        };
        let (dek, tag) = b[c..].split_at_mut(t - c);
        (dek, tag)
    }

    /// The associated data the wrap is sealed with, for the record at `ctx`.
    pub(crate) fn aad(&self, ctx: &RecordContext) -> Vec<u8> {
        let (head, ..) = self.parts();
        let label: &[u8] = match self.0 {
            Repr::V1(_) => DEK_AAD_LABEL_V1,
            Repr::V2(_) => DEK_AAD_LABEL,
        };
        let mut aad = Vec::with_capacity(label.len() + head + 40);
        aad.extend_from_slice(label);
        aad.extend_from_slice(&self.as_bytes()[..head]);
        aad.extend_from_slice(ctx.vault_id.as_bytes());
        aad.extend_from_slice(ctx.record_id.as_bytes());
        aad.extend_from_slice(&ctx.version.to_be_bytes());
        aad
    }
}

impl core::fmt::Debug for WrappedDek {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "WrappedDek(v{}, epoch {}, key {})",
            self.version(),
            self.epoch(),
            self.key_id()
        )
    }
}

/// The body digest a version-2 wrap authenticates: `SHA-256("strongroom/v2/body-digest" ‖
/// body)`, over the whole sealed body (header and segments).
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    let mut h = BodyDigest::new();
    h.update(body);
    h.finish()
}

/// [`body_digest`] computed over a body that arrives in pieces.
#[derive(Clone)]
pub(crate) struct BodyDigest(ring::digest::Context);

impl BodyDigest {
    pub(crate) fn new() -> Self {
        let mut c = ring::digest::Context::new(&ring::digest::SHA256);
        c.update(BODY_DIGEST_LABEL);
        Self(c)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// Hashing what is written: lets `io::copy` feed a body to the digest.
impl std::io::Write for BodyDigest {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Associated data of every body segment:
/// `"strongroom/v1/body" ‖ header (47) ‖ vault id (16) ‖ record id (16)`.
pub(crate) fn body_aad(header: &[u8; BodyHeader::LEN], ctx: &RecordContext) -> [u8; 97] {
    let mut aad = [0u8; 97];
    aad[..18].copy_from_slice(BODY_AAD_LABEL);
    aad[18..65].copy_from_slice(header);
    aad[65..81].copy_from_slice(ctx.vault_id.as_bytes());
    aad[81..97].copy_from_slice(ctx.record_id.as_bytes());
    aad
}

/// Nonce of segment `index`: `0x000000 ‖ index (u64 BE) ‖ final (0x00 or 0x01)`.
pub(crate) fn segment_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Number of segments and the length of the last one's ciphertext, for a body whose
/// segment area is `len` bytes. `None` when no valid segmentation has that length.
pub(crate) fn segment_layout(len: usize) -> Option<(u64, usize)> {
    let full = len / SEGMENT_CT_LEN;
    let rem = len % SEGMENT_CT_LEN;
    match (full, rem) {
        (0, 0) => None,
        (f, 0) => Some((f as u64, SEGMENT_CT_LEN)),
        (_, r) if r < TAG_LEN => None,
        (f, r) => Some((f as u64 + 1, r)),
    }
}

/// Body length for `plaintext_len` bytes of plaintext.
pub const fn body_len(plaintext_len: usize) -> usize {
    let segments = if plaintext_len == 0 {
        1
    } else {
        plaintext_len.div_ceil(SEGMENT_LEN)
    };
    BodyHeader::LEN + plaintext_len + segments * TAG_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_lengths() {
        assert_eq!(segment_layout(0), None);
        assert_eq!(segment_layout(15), None);
        assert_eq!(segment_layout(16), Some((1, 16)));
        assert_eq!(segment_layout(SEGMENT_CT_LEN), Some((1, SEGMENT_CT_LEN)));
        assert_eq!(segment_layout(SEGMENT_CT_LEN + 15), None);
        assert_eq!(segment_layout(SEGMENT_CT_LEN + 16), Some((2, 16)));
        assert_eq!(body_len(0), 47 + 16);
        assert_eq!(body_len(SEGMENT_LEN), 47 + SEGMENT_LEN + 16);
        assert_eq!(body_len(SEGMENT_LEN + 1), 47 + SEGMENT_LEN + 1 + 32);
    }
}
