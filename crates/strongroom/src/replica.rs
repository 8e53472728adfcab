//! Read-only vault handles: a vault opened on a replica (a PostgreSQL hot standby) or on a
//! store opened read-only.
//!
//! Such a handle unlocks without writing (no unlock entry in the audit log, no repair of
//! a missing metadata-key row), serves reads, exports and snapshots (which it cannot
//! audit: the audit log lives on the primary), and refuses every change with
//! [`StoreError::ReadOnly`]. A replica lags behind its primary: a membership log there
//! shorter than what the handle or its pins already verified is reported as
//! [`VaultError::ReplicaBehind`] (retryable), not as a rollback, because the handle
//! accepts nothing older than what it verified either way. A forked log, a log with
//! another genesis, or any other inconsistency is still refused as tampering.

use std::sync::atomic::Ordering;

use strongroom_sharing::{SharingError, VerifyError};
use strongroom_store::StoreError;

use crate::{Vault, VaultError};

impl Vault {
    /// Whether this handle is read-only: the store refuses writes (a replica, or a store
    /// opened read-only). Reads, exports and snapshots work; changes fail with
    /// [`StoreError::ReadOnly`], and a replica that is behind gives
    /// [`VaultError::ReplicaBehind`].
    pub fn is_read_only(&self) -> bool {
        self.inner().read_only.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_read_only(&self) {
        self.inner().read_only.store(true, Ordering::Relaxed);
    }

    /// Refuses a change on a read-only handle, before anything is prepared.
    pub(crate) fn require_writable(&self) -> Result<(), VaultError> {
        if self.is_read_only() {
            return Err(VaultError::Store(StoreError::ReadOnly {
                reason: "this vault handle was opened on a store that refuses writes (a replica, or a store opened read-only): make changes through a handle on the primary".into(),
            }));
        }
        Ok(())
    }
}

impl Vault {
    /// On a read-only handle, a read that found nothing or could not open what it found
    /// is [`VaultError::ReplicaBehind`] when the replica's membership log is shorter than
    /// what this handle verified (the handle then knows keys and names the replica has
    /// not reached; after a failover to a replica further behind, say).
    pub(crate) fn unless_behind<T>(&self, result: Result<T, VaultError>) -> Result<T, VaultError> {
        match result {
            Err(
                VaultError::NotFound { .. }
                | VaultError::Record { .. }
                | VaultError::Inconsistent { .. }
                | VaultError::RetiredEpoch { .. },
            ) if self.is_read_only() => {
                let known = self.pins().high_water().map_or(0, |h| h.seq + 1);
                let found = self
                    .store()
                    .log_head(strongroom_store::Table::MemberLog)?
                    .map_or(0, |h| h + 1);
                if found < known {
                    return Err(VaultError::ReplicaBehind { found, known });
                }
                result
            }
            other => other,
        }
    }
}

/// On a read-only handle, a membership log shorter than what was verified means the
/// replica has not replayed it yet.
pub(crate) fn behind_or(e: VaultError, read_only: bool) -> VaultError {
    match e {
        VaultError::Sharing(SharingError::Verify(VerifyError::Rollback { pinned, found }))
            if read_only =>
        {
            VaultError::ReplicaBehind {
                found,
                known: pinned,
            }
        }
        other => other,
    }
}
