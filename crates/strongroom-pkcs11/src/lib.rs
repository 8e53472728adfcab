#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod keyholder;

pub use keyholder::{Pkcs11Config, Pkcs11Keyholder, Pkcs11Location, SOFTHSM_PATHS, find_softhsm};

/// Re-exported: the secret wrapper used for the user PIN.
pub use secrecy;
