//! Errors of the vault API.

use strongroom_crypto::{CryptoError, DecodeError};
use strongroom_envelope::{EnvelopeError, Epoch};
use strongroom_recovery::{CustodyError, KeyholderError};
use strongroom_sharing::SharingError;
use strongroom_store::StoreError;

/// A vault operation failed.
///
/// Variants say what went wrong and, where there is one, what to do. None carries a
/// secret value or key material. Names of secrets appear only where the caller gave them
/// ([`VaultError::NotFound`], invalid names in imports and `env_vars`); errors about stored
/// data name record ids instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The store failed (I/O, a backend error, a conflict that survived the retries).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keyholder could not unlock the vault (wrong passphrase, wrong recovery key,
    /// wrong `ENCRYPTION_KEY`, wrong PIN or custody key, a stanza that fails
    /// authentication). Nothing was written; the failure is recorded for the audit log.
    #[error("unlock failed: {0}")]
    Unlock(KeyholderError),
    /// The place a keyholder keeps its key could not be used (keyring entry or HSM token
    /// missing, KMS unreachable, permission denied): not a failed unlock attempt, and not
    /// recorded as one. [`CustodyError::is_retryable`] says whether a retry can help.
    #[error(transparent)]
    Custody(CustodyError),
    /// A membership operation or the verification of stored membership data failed.
    #[error(transparent)]
    Sharing(SharingError),
    /// A record did not open: wrong key or modified data.
    #[error("record {record} does not decrypt: {source}")]
    Record {
        /// The record id (hex, not the name).
        record: String,
        /// What failed.
        #[source]
        source: EnvelopeError,
    },
    /// Stored data did not parse.
    #[error("corrupt {what}: {source}")]
    Corrupt {
        /// Which stored item.
        what: &'static str,
        /// The parse error.
        #[source]
        source: DecodeError,
    },
    /// Stored data is inconsistent (a row points somewhere it should not).
    #[error("inconsistent vault data: {reason}")]
    Inconsistent {
        /// What is wrong (never secret).
        reason: String,
    },
    /// A primitive failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store holds no vault.
    #[error("no vault in this store: create one first (or check the path/URL)")]
    NoVault,
    /// The store already holds a vault.
    #[error("this store already holds a vault: open it instead of creating one")]
    VaultExists,
    /// A schema written by a newer strongroom.
    #[error(
        "the vault was written by a newer strongroom (vault format {found}, this build reads up to {supported}); upgrade strongroom"
    )]
    TooNew {
        /// Format found.
        found: u8,
        /// Newest supported.
        supported: u8,
    },
    /// An invalid argument (namespace, name, option).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// No secret with that name exists in that namespace.
    #[error("no secret named {name:?} in namespace {namespace:?}")]
    NotFound {
        /// The namespace.
        namespace: String,
        /// The name (names are not secret to the caller who asked).
        name: String,
    },
    /// The acting member may not do this.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// Why.
        reason: String,
    },
    /// A record is sealed under an epoch that has been retired.
    #[error(
        "record {record} is still under retired vault-key epoch {epoch}: restore a snapshot taken before that epoch was retired"
    )]
    RetiredEpoch {
        /// The record id (hex).
        record: String,
        /// Its epoch.
        epoch: Epoch,
    },
    /// The audit log failed verification.
    #[error("audit log verification failed at entry {seq}: {reason}")]
    AuditTampered {
        /// The first bad entry.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot file is unusable.
    #[error("snapshot refused: {reason}; the live vault was not touched")]
    Snapshot {
        /// What is wrong.
        reason: String,
    },
    /// Export or import failed.
    #[error("{op} failed: {reason}")]
    Transfer {
        /// `export` or `import`.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A record version has no rows (any more): pruned by a newer write, deleted or
    /// purged. Reads of a named older version report it as not found.
    #[error("record {record} version {version} is not stored (pruned, deleted or purged)")]
    VersionGone {
        /// The record.
        record: strongroom_crypto::RecordId,
        /// The version.
        version: u64,
    },
    /// The pin store holds something unusable.
    #[error("the pins{} cannot be used: {problem}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    PinStore {
        /// The pins file, for a file store.
        path: Option<std::path::PathBuf>,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A read-only handle reads from a replica that has not yet replayed the vault state
    /// this handle (or the pins it was opened with) already verified: a membership change
    /// on the primary, such as a rotation or a member removal, has not reached it. Nothing
    /// is wrong with the data. Retry once the replica has caught up, or read from the
    /// primary ([`VaultError::is_retryable`]).
    #[error(
        "the replica is behind: its membership log has {found} entries but {known} were already verified here; nothing is wrong with the data: retry once it has caught up, or read from the primary"
    )]
    ReplicaBehind {
        /// Entries of the membership log on the replica.
        found: u64,
        /// Entries already verified by this handle or its pins.
        known: u64,
    },
    /// File I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (e.g. `writing snapshot /tmp/x`).
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl VaultError {
    /// Whether the error is a failed unlock (wrong passphrase, key, PIN…), the kind a
    /// caller counts for an audit or rate limit. A custody failure
    /// ([`VaultError::Custody`]) is not one.
    pub fn is_unlock_failure(&self) -> bool {
        matches!(self, VaultError::Unlock(_))
    }

    /// Whether the same call may succeed later without anything being fixed: the store
    /// was unavailable or busy ([`StoreError::is_retryable`]), or a replica was behind.
    pub fn is_retryable(&self) -> bool {
        match self {
            VaultError::ReplicaBehind { .. } => true,
            VaultError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        VaultError::Invalid {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn inconsistent(reason: impl Into<String>) -> Self {
        VaultError::Inconsistent {
            reason: reason.into(),
        }
    }
}

impl From<SharingError> for VaultError {
    fn from(e: SharingError) -> Self {
        match e {
            SharingError::Keyholder(KeyholderError::Custody(c)) => VaultError::Custody(c),
            SharingError::Keyholder(k) => VaultError::Unlock(k),
            SharingError::Store(s) => VaultError::Store(s),
            SharingError::VaultExists => VaultError::VaultExists,
            other => VaultError::Sharing(other),
        }
    }
}
