//! Record writer signatures: how a member signs the record versions it writes, and why a
//! reader refuses a signature ([`WriterRefused`]).
//!
//! A record signature is Ed25519 (RFC 8032, verified strictly) by the writer's logged
//! identity key over
//!
//! ```text
//! "strongroom/v3/record-writer" ‖ 0x00 ‖ digest (32)
//! ```
//!
//! where the digest is computed by the application from what it stores (strongroom's
//! facade: vault id, record id, record version and the payload up to the signature; see
//! `docs/spec/payload.md`). The domain keeps a record signature from ever being taken for a
//! membership log entry's (`"strongroom/v1/member-log" ‖ 0x00 ‖ …`) and the reverse.

use core::fmt;

use ed25519_dalek::{Signature, VerifyingKey};

/// What a record signature signs before the digest.
pub const RECORD_SIGNATURE_DOMAIN: &[u8] = b"strongroom/v3/record-writer\0";

/// The message a record signature is made over.
pub(crate) fn record_message(digest: &[u8; 32]) -> [u8; 60] {
    let mut m = [0u8; 60];
    m[..28].copy_from_slice(RECORD_SIGNATURE_DOMAIN);
    m[28..].copy_from_slice(digest);
    m
}

/// Whether `signature` is a valid record signature over `digest` under the Ed25519 key
/// `key` (as [`Membership::writer_at`](crate::Membership::writer_at) gives it).
///
/// ```
/// # use strongroom_sharing::{Identity, verify_record_signature};
/// let alice = Identity::generate("alice")?;
/// let digest = [7u8; 32];
/// let signature = alice.sign_record(&digest);
/// assert!(verify_record_signature(alice.public().signing_key(), &digest, &signature));
/// assert!(!verify_record_signature(alice.public().signing_key(), &[8u8; 32], &signature));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_record_signature(key: &[u8; 32], digest: &[u8; 32], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(key).is_ok_and(|vk| {
        vk.verify_strict(&record_message(digest), &Signature::from_bytes(signature))
            .is_ok()
    })
}

/// Where a member's write right ended ([`Membership::write_right_lost`](crate::Membership::write_right_lost)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RightEnded {
    /// The log position of the entry at which the member lost the right to write.
    pub at: u64,
    /// The position of the [`EntryBody::Reattested`](crate::EntryBody::Reattested) entry
    /// that recorded the re-attestation of the versions they signed before, if any.
    pub reattested_at: Option<u64>,
}

/// Why a record signature's signer is not accepted at the log position it names
/// ([`Membership::writer_at`](crate::Membership::writer_at)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterRefused {
    /// The signer never was a member of this vault.
    UnknownMember,
    /// The position is after the last entry of the verified log: no writer can have seen
    /// it.
    AfterLogHead {
        /// The last position of the verified log.
        head: u64,
    },
    /// The signer had no right to write records there: read-only then, or not yet or no
    /// longer a member.
    NoWriteRight,
}

impl fmt::Display for WriterRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriterRefused::UnknownMember => {
                f.write_str("the signer never was a member of this vault")
            }
            WriterRefused::AfterLogHead { head } => write!(
                f,
                "it names a membership log position after the last one this client verified ({head}), even after reading the log again: the storage may be withholding log entries"
            ),
            WriterRefused::NoWriteRight => {
                f.write_str("the signer had no right to write records at the log position it names")
            }
        }
    }
}

impl std::error::Error for WriterRefused {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_domain_then_the_digest() {
        let m = record_message(&[0xab; 32]);
        assert_eq!(&m[..], [RECORD_SIGNATURE_DOMAIN, &[0xab; 32]].concat());
        assert_eq!(RECORD_SIGNATURE_DOMAIN.len(), 28);
    }
}
