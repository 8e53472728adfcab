//! Readers on other connections never see half of a batch, while a writer commits
//! multi-row, multi-table batches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use strongroom_postgres::test_server::TestServer;
use strongroom_postgres::{PostgresOptions, PostgresStore};
use strongroom_store::{Batch, Expect, ReadView, ScanRange, Store, Table};

const KEYS: u32 = 12;
const MIN_WRITES: u64 = 100;
const MAX_WRITES: u64 = 20_000;

fn write(store: &PostgresStore, generation: u64) {
    let mut b = Batch::new();
    for i in 0..KEYS {
        b.put(
            Table::Index,
            format!("k{i:02}"),
            generation.to_be_bytes(),
            Expect::Any,
        );
    }
    b.put(
        Table::Meta,
        "generation",
        generation.to_be_bytes(),
        Expect::Any,
    );
    store.commit(&b).unwrap();
}

#[test]
fn second_connection_never_sees_half_a_batch() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let schema = server.fresh_schema();
    let options = PostgresOptions::default().with_schema(Some(schema.clone()));
    let writer_store = server.store_with(options.clone());
    write(&writer_store, 0);
    // A second store (its own pool) and a raw client: two more connections.
    let reader_store = server.store_with(options);
    let mut raw = postgres::Client::connect(&server.conninfo(), postgres::NoTls).unwrap();
    let raw_query = format!(
        "SELECT i.v, m.v FROM \"{schema}\".sr_index i, \"{schema}\".sr_meta m \
         WHERE m.k = 'generation'::bytea ORDER BY i.k"
    );

    let done = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            let mut g = 1;
            while !done.load(Ordering::SeqCst) && g < MAX_WRITES {
                write(&writer_store, g);
                writes.store(g, Ordering::SeqCst);
                g += 1;
            }
        });
        let mut reads = 0;
        while reads < 200 || writes.load(Ordering::SeqCst) < MIN_WRITES {
            // Raw SQL on another connection: one statement sees one committed state.
            let rows = raw.query(raw_query.as_str(), &[]).unwrap();
            assert_eq!(rows.len(), KEYS as usize);
            let meta: Vec<u8> = rows[0].get(1);
            for r in &rows {
                let v: Vec<u8> = r.get(0);
                assert_eq!(v, meta, "raw reader saw half of a batch");
            }
            // A page of the store on another pool.
            let page = reader_store
                .scan(Table::Index, &ScanRange::all(), None, 100)
                .unwrap();
            assert!(page.rows.iter().all(|r| r.value == page.rows[0].value));
            // A snapshot: several statements, one instant.
            let snap = reader_store.snapshot().unwrap();
            let rows = snap.scan(Table::Index, &ScanRange::all(), None, 5).unwrap();
            let gen_row = snap.get(Table::Meta, b"generation").unwrap().unwrap();
            let rest = snap
                .scan(Table::Index, &ScanRange::all(), rows.next.as_ref(), 100)
                .unwrap();
            for r in rows.rows.iter().chain(&rest.rows) {
                assert_eq!(r.value, gen_row.value, "snapshot saw half of a batch");
            }
            drop(snap);
            reads += 1;
            if writes.load(Ordering::SeqCst) >= MAX_WRITES - 1 {
                break;
            }
        }
        done.store(true, Ordering::SeqCst);
    });
}

#[test]
fn opposite_order_batches_deadlock_and_are_retried() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let store = server.fresh_store();
    let conflicts = AtomicU64::new(0);
    thread::scope(|s| {
        for forward in [true, false] {
            let (store, conflicts) = (&store, &conflicts);
            s.spawn(move || {
                for i in 0..60u32 {
                    let mut keys = vec!["a", "b", "c"];
                    if !forward {
                        keys.reverse();
                    }
                    let mut b = Batch::new();
                    for k in keys {
                        b.put(Table::Jobs, k, i.to_be_bytes(), Expect::Any);
                    }
                    match store.commit(&b) {
                        Ok(c) => assert_eq!(c.versions.len(), 3),
                        Err(e) if e.is_conflict() => {
                            conflicts.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            });
        }
    });
    // Every committed batch bumped all three rows together.
    let a = store.get(Table::Jobs, b"a").unwrap().unwrap();
    let b = store.get(Table::Jobs, b"b").unwrap().unwrap();
    let c = store.get(Table::Jobs, b"c").unwrap().unwrap();
    assert_eq!(a.version, b.version);
    assert_eq!(b.version, c.version);
    assert_eq!(a.version + conflicts.load(Ordering::SeqCst), 120);
}

/// A put whose transaction is still open on another connection when `replace_all` starts
/// must not survive the restore: the replacement waits for it, then deletes its rows.
#[test]
fn replace_all_is_isolated_from_a_transaction_in_flight() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let schema = server.fresh_schema();
    let store = server.store_with(PostgresOptions::default().with_schema(Some(schema.clone())));
    let mut seed = Batch::new();
    seed.put(Table::Index, "old", "1", Expect::Absent);
    store.commit(&seed).unwrap();

    // A second session replays a put's statements and keeps its transaction open.
    let mut raw = postgres::Client::connect(&server.conninfo(), postgres::NoTls).unwrap();
    let mut tx = raw.transaction().unwrap();
    tx.batch_execute(&format!(
        "INSERT INTO \"{schema}\".sr_index (k, v, ver) VALUES ('in-flight'::bytea, 'x'::bytea, 1)"
    ))
    .unwrap();
    let replaced = AtomicBool::new(false);
    thread::scope(|s| {
        let restore = s.spawn(|| {
            let mut rows = vec![Ok((
                Table::Index,
                strongroom_store::Row {
                    key: b"restored".to_vec(),
                    value: b"r".to_vec(),
                    version: 0,
                },
            ))]
            .into_iter();
            store.replace_all(&mut rows).unwrap();
            replaced.store(true, Ordering::SeqCst);
        });
        // The replacement waits for the open transaction (its table lock cannot be
        // granted while the insert holds a row-exclusive lock).
        thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !replaced.load(Ordering::SeqCst),
            "replace_all did not wait for the transaction in flight"
        );
        tx.commit().unwrap();
        restore.join().unwrap();
    });
    let keys: Vec<Vec<u8>> = store
        .scan(Table::Index, &ScanRange::all(), None, 10)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        keys,
        [b"restored".to_vec()],
        "only the restored content remains"
    );
}
