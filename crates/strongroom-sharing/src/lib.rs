#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod hazmat;
mod identity;
#[cfg(test)]
mod kat;
mod keyholders;
mod log;
mod pins;
mod recoverability;
mod session;
mod wrap;
mod writer;

pub use error::{SharingError, VerifyError};
pub use identity::{
    Fingerprint, FingerprintConfirmed, Identity, KemKind, MAX_NAME_LEN, PublicIdentity,
    SealedIdentity, XWING_PUBLIC_KEY_LEN,
};
pub use keyholders::{KeyholderInfo, KeyholderRecord, MEMBER_KEY_PURPOSE, list_keyholders};
pub use log::{EntryBody, FormerMember, KeyBinding, LogEntry, Member, Membership, Role};
pub use pins::{HighWater, Pins};
pub use recoverability::{MemberRecoverability, RecoverabilityReport, recoverability};
pub use session::{
    PendingChange, PendingCreate, Removal, Session, Warning, create, join, prepare_create, unlock,
};
pub use wrap::{ChainLink, Grant, XWING_ENC_LEN, recipient_key_hash};
pub use writer::{RECORD_SIGNATURE_DOMAIN, RightEnded, WriterRefused, verify_record_signature};

/// Re-exported: the epoch and vault-key types of the keys a [`Session`] holds.
pub use strongroom_envelope::{Epoch, VaultKey};
