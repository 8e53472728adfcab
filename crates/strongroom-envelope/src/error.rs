//! Errors of the envelope layer.

use strongroom_crypto::{CryptoError, DecodeError, KeyId};

use crate::Epoch;

/// Sealing or opening a record failed.
///
/// Authentication failures (wrong key, a modified, truncated, moved or replayed body or
/// wrapped DEK) are all [`EnvelopeError::Decrypt`]: no oracle tells which. Structural
/// problems (unknown version or suite, a header that does not parse, a vault key of the
/// wrong epoch) are precise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Authentication failed.
    #[error(
        "record does not decrypt: wrong vault key, or the body or wrapped key was modified, truncated or moved from another record"
    )]
    Decrypt,
    /// The bytes do not parse as this format.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The wrapped DEK was made under another vault key than the one given.
    #[error(
        "wrapped data key belongs to vault key epoch {needed_epoch} (key id {needed_key_id}), but the key given is epoch {given_epoch} (key id {given_key_id}); open it with that epoch's key"
    )]
    WrongVaultKey {
        /// Epoch named in the wrapped DEK.
        needed_epoch: Epoch,
        /// Key id named in the wrapped DEK.
        needed_key_id: KeyId,
        /// Epoch of the key given.
        given_epoch: Epoch,
        /// Key id of the key given.
        given_key_id: KeyId,
    },
    /// The header names a record version other than the one the caller expects.
    #[error(
        "body header says record version {found}, the caller expected {expected}: the row was replayed or moved"
    )]
    VersionMismatch {
        /// Version in the header.
        found: u64,
        /// Version from the context.
        expected: u64,
    },
    /// A primitive failed (randomness, cipher limits, unknown suite).
    #[error(transparent)]
    Crypto(CryptoError),
    /// Reading or writing a stream failed.
    #[error("stream I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<CryptoError> for EnvelopeError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Decrypt => EnvelopeError::Decrypt,
            other => EnvelopeError::Crypto(other),
        }
    }
}

impl From<EnvelopeError> for std::io::Error {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Io(io) => io,
            EnvelopeError::Decrypt => std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            other => std::io::Error::other(other),
        }
    }
}
