//! Two processes increment one counter in the same file with compare-and-swap; no
//! increment is lost.
//!
//! The test binary re-executes itself: with `STRONGROOM_SQLITE_COUNTER_DB` set, the
//! `counter_worker` test increments the counter in that file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use strongroom_sqlite::{SqliteOptions, SqliteStore};
use strongroom_store::{Batch, Expect, ReadView, Store, Table};

const WORKER_ENV: &str = "STRONGROOM_SQLITE_COUNTER_DB";
const INCREMENTS: u64 = 1000;

fn increment(store: &SqliteStore, times: u64) {
    for _ in 0..times {
        loop {
            let current = store.get(Table::Meta, b"counter").unwrap();
            let (n, expect) = match current {
                None => (0, Expect::Absent),
                Some(v) => (
                    u64::from_be_bytes(v.value.as_slice().try_into().unwrap()),
                    Expect::Version(v.version),
                ),
            };
            let mut b = Batch::new();
            b.put(Table::Meta, b"counter", (n + 1).to_be_bytes(), expect);
            match store.commit(&b) {
                Ok(_) => break,
                Err(e) if e.is_conflict() => {}
                Err(e) => panic!("increment failed: {e}"),
            }
        }
    }
}

fn counter(path: &Path) -> (u64, u64) {
    let store = SqliteStore::open(path, SqliteOptions::default()).unwrap();
    let v = store.get(Table::Meta, b"counter").unwrap().unwrap();
    (
        u64::from_be_bytes(v.value.as_slice().try_into().unwrap()),
        v.version,
    )
}

/// In a child process: increments the counter of the file named by the environment.
/// Run directly: two stores (two connection pools) in two threads of this process.
#[test]
fn counter_worker() {
    if let Ok(path) = std::env::var(WORKER_ENV) {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        increment(&store, INCREMENTS);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.db");
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
                increment(&store, INCREMENTS);
            });
        }
    });
    assert_eq!(counter(&path), (2 * INCREMENTS, 2 * INCREMENTS));
}

#[test]
fn two_processes_share_one_counter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["counter_worker", "--exact", "--test-threads=1"])
                .env(WORKER_ENV, &path)
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn worker process")
        })
        .collect();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "worker process failed: {status}");
    }
    assert_eq!(counter(&path), (2 * INCREMENTS, 2 * INCREMENTS));
}

/// Stores opened at once on a new file: each one either creates the schema or finds it
/// whole (one creates it under the write lock; the others' read-only check sees the tables
/// and the schema version together, never the tables without the version).
#[test]
fn stores_opened_at_once_on_a_new_file_all_open() {
    let rounds: usize = std::env::var("STRONGROOM_OPEN_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let start = std::sync::Barrier::new(6);
        thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    start.wait();
                    SqliteStore::open(&path, SqliteOptions::default())
                        .unwrap_or_else(|e| panic!("a store opened at the same time: {e}"));
                });
            }
        });
    }
}
