#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod keyholder;

pub use config::{MAX_NAME, TransitAuth, TransitConfig};
pub use keyholder::{TransitKeyInfo, TransitKeyholder, TransitLocation};

/// Re-exported: the secret wrapper used for tokens and AppRole secret ids.
pub use secrecy;
/// Re-exported: the keyholder core this keyholder implements.
pub use strongroom_keyholder;
