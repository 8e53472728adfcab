//! Writers keep writing while the vault key rotates, on one SQLite file: threads sharing a
//! handle, threads with their own handles (their own unlock and connection pool), and
//! separate processes. Each writer owns its secrets, so "the last write" of each is well
//! defined: at the end every secret holds its writer's last value at a version equal to
//! the number of successful puts (no lost update), every record decrypts, and nothing is
//! left under an older epoch.
//!
//! The process variant re-executes this test binary: with `STRONGROOM_CONC_ROLE` set, the
//! `concurrency_worker` test is a writer or the rotator.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use strongroom::recovery::RawKek;
use strongroom::store::Store;
use strongroom::{Action, CreateOptions, Epoch, RotateOptions, Vault};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

const ROLE_ENV: &str = "STRONGROOM_CONC_ROLE";
const DB_ENV: &str = "STRONGROOM_CONC_DB";
const KEK_ENV: &str = "STRONGROOM_CONC_KEK";
const STOP_ENV: &str = "STRONGROOM_CONC_STOP";

/// Records that make each rotation last long enough to overlap the writers.
const FILLER: usize = 1500;
/// Secrets per writer.
const NAMES: usize = 12;
/// Overwrites of each secret per writer.
const ROUNDS: usize = 10;
/// Rotations run while the writers write.
const ROTATIONS: usize = 3;
const BATCH: usize = 25;
/// The longest a writer process writes if never told to stop.
const WORKER_DEADLINE: std::time::Duration = std::time::Duration::from_mins(5);

fn open_store(path: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path, SqliteOptions::default()).unwrap())
}

/// Opens and unlocks, retrying what the vault calls retryable (a busy store), as an
/// application starting next to busy writers would.
fn unlock(path: &Path, kek: &RawKek) -> Vault {
    let mut attempts = 0;
    loop {
        match Vault::open(open_store(path)).and_then(|v| v.unlock(kek)) {
            Ok(vault) => return vault,
            Err(e) if e.is_retryable() && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("unlock failed after {attempts} retries: {e}"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn value(writer: &str, i: usize, round: usize) -> Vec<u8> {
    format!("{writer}/{i}/{round}/{}", "w".repeat((i * 13 + round) % 50)).into_bytes()
}

/// A new vault with filler records; returns its KEK.
fn make_vault(path: &Path) -> RawKek {
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(open_store(path), &kek, &CreateOptions::default()).unwrap();
    for i in 0..FILLER {
        vault
            .put(
                "filler",
                &format!("f{i:05}"),
                format!("filler {i}").as_bytes(),
            )
            .unwrap();
    }
    kek
}

/// What a writer did: successful puts per secret, and the epochs its puts landed in.
struct Written {
    writer: String,
    successes: Vec<u64>,
    epochs: std::collections::BTreeSet<Epoch>,
}

/// Writes rounds of versions of each of `writer`'s secrets (at least `ROUNDS`, and on
/// while `keep_going` says so), counting successful puts. A put does its own conflict
/// retries, so none may fail here. `started` runs after the first round.
fn write_all(
    vault: &Vault,
    writer: &str,
    started: &dyn Fn(),
    keep_going: &dyn Fn() -> bool,
) -> Written {
    let ns = format!("writers/{writer}");
    let mut successes = vec![0u64; NAMES];
    let mut epochs = std::collections::BTreeSet::new();
    let mut round = 0;
    while round < ROUNDS || keep_going() {
        for (i, count) in successes.iter_mut().enumerate() {
            match vault.put(&ns, &format!("n{i:02}"), &value(writer, i, round)) {
                Ok(meta) => {
                    *count += 1;
                    assert_eq!(meta.version, *count, "{writer}/{i}: version skipped");
                    epochs.insert(meta.epoch);
                }
                Err(e) => panic!("{writer}: put {i} round {round} failed: {e}"),
            }
        }
        if round == 0 {
            started();
        }
        round += 1;
    }
    Written {
        writer: writer.to_owned(),
        successes,
        epochs,
    }
}

fn rotate_n(vault: &Vault) -> Vec<Epoch> {
    (0..ROTATIONS)
        .map(|_| {
            vault
                .rotate_vault_key_with(RotateOptions::default().with_batch_size(BATCH), &mut |_| {})
                .unwrap()
                .epoch
        })
        .collect()
}

/// The end state: last values, versions = successes, everything under the current epoch,
/// audit entries = puts.
fn check_end(path: &Path, kek: &RawKek, written: &[Written], rotations: usize) {
    let vault = unlock(path, kek);
    let epoch = vault.epoch();
    assert_eq!(
        epoch,
        Epoch(1 + rotations as u32),
        "every rotation took effect"
    );
    assert_eq!(vault.min_epoch(), epoch);
    assert!(vault.pending_rewrap(epoch).unwrap().is_empty());
    assert_eq!(vault.interrupted_rotation().unwrap(), None);
    let mut total = 0;
    for w in written {
        let ns = format!("writers/{}", w.writer);
        for (i, &n) in w.successes.iter().enumerate() {
            total += n;
            let s = vault.get(&ns, &format!("n{i:02}")).unwrap();
            assert_eq!(s.meta().version, n, "{}/{i}: lost update", w.writer);
            assert_eq!(
                s.expose_secret(),
                value(&w.writer, i, n as usize - 1),
                "{}/{i}: not the last value written",
                w.writer
            );
            assert_eq!(s.meta().epoch, epoch);
        }
        assert_eq!(vault.list(&ns).unwrap().len(), NAMES);
    }
    for i in (0..FILLER).step_by(97) {
        assert_eq!(
            vault
                .get("filler", &format!("f{i:05}"))
                .unwrap()
                .expose_secret(),
            format!("filler {i}").as_bytes()
        );
    }
    let doctor = vault
        .doctor(
            strongroom::DoctorOptions::default()
                .with_full(true)
                .with_sample(0),
        )
        .unwrap();
    assert!(
        doctor
            .findings
            .iter()
            .any(|f| f.check == "decrypt" && f.level == strongroom::Level::Ok),
        "{doctor:?}"
    );
    let audit = vault.audit_list(0, 1_000_000).unwrap();
    let puts = audit.iter().filter(|e| e.action == Action::Put).count() as u64;
    assert_eq!(
        puts,
        FILLER as u64 + total,
        "one audit entry per successful put"
    );
    let finishes = audit
        .iter()
        .filter(|e| e.action == Action::RotateFinish)
        .count();
    assert_eq!(finishes, rotations);
    vault.audit_verify().unwrap();
}

#[test]
fn threads_write_while_the_vault_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threads.db");
    let kek = make_vault(&path);
    let shared = unlock(&path, &kek);
    let started = AtomicUsize::new(0);
    let rotated = AtomicBool::new(false);
    let written: Vec<Written> = std::thread::scope(|s| {
        let rotator = s.spawn(|| {
            // Rotate only once every writer is writing; they go on until it is done.
            while started.load(Ordering::SeqCst) < 4 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let epochs = rotate_n(&shared);
            rotated.store(true, Ordering::SeqCst);
            epochs
        });
        let mut writers = Vec::new();
        // Two threads on the rotator's own handle, two with their own unlock and store.
        for w in 0..4 {
            let handle = if w < 2 {
                shared.clone()
            } else {
                unlock(&path, &kek)
            };
            let (started, rotated) = (&started, &rotated);
            writers.push(s.spawn(move || {
                write_all(
                    &handle,
                    &format!("t{w}"),
                    &|| {
                        started.fetch_add(1, Ordering::SeqCst);
                    },
                    &|| !rotated.load(Ordering::SeqCst),
                )
            }));
        }
        let epochs = rotator.join().unwrap();
        assert_eq!(epochs, [Epoch(2), Epoch(3), Epoch(4)]);
        writers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for w in &written {
        // Written before the first rotation and after the last one.
        assert!(
            w.epochs.contains(&Epoch(1)) && w.epochs.contains(&Epoch(4)),
            "{}: {:?}",
            w.writer,
            w.epochs
        );
    }
    check_end(&path, &kek, &written, ROTATIONS);
}

#[test]
fn unlocks_and_reads_succeed_while_the_vault_key_rotates() {
    // Fresh handles (a process starting, a pool opening connections) unlock and read while
    // rotations start new epochs and retire old ones: no read may look like tampering.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unlocks.db");
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(open_store(&path), &kek, &CreateOptions::default()).unwrap();
    for i in 0..40 {
        vault
            .put("app", &format!("s{i:02}"), format!("v{i}").as_bytes())
            .unwrap();
    }
    let rotations = 40;
    let done = AtomicBool::new(false);
    let (unlocks, reads) = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..rotations {
                vault
                    .rotate_vault_key_with(RotateOptions::default().with_batch_size(8), &mut |_| {})
                    .unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let (mut unlocks, mut reads) = (0u32, 0u32);
                    while !done.load(Ordering::SeqCst) || unlocks == 0 {
                        let handle = unlock(&path, &kek);
                        unlocks += 1;
                        for i in (0..40).step_by(7) {
                            let got = handle.get("app", &format!("s{i:02}")).unwrap();
                            assert_eq!(got.expose_secret(), format!("v{i}").as_bytes());
                            reads += 1;
                        }
                    }
                    (unlocks, reads)
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |(u, r), (a, b)| (u + a, r + b))
    });
    assert!(unlocks > 0 && reads > 0);
    let end = unlock(&path, &kek);
    assert_eq!(end.epoch(), Epoch(1 + rotations));
    assert!(end.pending_rewrap(end.epoch()).unwrap().is_empty());
    end.audit_verify().unwrap();
}

// ---------------------------------------------------------------------------------------
// processes

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A writer or the rotator in a child process, or (run directly) one of each in-process.
#[test]
fn concurrency_worker() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let path = PathBuf::from(std::env::var(DB_ENV).unwrap());
        let kek = RawKek::from_hex(&std::env::var(KEK_ENV).unwrap()).unwrap();
        let vault = unlock(&path, &kek);
        if role == "rotator" {
            for e in rotate_n(&vault) {
                say(&format!("@rotated {}", e.0));
            }
        } else {
            let stop = PathBuf::from(std::env::var(STOP_ENV).unwrap());
            // The deadline stops a writer whose test died before telling it to.
            let deadline = std::time::Instant::now() + WORKER_DEADLINE;
            let keep_going = || !stop.exists() && std::time::Instant::now() < deadline;
            let w = write_all(&vault, &role, &|| say("@started"), &keep_going);
            for (i, n) in w.successes.iter().enumerate() {
                say(&format!("@count {i} {n}"));
            }
            for e in &w.epochs {
                say(&format!("@epoch {}", e.0));
            }
        }
        say("@done");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("direct.db");
    let kek = make_vault(&path);
    let vault = unlock(&path, &kek);
    let w = write_all(&vault, "direct", &|| {}, &|| false);
    assert_eq!(rotate_n(&vault).len(), ROTATIONS);
    check_end(&path, &kek, &[w], ROTATIONS);
}

#[test]
fn processes_write_while_a_third_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("processes.db");
    let stop = dir.path().join("stop");
    let kek = make_vault(&path);
    let _stop_on_panic = StopOnDrop(&stop);
    let spawn = |role: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "concurrency_worker",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(ROLE_ENV, role)
            .env(DB_ENV, &path)
            .env(KEK_ENV, hex(kek.expose_secret()))
            .env(STOP_ENV, &stop)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn worker process")
    };
    // The writers start; once both write, the rotator runs; when it is done, the writers
    // are told to stop (after at least ROUNDS rounds).
    let mut writers = Vec::new();
    for role in ["p0", "p1"] {
        let mut child = spawn(role);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .by_ref()
            .map(Result::unwrap)
            .find_map(|l| protocol(&l).map(str::to_owned));
        assert_eq!(first.as_deref(), Some("@started"), "{role} did not start");
        writers.push((role, child, lines));
    }
    let mut rotator = spawn("rotator");
    let mut rotated = Vec::new();
    for line in BufReader::new(rotator.stdout.take().unwrap()).lines() {
        if let Some(["@rotated", e]) = protocol(&line.unwrap())
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .as_deref()
        {
            rotated.push(e.parse::<u32>().unwrap());
        }
    }
    assert!(rotator.wait().unwrap().success(), "the rotator failed");
    assert_eq!(rotated, [2, 3, 4]);
    std::fs::write(&stop, b"").unwrap();
    let mut written = Vec::new();
    for (role, mut child, lines) in writers {
        let mut successes = vec![0u64; NAMES];
        let mut epochs = std::collections::BTreeSet::new();
        let mut done = false;
        for line in lines {
            let line = line.unwrap();
            let parts: Vec<&str> = protocol(&line)
                .map(|l| l.split_whitespace().collect())
                .unwrap_or_default();
            match parts.as_slice() {
                ["@count", i, n] => successes[i.parse::<usize>().unwrap()] = n.parse().unwrap(),
                ["@epoch", e] => {
                    epochs.insert(Epoch(e.parse().unwrap()));
                }
                ["@done"] => done = true,
                _ => {}
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success() && done, "{role} failed: {status}");
        // Written before the rotations started and after they ended.
        assert!(
            epochs.contains(&Epoch(1)) && epochs.contains(&Epoch(4)),
            "{role}: {epochs:?}"
        );
        written.push(Written {
            writer: role.to_owned(),
            successes,
            epochs,
        });
    }
    check_end(&path, &kek, &written, ROTATIONS);
}

/// Writes the stop file when dropped, so the writer processes stop when the test ends,
/// a failed assertion included.
struct StopOnDrop<'a>(&'a Path);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0, b"");
    }
}

/// The protocol part of a child's output line (libtest may print before it on the line).
fn protocol(line: &str) -> Option<&str> {
    line.find('@').map(|p| line[p..].trim())
}

#[test]
fn handles_that_missed_changes_rotate_and_write() {
    // Two handles on one store; each rotates, writes and reads after the other changed
    // the vault, without an explicit refresh.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.db");
    let kek = RawKek::generate().unwrap();
    let (a, _) = Vault::create(open_store(&path), &kek, &CreateOptions::default()).unwrap();
    a.put("ns", "x", b"1").unwrap();
    let b = unlock(&path, &kek);
    for round in 0..3u32 {
        a.rotate_vault_key().unwrap();
        assert_eq!(
            b.get("ns", "x").unwrap().expose_secret(),
            format!("{}", 1 + 2 * round).as_bytes()
        );
        b.put("ns", "x", format!("{}", 2 + 2 * round).as_bytes())
            .unwrap();
        b.rotate_vault_key().unwrap();
        a.put("ns", "x", format!("{}", 3 + 2 * round).as_bytes())
            .unwrap();
        assert_eq!(a.epoch(), Epoch(3 + 2 * round));
    }
    let end = unlock(&path, &kek);
    assert_eq!(end.get("ns", "x").unwrap().expose_secret(), b"7");
    assert_eq!(end.get("ns", "x").unwrap().meta().version, 7);
    assert!(end.pending_rewrap(end.epoch()).unwrap().is_empty());
    end.audit_verify().unwrap();
}
