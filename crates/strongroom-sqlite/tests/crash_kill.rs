//! A writer process killed (SIGKILL) in the middle of a stream of multi-table commits
//! leaves a database that holds whole batches only and passes SQLite's integrity check.
//!
//! The test binary re-executes itself: with `STRONGROOM_SQLITE_CRASH_DB` set, the
//! `crash_writer` test commits batches until it is killed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strongroom_sqlite::{SqliteOptions, SqliteStore};
use strongroom_store::{Batch, Expect, ReadView, ScanRange, Store, Table};

const WRITER_ENV: &str = "STRONGROOM_SQLITE_CRASH_DB";
const GROUP: usize = 8;

fn write_generation(store: &SqliteStore, g: u64) {
    let mut b = Batch::new();
    for i in 0..GROUP {
        // Bodies big enough that a batch spans many pages.
        b.put(
            Table::Bodies,
            format!("r{i}"),
            vec![(g % 251) as u8; 16 * 1024],
            Expect::Any,
        )
        .put(Table::Deks, format!("r{i}"), g.to_be_bytes(), Expect::Any);
    }
    b.append(Table::Audit, g, g.to_be_bytes());
    store.commit(&b).unwrap();
}

/// Checks the database holds whole batches; returns the last generation.
fn check(path: &Path) -> u64 {
    let store = SqliteStore::open(path, SqliteOptions::default()).unwrap();
    let head = store.log_head(Table::Audit).unwrap().expect("some commits");
    let deks = store
        .scan(Table::Deks, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    let bodies = store
        .scan(Table::Bodies, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    assert_eq!(deks.len(), GROUP);
    assert_eq!(bodies.len(), GROUP);
    for r in &deks {
        assert_eq!(r.value, head.to_be_bytes(), "a batch was half applied");
    }
    for r in &bodies {
        assert_eq!(r.value, vec![(head % 251) as u8; 16 * 1024], "torn body");
    }
    let raw = rusqlite::Connection::open(path).unwrap();
    let integrity: String = raw
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    head
}

/// In a child process: commits generations until killed. Run directly: a short stream.
#[test]
fn crash_writer() {
    if let Ok(path) = std::env::var(WRITER_ENV) {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let start = store.log_head(Table::Audit).unwrap().map_or(0, |h| h + 1);
        for g in start..start + 1_000_000 {
            write_generation(&store, g);
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    for g in 0..20 {
        write_generation(&store, g);
    }
    drop(store);
    assert_eq!(check(&path), 19);
}

#[test]
fn killed_writer_leaves_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut last = 0;
    for round in 0..3u64 {
        let mut child = Command::new(&exe)
            .args(["crash_writer", "--exact", "--test-threads=1"])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn writer process");
        // Let it commit a few more generations, then kill it mid-stream.
        let target = last + 10 + round * 7;
        let give_up = Instant::now() + Duration::from_mins(2);
        loop {
            if path.exists()
                && let Ok(store) = SqliteStore::open(&path, SqliteOptions::default())
                && store
                    .log_head(Table::Audit)
                    .unwrap()
                    .is_some_and(|h| h >= target)
            {
                break;
            }
            assert!(Instant::now() < give_up, "writer made no progress");
            assert!(child.try_wait().unwrap().is_none(), "writer exited early");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let head = check(&path);
        assert!(head >= target, "committed generations were lost");
        last = head;
    }
}
