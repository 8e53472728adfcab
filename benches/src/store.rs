//! Criterion benches of the storage backends: put, get, scan and batch commit for the
//! memory, SQLite and (when a throwaway server can be started) PostgreSQL stores, next to
//! raw rusqlite insert/select of the same sizes into an equivalent table.

use std::cell::Cell;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strongroom_benches::ratios_store::{raw_sqlite, raw_sqlite_get, raw_sqlite_insert_batch};
use strongroom_postgres::test_server::TestServer;
use strongroom_sqlite::{SqliteOptions, SqliteStore};
use strongroom_store::{Batch, Expect, MemoryStore, ScanRange, Store, Table};

/// Value sizes.
const SIZES: [usize; 3] = [64, 1024, 64 * 1024];
/// Rows preloaded per size for get and scan.
const ROWS: u64 = 1000;
/// Rows per page in the scan bench, and per batch in the commit-batch bench.
const PAGE: usize = 100;

fn key(size: usize, n: u64) -> Vec<u8> {
    format!("b/{size:06}/{n:08}").into_bytes()
}

fn bench_backend(c: &mut Criterion, name: &str, store: &dyn Store) {
    let mut g = c.benchmark_group("store");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let value = vec![0x5au8; size];
        let mut b = Batch::new();
        for n in 0..ROWS {
            b.put(Table::Bodies, key(size, n), value.clone(), Expect::Any);
        }
        store.commit(&b).expect("preload");

        g.throughput(Throughput::Bytes(size as u64));
        let i = Cell::new(0u64);
        g.bench_with_input(
            BenchmarkId::new(format!("{name}/put"), size),
            &value,
            |bch, v| {
                bch.iter(|| {
                    i.set(i.get() + 1);
                    let mut b = Batch::new();
                    b.put(
                        Table::Bodies,
                        key(size, i.get() % ROWS),
                        v.clone(),
                        Expect::Any,
                    );
                    store.commit(&b).expect("put")
                });
            },
        );
        g.bench_function(BenchmarkId::new(format!("{name}/get"), size), |bch| {
            bch.iter(|| {
                i.set(i.get() + 1);
                store
                    .get(Table::Bodies, &key(size, i.get() % ROWS))
                    .expect("get")
            });
        });

        g.throughput(Throughput::Bytes((size * PAGE) as u64));
        let prefix = ScanRange::prefix(format!("b/{size:06}/").into_bytes());
        g.bench_function(BenchmarkId::new(format!("{name}/scan"), size), |bch| {
            bch.iter(|| {
                let page = store
                    .scan(Table::Bodies, &prefix, None, PAGE)
                    .expect("scan");
                assert_eq!(page.rows.len(), PAGE);
                page
            });
        });
        g.bench_with_input(
            BenchmarkId::new(format!("{name}/commit-batch"), size),
            &value,
            |bch, v| {
                bch.iter(|| {
                    let mut b = Batch::with_capacity(PAGE);
                    for _ in 0..PAGE {
                        i.set(i.get() + 1);
                        b.put(
                            Table::Bodies,
                            key(size, i.get() % ROWS),
                            v.clone(),
                            Expect::Any,
                        );
                    }
                    store.commit(&b).expect("commit")
                });
            },
        );
    }
    g.finish();
}

fn raw_rusqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = raw_sqlite(&dir.path().join("raw.db"));
    let mut g = c.benchmark_group("store");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let next = Cell::new(0u64);
    for size in SIZES {
        let value = vec![0x5au8; size];
        let base = next.get();
        raw_sqlite_insert_batch(&conn, base, ROWS as usize, &value);
        next.set(base + ROWS);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("rusqlite/insert", size),
            &value,
            |bch, v| {
                bch.iter(|| {
                    raw_sqlite_insert_batch(&conn, next.get(), 1, v);
                    next.set(next.get() + 1);
                });
            },
        );
        let i = Cell::new(0u64);
        g.bench_function(BenchmarkId::new("rusqlite/select", size), |bch| {
            bch.iter(|| {
                i.set(i.get() + 1);
                raw_sqlite_get(&conn, base + i.get() % ROWS)
            });
        });
        g.throughput(Throughput::Bytes((size * PAGE) as u64));
        g.bench_with_input(
            BenchmarkId::new("rusqlite/insert-batch", size),
            &value,
            |bch, v| {
                bch.iter(|| {
                    raw_sqlite_insert_batch(&conn, next.get(), PAGE, v);
                    next.set(next.get() + PAGE as u64);
                });
            },
        );
    }
    g.finish();
}

fn store(c: &mut Criterion) {
    bench_backend(c, "memory", &MemoryStore::new());

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("bench.db"), SqliteOptions::default())
        .expect("open sqlite");
    bench_backend(c, "sqlite", &sqlite);
    raw_rusqlite(c);

    match TestServer::start() {
        Some(server) => bench_backend(c, "postgres", &server.fresh_store()),
        None => eprintln!(
            "note: postgres store benches skipped (no PostgreSQL server could be started)"
        ),
    }
}

criterion_group!(benches, store);
criterion_main!(benches);
