#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod entry;
mod keyholder;

pub use entry::{KeyringEntry, MAX_NAME};
pub use keyholder::{ACCESS_HINT, KeyringKeyholder, default_store};

/// Re-exported: the credential-store abstraction the `*_in` constructors take.
pub use keyring_core;
