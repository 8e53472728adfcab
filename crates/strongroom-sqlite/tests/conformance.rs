//! The SQLite store passes the conformance suite.

use strongroom_sqlite::{SqliteOptions, SqliteStore};

fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        SqliteStore::open(dir.path().join("vault.db"), SqliteOptions::default()).expect("open");
    (store, dir)
}

strongroom_store::conformance_tests!(fresh());
