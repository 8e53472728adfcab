//! Ratio cases of the storage backends: strongroom's `Store` against the raw database
//! client doing the same work on an equivalent table in the same run.
//!
//! SQLite: both sides use file-backed databases in one temporary directory with the same
//! pragmas (WAL, `synchronous=NORMAL`) and the same table shape
//! (`k BLOB PRIMARY KEY, v BLOB, ver INTEGER`, `WITHOUT ROWID`). PostgreSQL cases run when
//! a throwaway server can be started (`initdb`/`pg_ctl` installed), against raw `postgres`
//! prepared statements on the same server: once over the unix socket, once over TLS on
//! loopback (TCP to 127.0.0.1, `verify-full` against a CA made for the run, the raw client
//! using the same rustls configuration), where every round trip also pays encryption.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use strongroom::recovery::RawKek;
use strongroom::{CreateOptions, Vault};

use strongroom_postgres::test_server::{TestPki, TestServer};
use strongroom_postgres::{PostgresOptions, PostgresStore};
use strongroom_sqlite::{SqliteOptions, SqliteStore};
use strongroom_store::{Batch, Expect, ReadView, Store, Table};

use crate::{Ratio, compare, size_label};

/// Rows per batch in the put-batch cases.
pub const BATCH_ROWS: usize = 100;

/// Value size of the ratio cases.
pub const VALUE_SIZE: usize = 1024;

/// Keys preloaded for the get cases.
pub const GET_KEYS: u64 = 10_000;

fn key(n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"bench/k/");
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

/// A raw rusqlite database with the same pragmas and table shape as strongroom-sqlite.
pub fn raw_sqlite(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open raw sqlite");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, \
         ver INTEGER NOT NULL) STRICT, WITHOUT ROWID",
    )
    .expect("create table");
    conn
}

/// Raw: insert `rows` rows in one transaction with a cached prepared statement.
pub fn raw_sqlite_insert_batch(conn: &rusqlite::Connection, first: u64, rows: usize, value: &[u8]) {
    let tx = conn.unchecked_transaction().expect("begin");
    {
        let mut stmt = tx
            .prepare_cached("INSERT INTO t (k, v, ver) VALUES (?1, ?2, 1)")
            .expect("prepare");
        for i in 0..rows as u64 {
            stmt.execute(rusqlite::params![&key(first + i)[..], value])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// Raw: select one row with a cached prepared statement.
pub fn raw_sqlite_get(conn: &rusqlite::Connection, n: u64) -> (Vec<u8>, i64) {
    conn.prepare_cached("SELECT v, ver FROM t WHERE k = ?1")
        .expect("prepare")
        .query_row([&key(n)[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("select")
}

/// strongroom: one batch of `rows` new rows.
pub fn store_put_batch(store: &dyn Store, first: u64, rows: usize, value: &[u8]) {
    let mut b = Batch::with_capacity(rows);
    for i in 0..rows as u64 {
        b.put(Table::Deks, key(first + i), value, Expect::Absent);
    }
    store.commit(&b).expect("commit");
}

/// Loads `GET_KEYS` rows into both sides for the get cases.
fn preload(store: &dyn Store, raw: impl Fn(u64, usize, &[u8]), value: &[u8]) {
    let base = 1 << 40;
    for chunk in 0..GET_KEYS / 1000 {
        store_put_batch(store, base + chunk * 1000, 1000, value);
        raw(base + chunk * 1000, 1000, value);
    }
}

fn get_key(i: u64) -> u64 {
    (1 << 40) + (i.wrapping_mul(7919) % GET_KEYS)
}

/// All store cases (PostgreSQL ones only when a test server starts).
pub fn cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    let mut out = sqlite_cases(budget, rounds);
    let pki = TestPki::new();
    let tls_server = TestServer::builder()
        .tls(pki.server_tls(&["localhost", "127.0.0.1"]))
        .hba("hostssl all all 127.0.0.1/32 trust")
        .start();
    match (TestServer::start(), tls_server) {
        (Some(server), Some(tls_server)) => {
            let socket = Pg {
                label: "postgres",
                store: server.fresh_store(),
                raw: raw_postgres(&server),
            };
            out.extend(postgres_cases(socket, budget, rounds));
            out.push(vault_postgres_get(&server, budget, rounds));
            let conninfo = format!(
                "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslrootcert={}",
                tls_server.port().expect("a TCP port"),
                pki.ca_file().display()
            );
            let store = PostgresStore::connect(
                &conninfo,
                PostgresOptions::default().with_schema(Some(tls_server.fresh_schema())),
            )
            .expect("connect over TLS");
            assert!(store.connection_security().expect("security").is_verified());
            let tls = Pg {
                label: "postgres-tls",
                store,
                raw: raw_postgres_tls(&tls_server, &pki),
            };
            out.extend(postgres_cases(tls, budget, rounds));
        }
        _ => eprintln!(
            "note: PostgreSQL store ratios skipped (no PostgreSQL server could be started)"
        ),
    }
    out
}

fn sqlite_cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("strongroom.db"), SqliteOptions::default())
        .expect("open strongroom sqlite");
    let raw = raw_sqlite(&dir.path().join("raw.db"));
    let value = vec![0xa5u8; VALUE_SIZE];
    let label = size_label(VALUE_SIZE);
    let mut out = Vec::new();

    let next_s = Cell::new(0u64);
    let next_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            store_put_batch(&store, next_s.get(), BATCH_ROWS, &value);
            next_s.set(next_s.get() + BATCH_ROWS as u64);
            (BATCH_ROWS, ())
        },
        || {
            raw_sqlite_insert_batch(&raw, next_r.get(), BATCH_ROWS, &value);
            next_r.set(next_r.get() + BATCH_ROWS as u64);
            (BATCH_ROWS, ())
        },
    );
    out.push(
        Ratio::measured(
            format!("store/sqlite/put-batch/{label}"),
            "rusqlite-insert-txn",
            &m,
            Some(0.80),
        )
        .with("rows_per_batch", BATCH_ROWS.to_string()),
    );

    preload(
        &store,
        |first, rows, v| raw_sqlite_insert_batch(&raw, first, rows, v),
        &value,
    );
    let i_s = Cell::new(0u64);
    let i_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            i_s.set(i_s.get() + 1);
            let v = store
                .get(Table::Deks, &key(get_key(i_s.get())))
                .expect("get")
                .expect("row");
            (1, v)
        },
        || {
            i_r.set(i_r.get() + 1);
            (1, raw_sqlite_get(&raw, get_key(i_r.get())))
        },
    );
    out.push(Ratio::measured(
        format!("store/sqlite/get/{label}"),
        "rusqlite-select",
        &m,
        Some(0.80),
    ));
    out
}

/// Raw postgres: a table shaped like strongroom's in its own schema.
pub fn raw_postgres(server: &TestServer) -> postgres::Client {
    let client =
        postgres::Client::connect(&server.conninfo(), postgres::NoTls).expect("connect raw");
    raw_table(server, client)
}

/// Raw postgres over TLS on loopback: rustls (ring) verifying the server's certificate and
/// host name against the run's CA, as strongroom's `verify-full` does.
pub fn raw_postgres_tls(server: &TestServer, pki: &TestPki) -> postgres::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.ca_file()).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA root");
    }
    #[allow(deprecated)] // the workspace's provider is ring (see strongroom-postgres)
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
        server.port().expect("a TCP port")
    );
    let client = postgres::Client::connect(
        &conninfo,
        tokio_postgres_rustls::MakeRustlsConnect::new(config),
    )
    .expect("connect raw over TLS");
    raw_table(server, client)
}

fn raw_table(server: &TestServer, mut client: postgres::Client) -> postgres::Client {
    let schema = server.fresh_schema();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}; \
             CREATE TABLE t (k bytea PRIMARY KEY, v bytea NOT NULL, ver bigint NOT NULL); \
             ALTER TABLE t ALTER COLUMN v SET STORAGE EXTERNAL;"
        ))
        .expect("create raw table");
    client
}

/// Raw postgres: insert `rows` rows in one transaction with a prepared statement.
pub fn raw_postgres_insert_batch(
    client: &mut postgres::Client,
    insert: &postgres::Statement,
    first: u64,
    rows: usize,
    value: &[u8],
) {
    let mut tx = client.transaction().expect("begin");
    for i in 0..rows as u64 {
        tx.execute(insert, &[&&key(first + i)[..], &value])
            .expect("insert");
    }
    tx.commit().expect("commit");
}

/// `vault/postgres/get/1KiB`: `Vault::get` on PostgreSQL over the unix socket (one round
/// trip: the index entry carries the head version) against a raw prepared select of a row
/// of the same size on the same server.
fn vault_postgres_get(server: &TestServer, budget: Duration, rounds: usize) -> Ratio {
    const SECRETS: u64 = 1000;
    let store: Arc<dyn Store> = Arc::new(server.fresh_store());
    let kek = RawKek::generate().expect("kek");
    let (vault, _) =
        Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).expect("create");
    let value = vec![0x5au8; VALUE_SIZE];
    let names: Vec<String> = (0..SECRETS).map(|i| format!("g{i}")).collect();
    let entry_len = crate::ratios_vault::preload(&vault, &*store, "bench/get", &names, &value);
    let mut raw = raw_postgres(server);
    let insert = raw
        .prepare("INSERT INTO t (k, v, ver) VALUES ($1, $2, 1)")
        .expect("prepare insert");
    raw_postgres_insert_batch(
        &mut raw,
        &insert,
        0,
        SECRETS as usize,
        &vec![0xa5u8; entry_len],
    );
    let select = raw
        .prepare("SELECT v, ver FROM t WHERE k = $1")
        .expect("prepare select");
    let raw = std::cell::RefCell::new(raw);
    let i_s = Cell::new(0u64);
    let i_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            i_s.set(i_s.get() + 1);
            let name = &names[(i_s.get().wrapping_mul(7919) % SECRETS) as usize];
            let got = vault.get("bench/get", name).expect("get");
            (1, got.expose_secret().len())
        },
        || {
            i_r.set(i_r.get() + 1);
            let row = raw
                .borrow_mut()
                .query_one(
                    &select,
                    &[&&key(i_r.get().wrapping_mul(7919) % SECRETS)[..]],
                )
                .expect("select");
            let v: Vec<u8> = row.get(0);
            (1, v.len())
        },
    );
    Ratio::measured(
        format!("vault/postgres/get/{}", size_label(VALUE_SIZE)),
        "postgres-select",
        &m,
        Some(0.6),
    )
    .with("round_trips_per_get", "1")
    .with("index_entry_bytes", entry_len.to_string())
}

/// One side-by-side set-up: strongroom's store and a raw client on the same server and
/// transport.
struct Pg {
    label: &'static str,
    store: PostgresStore,
    raw: postgres::Client,
}

fn postgres_cases(pg: Pg, budget: Duration, rounds: usize) -> Vec<Ratio> {
    let Pg {
        label: backend,
        store,
        raw,
    } = pg;
    let raw = std::cell::RefCell::new(raw);
    let insert = raw
        .borrow_mut()
        .prepare("INSERT INTO t (k, v, ver) VALUES ($1, $2, 1)")
        .expect("prepare insert");
    let select = raw
        .borrow_mut()
        .prepare("SELECT v, ver FROM t WHERE k = $1")
        .expect("prepare select");
    let value = vec![0xa5u8; VALUE_SIZE];
    let label = size_label(VALUE_SIZE);
    let mut out = Vec::new();

    let next_s = Cell::new(0u64);
    let next_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            store_put_batch(&store, next_s.get(), BATCH_ROWS, &value);
            next_s.set(next_s.get() + BATCH_ROWS as u64);
            (BATCH_ROWS, ())
        },
        || {
            raw_postgres_insert_batch(
                &mut raw.borrow_mut(),
                &insert,
                next_r.get(),
                BATCH_ROWS,
                &value,
            );
            next_r.set(next_r.get() + BATCH_ROWS as u64);
            (BATCH_ROWS, ())
        },
    );
    out.push(
        Ratio::measured(
            format!("store/{backend}/put-batch/{label}"),
            if backend == "postgres" {
                "postgres-insert-txn"
            } else {
                "postgres-tls-insert-txn"
            },
            &m,
            None,
        )
        .with("rows_per_batch", BATCH_ROWS.to_string()),
    );

    preload(
        &store,
        |first, rows, v| raw_postgres_insert_batch(&mut raw.borrow_mut(), &insert, first, rows, v),
        &value,
    );
    let i_s = Cell::new(0u64);
    let i_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            i_s.set(i_s.get() + 1);
            let v = store
                .get(Table::Deks, &key(get_key(i_s.get())))
                .expect("get")
                .expect("row");
            (1, v)
        },
        || {
            i_r.set(i_r.get() + 1);
            let row = raw
                .borrow_mut()
                .query_one(&select, &[&&key(get_key(i_r.get()))[..]])
                .expect("select");
            let v: Vec<u8> = row.get(0);
            let ver: i64 = row.get(1);
            (1, (v, ver))
        },
    );
    out.push(Ratio::measured(
        format!("store/{backend}/get/{label}"),
        if backend == "postgres" {
            "postgres-select"
        } else {
            "postgres-tls-select"
        },
        &m,
        None,
    ));
    out
}
