//! Ratio cases of the vault facade (`strongroom::Vault`) on a file-backed SQLite store,
//! against raw `rusqlite` (and the raw AEAD) doing the same storage work in the same run.
//!
//! - `vault/sqlite/put/1KiB`: `Vault::put` of a new 1 KiB secret against one raw insert
//!   transaction of a row the size of its index entry (which carries the sealed body
//!   inline), with the pragmas strongroom-sqlite uses (WAL, `synchronous=NORMAL`,
//!   `journal_size_limit`, `trusted_schema=OFF`). Extra fields break the put down: rows
//!   per put, a raw transaction with the same rows and checks (an index read, then the
//!   membership-log guard, the index entry and the audit entry in one transaction), the
//!   crypto alone, `Vault::put` on the in-memory store. `…-vs-same-rows` is the put
//!   against that raw transaction.
//! - `vault/sqlite/get/1KiB`: `Vault::get` (one read: the index entry carries the head
//!   version whole) against a prepared select of a row of the same size.
//! - `vault/sqlite/rotate/<N>`: `Vault::rotate_vault_key` of N records (`ROTATE_N`, default
//!   1 000 000; a comma-separated list runs several sizes) against the raw floor on an
//!   identical copy of the database: a keyset-paginated scan of the index rows, an
//!   XChaCha20-Poly1305 open and seal of the head's data key each carries (the same
//!   composition strongroom uses, [`strongroom_crypto::aead::WrapKey`]) and batched
//!   `UPDATE`s of the same batch size, the next page read on a second connection while one
//!   is rewrapped and committed (as strongroom's rotation reads ahead). Each side runs in a fresh child process (the `ratios` binary re-executed with
//!   [`ROTATE_CHILD_ARG`]), which reports its seconds and peak RSS.
//!
//! The records of the rotation case are written as rows by [`Loader`], exactly as
//! `Vault::put` writes them (a format-2 blind index entry carrying the head's wrapped data
//! key and sealed body), because a
//! million puts would take longer than the measurement; the crate's tests check that the
//! vault reads such rows back.

use std::cell::Cell;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use strongroom::recovery::RawKek;
use strongroom::store::{Batch, Expect, MemoryStore, ReadView as _, ScanRange, Store, Table};
use strongroom::{AsyncVault, CreateOptions, NewSecret, RotateOptions, Suite, Vault};
use strongroom_crypto::aead::{Aead, WrapKey, unwrap_key};
use strongroom_crypto::encoding::Writer;
use strongroom_crypto::kdf::derive_key;
use strongroom_crypto::zeroize::{Zeroize as _, Zeroizing};
use strongroom_crypto::{Key256, RecordId, VaultId, random};
use strongroom_envelope::{RecordContext, seal};
use strongroom_sharing::{Pins, Session};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

use crate::{Ratio, compare, size_label};

/// Value size of the put and get cases.
pub const VALUE_SIZE: usize = 1024;
/// Secrets preloaded for the get case.
pub const GET_SECRETS: u64 = 2000;
/// Records rotated by default in the ratios runner (`ROTATE_N` overrides).
pub const DEFAULT_ROTATE_N: u64 = 1_000_000;
/// Rows per rotation batch, on both sides (strongroom's default).
pub const ROTATE_BATCH: usize = 2000;
/// Value size of the rotated records (rotation never reads bodies).
pub const ROTATE_VALUE_SIZE: usize = 64;
/// First argument of the `ratios` binary when it runs one side of the rotation case.
pub const ROTATE_CHILD_ARG: &str = "--vault-rotate-child";
/// Namespace of the bulk-loaded records.
pub const BULK_NAMESPACE: &str = "bench/rotate";

/// Where the head's wrapped data key starts in a format-2 index entry.
const ENTRY_DEK_OFFSET: usize = 42;
const SQLITE_JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// The name of bulk-loaded secret `i`.
pub fn secret_name(i: u64) -> String {
    format!("s{i:09}")
}

/// The value of bulk-loaded secret `i` (`len` bytes).
pub fn secret_value(i: u64, len: usize) -> Vec<u8> {
    let mut v = format!("value {i} ").into_bytes();
    v.resize(len.max(v.len()), b'.');
    v
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A raw rusqlite connection with the pragmas strongroom-sqlite sets on each connection.
pub fn raw_connection(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open raw sqlite");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL");
    assert_eq!(mode, "wal");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    conn.pragma_update(None, "journal_size_limit", SQLITE_JOURNAL_SIZE_LIMIT)
        .expect("journal_size_limit");
    conn.pragma_update(None, "trusted_schema", "OFF")
        .expect("trusted_schema");
    conn
}

/// The raw table of the put/get cases: the shape of strongroom's bodies table (a rowid
/// table with a blob primary key).
fn raw_table(conn: &rusqlite::Connection) {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, \
         ver INTEGER NOT NULL) STRICT",
    )
    .expect("create table");
}

fn raw_key(n: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(b"raw/bench/key/..");
    k[16..].copy_from_slice(&n.to_be_bytes());
    k
}

/// A key at a scattered position, like the vault's random record ids and blind index.
fn scattered_key(n: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    k[8..16].copy_from_slice(
        &n.rotate_left(29)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9)
            .to_be_bytes(),
    );
    k[16..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Raw: one `BEGIN IMMEDIATE; INSERT; COMMIT` transaction.
pub fn raw_insert(conn: &rusqlite::Connection, n: u64, value: &[u8]) {
    conn.prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .expect("begin");
    conn.prepare_cached("INSERT INTO t (k, v, ver) VALUES (?1, ?2, 1)")
        .and_then(|mut s| s.execute(rusqlite::params![&raw_key(n)[..], value]))
        .expect("insert");
    conn.prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .expect("commit");
}

/// Raw: rows `raw_key(first) .. raw_key(first + n)` = `value`, in one transaction (set-up,
/// not measured).
fn raw_preload(conn: &rusqlite::Connection, first: u64, n: u64, value: &[u8]) {
    let tx = conn.unchecked_transaction().expect("begin");
    for i in first..first + n {
        tx.execute(
            "INSERT INTO t (k, v, ver) VALUES (?1, ?2, 1)",
            rusqlite::params![&raw_key(i)[..], value],
        )
        .expect("preload insert");
    }
    tx.commit().expect("commit");
}

/// Raw: a prepared select of one row.
pub fn raw_select(conn: &rusqlite::Connection, n: u64) -> (Vec<u8>, i64) {
    conn.prepare_cached("SELECT v, ver FROM t WHERE k = ?1")
        .expect("prepare")
        .query_row([&raw_key(n)[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("select")
}

/// Raw: the statements a vault put issues, without the crypto: a read of the index row,
/// then in one transaction the membership-log check, the index entry insert (at a scattered
/// key, as the vault's blind index is) and the audit append (with its check of the previous
/// entry).
fn raw_put_shaped(conn: &rusqlite::Connection, n: u64, entry: &[u8], audit: &[u8]) {
    let key = scattered_key(n);
    let _: Option<i64> = conn
        .prepare_cached("SELECT ver FROM t WHERE k = ?1")
        .expect("prepare")
        .query_row([&key[..]], |r| r.get(0))
        .ok();
    conn.prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .expect("begin");
    let _: Option<i64> = conn
        .prepare_cached("SELECT ver FROM t WHERE k = ?1")
        .expect("prepare")
        .query_row([&b"log/next"[..]], |r| r.get(0))
        .ok();
    conn.prepare_cached("INSERT INTO t (k, v, ver) VALUES (?1, ?2, 1)")
        .and_then(|mut s| s.execute(rusqlite::params![&key[..], entry]))
        .expect("insert");
    let mut k = key.to_vec();
    k[0] = b'a';
    conn.prepare_cached(
        "INSERT INTO t (k, v, ver) SELECT ?1, ?2, 1 WHERE ?3 OR EXISTS \
         (SELECT 1 FROM t WHERE k = ?4) ON CONFLICT (k) DO NOTHING",
    )
    .and_then(|mut s| s.execute(rusqlite::params![k, audit, false, &b"log/prev"[..]]))
    .expect("append");
    conn.prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .expect("commit");
}

fn open_sqlite(path: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path, SqliteOptions::default()).expect("open strongroom sqlite"))
}

fn hmac32(key: &Key256, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret()).expect("any key");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes records as rows, exactly as `Vault::put` writes a first version (a format-2
/// index entry carrying the body sealed under a fresh data key inline and that data key
/// wrapped under the current vault key; see `strongroom/src/index_entry.rs`), in large
/// batches and without one audit entry per record.
///
/// The layouts are the facade's (see `strongroom/src/records.rs` and `meta.rs`): the
/// blind index is `HMAC(index key, "ns" ‖ ns)[..16] ‖ HMAC(index key, "name" ‖
/// len(ns) ‖ ns ‖ name)[..16]` with `index key = HKDF(metadata key,
/// "strongroom/v1/index")`, the metadata key being wrapped under the epoch's vault key in
/// row `"m" ‖ epoch` of the wraps table.
pub struct Loader {
    session: Session,
    index_key: Key256,
    suite: Suite,
}

impl Loader {
    /// Unlocks the vault in `store` with `kek` to get its current vault key and index key.
    pub fn new(store: &dyn Store, vault_id: VaultId, kek: &RawKek) -> Loader {
        let mut pins = Pins::default();
        let session =
            strongroom_sharing::unlock(store, vault_id, None, kek, &mut pins).expect("unlock");
        let vk = session.current_key();
        let mut row = b"m".to_vec();
        row.extend_from_slice(&vk.epoch().0.to_be_bytes());
        let blob = store
            .get(Table::Wraps, &row)
            .expect("read")
            .expect("the metadata key row of the current epoch")
            .value;
        let mut aad = b"strongroom/v1/meta-key".to_vec();
        aad.extend_from_slice(vault_id.as_bytes());
        aad.extend_from_slice(&vk.epoch().0.to_be_bytes());
        let meta = unwrap_key(&WrapKey::new(vk.expose_secret()), &aad, &blob).expect("meta key");
        Loader {
            index_key: derive_key(&meta, "strongroom/v1/index", &[]),
            session,
            suite: Suite::preferred(),
        }
    }

    fn blind(&self, namespace: &str, name: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        let ns = hmac32(&self.index_key, &[b"ns", namespace.as_bytes()]);
        let ns_len = (namespace.len() as u32).to_be_bytes();
        let nm = hmac32(
            &self.index_key,
            &[b"name", &ns_len, namespace.as_bytes(), name.as_bytes()],
        );
        out[..16].copy_from_slice(&ns[..16]);
        out[16..].copy_from_slice(&nm[..16]);
        out
    }

    /// Adds the rows of secret `name` = `value` (version 1) to `batch`.
    pub fn add(&self, batch: &mut Batch, namespace: &str, name: &str, value: &[u8]) {
        let record = RecordId::generate().expect("record id");
        let t = now();
        let mut payload = Writer::with_capacity(160 + namespace.len() + name.len() + value.len());
        // Payload format 2 (`docs/spec/payload.md`): the fields, then the writer proof
        // (signer, kind 1 "written", log position) and the signature over their digest.
        payload
            .u8(2)
            .var_bytes(namespace.as_bytes())
            .var_bytes(name.as_bytes())
            .u64(t)
            .u64(t)
            .bytes(self.session.member_id().as_bytes())
            .var_bytes(value)
            .bytes(self.session.member_id().as_bytes())
            .u8(1)
            .u64(self.session.membership().len() - 1);
        let ctx = RecordContext {
            vault_id: self.session.vault_id(),
            record_id: record,
            version: 1,
        };
        let digest: [u8; 32] = {
            use sha2::Digest as _;
            let mut h = Sha256::new();
            h.update(b"strongroom/v3/record-digest\0");
            h.update(ctx.vault_id.as_bytes());
            h.update(ctx.record_id.as_bytes());
            h.update(1u64.to_be_bytes());
            h.update(payload.as_slice());
            h.finalize().into()
        };
        payload.bytes(&self.session.identity().sign_record(&digest));
        let payload = Zeroizing::new(payload.into_vec());
        let sealed = seal(self.session.current_key(), self.suite, &ctx, &payload).expect("seal");
        // Index entry format 2: version, record id, head version, created at, oldest
        // stored version, placement 1 (inline), the head's wrapped data key, its body.
        let wrapped = sealed.wrapped_dek.as_bytes();
        let mut index = Writer::with_capacity(ENTRY_DEK_OFFSET + wrapped.len() + sealed.body.len());
        index
            .u8(2)
            .bytes(record.as_bytes())
            .u64(1)
            .u64(t)
            .u64(1)
            .u8(1)
            .bytes(wrapped)
            .bytes(&sealed.body);
        batch.put(
            Table::Index,
            self.blind(namespace, name).to_vec(),
            index.into_vec(),
            Expect::Absent,
        );
    }

    /// Loads secrets `first..first + n` ([`secret_name`], [`secret_value`]) in batches.
    pub fn load(&self, store: &dyn Store, first: u64, n: u64, value_len: usize, batch: usize) {
        let mut b = Batch::with_capacity(batch);
        for i in first..first + n {
            self.add(
                &mut b,
                BULK_NAMESPACE,
                &secret_name(i),
                &secret_value(i, value_len),
            );
            if b.len() >= batch {
                store.commit(&b).expect("bulk commit");
                b = Batch::with_capacity(batch);
            }
        }
        if !b.is_empty() {
            store.commit(&b).expect("bulk commit");
        }
    }
}

/// Creates a SQLite vault at `path` holding `n` bulk-loaded records; returns its KEK.
pub fn populated_vault(path: &Path, n: u64, value_len: usize) -> RawKek {
    let kek = RawKek::generate().expect("kek");
    let store = open_sqlite(path);
    let (vault, _) =
        Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).expect("create");
    Loader::new(&*store, vault.id(), &kek).load(&*store, 0, n, value_len, 5000);
    kek
}

/// All vault cases.
pub fn cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    let mut out = put_get_cases(budget, rounds);
    out.extend(scoped_cases(budget, rounds));
    out.extend(bulk_cases(budget, rounds));
    let sizes = std::env::var("ROTATE_N").unwrap_or_else(|_| DEFAULT_ROTATE_N.to_string());
    for n in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<u64>().ok())
    {
        out.push(rotation_case(n));
    }
    out
}

/// A vault on a fresh SQLite file in `dir` and a raw connection to another file there
/// with the same pragmas and a `t (k, v, ver)` table.
fn sqlite_pair(dir: &Path) -> (Arc<dyn Store>, RawKek, Vault, rusqlite::Connection) {
    let kek = RawKek::generate().expect("kek");
    let store = open_sqlite(&dir.join("vault.db"));
    let (vault, _) =
        Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).expect("create");
    let raw = raw_connection(&dir.join("raw.db"));
    raw_table(&raw);
    (store, kek, vault, raw)
}

/// Writes `names` = `value` into `namespace` with one `put_many`, and returns the length
/// of an index entry of `store` (the row a raw baseline should match in size).
pub fn preload(
    vault: &Vault,
    store: &dyn Store,
    namespace: &str,
    names: &[String],
    value: &[u8],
) -> usize {
    let secrets: Vec<NewSecret<'_>> = names
        .iter()
        .map(|name| NewSecret {
            namespace,
            name,
            value,
        })
        .collect();
    vault.put_many(&secrets).expect("preload");
    store
        .scan(Table::Index, &ScanRange::all(), None, 1)
        .expect("scan")
        .rows[0]
        .value
        .len()
}

fn put_get_cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, kek, vault, raw) = sqlite_pair(dir.path());
    let value = vec![0x5au8; VALUE_SIZE];
    let label = size_label(VALUE_SIZE);

    // The raw row is as large as the index entry a vault put stores (its head inline).
    vault.put("bench/probe", "probe", &value).expect("put");
    let entries = store
        .scan(Table::Index, &ScanRange::all(), None, 2)
        .expect("scan")
        .rows;
    assert_eq!(entries.len(), 1, "one index entry");
    let entry_len = entries[0].value.len();
    let raw_value = vec![0xa5u8; entry_len];

    let next_s = Cell::new(0u64);
    let next_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            next_s.set(next_s.get() + 1);
            let m = vault
                .put("bench/put", &format!("k{}", next_s.get()), &value)
                .expect("put");
            (1, m.version)
        },
        || {
            next_r.set(next_r.get() + 1);
            raw_insert(&raw, next_r.get(), &raw_value);
            (1, ())
        },
    );
    let breakdown = put_breakdown(budget, rounds, &dir.path().join("shaped.db"), entry_len);
    let mut put = Ratio::measured(
        format!("vault/sqlite/put/{label}"),
        "rusqlite-insert-1-row-txn",
        &m,
        Some(0.5),
    )
    .with("index_entry_bytes", entry_len.to_string())
    .with("rows_per_put", "2")
    .with(
        "rows_per_put_detail",
        crate::json_str("index entry+audit, plus a membership-log check and an index read"),
    );
    let shaped_put_us = breakdown
        .iter()
        .find(|(k, _)| *k == "raw_put_shaped_txn_us")
        .map(|(_, v)| *v);
    for (k, v) in breakdown {
        put = put.with(k, format!("{v:.1}"));
    }
    let mut out = vec![put];
    // The same put against the raw floor of what a put must write: one rusqlite
    // transaction with the same rows and checks (index read; guard, index entry, audit).
    if let Some(us) = shaped_put_us {
        out.push(Ratio::new(
            format!("vault/sqlite/put/{label}-vs-same-rows"),
            "rusqlite-txn-of-the-same-2-rows",
            m.strongroom_ops_s,
            1e6 / us,
            Some(0.5),
        ));
    }

    // get: preloaded secrets, read in a scattered order.
    for i in 0..GET_SECRETS {
        vault
            .put("bench/get", &format!("g{i}"), &value)
            .expect("preload put");
    }
    raw_preload(&raw, 1 << 40, GET_SECRETS, &raw_value);
    let i_s = Cell::new(0u64);
    let i_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            i_s.set(i_s.get() + 1);
            let n = i_s.get().wrapping_mul(7919) % GET_SECRETS;
            let got = vault.get("bench/get", &format!("g{n}")).expect("get");
            (1, got.expose_secret().len())
        },
        || {
            i_r.set(i_r.get() + 1);
            let n = i_r.get().wrapping_mul(7919) % GET_SECRETS;
            (1, raw_select(&raw, (1 << 40) + n).0.len())
        },
    );
    let mem: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (mem_vault, _) =
        Vault::create(Arc::clone(&mem), &kek, &CreateOptions::default()).expect("create");
    for i in 0..GET_SECRETS {
        mem_vault
            .put("bench/get", &format!("g{i}"), &value)
            .expect("preload put");
    }
    let i_m = Cell::new(0u64);
    let memory = best_of(rounds, budget, || {
        i_m.set(i_m.get() + 1);
        let n = i_m.get().wrapping_mul(7919) % GET_SECRETS;
        let got = mem_vault.get("bench/get", &format!("g{n}")).expect("get");
        (1, got.expose_secret().len())
    });
    out.push(
        Ratio::measured(
            format!("vault/sqlite/get/{label}"),
            "rusqlite-select",
            &m,
            Some(0.6),
        )
        .with("rows_per_get", "1")
        .with("vault_get_memory_store_us", format!("{:.1}", 1e6 / memory)),
    );

    // get, first read: more secrets than a handle remembers verified writer signatures
    // (16,384), read in turn, so every get verifies one Ed25519 signature.
    let batch: Vec<(String, Vec<u8>)> = (0..FIRST_READ_SECRETS)
        .map(|i| (format!("c{i}"), value.clone()))
        .collect();
    let secrets: Vec<NewSecret<'_>> = batch
        .iter()
        .map(|(name, v)| NewSecret {
            namespace: "bench/cold",
            name,
            value: v,
        })
        .collect();
    vault.put_many(&secrets).expect("preload put_many");
    raw_preload(&raw, 2 << 40, FIRST_READ_SECRETS, &raw_value);
    let i_s = Cell::new(0u64);
    let i_r = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            i_s.set(i_s.get() + 1);
            let n = i_s.get() % FIRST_READ_SECRETS;
            let got = vault.get("bench/cold", &format!("c{n}")).expect("get");
            (1, got.expose_secret().len())
        },
        || {
            i_r.set(i_r.get() + 1);
            let n = i_r.get() % FIRST_READ_SECRETS;
            (1, raw_select(&raw, (2 << 40) + n).0.len())
        },
    );
    out.push(
        Ratio::measured(
            format!("vault/sqlite/get-first-read/{label}"),
            "rusqlite-select",
            &m,
            None,
        )
        .with("rows_per_get", "1")
        .with("signature_verifications_per_get", "1"),
    );
    out
}

/// A service account's get and put in its scope (`ScopedVault`, SQLite, 1 KiB), each
/// against the same raw floor as the full member's (a one-row rusqlite select; a one-row
/// insert in its own transaction), and a full member's get of a scope's secret:
/// - `vault/sqlite/scoped-get/1KiB`: one store read (the index entry holds the head),
///   the scope's key found by key id, the body digest always checked, the writer's
///   signature verified once per version and remembered;
/// - `vault/sqlite/scoped-put/1KiB`: one read and one commit, one Ed25519 signature, no
///   audit entry (a scoped member holds no audit key);
/// - `vault/sqlite/full-get-in-scope/1KiB`: a full member's get there (its lookup also
///   covers the vault-wide index keys, for secrets stored before the scope existed).
fn scoped_cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    use strongroom::UnlockOptions;
    use strongroom::sharing::{Identity, Role};
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _, vault, raw) = sqlite_pair(dir.path());
    let value = vec![0x5au8; VALUE_SIZE];
    let label = size_label(VALUE_SIZE);
    let scope = vault.create_scope("bench/scoped").expect("scope");
    let identity = Identity::generate("bench-service").expect("identity");
    let public = identity.public();
    let confirmed = public
        .confirm_fingerprint(&public.fingerprint().to_string())
        .expect("fingerprint");
    vault
        .add_member(public, Role::Scoped, confirmed)
        .expect("add");
    vault
        .grant_scope(public.member_id(), scope, Role::Member)
        .expect("grant");
    let service_kek = RawKek::generate().expect("kek");
    Vault::open(Arc::clone(&store))
        .expect("open")
        .join_scoped(&identity, &[&service_kek])
        .expect("join");
    let service = Vault::open(Arc::clone(&store))
        .expect("open")
        .unlock_scoped_with(
            &service_kek,
            UnlockOptions::default().with_member(Some(identity.member_id())),
        )
        .expect("unlock");
    let names: Vec<String> = (0..GET_SECRETS).map(|i| format!("s{i}")).collect();
    let entry_len = preload(&vault, &*store, "bench/scoped", &names, &value);
    let raw_value = vec![0xa5u8; entry_len];
    raw_preload(&raw, 3 << 40, GET_SECRETS, &raw_value);
    let scattered = |i: u64| i.wrapping_mul(7919) % GET_SECRETS;
    let mut out = Vec::new();
    for (case, reader) in [("scoped-get", true), ("full-get-in-scope", false)] {
        let i_s = Cell::new(0u64);
        let i_r = Cell::new(0u64);
        let m = compare(
            rounds,
            budget,
            || {
                i_s.set(i_s.get() + 1);
                let name = &names[scattered(i_s.get()) as usize];
                let got = if reader {
                    service.get("bench/scoped", name)
                } else {
                    vault.get("bench/scoped", name)
                }
                .expect("get");
                (1, got.expose_secret().len())
            },
            || {
                i_r.set(i_r.get() + 1);
                (
                    1,
                    raw_select(&raw, (3 << 40) + scattered(i_r.get())).0.len(),
                )
            },
        );
        out.push(
            Ratio::measured(
                format!("vault/sqlite/{case}/{label}"),
                "rusqlite-select",
                &m,
                Some(0.6),
            )
            .with("rows_per_get", "1"),
        );
    }
    let next_s = Cell::new(0u64);
    let next_r = Cell::new(4u64 << 40);
    let m = compare(
        rounds,
        budget,
        || {
            next_s.set(next_s.get() + 1);
            let m = service
                .put("bench/scoped", &format!("p{}", next_s.get()), &value)
                .expect("put");
            (1, m.version)
        },
        || {
            next_r.set(next_r.get() + 1);
            raw_insert(&raw, next_r.get(), &raw_value);
            (1, ())
        },
    );
    out.push(
        Ratio::measured(
            format!("vault/sqlite/scoped-put/{label}"),
            "rusqlite-insert-1-row-txn",
            &m,
            Some(0.5),
        )
        .with("rows_per_put", "1"),
    );
    out
}

/// Secrets of the first-read get case: more than a vault handle remembers verified.
const FIRST_READ_SECRETS: u64 = 20_000;

/// Secrets of the namespace-load case.
pub const LOAD_SECRETS: usize = 100;
/// Secrets per `put_many` in the bulk-import case (`BULK_N` overrides).
pub const DEFAULT_BULK_N: usize = 100_000;
/// Sequential gets per `block_on` in the async case (one runtime entry per batch, as a
/// server task awaiting one get after another).
const ASYNC_GETS_PER_BLOCK: usize = 100;
/// Runtime workers in the async cases, and OS threads of the concurrent case's floor.
const ASYNC_WORKERS: usize = 2;
/// Tasks awaiting gets at once in the concurrent async case.
const ASYNC_TASKS: usize = 64;
/// Gets per measured operation of the concurrent async case (split over the tasks, or
/// over the floor's threads).
const ASYNC_CONCURRENT_GETS: usize = 1024;

/// Namespace load, bulk import and the async handle, each against its floor in the same
/// run:
/// - `vault/sqlite/load-namespace/100`: `Vault::load` of a namespace of 100 secrets of
///   1 KiB (one consistent read) against a raw range scan of 100 rows of the same size.
/// - `vault/sqlite/put-many/<N>`: `Vault::put_many` of N new 1 KiB secrets (one commit)
///   against one raw transaction inserting N rows of the same size under keys of the
///   same shape (one 16-byte prefix per import, as the vault's index keys share their
///   namespace's tag; N = `BULK_N`, default 100,000; counted in secrets per second).
/// - `vault/async/get/1KiB`: `AsyncVault::get` awaited in sequence on a tokio runtime
///   against `Vault::get` of the same vault (the handle's cost: a hop to one of its
///   threads and back). `handoff_us` is that hop alone (a call that does nothing), and
///   `ceiling_with_handoff` the ratio a get would reach if the handle added nothing else.
/// - `vault/async/get-concurrent/1KiB`: 64 tasks on a 2-worker runtime awaiting gets at
///   once against 2 OS threads calling `Vault::get` (a server's throughput with the
///   handle, against the machine's without it).
fn bulk_cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _, vault, raw) = sqlite_pair(dir.path());
    let value = vec![0x5au8; VALUE_SIZE];
    let names: Vec<String> = (0..LOAD_SECRETS).map(|i| format!("s{i:03}")).collect();
    let entry_len = preload(&vault, &*store, "bench/load", &names, &value);
    let raw_value = vec![0xa5u8; entry_len];
    raw_preload(&raw, 2 << 40, LOAD_SECRETS as u64, &raw_value);
    let (lo, hi) = (raw_key(2 << 40), raw_key((2 << 40) + LOAD_SECRETS as u64));
    let m = compare(
        rounds,
        budget,
        || {
            let all = vault.load("bench/load").expect("load");
            assert_eq!(all.len(), LOAD_SECRETS);
            (1, all)
        },
        || {
            let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = raw
                .prepare_cached("SELECT k, v, ver FROM t WHERE k >= ?1 AND k < ?2 ORDER BY k")
                .expect("prepare")
                .query_map([&lo[..], &hi[..]], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .expect("scan")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert_eq!(rows.len(), LOAD_SECRETS);
            (1, rows)
        },
    );
    let mut out = vec![
        Ratio::measured(
            format!("vault/sqlite/load-namespace/{LOAD_SECRETS}"),
            "rusqlite-range-scan",
            &m,
            Some(0.6),
        )
        .with("index_entry_bytes", entry_len.to_string()),
    ];

    let bulk_n = std::env::var("BULK_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_BULK_N);
    let bulk_names: Vec<String> = (0..bulk_n).map(|i| format!("b{i:07}")).collect();
    let run = Cell::new(0u64);
    let raw_run = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            run.set(run.get() + 1);
            let namespace = format!("bench/bulk{}", run.get());
            let batch: Vec<NewSecret<'_>> = bulk_names
                .iter()
                .map(|name| NewSecret {
                    namespace: &namespace,
                    name,
                    value: &value,
                })
                .collect();
            let report = vault.put_many(&batch).expect("put_many");
            assert_eq!(report.written.len(), bulk_n);
            (bulk_n, ())
        },
        || {
            raw_run.set(raw_run.get() + 1);
            let first = (3 + raw_run.get()) << 40;
            let tx = raw.unchecked_transaction().expect("begin");
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO t (k, v, ver) VALUES (?1, ?2, 1)")
                    .expect("prepare");
                // Like the vault's index keys: one prefix per import (the namespace's tag),
                // scattered below it (the names' tags).
                let prefix = scattered_key(first);
                for i in 0..bulk_n as u64 {
                    let mut key = [0u8; 32];
                    key[..16].copy_from_slice(&prefix[..16]);
                    key[16..].copy_from_slice(&scattered_key(first + 1 + i)[..16]);
                    insert
                        .execute(rusqlite::params![&key[..], &raw_value])
                        .expect("insert");
                }
            }
            tx.commit().expect("commit");
            (bulk_n, ())
        },
    );
    out.push(
        Ratio::measured(
            format!("vault/sqlite/put-many/{bulk_n}"),
            "rusqlite-batched-insert-txn",
            &m,
            Some(0.5),
        )
        .with("secrets", bulk_n.to_string()),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(ASYNC_WORKERS)
        .build()
        .expect("tokio runtime");
    let handle = AsyncVault::new(vault).expect("async handle");
    let i_a = Cell::new(0usize);
    let i_s = Cell::new(0usize);
    let m = compare(
        rounds,
        budget,
        || {
            let got = runtime.block_on(async {
                let mut total = 0;
                for _ in 0..ASYNC_GETS_PER_BLOCK {
                    i_a.set(i_a.get() + 1);
                    let name = names[i_a.get().wrapping_mul(37) % LOAD_SECRETS].clone();
                    let s = handle.get("bench/load", name).await.expect("async get");
                    total += s.expose_secret().len();
                }
                total
            });
            (ASYNC_GETS_PER_BLOCK, got)
        },
        || {
            i_s.set(i_s.get() + 1);
            let name = &names[i_s.get().wrapping_mul(37) % LOAD_SECRETS];
            let s = handle.vault().get("bench/load", name).expect("get");
            (1, s.expose_secret().len())
        },
    );
    // The handle's own cost: a call that does nothing, sent to one of its threads and
    // awaited back (two thread wake-ups). A sequential async get costs a sync get plus
    // this, so `sync / (sync + handoff)` is the best ratio a handle running every call
    // off the runtime's threads can reach on this machine.
    let handoff = best_of(rounds, budget, || {
        runtime.block_on(async {
            for _ in 0..ASYNC_GETS_PER_BLOCK {
                handle.run(|_| Ok(())).await.expect("no-op call");
            }
        });
        (ASYNC_GETS_PER_BLOCK, ())
    });
    let (sync_us, handoff_us) = (1e6 / m.raw_ops_s, 1e6 / handoff);
    out.push(
        Ratio::measured(
            format!("vault/async/get/{}", size_label(VALUE_SIZE)),
            "vault-sync-get",
            &m,
            Some(0.8),
        )
        .with("gets_per_block_on", ASYNC_GETS_PER_BLOCK.to_string())
        .with("sync_get_us", format!("{sync_us:.2}"))
        .with("handoff_us", format!("{handoff_us:.2}"))
        .with(
            "ceiling_with_handoff",
            format!("{:.3}", sync_us / (sync_us + handoff_us)),
        ),
    );

    // A server's view: many tasks awaiting gets at once. The floor is the same number of
    // gets made by as many OS threads as the runtime has workers, each calling
    // `Vault::get` directly: what the machine does without the handle.
    let per_task = ASYNC_CONCURRENT_GETS / ASYNC_TASKS;
    let shared_names = Arc::new(names.clone());
    let m = compare(
        rounds,
        budget,
        || {
            let got = runtime.block_on(async {
                let tasks: Vec<_> = (0..ASYNC_TASKS)
                    .map(|t| {
                        let handle = handle.clone();
                        let names = Arc::clone(&shared_names);
                        tokio::spawn(async move {
                            let mut total = 0;
                            for i in 0..per_task {
                                let name = names
                                    [(t * per_task + i).wrapping_mul(37) % LOAD_SECRETS]
                                    .clone();
                                let s = handle.get("bench/load", name).await.expect("async get");
                                total += s.expose_secret().len();
                            }
                            total
                        })
                    })
                    .collect();
                let mut total = 0;
                for task in tasks {
                    total += task.await.expect("task");
                }
                total
            });
            (ASYNC_CONCURRENT_GETS, got)
        },
        || {
            let per_thread = ASYNC_CONCURRENT_GETS / ASYNC_WORKERS;
            let got: usize = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..ASYNC_WORKERS)
                    .map(|t| {
                        let (vault, names) = (handle.vault(), &names);
                        scope.spawn(move || {
                            let mut total = 0;
                            for i in 0..per_thread {
                                let name =
                                    &names[(t * per_thread + i).wrapping_mul(37) % LOAD_SECRETS];
                                total += vault
                                    .get("bench/load", name)
                                    .expect("get")
                                    .expose_secret()
                                    .len();
                            }
                            total
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().expect("thread")).sum()
            });
            (ASYNC_CONCURRENT_GETS, got)
        },
    );
    out.push(
        Ratio::measured(
            format!("vault/async/get-concurrent/{}", size_label(VALUE_SIZE)),
            "vault-sync-get-parallel",
            &m,
            Some(0.8),
        )
        .with("tasks", ASYNC_TASKS.to_string())
        .with("threads", ASYNC_WORKERS.to_string()),
    );
    out
}

/// Microseconds per put of each part: the raw transaction shaped like a put (same rows and
/// checks), the same through strongroom-sqlite's `Store`, the crypto alone (seal, blind
/// index, audit MAC), and a whole put on the in-memory store (crypto + facade, no SQL).
fn put_breakdown(
    budget: Duration,
    rounds: usize,
    path: &Path,
    entry_len: usize,
) -> Vec<(&'static str, f64)> {
    let us = |ops_s: f64| if ops_s > 0.0 { 1e6 / ops_s } else { 0.0 };
    let conn = raw_connection(path);
    raw_table(&conn);
    let entry = vec![0x11u8; entry_len];
    let audit = vec![0x33u8; 180];
    let n = Cell::new(0u64);
    let mem: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().expect("kek");
    let (mem_vault, _) =
        Vault::create(Arc::clone(&mem), &kek, &CreateOptions::default()).expect("create");
    let value = vec![0x5au8; VALUE_SIZE];
    let i_m = Cell::new(0u64);
    let m = compare(
        rounds,
        budget,
        || {
            i_m.set(i_m.get() + 1);
            let r = mem_vault
                .put("bench/put", &format!("k{}", i_m.get()), &value)
                .expect("put");
            (1, r.version)
        },
        || {
            n.set(n.get() + 1);
            raw_put_shaped(&conn, n.get(), &entry, &audit);
            (1, ())
        },
    );
    let (memory, shaped) = (m.strongroom_ops_s, m.raw_ops_s);
    // The same rows and checks through strongroom-sqlite's Store (no crypto): what the
    // store layer adds over raw SQL.
    let store_path = path.with_extension("store.db");
    let store = SqliteStore::open(&store_path, SqliteOptions::default()).expect("open");
    let seq = Cell::new(0u64);
    let store_shaped = best_of(rounds, budget, || {
        let i = seq.get();
        seq.set(i + 1);
        let key = scattered_key(i);
        let index = store.get(Table::Index, &key).expect("get");
        let mut b = Batch::with_capacity(3);
        b.check(
            Table::MemberLog,
            7u64.to_be_bytes().to_vec(),
            Expect::Absent,
        )
        .put(Table::Index, key.to_vec(), entry.clone(), Expect::Absent)
        .append(Table::Audit, i, audit.clone());
        store.commit(&b).expect("commit");
        (1, index.is_some())
    });
    // The crypto of a put alone: seal under a fresh DEK, two index HMACs, the audit MAC and
    // hash.
    let loader = Loader::new(&*mem, mem_vault.id(), &kek);
    let c = Cell::new(0u64);
    let crypto = best_of(rounds, budget, || {
        c.set(c.get() + 1);
        let mut b = Batch::with_capacity(3);
        loader.add(&mut b, "bench/put", &format!("k{}", c.get()), &value);
        let mac = hmac32(&loader.index_key, &[&audit]);
        (1, (b.len(), mac))
    });
    vec![
        ("raw_put_shaped_txn_us", us(shaped)),
        ("store_put_shaped_commit_us", us(store_shaped)),
        ("crypto_only_us", us(crypto)),
        ("vault_put_memory_store_us", us(memory)),
    ]
}

/// The best throughput of `rounds` measurements (noise only slows a run down).
fn best_of<T>(rounds: usize, budget: Duration, mut op: impl FnMut() -> (usize, T)) -> f64 {
    (0..rounds.max(1))
        .map(|_| crate::ops_per_sec(budget, &mut op))
        .fold(0.0, f64::max)
}

/// One side of the rotation case, measured in a fresh process.
#[derive(Debug, Clone, Copy)]
pub struct ChildResult {
    /// Wall-clock seconds of the rotation (or the raw floor).
    pub seconds: f64,
    /// Peak resident set size of the child, bytes.
    pub peak_rss: u64,
    /// Rows rewrapped.
    pub rows: u64,
}

/// Runs one side of the rotation case in this process (the child): `args` are
/// `[side, db path, KEK hex, batch size]` with side `strongroom` or `raw`. Prints one
/// `@result` line.
pub fn rotate_child(args: &[String]) {
    let [side, db, kek, batch] = args else {
        panic!("usage: {ROTATE_CHILD_ARG} strongroom|raw DB KEK_HEX BATCH");
    };
    let kek = RawKek::from_hex(kek).expect("kek");
    let batch: usize = batch.parse().expect("batch size");
    let db = PathBuf::from(db);
    let (seconds, rows) = match side.as_str() {
        "strongroom" => {
            let vault = Vault::open(open_sqlite(&db))
                .expect("open")
                .unlock(&kek)
                .expect("unlock");
            let start = Instant::now();
            let report = vault
                .rotate_vault_key_with(RotateOptions::default().with_batch_size(batch), &mut |_| {})
                .expect("rotate");
            (start.elapsed().as_secs_f64(), report.processed)
        }
        "raw" => raw_rotation(&db, &kek, batch),
        other => panic!("unknown side {other}"),
    };
    let rss = crate::peak_rss_bytes().unwrap_or(0);
    println!("@result {seconds} {rss} {rows}");
}

/// The raw floor of a rotation on a strongroom database: keyset-paginated scan of the
/// wrapped data keys (the next page read by a second thread while one is rewrapped and
/// committed), open under the old vault key and seal under a new one (each 32-byte key,
/// with its associated data), batched updates.
fn raw_rotation(db: &Path, kek: &RawKek, batch: usize) -> (f64, u64) {
    // The old vault key and vault id (not timed).
    let (old, vault_id) = {
        let store = open_sqlite(db);
        let locked = Vault::open(Arc::clone(&store)).expect("open");
        let vault_id = locked.id();
        let mut pins = Pins::default();
        let session =
            strongroom_sharing::unlock(&*store, vault_id, None, kek, &mut pins).expect("unlock");
        (
            WrapKey::new(session.current_key().expose_secret()),
            vault_id,
        )
    };
    let new_key = Key256::generate().expect("key");
    let new = WrapKey::new(&new_key);
    let conn = raw_connection(db);
    let start = Instant::now();
    let mut rows = 0u64;
    // As strongroom's rotation does, the next page is read (on a second connection, by a
    // second thread) while this one is rewrapped and committed.
    let (pages_out, pages) = std::sync::mpsc::sync_channel::<Vec<(Vec<u8>, Vec<u8>)>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let reader = raw_connection(db);
            let mut last: Vec<u8> = Vec::new();
            loop {
                let page: Vec<(Vec<u8>, Vec<u8>)> = reader
                    .prepare_cached("SELECT k, v FROM sr_index WHERE k > ?1 ORDER BY k LIMIT ?2")
                    .expect("prepare")
                    .query_map(
                        rusqlite::params![last, i64::try_from(batch).expect("batch size")],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .expect("scan")
                    .collect::<Result<_, _>>()
                    .expect("rows");
                let Some((k, _)) = page.last() else { break };
                last.clone_from(k);
                if pages_out.send(page).is_err() {
                    break;
                }
            }
        });
        for page in pages {
            rows += rewrap_page(&conn, &page, &old, &new, vault_id);
        }
    });
    (start.elapsed().as_secs_f64(), rows)
}

/// One page of the raw rotation floor: each row's head data key rewrapped from `old` to
/// `new`, and the rows updated in one transaction. Returns the rows done.
fn rewrap_page(
    conn: &rusqlite::Connection,
    page: &[(Vec<u8>, Vec<u8>)],
    old: &WrapKey,
    new: &WrapKey,
    vault_id: VaultId,
) -> u64 {
    let mut nonces = vec![0u8; page.len() * 24];
    random::fill(&mut nonces).expect("nonces");
    let mut updated = Vec::with_capacity(page.len());
    for ((k, v), nonce) in page.iter().zip(nonces.chunks_exact(24)) {
        // Index entry format 2 (version 2, head inline): the head's wrapped data key
        // (format 2: head (50) ‖ nonce (24) ‖ DEK (32) ‖ tag (16)) at offset 42; the
        // record id and head version (bytes 1..25) end its associated data.
        assert!(
            v.len() >= ENTRY_DEK_OFFSET + 122 && v[0] == 2,
            "a format-2 index entry"
        );
        let mut out = v.clone();
        let w = &mut out[ENTRY_DEK_OFFSET..ENTRY_DEK_OFFSET + 122];
        let mut aad = Vec::with_capacity(17 + 50 + 16 + 24);
        aad.extend_from_slice(b"strongroom/v2/dek");
        aad.extend_from_slice(&w[..50]);
        aad.extend_from_slice(vault_id.as_bytes());
        aad.extend_from_slice(&v[1..25]);
        let mut dek = [0u8; 32];
        dek.copy_from_slice(&w[74..106]);
        old.open_detached(&w[50..74], &aad, &mut dek, &w[106..122])
            .expect("open data key");
        w[2..6].copy_from_slice(&2u32.to_be_bytes());
        w[50..74].copy_from_slice(nonce);
        aad[17..67].copy_from_slice(&w[..50]);
        let tag = new.seal_detached(nonce, &aad, &mut dek).expect("seal");
        w[74..106].copy_from_slice(&dek);
        w[106..122].copy_from_slice(&tag);
        dek.zeroize();
        updated.push((k, out));
    }
    let tx = conn.unchecked_transaction().expect("begin");
    {
        let mut stmt = tx
            .prepare_cached("UPDATE sr_index SET v = ?2, ver = ver + 1 WHERE k = ?1")
            .expect("prepare");
        for (k, v) in &updated {
            stmt.execute(rusqlite::params![k, v]).expect("update");
        }
    }
    tx.commit().expect("commit");
    page.len() as u64
}

fn run_child(side: &str, db: &Path, kek: &RawKek) -> ChildResult {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            ROTATE_CHILD_ARG,
            side,
            db.to_str().expect("utf-8 path"),
            &hex(kek.expose_secret()),
            &ROTATE_BATCH.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rotation child");
    let out = child.stdout.take().expect("stdout");
    let mut result = None;
    for line in std::io::BufReader::new(out).lines() {
        let line = line.expect("read child");
        if let Some(rest) = line.strip_prefix("@result ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            result = Some(ChildResult {
                seconds: f[0].parse().expect("seconds"),
                peak_rss: f[1].parse().expect("rss"),
                rows: f[2].parse().expect("rows"),
            });
        }
    }
    assert!(child.wait().expect("wait").success(), "{side} child failed");
    result.expect("the child reported")
}

fn copy_sqlite(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy database");
    for suffix in ["-wal", "-shm"] {
        let mut f = from.as_os_str().to_owned();
        f.push(suffix);
        let mut t = to.as_os_str().to_owned();
        t.push(suffix);
        if Path::new(&f).exists() {
            std::fs::copy(&f, &t).expect("copy wal");
        }
    }
}

/// `vault/sqlite/rotate/<n>`: both sides in fresh child processes on identical copies.
pub fn rotation_case(n: u64) -> Ratio {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("vault.db");
    let copy = dir.path().join("raw.db");
    let load = Instant::now();
    let kek = populated_vault(&db, n, ROTATE_VALUE_SIZE);
    let load_s = load.elapsed().as_secs_f64();
    copy_sqlite(&db, &copy);
    let s = run_child("strongroom", &db, &kek);
    let r = run_child("raw", &copy, &kek);
    assert_eq!(s.rows, n, "strongroom rewrapped every record");
    assert_eq!(r.rows, n, "the raw floor rewrapped every record");
    // Spot check: the rotated vault still opens its records, under the new epoch.
    let vault = Vault::open(open_sqlite(&db))
        .expect("open")
        .unlock(&kek)
        .expect("unlock");
    for i in [0, n / 2, n - 1] {
        let got = vault
            .get(BULK_NAMESPACE, &secret_name(i))
            .expect("get after rotation");
        assert_eq!(got.expose_secret(), secret_value(i, ROTATE_VALUE_SIZE));
        assert_eq!(got.meta().epoch, vault.epoch());
    }
    let mib = |b: u64| format!("{:.1}", b as f64 / f64::from(1 << 20));
    Ratio::new(
        format!("vault/sqlite/rotate/{n}"),
        "rusqlite-scan+xchacha-rewrap+update",
        n as f64 / s.seconds,
        n as f64 / r.seconds,
        Some(0.6),
    )
    .with("records", n.to_string())
    .with("seconds", format!("{:.3}", s.seconds))
    .with("raw_seconds", format!("{:.3}", r.seconds))
    .with("peak_rss_mib", mib(s.peak_rss))
    .with("raw_peak_rss_mib", mib(r.peak_rss))
    .with("rss_target_mib", "64")
    .with("meets_rss_target", (s.peak_rss <= 64 << 20).to_string())
    .with("batch", ROTATE_BATCH.to_string())
    .with("populate_seconds", format!("{load_s:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_loaded_records_read_back_through_the_vault() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v.db");
        let kek = populated_vault(&db, 120, 40);
        let vault = Vault::open(open_sqlite(&db)).unwrap().unlock(&kek).unwrap();
        for i in 0..120 {
            let s = vault.get(BULK_NAMESPACE, &secret_name(i)).unwrap();
            assert_eq!(s.expose_secret(), secret_value(i, 40));
            assert_eq!(s.meta().version, 1);
            assert_eq!(s.meta().updated_by, vault.member_id());
        }
        let listed = vault.list(BULK_NAMESPACE).unwrap();
        assert_eq!(listed.len(), 120);
        assert_eq!(listed[7].name, secret_name(7));
        assert_eq!(
            vault
                .history(BULK_NAMESPACE, &secret_name(3))
                .unwrap()
                .len(),
            1
        );
        // A put over a loaded secret makes version 2; the whole vault checks out.
        assert_eq!(
            vault
                .put(BULK_NAMESPACE, &secret_name(5), b"new")
                .unwrap()
                .version,
            2
        );
        let doctor = vault
            .doctor(
                strongroom::DoctorOptions::default()
                    .with_full(true)
                    .with_sample(0),
            )
            .unwrap();
        assert!(
            doctor.worst() <= strongroom::Level::Warn,
            "{:?}",
            doctor.findings
        );
        assert_eq!(vault.status().unwrap().secrets, 120);
    }

    #[test]
    fn raw_rotation_rewraps_every_data_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("v.db");
        let kek = populated_vault(&db, 55, 16);
        let (_, rows) = raw_rotation(&db, &kek, 10);
        assert_eq!(rows, 55);
        // The epoch field moved on every row.
        let conn = raw_connection(&db);
        let moved: i64 = conn
            .query_row(
                "SELECT count(*) FROM sr_index WHERE substr(v, 45, 4) = x'00000002'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(moved, 55);
    }
}
