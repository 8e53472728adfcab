#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod keyholder;

pub use keyholder::{
    Pkcs11Config, Pkcs11Keyholder, Pkcs11Location, Pkcs11Mechanism, SOFTHSM_PATHS,
    TPM2_PKCS11_PATHS, find_softhsm, find_tpm2_pkcs11,
};

/// Re-exported: the secret wrapper used for the user PIN.
pub use secrecy;
