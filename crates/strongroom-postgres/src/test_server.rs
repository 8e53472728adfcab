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
//! [`TestServer::builder`] starts servers for the harder tests: listening on 127.0.0.1 (a
//! free port), with TLS from a [`TestPki`] made for the test, a `pg_hba.conf` of the
//! test's choosing, and other settings. A running server can be stopped, started again,
//! restarted, and have its client connections terminated; [`TestServer::standby`] makes a
//! hot standby streaming from it (`pg_basebackup -R`, optionally synchronous), which can be
//! paused, caught up and promoted.
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
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strongroom_store::StoreError;

use crate::{PostgresOptions, PostgresStore};

/// Environment variable that turns a missing PostgreSQL into a test failure.
pub const REQUIRE_ENV: &str = "STRONGROOM_REQUIRE_PG";

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A running throwaway PostgreSQL server. Dropping it stops the server
/// (`pg_ctl stop -m immediate`) and removes its directory.
pub struct TestServer {
    dir: PathBuf,
    bin: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
    watcher: Option<(Child, ChildStdin)>,
    port: Option<u16>,
}

/// TLS files of a test server, as PEM text.
#[derive(Clone)]
pub struct ServerTls {
    /// The server's certificate (chain).
    pub cert_pem: String,
    /// The server certificate's private key.
    pub key_pem: String,
    /// CA certificates the server trusts for client certificates (`ssl_ca_file`).
    pub client_ca_pem: Option<String>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_ca", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// How [`TestServer::builder`] sets up a server.
#[derive(Clone, Debug, Default)]
#[must_use = "the server starts with `start()`"]
pub struct ServerBuilder {
    tcp: bool,
    tls: Option<ServerTls>,
    hba: Option<Vec<String>>,
    settings: Vec<(String, String)>,
}

impl ServerBuilder {
    /// Listen on 127.0.0.1 too, on a free port (see [`TestServer::port`]).
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// `ssl = on` with these files (implies [`ServerBuilder::tcp`]).
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self.tcp = true;
        self
    }

    /// Adds a line to `pg_hba.conf` for TCP clients (`host…`/`hostssl…`). Once a line is
    /// given, the file holds local (unix socket) trust, local replication trust and the
    /// lines given, nothing else; without any, initdb's trust-everything file stays.
    pub fn hba(mut self, line: &str) -> Self {
        self.hba.get_or_insert_with(Vec::new).push(line.to_owned());
        self
    }

    /// A `postgresql.conf` setting (`value` as written in the file, quotes included).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server; `None` (loudly) when PostgreSQL is not installed, unless
    /// `STRONGROOM_REQUIRE_PG=1` (see [`TestServer::start`]).
    pub fn start(self) -> Option<TestServer> {
        TestServer::start_or_skip(|| TestServer::try_start(&self))
    }
}

/// A hot standby's replication mode (see [`TestServer::standby`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// The primary does not wait for the standby.
    Async,
    /// The primary's commits return once the standby has flushed them
    /// (`synchronous_standby_names`, `synchronous_commit = on`).
    Sync,
}

impl TestServer {
    /// Starts a new server, or returns `None` (after printing `SKIPPED: ...` to stderr)
    /// when PostgreSQL is not installed or cannot start. Panics instead of returning
    /// `None` when `STRONGROOM_REQUIRE_PG=1`.
    pub fn start() -> Option<TestServer> {
        Self::start_or_skip(|| Self::try_start(&ServerBuilder::default()))
    }

    /// A server with more than the defaults: TCP, TLS, `pg_hba.conf` lines, settings.
    ///
    /// ```no_run
    /// use strongroom_postgres::test_server::{TestPki, TestServer};
    ///
    /// let pki = TestPki::new();
    /// let Some(server) = TestServer::builder()
    ///     .tls(pki.server_tls(&["localhost", "127.0.0.1"]))
    ///     .hba("hostssl all all 127.0.0.1/32 trust")
    ///     .start()
    /// else {
    ///     return;
    /// };
    /// let conninfo = format!("{} sslrootcert={}", server.tcp_conninfo(), pki.ca_file().display());
    /// ```
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    fn start_or_skip(start: impl FnOnce() -> Result<TestServer, String>) -> Option<TestServer> {
        match start() {
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

    fn try_start(config: &ServerBuilder) -> Result<TestServer, String> {
        let mut server = Self::new_dir()?;
        let data = server.dir.join("data");
        server.run(
            &server.bin.join("initdb"),
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
        let mut conf = String::from(
            "\n# strongroom test server\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_connections = 200\ndeadlock_timeout = 100ms\n",
        );
        let _ = writeln!(conf, "unix_socket_directories = '{}'", server.dir.display());
        if let Some(tls) = &config.tls {
            server.write_data_file("server.crt", &tls.cert_pem)?;
            server.write_data_file("server.key", &tls.key_pem)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            if let Some(ca) = &tls.client_ca_pem {
                server.write_data_file("client_ca.crt", ca)?;
                conf.push_str("ssl_ca_file = 'client_ca.crt'\n");
            }
        }
        for (name, value) in &config.settings {
            let _ = writeln!(conf, "{name} = {value}");
        }
        if let Some(lines) = &config.hba {
            let mut hba = String::from("local all all trust\nlocal replication all trust\n");
            for line in lines {
                hba.push_str(line);
                hba.push('\n');
            }
            server.write_data_file("pg_hba.conf", &hba)?;
        }
        if config.tcp {
            conf.push_str("listen_addresses = '127.0.0.1'\n");
        } else {
            conf.push_str("listen_addresses = ''\n");
        }
        server.append_conf(&conf)?;
        server.start_on_free_port(config.tcp)?;
        Ok(server)
    }

    /// A server handle on a fresh private directory (nothing started yet).
    fn new_dir() -> Result<TestServer, String> {
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
            bin,
            dir,
            as_postgres,
            watcher: None,
            port: None,
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown {}: {e}", server.dir.display()))?;
        }
        server.watcher = server.spawn_watcher();
        Ok(server)
    }

    /// Writes a file into the data directory, owned by the server's user, mode 0600.
    fn write_data_file(&self, name: &str, contents: &str) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join("data").join(name);
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        f.write_all(contents.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.chown_to_server(&path)
    }

    fn chown_to_server(&self, path: &Path) -> Result<(), String> {
        if self.as_postgres
            && let Some((uid, gid)) = postgres_user()
        {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn append_conf(&self, text: &str) -> Result<(), String> {
        let path = self.dir.join("data").join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Starts the server, on a free TCP port when `tcp`: a port another process takes
    /// between the probe and the start makes it try another.
    fn start_on_free_port(&mut self, tcp: bool) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..8 {
            if tcp {
                let port = free_port()?;
                self.append_conf(&format!("port = {port}\n"))?;
                self.port = Some(port);
            }
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e) if tcp && e.contains("could not bind") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        self.run(
            &self.pg_ctl,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "start".as_ref(),
            ],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.dir.join("data");
        let mut all: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), data.as_os_str()];
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        self.run(&self.pg_ctl, &all)
    }

    /// Kills the server at once (`pg_ctl stop -m immediate`: like a crash or a power
    /// cut of the server process; the data directory stays). Panics on failure.
    pub fn kill(&self) {
        self.pg_ctl(&["-w", "stop", "-m", "immediate"])
            .unwrap_or_else(|e| panic!("cannot stop the test server: {e}"));
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`: client connections are
    /// terminated, open transactions rolled back). Panics on failure.
    pub fn stop_fast(&self) {
        self.pg_ctl(&["-w", "stop", "-m", "fast"])
            .unwrap_or_else(|e| panic!("cannot stop the test server: {e}"));
    }

    /// Starts a stopped server again, on the same port. Panics on failure.
    pub fn start_again(&self) {
        self.pg_ctl_start()
            .unwrap_or_else(|e| panic!("cannot start the test server again: {e}"));
    }

    /// Restarts the server (`pg_ctl restart -m fast`). Panics on failure.
    pub fn restart(&self) {
        self.stop_fast();
        self.start_again();
    }

    /// Terminates every client connection (`pg_terminate_backend`), as an administrator
    /// or a failing network would; returns how many there were.
    pub fn terminate_backends(&self) -> u64 {
        let n = self
            .query_value(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
            .unwrap_or_else(|e| panic!("cannot terminate backends: {e}"));
        n.and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Runs SQL as the superuser over the unix socket.
    pub fn execute(&self, sql: &str) -> Result<(), StoreError> {
        let mut client = postgres::Client::connect(&self.conninfo(), postgres::NoTls)
            .map_err(crate::store::pg_err)?;
        client.batch_execute(sql).map_err(crate::store::pg_err)
    }

    /// The first column of the first row of `sql` as text, run as the superuser.
    pub fn query_value(&self, sql: &str) -> Result<Option<String>, StoreError> {
        let mut client = postgres::Client::connect(&self.conninfo(), postgres::NoTls)
            .map_err(crate::store::pg_err)?;
        let rows = client.simple_query(sql).map_err(crate::store::pg_err)?;
        Ok(rows
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
                _ => None,
            })
            .flatten())
    }

    /// The TCP port (for servers started with [`ServerBuilder::tcp`]).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// A connection string to the `postgres` database as the superuser over TCP on
    /// 127.0.0.1. Panics for a server without TCP.
    pub fn tcp_conninfo(&self) -> String {
        let port = self.port.expect("this test server listens on no TCP port");
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres")
    }

    /// Starts a hot standby of this server (which must listen on TCP and allow
    /// replication connections from 127.0.0.1, as the default `pg_hba.conf` does):
    /// `pg_basebackup -R` over loopback, then streaming replication. With
    /// [`Replication::Sync`] this server's commits wait for the standby from now on.
    /// Returns once the standby streams. Panics on failure.
    #[must_use = "the standby stops when dropped"]
    pub fn standby(&self, name: &str, mode: Replication) -> TestServer {
        self.try_standby(name, mode)
            .unwrap_or_else(|e| panic!("cannot start the standby {name}: {e}"))
    }

    fn try_standby(&self, name: &str, mode: Replication) -> Result<TestServer, String> {
        let primary_port = self
            .port
            .ok_or("the primary listens on no TCP port: build it with .tcp()")?;
        let mut standby = Self::new_dir()?;
        let data = standby.dir.join("data");
        let port = primary_port.to_string();
        standby.run(
            &standby.bin.join("pg_basebackup"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-c".as_ref(),
                "fast".as_ref(),
                "-R".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        standby.append_conf(&format!(
            "\n# standby {name}\nunix_socket_directories = '{}'\nhot_standby = on\n",
            standby.dir.display()
        ))?;
        // After the primary_conninfo `-R` wrote into postgresql.auto.conf (read last), so
        // that this one, naming the standby, wins.
        let auto = data.join("postgresql.auto.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&auto)
            .and_then(|mut f| {
                writeln!(
                    f,
                    "primary_conninfo = 'host=127.0.0.1 port={primary_port} user=postgres application_name={name}'"
                )
            })
            .map_err(|e| format!("cannot write {}: {e}", auto.display()))?;
        if mode == Replication::Sync {
            for sql in [
                format!("ALTER SYSTEM SET synchronous_standby_names = '{name}'"),
                "ALTER SYSTEM SET synchronous_commit = 'on'".to_owned(),
                "SELECT pg_reload_conf()".to_owned(),
            ] {
                self.execute(&sql).map_err(|e| e.to_string())?;
            }
        }
        standby.start_on_free_port(true)?;
        let want = match mode {
            Replication::Sync => "sync",
            Replication::Async => "async",
        };
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let state = self
                .query_value(&format!(
                    "SELECT sync_state FROM pg_stat_replication \
                     WHERE application_name = '{name}' AND state = 'streaming'"
                ))
                .map_err(|e| e.to_string())?;
            if state.as_deref() == Some(want) {
                return Ok(standby);
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(standby.dir.join("server.log")).unwrap_or_default();
                return Err(format!(
                    "the standby is not streaming ({want}) after 60 s: {state:?}\nstandby log:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pauses WAL replay on this standby: it keeps receiving but shows the old state.
    pub fn pause_replay(&self) {
        self.execute("SELECT pg_wal_replay_pause()")
            .unwrap_or_else(|e| panic!("cannot pause replay: {e}"));
    }

    /// Resumes WAL replay on this standby.
    pub fn resume_replay(&self) {
        self.execute("SELECT pg_wal_replay_resume()")
            .unwrap_or_else(|e| panic!("cannot resume replay: {e}"));
    }

    /// Waits until this standby has replayed everything `primary` wrote so far.
    pub fn wait_for_replay(&self, primary: &TestServer) {
        // The insert position, not the write position: with `synchronous_commit = off` a
        // transaction returns before its commit record is written, so the write position
        // can still be behind what was committed.
        let lsn = primary
            .query_value("SELECT pg_current_wal_insert_lsn()")
            .unwrap_or_else(|e| panic!("cannot read the primary's WAL position: {e}"))
            .expect("a WAL position");
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let done = self
                .query_value(&format!(
                    "SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
                ))
                .unwrap_or_else(|e| panic!("cannot read the standby's replay position: {e}"));
            if done.as_deref() == Some("t") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not replay up to {lsn} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Promotes this standby to a primary (`pg_ctl promote`), waiting until it accepts
    /// writes. Panics on failure.
    pub fn promote(&self) {
        self.pg_ctl(&["-w", "-t", "60", "promote"])
            .unwrap_or_else(|e| panic!("cannot promote the standby: {e}"));
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
        format!("{} user=postgres dbname=postgres", self.socket_host())
    }

    /// `host=<socket dir>`, with the port when the server listens on TCP too (the socket
    /// file is named after the port).
    fn socket_host(&self) -> String {
        match self.port {
            Some(port) => format!("host={} port={port}", self.dir.display()),
            None => format!("host={}", self.dir.display()),
        }
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
            "{} user=postgres dbname={name}",
            self.socket_host()
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
        if let Err(e) = self.pg_ctl(&["stop", "-m", "immediate"]) {
            // Already stopped (a test killed it) is fine.
            tracing::debug!(error = %e, "stopping the PostgreSQL test server failed");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((mut child, mut stdin)) = self.watcher.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// A certificate authority made for one test: a CA certificate (in [`TestPki::ca_file`]),
/// server certificates for test servers and client certificates for users, all signed by
/// it (ECDSA P-256, by `rcgen`). Its files live in a private directory removed on drop.
pub struct TestPki {
    dir: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
    /// Removes the directory when the process ends, also for a PKI in a `static`.
    watcher: Option<(Child, ChildStdin)>,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A new CA. Panics if the certificate cannot be made (a test helper).
    pub fn new() -> TestPki {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/srpki-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("strongroom test CA {n}"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = params.self_signed(&key).expect("CA certificate").pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).expect("write ca.pem");
        let watcher = Command::new("sh")
            .arg("-c")
            .arg("cat >/dev/null; rm -rf \"$0\"")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .and_then(|mut child| child.stdin.take().map(|stdin| (child, stdin)));
        TestPki {
            dir,
            issuer: rcgen::Issuer::new(params, key),
            ca_pem,
            watcher,
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A file holding the CA certificate (for `sslrootcert=`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A private directory for the test's own files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// TLS files for a server known by `names` (DNS names or IP addresses), valid now, that
    /// also trusts this CA for client certificates.
    pub fn server_tls(&self, names: &[&str]) -> ServerTls {
        self.server_tls_valid(names, false)
    }

    /// Like [`TestPki::server_tls`], with a certificate that expired in 2001.
    pub fn expired_server_tls(&self, names: &[&str]) -> ServerTls {
        self.server_tls_valid(names, true)
    }

    fn server_tls_valid(&self, names: &[&str], expired: bool) -> ServerTls {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "strongroom test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_ca_pem: Some(self.ca_pem.clone()),
        }
    }

    /// A client certificate for PostgreSQL user `user` (its common name), written to
    /// `<user>.crt` and `<user>.key` (mode 0600) in [`TestPki::dir`]: `(cert, key)`.
    pub fn client_cert(&self, user: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::OpenOptionsExt;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, user);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("client certificate");
        let cert_path = self.dir.join(format!("{user}.crt"));
        let key_path = self.dir.join(format!("{user}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write client certificate");
        let _ = std::fs::remove_file(&key_path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .and_then(|mut f| f.write_all(key.serialize_pem().as_bytes()))
            .expect("write client key");
        (cert_path, key_path)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((mut child, stdin)) = self.watcher.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// A TCP port on 127.0.0.1 that is free right now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free TCP port on 127.0.0.1: {e}"))
}

/// `initdb` and `pg_ctl` from PATH, else from the highest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                // A symlink in PATH (/usr/local/bin/initdb) points into the directory that
                // also holds pg_basebackup and the server.
                return std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| has_both(d))
                    .or(Some(dir));
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
