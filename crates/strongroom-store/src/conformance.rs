//! The conformance suite every [`Store`] backend runs verbatim.
//!
//! Each case is a public function taking a fresh, empty store; it panics with a message
//! saying what the backend got wrong. Backends never list the cases by hand: they invoke
//! [`conformance_tests!`](crate::conformance_tests), which expands to one `#[test]` per
//! case of [`CASES`], each with a fresh store made by the given expression:
//!
//! ```
//! mod memory_conformance {
//!     use strongroom_store::MemoryStore;
//!     strongroom_store::conformance_tests!(MemoryStore::new());
//! }
//! # fn main() {}
//! ```
//!
//! The expression may also give `(store, guard)`, where `guard` (a temporary directory,
//! a server handle) lives as long as the test; with `optional:` it gives an
//! `Option<...>` and a `None` ends the test early (the factory must say loudly why).

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;

use crate::{
    Batch, Cursor, Expect, MAX_KEY_LEN, MAX_SCAN_LIMIT, MAX_VALUE_LEN, Page, ReadView, Row,
    SCHEMA_VERSION, ScanRange, Store, StoreError, Table, Versioned, log_key,
};

/// Something a conformance test can run against: a store, or a store with a guard that
/// must outlive it.
pub trait Fixture {
    /// The store under test.
    fn store(&self) -> &dyn Store;
}

impl<S: Store> Fixture for S {
    fn store(&self) -> &dyn Store {
        self
    }
}

impl<S: Store, G> Fixture for (S, G) {
    fn store(&self) -> &dyn Store {
        &self.0
    }
}

/// The single list of conformance cases; internal to the macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_list {
    ($cb:ident ! $args:tt) => {
        $crate::$cb! { $args
            crud_roundtrip
            missing_rows_and_isolated_tables
            cas_conflicts
            delete_with_expect
            checks_guard_a_batch
            replace_all_swaps_everything_atomically
            replace_all_changes_the_generation
            multi_table_batch_atomicity
            batch_ops_see_earlier_ops
            committed_versions_and_empty_batch
            empty_keys_and_values
            binary_key_ordering
            pagination_limits_and_resume
            pagination_with_concurrent_writes
            large_values
            snapshot_sees_a_fixed_state
            snapshot_consistency_under_writers
            scan_never_sees_partial_batch
            get_many_reads_keys_of_any_tables
            get_many_never_sees_partial_batch
            concurrent_cas_counter
            log_append_and_head
            log_append_races
            invalid_requests
            schema_and_backend
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases_array {
    (() $($case:ident)*) => {
        &[$((stringify!($case), $crate::conformance::$case as fn(&dyn $crate::Store))),*]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_emit {
    ((required $make:expr) $($case:ident)*) => {$(
        #[test]
        fn $case() {
            let fixture = $make;
            $crate::conformance::$case($crate::conformance::Fixture::store(&fixture));
        }
    )*};
    ((optional $make:expr) $($case:ident)*) => {$(
        #[test]
        fn $case() {
            let Some(fixture) = $make else {
                return;
            };
            $crate::conformance::$case($crate::conformance::Fixture::store(&fixture));
        }
    )*};
}

/// Expands to one `#[test]` per conformance case, each running against a fresh store.
///
/// `conformance_tests!(expr)` evaluates `expr` once per test; it must give a
/// [`Fixture`]: a store, or `(store, guard)`. `conformance_tests!(optional: expr)` takes
/// an `Option` of one; `None` ends the test (the factory reports why, loudly).
/// Invoke it inside a dedicated module so the test names (the case names) do not clash.
#[macro_export]
macro_rules! conformance_tests {
    (optional: $make:expr) => {
        $crate::__conformance_list!(__conformance_emit!(optional $make));
    };
    ($make:expr) => {
        $crate::__conformance_list!(__conformance_emit!(required $make));
    };
}

/// A conformance case: panics when the store does not conform.
pub type Case = fn(&dyn Store);

/// Every case, by name, in the order the macro emits them.
pub const CASES: &[(&str, Case)] = crate::__conformance_list!(__conformance_cases_array!());

/// Runs every case, each against a fresh fixture from `make`.
pub fn run_all<F: Fixture>(mut make: impl FnMut() -> F) {
    for (_, case) in CASES {
        let fixture = make();
        case(fixture.store());
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

const DATA_TABLES: [Table; 8] = [
    Table::Meta,
    Table::Keyholders,
    Table::Identities,
    Table::Wraps,
    Table::Bodies,
    Table::Deks,
    Table::Index,
    Table::Jobs,
];

fn put(
    store: &dyn Store,
    table: Table,
    key: &[u8],
    value: &[u8],
    expect: Expect,
) -> Result<u64, StoreError> {
    let mut b = Batch::new();
    b.put(table, key, value, expect);
    Ok(store.commit(&b)?.versions[0])
}

fn delete(store: &dyn Store, table: Table, key: &[u8], expect: Expect) -> Result<(), StoreError> {
    let mut b = Batch::new();
    b.delete(table, key, expect);
    store.commit(&b).map(|_| ())
}

fn append(store: &dyn Store, table: Table, seq: u64, value: &[u8]) -> Result<(), StoreError> {
    let mut b = Batch::new();
    b.append(table, seq, value);
    store.commit(&b).map(|_| ())
}

fn ok<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

fn value_of<V: ReadView + ?Sized>(view: &V, table: Table, key: &[u8]) -> Option<Vec<u8>> {
    ok(view.get(table, key), "get").map(|v| v.value)
}

fn assert_conflict<T: Debug>(r: Result<T, StoreError>, table: Table, key: &[u8], what: &str) {
    match r {
        Err(StoreError::Conflict { table: t, key: k }) => {
            assert_eq!(t, table, "{what}: conflict names the wrong table");
            assert_eq!(k, key, "{what}: conflict names the wrong key");
        }
        other => panic!("{what}: expected Conflict on {table}/{key:02x?}, got {other:?}"),
    }
}

fn assert_invalid<T: Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(e @ StoreError::InvalidRequest { .. }) => {
            assert!(
                !e.is_retryable(),
                "{what}: invalid request marked retryable"
            );
        }
        other => panic!("{what}: expected InvalidRequest, got {other:?}"),
    }
}

/// Pages through `range` with `limit`, checking page shapes; returns every row.
fn scan_all<V: ReadView + ?Sized>(
    view: &V,
    table: Table,
    range: &ScanRange,
    limit: usize,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = ok(view.scan(table, range, cursor.as_ref(), limit), "scan");
        assert!(page.rows.len() <= limit, "page larger than its limit");
        let done = page.next.is_none();
        if !done {
            assert_eq!(
                page.rows.len(),
                limit,
                "a page with a next cursor must be full"
            );
        }
        rows.extend(page.rows);
        match page.next {
            // Persist and restore the cursor as a job would across a restart.
            Some(c) => cursor = Some(Cursor::from_bytes(c.as_bytes())),
            None => return rows,
        }
    }
}

fn keys(rows: &[Row]) -> Vec<Vec<u8>> {
    rows.iter().map(|r| r.key.clone()).collect()
}

fn num_key(prefix: &str, n: usize) -> Vec<u8> {
    format!("{prefix}{n:04}").into_bytes()
}

// ---------------------------------------------------------------------------------------
// Cases

/// Put, get, update, versioned update, delete and re-create in every data table.
pub fn crud_roundtrip(store: &dyn Store) {
    for table in DATA_TABLES {
        let key = format!("k-{}", table.name()).into_bytes();
        let v1 = format!("v1-{}", table.name()).into_bytes();
        assert_eq!(
            ok(put(store, table, &key, &v1, Expect::Absent), "insert"),
            1
        );
        assert_eq!(
            ok(store.get(table, &key), "get"),
            Some(Versioned {
                value: v1.clone(),
                version: 1
            })
        );
        assert_eq!(ok(put(store, table, &key, b"v2", Expect::Any), "update"), 2);
        assert_eq!(
            ok(put(store, table, &key, b"v3", Expect::Version(2)), "cas"),
            3
        );
        assert_eq!(
            ok(store.get(table, &key), "get"),
            Some(Versioned {
                value: b"v3".to_vec(),
                version: 3
            })
        );
        ok(delete(store, table, &key, Expect::Version(3)), "delete");
        assert_eq!(ok(store.get(table, &key), "get after delete"), None);
        ok(
            delete(store, table, &key, Expect::Any),
            "deleting a missing row is a no-op",
        );
        assert_eq!(
            ok(
                put(store, table, &key, b"again", Expect::Absent),
                "re-create"
            ),
            1,
            "a re-created row starts at version 1"
        );
    }
    for table in DATA_TABLES {
        let key = format!("k-{}", table.name()).into_bytes();
        assert_eq!(
            value_of(store, table, &key),
            Some(b"again".to_vec()),
            "rows of one table leak into another"
        );
    }
}

/// Missing rows read as `None`; the same key in different tables are different rows.
pub fn missing_rows_and_isolated_tables(store: &dyn Store) {
    for table in Table::ALL {
        assert_eq!(ok(store.get(table, b"nope"), "get missing"), None);
        let page = ok(store.scan(table, &ScanRange::all(), None, 10), "scan empty");
        assert!(page.rows.is_empty() && page.next.is_none());
    }
    ok(
        put(store, Table::Meta, b"same", b"meta", Expect::Any),
        "put",
    );
    ok(
        put(store, Table::Deks, b"same", b"deks", Expect::Any),
        "put",
    );
    assert_eq!(
        value_of(store, Table::Meta, b"same"),
        Some(b"meta".to_vec())
    );
    assert_eq!(
        value_of(store, Table::Deks, b"same"),
        Some(b"deks".to_vec())
    );
    assert_eq!(value_of(store, Table::Bodies, b"same"), None);
    ok(delete(store, Table::Meta, b"same", Expect::Any), "delete");
    assert_eq!(
        value_of(store, Table::Deks, b"same"),
        Some(b"deks".to_vec())
    );
}

/// Failed compare-and-swap puts return a typed conflict naming the key and change nothing.
pub fn cas_conflicts(store: &dyn Store) {
    let t = Table::Keyholders;
    ok(put(store, t, b"k", b"one", Expect::Absent), "insert");
    assert_conflict(
        put(store, t, b"k", b"x", Expect::Absent),
        t,
        b"k",
        "insert over an existing row",
    );
    assert_conflict(
        put(store, t, b"k", b"x", Expect::Version(2)),
        t,
        b"k",
        "put with a future version",
    );
    assert_conflict(
        put(store, t, b"k", b"x", Expect::Version(0)),
        t,
        b"k",
        "put with version 0",
    );
    assert_conflict(
        put(store, t, b"missing", b"x", Expect::Version(1)),
        t,
        b"missing",
        "versioned put of a missing row",
    );
    assert_eq!(
        ok(store.get(t, b"k"), "get"),
        Some(Versioned {
            value: b"one".to_vec(),
            version: 1
        }),
        "a failed CAS changed the row"
    );
    assert_eq!(ok(store.get(t, b"missing"), "get"), None);
    assert_eq!(
        ok(put(store, t, b"k", b"two", Expect::Version(1)), "cas"),
        2
    );
    assert_conflict(
        put(store, t, b"k", b"stale", Expect::Version(1)),
        t,
        b"k",
        "put with a stale version",
    );
    // The first failing operation of a batch is the one named.
    let mut b = Batch::new();
    b.put(t, b"fresh", b"1", Expect::Absent)
        .put(t, b"k", b"2", Expect::Version(7))
        .put(t, b"fresh2", b"3", Expect::Version(9));
    let err = store.commit(&b).unwrap_err();
    assert!(err.is_conflict() && err.is_retryable());
    assert!(
        err.to_string().contains(&hex_of(b"k")),
        "conflict message shows the key in hex: {err}"
    );
    assert_conflict(Err::<(), _>(err), t, b"k", "second op conflicts");
    assert_eq!(value_of(store, t, b"fresh"), None, "partial batch applied");
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Deletes honour their precondition.
pub fn delete_with_expect(store: &dyn Store) {
    let t = Table::Wraps;
    ok(put(store, t, b"d", b"v", Expect::Any), "put");
    ok(put(store, t, b"d", b"v", Expect::Any), "put");
    assert_conflict(
        delete(store, t, b"d", Expect::Version(1)),
        t,
        b"d",
        "delete with a stale version",
    );
    assert_conflict(
        delete(store, t, b"d", Expect::Absent),
        t,
        b"d",
        "delete expecting absence of an existing row",
    );
    assert_eq!(ok(store.get(t, b"d"), "get").map(|v| v.version), Some(2));
    ok(
        delete(store, t, b"none", Expect::Absent),
        "delete of a missing row expecting absence",
    );
    assert_conflict(
        delete(store, t, b"none", Expect::Version(1)),
        t,
        b"none",
        "versioned delete of a missing row",
    );
    ok(delete(store, t, b"d", Expect::Version(2)), "delete");
    assert_eq!(ok(store.get(t, b"d"), "get"), None);
    assert_conflict(
        delete(store, t, b"d", Expect::Version(2)),
        t,
        b"d",
        "second versioned delete",
    );
}

/// A check writes nothing, guards the whole batch, and works on log tables: a batch
/// made "while the log head was h" commits only while no entry h+1 exists.
pub fn checks_guard_a_batch(store: &dyn Store) {
    let t = Table::Meta;
    ok(put(store, t, b"guard", b"g", Expect::Any), "put");
    let mut b = Batch::new();
    b.check(t, b"guard".to_vec(), Expect::Version(1))
        .check(t, b"missing".to_vec(), Expect::Absent)
        .check(t, b"guard".to_vec(), Expect::Any)
        .put(Table::Index, b"a".to_vec(), b"1".to_vec(), Expect::Any);
    let c = ok(store.commit(&b), "commit guarded by passing checks");
    assert_eq!(c.versions, vec![0, 0, 0, 1], "checks report version 0");
    assert_eq!(
        ok(store.get(t, b"guard"), "get").map(|v| v.version),
        Some(1),
        "a check does not write"
    );

    let mut b = Batch::new();
    b.put(Table::Index, b"b".to_vec(), b"1".to_vec(), Expect::Any)
        .check(t, b"guard".to_vec(), Expect::Version(2));
    assert_conflict(store.commit(&b), t, b"guard", "stale version check");
    assert_eq!(
        ok(store.get(Table::Index, b"b"), "get"),
        None,
        "nothing of a failed batch"
    );

    let mut b = Batch::new();
    b.check(t, b"guard".to_vec(), Expect::Absent).put(
        Table::Index,
        b"b".to_vec(),
        b"1".to_vec(),
        Expect::Any,
    );
    assert_conflict(
        store.commit(&b),
        t,
        b"guard",
        "absence check on a present row",
    );

    // Guarding on a log: valid while the head has not moved.
    let log = Table::MemberLog;
    let mut b = Batch::new();
    b.append(log, 0, b"e0".to_vec());
    ok(store.commit(&b), "append 0");
    let guarded = |store: &dyn Store, next: u64| {
        let mut b = Batch::new();
        b.check(log, next.to_be_bytes().to_vec(), Expect::Absent)
            .put(
                Table::Index,
                b"c".to_vec(),
                next.to_be_bytes().to_vec(),
                Expect::Any,
            );
        store.commit(&b)
    };
    ok(guarded(store, 1), "guarded write while the head is 0");
    let mut b = Batch::new();
    b.append(log, 1, b"e1".to_vec());
    ok(store.commit(&b), "append 1");
    assert_conflict(guarded(store, 1), log, &1u64.to_be_bytes(), "the log moved");
    ok(guarded(store, 2), "guarded write after refreshing the head");
    assert_eq!(
        ok(store.get(Table::Index, b"c"), "get").map(|v| v.value),
        Some(2u64.to_be_bytes().to_vec())
    );
}

/// `replace_all` swaps the content of every table, logs included, or changes nothing.
pub fn replace_all_swaps_everything_atomically(store: &dyn Store) {
    let mut b = Batch::new();
    b.put(Table::Meta, b"old".to_vec(), b"1".to_vec(), Expect::Any)
        .put(
            Table::Bodies,
            b"keep-key".to_vec(),
            b"old".to_vec(),
            Expect::Any,
        )
        .append(Table::Audit, 0, b"a0".to_vec())
        .append(Table::Audit, 1, b"a1".to_vec());
    ok(store.commit(&b), "seed");
    let row = |t: Table, k: &[u8], v: &[u8]| -> Result<crate::TableRow, StoreError> {
        Ok((
            t,
            Row {
                key: k.to_vec(),
                value: v.to_vec(),
                version: 0,
            },
        ))
    };

    // An error from the input leaves the old content.
    let mut failing = vec![
        row(Table::Meta, b"new", b"x"),
        Err(StoreError::invalid("input broke")),
    ]
    .into_iter();
    assert!(store.replace_all(&mut failing).is_err());
    assert!(
        ok(store.get(Table::Meta, b"old"), "get").is_some(),
        "nothing replaced"
    );
    assert_eq!(ok(store.get(Table::Meta, b"new"), "get"), None);
    // A duplicate key is an error, and nothing changes either.
    let mut dup = vec![row(Table::Meta, b"d", b"1"), row(Table::Meta, b"d", b"2")].into_iter();
    assert!(store.replace_all(&mut dup).is_err());
    assert!(ok(store.get(Table::Meta, b"old"), "get").is_some());

    let mut rows = vec![
        row(Table::Meta, b"new", b"x"),
        row(Table::Bodies, b"keep-key", b"new body"),
        row(Table::MemberLog, &0u64.to_be_bytes(), b"m0"),
        row(Table::Audit, &0u64.to_be_bytes(), b"b0"),
        row(Table::Index, b"", b"empty key"),
    ]
    .into_iter();
    assert_eq!(ok(store.replace_all(&mut rows), "replace_all"), 5);
    assert_eq!(
        ok(store.get(Table::Meta, b"old"), "get"),
        None,
        "old rows are gone"
    );
    let v = ok(store.get(Table::Bodies, b"keep-key"), "get").expect("row");
    assert_eq!(
        (v.value, v.version),
        (b"new body".to_vec(), 1),
        "versions restart at 1"
    );
    assert_eq!(
        ok(store.log_head(Table::Audit), "head"),
        Some(0),
        "logs are replaced too"
    );
    assert_eq!(ok(store.log_head(Table::MemberLog), "head"), Some(0));
    assert!(ok(store.get(Table::Index, b""), "get").is_some());
    // Appends continue at the new head.
    let mut b = Batch::new();
    b.append(Table::Audit, 1, b"b1".to_vec());
    ok(store.commit(&b), "append after replace");
    // Replacing with nothing empties the store.
    assert_eq!(ok(store.replace_all(&mut std::iter::empty()), "empty"), 0);
    for t in Table::ALL {
        assert!(
            ok(store.scan(t, &ScanRange::all(), None, 10), "scan")
                .rows
                .is_empty()
        );
    }
}

/// `replace_all` gives the store a new generation, even with identical content, in the
/// same transaction; a batch requiring the old one is refused whole (no ABA through
/// restarted versions), one requiring the new one applies, a snapshot keeps its own.
pub fn replace_all_changes_the_generation(store: &dyn Store) {
    let g0 = ok(store.generation(), "generation");
    assert_eq!(
        ok(store.generation(), "generation"),
        g0,
        "stable between writes"
    );
    ok(
        put(store, Table::Index, b"k", b"v1", Expect::Absent),
        "seed",
    );
    assert_eq!(ok(store.generation(), "generation"), g0, "commits keep it");
    let snap = ok(store.snapshot(), "snapshot");
    let same = || {
        vec![Ok((
            Table::Index,
            Row {
                key: b"k".to_vec(),
                value: b"v1".to_vec(),
                version: 0,
            },
        ))]
        .into_iter()
    };
    ok(store.replace_all(&mut same()), "replace_all");
    let g1 = ok(store.generation(), "generation");
    assert_ne!(g1, g0, "replace_all must change the generation");
    assert_eq!(ok(snap.generation(), "snapshot generation"), g0);
    drop(snap);

    // Version 1 of "k" exists again: only the generation tells the batches apart.
    let mut stale = Batch::new();
    stale
        .put(
            Table::Index,
            b"k".to_vec(),
            b"stale".to_vec(),
            Expect::Version(1),
        )
        .put(Table::Meta, b"other".to_vec(), b"x".to_vec(), Expect::Any);
    stale.require_generation(g0);
    match store.commit(&stale) {
        Err(StoreError::GenerationChanged { expected, found }) => {
            assert_eq!((expected, found), (g0, g1));
        }
        other => panic!("a batch of the old generation must be refused, got {other:?}"),
    }
    assert_eq!(value_of(store, Table::Index, b"k"), Some(b"v1".to_vec()));
    assert_eq!(
        value_of(store, Table::Meta, b"other"),
        None,
        "nothing applied"
    );

    let mut fresh = Batch::new();
    fresh.put(
        Table::Index,
        b"k".to_vec(),
        b"v2".to_vec(),
        Expect::Version(1),
    );
    fresh.require_generation(g1);
    ok(store.commit(&fresh), "batch of the current generation");
    assert_eq!(value_of(store, Table::Index, b"k"), Some(b"v2".to_vec()));
    // A failed replacement keeps the generation.
    let mut failing = vec![Err(StoreError::invalid("input broke"))].into_iter();
    assert!(store.replace_all(&mut failing).is_err());
    assert_eq!(ok(store.generation(), "generation"), g1);
}

/// A multi-table batch whose last (or middle) operation conflicts leaves nothing behind.
pub fn multi_table_batch_atomicity(store: &dyn Store) {
    ok(put(store, Table::Meta, b"m", b"keep", Expect::Any), "put");
    ok(append(store, Table::Audit, 0, b"genesis"), "append");

    let mut b = Batch::new();
    b.put(Table::Deks, b"rec", b"dek", Expect::Absent)
        .put(Table::Bodies, b"rec", vec![7u8; 4096], Expect::Any)
        .delete(Table::Meta, b"m", Expect::Any)
        .append(Table::Audit, 1, b"put rec")
        .put(Table::Index, b"name", b"rec", Expect::Version(99));
    assert_conflict(store.commit(&b), Table::Index, b"name", "last op conflicts");

    let mut gap = Batch::new();
    gap.put(Table::Deks, b"rec", b"dek", Expect::Absent)
        .append(Table::Audit, 5, b"gap")
        .put(Table::Index, b"name", b"rec", Expect::Absent);
    assert_conflict(
        store.commit(&gap),
        Table::Audit,
        &log_key(5),
        "middle append conflicts",
    );

    let check_untouched = || {
        assert_eq!(value_of(store, Table::Deks, b"rec"), None, "partial batch");
        assert_eq!(
            value_of(store, Table::Bodies, b"rec"),
            None,
            "partial batch"
        );
        assert_eq!(
            value_of(store, Table::Index, b"name"),
            None,
            "partial batch"
        );
        assert_eq!(
            ok(store.get(Table::Meta, b"m"), "get"),
            Some(Versioned {
                value: b"keep".to_vec(),
                version: 1
            }),
            "partial batch"
        );
        assert_eq!(ok(store.log_head(Table::Audit), "head"), Some(0));
    };
    check_untouched();

    let mut good = Batch::new();
    good.put(Table::Deks, b"rec", b"dek", Expect::Absent)
        .put(Table::Bodies, b"rec", vec![7u8; 4096], Expect::Any)
        .delete(Table::Meta, b"m", Expect::Version(1))
        .append(Table::Audit, 1, b"put rec")
        .put(Table::Index, b"name", b"rec", Expect::Absent);
    let c = ok(store.commit(&good), "valid batch");
    assert_eq!(c.versions, vec![1, 1, 0, 1, 1]);
    assert_eq!(value_of(store, Table::Deks, b"rec"), Some(b"dek".to_vec()));
    assert_eq!(
        value_of(store, Table::Bodies, b"rec"),
        Some(vec![7u8; 4096])
    );
    assert_eq!(value_of(store, Table::Meta, b"m"), None);
    assert_eq!(ok(store.log_head(Table::Audit), "head"), Some(1));
}

/// Operations of one batch apply in order, each seeing the earlier ones.
pub fn batch_ops_see_earlier_ops(store: &dyn Store) {
    let t = Table::Jobs;
    let mut b = Batch::new();
    b.put(t, b"k", b"1", Expect::Absent)
        .put(t, b"k", b"2", Expect::Version(1))
        .delete(t, b"k", Expect::Version(2))
        .put(t, b"k", b"3", Expect::Absent)
        .append(Table::MemberLog, 0, b"a")
        .append(Table::MemberLog, 1, b"b")
        .append(Table::MemberLog, 2, b"c");
    let c = ok(store.commit(&b), "sequential batch");
    assert_eq!(c.versions, vec![1, 2, 0, 1, 1, 1, 1]);
    assert_eq!(
        ok(store.get(t, b"k"), "get"),
        Some(Versioned {
            value: b"3".to_vec(),
            version: 1
        })
    );
    assert_eq!(ok(store.log_head(Table::MemberLog), "head"), Some(2));

    // A later op conflicting with the effect of an earlier one aborts the whole batch.
    let mut b = Batch::new();
    b.put(t, b"k", b"4", Expect::Version(1))
        .put(t, b"k", b"5", Expect::Version(1));
    assert_conflict(store.commit(&b), t, b"k", "second put sees the first");
    assert_eq!(ok(store.get(t, b"k"), "get").map(|v| v.version), Some(1));
}

/// `Committed::versions` has one entry per op; an empty batch commits nothing.
pub fn committed_versions_and_empty_batch(store: &dyn Store) {
    let c = ok(store.commit(&Batch::new()), "empty batch");
    assert!(c.versions.is_empty());
    for table in Table::ALL {
        let page = ok(store.scan(table, &ScanRange::all(), None, 1), "scan");
        assert!(page.rows.is_empty(), "empty batch wrote something");
    }
    let mut b = Batch::new();
    b.put(Table::Meta, b"a", b"1", Expect::Any)
        .put(Table::Meta, b"b", b"1", Expect::Any)
        .delete(Table::Meta, b"zz", Expect::Any)
        .append(Table::Audit, 0, b"x");
    assert_eq!(ok(store.commit(&b), "batch").versions, vec![1, 1, 0, 1]);
    let mut b = Batch::new();
    b.put(Table::Meta, b"b", b"2", Expect::Any)
        .put(Table::Meta, b"a", b"2", Expect::Version(1))
        .put(Table::Meta, b"b", b"3", Expect::Version(2));
    assert_eq!(ok(store.commit(&b), "batch").versions, vec![2, 2, 3]);
    let page = ok(store.scan(Table::Meta, &ScanRange::all(), None, 10), "scan");
    let versions: Vec<(Vec<u8>, u64)> = page.rows.into_iter().map(|r| (r.key, r.version)).collect();
    assert_eq!(versions, vec![(b"a".to_vec(), 2), (b"b".to_vec(), 3)]);
}

/// The empty key and empty values are ordinary rows.
pub fn empty_keys_and_values(store: &dyn Store) {
    let t = Table::Identities;
    assert_eq!(
        ok(put(store, t, b"", b"", Expect::Absent), "empty/empty"),
        1
    );
    ok(put(store, t, b"x", b"", Expect::Absent), "empty value");
    ok(put(store, t, b"\x00", b"zero", Expect::Absent), "zero key");
    assert_eq!(
        ok(store.get(t, b""), "get empty"),
        Some(Versioned {
            value: Vec::new(),
            version: 1
        })
    );
    assert_eq!(value_of(store, t, b"x"), Some(Vec::new()));
    let rows = scan_all(store, t, &ScanRange::all(), 10);
    assert_eq!(
        keys(&rows),
        vec![b"".to_vec(), b"\x00".to_vec(), b"x".to_vec()],
        "the empty key sorts first"
    );
    assert_eq!(rows[0].value, Vec::<u8>::new());
    let rows = scan_all(store, t, &ScanRange::prefix(Vec::new()), 1);
    assert_eq!(rows.len(), 3, "the empty prefix covers every key");
    let rows = scan_all(store, t, &ScanRange::range(Vec::new(), vec![0]), 5);
    assert_eq!(keys(&rows), vec![b"".to_vec()]);
    assert_eq!(
        ok(put(store, t, b"", b"now set", Expect::Version(1)), "cas"),
        2
    );
    ok(
        delete(store, t, b"", Expect::Version(2)),
        "delete empty key",
    );
    assert_eq!(ok(store.get(t, b""), "get"), None);
}

/// Keys sort as unsigned bytes, shorter prefix first; prefix and range scans honour it.
pub fn binary_key_ordering(store: &dyn Store) {
    let t = Table::Index;
    let mut all: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xff],
        vec![0x01],
        vec![0x7f],
        vec![0x80],
        vec![0x80, 0x00],
        vec![0xfe, 0xff],
        vec![0xff],
        vec![0xff, 0x00],
        vec![0xff, 0xff],
        vec![0xff, 0xff, 0xff],
        b"a".to_vec(),
        b"ab".to_vec(),
        b"b".to_vec(),
    ];
    // Insert in a scrambled but fixed order.
    let mut b = Batch::new();
    for i in 0..all.len() {
        let k = &all[(i * 7) % all.len()];
        b.put(t, k.clone(), k.clone(), Expect::Absent);
    }
    ok(store.commit(&b), "insert keys");
    all.sort();
    let rows = scan_all(store, t, &ScanRange::all(), 100);
    assert_eq!(keys(&rows), all, "scan order is not unsigned byte order");
    for r in &rows {
        assert_eq!(r.key, r.value);
    }
    let check = |range: ScanRange, expect: &[&[u8]]| {
        for limit in [1, 2, 100] {
            let got = keys(&scan_all(store, t, &range, limit));
            let want: Vec<Vec<u8>> = expect.iter().map(|k| k.to_vec()).collect();
            assert_eq!(got, want, "scan of {range:?} with limit {limit}");
        }
    };
    check(
        ScanRange::prefix(vec![0xff]),
        &[&[0xff], &[0xff, 0x00], &[0xff, 0xff], &[0xff, 0xff, 0xff]],
    );
    check(
        ScanRange::prefix(vec![0xff, 0xff]),
        &[&[0xff, 0xff], &[0xff, 0xff, 0xff]],
    );
    check(
        ScanRange::prefix(vec![0x00]),
        &[&[0x00], &[0x00, 0x00], &[0x00, 0xff]],
    );
    check(ScanRange::prefix(b"a".to_vec()), &[b"a", b"ab"]);
    check(
        ScanRange::range(vec![0x00, 0xff], vec![0x80]),
        &[&[0x00, 0xff], &[0x01], b"a", b"ab", b"b", &[0x7f]],
    );
    check(
        ScanRange::from_bounds(
            Bound::Excluded(vec![0x7f]),
            Bound::Included(vec![0xfe, 0xff]),
        ),
        &[&[0x80], &[0x80, 0x00], &[0xfe, 0xff]],
    );
    check(
        ScanRange::from_bounds(Bound::Unbounded, Bound::Excluded(vec![0x00, 0x00])),
        &[&[], &[0x00]],
    );
    check(
        ScanRange::from_bounds(Bound::Excluded(vec![0xff, 0xff]), Bound::Unbounded),
        &[&[0xff, 0xff, 0xff]],
    );
    check(ScanRange::range(vec![0x80], vec![0x80]), &[]);
    check(ScanRange::range(vec![0x90], vec![0x10]), &[]);
    check(
        ScanRange::from_bounds(Bound::Included(vec![0x7f]), Bound::Included(vec![0x7f])),
        &[&[0x7f]],
    );
}

/// Paging with many limits and persisted cursors returns each row exactly once.
pub fn pagination_limits_and_resume(store: &dyn Store) {
    let t = Table::Deks;
    let mut b = Batch::new();
    for i in 0..57 {
        b.put(t, num_key("p/", i), format!("v{i}"), Expect::Absent);
    }
    b.put(t, b"o/outside", b"x", Expect::Absent)
        .put(t, b"q", b"x", Expect::Absent)
        .put(t, b"p", b"x", Expect::Absent);
    ok(store.commit(&b), "insert");
    let want: Vec<Vec<u8>> = (0..57).map(|i| num_key("p/", i)).collect();
    let range = ScanRange::prefix(b"p/".to_vec());
    for limit in [1, 2, 7, 19, 56, 57, 58, 100, MAX_SCAN_LIMIT] {
        let mut pages = 0;
        let mut cursor = None;
        let mut got = Vec::new();
        loop {
            let page: Page = ok(store.scan(t, &range, cursor.as_ref(), limit), "scan");
            pages += 1;
            got.extend(page.rows.iter().map(|r| {
                assert_eq!(r.version, 1);
                r.key.clone()
            }));
            if page.next.is_some() {
                assert_eq!(page.rows.len(), limit);
                assert_eq!(
                    page.next.as_ref().map(Cursor::as_bytes),
                    page.rows.last().map(|r| r.key.as_slice()),
                    "the cursor wraps the last key returned"
                );
            }
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
            assert!(pages < 1000, "pagination does not terminate");
        }
        assert_eq!(got, want, "limit {limit}");
        assert_eq!(pages, 57usize.div_ceil(limit), "limit {limit}: page count");
    }
    // Resume after a key that has since been deleted.
    ok(delete(store, t, &num_key("p/", 10), Expect::Any), "delete");
    let page = ok(
        store.scan(t, &range, Some(&Cursor::after(num_key("p/", 10))), 2),
        "scan",
    );
    assert_eq!(keys(&page.rows), vec![num_key("p/", 11), num_key("p/", 12)]);
    // A cursor before the range starts at the range; past it, nothing is left.
    let page = ok(
        store.scan(t, &range, Some(&Cursor::after(b"a".to_vec())), 1),
        "scan",
    );
    assert_eq!(keys(&page.rows), vec![num_key("p/", 0)]);
    let page = ok(
        store.scan(t, &range, Some(&Cursor::after(b"p0".to_vec())), 5),
        "scan",
    );
    assert!(page.rows.is_empty() && page.next.is_none());
    let page = ok(
        store.scan(t, &range, Some(&Cursor::after(num_key("p/", 56))), 5),
        "scan",
    );
    assert!(page.rows.is_empty() && page.next.is_none());
    // The values come with the keys.
    let page = ok(store.scan(t, &range, None, 1), "scan");
    assert_eq!(page.rows[0].value, b"v0");
}

/// Paging while other writers insert, update and delete: no duplicates, ascending keys,
/// and every key that existed for the whole scan is returned.
pub fn pagination_with_concurrent_writes(store: &dyn Store) {
    const N: usize = 240;
    const MAX_WRITES: u64 = 20_000;
    let t = Table::Index;
    let mut b = Batch::new();
    for i in (0..N).step_by(2) {
        b.put(t, num_key("s/", i), b"stable", Expect::Absent);
    }
    ok(store.commit(&b), "insert stable keys");
    let done = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0usize;
            while !done.load(Ordering::SeqCst) && writes.load(Ordering::SeqCst) < MAX_WRITES {
                let odd = 1 + 2 * (i * 37 % (N / 2));
                let stable = 2 * (i * 53 % (N / 2));
                let mut b = Batch::new();
                b.put(t, num_key("s/", odd), b"transient", Expect::Any).put(
                    t,
                    num_key("s/", stable),
                    format!("stable{i}"),
                    Expect::Any,
                );
                if i.is_multiple_of(3) {
                    b.delete(t, num_key("s/", 1 + 2 * (i * 11 % (N / 2))), Expect::Any);
                }
                ok(store.commit(&b), "concurrent write");
                writes.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        });
        // Scan at least 4 times, and until the writer has made progress (or hit its cap).
        let mut round = 0;
        while round < 4
            || (writes.load(Ordering::SeqCst) < 200 && writes.load(Ordering::SeqCst) < MAX_WRITES)
        {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let page = ok(
                    store.scan(t, &ScanRange::prefix(b"s/".to_vec()), cursor.as_ref(), 7),
                    "scan",
                );
                seen.extend(page.rows.into_iter().map(|r| r.key));
                cursor = page.next;
                if cursor.is_none() {
                    break;
                }
            }
            for w in seen.windows(2) {
                assert!(w[0] < w[1], "round {round}: duplicate or out-of-order key");
            }
            let seen: BTreeSet<Vec<u8>> = seen.into_iter().collect();
            for i in (0..N).step_by(2) {
                assert!(
                    seen.contains(&num_key("s/", i)),
                    "round {round}: stable key {i} skipped"
                );
            }
            for k in &seen {
                assert!(k.starts_with(b"s/"), "key outside the range");
            }
            round += 1;
        }
        done.store(true, Ordering::SeqCst);
    });
}

/// Values of 16 MiB and more round-trip through put, get and scan in both table kinds.
pub fn large_values(store: &dyn Store) {
    let big: Vec<u8> = (0..=(16usize << 20)).map(|i| (i % 251) as u8).collect();
    for t in [Table::Bodies, Table::Deks] {
        ok(put(store, t, b"big", &big, Expect::Absent), "put 16 MiB");
        let got = ok(store.get(t, b"big"), "get").expect("large row missing");
        assert_eq!(got.version, 1);
        assert!(got.value == big, "16 MiB value corrupted");
        let page = ok(store.scan(t, &ScanRange::all(), None, 5), "scan");
        assert_eq!(page.rows.len(), 1);
        assert!(page.rows[0].value == big, "scanned large value corrupted");
    }
    let mut bigger = big.clone();
    bigger.extend_from_slice(&vec![0xee; 1 << 20]);
    assert_eq!(
        ok(
            put(store, Table::Bodies, b"big", &bigger, Expect::Version(1)),
            "update"
        ),
        2
    );
    let got = ok(store.get(Table::Bodies, b"big"), "get").expect("row");
    assert!(got.value == bigger, "17 MiB value corrupted");
    ok(append(store, Table::Audit, 0, &big), "append 16 MiB");
    let got = ok(store.get(Table::Audit, &log_key(0)), "get").expect("log row");
    assert!(got.value == big);
}

/// A snapshot keeps showing the state of the moment it was taken.
pub fn snapshot_sees_a_fixed_state(store: &dyn Store) {
    let t = Table::Meta;
    let mut b = Batch::new();
    for i in 0..10 {
        b.put(t, num_key("k", i), b"before", Expect::Absent);
    }
    b.append(Table::Audit, 0, b"e0");
    ok(store.commit(&b), "setup");
    let snap = ok(store.snapshot(), "snapshot");
    let mut b = Batch::new();
    for i in 0..10 {
        if i % 2 == 0 {
            b.delete(t, num_key("k", i), Expect::Version(1));
        } else {
            b.put(t, num_key("k", i), b"after", Expect::Version(1));
        }
    }
    b.put(t, b"new", b"row", Expect::Absent)
        .append(Table::Audit, 1, b"e1");
    ok(store.commit(&b), "commit while a snapshot is open");
    for i in 0..10 {
        assert_eq!(
            ok(snap.get(t, &num_key("k", i)), "snapshot get"),
            Some(Versioned {
                value: b"before".to_vec(),
                version: 1
            }),
            "the snapshot moved"
        );
    }
    assert_eq!(ok(snap.get(t, b"new"), "snapshot get"), None);
    assert_eq!(ok(snap.log_head(Table::Audit), "snapshot head"), Some(0));
    let rows = scan_all(&*snap, t, &ScanRange::all(), 3);
    assert_eq!(rows.len(), 10, "snapshot scan moved");
    assert!(rows.iter().all(|r| r.value == b"before"));
    assert_eq!(ok(store.log_head(Table::Audit), "head"), Some(1));
    assert_eq!(
        value_of(store, t, &num_key("k", 1)),
        Some(b"after".to_vec())
    );
    let snap2 = ok(store.snapshot(), "second snapshot");
    assert_eq!(
        ok(snap2.get(t, b"new"), "get"),
        Some(Versioned {
            value: b"row".to_vec(),
            version: 1
        })
    );
    assert_eq!(scan_all(&*snap2, t, &ScanRange::all(), 100).len(), 6);
    drop(snap);
    drop(snap2);
    ok(
        put(store, t, b"later", b"x", Expect::Absent),
        "write after snapshots",
    );
}

const GROUP: usize = 10;

fn write_generation(store: &dyn Store, gen_value: &[u8]) {
    loop {
        let head = ok(store.log_head(Table::Audit), "head");
        let seq = head.map_or(0, |h| h + 1);
        let mut b = Batch::new();
        for i in 0..GROUP {
            b.put(Table::Index, num_key("g/", i), gen_value, Expect::Any);
        }
        b.put(Table::Meta, b"gen", gen_value, Expect::Any)
            .append(Table::Audit, seq, gen_value);
        match store.commit(&b) {
            Ok(_) => return,
            Err(e) if e.is_conflict() => {}
            Err(e) => panic!("writer: {e:?}"),
        }
    }
}

fn check_generation<V: ReadView + ?Sized>(view: &V) -> (Vec<u8>, Option<u64>) {
    let rows = scan_all(view, Table::Index, &ScanRange::prefix(b"g/".to_vec()), 4);
    assert_eq!(rows.len(), GROUP, "a row of the group is missing");
    let first = rows[0].value.clone();
    for r in &rows {
        assert_eq!(r.value, first, "half of a batch is visible");
    }
    let meta = value_of(view, Table::Meta, b"gen").expect("gen row");
    assert_eq!(meta, first, "tables disagree inside one view");
    let head = ok(view.log_head(Table::Audit), "head");
    let last = value_of(view, Table::Audit, &log_key(head.expect("log")));
    assert_eq!(
        last,
        Some(first.clone()),
        "log head disagrees with the tables"
    );
    (first, head)
}

/// Snapshots taken while writer threads commit multi-table batches each show whole
/// batches only, and never move.
pub fn snapshot_consistency_under_writers(store: &dyn Store) {
    write_generation(store, b"w-init");
    let running = AtomicU64::new(2);
    thread::scope(|s| {
        for w in 0..2 {
            let running = &running;
            s.spawn(move || {
                for n in 0..60 {
                    write_generation(store, format!("w{w}-{n:03}").as_bytes());
                }
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        let mut checks = 0;
        while running.load(Ordering::SeqCst) > 0 || checks < 3 {
            let snap = ok(store.snapshot(), "snapshot");
            let first = check_generation(&*snap);
            thread::yield_now();
            let again = check_generation(&*snap);
            assert_eq!(first, again, "the snapshot moved while writers ran");
            checks += 1;
        }
    });
    let (_, head) = check_generation(store);
    assert_eq!(head, Some(120), "every writer batch is in the log once");
}

/// Plain (non-snapshot) scans never show part of a concurrently committed batch.
pub fn scan_never_sees_partial_batch(store: &dyn Store) {
    const MAX_WRITES: u64 = 5_000;
    write_generation(store, b"init");
    let done = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) && writes.load(Ordering::SeqCst) < MAX_WRITES {
                let n = writes.load(Ordering::SeqCst);
                write_generation(store, format!("gen-{n:05}").as_bytes());
                writes.fetch_add(1, Ordering::SeqCst);
            }
        });
        // Read at least 150 times, and until the writer has made progress (or hit its cap).
        let mut reads = 0;
        while reads < 150
            || (writes.load(Ordering::SeqCst) < 100 && writes.load(Ordering::SeqCst) < MAX_WRITES)
        {
            let page = ok(
                store.scan(Table::Index, &ScanRange::prefix(b"g/".to_vec()), None, 100),
                "scan",
            );
            assert_eq!(page.rows.len(), GROUP);
            let first = &page.rows[0].value;
            assert!(
                page.rows.iter().all(|r| &r.value == first),
                "a scan saw half of a batch"
            );
            reads += 1;
        }
        done.store(true, Ordering::SeqCst);
    });
}

/// `get_many` returns one result per key, in order: values and versions across tables,
/// `None` for missing rows, a key given twice read twice, nothing for no keys.
pub fn get_many_reads_keys_of_any_tables(store: &dyn Store) {
    let mut b = Batch::new();
    b.put(Table::Index, b"k1", b"index-1", Expect::Any)
        .put(Table::Deks, b"k1", b"dek-1", Expect::Any)
        .put(Table::Bodies, b"", b"empty key", Expect::Any);
    ok(store.commit(&b), "commit");
    ok(
        put(store, Table::Index, b"k1", b"index-1b", Expect::Any),
        "put",
    );
    let got = ok(
        store.get_many(&[
            (Table::Deks, b"k1"),
            (Table::Index, b"k1"),
            (Table::Meta, b"k1"),
            (Table::Bodies, b""),
            (Table::Index, b"k1"),
            (Table::Index, b"missing"),
        ]),
        "get_many",
    );
    let got: Vec<Option<(Vec<u8>, u64)>> = got
        .into_iter()
        .map(|v| v.map(|v| (v.value, v.version)))
        .collect();
    assert_eq!(
        got,
        [
            Some((b"dek-1".to_vec(), 1)),
            Some((b"index-1b".to_vec(), 2)),
            None,
            Some((b"empty key".to_vec(), 1)),
            Some((b"index-1b".to_vec(), 2)),
            None,
        ]
    );
    assert!(ok(store.get_many(&[]), "get_many of nothing").is_empty());
    let view = ok(store.snapshot(), "snapshot");
    let in_view = ok(view.get_many(&[(Table::Deks, b"k1")]), "snapshot get_many");
    assert_eq!(
        in_view[0].as_ref().map(|v| v.value.clone()),
        Some(b"dek-1".to_vec())
    );
}

/// A `get_many` of keys a concurrent writer changes together (one batch over two tables)
/// sees them all from one batch: one point in time, never half of a batch.
pub fn get_many_never_sees_partial_batch(store: &dyn Store) {
    const MAX_WRITES: u64 = 3_000;
    let write = |n: u64| {
        let v = n.to_be_bytes();
        let mut b = Batch::new();
        b.put(Table::Index, b"pair", v, Expect::Any)
            .put(Table::Deks, b"pair", v, Expect::Any)
            .put(Table::Meta, b"pair", v, Expect::Any);
        ok(store.commit(&b), "writer");
    };
    write(0);
    let done = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) && writes.load(Ordering::SeqCst) < MAX_WRITES {
                let n = writes.fetch_add(1, Ordering::SeqCst) + 1;
                write(n);
            }
        });
        let mut reads = 0;
        while reads < 150
            || (writes.load(Ordering::SeqCst) < 100 && writes.load(Ordering::SeqCst) < MAX_WRITES)
        {
            let got = ok(
                store.get_many(&[
                    (Table::Index, b"pair"),
                    (Table::Deks, b"pair"),
                    (Table::Meta, b"pair"),
                ]),
                "get_many",
            );
            let values: Vec<Vec<u8>> = got.into_iter().map(|v| v.unwrap().value).collect();
            assert!(
                values.iter().all(|v| v == &values[0]),
                "a get_many saw half of a batch: {values:?}"
            );
            reads += 1;
        }
        done.store(true, Ordering::SeqCst);
    });
}

/// Threads incrementing one counter with CAS retry loops lose no update.
pub fn concurrent_cas_counter(store: &dyn Store) {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 25;
    let successes = AtomicU64::new(0);
    let conflicts = AtomicU64::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..PER_THREAD {
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        assert!(attempts < 100_000, "CAS retry loop starves");
                        let current = ok(store.get(Table::Meta, b"counter"), "read counter");
                        let (n, expect) = match &current {
                            None => (0u64, Expect::Absent),
                            Some(v) => {
                                let bytes: [u8; 8] =
                                    v.value.as_slice().try_into().expect("8-byte counter");
                                (u64::from_be_bytes(bytes), Expect::Version(v.version))
                            }
                        };
                        let next = (n + 1).to_be_bytes();
                        match put(store, Table::Meta, b"counter", &next, expect) {
                            Ok(version) => {
                                assert_eq!(version, n + 1, "version tracks the count");
                                successes.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(e) if e.is_conflict() => {
                                conflicts.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => panic!("increment failed: {e:?}"),
                        }
                    }
                }
            });
        }
    });
    let total = THREADS * PER_THREAD;
    assert_eq!(successes.load(Ordering::SeqCst), total);
    let v = ok(store.get(Table::Meta, b"counter"), "get").expect("counter");
    let bytes: [u8; 8] = v.value.as_slice().try_into().expect("8 bytes");
    assert_eq!(u64::from_be_bytes(bytes), total, "an increment was lost");
    assert_eq!(v.version, total);
}

/// Appends only at the head: gaps and forks conflict; `log_head` follows.
pub fn log_append_and_head(store: &dyn Store) {
    for log in [Table::Audit, Table::MemberLog] {
        assert_eq!(ok(store.log_head(log), "empty head"), None);
    }
    assert_conflict(
        append(store, Table::Audit, 1, b"gap"),
        Table::Audit,
        &log_key(1),
        "append with a gap on an empty log",
    );
    ok(append(store, Table::Audit, 0, b"e0"), "append 0");
    assert_eq!(ok(store.log_head(Table::Audit), "head"), Some(0));
    assert_conflict(
        append(store, Table::Audit, 0, b"fork"),
        Table::Audit,
        &log_key(0),
        "fork at 0",
    );
    assert_eq!(
        ok(store.get(Table::Audit, &log_key(0)), "get"),
        Some(Versioned {
            value: b"e0".to_vec(),
            version: 1
        }),
        "a fork overwrote the entry"
    );
    assert_conflict(
        append(store, Table::Audit, 2, b"gap"),
        Table::Audit,
        &log_key(2),
        "gap",
    );
    ok(append(store, Table::Audit, 1, b"e1"), "append 1");
    assert_eq!(ok(store.log_head(Table::MemberLog), "other log"), None);
    // Cross the one-byte boundary so big-endian keys matter.
    for chunk in 0..3u64 {
        let mut b = Batch::new();
        for seq in (2 + chunk * 100)..(2 + (chunk + 1) * 100) {
            b.append(Table::Audit, seq, format!("e{seq}"));
        }
        ok(store.commit(&b), "append chunk");
    }
    assert_eq!(ok(store.log_head(Table::Audit), "head"), Some(301));
    let rows = scan_all(store, Table::Audit, &ScanRange::all(), 64);
    assert_eq!(rows.len(), 302);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.key, log_key(i as u64).to_vec(), "log keys out of order");
        assert_eq!(r.version, 1);
    }
    assert_eq!(rows[300].value, b"e300");
    assert_conflict(
        append(store, Table::Audit, 301, b"fork"),
        Table::Audit,
        &log_key(301),
        "fork at the head",
    );
    let range = ScanRange::range(log_key(250).to_vec(), log_key(260).to_vec());
    assert_eq!(scan_all(store, Table::Audit, &range, 3).len(), 10);
}

/// Racing appenders: exactly one winner per sequence number, no gaps, no forks.
pub fn log_append_races(store: &dyn Store) {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 12;
    const PER_THREAD: usize = 15;
    // Everyone appends at the same seq at once.
    let barrier = Barrier::new(THREADS);
    let winners: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for id in 0..THREADS {
            let (barrier, winners) = (&barrier, &winners);
            s.spawn(move || {
                for seq in 0..ROUNDS {
                    barrier.wait();
                    match append(store, Table::MemberLog, seq, format!("t{id}").as_bytes()) {
                        Ok(()) => winners.lock().expect("lock").push((seq, id)),
                        Err(e) if e.is_conflict() => {}
                        Err(e) => panic!("append failed: {e:?}"),
                    }
                    barrier.wait();
                }
            });
        }
    });
    let winners = winners.into_inner().expect("lock");
    for seq in 0..ROUNDS {
        let won: Vec<usize> = winners
            .iter()
            .filter(|(s, _)| *s == seq)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(won.len(), 1, "seq {seq}: {} winners", won.len());
        assert_eq!(
            value_of(store, Table::MemberLog, &log_key(seq)),
            Some(format!("t{}", won[0]).into_bytes()),
            "the stored entry is not the winner's"
        );
    }
    assert_eq!(
        ok(store.log_head(Table::MemberLog), "head"),
        Some(ROUNDS - 1)
    );

    // Free-running appenders that retry at the new head.
    let won: Mutex<Vec<(u64, Vec<u8>)>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for id in 0..THREADS {
            let won = &won;
            s.spawn(move || {
                for n in 0..PER_THREAD {
                    let value = format!("t{id}-{n}").into_bytes();
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        assert!(attempts < 100_000, "append retry loop starves");
                        let head = ok(store.log_head(Table::Audit), "head");
                        let seq = head.map_or(0, |h| h + 1);
                        match append(store, Table::Audit, seq, &value) {
                            Ok(()) => {
                                won.lock().expect("lock").push((seq, value));
                                break;
                            }
                            Err(e) if e.is_conflict() => {}
                            Err(e) => panic!("append failed: {e:?}"),
                        }
                    }
                }
            });
        }
    });
    let mut won = won.into_inner().expect("lock");
    won.sort();
    let total = THREADS * PER_THREAD;
    assert_eq!(won.len(), total);
    let rows = scan_all(store, Table::Audit, &ScanRange::all(), 1000);
    assert_eq!(rows.len(), total, "log has forks or lost entries");
    for (i, (row, (seq, value))) in rows.iter().zip(&won).enumerate() {
        assert_eq!(*seq, i as u64, "two winners or a gap at seq {i}");
        assert_eq!(row.key, log_key(*seq).to_vec(), "gap in the log");
        assert_eq!(&row.value, value, "entry {i} is not its winner's");
    }
    assert_eq!(
        ok(store.log_head(Table::Audit), "head"),
        Some(total as u64 - 1)
    );
}

/// Invalid requests fail with `InvalidRequest` and apply nothing.
pub fn invalid_requests(store: &dyn Store) {
    let all = ScanRange::all();
    assert_invalid(store.scan(Table::Meta, &all, None, 0), "limit 0");
    assert_invalid(
        store.scan(Table::Meta, &all, None, MAX_SCAN_LIMIT + 1),
        "limit above the maximum",
    );
    assert_invalid(
        store.scan(Table::Meta, &all, None, usize::MAX),
        "huge limit",
    );
    ok(
        store.scan(Table::Meta, &all, None, MAX_SCAN_LIMIT),
        "maximum limit",
    );
    assert_invalid(store.log_head(Table::Meta), "log_head of a non-log table");
    let snap = ok(store.snapshot(), "snapshot");
    assert_invalid(snap.scan(Table::Meta, &all, None, 0), "snapshot limit 0");
    assert_invalid(snap.log_head(Table::Deks), "snapshot log_head");
    drop(snap);
    assert_invalid(
        put(store, Table::Audit, &log_key(0), b"x", Expect::Absent),
        "put into a log",
    );
    assert_invalid(
        delete(store, Table::MemberLog, &log_key(0), Expect::Any),
        "delete from a log",
    );
    assert_invalid(append(store, Table::Meta, 0, b"x"), "append to a non-log");
    let long_key = vec![0xab; MAX_KEY_LEN + 1];
    assert_invalid(
        put(store, Table::Meta, &long_key, b"x", Expect::Any),
        "key too long",
    );
    let mut b = Batch::new();
    b.put(Table::Meta, b"ok", b"x", Expect::Any).put(
        Table::Bodies,
        b"huge",
        vec![0u8; MAX_VALUE_LEN + 1],
        Expect::Any,
    );
    assert_invalid(store.commit(&b), "value too large");
    assert_eq!(value_of(store, Table::Meta, b"ok"), None, "partial batch");
    // The longest valid key works.
    let max_key = vec![0xcd; MAX_KEY_LEN];
    ok(
        put(store, Table::Index, &max_key, b"v", Expect::Absent),
        "max key",
    );
    assert_eq!(value_of(store, Table::Index, &max_key), Some(b"v".to_vec()));
    let rows = scan_all(store, Table::Index, &ScanRange::prefix(vec![0xcd]), 2);
    assert_eq!(keys(&rows), vec![max_key]);
}

/// The store reports the current schema version and a backend name.
pub fn schema_and_backend(store: &dyn Store) {
    assert_eq!(ok(store.schema_version(), "schema_version"), SCHEMA_VERSION);
    let name = store.backend();
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase()),
        "backend name {name:?}"
    );
}
