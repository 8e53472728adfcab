//! Criterion benches of the storage backends: put, get, scan and batch commit for the
//! memory, SQLite and (when a throwaway server can be started) PostgreSQL stores, next to
//! raw rusqlite doing the same on an equivalent table (`rusqlite/*`).

use std::cell::Cell;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strongroom_benches::ratios_store::raw_sqlite;
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

/// Raw rusqlite on a table shaped like strongroom-sqlite's bodies table (rowid table,
/// `k BLOB PRIMARY KEY, v BLOB, ver INTEGER`), same pragmas, same keys and sizes: an
/// upsert per put (one implicit transaction), a prepared select per get, a range select
/// per scan, one explicit transaction per batch.
fn raw_rusqlite(c: &mut Criterion) {
    const UPSERT: &str = "INSERT INTO raw_bodies (k, v, ver) VALUES (?1, ?2, 1) \
                          ON CONFLICT (k) DO UPDATE SET v = excluded.v, ver = ver + 1";
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = raw_sqlite(&dir.path().join("raw.db"));
    conn.execute_batch(
        "CREATE TABLE raw_bodies (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, \
         ver INTEGER NOT NULL) STRICT",
    )
    .expect("create table");
    let upsert_batch = |keys: &mut dyn Iterator<Item = Vec<u8>>, v: &[u8]| {
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut stmt = tx.prepare_cached(UPSERT).expect("prepare");
            for k in keys {
                stmt.execute(rusqlite::params![k, v]).expect("upsert");
            }
        }
        tx.commit().expect("commit");
    };
    let mut g = c.benchmark_group("store");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let value = vec![0x5au8; size];
        upsert_batch(&mut (0..ROWS).map(|n| key(size, n)), &value);
        g.throughput(Throughput::Bytes(size as u64));
        let i = Cell::new(0u64);
        g.bench_with_input(BenchmarkId::new("rusqlite/put", size), &value, |bch, v| {
            bch.iter(|| {
                i.set(i.get() + 1);
                conn.prepare_cached(UPSERT)
                    .expect("prepare")
                    .execute(rusqlite::params![key(size, i.get() % ROWS), v])
                    .expect("upsert")
            });
        });
        g.bench_function(BenchmarkId::new("rusqlite/get", size), |bch| {
            bch.iter(|| {
                i.set(i.get() + 1);
                conn.prepare_cached("SELECT v, ver FROM raw_bodies WHERE k = ?1")
                    .expect("prepare")
                    .query_row([key(size, i.get() % ROWS)], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                    })
                    .expect("select")
            });
        });
        g.throughput(Throughput::Bytes((size * PAGE) as u64));
        let lo = format!("b/{size:06}/").into_bytes();
        let hi = format!("b/{size:06}0").into_bytes();
        g.bench_function(BenchmarkId::new("rusqlite/scan", size), |bch| {
            bch.iter(|| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT k, v, ver FROM raw_bodies WHERE k >= ?1 AND k < ?2 \
                         ORDER BY k LIMIT ?3",
                    )
                    .expect("prepare");
                let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = stmt
                    .query_map(
                        rusqlite::params![lo, hi, i64::try_from(PAGE).expect("page size")],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .expect("scan")
                    .collect::<Result<_, _>>()
                    .expect("rows");
                assert_eq!(rows.len(), PAGE);
                rows
            });
        });
        g.bench_with_input(
            BenchmarkId::new("rusqlite/commit-batch", size),
            &value,
            |bch, v| {
                bch.iter(|| {
                    let mut keys = (0..PAGE).map(|_| {
                        i.set(i.get() + 1);
                        key(size, i.get() % ROWS)
                    });
                    upsert_batch(&mut keys, v);
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
