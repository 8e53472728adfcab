//! `AdversarialStore`: a wrapper that lies on reads, for tests of tamper detection.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::backend::check_scan_limit;
use crate::{
    Batch, Committed, Cursor, Op, Page, ReadView, Row, ScanRange, Snapshot, Store, StoreError,
    Table, Versioned, parse_log_key,
};

/// A read hook: given the table, the key and what the store would return, gives what the
/// caller sees instead.
pub type ReadHook = dyn Fn(Table, &[u8], Option<Versioned>) -> Option<Versioned> + Send + Sync;

enum Rule {
    Swap {
        table: Table,
        key: Vec<u8>,
        source: Vec<u8>,
    },
    Stale {
        table: Table,
        key: Vec<u8>,
        version: Option<u64>,
    },
    Hide {
        table: Table,
        key: Vec<u8>,
    },
    Truncate {
        table: Table,
        len: u64,
    },
    Hook(Arc<ReadHook>),
}

type History = HashMap<(Table, Vec<u8>), Vec<Versioned>>;

/// A [`Store`] wrapper that serves forged reads, as a malicious or broken storage would,
/// so tests can show the layers above detect it. Writes pass through unchanged.
///
/// Rules apply to `get`, `scan` and `log_head`, on the store and on its snapshots, in the
/// order they were added; they can be added and cleared at any time through `&self`:
///
/// - [`swap_value`](AdversarialStore::swap_value): `key` reads as another row's value;
/// - [`serve_stale`](AdversarialStore::serve_stale) /
///   [`serve_version`](AdversarialStore::serve_version): `key` reads as an older value;
///   the wrapper records every value written through it to serve them;
/// - [`hide`](AdversarialStore::hide): `key` disappears from `get` and `scan`;
/// - [`truncate_log`](AdversarialStore::truncate_log): log entries `>= len` disappear,
///   and `log_head` reports `len - 1`;
/// - [`on_read`](AdversarialStore::on_read): any closure over each row read.
///
/// ```
/// use strongroom_store::{AdversarialStore, Batch, Expect, MemoryStore, ReadView, Store, Table};
///
/// let store = AdversarialStore::new(MemoryStore::new());
/// let mut b = Batch::new();
/// b.put(Table::Wraps, b"alice", b"wrap-a".to_vec(), Expect::Any)
///     .put(Table::Wraps, b"mallory", b"wrap-m".to_vec(), Expect::Any);
/// store.commit(&b)?;
///
/// store.swap_value(Table::Wraps, b"alice", b"mallory");
/// assert_eq!(store.get(Table::Wraps, b"alice")?.unwrap().value, b"wrap-m");
/// store.clear_rules();
/// assert_eq!(store.get(Table::Wraps, b"alice")?.unwrap().value, b"wrap-a");
/// # Ok::<(), strongroom_store::StoreError>(())
/// ```
pub struct AdversarialStore<S> {
    inner: S,
    rules: RwLock<Vec<Arc<Rule>>>,
    history: Mutex<History>,
}

impl<S: Store> AdversarialStore<S> {
    /// Wraps `inner` with no rule.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rules: RwLock::new(Vec::new()),
            history: Mutex::new(HashMap::new()),
        }
    }

    /// The wrapped store (reads on it are honest).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// `key` in `table` reads as the current value of `source` (keeping `key`'s own
    /// version, so compare-and-swap still works); `None` if `source` is missing.
    pub fn swap_value(&self, table: Table, key: &[u8], source: &[u8]) {
        self.add(Rule::Swap {
            table,
            key: key.to_vec(),
            source: source.to_vec(),
        });
    }

    /// `key` in `table` reads as the value written through this wrapper just before the
    /// current one (a rollback by one version). No effect until such a value exists.
    pub fn serve_stale(&self, table: Table, key: &[u8]) {
        self.add(Rule::Stale {
            table,
            key: key.to_vec(),
            version: None,
        });
    }

    /// `key` in `table` reads as the value it had at `version`, if that value was written
    /// through this wrapper.
    pub fn serve_version(&self, table: Table, key: &[u8], version: u64) {
        self.add(Rule::Stale {
            table,
            key: key.to_vec(),
            version: Some(version),
        });
    }

    /// `key` in `table` disappears from `get` and `scan`.
    pub fn hide(&self, table: Table, key: &[u8]) {
        self.add(Rule::Hide {
            table,
            key: key.to_vec(),
        });
    }

    /// Entries of log `table` with sequence number `>= len` disappear.
    pub fn truncate_log(&self, table: Table, len: u64) {
        self.add(Rule::Truncate { table, len });
    }

    /// Runs `hook` on every row read (after the other rules added before it); rows for
    /// which it returns `None` disappear.
    pub fn on_read(
        &self,
        hook: impl Fn(Table, &[u8], Option<Versioned>) -> Option<Versioned> + Send + Sync + 'static,
    ) {
        self.add(Rule::Hook(Arc::new(hook)));
    }

    /// Removes every rule: reads are honest again. The recorded history is kept.
    pub fn clear_rules(&self) {
        self.rules
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Number of active rules.
    pub fn rule_count(&self) -> usize {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every value written to `key` through this wrapper, oldest first.
    pub fn history(&self, table: Table, key: &[u8]) -> Vec<Versioned> {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(table, key.to_vec()))
            .cloned()
            .unwrap_or_default()
    }

    /// The rules at this instant; held without the lock so hooks may add rules.
    fn current_rules(&self) -> Vec<Arc<Rule>> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add(&self, rule: Rule) {
        self.rules
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(rule));
    }

    fn forge(
        &self,
        source: &dyn ReadView,
        table: Table,
        key: &[u8],
        mut seen: Option<Versioned>,
    ) -> Result<Option<Versioned>, StoreError> {
        for rule in self.current_rules() {
            seen = match &*rule {
                Rule::Hide { table: t, key: k } if *t == table && k == key => None,
                Rule::Truncate { table: t, len } if *t == table => {
                    match parse_log_key(table, key) {
                        Ok(seq) if seq >= *len => None,
                        _ => seen,
                    }
                }
                Rule::Swap {
                    table: t,
                    key: k,
                    source: from,
                } if *t == table && k == key => source.get(table, from)?.map(|other| Versioned {
                    value: other.value,
                    version: seen.as_ref().map_or(other.version, |s| s.version),
                }),
                Rule::Stale {
                    table: t,
                    key: k,
                    version,
                } if *t == table && k == key => {
                    let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
                    let past = history.get(&(table, key.to_vec()));
                    let wanted = match (version, &seen) {
                        (Some(v), _) => Some(*v),
                        (None, Some(current)) => current.version.checked_sub(1),
                        (None, None) => past.and_then(|p| p.last()).map(|v| v.version),
                    };
                    let found = wanted.and_then(|w| {
                        past.and_then(|p| p.iter().rev().find(|v| v.version == w).cloned())
                    });
                    found.or(seen)
                }
                Rule::Hook(hook) => hook(table, key, seen),
                _ => seen,
            };
        }
        Ok(seen)
    }

    fn forged_get(
        &self,
        source: &dyn ReadView,
        table: Table,
        key: &[u8],
    ) -> Result<Option<Versioned>, StoreError> {
        let real = source.get(table, key)?;
        self.forge(source, table, key, real)
    }

    /// Reads every key in one `get_many` of the source, so the batch stays as
    /// atomic as the wrapped store makes it, then applies the rules per key.
    fn forged_get_many(
        &self,
        source: &dyn ReadView,
        keys: &[(Table, &[u8])],
    ) -> Result<Vec<Option<Versioned>>, StoreError> {
        let real = source.get_many(keys)?;
        keys.iter()
            .zip(real)
            .map(|((table, key), real)| self.forge(source, *table, key, real))
            .collect()
    }

    fn forged_scan(
        &self,
        source: &dyn ReadView,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        check_scan_limit(limit)?;
        let mut visible: Vec<Row> = Vec::new();
        let mut cursor = resume.cloned();
        loop {
            let page = source.scan(table, range, cursor.as_ref(), limit)?;
            for row in page.rows {
                let Row {
                    key,
                    value,
                    version,
                } = row;
                let forged = self.forge(source, table, &key, Some(Versioned { value, version }))?;
                cursor = Some(Cursor::after(key.clone()));
                if let Some(v) = forged {
                    visible.push(Row {
                        key,
                        value: v.value,
                        version: v.version,
                    });
                    if visible.len() > limit {
                        return Ok(Page::from_overfetch(visible, limit));
                    }
                }
            }
            if page.next.is_none() {
                return Ok(Page::from_overfetch(visible, limit));
            }
        }
    }

    fn forged_head(&self, source: &dyn ReadView, table: Table) -> Result<Option<u64>, StoreError> {
        let mut head = source.log_head(table)?;
        for rule in self.current_rules() {
            if let Rule::Truncate { table: t, len } = &*rule
                && *t == table
            {
                head = match (head, len.checked_sub(1)) {
                    (Some(h), Some(max)) => Some(h.min(max)),
                    _ => None,
                };
            }
        }
        Ok(head)
    }

    fn record(&self, batch: &Batch, committed: &Committed) {
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        for (op, version) in batch.ops().iter().zip(&committed.versions) {
            match op {
                Op::Put {
                    table, key, value, ..
                } => history
                    .entry((*table, key.clone()))
                    .or_default()
                    .push(Versioned {
                        value: value.clone(),
                        version: *version,
                    }),
                Op::Append { table, value, .. } => history
                    .entry((*table, op.key().into_owned()))
                    .or_default()
                    .push(Versioned {
                        value: value.clone(),
                        version: *version,
                    }),
                Op::Delete { .. } | Op::Check { .. } => {}
            }
        }
    }
}

impl<S> fmt::Debug for AdversarialStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("AdversarialStore")
            .field("rules", &rules.len())
            .finish_non_exhaustive()
    }
}

impl<S: Store> ReadView for AdversarialStore<S> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.forged_get(&self.inner, table, key)
    }

    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.forged_get_many(&self.inner, keys)
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.forged_scan(&self.inner, table, range, resume, limit)
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        self.forged_head(&self.inner, table)
    }

    fn generation(&self) -> Result<crate::Generation, StoreError> {
        self.inner.generation()
    }
}

impl<S: Store> Store for AdversarialStore<S> {
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        let committed = self.inner.commit(batch)?;
        self.record(batch, &committed);
        Ok(committed)
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<crate::TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        self.inner.replace_all(rows)
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        Ok(Box::new(AdversarialSnapshot {
            store: self,
            inner: self.inner.snapshot()?,
        }))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        self.inner.schema_version()
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn is_read_only(&self) -> bool {
        self.inner.is_read_only()
    }
}

struct AdversarialSnapshot<'a, S> {
    store: &'a AdversarialStore<S>,
    inner: Box<dyn Snapshot + 'a>,
}

impl<S: Store> ReadView for AdversarialSnapshot<'_, S> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.store.forged_get(&*self.inner, table, key)
    }

    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.store.forged_get_many(&*self.inner, keys)
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.store
            .forged_scan(&*self.inner, table, range, resume, limit)
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        self.store.forged_head(&*self.inner, table)
    }

    fn generation(&self) -> Result<crate::Generation, StoreError> {
        self.inner.generation()
    }
}

impl<S: Store> Snapshot for AdversarialSnapshot<'_, S> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expect, MemoryStore, log_key};

    fn put(store: &dyn Store, table: Table, key: &[u8], value: &[u8]) {
        let mut b = Batch::new();
        b.put(table, key, value, Expect::Any);
        store.commit(&b).unwrap();
    }

    fn val(s: &dyn ReadView, t: Table, k: &[u8]) -> Option<Vec<u8>> {
        s.get(t, k).unwrap().map(|v| v.value)
    }

    #[test]
    fn swap_keeps_own_version_and_scan_follows() {
        let s = AdversarialStore::new(MemoryStore::new());
        put(&s, Table::Wraps, b"a", b"A");
        put(&s, Table::Wraps, b"a", b"A2");
        put(&s, Table::Wraps, b"b", b"B");
        s.swap_value(Table::Wraps, b"a", b"b");
        let got = s.get(Table::Wraps, b"a").unwrap().unwrap();
        assert_eq!((got.value.as_slice(), got.version), (&b"B"[..], 2));
        let page = s.scan(Table::Wraps, &ScanRange::all(), None, 10).unwrap();
        assert_eq!(page.rows[0].value, b"B");
        s.swap_value(Table::Wraps, b"b", b"missing");
        assert_eq!(val(&s, Table::Wraps, b"b"), None);
        assert_eq!(s.rule_count(), 2);
        // The inner store is untouched.
        assert_eq!(val(s.inner(), Table::Wraps, b"a"), Some(b"A2".to_vec()));
    }

    #[test]
    fn stale_versions_come_from_history() {
        let s = AdversarialStore::new(MemoryStore::new());
        for v in [&b"v1"[..], b"v2", b"v3"] {
            put(&s, Table::Keyholders, b"k", v);
        }
        assert_eq!(s.history(Table::Keyholders, b"k").len(), 3);
        s.serve_stale(Table::Keyholders, b"k");
        let got = s.get(Table::Keyholders, b"k").unwrap().unwrap();
        assert_eq!((got.value.as_slice(), got.version), (&b"v2"[..], 2));
        s.clear_rules();
        s.serve_version(Table::Keyholders, b"k", 1);
        assert_eq!(val(&s, Table::Keyholders, b"k"), Some(b"v1".to_vec()));
        s.clear_rules();
        s.serve_version(Table::Keyholders, b"k", 9);
        assert_eq!(
            val(&s, Table::Keyholders, b"k"),
            Some(b"v3".to_vec()),
            "unknown version: honest read"
        );
        // A deleted row can be resurrected from history.
        let mut b = Batch::new();
        b.delete(Table::Keyholders, "k", Expect::Any);
        s.commit(&b).unwrap();
        s.clear_rules();
        s.serve_stale(Table::Keyholders, b"k");
        assert_eq!(val(&s, Table::Keyholders, b"k"), Some(b"v3".to_vec()));
    }

    #[test]
    fn hide_and_truncate_affect_get_scan_and_head() {
        let s = AdversarialStore::new(MemoryStore::new());
        let mut b = Batch::new();
        for i in 0..10u64 {
            b.append(Table::Audit, i, format!("e{i}"));
        }
        for k in ["a", "b", "c", "d"] {
            b.put(Table::Index, k, k, Expect::Any);
        }
        s.commit(&b).unwrap();
        s.hide(Table::Index, b"b");
        s.hide(Table::Index, b"c");
        assert_eq!(val(&s, Table::Index, b"b"), None);
        let page = s.scan(Table::Index, &ScanRange::all(), None, 1).unwrap();
        assert_eq!(page.rows[0].key, b"a");
        let page = s
            .scan(Table::Index, &ScanRange::all(), page.next.as_ref(), 1)
            .unwrap();
        assert_eq!(page.rows[0].key, b"d");
        assert!(page.next.is_none(), "hidden rows do not count as more");
        s.truncate_log(Table::Audit, 4);
        assert_eq!(s.log_head(Table::Audit).unwrap(), Some(3));
        assert_eq!(val(&s, Table::Audit, &log_key(4)), None);
        assert_eq!(
            s.scan(Table::Audit, &ScanRange::all(), None, 100)
                .unwrap()
                .rows
                .len(),
            4
        );
        s.truncate_log(Table::Audit, 0);
        assert_eq!(s.log_head(Table::Audit).unwrap(), None);
        assert_eq!(s.log_head(Table::MemberLog).unwrap(), None);
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.log_head(Table::Audit).unwrap(), None);
        assert_eq!(snap.get(Table::Index, b"c").unwrap(), None);
        assert_eq!(
            snap.scan(Table::Index, &ScanRange::all(), None, 10)
                .unwrap()
                .rows
                .len(),
            2
        );
    }

    #[test]
    fn hook_sees_and_rewrites_rows() {
        let s = AdversarialStore::new(MemoryStore::new());
        put(&s, Table::Bodies, b"x", b"ciphertext");
        s.on_read(|table, key, seen| {
            if table == Table::Bodies && key == b"x" {
                seen.map(|mut v| {
                    v.value[0] ^= 1;
                    v
                })
            } else {
                seen
            }
        });
        assert_eq!(val(&s, Table::Bodies, b"x"), Some(b"biphertext".to_vec()));
        let snap = s.snapshot().unwrap();
        assert_eq!(
            val(&*snap, Table::Bodies, b"x"),
            Some(b"biphertext".to_vec())
        );
        drop(snap);
        s.clear_rules();
        assert_eq!(val(&s, Table::Bodies, b"x"), Some(b"ciphertext".to_vec()));
        assert!(format!("{s:?}").contains("rules: 0"));
        assert_eq!(s.into_inner().backend(), "memory");
    }
}
