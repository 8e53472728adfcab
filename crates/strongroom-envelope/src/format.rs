//! Byte layouts of the two stored parts of a record: the body header and the wrapped DEK.

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
pub(crate) const DEK_VERSION: u8 = 1;
pub(crate) const DEK_ALG_XCHACHA20POLY1305: u8 = 1;

pub(crate) const BODY_AAD_LABEL: &[u8; 18] = b"strongroom/v1/body";
pub(crate) const DEK_AAD_LABEL: &[u8; 17] = b"strongroom/v1/dek";
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

/// A DEK wrapped under a vault key, stored apart from the body (86 bytes), so rotating the
/// vault key rewrites these and never a body.
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       1     algorithm: 1 = XChaCha20-Poly1305
/// 2       4     epoch of the wrapping vault key (u32 BE)
/// 6       8     key id of the wrapping vault key
/// 14      24    nonce (random)
/// 38      32    encrypted DEK
/// 70      16    tag
/// ```
///
/// Associated data: `"strongroom/v1/dek" ‖ bytes 0..14 ‖ vault id (16) ‖ record id (16) ‖
/// record version (u64 BE)`. The epoch and key id are authenticated, so a rewrap performed
/// by a worker that never sees plaintext keeps the record's binding intact.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WrappedDek([u8; WrappedDek::LEN]);

impl WrappedDek {
    /// Encoded length.
    pub const LEN: usize = 86;
    const FORMAT: &'static str = "wrapped data key v1";

    /// Parses untrusted bytes (structure only; authentication happens on unwrap).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[DEK_VERSION])?;
        if r.u8("algorithm")? != DEK_ALG_XCHACHA20POLY1305 {
            return Err(r.invalid("algorithm", "unknown key-wrap algorithm").into());
        }
        if bytes.len() != Self::LEN {
            return Err(if bytes.len() < Self::LEN {
                DecodeError::Truncated {
                    format: Self::FORMAT,
                    field: "wrapped key",
                    needed: Self::LEN,
                    available: bytes.len(),
                }
            } else {
                DecodeError::TrailingBytes {
                    format: Self::FORMAT,
                    count: bytes.len() - Self::LEN,
                }
            }
            .into());
        }
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// The epoch of the vault key that wraps this DEK.
    pub fn epoch(&self) -> Epoch {
        Epoch(u32::from_be_bytes([
            self.0[2], self.0[3], self.0[4], self.0[5],
        ]))
    }

    /// The id of the vault key that wraps this DEK.
    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.0[6..14]);
        KeyId::from_bytes(id)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    pub(crate) fn from_parts(epoch: Epoch, key_id: KeyId, nonce: &[u8; 24]) -> Self {
        let mut out = [0u8; Self::LEN];
        out[0] = DEK_VERSION;
        out[1] = DEK_ALG_XCHACHA20POLY1305;
        out[2..6].copy_from_slice(&epoch.0.to_be_bytes());
        out[6..14].copy_from_slice(key_id.as_bytes());
        out[14..38].copy_from_slice(nonce);
        Self(out)
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; Self::LEN] {
        &mut self.0
    }

    pub(crate) fn aad(&self, ctx: &RecordContext) -> [u8; 71] {
        let mut aad = [0u8; 71];
        aad[..17].copy_from_slice(DEK_AAD_LABEL);
        aad[17..31].copy_from_slice(&self.0[..14]);
        aad[31..47].copy_from_slice(ctx.vault_id.as_bytes());
        aad[47..63].copy_from_slice(ctx.record_id.as_bytes());
        aad[63..71].copy_from_slice(&ctx.version.to_be_bytes());
        aad
    }
}

impl core::fmt::Debug for WrappedDek {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "WrappedDek(epoch {}, key {})",
            self.epoch(),
            self.key_id()
        )
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
