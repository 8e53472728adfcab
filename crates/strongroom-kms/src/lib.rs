#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod keyholder;

pub use config::{AwsCredentials, KmsConfig};
pub use keyholder::{KmsKeyInfo, KmsKeyholder};

/// Re-exported: the secret wrapper used for the secret access key and session token.
pub use secrecy;
/// Re-exported: the keyholder core this keyholder implements.
pub use strongroom_keyholder;
