//! Errors of the crypto layer.

use crate::kdf::Argon2idParams;

/// A cryptographic operation failed.
///
/// Authentication failures are the single opaque [`CryptoError::Decrypt`]: a caller learns
/// that a key, tag, nonce or associated data did not match, never which.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Decryption failed: wrong key, modified data or mismatched context.
    #[error("decryption failed: wrong key, or the data was modified or moved")]
    Decrypt,
    /// An input had the wrong length.
    #[error("invalid {what} length: expected {expected} bytes, got {got}")]
    InvalidLength {
        /// What was wrong.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A text encoding (hex) was malformed.
    #[error("invalid {what}: not valid hexadecimal")]
    InvalidEncoding {
        /// What was being parsed.
        what: &'static str,
    },
    /// A suite id is not known to this version of strongroom.
    #[error("unknown cipher suite id {id}: written by a newer strongroom, or corrupt")]
    UnknownSuite {
        /// The id found.
        id: u8,
    },
    /// A message is too long for the cipher.
    #[error("message too long for the cipher")]
    TooLong,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// KDF parameters are below the enforced floor.
    #[error(
        "key-derivation parameters {params} are below the enforced floor {floor}: refusing to use them (a storage downgrade?)",
        floor = Argon2idParams::FLOOR
    )]
    KdfBelowFloor {
        /// The refused parameters.
        params: Argon2idParams,
    },
    /// KDF parameters are above the accepted ceiling.
    #[error(
        "key-derivation parameters {params} exceed the accepted ceiling {ceiling}: refusing to run them",
        ceiling = Argon2idParams::CEILING
    )]
    KdfAboveCeiling {
        /// The refused parameters.
        params: Argon2idParams,
    },
    /// The KDF itself reported an error.
    #[error("key derivation failed: {reason}")]
    Kdf {
        /// The KDF's message (never contains secret input).
        reason: String,
    },
}

/// Untrusted bytes did not parse.
///
/// Every variant names the format and, where it applies, the field, so an operator can tell
/// a truncated row from one written by a newer version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a field.
    #[error("{format}: truncated at {field}: needed {needed} bytes, {available} left")]
    Truncated {
        /// The format.
        format: &'static str,
        /// The field.
        field: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The version byte is not one this build reads.
    #[error(
        "{format}: unknown version {version} (this build reads up to version {supported}); upgrade strongroom or check the data is not corrupt"
    )]
    UnknownVersion {
        /// The format.
        format: &'static str,
        /// The version found.
        version: u8,
        /// The newest version supported.
        supported: u8,
    },
    /// Bytes were left after the last field.
    #[error("{format}: {count} unexpected trailing bytes")]
    TrailingBytes {
        /// The format.
        format: &'static str,
        /// How many.
        count: usize,
    },
    /// A length prefix exceeds what the format allows.
    #[error("{format}: {field} is {len} bytes, more than the maximum {max}")]
    TooLong {
        /// The format.
        format: &'static str,
        /// The field.
        field: &'static str,
        /// Declared length.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// A field has a value the format does not allow.
    #[error("{format}: invalid {field}: {reason}")]
    Invalid {
        /// The format.
        format: &'static str,
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}
