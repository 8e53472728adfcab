//! Power cuts at every sync point of `init`, `put` (a new secret, a new version),
//! `rotate`, `snapshot` and `restore` (also of a snapshot older than the pinned
//! membership log), and of the pin saving that follows each: the vault
//! opens, nothing acknowledged is lost, an interrupted operation leaves the old or the
//! new state, and the pins never run ahead of the data.
//!
//! # How the sync points are seen
//!
//! The real `strongroom` binary runs the operations one after the other on a vault in a
//! watched directory, with `helpers/powercut.c` preloaded (`LD_PRELOAD`; the test builds
//! it with `cc`). The shim records every `fsync`/`fdatasync` of a file or directory under
//! the watched directory, in order: a copy of a synced file's bytes, or the entries of a
//! synced directory (name → file identity). The workspace forbids unsafe Rust, tests
//! included, so neither a SQLite test VFS nor syscall interposition can be written in
//! Rust here; a shim at the libc boundary also sees exactly what the shipped binary does,
//! SQLite's own syncs included (its bundled build calls `fsync` for `fdatasync`, and
//! syncs the directory when it creates a journal or a WAL file).
//!
//! # What a power cut leaves
//!
//! A cut right after sync point *k* leaves, strictly:
//!
//! - every regular file with the bytes it had at its last sync up to *k*; a file never
//!   synced is empty (every write after the last sync is dropped);
//! - every directory with the entries it had at its last sync up to *k*; a directory never
//!   synced has the entries it had before the run (a new one: none). So a new file's
//!   name, a rename or an unlink survives only once its directory is synced.
//!
//! Directories are named by path (nothing here renames or replaces one), files by inode,
//! birth time and inode generation (a rename keeps them; a reused inode number does not
//! fool them). What the model leaves out: a real disk may also keep *some* writes made
//! after a file's last sync (a torn or partial tail, in any order); those states are not
//! enumerated here, and surviving them is SQLite's part (checksummed WAL frames, a
//! rollback journal synced before the database is written).
//! `the_model_keeps_only_what_was_synced` checks the shim and the model together on plain
//! shell commands.
//!
//! # The checks at each cut
//!
//! The state is materialised into a fresh directory, and the binary runs against it
//! (`status`, `list`, `get` of every secret, `doctor --full`). A command counts as
//! acknowledged after its last sync point: at that cut, and every later one, its effect
//! must be there whole. While it runs, the vault must hold the state before it or the
//! state after it, never a mix (the vault's secrets and values, epoch and keyholders),
//! the pins file must hold the pins from before or after it, a snapshot file must be
//! absent or complete, and the pins must never name a membership-log entry the database
//! does not have (the CLI would then refuse the vault as rolled back). Before the vault
//! is first durable there may be no vault at all, and `init` must then start over.
//!
//! The test prints, per operation, the cut points checked and the losses, and fails on
//! any loss. Identical materialised states are checked once per expectation (the count
//! of distinct states is printed too), and the line shows what each cut left, in order:
//! `-` no vault, `o` the state before the command, `n` the state after it, `b` an allowed
//! state in between, `?` anything else (a loss).

#[path = "helpers/env.rs"]
mod env;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use env::{PASS, write_private};

const NS: &str = "core/app";

/// The vault's secrets and key state, as the binary reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Content {
    epoch: u64,
    keyholders: usize,
    secrets: BTreeMap<String, String>,
}

fn content(epoch: u64, keyholders: usize, secrets: &[(&str, &str)]) -> Content {
    Content {
        epoch,
        keyholders,
        secrets: secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// One command of the scenario and the vault content it leaves.
struct Op {
    name: &'static str,
    args: Vec<String>,
    stdin: Option<&'static str>,
    after: Content,
    /// Contents allowed while the command runs, besides the ones before and after it.
    between: Vec<Content>,
}

fn op(name: &'static str, args: &[&str], stdin: Option<&'static str>, after: Content) -> Op {
    Op {
        name,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        stdin,
        after,
        between: Vec::new(),
    }
}

/// What is on disk, logically, between two commands.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stage {
    vault: Option<Content>,
    pins: Option<Vec<u8>>,
    snapshot: Option<Vec<u8>>,
}

/// The scenario's file names, relative to the watched directory (and to every
/// materialised copy).
const VAULT: &str = "data/v.sqlite";
const STATE: &str = "state";
const SNAPSHOT: &str = "snap.bin";

#[test]
fn power_cut_at_every_sync_point_loses_nothing_acknowledged() {
    let work = tempfile::tempdir().unwrap();
    let shim = build_shim(work.path());
    let root = work.path().join("watched");
    let log = work.path().join("log");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&log).unwrap();
    let root = root.canonicalize().unwrap();
    let pass = work.path().join("pass.txt");
    write_private(&pass, PASS.as_bytes());
    let run = Runner {
        home: work.path().to_path_buf(),
        pass,
    };
    let baseline = Baseline::of(&root);

    // A bare file name: the commands run in the watched directory.
    let snapshot_arg = SNAPSHOT.to_owned();
    let ops = vec![
        // The vault and both its keyholders (passphrase and recovery key) are one commit:
        // no cut leaves a vault without the recovery key that was shown.
        op(
            "init",
            &["init", "--name", "alice", "--json"],
            None,
            content(1, 2, &[]),
        ),
        op(
            "put (new secret)",
            &["put", NS, "A", "--stdin"],
            Some("a1"),
            content(1, 2, &[("A", "a1")]),
        ),
        op(
            "put (new version)",
            &["put", NS, "A", "--stdin"],
            Some("a2"),
            content(1, 2, &[("A", "a2")]),
        ),
        op("rotate", &["rotate"], None, content(2, 2, &[("A", "a2")])),
        op(
            "snapshot",
            &["snapshot", &snapshot_arg],
            None,
            content(2, 2, &[("A", "a2")]),
        ),
        op(
            "put (another secret)",
            &["put", NS, "B", "--stdin"],
            Some("b1"),
            content(2, 2, &[("A", "a2"), ("B", "b1")]),
        ),
        op(
            "restore",
            &["restore", &snapshot_arg],
            None,
            content(2, 2, &[("A", "a2")]),
        ),
        op(
            "rotate (after the restore)",
            &["rotate"],
            None,
            content(3, 2, &[("A", "a2")]),
        ),
        // The snapshot's membership log is older than the pinned one now (the rotation
        // logged a new epoch): restoring it moves the pins back.
        op(
            "restore (membership rollback)",
            &["restore", &snapshot_arg, "--allow-membership-rollback"],
            None,
            content(2, 2, &[("A", "a2")]),
        ),
    ];

    // The live run: every command under the shim, its sync points numbered in order.
    let mut stages = vec![Stage {
        vault: None,
        pins: None,
        snapshot: None,
    }];
    let mut bounds = Vec::new();
    let mut vault_id = None;
    for op in &ops {
        let start = counter(&log);
        let out = run.recorded(&root, &log, &shim, &op.args, op.stdin);
        assert!(
            out.status.success(),
            "{} failed in the live run: {}",
            op.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let end = counter(&log);
        assert!(
            end > start,
            "the shim recorded no sync point for {}: is LD_PRELOAD honoured (a dynamically linked binary)?",
            op.name
        );
        bounds.push((start, end));
        if vault_id.is_none() {
            let init: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            vault_id = Some(init["vault_id"].as_str().unwrap().to_owned());
        }
        let id = vault_id.as_deref().unwrap();
        stages.push(Stage {
            vault: Some(op.after.clone()),
            pins: fs::read(root.join(STATE).join(format!("{id}.pins"))).ok(),
            snapshot: fs::read(root.join(SNAPSHOT)).ok(),
        });
    }
    let vault_id = vault_id.unwrap();
    for bad in ["errors", "unsupported"] {
        if let Ok(text) = fs::read_to_string(log.join(bad)) {
            panic!("the power-cut shim reports ({bad}):\n{text}");
        }
    }
    let records = Record::load_all(&log, counter(&log));
    let state_dir = root.join(STATE);

    // Replay: the state after each sync point, checked against the stages around it.
    let mut model = Model::new(&root, baseline);
    let mut applied = 0;
    let mut cache: HashMap<(Materialised, usize, bool), Verdict> = HashMap::new();
    let mut problems = Vec::new();
    let mut total_losses = 0;
    for (i, op) in ops.iter().enumerate() {
        let (start, end) = bounds[i];
        let first = if i == 0 { start } else { start + 1 };
        let (mut cuts, mut pin_cuts, mut losses, mut ahead) = (0, 0, 0, 0);
        let mut found = String::new();
        let distinct_before = cache.len();
        for k in first..=end {
            while applied < k {
                model.apply(&records[applied]);
                applied += 1;
            }
            if k > 0 && records[k - 1].path().starts_with(&state_dir) {
                pin_cuts += 1;
            }
            cuts += 1;
            let state = model.materialise();
            let last = k == end;
            let verdict = cache
                .entry((state.clone(), i, last))
                .or_insert_with(|| {
                    let dir = tempfile::tempdir_in(work.path()).unwrap();
                    state.write_to(dir.path());
                    let expect = Expect {
                        before: &stages[i],
                        after: &stages[i + 1],
                        between: &op.between,
                        last,
                    };
                    run.check(dir.path(), &vault_id, &expect)
                })
                .clone();
            found.push(verdict.found);
            if !verdict.problems.is_empty() {
                losses += 1;
                if verdict.pins_ahead {
                    ahead += 1;
                }
                for p in &verdict.problems {
                    problems.push(format!(
                        "{} (cut point {k} of {first}..={end}): {p}",
                        op.name
                    ));
                }
            }
        }
        println!(
            "power cut: {}: {cuts} cut points, {losses} losses, pins ahead at {ahead} ({pin_cuts} cut points in pin saving, {} distinct states; vault found: {found})",
            op.name,
            cache.len() - distinct_before,
        );
        total_losses += losses;
    }
    let shown = 40;
    assert!(
        problems.is_empty(),
        "{total_losses} cut points lose acknowledged data or leave pins ahead:\n{}{}",
        problems[..problems.len().min(shown)].join("\n"),
        if problems.len() > shown {
            format!("\n... and {} more", problems.len() - shown)
        } else {
            String::new()
        }
    );
}

/// The model against the shim on plain shell commands (`sync FILE` fsyncs a file or a
/// directory): what a cut keeps is exactly what was synced, a name included.
#[test]
fn the_model_keeps_only_what_was_synced() {
    let work = tempfile::tempdir().unwrap();
    let shim = build_shim(work.path());
    let root = work.path().join("watched");
    let log = work.path().join("log");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&log).unwrap();
    let root = root.canonicalize().unwrap();
    let baseline = Baseline::of(&root);
    let script = [
        "printf one > a && sync a", // 1: a's bytes, not its name
        "sync .",                   // 2: a's name
        "printf two > a",           // never synced: dropped
        "printf new > b && sync b", // 3: b's bytes, not its name
        "mv b c && sync .",         // 4: the rename
        "rm c && sync .",           // 5: the unlink
        "printf x > d && sync .",   // 6: d's name, not its bytes
    ]
    .join(" && ");
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(&root)
        .env("LD_PRELOAD", &shim)
        .env("POWERCUT_WATCH", &root)
        .env("POWERCUT_LOG", &log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = Record::load_all(&log, counter(&log));
    let expected: [&[(&str, &str)]; 7] = [
        &[],
        &[],
        &[("a", "one")],
        &[("a", "one")],
        &[("a", "one"), ("c", "new")],
        &[("a", "one")],
        &[("a", "one"), ("d", "")],
    ];
    assert_eq!(records.len() + 1, expected.len(), "sync points recorded");
    let mut model = Model::new(&root, baseline);
    for (k, want) in expected.iter().enumerate() {
        if k > 0 {
            model.apply(&records[k - 1]);
        }
        let want: Materialised = want
            .iter()
            .map(|(name, bytes)| (PathBuf::from(name), Some(bytes.as_bytes().to_vec())))
            .collect();
        assert_eq!(model.materialise(), want, "cut after sync point {k}");
    }
}

/// Compiles the shim; a missing compiler fails the test (it never skips).
fn build_shim(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/powercut.c");
    let out = dir.join("powercut.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let built = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the power-cut test builds {} with a C compiler, but `{cc}` does not run ({e}): install gcc (apt-get install gcc) or set CC",
                src.display()
            )
        });
    assert!(
        built.status.success(),
        "`{cc}` could not build {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

/// The number of sync points recorded so far.
fn counter(log: &Path) -> usize {
    fs::read_to_string(log.join("counter")).map_or(0, |t| t.trim().parse().unwrap())
}

/// Runs the binary with a clean environment.
struct Runner {
    home: PathBuf,
    pass: PathBuf,
}

impl Runner {
    fn command(&self, vault_dir: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strongroom"));
        for var in [
            "STRONGROOM_VAULT",
            "STRONGROOM_STATE_DIR",
            "STRONGROOM_PASSPHRASE_FILE",
            "RUST_LOG",
            "XDG_DATA_HOME",
            "XDG_STATE_HOME",
            "LD_PRELOAD",
            "POWERCUT_WATCH",
            "POWERCUT_LOG",
        ] {
            c.env_remove(var);
        }
        c.env("HOME", &self.home)
            .current_dir(vault_dir)
            .arg("--vault")
            .arg(vault_dir.join(VAULT))
            .arg("--state-dir")
            .arg(vault_dir.join(STATE))
            .arg("--passphrase-file")
            .arg(&self.pass)
            .args(["--profile", "constrained"]);
        c
    }

    fn output(mut c: Command, stdin: Option<&str>) -> Output {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// A command of the live run, in the watched directory, under the shim.
    fn recorded(
        &self,
        root: &Path,
        log: &Path,
        shim: &Path,
        args: &[String],
        stdin: Option<&str>,
    ) -> Output {
        let mut c = self.command(root);
        c.env("LD_PRELOAD", shim)
            .env("POWERCUT_WATCH", root)
            .env("POWERCUT_LOG", log)
            .args(args);
        Self::output(c, stdin)
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = self.command(dir);
        c.args(args);
        Self::output(c, None)
    }

    /// Checks a materialised cut in `dir` against what may be there.
    fn check(&self, dir: &Path, vault_id: &str, expect: &Expect<'_>) -> Verdict {
        let mut v = Verdict::default();
        let pins = fs::read(dir.join(STATE).join(format!("{vault_id}.pins"))).ok();
        let snapshot = fs::read(dir.join(SNAPSHOT)).ok();
        let allowed = expect.stages();

        if !allowed.iter().any(|s| s.pins == pins) {
            v.problems.push(format!(
                "the pins file holds {}, expected {}",
                describe_pins(pins.as_deref()),
                allowed
                    .iter()
                    .map(|s| describe_pins(s.pins.as_deref()))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        if !allowed.iter().any(|s| s.snapshot == snapshot) {
            v.problems.push(format!(
                "the snapshot file is {}, expected {}",
                describe_file(snapshot.as_deref()),
                allowed
                    .iter()
                    .map(|s| describe_file(s.snapshot.as_deref()))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }

        let observed = self.observe(dir, &mut v);
        v.found = '?';
        if let Seen::Vault(observed) = &observed {
            let old = !expect.last && expect.before.vault == *observed;
            let new = expect.after.vault == *observed;
            let between = !expect.last
                && observed
                    .as_ref()
                    .is_some_and(|c| expect.between.contains(c));
            v.found = match (observed, old, new, between) {
                (None, true, _, _) | (None, _, true, _) => '-',
                (_, _, true, _) => 'n',
                (_, true, _, _) => 'o',
                (_, _, _, true) => 'b',
                _ => '?',
            };
            if v.found == '?' {
                v.problems.push(format!(
                    "the vault holds {observed:?}, expected one of {:?}",
                    allowed.iter().map(|s| &s.vault).collect::<Vec<_>>()
                ));
            }
        }

        // The pins never name a membership-log entry the database does not have.
        if let Some(seq) = pins.as_deref().and_then(pinned_seq) {
            match member_log_head(&dir.join(VAULT)) {
                Some(head) if head >= seq => {}
                head => {
                    v.pins_ahead = true;
                    v.problems.push(format!(
                        "the pins are ahead of the data: they pin membership-log entry {seq}, the database's log ends at {head:?}"
                    ));
                }
            }
        }
        // A cut before the vault is durable leaves no vault, and `init` starts over.
        if v.found == '-' {
            let init = self.run(dir, &["init", "--name", "alice", "--json"]);
            if !init.status.success() {
                v.problems.push(format!(
                    "no vault is left, and init cannot start over: {}",
                    String::from_utf8_lossy(&init.stderr).trim()
                ));
            }
        }
        v
    }

    /// What the binary sees in `dir`: no vault, a vault that opens (its `doctor`
    /// problems noted), or a vault it cannot read (problems noted).
    fn observe(&self, dir: &Path, v: &mut Verdict) -> Seen {
        let status = self.run(dir, &["status", "--json"]);
        if !status.status.success() {
            let err = String::from_utf8_lossy(&status.stderr);
            if [
                "no vault at",
                "no vault in this store",
                "is an empty file, not a strongroom vault",
            ]
            .iter()
            .any(|m| err.contains(m))
            {
                return Seen::Vault(None);
            }
            if err.contains("roll") {
                v.pins_ahead = true;
            }
            v.problems
                .push(format!("the vault does not open: {}", err.trim()));
            return Seen::Unreadable;
        }
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let list = self.run(dir, &["list", NS, "--json"]);
        if !list.status.success() {
            v.problems.push(format!(
                "list fails: {}",
                String::from_utf8_lossy(&list.stderr).trim()
            ));
            return Seen::Unreadable;
        }
        let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
        let mut secrets = BTreeMap::new();
        for item in list.as_array().unwrap() {
            let name = item["name"].as_str().unwrap();
            let get = self.run(dir, &["get", NS, name]);
            if !get.status.success() {
                v.problems.push(format!(
                    "get {name} fails: {}",
                    String::from_utf8_lossy(&get.stderr).trim()
                ));
                return Seen::Unreadable;
            }
            secrets.insert(
                name.to_owned(),
                String::from_utf8_lossy(&get.stdout).into_owned(),
            );
        }
        let doctor = self.run(dir, &["doctor", "--full", "--json"]);
        let report: Option<serde_json::Value> = serde_json::from_slice(&doctor.stdout).ok();
        let result = report.as_ref().and_then(|r| r["result"].as_str());
        if !matches!(doctor.status.code(), Some(0 | 1)) || result == Some("fail") {
            v.problems.push(format!(
                "doctor --full finds failures: {} {}",
                String::from_utf8_lossy(&doctor.stdout).trim(),
                String::from_utf8_lossy(&doctor.stderr).trim()
            ));
        }
        Seen::Vault(Some(Content {
            epoch: status["epoch"].as_u64().unwrap(),
            keyholders: status["keyholders"].as_array().unwrap().len(),
            secrets,
        }))
    }
}

/// What the binary finds.
enum Seen {
    /// A vault (`Some`) or none.
    Vault(Option<Content>),
    /// A vault it cannot read.
    Unreadable,
}

struct Expect<'a> {
    before: &'a Stage,
    after: &'a Stage,
    between: &'a [Content],
    /// The cut right after the command's last sync point: it is acknowledged.
    last: bool,
}

impl Expect<'_> {
    fn stages(&self) -> Vec<&Stage> {
        if self.last {
            vec![self.after]
        } else {
            vec![self.before, self.after]
        }
    }
}

#[derive(Clone, Default)]
struct Verdict {
    problems: Vec<String>,
    pins_ahead: bool,
    /// Which state the vault was found in: `'-'` no vault, `'o'` the state before the
    /// command, `'n'` the state after it, `'b'` an allowed state in between, `'?'` none.
    found: char,
}

/// The high-water sequence number of a pins file (layout in `strongroom_sharing::Pins`).
fn pinned_seq(pins: &[u8]) -> Option<u64> {
    (pins.len() >= 58 && pins[1] == 1).then(|| u64::from_be_bytes(pins[50..58].try_into().unwrap()))
}

fn describe_pins(pins: Option<&[u8]>) -> String {
    match pins {
        None => "no pins".to_owned(),
        Some(p) => match pinned_seq(p) {
            Some(seq) => format!("pins at membership-log entry {seq}"),
            None => format!("pins of {} bytes", p.len()),
        },
    }
}

fn describe_file(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "absent".to_owned(), |b| format!("{} bytes", b.len()))
}

/// The last membership-log entry in the database at `path` (a copy: opening it may
/// recover its WAL).
fn member_log_head(path: &Path) -> Option<u64> {
    if !path.exists() {
        return None;
    }
    let db = rusqlite::Connection::open(path).ok()?;
    let key: Option<Vec<u8>> = db
        .query_row("SELECT max(k) FROM sr_member_log", [], |r| r.get(0))
        .ok()?;
    Some(u64::from_be_bytes(key?.try_into().ok()?))
}

/// One recorded sync point.
enum Record {
    File {
        id: String,
        path: PathBuf,
        data: Vec<u8>,
    },
    Dir {
        path: PathBuf,
        entries: Vec<Entry>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    kind: char,
    id: String,
    name: String,
}

impl Record {
    fn load_all(log: &Path, n: usize) -> Vec<Record> {
        (1..=n)
            .map(|i| {
                let meta = fs::read_to_string(log.join(format!("{i:08}.meta")))
                    .unwrap_or_else(|e| panic!("record {i} of the shim is missing: {e}"));
                let mut lines = meta.lines();
                let (kind, id) = lines.next().unwrap().split_once(' ').unwrap();
                let path = PathBuf::from(lines.next().unwrap());
                match kind {
                    "file" => Record::File {
                        id: id.to_owned(),
                        path,
                        data: fs::read(log.join(format!("{i:08}.data"))).unwrap(),
                    },
                    "dir" => Record::Dir {
                        path,
                        entries: lines
                            .map(|l| {
                                let mut parts = l.splitn(3, ' ');
                                Entry {
                                    kind: parts.next().unwrap().chars().next().unwrap(),
                                    id: parts.next().unwrap().to_owned(),
                                    name: parts.next().unwrap().to_owned(),
                                }
                            })
                            .collect(),
                    },
                    other => panic!("record {i}: a sync of a {other} under the watched directory"),
                }
            })
            .collect()
    }

    fn path(&self) -> &Path {
        match self {
            Record::File { path, .. } | Record::Dir { path, .. } => path,
        }
    }
}

/// The directories that exist before the run (the watched directory holds no file then).
struct Baseline {
    dirs: HashMap<PathBuf, Vec<Entry>>,
}

impl Baseline {
    fn of(root: &Path) -> Baseline {
        let mut dirs = HashMap::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(dir) = todo.pop() {
            let mut entries = Vec::new();
            for e in fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                assert!(
                    e.file_type().unwrap().is_dir(),
                    "the watched directory must hold no file before the run: {}",
                    e.path().display()
                );
                entries.push(Entry {
                    kind: 'd',
                    id: String::new(),
                    name: e.file_name().into_string().unwrap(),
                });
                todo.push(e.path());
            }
            dirs.insert(dir, entries);
        }
        Baseline { dirs }
    }
}

/// The durable state after the sync points applied so far.
struct Model {
    root: PathBuf,
    /// File identity → bytes at its last sync.
    files: HashMap<String, Vec<u8>>,
    /// Directory path → entries at its last sync (or before the run).
    dirs: HashMap<PathBuf, Vec<Entry>>,
}

/// A materialised state: relative path → file bytes (`None` for a directory).
type Materialised = BTreeMap<PathBuf, Option<Vec<u8>>>;

impl Model {
    fn new(root: &Path, baseline: Baseline) -> Model {
        Model {
            root: root.to_path_buf(),
            files: HashMap::new(),
            dirs: baseline.dirs,
        }
    }

    fn apply(&mut self, record: &Record) {
        match record {
            Record::File { id, data, .. } => {
                self.files.insert(id.clone(), data.clone());
            }
            Record::Dir { path, entries } => {
                self.dirs.insert(path.clone(), entries.clone());
            }
        }
    }

    fn materialise(&self) -> Materialised {
        let mut out = BTreeMap::new();
        self.walk(&self.root, Path::new(""), &mut out);
        out
    }

    fn walk(&self, dir: &Path, rel: &Path, out: &mut Materialised) {
        for e in self.dirs.get(dir).map_or(&[][..], Vec::as_slice) {
            let rel = rel.join(&e.name);
            match e.kind {
                'f' => {
                    // Never synced: its writes are all dropped.
                    out.insert(
                        rel,
                        Some(self.files.get(&e.id).cloned().unwrap_or_default()),
                    );
                }
                'd' => {
                    out.insert(rel.clone(), None);
                    self.walk(&dir.join(&e.name), &rel, out);
                }
                other => panic!("unexpected entry type {other} for {}", rel.display()),
            }
        }
    }
}

trait WriteTo {
    fn write_to(&self, dir: &Path);
}

impl WriteTo for Materialised {
    fn write_to(&self, dir: &Path) {
        // BTreeMap order puts a directory before what it holds.
        for (rel, bytes) in self {
            let path = dir.join(rel);
            match bytes {
                None => {
                    use std::os::unix::fs::DirBuilderExt;
                    fs::DirBuilder::new().mode(0o700).create(&path).unwrap();
                }
                Some(b) => write_private(&path, b),
            }
        }
    }
}
