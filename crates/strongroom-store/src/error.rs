//! The one error type of every store operation.

use std::fmt;

use crate::{Generation, Table};

/// How many key bytes a [`StoreError::Conflict`] message shows in hex before eliding.
const KEY_DISPLAY_BYTES: usize = 64;

/// Why a store operation failed.
///
/// Errors never carry values (which may be large and are the stored data itself); a
/// conflict names the table and the key, which are identifiers.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// A compare-and-swap precondition ([`Expect`](crate::Expect)) or a log append did not
    /// hold: another writer changed the row first. Nothing of the batch was applied.
    #[error(
        "write conflict on {table}/{}: the row changed since it was read (or the log head moved); nothing was applied, retry after re-reading",
        KeyHex(key)
    )]
    Conflict {
        /// Table of the row that did not match.
        table: Table,
        /// Key of the row that did not match.
        key: Vec<u8>,
    },
    /// The request itself is invalid (bad scan limit, append to a non-log table, ...);
    /// retrying the same request fails the same way.
    #[error("invalid store request: {reason}")]
    InvalidRequest {
        /// What is wrong with the request.
        reason: String,
    },
    /// Stored data does not have the shape the store expects (for example a log key that
    /// is not 8 bytes). Restore the store from a backup or inspect it with `doctor`.
    #[error("store data in table {table} is corrupt: {reason}; restore from a backup")]
    Corrupt {
        /// The table holding the bad data.
        table: Table,
        /// What is wrong.
        reason: String,
    },
    /// The database was written by a newer strongroom; upgrade strongroom to open it.
    #[error(
        "the store's schema version {found} is newer than the supported {supported}; upgrade strongroom to open it"
    )]
    SchemaTooNew {
        /// Schema version found in the database.
        found: u32,
        /// Highest schema version this build understands.
        supported: u32,
    },
    /// The backend is temporarily unreachable or busy (server down, lock timeout); retry later.
    #[error("store unavailable: {reason}; retry later")]
    Unavailable {
        /// What was unavailable.
        reason: String,
    },
    /// The store refuses writes: it is a read-only replica (a PostgreSQL hot standby), or
    /// it was opened read-only. Reads work; send writes to the primary. Retrying on the
    /// same store fails the same way until the server is promoted.
    #[error("the store is read-only: {reason}")]
    ReadOnly {
        /// Why it is read-only and where writes go instead.
        reason: String,
    },
    /// The backend reported an error strongroom does not classify.
    #[error("{backend} store error: {source}")]
    Backend {
        /// The backend name (`"sqlite"`, `"postgres"`, ...).
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A failure injected by a test wrapper (`FaultyStore`) at operation number `op`.
    #[error("injected failure at store operation {op}")]
    Injected {
        /// The operation counter value at which the failure was injected.
        op: u64,
    },
    /// The store's content was replaced ([`Store::replace_all`](crate::Store::replace_all):
    /// a snapshot was restored) after the reads this batch was built from; nothing was
    /// applied. Those reads describe data that no longer exists: reopen the vault.
    #[error(
        "the store was replaced (a snapshot was restored) since this handle read it: generation {expected} became {found}; nothing was applied, reopen the vault"
    )]
    GenerationChanged {
        /// The generation the batch was built in.
        expected: Generation,
        /// The store's generation now.
        found: Generation,
    },
}

impl StoreError {
    /// Whether this is a [`StoreError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether retrying the operation (after re-reading, for a conflict) may succeed:
    /// conflicts, unavailability and injected faults. A [`StoreError::GenerationChanged`]
    /// is not: the handle itself is out of date.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. }
                | StoreError::Unavailable { .. }
                | StoreError::Injected { .. }
        )
    }

    /// Checks a batch's required generation against the store's `current` one (for
    /// backends, inside the commit's transaction).
    pub fn check_generation(batch: &crate::Batch, current: Generation) -> Result<(), StoreError> {
        match batch.generation() {
            Some(expected) if expected != current => Err(StoreError::GenerationChanged {
                expected,
                found: current,
            }),
            _ => Ok(()),
        }
    }

    /// Whether this is a [`StoreError::ReadOnly`]: the store refuses writes.
    pub fn is_read_only(&self) -> bool {
        matches!(self, StoreError::ReadOnly { .. })
    }

    /// Shorthand for [`StoreError::InvalidRequest`].
    pub fn invalid(reason: impl Into<String>) -> Self {
        StoreError::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StoreError::Conflict`].
    pub fn conflict(table: Table, key: &[u8]) -> Self {
        StoreError::Conflict {
            table,
            key: key.to_vec(),
        }
    }

    /// Shorthand for [`StoreError::Backend`].
    pub fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// Displays a key as hex, eliding past [`KEY_DISPLAY_BYTES`].
struct KeyHex<'a>(&'a [u8]);

impl fmt::Display for KeyHex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<empty key>");
        }
        let shown = &self.0[..self.0.len().min(KEY_DISPLAY_BYTES)];
        f.write_str(&hex::encode(shown))?;
        if self.0.len() > KEY_DISPLAY_BYTES {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_display_names_table_and_hex_key() {
        let e = StoreError::conflict(Table::Deks, &[0x00, 0xab, 0xff]);
        let s = e.to_string();
        assert!(s.contains("deks/00abff"), "{s}");
        assert!(s.contains("retry after re-reading"), "{s}");
        assert!(e.is_conflict());
        assert!(e.is_retryable());
    }

    #[test]
    fn long_and_empty_keys_display() {
        let long = StoreError::conflict(Table::Meta, &[7u8; 100]).to_string();
        assert!(long.contains(&"07".repeat(64)), "{long}");
        assert!(!long.contains(&"07".repeat(65)), "{long}");
        assert!(long.contains("100 bytes"), "{long}");
        let empty = StoreError::conflict(Table::Meta, b"").to_string();
        assert!(empty.contains("<empty key>"), "{empty}");
    }

    #[test]
    fn retryability() {
        assert!(!StoreError::invalid("x").is_retryable());
        assert!(
            StoreError::Unavailable {
                reason: "down".into()
            }
            .is_retryable()
        );
        assert!(StoreError::Injected { op: 3 }.is_retryable());
        let ro = StoreError::ReadOnly {
            reason: "a standby".into(),
        };
        assert!(ro.is_read_only() && !ro.is_retryable(), "{ro}");
        assert!(!StoreError::Injected { op: 3 }.is_conflict());
        let replaced = StoreError::GenerationChanged {
            expected: Generation::from_bytes([1; 16]),
            found: Generation::from_bytes([2; 16]),
        };
        assert!(!replaced.is_retryable());
        assert!(
            replaced.to_string().contains("reopen the vault"),
            "{replaced}"
        );
        let corrupt = StoreError::Corrupt {
            table: Table::Audit,
            reason: "bad".into(),
        };
        assert!(!corrupt.is_retryable());
        assert!(corrupt.to_string().contains("audit"));
        let too_new = StoreError::SchemaTooNew {
            found: 9,
            supported: 1,
        };
        assert!(too_new.to_string().contains("upgrade strongroom"));
        let backend = StoreError::backend("sqlite", "disk I/O error");
        assert!(!backend.is_retryable());
        assert!(
            std::error::Error::source(&backend).is_some(),
            "backend error keeps its source"
        );
    }
}
