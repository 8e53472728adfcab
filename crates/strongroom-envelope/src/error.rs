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
    /// The body decrypts under its data key but is not the body the wrapped DEK
    /// authenticates (its digest differs): someone who knew the record's data key, such as
    /// a former member, replaced it in storage.
    #[error(
        "the record body was replaced: it is not the body its data key was sealed with (it was written by someone who knew the data key, such as a former member); restore the record from a snapshot, or write it again"
    )]
    BodyMismatch,
    /// The body header and the wrap disagree on the epoch the record was sealed in.
    #[error(
        "the body header says it was sealed in epoch {header}, its wrapped data key says {wrap}: the rows were mixed"
    )]
    SealedEpochMismatch {
        /// Epoch in the body header.
        header: Epoch,
        /// Sealed epoch authenticated by the wrap.
        wrap: Epoch,
    },
    /// A version-1 wrap carries no body digest: rewrapping it needs the body (see
    /// `rewrap_with_body`).
    #[error(
        "this data key is wrapped in format version 1, which carries no body digest: rewrap it together with its body to upgrade it"
    )]
    NeedsBody,
    /// A stream sealer whose inner writer failed: its output is incomplete.
    #[error("the stream failed earlier (a write to its output failed): start the record again")]
    Poisoned,
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
