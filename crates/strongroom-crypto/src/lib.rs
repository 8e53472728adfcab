#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aead;
pub mod encoding;
mod error;
mod ids;
pub mod kdf;
pub mod labels;
pub mod random;
mod secret;

pub use error::{CryptoError, DecodeError};
pub use ids::{KeyId, MemberId, RecordId, ScopeId, VaultId};
pub use kdf::Argon2idParams;
pub use secret::{Key256, SecretBytes};

/// Re-exported: the secret wrapper crate used in strongroom's public API.
pub use secrecy;
/// Re-exported: constant-time comparisons used in strongroom's public API.
pub use subtle;
/// Re-exported: zeroizing helpers.
pub use zeroize;
