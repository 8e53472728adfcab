#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod access;
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
mod reattest;
mod records;
mod replica;
mod rotation;
mod scoped;
mod scopes;
mod snapshot;
mod status;
mod vault;
mod writers;

pub use age_pq::{HybridIdentity, HybridRecipient, is_hybrid_recipient};
#[cfg(feature = "tokio")]
pub use asynchronous::AsyncVault;
pub use audit::{Action, AuditEntry, AuditReport};
pub use error::{
    AuditTamper, Inconsistency, SnapshotProblem, TransferOp, TransferProblem, VaultError,
};
pub use export::{
    ExportFormat, ExportReport, ExportTarget, ImportReport, decrypt_age, is_env_name,
};
pub use members::{ExposedSecret, IdentityFile, MemberInfo, RemovalReport};
pub use pins::{FilePinStore, MemoryPinStore, PinStatus, PinStore};
pub use reattest::ReattestReport;
pub use records::{
    MAX_NAME_LEN, MAX_NAMESPACE_LEN, MAX_VALUE_LEN, NewSecret, PutManyReport, SECRETS_PAGE, Secret,
    SecretMeta, Secrets, validate_name, validate_namespace,
};
pub use rotation::{
    PendingRewrap, Progress, PurgeReport, QuarantinedVersion, RotateOptions, RotationReport,
};
pub use scoped::Namespace;
pub use scopes::{ScopeInfo, ScopedRemovalReport, ScopedVault};
pub use snapshot::{
    PreparedRestore, RestoreOptions, RestoreReport, SnapshotFile, SnapshotInfo,
    SnapshotVerification, restore_snapshot, verify_snapshot,
};
pub use status::{DoctorOptions, DoctorReport, Finding, Level, Status};
pub use vault::{CreateOptions, CreateReport, LockedVault, PendingVault, UnlockOptions, Vault};
pub use writers::{Authorship, WriterProblem};

/// Re-exported: the age crate whose recipient and identity traits the hybrid age types
/// implement.
pub use age;
/// Re-exported: the crates whose types appear in this API.
pub use strongroom_crypto as crypto;
pub use strongroom_envelope::{Epoch, Suite};
pub use strongroom_recovery as recovery;
pub use strongroom_store as store;

/// Re-exported with the `sqlite` feature (on by default): the embedded SQLite backend,
/// so `strongroom::sqlite::SqliteStore` opens a vault file without another dependency.
#[cfg(feature = "sqlite")]
pub use strongroom_sqlite as sqlite;

/// Re-exported with the `postgres` feature: the PostgreSQL backend.
#[cfg(feature = "postgres")]
pub use strongroom_postgres as postgres;

/// The membership types of the [`Vault`] API: identities, roles, pins, reports and errors.
///
/// Only what the facade's signatures use. The session-level operations of
/// `strongroom-sharing` (creating a vault, joining, unlocking a session) bypass the
/// facade's records, audit log and pins; a program that really needs them depends on
/// `strongroom-sharing` itself.
///
/// ```
/// use strongroom::sharing::{Identity, Role};
///
/// let bob = Identity::generate("bob")?;
/// assert_eq!(Role::Member.name(), "member");
/// # let _ = bob.public();
/// # Ok::<(), strongroom::sharing::SharingError>(())
/// ```
pub mod sharing {
    pub use strongroom_sharing::{
        Fingerprint, FingerprintConfirmed, HighWater, Identity, KemKind, KeyholderInfo,
        MAX_NAME_LEN, MemberRecoverability, Pins, PublicIdentity, RecoverabilityReport, Role,
        ScopeId, SharingError, VerifyError, Warning, WriterRefused, scope_covers,
    };
}
