//! File handling: permissions, backups, reopening, schema versions, foreign files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;

use strongroom_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use strongroom_store::{
    Batch, Expect, ReadView, SCHEMA_VERSION, ScanRange, Store, StoreError, Table,
};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn put(store: &dyn Store, key: &str, value: &str) {
    let mut b = Batch::new();
    b.put(Table::Meta, key, value, Expect::Any);
    store.commit(&b).unwrap();
}

#[test]
fn database_wal_and_shm_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    put(&store, "k", "v");
    let snap = store.snapshot().unwrap();
    put(&store, "k2", "v2");
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.path().join(format!("vault.db{suffix}"));
        assert!(p.exists(), "{} missing", p.display());
        assert_eq!(mode(&p), 0o600, "{} is not 0600", p.display());
    }
    drop(snap);
}

#[test]
fn backup_is_consistent_private_and_reopenable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("vault.db"), SqliteOptions::default()).unwrap();
    let mut b = Batch::new();
    for i in 0..100u8 {
        b.put(
            Table::Bodies,
            format!("r{i:03}"),
            vec![i; 1000],
            Expect::Absent,
        );
    }
    b.append(Table::Audit, 0, "e0");
    store.commit(&b).unwrap();
    let dest = dir.path().join("copy.db");
    store.backup_to(&dest).unwrap();
    assert_eq!(mode(&dest), 0o600);
    // The destination must be new.
    assert!(matches!(
        store.backup_to(&dest),
        Err(StoreError::InvalidRequest { .. })
    ));
    put(&store, "after", "backup");
    let copy = SqliteStore::open(&dest, SqliteOptions::default()).unwrap();
    let rows = copy
        .scan(Table::Bodies, &ScanRange::all(), None, 1000)
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[7].value, vec![7u8; 1000]);
    assert_eq!(copy.log_head(Table::Audit).unwrap(), Some(0));
    assert_eq!(copy.get(Table::Meta, b"after").unwrap(), None);
    assert_eq!(copy.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn backup_while_writers_run_holds_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("vault.db"), SqliteOptions::default()).unwrap();
    thread::scope(|s| {
        let writer = s.spawn(|| {
            for g in 0..200u32 {
                let mut b = Batch::new();
                for i in 0..5 {
                    b.put(Table::Index, format!("g{i}"), g.to_be_bytes(), Expect::Any);
                }
                store.commit(&b).unwrap();
            }
        });
        for n in 0..3 {
            let dest = dir.path().join(format!("copy{n}.db"));
            store.backup_to(&dest).unwrap();
            let copy = SqliteStore::open(&dest, SqliteOptions::default()).unwrap();
            let rows = copy
                .scan(Table::Index, &ScanRange::all(), None, 10)
                .unwrap()
                .rows;
            assert!(rows.iter().all(|r| r.value == rows[0].value));
        }
        writer.join().unwrap();
    });
}

#[test]
fn data_survives_reopen_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let opts = SqliteOptions::default().with_synchronous(Synchronous::Full);
    {
        let store = SqliteStore::open(&path, opts.clone()).unwrap();
        assert_eq!(store.options().synchronous, Synchronous::Full);
        put(&store, "k", "v1");
        put(&store, "k", "v2");
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let v = store.get(Table::Meta, b"k").unwrap().unwrap();
    assert_eq!((v.value.as_slice(), v.version), (&b"v2"[..], 2));
    assert!(format!("{store:?}").contains("vault.db"));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(raw);
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn empty_existing_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    std::fs::write(&path, b"").unwrap();
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name LIKE 'sr_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // One per table, and `sr_store` (the store generation).
    assert_eq!(usize::try_from(tables).unwrap(), Table::ALL.len() + 1);
}

#[test]
fn foreign_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other_app = dir.path().join("other.db");
    let raw = rusqlite::Connection::open(&other_app).unwrap();
    raw.execute_batch("CREATE TABLE notes (body TEXT)").unwrap();
    drop(raw);
    assert!(matches!(
        SqliteStore::open(&other_app, SqliteOptions::default()),
        Err(StoreError::InvalidRequest { .. })
    ));
    let with_id = dir.path().join("app.db");
    let raw = rusqlite::Connection::open(&with_id).unwrap();
    raw.pragma_update(None, "application_id", 42).unwrap();
    drop(raw);
    assert!(matches!(
        SqliteStore::open(&with_id, SqliteOptions::default()),
        Err(StoreError::InvalidRequest { .. })
    ));
    let not_sqlite = dir.path().join("junk.db");
    std::fs::write(&not_sqlite, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&not_sqlite, SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest { .. }), "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    assert_eq!(std::fs::read(&not_sqlite).unwrap(), vec![0x5a; 8192]);
    let missing_dir = dir.path().join("no/such/dir/vault.db");
    let err = SqliteStore::open(&missing_dir, SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest { .. }), "{err}");
    assert!(
        err.to_string().contains("directory does not exist"),
        "{err}"
    );
}

fn journal_mode(path: &Path) -> String {
    let raw = rusqlite::Connection::open(path).unwrap();
    raw.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

/// A refused open leaves another application's database exactly as it was: not switched
/// to WAL, no `-wal` or `-shm` file, its bytes unchanged.
#[test]
fn refused_open_has_no_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    for (name, setup) in [
        (
            "tables.db",
            "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');",
        ),
        (
            "app-id.db",
            "PRAGMA application_id = 42; CREATE TABLE t (x);",
        ),
        ("newer.db", "PRAGMA user_version = 99;"),
    ] {
        let path = dir.path().join(name);
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(setup).unwrap();
        drop(raw);
        let before = std::fs::read(&path).unwrap();
        assert!(SqliteStore::open(&path, SqliteOptions::default()).is_err());
        assert!(SqliteStore::open_existing(&path, SqliteOptions::default()).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name} was modified");
        assert_eq!(journal_mode(&path), "delete", "{name} was switched to WAL");
        for suffix in ["-wal", "-shm"] {
            let side = dir.path().join(format!("{name}{suffix}"));
            assert!(!side.exists(), "{} was created", side.display());
        }
    }
}

/// Tools that work on an existing vault get an accurate error for a missing, empty or
/// wrong path, and nothing is created.
#[test]
fn open_existing_never_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = SqliteStore::open_existing(&missing, SqliteOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no vault file"), "{err}");
    assert!(!missing.exists());
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let err = SqliteStore::open_existing(&empty, SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest { .. }), "{err}");
    assert!(err.to_string().contains("empty file"), "{err}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    for open in [SqliteStore::open_existing, SqliteStore::open] {
        let err = open(dir.path(), SqliteOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::InvalidRequest { .. }), "{err}");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
    // An existing store opens.
    let path = dir.path().join("vault.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let store = SqliteStore::open_existing(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

/// An empty file that becomes a store is made private, whatever mode it was created
/// with.
#[test]
fn empty_world_readable_file_becomes_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    assert_eq!(mode(&path), 0o600);
}

/// Opening an up-to-date store takes no write lock: it succeeds, and reads work, while
/// another connection holds the write lock.
#[test]
fn readers_open_while_a_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    put(&store, "k", "v");
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let opts = SqliteOptions::default().with_busy_timeout(std::time::Duration::ZERO);
    let reader = SqliteStore::open_existing(&path, opts).unwrap();
    assert_eq!(reader.get(Table::Meta, b"k").unwrap().unwrap().value, b"v");
    writer.execute_batch("ROLLBACK").unwrap();
}

/// A file this process may not write is the operator's to fix: not "retry later".
#[test]
fn unwritable_file_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    let writable = std::fs::OpenOptions::new().write(true).open(&path).is_ok();
    let result = SqliteStore::open_existing(&path, SqliteOptions::default());
    if writable {
        // Root ignores file modes: the file is writable, and opens.
        result.unwrap();
    } else {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::InvalidRequest { .. }), "{err}");
        assert!(err.to_string().contains("permission denied"), "{err}");
    }
    // A path through a regular file is refused as such, whoever runs the test.
    let err = SqliteStore::open(path.join("vault.db"), SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest { .. }), "{err}");
}

#[test]
fn two_stores_on_one_file_and_a_tiny_pool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let opts = SqliteOptions::default().with_pool_size(1);
    let a = SqliteStore::open(&path, opts.clone()).unwrap();
    let b = SqliteStore::open(&path, opts).unwrap();
    thread::scope(|s| {
        for (n, store) in [&a, &b, &a, &b].into_iter().enumerate() {
            s.spawn(move || {
                for i in 0..50 {
                    put(store, &format!("t{n}-{i}"), "x");
                }
            });
        }
    });
    let rows = a
        .scan(Table::Meta, &ScanRange::all(), None, 1000)
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 200);
}

/// Deleted and overwritten values do not linger in the database file (secure_delete).
#[test]
fn deleted_values_are_zeroed_in_the_file() {
    use strongroom_store::{Batch, Expect, Store, Table};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let marker = b"RETIRED-KEY-MATERIAL-0123456789abcdef".to_vec(); // pragma: allowlist secret
    {
        let store = strongroom_sqlite::SqliteStore::open(
            &path,
            strongroom_sqlite::SqliteOptions::default(),
        )
        .unwrap();
        let mut b = Batch::new();
        b.put(Table::Wraps, b"c1".to_vec(), marker.clone(), Expect::Any)
            .put(Table::Deks, b"d1".to_vec(), marker.clone(), Expect::Any);
        store.commit(&b).unwrap();
        let mut b = Batch::new();
        b.delete(Table::Wraps, b"c1".to_vec(), Expect::Any).put(
            Table::Deks,
            b"d1".to_vec(),
            b"rewrapped".to_vec(),
            Expect::Any,
        );
        store.commit(&b).unwrap();
        // Move everything from the WAL into the main file, as a checkpoint eventually does.
        let mut b = Batch::new();
        b.put(Table::Meta, b"x".to_vec(), b"y".to_vec(), Expect::Any);
        store.commit(&b).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(marker.len()).any(|w| w == marker),
        "a deleted value is still in the file"
    );
}
