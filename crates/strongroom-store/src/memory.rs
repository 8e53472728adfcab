//! The in-memory store: ordered maps behind a lock, for tests and ephemeral vaults.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::backend::{ScanPlan, check_log_table, check_row, plan_scan};
use crate::{
    Batch, Committed, Cursor, Expect, Generation, Op, Page, ReadView, Row, SCHEMA_VERSION,
    ScanRange, Snapshot, Store, StoreError, Table, TableRow, Versioned, log_key, parse_log_key,
};

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    version: u64,
}

type Tables = [BTreeMap<Vec<u8>, Entry>; Table::ALL.len()];

/// The tables and the generation they belong to.
#[derive(Clone)]
struct State {
    tables: Tables,
    generation: Generation,
}

/// A generation unique in this process: memory stores never outlive it.
fn next_generation() -> Generation {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(b"memstore");
    b[8..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    Generation::from_bytes(b)
}

impl Default for State {
    fn default() -> Self {
        Self {
            tables: Default::default(),
            generation: next_generation(),
        }
    }
}

/// A [`Store`] kept in memory: one ordered map per table behind a `RwLock`.
///
/// Nothing is persisted. Snapshots are O(1): the tables sit behind an `Arc` that a commit
/// copies only while a snapshot still holds the previous state.
///
/// ```
/// use strongroom_store::{Batch, Expect, MemoryStore, ReadView, Store, Table};
///
/// let store = MemoryStore::new();
/// let mut batch = Batch::new();
/// batch.put(Table::Meta, b"vault-id", b"v1".to_vec(), Expect::Absent);
/// store.commit(&batch)?;
/// assert_eq!(store.get(Table::Meta, b"vault-id")?.unwrap().version, 1);
/// # Ok::<(), strongroom_store::StoreError>(())
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: RwLock<Arc<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn current(&self) -> Arc<State> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.current();
        let rows: usize = state.tables.iter().map(BTreeMap::len).sum();
        f.debug_struct("MemoryStore").field("rows", &rows).finish()
    }
}

fn get_in(tables: &Tables, table: Table, key: &[u8]) -> Option<Versioned> {
    tables[table.index()].get(key).map(|e| Versioned {
        value: e.value.to_vec(),
        version: e.version,
    })
}

fn scan_in(
    tables: &Tables,
    table: Table,
    range: &ScanRange,
    resume: Option<&Cursor>,
    limit: usize,
) -> Result<Page, StoreError> {
    let Some(ScanPlan { start, end, .. }) = plan_scan(range, resume, limit)? else {
        return Ok(Page::default());
    };
    let rows = tables[table.index()]
        .range::<[u8], (Bound<&[u8]>, Bound<&[u8]>)>((start, end))
        .take(limit + 1)
        .map(|(k, e)| Row {
            key: k.clone(),
            value: e.value.to_vec(),
            version: e.version,
        })
        .collect();
    Ok(Page::from_overfetch(rows, limit))
}

fn log_head_in(tables: &Tables, table: Table) -> Result<Option<u64>, StoreError> {
    check_log_table(table)?;
    tables[table.index()]
        .keys()
        .next_back()
        .map(|k| parse_log_key(table, k))
        .transpose()
}

impl ReadView for MemoryStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(get_in(&state.tables, table, key))
    }

    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        // One lock: one point in time.
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .iter()
            .map(|(t, k)| get_in(&state.tables, *t, k))
            .collect())
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        scan_in(&state.tables, table, range, resume, limit)
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        log_head_in(&state.tables, table)
    }

    fn generation(&self) -> Result<Generation, StoreError> {
        Ok(self.current().generation)
    }
}

/// The staged effect of a batch: `None` marks a deleted row.
type Overlay = BTreeMap<(Table, Vec<u8>), Option<Entry>>;

fn staged<'a>(overlay: &'a Overlay, tables: &'a Tables, table: Table, key: &[u8]) -> Option<u64> {
    match overlay.get(&(table, key.to_vec())) {
        Some(staged) => staged.as_ref().map(|e| e.version),
        None => tables[table.index()].get(key).map(|e| e.version),
    }
}

fn check_expect(
    current: Option<u64>,
    expect: Expect,
    table: Table,
    key: &[u8],
) -> Result<(), StoreError> {
    if expect.holds(current) {
        Ok(())
    } else {
        Err(StoreError::conflict(table, key))
    }
}

impl Store for MemoryStore {
    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut tables: Tables = Default::default();
        let mut n = 0u64;
        for item in rows {
            let (table, row) = item?;
            check_row(&row.key, &row.value)?;
            let entry = Entry {
                value: Arc::from(row.value.as_slice()),
                version: 1,
            };
            if tables[table.index()].insert(row.key, entry).is_some() {
                return Err(StoreError::invalid(format!(
                    "replace_all: a key of table {table} is given twice"
                )));
            }
            n += 1;
        }
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(State {
            tables,
            generation: next_generation(),
        });
        Ok(n)
    }

    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        batch.validate()?;
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        StoreError::check_generation(batch, guard.generation)?;
        let state = &guard.tables;
        let mut overlay = Overlay::new();
        let mut versions = Vec::with_capacity(batch.len());
        for op in batch.ops() {
            match op {
                Op::Put {
                    table,
                    key,
                    value,
                    expect,
                } => {
                    let current = staged(&overlay, state, *table, key);
                    check_expect(current, *expect, *table, key)?;
                    let version = current.map_or(1, |v| v + 1);
                    overlay.insert(
                        (*table, key.clone()),
                        Some(Entry {
                            value: Arc::from(value.as_slice()),
                            version,
                        }),
                    );
                    versions.push(version);
                }
                Op::Delete { table, key, expect } => {
                    let current = staged(&overlay, state, *table, key);
                    check_expect(current, *expect, *table, key)?;
                    if current.is_some() {
                        overlay.insert((*table, key.clone()), None);
                    }
                    versions.push(0);
                }
                Op::Check { table, key, expect } => {
                    check_expect(staged(&overlay, state, *table, key), *expect, *table, key)?;
                    versions.push(0);
                }
                Op::Append { table, seq, value } => {
                    let key = log_key(*seq);
                    let free = staged(&overlay, state, *table, &key).is_none();
                    let at_head =
                        *seq == 0 || staged(&overlay, state, *table, &log_key(*seq - 1)).is_some();
                    if !(free && at_head) {
                        return Err(StoreError::conflict(*table, &key));
                    }
                    overlay.insert(
                        (*table, key.to_vec()),
                        Some(Entry {
                            value: Arc::from(value.as_slice()),
                            version: 1,
                        }),
                    );
                    versions.push(1);
                }
            }
        }
        if !overlay.is_empty() {
            let tables = &mut Arc::make_mut(&mut guard).tables;
            for ((table, key), entry) in overlay {
                let map = &mut tables[table.index()];
                match entry {
                    Some(e) => {
                        map.insert(key, e);
                    }
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
        Ok(Committed { versions })
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        Ok(Box::new(MemorySnapshot {
            state: self.current(),
        }))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(SCHEMA_VERSION)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// A frozen view of a [`MemoryStore`].
struct MemorySnapshot {
    state: Arc<State>,
}

impl ReadView for MemorySnapshot {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        Ok(get_in(&self.state.tables, table, key))
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        scan_in(&self.state.tables, table, range, resume, limit)
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        log_head_in(&self.state.tables, table)
    }

    fn generation(&self) -> Result<Generation, StoreError> {
        Ok(self.state.generation)
    }
}

impl Snapshot for MemorySnapshot {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_frozen_and_copy_on_write() {
        let store = MemoryStore::new();
        let mut b = Batch::new();
        b.put(Table::Index, "a", "1", Expect::Any);
        store.commit(&b).unwrap();
        let snap = store.snapshot().unwrap();
        let mut b = Batch::new();
        b.put(Table::Index, "a", "2", Expect::Version(1)).put(
            Table::Index,
            "b",
            "3",
            Expect::Absent,
        );
        store.commit(&b).unwrap();
        assert_eq!(snap.get(Table::Index, b"a").unwrap().unwrap().value, b"1");
        assert!(snap.get(Table::Index, b"b").unwrap().is_none());
        assert_eq!(store.get(Table::Index, b"a").unwrap().unwrap().value, b"2");
        assert!(format!("{store:?}").contains("rows: 2"));
    }

    #[test]
    fn failed_batch_leaves_state_untouched() {
        let store = MemoryStore::new();
        let mut b = Batch::new();
        b.put(Table::Meta, "x", "1", Expect::Any)
            .append(Table::Audit, 1, "gap");
        let err = store.commit(&b).unwrap_err();
        assert!(matches!(
            err,
            StoreError::Conflict {
                table: Table::Audit,
                ..
            }
        ));
        assert!(store.get(Table::Meta, b"x").unwrap().is_none());
        assert_eq!(store.log_head(Table::Audit).unwrap(), None);
    }
}
