//! `FaultyStore`: a wrapper that injects failures, for crash and retry tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::{
    Batch, Committed, Cursor, Page, ReadView, ScanRange, Snapshot, Store, StoreError, Table,
    Versioned,
};

/// Makes the error a failed operation returns, from its number.
type MakeError = fn(u64) -> StoreError;

fn injected(op: u64) -> StoreError {
    StoreError::Injected { op }
}

#[derive(Default)]
struct Plan {
    fail: BTreeMap<u64, MakeError>,
    lose_ack: BTreeSet<u64>,
    crash_at: Option<u64>,
}

enum Decision {
    Run,
    Fail(MakeError),
    RunThenFail,
}

/// A [`Store`] wrapper that fails chosen operations, for tests of code built on a store.
///
/// Every call through it (`get`, `get_many`, `scan`, `log_head`, `commit`, `snapshot`,
/// `schema_version`, and reads through its snapshots) is one *operation*, numbered from
/// 0 in call order; [`FaultyStore::ops`] is the number of the next one. Faults:
///
/// - [`fail_op(n)`](FaultyStore::fail_op): operation `n` returns
///   [`StoreError::Injected`] without reaching the inner store (nothing applied);
///   [`fail_op_with`](FaultyStore::fail_op_with) chooses the error (a conflict, a
///   read-only store...) to test how the caller handles that one;
/// - [`lose_ack(n)`](FaultyStore::lose_ack): operation `n` runs (a commit *is applied*)
///   and then returns `Injected`, the case of a write acknowledged to nobody;
/// - [`crash_at(n)`](FaultyStore::crash_at): operation `n` and every later one fail until
///   [`revive`](FaultyStore::revive), like a process that died and restarted.
///
/// ```
/// use strongroom_store::{Batch, Expect, FaultyStore, MemoryStore, ReadView, Store, Table};
///
/// let store = FaultyStore::new(MemoryStore::new());
/// let mut b = Batch::new();
/// b.put(Table::Meta, b"k", b"v".to_vec(), Expect::Any);
///
/// store.lose_ack(store.ops());
/// assert!(store.commit(&b).is_err()); // failed for the caller...
/// assert!(store.inner().get(Table::Meta, b"k")?.is_some()); // ...but applied
///
/// store.crash_at(store.ops());
/// assert!(store.get(Table::Meta, b"k").is_err());
/// store.revive();
/// assert!(store.get(Table::Meta, b"k")?.is_some());
/// # Ok::<(), strongroom_store::StoreError>(())
/// ```
pub struct FaultyStore<S> {
    inner: S,
    ops: AtomicU64,
    commits_applied: AtomicU64,
    injected: AtomicU64,
    plan: Mutex<Plan>,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner` with no fault planned.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ops: AtomicU64::new(0),
            commits_applied: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            plan: Mutex::new(Plan::default()),
        }
    }

    /// The wrapped store (calls on it are neither counted nor failed).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Number of operations so far, which is also the number of the next one.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Number of commits the inner store applied through this wrapper (including those
    /// whose acknowledgement was lost).
    pub fn commits_applied(&self) -> u64 {
        self.commits_applied.load(Ordering::SeqCst)
    }

    /// Number of operations that returned an injected failure.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Makes operation number `op` fail without running.
    pub fn fail_op(&self, op: u64) {
        self.fail_op_with(op, injected);
    }

    /// Makes operation number `op` fail without running, with the error `error(op)`.
    ///
    /// ```
    /// use strongroom_store::{Batch, FaultyStore, MemoryStore, Store, StoreError};
    ///
    /// let store = FaultyStore::new(MemoryStore::new());
    /// store.fail_op_with(store.ops(), |_| StoreError::ReadOnly { reason: "a replica".into() });
    /// assert!(store.commit(&Batch::new()).unwrap_err().is_read_only());
    /// assert_eq!((store.injected(), store.commits_applied()), (1, 0));
    /// ```
    pub fn fail_op_with(&self, op: u64, error: fn(u64) -> StoreError) {
        self.plan().fail.insert(op, error);
    }

    /// Makes operation number `op` run and then report failure (a lost acknowledgement).
    pub fn lose_ack(&self, op: u64) {
        self.plan().lose_ack.insert(op);
    }

    /// Makes operation number `op` and every later one fail until [`FaultyStore::revive`].
    pub fn crash_at(&self, op: u64) {
        self.plan().crash_at = Some(op);
    }

    /// Whether the store is currently crashed (the next operation would fail).
    pub fn is_crashed(&self) -> bool {
        self.plan().crash_at.is_some_and(|at| self.ops() >= at)
    }

    /// Ends crash mode: operations run again.
    pub fn revive(&self) {
        self.plan().crash_at = None;
    }

    /// Removes every planned fault.
    pub fn clear_faults(&self) {
        *self.plan() = Plan::default();
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn decide(&self) -> (u64, Decision) {
        let mut plan = self.plan();
        let op = self.ops.fetch_add(1, Ordering::SeqCst);
        let decision = if plan.crash_at.is_some_and(|at| op >= at) {
            Decision::Fail(injected)
        } else if let Some(error) = plan.fail.remove(&op) {
            Decision::Fail(error)
        } else if plan.lose_ack.remove(&op) {
            Decision::RunThenFail
        } else {
            Decision::Run
        };
        (op, decision)
    }

    fn run<T>(
        &self,
        is_commit: bool,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (op, decision) = self.decide();
        match decision {
            Decision::Fail(error) => {
                self.injected.fetch_add(1, Ordering::SeqCst);
                Err(error(op))
            }
            Decision::Run => {
                let out = f();
                if is_commit && out.is_ok() {
                    self.commits_applied.fetch_add(1, Ordering::SeqCst);
                }
                out
            }
            Decision::RunThenFail => {
                let out = f();
                if is_commit && out.is_ok() {
                    self.commits_applied.fetch_add(1, Ordering::SeqCst);
                }
                out?;
                self.injected.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Injected { op })
            }
        }
    }
}

impl<S> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("ops", &self.ops.load(Ordering::SeqCst))
            .field("injected", &self.injected.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<S: Store> ReadView for FaultyStore<S> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.run(false, || self.inner.get(table, key))
    }

    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.run(false, || self.inner.get_many(keys))
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.run(false, || self.inner.scan(table, range, resume, limit))
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        self.run(false, || self.inner.log_head(table))
    }

    // Not a counted operation: backends read it inside other operations' transactions.
    fn generation(&self) -> Result<crate::Generation, StoreError> {
        self.inner.generation()
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        self.run(true, || self.inner.commit(batch))
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let inner = self.run(false, || self.inner.snapshot())?;
        Ok(Box::new(FaultySnapshot { store: self, inner }))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        self.run(false, || self.inner.schema_version())
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn is_read_only(&self) -> bool {
        self.inner.is_read_only()
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<crate::TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        self.run(true, || self.inner.replace_all(rows))
    }
}

struct FaultySnapshot<'a, S> {
    store: &'a FaultyStore<S>,
    inner: Box<dyn Snapshot + 'a>,
}

impl<S: Store> ReadView for FaultySnapshot<'_, S> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.store.run(false, || self.inner.get(table, key))
    }

    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.store.run(false, || self.inner.get_many(keys))
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.store
            .run(false, || self.inner.scan(table, range, resume, limit))
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        self.store.run(false, || self.inner.log_head(table))
    }

    fn generation(&self) -> Result<crate::Generation, StoreError> {
        self.inner.generation()
    }
}

impl<S: Store> Snapshot for FaultySnapshot<'_, S> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expect, MemoryStore};

    fn batch(key: &str) -> Batch {
        let mut b = Batch::new();
        b.put(Table::Meta, key, "v", Expect::Any)
            .append(Table::Audit, 0, key);
        b
    }

    #[test]
    fn failed_op_applies_nothing() {
        let s = FaultyStore::new(MemoryStore::new());
        s.fail_op(1);
        s.get(Table::Meta, b"x").unwrap();
        let err = s.commit(&batch("a")).unwrap_err();
        assert!(matches!(err, StoreError::Injected { op: 1 }));
        assert!(err.is_retryable());
        assert!(s.inner().get(Table::Meta, b"a").unwrap().is_none());
        assert_eq!(s.inner().log_head(Table::Audit).unwrap(), None);
        assert_eq!(s.commits_applied(), 0);
        // One-shot: the retry goes through.
        s.commit(&batch("a")).unwrap();
        assert_eq!(s.commits_applied(), 1);
        assert_eq!(s.ops(), 3);
        assert_eq!(s.injected(), 1);
    }

    #[test]
    fn lost_ack_applies_the_commit() {
        let s = FaultyStore::new(MemoryStore::new());
        s.lose_ack(0);
        assert!(matches!(
            s.commit(&batch("a")),
            Err(StoreError::Injected { op: 0 })
        ));
        assert!(s.get(Table::Meta, b"a").unwrap().is_some());
        assert_eq!(s.commits_applied(), 1);
        // A retry of the same append now conflicts: the caller must re-read.
        assert!(s.commit(&batch("a")).unwrap_err().is_conflict());
        assert_eq!(s.commits_applied(), 1);
    }

    #[test]
    fn lost_ack_of_a_failing_commit_reports_the_real_error() {
        let s = FaultyStore::new(MemoryStore::new());
        let mut b = Batch::new();
        b.put(Table::Meta, "k", "v", Expect::Version(3));
        s.lose_ack(0);
        assert!(s.commit(&b).unwrap_err().is_conflict());
        assert_eq!(s.commits_applied(), 0);
    }

    #[test]
    fn crash_mode_until_revive() {
        let s = FaultyStore::new(MemoryStore::new());
        s.commit(&batch("a")).unwrap();
        s.crash_at(2);
        assert!(!s.is_crashed());
        s.get(Table::Meta, b"a").unwrap();
        assert!(s.is_crashed());
        for _ in 0..3 {
            assert!(matches!(
                s.get(Table::Meta, b"a"),
                Err(StoreError::Injected { .. })
            ));
        }
        assert!(s.snapshot().is_err());
        assert!(s.commit(&batch("b")).is_err());
        assert!(s.inner().get(Table::Meta, b"b").unwrap().is_none());
        s.revive();
        assert!(!s.is_crashed());
        s.commit(&Batch::new()).unwrap();
        assert_eq!(s.injected(), 5);
    }

    #[test]
    fn snapshot_reads_are_counted_and_can_fail() {
        let s = FaultyStore::new(MemoryStore::new());
        s.commit(&batch("a")).unwrap();
        let snap = s.snapshot().unwrap();
        let next = s.ops();
        s.fail_op(next + 1);
        snap.get(Table::Meta, b"a").unwrap();
        assert!(snap.log_head(Table::Audit).is_err());
        assert_eq!(
            snap.scan(Table::Meta, &ScanRange::all(), None, 5)
                .unwrap()
                .rows
                .len(),
            1
        );
        s.clear_faults();
        s.crash_at(0);
        assert!(snap.get(Table::Meta, b"a").is_err());
        assert_eq!(s.backend(), "memory");
        assert!(format!("{s:?}").contains("FaultyStore"));
        drop(snap);
        assert_eq!(s.into_inner().backend(), "memory");
    }
}
