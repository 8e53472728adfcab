//! Criterion benches of the vault facade on a file-backed SQLite store: put and get of a
//! 1 KiB secret next to raw rusqlite doing one insert transaction / one prepared select of
//! a row the size of the sealed body (`raw-rusqlite/*`), and a vault-key rotation of 10 000
//! records.
//!
//! The `ratios` runner (`cargo run --release -p strongroom-benches --bin ratios -- vault`)
//! reports the same comparisons as ratios, and the rotation of a million records with its
//! peak memory and raw floor.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strongroom::recovery::RawKek;
use strongroom::store::{Store, Table};
use strongroom::{CreateOptions, RotateOptions, Vault};
use strongroom_benches::ratios_vault::{
    ROTATE_BATCH, VALUE_SIZE, populated_vault, raw_connection, raw_insert, raw_select,
};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

/// Secrets preloaded for the get benches.
const GET_SECRETS: u64 = 1000;
/// Records of the rotation bench.
const ROTATE_RECORDS: u64 = 10_000;

fn bench_put_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("vault.db"), SqliteOptions::default())
            .expect("open sqlite"),
    );
    let kek = RawKek::generate().expect("kek");
    let (vault, _) =
        Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).expect("create");
    let raw = raw_connection(&dir.path().join("raw.db"));
    raw.execute_batch(
        "CREATE TABLE t (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT",
    )
    .expect("create table");
    let value = vec![0x5au8; VALUE_SIZE];
    let probe = vault.put("bench/probe", "probe", &value).expect("put");
    let mut vkey = probe.record_id.as_bytes().to_vec();
    vkey.extend_from_slice(&1u64.to_be_bytes());
    let body_len = store
        .get(Table::Bodies, &vkey)
        .expect("get")
        .expect("body")
        .value
        .len();
    let raw_value = vec![0xa5u8; body_len];

    let mut g = c.benchmark_group("vault");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(VALUE_SIZE as u64));
    let n = Cell::new(0u64);
    g.bench_function(BenchmarkId::new("sqlite/put", "1KiB"), |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            vault
                .put("bench/put", &format!("k{}", n.get()), &value)
                .expect("put")
        });
    });
    let r = Cell::new(0u64);
    g.bench_function(BenchmarkId::new("raw-rusqlite/insert", "1KiB"), |b| {
        b.iter(|| {
            r.set(r.get() + 1);
            raw_insert(&raw, r.get(), &raw_value);
        });
    });

    for i in 0..GET_SECRETS {
        vault
            .put("bench/get", &format!("g{i}"), &value)
            .expect("preload");
    }
    let i = Cell::new(0u64);
    g.bench_function(BenchmarkId::new("sqlite/get", "1KiB"), |b| {
        b.iter(|| {
            i.set(i.get() + 1);
            let k = i.get().wrapping_mul(7919) % GET_SECRETS;
            vault.get("bench/get", &format!("g{k}")).expect("get")
        });
    });
    let j = Cell::new(0u64);
    g.bench_function(BenchmarkId::new("raw-rusqlite/select", "1KiB"), |b| {
        b.iter(|| {
            j.set(j.get() + 1);
            // Rows 1..=r were inserted by the raw insert bench.
            raw_select(&raw, 1 + j.get().wrapping_mul(7919) % r.get().max(1))
        });
    });
    g.finish();
}

fn bench_rotation(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("rotate.db");
    let kek = populated_vault(&db, ROTATE_RECORDS, 64);
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&db, SqliteOptions::default()).expect("open sqlite"));
    let vault = Vault::open(store)
        .expect("open")
        .unlock(&kek)
        .expect("unlock");
    let mut g = c.benchmark_group("vault");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(ROTATE_RECORDS));
    // Every iteration is a complete rotation to a new epoch of all the records.
    g.bench_function(BenchmarkId::new("sqlite/rotate", ROTATE_RECORDS), |b| {
        b.iter(|| {
            vault
                .rotate_vault_key_with(
                    RotateOptions::default().with_batch_size(ROTATE_BATCH),
                    &mut |_| {},
                )
                .expect("rotate")
        });
    });
    g.finish();
}

criterion_group!(benches, bench_put_get, bench_rotation);
criterion_main!(benches);
