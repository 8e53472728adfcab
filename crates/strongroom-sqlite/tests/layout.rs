//! The index table's physical layout: a rowid table, whose pages hold index entries with
//! inline bodies without overflow. A store made with the older `WITHOUT ROWID` layout keeps
//! its rows and is rebuilt at the first open that finds the write lock free; an open never
//! waits for that lock.

use rusqlite::Connection;
use strongroom_sqlite::{SqliteOptions, SqliteStore};
use strongroom_store::{Batch, Expect, ReadView, ScanRange, Store, Table, scan_all};

fn index_sql(path: &std::path::Path) -> String {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'sr_index'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn is_rowid_layout(path: &std::path::Path) -> bool {
    !index_sql(path)
        .to_ascii_uppercase()
        .contains("WITHOUT ROWID")
}

/// A store holding index rows of several sizes (some updated, so versions differ), closed.
fn store_with_rows(path: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    let store = SqliteStore::open(path, SqliteOptions::default()).unwrap();
    for round in 0..2u8 {
        let mut b = Batch::new();
        for i in 0..200u32 {
            if round == 1 && i % 3 != 0 {
                continue;
            }
            let value = vec![i as u8 ^ round; 40 + (i as usize * 37) % 3000];
            b.put(Table::Index, i.to_be_bytes().to_vec(), value, Expect::Any);
        }
        store.commit(&b).unwrap();
    }
    rows(&store)
}

fn rows(store: &SqliteStore) -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    scan_all(store, Table::Index, &ScanRange::all())
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.version))
        .collect()
}

/// Turns the index table back into the layout of stores made by earlier releases.
fn make_old_layout(path: &std::path::Path) {
    Connection::open(path)
        .unwrap()
        .execute_batch(
            "BEGIN;
             CREATE TABLE sr_index_old (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
             INSERT INTO sr_index_old SELECT k, v, ver FROM sr_index;
             DROP TABLE sr_index;
             ALTER TABLE sr_index_old RENAME TO sr_index;
             COMMIT;",
        )
        .unwrap();
    assert!(!is_rowid_layout(path));
}

#[test]
fn a_new_store_has_the_rowid_index_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    store_with_rows(&path);
    assert!(is_rowid_layout(&path), "{}", index_sql(&path));
}

#[test]
fn an_old_layout_is_rebuilt_at_open_with_every_row_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let before = store_with_rows(&path);
    make_old_layout(&path);
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert!(is_rowid_layout(&path), "{}", index_sql(&path));
    assert_eq!(rows(&store), before);
    // It keeps working as a store: compare-and-swap on the carried-over versions.
    let (key, _, version) = before[0].clone();
    let mut b = Batch::new();
    b.put(
        Table::Index,
        key.clone(),
        b"new".to_vec(),
        Expect::Version(version),
    );
    store.commit(&b).unwrap();
    assert_eq!(
        store.get(Table::Index, &key).unwrap().unwrap().version,
        version + 1
    );
}

#[test]
fn an_open_does_not_wait_for_the_write_lock_to_upgrade_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let before = store_with_rows(&path);
    make_old_layout(&path);

    let writer = Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert!(
        !is_rowid_layout(&path),
        "the lock was taken: nothing rebuilt"
    );
    assert_eq!(rows(&store), before, "the old layout reads as before");
    writer.execute_batch("ROLLBACK").unwrap();
    drop(store);

    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert!(is_rowid_layout(&path));
    assert_eq!(rows(&store), before);
}
