//! `CountingStore`: a wrapper that counts store calls, for tests that pin down how many
//! reads and commits an operation costs (the deterministic side of performance; speed
//! itself is measured by the benches).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    Batch, Committed, Cursor, Generation, Page, ReadView, ScanRange, Snapshot, Store, StoreError,
    Table, TableRow, Versioned,
};

/// How many calls of each kind reached the store (reads through snapshots included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Calls {
    /// `get`.
    pub get: u64,
    /// `get_many`.
    pub get_many: u64,
    /// `scan`.
    pub scan: u64,
    /// `log_head`.
    pub log_head: u64,
    /// `generation`.
    pub generation: u64,
    /// `commit`.
    pub commit: u64,
    /// `snapshot`.
    pub snapshot: u64,
    /// `schema_version`.
    pub schema_version: u64,
    /// `replace_all`.
    pub replace_all: u64,
}

impl Calls {
    /// Calls that read: `get`, `get_many`, `scan`, `log_head` and `generation` (each one
    /// statement, or one round trip on a server).
    pub fn reads(&self) -> u64 {
        self.get + self.get_many + self.scan + self.log_head + self.generation
    }

    /// Every call.
    pub fn total(&self) -> u64 {
        self.reads() + self.commit + self.snapshot + self.schema_version + self.replace_all
    }
}

#[derive(Default)]
struct Counters([AtomicU64; 9]);

impl Counters {
    fn bump(&self, i: usize) {
        self.0[i].fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self, i: usize) -> u64 {
        self.0[i].load(Ordering::SeqCst)
    }
}

const GET: usize = 0;
const GET_MANY: usize = 1;
const SCAN: usize = 2;
const LOG_HEAD: usize = 3;
const GENERATION: usize = 4;
const COMMIT: usize = 5;
const SNAPSHOT: usize = 6;
const SCHEMA: usize = 7;
const REPLACE: usize = 8;

/// A [`Store`] wrapper that counts the calls that reach the inner store.
///
/// ```
/// use strongroom_store::{Batch, CountingStore, Expect, MemoryStore, ReadView, Store, Table};
///
/// let store = CountingStore::new(MemoryStore::new());
/// let mut b = Batch::new();
/// b.put(Table::Meta, b"k", b"v".to_vec(), Expect::Any);
/// store.commit(&b)?;
/// store.get_many(&[(Table::Meta, b"k"), (Table::Index, b"k")])?;
/// let calls = store.take();
/// assert_eq!((calls.commit, calls.get_many, calls.reads()), (1, 1, 1));
/// assert_eq!(store.calls().total(), 0, "take() starts the count again");
/// # Ok::<(), strongroom_store::StoreError>(())
/// ```
pub struct CountingStore<S> {
    inner: S,
    counters: Counters,
}

impl<S> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counters: Counters::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The calls so far.
    pub fn calls(&self) -> Calls {
        let c = |i| self.counters.get(i);
        Calls {
            get: c(GET),
            get_many: c(GET_MANY),
            scan: c(SCAN),
            log_head: c(LOG_HEAD),
            generation: c(GENERATION),
            commit: c(COMMIT),
            snapshot: c(SNAPSHOT),
            schema_version: c(SCHEMA),
            replace_all: c(REPLACE),
        }
    }

    /// The calls so far, and the count starts again from zero.
    pub fn take(&self) -> Calls {
        let calls = self.calls();
        for c in &self.counters.0 {
            c.store(0, Ordering::SeqCst);
        }
        calls
    }
}

impl<S> fmt::Debug for CountingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingStore")
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

fn count<T>(counters: &Counters, i: usize, f: impl FnOnce() -> T) -> T {
    counters.bump(i);
    f()
}

macro_rules! counted_reads {
    () => {
        fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
            count(self.counters(), GET, || self.view().get(table, key))
        }

        fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
            count(self.counters(), GET_MANY, || self.view().get_many(keys))
        }

        fn scan(
            &self,
            table: Table,
            range: &ScanRange,
            resume: Option<&Cursor>,
            limit: usize,
        ) -> Result<Page, StoreError> {
            count(self.counters(), SCAN, || {
                self.view().scan(table, range, resume, limit)
            })
        }

        fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
            count(self.counters(), LOG_HEAD, || self.view().log_head(table))
        }

        fn generation(&self) -> Result<Generation, StoreError> {
            count(self.counters(), GENERATION, || self.view().generation())
        }
    };
}

impl<S: Store> CountingStore<S> {
    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn view(&self) -> &S {
        &self.inner
    }
}

impl<S: Store> ReadView for CountingStore<S> {
    counted_reads!();
}

impl<S: Store> Store for CountingStore<S> {
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        count(&self.counters, COMMIT, || self.inner.commit(batch))
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let inner = count(&self.counters, SNAPSHOT, || self.inner.snapshot())?;
        Ok(Box::new(CountingSnapshot {
            counters: &self.counters,
            inner,
        }))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        count(&self.counters, SCHEMA, || self.inner.schema_version())
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        count(&self.counters, REPLACE, || self.inner.replace_all(rows))
    }
}

struct CountingSnapshot<'a> {
    counters: &'a Counters,
    inner: Box<dyn Snapshot + 'a>,
}

impl CountingSnapshot<'_> {
    fn counters(&self) -> &Counters {
        self.counters
    }

    fn view(&self) -> &dyn Snapshot {
        &*self.inner
    }
}

impl ReadView for CountingSnapshot<'_> {
    counted_reads!();
}

impl Snapshot for CountingSnapshot<'_> {}
