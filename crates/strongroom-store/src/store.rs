//! The `Store` trait and its read side.

use std::fmt;
use std::sync::Arc;

use crate::{Batch, Committed, Cursor, Generation, Page, ScanRange, StoreError, Table};

/// The schema version this build of strongroom writes and understands.
///
/// Backends keep a list of forward migrations up to this version and refuse a database
/// whose schema is newer ([`StoreError::SchemaTooNew`]).
pub const SCHEMA_VERSION: u32 = 2;

/// A stored value and its version.
#[derive(Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value bytes.
    pub value: Vec<u8>,
    /// 1 when the row was created, +1 on every put of that key.
    pub version: u64,
}

impl fmt::Debug for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("value_len", &self.value.len())
            .field("version", &self.version)
            .finish()
    }
}

/// A row returned by a scan.
#[derive(Clone, PartialEq, Eq)]
pub struct Row {
    /// The row key.
    pub key: Vec<u8>,
    /// The value bytes.
    pub value: Vec<u8>,
    /// The row version (see [`Versioned::version`]).
    pub version: u64,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("key", &hex::encode(&self.key))
            .field("value_len", &self.value.len())
            .field("version", &self.version)
            .finish()
    }
}

/// Reads: point lookups, ordered scans, log heads.
///
/// # Implementation notes
///
/// - Keys compare as unsigned bytes (`memcmp`, a shorter key first when it is a prefix),
///   which is `Ord` of `[u8]`; empty keys and empty values are valid.
/// - `scan` returns rows with keys in `range` and strictly after `resume` (use
///   [`ScanRange::resume_start`]), ascending, at most `limit` of them; reject a `limit`
///   of 0 or above [`MAX_SCAN_LIMIT`](crate::MAX_SCAN_LIMIT).
///   [`backend::plan_scan`](crate::backend::plan_scan) does both and says how many rows
///   to fetch (`limit + 1`); build the page with [`Page::from_overfetch`] so `next` is
///   `None` exactly when the range is exhausted. One page is read atomically.
/// - `log_head` on a table that is not a log is [`StoreError::InvalidRequest`]; a log
///   key that is not 8 bytes is [`StoreError::Corrupt`] (see
///   [`parse_log_key`](crate::parse_log_key)).
pub trait ReadView {
    /// The value and version stored at `key`, if any.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError>;

    /// The values at several keys, of any tables, read at one point in time and in one
    /// call (one statement or round trip where the backend can): the hot path's read of a
    /// record. Results come in the order of `keys`; a key given twice is read twice.
    ///
    /// The default reads key by key, which is one point in time only on a [`Snapshot`]:
    /// a live store overrides it (the conformance suite checks that a concurrent writer's
    /// batch is seen whole or not at all).
    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        keys.iter().map(|(t, k)| self.get(*t, k)).collect()
    }

    /// Up to `limit` rows of `range` after `resume`, in ascending key order.
    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Sequence number of the last entry of log `table`, `None` when the log is empty.
    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError>;

    /// The store's [`Generation`]: it changes on every [`Store::replace_all`]. A batch
    /// built from reads of this view carries it
    /// ([`Batch::require_generation`](crate::Batch::require_generation)).
    fn generation(&self) -> Result<Generation, StoreError>;
}

/// A consistent point-in-time view of a store: every read sees the state of one instant,
/// while writers go on committing. Dropping it releases what it holds.
pub trait Snapshot: ReadView + Send {}

/// A transactional store of versioned byte rows in named tables.
///
/// # Implementation notes
///
/// - `commit` validates the batch ([`Batch::validate`]), then, inside one transaction,
///   checks its required generation ([`StoreError::check_generation`]) and applies its
///   operations in order, each seeing the earlier ones. If a precondition fails
///   it returns [`StoreError::Conflict`] naming that operation's table and key, and
///   nothing of the batch is applied. Concurrent commits must never lose an update: a
///   put with [`Expect::Version`](crate::Expect::Version) succeeds only against that
///   exact version.
/// - A log append ([`Op::Append`](crate::Op::Append)) succeeds only at the head; racing
///   appends at the same sequence number have exactly one winner.
/// - Every backend runs the conformance suite
///   (`strongroom_store::conformance`, feature `conformance`) through the
///   `conformance_tests!` macro.
pub trait Store: ReadView + Send + Sync {
    /// Applies every operation of `batch` atomically, or none of them.
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError>;

    /// A consistent point-in-time view while writers continue.
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError>;

    /// The schema version of the underlying database.
    fn schema_version(&self) -> Result<u32, StoreError>;

    /// The backend's name: `"memory"`, `"sqlite"`, `"postgres"`, ...
    fn backend(&self) -> &'static str;

    /// Whether this store is known to refuse writes (a replica, or a store opened
    /// read-only): its commits fail with [`StoreError::ReadOnly`]. A hint for layers
    /// above, which then open read-only handles and read a replica that is behind as
    /// "not there yet" rather than as a rollback. The default is `false`; a store may
    /// also learn it only when a commit fails.
    fn is_read_only(&self) -> bool {
        false
    }

    /// Replaces the whole content of every table, logs included, with `rows` (each row's
    /// version starts at 1), atomically: a reader sees the old content or the new, never a
    /// mix, and a crash or an error from `rows` leaves the old content. The store gets a
    /// new [`Generation`] in the same transaction, so batches built from earlier reads are
    /// refused. Returns the number of rows written. This is how a verified snapshot is restored; it is the only
    /// operation that rewrites a log. A key given twice is an error.
    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>,
    ) -> Result<u64, StoreError>;
}

/// One row of [`Store::replace_all`]'s input: the table and the row (its version is
/// ignored).
pub type TableRow = (Table, Row);

/// Calls `f` on every row of `range` in key order, reading `page_size` rows at a time, so
/// memory stays bounded by one page whatever the table holds. `f` returns `Ok(false)` to
/// stop early. Rows are read page by page, not from one snapshot: use
/// [`Store::snapshot`] as the view when the walk must see one point in time.
///
/// ```
/// use strongroom_store::{Batch, Expect, MemoryStore, ScanRange, Store, Table, for_each_row};
///
/// let store = MemoryStore::new();
/// let mut batch = Batch::new();
/// for k in [b"a", b"b", b"c"] {
///     batch.put(Table::Meta, k.to_vec(), b"v".to_vec(), Expect::Any);
/// }
/// store.commit(&batch)?;
/// let mut keys = Vec::new();
/// for_each_row(&store, Table::Meta, &ScanRange::all(), 2, |row| {
///     keys.push(row.key);
///     Ok::<_, strongroom_store::StoreError>(true)
/// })?;
/// assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
/// # Ok::<(), strongroom_store::StoreError>(())
/// ```
pub fn for_each_row<V, E>(
    view: &V,
    table: Table,
    range: &ScanRange,
    page_size: usize,
    mut f: impl FnMut(Row) -> Result<bool, E>,
) -> Result<(), E>
where
    V: ReadView + ?Sized,
    E: From<StoreError>,
{
    let mut cursor = None;
    loop {
        let page = view.scan(table, range, cursor.as_ref(), page_size)?;
        for row in page.rows {
            if !f(row)? {
                return Ok(());
            }
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Every row of `range`, read a page at a time: for ranges known to be small (one
/// record's versions, a member's keyholders).
pub fn scan_all<V: ReadView + ?Sized>(
    view: &V,
    table: Table,
    range: &ScanRange,
) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::new();
    for_each_row(view, table, range, crate::MAX_SCAN_LIMIT, |row| {
        rows.push(row);
        Ok::<_, StoreError>(true)
    })?;
    Ok(rows)
}

macro_rules! forward_read_view {
    ($($ty:ty),*) => {$(
        impl<S: ReadView + ?Sized> ReadView for $ty {
            fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
                (**self).get(table, key)
            }
            fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
                (**self).get_many(keys)
            }
            fn scan(
                &self,
                table: Table,
                range: &ScanRange,
                resume: Option<&Cursor>,
                limit: usize,
            ) -> Result<Page, StoreError> {
                (**self).scan(table, range, resume, limit)
            }
            fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
                (**self).log_head(table)
            }
            fn generation(&self) -> Result<Generation, StoreError> {
                (**self).generation()
            }
        }
    )*};
}

forward_read_view!(&S, Box<S>, Arc<S>);

impl<S: Snapshot + ?Sized> Snapshot for Box<S> {}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: Store + ?Sized> Store for $ty {
            fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
                (**self).commit(batch)
            }
            fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
                (**self).snapshot()
            }
            fn schema_version(&self) -> Result<u32, StoreError> {
                (**self).schema_version()
            }
            fn backend(&self) -> &'static str {
                (**self).backend()
            }
            fn is_read_only(&self) -> bool {
                (**self).is_read_only()
            }
            fn replace_all(&self, rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>) -> Result<u64, StoreError> {
                (**self).replace_all(rows)
            }
        }
    )*};
}

forward_store!(&S, Box<S>, Arc<S>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expect, MemoryStore};

    fn takes_store(s: &dyn Store) -> &'static str {
        s.backend()
    }

    #[test]
    fn for_each_row_pages_and_stops_early() {
        use crate::{Batch, Expect, MemoryStore};
        let store = MemoryStore::new();
        let mut b = Batch::new();
        for i in 0u8..7 {
            b.put(Table::Index, vec![i], vec![i], Expect::Any);
        }
        store.commit(&b).unwrap();
        let mut seen = Vec::new();
        for_each_row(&store, Table::Index, &ScanRange::all(), 2, |r| {
            seen.push(r.key[0]);
            Ok::<_, StoreError>(r.key[0] < 4)
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert_eq!(
            scan_all(&store, Table::Index, &ScanRange::all())
                .unwrap()
                .len(),
            7
        );
        let empty = scan_all(&store, Table::Meta, &ScanRange::all()).unwrap();
        assert!(empty.is_empty());
        // the callback's error ends the walk and is returned
        let r = for_each_row(&store, Table::Index, &ScanRange::all(), 3, |_| {
            Err(StoreError::invalid("stop"))
        });
        assert!(r.unwrap_err().to_string().contains("stop"));
    }

    #[test]
    fn smart_pointers_are_stores() {
        let arc: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut b = Batch::new();
        b.put(Table::Meta, "k", "v", Expect::Absent);
        arc.commit(&b).unwrap();
        assert_eq!(takes_store(&arc), "memory");
        let boxed: Box<dyn Store> = Box::new(MemoryStore::new());
        assert_eq!(takes_store(&boxed), "memory");
        let mem = MemoryStore::new();
        let by_ref: &MemoryStore = &mem;
        assert_eq!(takes_store(&by_ref), "memory");
        let snap = arc.snapshot().unwrap();
        assert_eq!(snap.get(Table::Meta, b"k").unwrap().unwrap().version, 1);
        assert_eq!(arc.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn debug_hides_value_bytes() {
        let v = Versioned {
            value: vec![0x41; 4],
            version: 2,
        };
        assert_eq!(format!("{v:?}"), "Versioned { value_len: 4, version: 2 }");
        let r = Row {
            key: vec![0xab],
            value: vec![0x41; 3],
            version: 1,
        };
        assert_eq!(
            format!("{r:?}"),
            "Row { key: \"ab\", value_len: 3, version: 1 }"
        );
    }
}
