//! Open options of a SQLite store.

use std::time::Duration;

/// When a commit reaches the disk (SQLite `PRAGMA synchronous`, in WAL mode).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: the WAL is synced at checkpoints, not at every commit. A
    /// power loss or OS crash may lose the last transactions committed before it, but
    /// never corrupts the database; an application crash loses nothing. Fast.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is synced before `commit` returns, so it survives
    /// a power loss. Slower (one fsync per commit).
    Full,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How [`SqliteStore::open`](crate::SqliteStore::open) opens a database.
///
/// ```
/// use std::time::Duration;
/// use strongroom_sqlite::{SqliteOptions, Synchronous};
///
/// let durable = SqliteOptions::default()
///     .with_synchronous(Synchronous::Full)
///     .with_busy_timeout(Duration::from_secs(10));
/// assert_eq!(durable.pool_size, 4);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Durability of commits; see [`Synchronous`]. Default `Normal`.
    pub synchronous: Synchronous,
    /// How long an operation waits for a lock held by another connection or process
    /// before failing with `StoreError::Unavailable`. Default 5 s.
    pub busy_timeout: Duration,
    /// Connections kept open for reuse. More may be opened while many threads work at
    /// once; the extra ones are closed when done. Default 4 (at least 1 is kept).
    pub pool_size: usize,
}

impl SqliteOptions {
    /// Sets [`SqliteOptions::synchronous`].
    #[must_use]
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets [`SqliteOptions::busy_timeout`].
    #[must_use]
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// Sets [`SqliteOptions::pool_size`].
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            pool_size: 4,
        }
    }
}
