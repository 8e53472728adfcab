#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod entry;
mod keyholder;

pub use entry::{DEFAULT_COLLECTION, MAX_NAME, SecretServiceEntry};
pub use keyholder::{CALL_TIMEOUT, SCHEMA, SecretServiceKeyholder, SecretServiceOptions};

/// Re-exported: the keyholder core this keyholder implements.
pub use strongroom_keyholder;
