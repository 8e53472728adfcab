//! The index entry: the value of a row of [`Table::Index`](strongroom_store::Table), whose
//! key is the secret's blind index.
//!
//! Format 2 (written by this release) carries the head version whole: its wrapped data key
//! and, up to [`INLINE_BODY_MAX`] bytes, its sealed body, so a read of the current value is
//! one store read. Older versions live in their own rows of `Bodies` and `Deks`
//! (key: record id ‖ version, u64 BE), versions `oldest .. head`.
//!
//! ```text
//! offset  size  field
//! 0       1     format version = 2
//! 1       16    record id
//! 17      8     head version (u64 BE, >= 1)
//! 25      8     created at (unix seconds, u64 BE)
//! 33      8     oldest stored version (u64 BE, 1 <= oldest <= head)
//! 41      1     head body placement: 1 = inline (the body follows the wrapped data key),
//!               2 = stored in Bodies under record id ‖ head version
//! 42      122   head wrapped data key (wrapped-DEK format 2, see strongroom-envelope)
//! 164     ..    the head body (placement 1: to the end of the entry; placement 2: nothing)
//! ```
//!
//! Format 1 (read only, written by earlier releases): `version = 1 ‖ record id (16) ‖ head
//! version (u64) ‖ created at (u64)`; every version, the head included, in `Bodies` and
//! `Deks`. A rotation rewrites format-1 entries in format 2 (and their format-1 wrapped
//! data keys in format 2).
//!
//! Specified in `docs/spec/index-entry.md`.

use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, RecordId};
use strongroom_envelope::WrappedDek;

use crate::VaultError;

/// Sealed bodies up to this size live in the index entry (a 64 KiB value stays apart).
pub(crate) const INLINE_BODY_MAX: usize = 8 * 1024;

const FORMAT: &str = "index entry";
const INLINE: u8 = 1;
const STORED: u8 = 2;

/// Where the head version's body is.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum HeadBody {
    /// In the entry.
    Inline(Vec<u8>),
    /// In `Bodies`, under record id ‖ head version.
    Stored,
}

/// The head version's parts, kept in a format-2 entry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) dek: WrappedDek,
    pub(crate) body: HeadBody,
}

/// A decoded index entry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) record: RecordId,
    /// The head (current) version.
    pub(crate) version: u64,
    pub(crate) created_at: u64,
    /// Format 2: the oldest version with rows (versions `oldest .. version` are in
    /// `Bodies`/`Deks`) and the head's parts. `None` in a format-1 entry, whose head is in
    /// the rows too.
    pub(crate) layout: Option<(u64, Head)>,
}

impl core::fmt::Debug for IndexEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IndexEntry")
            .field("record", &self.record)
            .field("version", &self.version)
            .field("format", &if self.layout.is_some() { 2 } else { 1 })
            .finish_non_exhaustive()
    }
}

impl IndexEntry {
    /// The oldest version with rows of its own (format 1: unknown, `None`).
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.layout.as_ref().map(|(o, _)| *o)
    }

    /// The head's parts (format 2).
    pub(crate) fn head(&self) -> Option<&Head> {
        self.layout.as_ref().map(|(_, h)| h)
    }

    /// Encodes the entry in the format it has (format 1 entries stay format 1 until a
    /// writer rewrites them).
    pub(crate) fn encode(&self) -> Vec<u8> {
        match &self.layout {
            None => {
                let mut w = Writer::with_capacity(33);
                w.u8(1)
                    .bytes(self.record.as_bytes())
                    .u64(self.version)
                    .u64(self.created_at);
                w.into_vec()
            }
            Some((oldest, head)) => {
                let body = match &head.body {
                    HeadBody::Inline(b) => Some(b),
                    HeadBody::Stored => None,
                };
                let mut w = Writer::with_capacity(164 + body.map_or(0, Vec::len));
                w.u8(2)
                    .bytes(self.record.as_bytes())
                    .u64(self.version)
                    .u64(self.created_at)
                    .u64(*oldest)
                    .u8(if body.is_some() { INLINE } else { STORED })
                    .bytes(head.dek.as_bytes());
                if let Some(b) = body {
                    w.bytes(b);
                }
                w.into_vec()
            }
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        let (mut entry, inline_from) = Self::parse(bytes)?;
        if let (Some(from), Some((_, head))) = (inline_from, entry.layout.as_mut()) {
            head.body = HeadBody::Inline(bytes[from..].to_vec());
        }
        Ok(entry)
    }

    /// [`decode`](Self::decode) of a row value the entry may keep: an inline head body is
    /// moved out of it rather than copied (a get's hot path).
    pub(crate) fn decode_owned(mut bytes: Vec<u8>) -> Result<Self, VaultError> {
        let (mut entry, inline_from) = Self::parse(&bytes)?;
        if let (Some(from), Some((_, head))) = (inline_from, entry.layout.as_mut()) {
            bytes.drain(..from);
            head.body = HeadBody::Inline(bytes);
        }
        Ok(entry)
    }

    /// The entry in `bytes`, with an empty inline body in its place, and where that body
    /// starts in `bytes`.
    fn parse(bytes: &[u8]) -> Result<(Self, Option<usize>), VaultError> {
        let corrupt = |source| VaultError::Corrupt {
            what: "index entry",
            source,
        };
        let invalid = |field, reason| {
            corrupt(DecodeError::Invalid {
                format: FORMAT,
                field,
                reason,
            })
        };
        let mut r = Reader::new(FORMAT, bytes);
        let format = r.version(&[1, 2]).map_err(corrupt)?;
        let record = RecordId::from_bytes(r.array("record id").map_err(corrupt)?);
        let version = r.u64("version").map_err(corrupt)?;
        let created_at = r.u64("created at").map_err(corrupt)?;
        if version == 0 {
            return Err(invalid("version", "versions start at 1"));
        }
        if format == 1 {
            r.finish().map_err(corrupt)?;
            let entry = Self {
                record,
                version,
                created_at,
                layout: None,
            };
            return Ok((entry, None));
        }
        let oldest = r.u64("oldest version").map_err(corrupt)?;
        if oldest == 0 || oldest > version {
            return Err(invalid(
                "oldest version",
                "must be between 1 and the head version",
            ));
        }
        let placement = r.u8("head body placement").map_err(corrupt)?;
        let dek: [u8; WrappedDek::LEN] = r.array("head data key").map_err(corrupt)?;
        let dek = WrappedDek::from_bytes(&dek).map_err(|e| match e {
            strongroom_envelope::EnvelopeError::Decode(d) => corrupt(d),
            _ => invalid("head data key", "not a wrapped data key"),
        })?;
        if dek.version() != 2 {
            return Err(invalid(
                "head data key",
                "an index entry of format 2 holds a wrapped data key of format 2",
            ));
        }
        let (body, inline_from) = match placement {
            INLINE => (
                HeadBody::Inline(Vec::new()),
                Some(bytes.len() - r.rest().len()),
            ),
            STORED => {
                r.finish().map_err(corrupt)?;
                (HeadBody::Stored, None)
            }
            _ => return Err(invalid("head body placement", "unknown placement")),
        };
        let entry = Self {
            record,
            version,
            created_at,
            layout: Some((oldest, Head { dek, body })),
        };
        Ok((entry, inline_from))
    }
}

/// Row key of a record version in [`Table::Bodies`](strongroom_store::Table) and
/// [`Table::Deks`](strongroom_store::Table): record id ‖ version (u64 BE).
pub(crate) fn version_key(record: RecordId, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(record.as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

pub(crate) fn parse_version_key(key: &[u8]) -> Option<(RecordId, u64)> {
    if key.len() != 24 {
        return None;
    }
    let record = RecordId::from_slice(&key[..16]).ok()?;
    let version = u64::from_be_bytes(key[16..].try_into().ok()?);
    Some((record, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dek(seed: u8) -> WrappedDek {
        let mut b = [seed; WrappedDek::LEN];
        b[0] = 2;
        b[1] = 1;
        WrappedDek::from_bytes(&b).unwrap()
    }

    proptest! {
        #[test]
        fn round_trip(id in any::<[u8; 16]>(), version in 1u64..u64::MAX, created in any::<u64>(),
                      back in any::<u64>(), seed in any::<u8>(),
                      inline in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
                      format1 in any::<bool>()) {
            let layout = (!format1).then(|| {
                let oldest = version - back % version;
                let body = inline.clone().map_or(HeadBody::Stored, HeadBody::Inline);
                (oldest, Head { dek: dek(seed), body })
            });
            let e = IndexEntry { record: RecordId::from_bytes(id), version, created_at: created, layout };
            prop_assert_eq!(IndexEntry::decode(&e.encode()).unwrap(), e.clone());
            prop_assert_eq!(IndexEntry::decode_owned(e.encode()).unwrap(), e);
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let decoded = IndexEntry::decode(&bytes);
            let owned = IndexEntry::decode_owned(bytes);
            prop_assert_eq!(decoded.is_ok(), owned.is_ok());
            if let (Ok(a), Ok(b)) = (decoded, owned) {
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn refuses_what_cannot_be() {
        let e = IndexEntry {
            record: RecordId::from_bytes([1; 16]),
            version: 3,
            created_at: 5,
            layout: Some((
                2,
                Head {
                    dek: dek(7),
                    body: HeadBody::Stored,
                },
            )),
        };
        let ok = e.encode();
        assert_eq!(IndexEntry::decode(&ok).unwrap(), e);
        let mut zero = ok.clone();
        zero[17..25].copy_from_slice(&0u64.to_be_bytes());
        assert!(IndexEntry::decode(&zero).is_err());
        let mut ahead = ok.clone();
        ahead[33..41].copy_from_slice(&4u64.to_be_bytes());
        assert!(
            IndexEntry::decode(&ahead)
                .unwrap_err()
                .to_string()
                .contains("oldest")
        );
        let mut place = ok.clone();
        place[41] = 9;
        assert!(
            IndexEntry::decode(&place)
                .unwrap_err()
                .to_string()
                .contains("placement")
        );
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(
            IndexEntry::decode(&trailing).is_err(),
            "a stored head has nothing after the key"
        );
        assert!(IndexEntry::decode(&ok[..100]).is_err());
        let mut v9 = ok.clone();
        v9[0] = 9;
        assert!(
            IndexEntry::decode(&v9)
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
        // A format-1 wrapped key in a format-2 entry.
        let mut v1key = ok;
        v1key[42] = 1;
        assert!(IndexEntry::decode(&v1key).is_err());
    }
}
