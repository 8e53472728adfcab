//! `kill -9` at random points of a vault-key rotation (every other one also replacing the
//! metadata key, so that index rows move), of a stream of puts and of a snapshot restore,
//! on a SQLite vault: afterwards the vault opens, every record opens with its
//! exact value, the state is the old one, the new one or a resumable rotation (never a
//! mix), and a re-run completes.
//!
//! The test binary re-executes itself: with `STRONGROOM_CRASH_WORKER` set, the
//! `crash_worker` test is the child process that works until it is killed
//! (`std::process::Child::kill` sends SIGKILL). `STRONGROOM_CRASH_TRIALS` sets the number
//! of kills per scenario (default 50), `STRONGROOM_CRASH_SEED` replays a run.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom::recovery::RawKek;
use strongroom::store::{Store, Table};
use strongroom::{
    Action, CreateOptions, Epoch, RestoreOptions, RotateOptions, Vault, VaultError,
    restore_snapshot,
};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

#[path = "../../strongroom-envelope/tests/reference/mod.rs"]
mod reference;

const WORKER_ENV: &str = "STRONGROOM_CRASH_WORKER";
const DB_ENV: &str = "STRONGROOM_CRASH_DB";
const KEK_ENV: &str = "STRONGROOM_CRASH_KEK";
const SNAPSHOT_ENV: &str = "STRONGROOM_CRASH_SNAPSHOT";

/// Records in the rotation template.
const RECORDS: usize = 2000;
/// Rows per rotation batch (so a rotation is ~100 commits).
const BATCH: usize = 20;
/// Distinct secrets of the put stream.
const PUT_NAMES: u64 = 40;
/// History kept per secret in the put vault (small, so pruning runs too).
const PUT_HISTORY: u32 = 3;

// ---------------------------------------------------------------------------------------
// helpers

fn trials() -> usize {
    std::env::var("STRONGROOM_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Self {
        let seed = std::env::var("STRONGROOM_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("crash test seed: STRONGROOM_CRASH_SEED={seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn open_store(path: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path, SqliteOptions::default()).unwrap())
}

fn unlock(path: &Path, kek: &RawKek) -> Vault {
    Vault::open(open_store(path)).unwrap().unlock(kek).unwrap()
}

fn record_name(i: usize) -> String {
    format!("r{i:05}")
}

fn record_value(i: usize) -> Vec<u8> {
    format!("value of record {i} / {}", "z".repeat(i % 61)).into_bytes()
}

fn put_name(i: u64) -> String {
    format!("p{i:03}")
}

/// The value the put stream writes as version `version` of secret `i`.
fn put_value(i: u64, version: u64) -> Vec<u8> {
    format!(
        "secret {i} version {version} {}",
        "v".repeat((i * 7 + version) as usize % 97)
    )
    .into_bytes()
}

/// A copy of `template` at `dest` (consistent while nobody writes; mode 0600).
fn copy_db(template: &Path, dest: &Path) {
    let store = SqliteStore::open(template, SqliteOptions::default()).unwrap();
    store.backup_to(dest).unwrap();
}

/// Spawns this test binary as a worker child of `mode` on `db`.
fn spawn_worker(mode: &str, db: &Path, kek: &RawKek) -> Child {
    spawn_worker_with(mode, db, kek, None)
}

fn spawn_worker_with(mode: &str, db: &Path, kek: &RawKek, snapshot: Option<&Path>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    if let Some(snap) = snapshot {
        cmd.env(SNAPSHOT_ENV, snap);
    }
    cmd.args(["crash_worker", "--exact", "--test-threads=1", "--nocapture"])
        .env(WORKER_ENV, mode)
        .env(DB_ENV, db)
        .env(KEK_ENV, hex(kek.expose_secret()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker process")
}

/// Reads the child's protocol lines (`@…`) until `stop` says so or the child ends; returns
/// whether the child ended by itself (its last line was `@done`).
fn read_until(child: &mut Child, mut stop: impl FnMut(&str) -> bool) -> bool {
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    let give_up = Instant::now() + Duration::from_mins(2);
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read worker output");
        assert!(Instant::now() < give_up, "worker made no progress");
        if n == 0 {
            return false;
        }
        // libtest may print before the protocol on the same line.
        let Some(at) = line.find('@') else {
            continue;
        };
        let l = line[at..].trim();
        if l == "@done" {
            return true;
        }
        if stop(l) {
            return false;
        }
    }
}

/// Kills `child` (SIGKILL) after a random pause of up to `max_us` microseconds.
fn kill_after(child: &mut Child, rng: &mut Rng, max_us: u64) {
    let pause = rng.below(max_us + 1);
    if pause > 0 {
        std::thread::sleep(Duration::from_micros(pause));
    }
    child.kill().expect("kill worker");
    child.wait().expect("reap worker");
}

// ---------------------------------------------------------------------------------------
// the child

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Child: rotates the vault key with small batches, reporting each batch; with
/// `new_metadata_key`, also replaces the metadata key (every index row moves).
fn worker_rotate(vault: &Vault, new_metadata_key: bool) {
    say("@ready");
    let options = RotateOptions::default()
        .with_batch_size(BATCH)
        .with_new_metadata_key(new_metadata_key);
    vault
        .rotate_vault_key_with(options, &mut |p| {
            say(&format!("@progress {}", p.done));
        })
        .unwrap();
}

/// Child: the put stream, continuing after what is stored. Put number `j` writes secret
/// `j % PUT_NAMES` at version `j / PUT_NAMES + 1`.
fn worker_puts(vault: &Vault, limit: u64) {
    let start: u64 = (0..PUT_NAMES)
        .map(|i| match vault.get("crash/puts", &put_name(i)) {
            Ok(s) => s.meta().version,
            Err(VaultError::NotFound { .. }) => 0,
            Err(e) => panic!("{e}"),
        })
        .sum();
    say("@ready");
    for j in start..start + limit {
        let (i, version) = (j % PUT_NAMES, j / PUT_NAMES + 1);
        let meta = vault
            .put("crash/puts", &put_name(i), &put_value(i, version))
            .unwrap();
        assert_eq!(meta.version, version);
        say(&format!("@put {j}"));
    }
}

/// Child: restores the snapshot over the live vault.
fn worker_restore(db: &Path, snapshot: &Path, kek: &RawKek) {
    say("@ready");
    restore_snapshot(&open_store(db), snapshot, kek, &RestoreOptions::default()).unwrap();
}

/// The child process, or (run directly) a short uninterrupted run of each worker.
#[test]
fn crash_worker() {
    if let Ok(mode) = std::env::var(WORKER_ENV) {
        let db = PathBuf::from(std::env::var(DB_ENV).unwrap());
        let kek = RawKek::from_hex(&std::env::var(KEK_ENV).unwrap()).unwrap();
        match mode.as_str() {
            "rotate" => worker_rotate(&unlock(&db, &kek), false),
            "rotate-metadata-key" => worker_rotate(&unlock(&db, &kek), true),
            "puts" => worker_puts(&unlock(&db, &kek), 1_000_000),
            "restore" => {
                let snapshot = PathBuf::from(std::env::var(SNAPSHOT_ENV).unwrap());
                worker_restore(&db, &snapshot, &kek);
            }
            other => panic!("unknown worker mode {other}"),
        }
        say("@done");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kek = RawKek::generate().unwrap();
    let db = dir.path().join("direct.db");
    let (vault, _) = Vault::create(open_store(&db), &kek, &put_options()).unwrap();
    for i in 0..50 {
        vault
            .put("crash/records", &record_name(i), &record_value(i))
            .unwrap();
    }
    worker_rotate(&vault, true);
    check_records(&vault, 50);
    let audit_before = vault.audit_list(0, 10_000).unwrap().len();
    worker_puts(&vault, 2 * PUT_NAMES + 5);
    drop(vault);
    let vault = unlock(&db, &kek);
    check_records(&vault, 50);
    assert_eq!(
        check_put_prefix(&vault, audit_before, "direct run"),
        2 * PUT_NAMES + 5
    );
    assert_eq!(vault.epoch(), Epoch(2));
    // Snapshot, change, restore: back to the snapshot's state.
    let snap = dir.path().join("direct.snapshot");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    vault.delete("crash/records", &record_name(0)).unwrap();
    drop(vault);
    worker_restore(&db, &snap, &kek);
    check_records(&unlock(&db, &kek), 50);
}

// ---------------------------------------------------------------------------------------
// checks

/// Every record of the rotation template opens with its exact value.
fn check_records(vault: &Vault, n: usize) {
    for i in 0..n {
        let s = vault
            .get("crash/records", &record_name(i))
            .unwrap_or_else(|e| panic!("record {i} does not open after the kill: {e}"));
        assert_eq!(s.expose_secret(), record_value(i), "record {i} changed");
    }
    assert_eq!(vault.list("crash/records").unwrap().len(), n);
}

/// The rotation state right after a kill: not started, resumable, or complete.
fn check_rotation_state(vault: &Vault, trial: usize) -> &'static str {
    let epoch = vault.epoch();
    let pending = vault.pending_rewrap(epoch).unwrap();
    match vault.interrupted_rotation().unwrap() {
        Some(target) => {
            assert_eq!(
                target, epoch,
                "trial {trial}: the job targets the current epoch"
            );
            assert!(epoch > Epoch(1));
            "interrupted"
        }
        None if epoch == Epoch(1) => {
            assert!(pending.is_empty());
            assert_eq!(vault.min_epoch(), Epoch(1));
            "not started"
        }
        None => {
            assert!(
                pending.is_empty(),
                "trial {trial}: no job row but {} versions under older epochs",
                pending.len()
            );
            assert_eq!(vault.min_epoch(), epoch, "trial {trial}");
            "complete"
        }
    }
}

/// After a re-run: one epoch, nothing pending, no job, audit intact.
fn check_rotated(vault: &Vault, trial: usize) {
    let epoch = vault.epoch();
    assert!(epoch > Epoch(1));
    assert!(
        vault.pending_rewrap(epoch).unwrap().is_empty(),
        "trial {trial}"
    );
    assert_eq!(vault.interrupted_rotation().unwrap(), None);
    assert_eq!(vault.min_epoch(), epoch);
    let st = vault.status().unwrap();
    assert_eq!(
        (st.pending_rewrap, st.interrupted_rotation),
        (0, None),
        "trial {trial}"
    );
    vault.audit_verify().unwrap();
}

/// The put stream's stored state is exactly a prefix of the stream; returns its length.
fn check_put_prefix(vault: &Vault, audit_before: usize, ctx: &str) -> u64 {
    let heads: Vec<u64> = (0..PUT_NAMES)
        .map(|i| match vault.get("crash/puts", &put_name(i)) {
            Ok(s) => {
                let v = s.meta().version;
                assert_eq!(
                    s.expose_secret(),
                    put_value(i, v),
                    "{ctx}: secret {i} holds a value other than its version {v}"
                );
                v
            }
            Err(VaultError::NotFound { .. }) => 0,
            Err(e) => panic!("{ctx}: secret {i} does not open: {e}"),
        })
        .collect();
    let applied: u64 = heads.iter().sum();
    for (i, &v) in heads.iter().enumerate() {
        let i = i as u64;
        // Put j touches secret j % N: after `applied` puts, secret i has
        // ceil((applied - i) / N) versions.
        let want = if applied > i {
            (applied - i).div_ceil(PUT_NAMES)
        } else {
            0
        };
        assert_eq!(
            v, want,
            "{ctx}: secret {i} at version {v}, but {applied} puts leave it at {want}: not a prefix"
        );
        if v > 0 {
            let history = vault.history("crash/puts", &put_name(i)).unwrap();
            let versions: Vec<u64> = history.iter().map(|m| m.version).collect();
            let keep = u64::from(PUT_HISTORY).min(v);
            let expected: Vec<u64> = (v + 1 - keep..=v).collect();
            assert_eq!(versions, expected, "{ctx}: secret {i} history");
            for old in &expected {
                let s = vault.get_version("crash/puts", &put_name(i), *old).unwrap();
                assert_eq!(s.expose_secret(), put_value(i, *old));
            }
        }
    }
    // One audit entry per applied put, committed with it.
    let audit = vault.audit_list(0, 1_000_000).unwrap();
    let puts = audit[audit_before..]
        .iter()
        .filter(|e| e.action == Action::Put)
        .count() as u64;
    assert_eq!(puts, applied, "{ctx}: audit entries vs applied puts");
    vault.audit_verify().unwrap();
    applied
}

fn put_options() -> CreateOptions {
    CreateOptions::default().with_history(PUT_HISTORY)
}

// ---------------------------------------------------------------------------------------
// the scenarios

#[test]
fn kill_during_rotation_leaves_a_resumable_consistent_vault() {
    let dir = tempfile::tempdir().unwrap();
    let kek = RawKek::generate().unwrap();
    let template = dir.path().join("template.db");
    {
        let (vault, _) =
            Vault::create(open_store(&template), &kek, &CreateOptions::default()).unwrap();
        for i in 0..RECORDS {
            vault
                .put("crash/records", &record_name(i), &record_value(i))
                .unwrap();
        }
    }
    let batches = (RECORDS / BATCH) as u64;
    let mut rng = Rng::from_env();
    let mut states = std::collections::BTreeMap::<&str, usize>::new();
    for trial in 0..trials() {
        let db = dir.path().join(format!("trial{trial}.db"));
        copy_db(&template, &db);
        // One or two kills before looking: the second child resumes the first one's job.
        let kills = 1 + rng.below(2);
        // Every other trial also replaces the metadata key: the index rows move too.
        let mode = if trial % 2 == 0 {
            "rotate"
        } else {
            "rotate-metadata-key"
        };
        for _ in 0..kills {
            let mut child = spawn_worker(mode, &db, &kek);
            // Kill right after start-up (rekey, job row) or after k committed batches.
            let k = rng.below(batches * 3 / 4);
            let mut seen = 0;
            let finished = read_until(&mut child, |l| {
                if l == "@ready" {
                    return k == 0;
                }
                seen += 1;
                seen >= k
            });
            if finished {
                child.wait().unwrap();
            } else {
                kill_after(&mut child, &mut rng, 3000);
            }
        }
        let vault = unlock(&db, &kek);
        *states
            .entry(check_rotation_state(&vault, trial))
            .or_default() += 1;
        check_records(&vault, RECORDS);
        let was = vault.interrupted_rotation().unwrap();
        let report = vault
            .rotate_vault_key_with(RotateOptions::default().with_batch_size(500), &mut |_| {})
            .unwrap();
        if let Some(target) = was {
            assert!(
                report.resumed,
                "trial {trial}: the interrupted job was resumed"
            );
            assert_eq!(report.epoch, target);
        }
        check_rotated(&vault, trial);
        check_records(&vault, RECORDS);
        // A fresh process sees the same.
        drop(vault);
        let again = unlock(&db, &kek);
        check_rotated(&again, trial);
        let sample = rng.below(RECORDS as u64) as usize;
        assert_eq!(
            again
                .get("crash/records", &record_name(sample))
                .unwrap()
                .expose_secret(),
            record_value(sample)
        );
        drop(again);
        std::fs::remove_file(&db).unwrap();
    }
    eprintln!("rotation states after the kills: {states:?}");
    assert!(
        states.get("interrupted").copied().unwrap_or(0) > 0,
        "no kill landed inside a rotation: {states:?}"
    );
}

/// Rewrites the vault at `db` as releases before format 2 wrote it: index entries of
/// format 1 (record id, head version, creation time) with every version, the head
/// included, in body and data-key rows, and every wrapped data key in format 1 (no body
/// digest). Done with the envelope's reference implementation and the published layouts,
/// as a user's old vault would be found by this release.
fn downgrade_to_format_1(db: &Path, kek: &RawKek) {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use strongroom::store::{Batch, Expect, ScanRange, scan_all};
    let store = open_store(db);
    let vault = unlock(db, kek);
    let session = strongroom_sharing::unlock(
        &*store,
        vault.id(),
        None,
        kek,
        &mut strongroom::sharing::Pins::default(),
    )
    .unwrap();
    let raw = *session
        .key(vault.epoch())
        .unwrap()
        .expose_secret()
        .expose_secret();
    // A format-2 wrapped key (122 bytes) for record version `key`, as a format-1 one.
    let to_v1 = |key: &[u8], wrapped: &[u8]| -> Vec<u8> {
        assert_eq!(wrapped[0], 2);
        let ctx = reference::Ctx {
            vault: *vault.id().as_bytes(),
            record: key[..16].try_into().unwrap(),
            version: u64::from_be_bytes(key[16..].try_into().unwrap()),
        };
        let mut dek = reference::ref_unwrap(&raw, &ctx, wrapped);
        let mut v1 = vec![1u8, 1];
        v1.extend_from_slice(&wrapped[2..14]);
        let nonce = [0x5a; 24];
        let aad = reference::dek_aad(&v1, &ctx);
        let tag = XChaCha20Poly1305::new((&raw).into())
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut dek)
            .unwrap();
        v1.extend_from_slice(&nonce);
        v1.extend_from_slice(&dek);
        v1.extend_from_slice(&tag);
        v1
    };
    let mut b = Batch::new();
    for row in scan_all(&*store, Table::Deks, &ScanRange::all()).unwrap() {
        b.put(
            Table::Deks,
            row.key.clone(),
            to_v1(&row.key, &row.value),
            Expect::Version(row.version),
        );
    }
    // Index entry format 2: version (1) record (16) head (8) created (8) oldest (8)
    // placement (1: inline, 2: in a row) wrapped key (122) [body].
    for row in scan_all(&*store, Table::Index, &ScanRange::all()).unwrap() {
        let e = &row.value;
        assert_eq!(e[0], 2);
        let head_key = e[1..25].to_vec();
        let wrapped = &e[42..164];
        b.put(
            Table::Deks,
            head_key.clone(),
            to_v1(&head_key, wrapped),
            Expect::Absent,
        );
        if e[41] == 1 {
            b.put(Table::Bodies, head_key, e[164..].to_vec(), Expect::Absent);
        }
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&e[1..33]);
        b.put(
            Table::Index,
            row.key.clone(),
            v1,
            Expect::Version(row.version),
        );
    }
    store.commit(&b).unwrap();
}

/// The upgrade of format-1 data keys is a rotation: `kill -9` at random points leaves every
/// record readable, and a re-run finishes with every data key in format 2.
#[test]
fn kill_during_upgrade_from_format_1_leaves_a_resumable_consistent_vault() {
    let dir = tempfile::tempdir().unwrap();
    let kek = RawKek::generate().unwrap();
    let template = dir.path().join("template.db");
    let records = RECORDS / 4;
    {
        let (vault, _) =
            Vault::create(open_store(&template), &kek, &CreateOptions::default()).unwrap();
        // Two versions each: the upgrade rewrites the heads (index entries) and the older
        // versions' data keys.
        for i in 0..records {
            vault
                .put("crash/records", &record_name(i), b"an older value")
                .unwrap();
            vault
                .put("crash/records", &record_name(i), &record_value(i))
                .unwrap();
        }
    }
    downgrade_to_format_1(&template, &kek);
    assert_eq!(
        unlock(&template, &kek).status().unwrap().pending_rewrap,
        2 * records as u64
    );
    // The format bytes of the index entries, then of the wrapped data keys.
    let formats = |db: &Path| -> Vec<u8> {
        let store = open_store(db);
        [Table::Index, Table::Deks]
            .into_iter()
            .flat_map(|t| {
                strongroom::store::scan_all(&*store, t, &strongroom::store::ScanRange::all())
                    .unwrap()
                    .into_iter()
                    .map(|r| r.value[0])
            })
            .collect()
    };
    let batches = (records / BATCH) as u64;
    let mut rng = Rng::from_env();
    let mut mixed = 0;
    for trial in 0..trials() {
        let db = dir.path().join(format!("upgrade{trial}.db"));
        copy_db(&template, &db);
        let mut child = spawn_worker("rotate", &db, &kek);
        let k = rng.below(batches);
        let mut seen = 0;
        let finished = read_until(&mut child, |l| {
            if l == "@ready" {
                return k == 0;
            }
            seen += 1;
            seen >= k
        });
        if finished {
            child.wait().unwrap();
        } else {
            kill_after(&mut child, &mut rng, 3000);
        }
        let f = formats(&db);
        if f.contains(&1) && f.contains(&2) {
            mixed += 1;
        }
        let vault = unlock(&db, &kek);
        check_records(&vault, records);
        vault
            .rotate_vault_key_with(RotateOptions::default().with_batch_size(500), &mut |_| {})
            .unwrap();
        check_rotated(&vault, trial);
        check_records(&vault, records);
        assert!(formats(&db).iter().all(|&f| f == 2), "trial {trial}");
        drop(vault);
        std::fs::remove_file(&db).unwrap();
    }
    eprintln!("upgrade: {mixed} of {} kills landed mid-upgrade", trials());
    assert!(mixed > 0, "no kill landed inside the upgrade");
}

#[test]
fn kill_during_puts_leaves_whole_versions_only() {
    let dir = tempfile::tempdir().unwrap();
    let kek = RawKek::generate().unwrap();
    let db = dir.path().join("puts.db");
    let audit_before = {
        let (vault, _) = Vault::create(open_store(&db), &kek, &put_options()).unwrap();
        vault.audit_list(0, 1000).unwrap().len()
    };
    let mut rng = Rng::from_env();
    let mut applied = 0;
    // Every child continues the same stream on the same file: each kill lands on a
    // longer history, with pruning of old versions going on.
    for trial in 0..trials() {
        let mut child = spawn_worker("puts", &db, &kek);
        let k = 1 + rng.below(PUT_NAMES * 2);
        let mut seen = 0;
        let finished = read_until(&mut child, |l| {
            if l == "@ready" {
                return false;
            }
            seen += 1;
            seen >= k
        });
        assert!(!finished, "the put stream does not end by itself");
        kill_after(&mut child, &mut rng, 2000);
        let vault = unlock(&db, &kek);
        let now = check_put_prefix(&vault, audit_before, &format!("trial {trial}"));
        assert!(
            now >= applied + k,
            "trial {trial}: acknowledged puts were lost ({now} < {applied} + {k})"
        );
        applied = now;
        // Unlocks are audited too; the prefix check counts puts only.
    }
    // A writer after the crashes continues the stream normally.
    let vault = unlock(&db, &kek);
    let next = applied;
    let (i, version) = (next % PUT_NAMES, next / PUT_NAMES + 1);
    assert_eq!(
        vault
            .put("crash/puts", &put_name(i), &put_value(i, version))
            .unwrap()
            .version,
        version
    );
    assert_eq!(check_put_prefix(&vault, audit_before, "after"), applied + 1);
    let st = vault.status().unwrap();
    assert_eq!(st.secrets, PUT_NAMES.min(applied + 1));
    // Versions beyond the history were pruned in the same commits.
    let expected_rows: u64 = (0..PUT_NAMES)
        .map(|i| {
            let v = if applied + 1 > i {
                (applied + 1 - i).div_ceil(PUT_NAMES)
            } else {
                0
            };
            v.min(u64::from(PUT_HISTORY))
        })
        .sum();
    assert_eq!(st.versions, expected_rows);
    // Nothing half-written at the row level either: every older version has its body and
    // its data key in rows of their own (a head, small here, is whole in its index entry).
    let heads = PUT_NAMES.min(applied + 1);
    let expected_rows = expected_rows - heads;
    let store = open_store(&db);
    let count = |t: Table| {
        store
            .scan(t, &strongroom::store::ScanRange::all(), None, 10_000)
            .unwrap()
            .rows
            .len() as u64
    };
    assert_eq!(count(Table::Bodies), expected_rows);
    assert_eq!(count(Table::Deks), expected_rows);
    assert_eq!(count(Table::Index), st.secrets);
}

/// Which state a restore left: the live one before it, or the snapshot's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Restored {
    Before,
    Snapshot,
}

/// The snapshot holds `RESTORE_RECORDS` records with `record_value`; the live vault before
/// the restore holds them overwritten with `live_value`, plus extra ones.
const RESTORE_RECORDS: usize = 600;
const RESTORE_EXTRA: usize = 50;

fn live_value(i: usize) -> Vec<u8> {
    format!("live value {i}").into_bytes()
}

/// The vault is entirely in one of the two states; returns which.
fn check_restore_state(vault: &Vault, trial: usize) -> Restored {
    let state = match vault.get("crash/records", &record_name(0)) {
        Ok(s) if s.expose_secret() == record_value(0) => Restored::Snapshot,
        Ok(s) if s.expose_secret() == live_value(0) => Restored::Before,
        Ok(_) => panic!("trial {trial}: record 0 holds a third value"),
        Err(e) => panic!("trial {trial}: record 0 does not open: {e}"),
    };
    for i in 0..RESTORE_RECORDS {
        let s = vault
            .get("crash/records", &record_name(i))
            .unwrap_or_else(|e| panic!("trial {trial}: record {i}: {e}"));
        let want = match state {
            Restored::Snapshot => record_value(i),
            Restored::Before => live_value(i),
        };
        assert_eq!(s.expose_secret(), want, "trial {trial}: a mix ({state:?})");
    }
    let extra = vault.list("crash/extra").unwrap().len();
    assert_eq!(
        extra,
        match state {
            Restored::Snapshot => 0,
            Restored::Before => RESTORE_EXTRA,
        },
        "trial {trial}: a mix ({state:?})"
    );
    vault.audit_verify().unwrap();
    state
}

#[test]
fn kill_during_restore_leaves_the_old_or_the_restored_vault() {
    let dir = tempfile::tempdir().unwrap();
    let kek = RawKek::generate().unwrap();
    let template = dir.path().join("template.db");
    let snapshot = dir.path().join("vault.snapshot");
    {
        let (vault, _) =
            Vault::create(open_store(&template), &kek, &CreateOptions::default()).unwrap();
        for i in 0..RESTORE_RECORDS {
            vault
                .put("crash/records", &record_name(i), &record_value(i))
                .unwrap();
        }
        vault.snapshot_to(&snapshot, &mut |_| {}).unwrap();
        // The live vault moves on after the snapshot.
        for i in 0..RESTORE_RECORDS {
            vault
                .put("crash/records", &record_name(i), &live_value(i))
                .unwrap();
        }
        for i in 0..RESTORE_EXTRA {
            vault.put("crash/extra", &record_name(i), b"extra").unwrap();
        }
        vault.rotate_vault_key().unwrap();
    }
    // How long a whole restore takes in a child, from its `@ready` to its exit.
    let calibrate = dir.path().join("calibrate.db");
    copy_db(&template, &calibrate);
    let mut child = spawn_worker_with("restore", &calibrate, &kek, Some(&snapshot));
    let mut started = Instant::now();
    let finished = read_until(&mut child, |l| {
        if l == "@ready" {
            started = Instant::now();
        }
        false
    });
    let full = started.elapsed();
    assert!(finished && child.wait().unwrap().success());
    assert_eq!(
        check_restore_state(&unlock(&calibrate, &kek), 0),
        Restored::Snapshot
    );

    let mut rng = Rng::from_env();
    let mut states = std::collections::BTreeMap::<Restored, usize>::new();
    let mut killed = 0;
    for trial in 0..trials() {
        let db = dir.path().join(format!("restore{trial}.db"));
        copy_db(&template, &db);
        let mut child = spawn_worker_with("restore", &db, &kek, Some(&snapshot));
        let finished = read_until(&mut child, |l| l == "@ready");
        assert!(!finished);
        let max = full.as_micros() as u64 * 6 / 5;
        let pause = rng.below(max + 1);
        std::thread::sleep(Duration::from_micros(pause));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let vault = unlock(&db, &kek);
        *states
            .entry(check_restore_state(&vault, trial))
            .or_default() += 1;
        drop(vault);
        // A re-run of the restore completes.
        let report = restore_snapshot(
            &open_store(&db),
            &snapshot,
            &kek,
            &RestoreOptions::default(),
        )
        .unwrap();
        assert_eq!(
            check_restore_state(&report.vault, trial),
            Restored::Snapshot
        );
        assert!(
            report
                .vault
                .audit_list(0, 100_000)
                .unwrap()
                .iter()
                .any(|e| e.action == Action::Restore)
        );
        drop(report);
        std::fs::remove_file(&db).unwrap();
    }
    eprintln!(
        "restore states after the kills: {states:?} ({killed} of {} children killed while running)",
        trials()
    );
    assert!(killed > 0, "no kill landed inside a restore");
}
