//! A member's keyholders: records in [`Table::Keyholders`], each a [`Stanza`] wrapping the
//! member key, with creation and last-use times.
//!
//! Specified in `docs/spec/stanza.md` (keyholder records).

use core::fmt;
use core::fmt::Write as _;

use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, Key256, MemberId, VaultId};
use strongroom_recovery::{Keyholder, KeyholderKind, Stanza, WrapContext};
use strongroom_store::{Batch, Expect, ReadView, ScanRange, Table};

use crate::{SharingError, VerifyError};

/// The [`WrapContext::purpose`] of member keys.
pub const MEMBER_KEY_PURPOSE: &str = "strongroom/v1/member-key";

/// `vault id ‖ member id`: the [`WrapContext::subject`] of a member key.
pub(crate) fn subject(vault: VaultId, member: MemberId) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..16].copy_from_slice(vault.as_bytes());
    s[16..].copy_from_slice(member.as_bytes());
    s
}

pub(crate) fn wrap_context(subject: &[u8; 32]) -> WrapContext<'_> {
    WrapContext {
        purpose: MEMBER_KEY_PURPOSE,
        subject,
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lowercase hex of a stanza id.
pub(crate) fn hex_id(id: [u8; 8]) -> String {
    let mut out = String::with_capacity(16);
    for b in id {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Row key of a keyholder record: `member id (16) ‖ stanza id (8)`.
pub(crate) fn row_key(member: MemberId, id: [u8; 8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(member.as_bytes());
    k.extend_from_slice(&id);
    k
}

/// A stored keyholder of a member.
///
/// Byte layout (version 1), stored in [`Table::Keyholders`] under
/// `member id (16) ‖ stanza id (8)`:
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       8     created at (Unix seconds, big-endian u64)
/// 9       8     last used at (Unix seconds, 0 = never)
/// 17      4     stanza length n (big-endian u32)
/// 21      n     the keyholder's Stanza (strongroom-keyholder format), wrapping the member
///               key with purpose "strongroom/v1/member-key", subject vault id ‖ member id
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyholderRecord {
    /// The stanza.
    pub stanza: Stanza,
    /// When it was added (Unix seconds).
    pub created_at: u64,
    /// When it last unlocked (Unix seconds), 0 if never.
    pub last_used_at: u64,
}

impl KeyholderRecord {
    /// The version byte.
    pub const VERSION: u8 = 1;
    const FORMAT: &'static str = "keyholder record";

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let stanza = self.stanza.encode();
        let mut w = Writer::with_capacity(21 + stanza.len());
        w.u8(Self::VERSION)
            .u64(self.created_at)
            .u64(self.last_used_at)
            .var_bytes(&stanza);
        w.into_vec()
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let created_at = r.u64("created at")?;
        let last_used_at = r.u64("last used at")?;
        let stanza = Stanza::decode(r.var_bytes("stanza", Stanza::MAX_BODY + 14)?)?;
        r.finish()?;
        Ok(Self {
            stanza,
            created_at,
            last_used_at,
        })
    }

    /// The listing view.
    pub fn info(&self) -> KeyholderInfo {
        KeyholderInfo {
            kind: self.stanza.kind,
            id: self.stanza.id,
            created_at: self.created_at,
            last_used_at: (self.last_used_at != 0).then_some(self.last_used_at),
        }
    }
}

impl fmt::Debug for KeyholderRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyholderRecord({:?}, created {}, last used {})",
            self.stanza, self.created_at, self.last_used_at
        )
    }
}

/// A keyholder as listed: no secret, no stanza body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyholderInfo {
    /// The kind.
    pub kind: KeyholderKind,
    /// The stanza id (non-secret), used to remove it.
    pub id: [u8; 8],
    /// When it was added (Unix seconds).
    pub created_at: u64,
    /// When it last unlocked the member (Unix seconds).
    pub last_used_at: Option<u64>,
}

impl KeyholderInfo {
    /// The id as hex.
    pub fn id_hex(&self) -> String {
        hex_id(self.id)
    }
}

/// A loaded record with its version (for compare-and-swap).
pub(crate) struct Loaded {
    pub(crate) record: KeyholderRecord,
    pub(crate) version: u64,
}

/// The keyholder records of `member`, checked to be in their own place.
pub(crate) fn load(store: &dyn ReadView, member: MemberId) -> Result<Vec<Loaded>, SharingError> {
    let rows = strongroom_store::scan_all(
        store,
        Table::Keyholders,
        &ScanRange::prefix(member.as_bytes().to_vec()),
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let record = KeyholderRecord::decode(&row.value)
            .map_err(|_| VerifyError::MalformedKeyholder { member })?;
        if row.key != row_key(member, record.stanza.id) {
            return Err(VerifyError::MalformedKeyholder { member }.into());
        }
        out.push(Loaded {
            record,
            version: row.version,
        });
    }
    Ok(out)
}

/// The keyholders of `member`, without secrets (no unlock needed).
pub fn list_keyholders(
    store: &dyn ReadView,
    member: MemberId,
) -> Result<Vec<KeyholderInfo>, SharingError> {
    Ok(load(store, member)?
        .iter()
        .map(|l| l.record.info())
        .collect())
}

/// Wraps `member_key` with every keyholder and adds the records to `batch` (each must be
/// new).
pub(crate) fn put_new(
    batch: &mut Batch,
    vault: VaultId,
    member: MemberId,
    member_key: &Key256,
    keyholders: &[&dyn Keyholder],
) -> Result<Vec<KeyholderInfo>, SharingError> {
    if keyholders.is_empty() {
        return Err(SharingError::NoKeyholder);
    }
    let subject = subject(vault, member);
    let ctx = wrap_context(&subject);
    let created_at = now();
    let mut infos = Vec::with_capacity(keyholders.len());
    for kh in keyholders {
        let stanza = kh.wrap(&ctx, member_key)?;
        if infos.iter().any(|i: &KeyholderInfo| i.id == stanza.id) {
            return Err(SharingError::KeyholderExists {
                member,
                id: stanza.id_hex(),
            });
        }
        let record = KeyholderRecord {
            stanza,
            created_at,
            last_used_at: 0,
        };
        infos.push(record.info());
        batch.put(
            Table::Keyholders,
            row_key(member, record.stanza.id),
            record.encode(),
            Expect::Absent,
        );
    }
    Ok(infos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = KeyholderRecord {
            stanza: Stanza {
                kind: KeyholderKind::RecoveryKey,
                id: [3; 8],
                body: vec![1, 2, 3],
            },
            created_at: 1_700_000_000,
            last_used_at: 0,
        };
        let b = r.encode();
        assert_eq!(b.len(), 21 + 14 + 3);
        assert_eq!(KeyholderRecord::decode(&b).unwrap(), r);
        assert!(KeyholderRecord::decode(&b[..b.len() - 1]).is_err());
        let info = r.info();
        assert_eq!(info.last_used_at, None);

        // The largest stanza fits; a length field one byte beyond it is refused by the
        // record's own bound, before the stanza is parsed.
        let largest = KeyholderRecord {
            stanza: Stanza {
                kind: KeyholderKind::RawKek,
                id: [4; 8],
                body: vec![7; Stanza::MAX_BODY],
            },
            created_at: 1,
            last_used_at: 2,
        };
        let b = largest.encode();
        assert_eq!(b.len(), 21 + 14 + Stanza::MAX_BODY);
        assert_eq!(KeyholderRecord::decode(&b).unwrap(), largest);
        let mut over = b[..17].to_vec();
        over.extend_from_slice(&(Stanza::MAX_BODY as u32 + 15).to_be_bytes());
        over.extend_from_slice(&b[21..]);
        over.push(0);
        assert_eq!(
            KeyholderRecord::decode(&over).unwrap_err(),
            DecodeError::TooLong {
                format: "keyholder record",
                field: "stanza",
                len: Stanza::MAX_BODY + 15,
                max: Stanza::MAX_BODY + 14,
            }
        );
        assert_eq!(info.id_hex(), "0303030303030303");
        assert_eq!(info.kind, KeyholderKind::RecoveryKey);
    }
}
