#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod exact;
mod inspect;
mod keyholder;
mod passphrase;
mod raw_kek;
mod recovery_key;

pub use error::{LoadKekError, ParseRecoveryKeyError};
pub use inspect::StanzaInfo;
pub use passphrase::{
    CALIBRATE_MAX_MEMORY_KIB, PassphraseKeyholder, Profile, calibrate, calibrate_with_limit,
};
pub use raw_kek::RawKek;
pub use recovery_key::{RecoveryKey, RecoveryKeyId, verify_recovery_key};
/// The keyholder core, defined in `strongroom-keyholder` and re-exported here.
pub use strongroom_keyholder::{
    CustodyError, CustodyProblem, KekKeyholder, Keyholder, KeyholderError, KeyholderKind,
    MAX_LOCATOR, Stanza, UnwrapCache, WrapContext, stanza_aad, unwrap_any,
};

/// Re-exported: the secret wrapper crate used in this crate's public API
/// ([`secrecy::SecretString`] passphrases and key texts).
pub use secrecy;
