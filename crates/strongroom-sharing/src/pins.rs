//! [`Pins`]: what a client remembers between loads to detect a storage that rolls back,
//! forks or replaces the membership log.
//!
//! Specified in `docs/spec/pins.md`.

use core::fmt;

use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, VaultId};
use strongroom_envelope::Epoch;

use crate::wrap::read_epoch;
use crate::{Membership, SharingError, VerifyError};

/// The high-water mark of a verified log: the last entry seen, its hash and the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HighWater {
    /// Sequence number of the last verified entry.
    pub seq: u64,
    /// The epoch current at that entry.
    pub epoch: Epoch,
    /// SHA-256 of that entry's encoding.
    pub head: [u8; 32],
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Pinned {
    vault: VaultId,
    genesis_signer: [u8; 32],
    high_water: HighWater,
}

/// What a client pins about a vault: its id, the genesis signer's key and the high-water
/// mark of the log. Caller-persisted (the library does no file I/O): load them before
/// [`unlock`](crate::unlock), save them after every call that returns updated pins.
///
/// Empty pins mean *trust on first use*: the first verified load fills them. Afterwards a
/// log shorter than the high-water mark (rollback), a different entry at the pinned
/// position (fork), or another genesis signer is refused.
///
/// Byte layout (version 1):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       1     0 = empty (nothing follows), 1 = pinned:
/// 2       16    vault id
/// 18      32    genesis signer Ed25519 public key
/// 50      8     high-water sequence number (big-endian u64)
/// 58      4     high-water epoch (big-endian u32)
/// 62      32    high-water head hash
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pins {
    pinned: Option<Pinned>,
}

impl Pins {
    /// The version byte.
    pub const VERSION: u8 = 1;
    const FORMAT: &'static str = "pins";

    /// Empty pins (trust on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is pinned yet.
    pub fn is_empty(&self) -> bool {
        self.pinned.is_none()
    }

    /// The pinned vault.
    pub fn vault_id(&self) -> Option<VaultId> {
        self.pinned.map(|p| p.vault)
    }

    /// The pinned genesis signer key.
    pub fn genesis_signer(&self) -> Option<&[u8; 32]> {
        self.pinned.as_ref().map(|p| &p.genesis_signer)
    }

    /// The pinned high-water mark.
    pub fn high_water(&self) -> Option<HighWater> {
        self.pinned.map(|p| p.high_water)
    }

    /// Refuses pins made for another vault.
    pub(crate) fn check_vault(&self, vault: VaultId) -> Result<(), SharingError> {
        match self.pinned {
            Some(p) if p.vault != vault => Err(SharingError::PinsForOtherVault {
                pinned: p.vault.to_string(),
                requested: vault.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Checks a verified state against the pins.
    pub(crate) fn check(&self, state: &Membership) -> Result<(), VerifyError> {
        let Some(p) = self.pinned else {
            return Ok(());
        };
        if p.vault != state.vault_id() {
            return Err(VerifyError::VaultMismatch);
        }
        if &p.genesis_signer != state.genesis_signer() {
            return Err(VerifyError::GenesisSignerMismatch);
        }
        let pinned_len = p.high_water.seq.saturating_add(1);
        if state.len() < pinned_len {
            return Err(VerifyError::Rollback {
                pinned: pinned_len,
                found: state.len(),
            });
        }
        if state.hash_at(p.high_water.seq) != Some(p.high_water.head) {
            return Err(VerifyError::Fork {
                seq: p.high_water.seq,
            });
        }
        if state.epoch() < p.high_water.epoch {
            return Err(VerifyError::EpochRollback {
                pinned: p.high_water.epoch,
                found: state.epoch(),
            });
        }
        Ok(())
    }

    /// Pins the verified state (moving the high-water mark forward).
    pub(crate) fn update(&mut self, state: &Membership) {
        self.pinned = Some(Pinned {
            vault: state.vault_id(),
            genesis_signer: *state.genesis_signer(),
            high_water: HighWater {
                seq: state.len().saturating_sub(1),
                epoch: state.epoch(),
                head: state.head(),
            },
        });
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(94);
        w.u8(Self::VERSION);
        match &self.pinned {
            None => {
                w.u8(0);
            }
            Some(p) => {
                w.u8(1)
                    .bytes(p.vault.as_bytes())
                    .bytes(&p.genesis_signer)
                    .u64(p.high_water.seq)
                    .u32(p.high_water.epoch.get())
                    .bytes(&p.high_water.head);
            }
        }
        w.into_vec()
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let pinned = match r.u8("state")? {
            0 => None,
            1 => {
                let vault = VaultId::from_bytes(r.array("vault id")?);
                let genesis_signer = r.array("genesis signer")?;
                let seq = r.u64("high-water sequence number")?;
                let epoch = read_epoch(&mut r)?;
                let head = r.array("high-water head")?;
                Some(Pinned {
                    vault,
                    genesis_signer,
                    high_water: HighWater { seq, epoch, head },
                })
            }
            _ => return Err(r.invalid("state", "neither 0 (empty) nor 1 (pinned)")),
        };
        r.finish()?;
        Ok(Self { pinned })
    }
}

impl fmt::Debug for Pins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pinned {
            None => f.write_str("Pins(empty)"),
            Some(p) => write!(
                f,
                "Pins(vault {}, seq {}, epoch {})",
                p.vault, p.high_water.seq, p.high_water.epoch
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let empty = Pins::new();
        assert_eq!(Pins::decode(&empty.encode()).unwrap(), empty);
        assert_eq!(empty.encode(), vec![1, 0]);
        let full = Pins {
            pinned: Some(Pinned {
                vault: VaultId::from_bytes([7; 16]),
                genesis_signer: [8; 32],
                high_water: HighWater {
                    seq: 5,
                    epoch: Epoch(2),
                    head: [9; 32],
                },
            }),
        };
        let bytes = full.encode();
        assert_eq!(bytes.len(), 94);
        assert_eq!(Pins::decode(&bytes).unwrap(), full);
        assert!(Pins::decode(&bytes[..93]).is_err());
        let mut bad = bytes.clone();
        bad[1] = 2;
        assert!(Pins::decode(&bad).is_err());
        assert!(Pins::decode(&[2, 0]).is_err());
        let other = VaultId::from_bytes([1; 16]);
        assert!(matches!(
            full.check_vault(other),
            Err(SharingError::PinsForOtherVault { .. })
        ));
        assert!(format!("{full:?}").contains("seq 5"));
    }
}
