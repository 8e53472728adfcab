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
mod scope;
mod scoped;
mod session;
mod wrap;
mod writer;

pub use error::{SharingError, VerifyError};
pub use identity::{
    Fingerprint, FingerprintConfirmed, Identity, KemKind, MAX_NAME_LEN, PublicIdentity,
    SealedIdentity, XWING_PUBLIC_KEY_LEN,
};
pub use keyholders::{KeyholderInfo, KeyholderRecord, MEMBER_KEY_PURPOSE, list_keyholders};
pub use log::{
    EntryBody, FormerMember, KeyBinding, LogEntry, Member, Membership, Role, Scope, ScopeMember,
};
pub use pins::{HighWater, Pins};
pub use recoverability::{MemberRecoverability, RecoverabilityReport, recoverability};
pub use scope::{LinkUnder, MAX_PREFIX_LEN, ScopeGrant, ScopeLink, scope_covers, validate_prefix};
pub use scoped::{ScopeKeys, ScopedSession, join_scoped, unlock_scoped};
pub use session::{
    PendingChange, PendingCreate, Removal, ScopedRemoval, Session, Warning, create, join,
    prepare_create, unlock,
};
pub use wrap::{ChainLink, Grant, XWING_ENC_LEN, recipient_key_hash};
pub use writer::{RECORD_SIGNATURE_DOMAIN, RightEnded, WriterRefused, verify_record_signature};

/// Re-exported: the epoch and vault-key types of the keys a [`Session`] holds.
pub use strongroom_envelope::{Epoch, VaultKey};

/// Re-exported: the id of a scope.
pub use strongroom_crypto::ScopeId;
