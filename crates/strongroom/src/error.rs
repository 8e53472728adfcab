//! Errors of the vault API.

use strongroom_crypto::{CryptoError, DecodeError};
use strongroom_envelope::{EnvelopeError, Epoch};
use strongroom_recovery::{CustodyError, KeyholderError};
use strongroom_sharing::{Role, SharingError};
use strongroom_store::StoreError;

/// A vault operation failed.
///
/// Variants say what went wrong and, where there is one, what to do. None carries a
/// secret value or key material. Names of secrets appear only where the caller gave them
/// ([`VaultError::NotFound`], invalid names in imports and `env_vars`); errors about stored
/// data name record ids instead.
///
/// # Where errors of the lower crates go
///
/// Every error of the crates below the facade lands in exactly one variant:
///
/// | source | variant |
/// |---|---|
/// | [`StoreError`] (any) | [`VaultError::Store`] |
/// | [`SharingError::Store`] | [`VaultError::Store`] |
/// | [`SharingError::Keyholder`] with [`KeyholderError::Custody`] | [`VaultError::Custody`] |
/// | [`SharingError::Keyholder`], any other | [`VaultError::Unlock`] |
/// | [`SharingError::VaultExists`] | [`VaultError::VaultExists`] |
/// | every other [`SharingError`] (membership rules, log verification, pins, grants) | [`VaultError::Sharing`] |
/// | [`EnvelopeError`] while opening a record | [`VaultError::Record`], with the record id |
/// | [`DecodeError`] of a stored row | [`VaultError::Corrupt`], naming the row kind |
/// | [`CryptoError`] (randomness, a primitive) | [`VaultError::Crypto`] |
/// | [`std::io::Error`] of a file the facade writes (snapshots, pins) | [`VaultError::Io`] or [`VaultError::PinStore`] |
///
/// Errors the facade finds itself carry typed fields: [`Inconsistency`],
/// [`SnapshotProblem`], [`AuditTamper`], [`TransferProblem`], the refused [`Role`].
/// [`VaultError::is_retryable`] and [`VaultError::is_unlock_failure`] are the two
/// questions a caller usually asks.
///
/// ```
/// use strongroom::{VaultError, sharing::Role};
///
/// let e = VaultError::PermissionDenied { role: Some(Role::ReadOnly) };
/// assert_eq!(e.to_string(), "permission denied: read-only members cannot write secrets");
/// assert!(!e.is_retryable() && !e.is_unlock_failure());
/// assert!(VaultError::Busy { operation: "put" }.is_retryable());
/// ```
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
    /// Stored data is inconsistent: a row is missing, points somewhere it should not, or
    /// fails a MAC. `kind` says which; `detail` names the rows (never a secret).
    #[error("inconsistent vault data: {detail}")]
    Inconsistent {
        /// What kind of inconsistency.
        kind: Inconsistency,
        /// Which rows, and what to do.
        detail: String,
    },
    /// Other writers kept winning the race for the same rows: the operation gave up after
    /// its retries and wrote nothing. Retryable ([`VaultError::is_retryable`]).
    #[error(
        "{operation}: too many concurrent writers, gave up after several retries; nothing was written, retry later"
    )]
    Busy {
        /// The operation (`put`, `membership change`, `audit append`).
        operation: &'static str,
    },
    /// The call was cut off before its outcome was known (the async handle's worker
    /// stopped under it): it may or may not have happened. Read again to find out.
    #[error(
        "the call was abandoned before it finished (its runtime or worker thread stopped): it may or may not have happened; read again"
    )]
    OutcomeUnknown,
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
    /// The acting member may not do this: a read-only member (`role` is
    /// `Some(Role::ReadOnly)`) cannot write secrets, and a former member (`role` is `None`)
    /// cannot do anything.
    #[error("permission denied: {}", match role {
        Some(r) => format!("{} members cannot write secrets", r.name()),
        None => "this member is no longer a member of the vault".to_owned(),
    })]
    PermissionDenied {
        /// The member's role; `None` for a former member.
        role: Option<Role>,
    },
    /// A scoped member asked for a namespace outside its scopes: it holds no key that
    /// reaches it, so it cannot read, list, write or even test names there.
    #[error(
        "namespace {namespace:?} is outside this member's scopes: it holds no key for it; ask an owner or admin to grant the scope that covers it"
    )]
    OutOfScope {
        /// The namespace asked for.
        namespace: String,
    },
    /// A record version is sealed under a key this scoped member does not hold: a version
    /// of a scope's secret written before the scope existed (under a vault key, for full
    /// members only), or one planted under a key nobody was granted.
    #[error(
        "record {record} version {version} is sealed under a key this member does not hold (written before its scope existed, or planted): a full member can read it, or write the secret again"
    )]
    KeyNotHeld {
        /// The record id (hex).
        record: String,
        /// The record version.
        version: u64,
    },
    /// A record version's writer is not accepted: it is unsigned where signatures are
    /// required, or signed by someone without the right to write records (a read-only or a
    /// former member, someone outside the vault), or its signature is false. Whoever wrote it
    /// had storage write access but not the vault's write right; the version is not
    /// returned.
    #[error(
        "record {record} version {version} is refused: {problem}. It was written to the storage by someone without write access to this vault; write the secret again, or restore it from a snapshot"
    )]
    Writer {
        /// The record id (hex).
        record: String,
        /// The record version.
        version: u64,
        /// What is wrong with its writer.
        problem: crate::WriterProblem,
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
    #[error("audit log verification failed at entry {seq}: {detail}")]
    AuditTampered {
        /// The first bad entry.
        seq: u64,
        /// What was done to the log.
        kind: AuditTamper,
        /// What is wrong, in words.
        detail: String,
    },
    /// A snapshot file is unusable.
    #[error("snapshot refused: {detail}; the live vault was not touched")]
    Snapshot {
        /// Why it was refused.
        kind: SnapshotProblem,
        /// What is wrong, in words.
        detail: String,
    },
    /// Export or import failed.
    #[error("{op} failed: {detail}")]
    Transfer {
        /// Export or import.
        op: TransferOp,
        /// What failed.
        kind: TransferProblem,
        /// What is wrong, in words.
        detail: String,
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
            VaultError::ReplicaBehind { .. } | VaultError::Busy { .. } => true,
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

    pub(crate) fn inconsistent(kind: Inconsistency, detail: impl Into<String>) -> Self {
        VaultError::Inconsistent {
            kind,
            detail: detail.into(),
        }
    }

    pub(crate) fn snapshot(kind: SnapshotProblem, detail: impl Into<String>) -> Self {
        VaultError::Snapshot {
            kind,
            detail: detail.into(),
        }
    }

    pub(crate) fn audit(seq: u64, kind: AuditTamper, detail: impl Into<String>) -> Self {
        VaultError::AuditTampered {
            seq,
            kind,
            detail: detail.into(),
        }
    }

    pub(crate) fn transfer(
        op: TransferOp,
        kind: TransferProblem,
        detail: impl Into<String>,
    ) -> Self {
        VaultError::Transfer {
            op,
            kind,
            detail: detail.into(),
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

/// What kind of inconsistency [`VaultError::Inconsistent`] found in stored data.
///
/// Every kind means the store holds something strongroom did not write that way: a
/// damaged or partly restored database, or storage tampering. None is fixed by retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Inconsistency {
    /// A membership log without a vault header: creating the vault was interrupted.
    InterruptedCreate,
    /// A row another row points at is missing: a record version's body or wrapped data
    /// key, the audit log's head, a listed keyholder.
    MissingRow,
    /// A row points at a row of another secret or another vault.
    Misdirected,
    /// A MAC over vault metadata (settings, the epoch timestamp, a job row) does not
    /// verify: modified outside strongroom.
    MacMismatch,
    /// A stored row is shorter than its format.
    Truncated,
    /// A counter (a secret's version, the audit sequence) is at its largest value.
    Exhausted,
    /// A key the data needs is not available to this member (the metadata key of every
    /// readable epoch, the key of a rotation's target epoch).
    MissingKey,
    /// A rotation pass left record versions under an older epoch: run it again.
    Unfinished,
    /// A keyholder that was just added does not unlock the vault; the old one was kept.
    KeyholderUnusable,
    /// An internal failure (a worker thread panicked).
    Internal,
}

/// What was done to the audit log ([`VaultError::AuditTampered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditTamper {
    /// Entries are missing: a gap, or entries removed from its end.
    Removed,
    /// An entry does not parse.
    Malformed,
    /// An entry's MAC does not verify: modified or forged.
    Forged,
    /// An entry was moved from another position.
    Moved,
    /// The hash chain is broken: an earlier entry was modified, removed or reordered.
    ChainBroken,
    /// The log differs from the one verified earlier at the same length.
    Rewritten,
}

/// Why a snapshot was refused ([`VaultError::Snapshot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnapshotProblem {
    /// Not a strongroom snapshot file (or a directory).
    NotASnapshot,
    /// Written by a newer strongroom (file format or store schema).
    TooNew,
    /// Damaged: truncated, bad lengths, rows out of order, unknown tables, bad counts.
    Corrupt,
    /// The integrity hash does not match: the file was modified or damaged.
    Modified,
    /// The file changed while it was being read.
    ChangedWhileRead,
    /// The rows hold no usable vault, or records that do not decrypt or pair up.
    Unreadable,
    /// Its membership log is not the one this client verified: another genesis signer,
    /// a fork, or a header naming another vault.
    Forged,
    /// Its membership log is older than the one this client verified: restoring it would
    /// undo membership changes.
    Older,
    /// A snapshot of another vault than the one the store holds.
    OtherVault,
}

/// Export or import ([`VaultError::Transfer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransferOp {
    /// Writing secrets out.
    Export,
    /// Reading secrets in.
    Import,
}

impl std::fmt::Display for TransferOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransferOp::Export => "export",
            TransferOp::Import => "import",
        })
    }
}

/// What failed in an export or import ([`VaultError::Transfer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransferProblem {
    /// The request does not fit the format (e.g. dotenv of several namespaces, no
    /// recipient given).
    Request,
    /// An age recipient or identity is invalid.
    Key,
    /// The input does not parse as the format.
    Input,
    /// The age payload does not decrypt.
    Decrypt,
    /// Writing or encoding the output failed.
    Output,
}
