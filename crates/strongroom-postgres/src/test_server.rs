//! A throwaway local PostgreSQL server for tests (feature `test-server`).
//!
//! [`TestServer::start`] runs `initdb` and `pg_ctl` into a fresh directory under `/tmp`,
//! listening only on a unix socket in that directory (no TCP port), with `fsync` off. The
//! server is stopped and its directory removed when the handle drops — and also when the
//! test process dies, by a small watcher process that waits for the test process's end.
//!
//! When PostgreSQL is not installed, `start` prints a loud `SKIPPED: ...` line to stderr
//! and returns `None`, unless the environment variable `STRONGROOM_REQUIRE_PG=1` is set:
//! then it panics, so CI never passes without really testing PostgreSQL.
//!
//! ```no_run
//! use strongroom_postgres::test_server::TestServer;
//! use strongroom_store::{ReadView, Table};
//!
//! // One server per test binary, a fresh schema per test.
//! let Some(server) = TestServer::shared() else { return };
//! let store = server.fresh_store();
//! assert_eq!(store.get(Table::Meta, b"missing").unwrap(), None);
//! ```

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use strongroom_store::StoreError;

use crate::{PostgresOptions, PostgresStore};

/// Environment variable that turns a missing PostgreSQL into a test failure.
pub const REQUIRE_ENV: &str = "STRONGROOM_REQUIRE_PG";

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A running throwaway PostgreSQL server. Dropping it stops the server
/// (`pg_ctl stop -m immediate`) and removes its directory.
pub struct TestServer {
    dir: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
    watcher: Option<(Child, ChildStdin)>,
}

impl TestServer {
    /// Starts a new server, or returns `None` (after printing `SKIPPED: ...` to stderr)
    /// when PostgreSQL is not installed or cannot start. Panics instead of returning
    /// `None` when `STRONGROOM_REQUIRE_PG=1`.
    pub fn start() -> Option<TestServer> {
        match Self::try_start() {
            Ok(server) => Some(server),
            Err(why) => {
                assert!(
                    std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
                    "{REQUIRE_ENV}=1 but the PostgreSQL test server is unavailable: {why}"
                );
                // Straight to the stderr handle: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: {why} — PostgreSQL tests did not run; \
                     install PostgreSQL and set {REQUIRE_ENV}=1 to make this fatal ***\n"
                );
                None
            }
        }
    }

    /// One server shared by every test of this process, started on first use (`None`,
    /// loudly, when it cannot start; see [`TestServer::start`]). It is stopped when the
    /// process exits.
    pub fn shared() -> Option<&'static TestServer> {
        static SHARED: OnceLock<Option<TestServer>> = OnceLock::new();
        let server = SHARED.get_or_init(TestServer::start).as_ref();
        if server.is_none() {
            let test = std::thread::current()
                .name()
                .unwrap_or("this test")
                .to_owned();
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: no PostgreSQL test server"
            );
        }
        server
    }

    fn try_start() -> Result<TestServer, String> {
        let bin = find_bin_dir().ok_or_else(|| {
            "PostgreSQL not installed (initdb and pg_ctl not found in PATH or /usr/lib/postgresql/*/bin)"
                .to_owned()
        })?;
        let as_postgres = is_root();
        let owner = if as_postgres {
            Some(postgres_user().ok_or_else(|| {
                "running as root but there is no `postgres` system user to run the server"
                    .to_owned()
            })?)
        } else {
            None
        };
        let dir = make_dir()?;
        let mut server = TestServer {
            pg_ctl: bin.join("pg_ctl"),
            dir,
            as_postgres,
            watcher: None,
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown {}: {e}", server.dir.display()))?;
        }
        server.watcher = server.spawn_watcher();
        let data = server.dir.join("data");
        server.run(
            &bin.join("initdb"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let opts = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200 -c deadlock_timeout=100ms",
            server.dir.display()
        );
        let log = server.dir.join("server.log");
        let pg_ctl = server.pg_ctl.clone();
        server
            .run(
                &pg_ctl,
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    opts.as_ref(),
                    "start".as_ref(),
                ],
            )
            .map_err(|e| {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                format!("{e}\nserver log:\n{log}")
            })?;
        Ok(server)
    }

    /// Runs a PostgreSQL binary, as the `postgres` user when we are root.
    fn run(&self, program: &Path, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).current_dir(&self.dir).stdin(Stdio::null());
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}): {}{}",
                program.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A process that stops the server and removes its directory once our end of its
    /// stdin closes, which happens when this process exits for any reason.
    fn spawn_watcher(&self) -> Option<(Child, ChildStdin)> {
        let stop = if self.as_postgres {
            "runuser -u postgres -- \"$0\" -D \"$1/data\" stop -m immediate"
        } else {
            "\"$0\" -D \"$1/data\" stop -m immediate"
        };
        let script = format!("cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf \"$1\"");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&self.pg_ctl)
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        Some((child, stdin))
    }

    /// The unix socket directory (the `host` of the connection string).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A libpq-style connection string to the `postgres` database as the superuser.
    pub fn conninfo(&self) -> String {
        format!("host={} user=postgres dbname=postgres", self.dir.display())
    }

    /// A schema name not used before in this process (`t<pid>_<n>`).
    pub fn fresh_schema(&self) -> String {
        format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A store in a fresh schema of the `postgres` database. Panics if it cannot
    /// connect (this is a test helper).
    pub fn fresh_store(&self) -> PostgresStore {
        self.store_with(PostgresOptions {
            schema: Some(self.fresh_schema()),
            ..PostgresOptions::default()
        })
    }

    /// A store with the given options on the `postgres` database. Panics if it cannot
    /// connect (this is a test helper).
    pub fn store_with(&self, options: PostgresOptions) -> PostgresStore {
        PostgresStore::connect(&self.conninfo(), options)
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"))
    }

    /// Creates a fresh database (named `d<pid>_<n>`) and returns its connection string.
    pub fn create_database(&self) -> Result<String, StoreError> {
        let name = format!(
            "d{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = postgres::Client::connect(&self.conninfo(), postgres::NoTls)
            .map_err(crate::store::pg_err)?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .map_err(crate::store::pg_err)?;
        Ok(format!(
            "host={} user=postgres dbname={name}",
            self.dir.display()
        ))
    }

    /// Stops the server now (the same as dropping it).
    pub fn stop(self) {
        drop(self);
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("dir", &self.dir)
            .field("pg_ctl", &self.pg_ctl)
            .finish_non_exhaustive()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let pg_ctl = self.pg_ctl.clone();
        if let Err(e) = self.run(
            &pg_ctl,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "stop".as_ref(),
                "-m".as_ref(),
                "immediate".as_ref(),
            ],
        ) {
            tracing::warn!(error = %e, "stopping the PostgreSQL test server failed");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((mut child, mut stdin)) = self.watcher.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// `initdb` and `pg_ctl` from PATH, else from the highest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map_or_else(
        |_| {
            Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
        },
        |m| m.uid() == 0,
    )
}

/// `(uid, gid)` of the `postgres` system user, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != "postgres" {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// A new private directory with a short path (unix socket paths are limited to ~107 bytes).
fn make_dir() -> Result<PathBuf, String> {
    let pid = std::process::id();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/srpg-{pid}-{n}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err("cannot find a free /tmp/srpg-* directory name".to_owned())
}
