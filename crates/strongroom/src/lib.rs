#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod age_pq;
#[cfg(feature = "tokio")]
mod asynchronous;
mod audit;
mod error;
mod export;
mod fsutil;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod index_entry;
mod members;
mod meta;
mod pins;
mod records;
mod replica;
mod rotation;
mod scoped;
mod snapshot;
mod status;
mod vault;

pub use age_pq::{HybridIdentity, HybridRecipient, is_hybrid_recipient};
#[cfg(feature = "tokio")]
pub use asynchronous::AsyncVault;
pub use audit::{Action, AuditEntry, AuditReport};
pub use error::VaultError;
pub use export::{
    ExportFormat, ExportReport, ExportTarget, ImportReport, decrypt_age, is_env_name,
};
pub use members::{ExposedSecret, IdentityFile, MemberInfo, RemovalReport};
pub use pins::{FilePinStore, MemoryPinStore, PinStatus, PinStore};
pub use records::{
    MAX_NAME_LEN, MAX_NAMESPACE_LEN, MAX_VALUE_LEN, NewSecret, PutManyReport, SECRETS_PAGE, Secret,
    SecretMeta, Secrets, validate_name, validate_namespace,
};
pub use rotation::{
    PendingRewrap, Progress, PurgeReport, QuarantinedVersion, RotateOptions, RotationReport,
};
pub use scoped::Namespace;
pub use snapshot::{
    PreparedRestore, RestoreOptions, RestoreReport, SnapshotFile, SnapshotInfo,
    SnapshotVerification, restore_snapshot, verify_snapshot,
};
pub use status::{DoctorOptions, DoctorReport, Finding, Level, Status};
pub use vault::{CreateOptions, CreateReport, LockedVault, PendingVault, UnlockOptions, Vault};

/// Re-exported: the age crate whose recipient and identity traits the hybrid age types
/// implement.
pub use age;
/// Re-exported: the crates whose types appear in this API.
pub use strongroom_crypto as crypto;
pub use strongroom_envelope::{Epoch, Suite};
pub use strongroom_recovery as recovery;
pub use strongroom_sharing as sharing;
pub use strongroom_store as store;
