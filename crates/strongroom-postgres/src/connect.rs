//! Connecting (hosts in order, TLS, a deadline on the whole set-up, the kind of server
//! wanted) and the connection pool.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls, SimpleQueryMessage, Statement};
use strongroom_store::StoreError;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::conninfo::{ConnInfo, HostTarget, RootCerts, SslMode, TargetSessionAttrs};
use crate::tls;

const BACKEND: &str = "postgres";

/// How long a caller waits for a pooled connection when all of them are in use.
const POOL_WAIT: Duration = Duration::from_secs(15);

/// What the server said about itself right after connecting.
#[derive(Clone, Debug)]
struct Probe {
    in_recovery: bool,
    read_only: bool,
    tls: Option<TlsSession>,
}

const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), \
     s.ssl, s.version, s.cipher FROM (SELECT 1) AS one \
     LEFT JOIN pg_stat_ssl AS s ON s.pid = pg_backend_pid()";

fn probe(client: &mut Client) -> Result<Probe, postgres::Error> {
    let rows = client.simple_query(PROBE_SQL)?;
    let row = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let Some(row) = row else {
        return Ok(Probe {
            in_recovery: false,
            read_only: false,
            tls: None,
        });
    };
    let text = |i: usize| row.get(i).unwrap_or_default().to_owned();
    Ok(Probe {
        in_recovery: text(0) == "t",
        read_only: text(1) == "on",
        tls: (text(2) == "t").then(|| TlsSession {
            version: text(3),
            cipher: text(4),
        }),
    })
}

/// The TLS session of a connection, as the server reports it (`pg_stat_ssl`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSession {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// The cipher suite, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// How a store's connection reaches its server: for `doctor` and `status`
/// ([`PostgresStore::connection_security`](crate::PostgresStore::connection_security)).
///
/// Its `Display` is one line saying whether the connection is encrypted and what was
/// verified.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionSecurity {
    /// The server connected to: `db.example:5432`, or a unix socket directory.
    pub server: String,
    /// Whether it is a local unix socket (no network, no TLS needed).
    pub unix_socket: bool,
    /// The `sslmode` this connection was made with (`disable` for a unix socket).
    pub ssl_mode: SslMode,
    /// The TLS session, `None` when the connection is not encrypted.
    pub tls: Option<TlsSession>,
    /// Whether the server accepts no writes (a hot standby, or read-only by setting).
    pub server_read_only: bool,
    /// Whether the server is a standby in recovery.
    pub server_in_recovery: bool,
}

impl ConnectionSecurity {
    /// Whether the connection is encrypted (TLS).
    pub fn is_encrypted(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the server was authenticated: its certificate chains to a trusted root and
    /// names the host (`verify-full`). A unix socket counts as verified: it is local, and
    /// the file system's permissions say who may listen on it.
    pub fn is_verified(&self) -> bool {
        self.unix_socket || (self.tls.is_some() && self.ssl_mode.verifies_host_name())
    }
}

impl fmt::Display for ConnectionSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unix_socket {
            return write!(f, "unix socket {} (local; no TLS needed)", self.server);
        }
        match &self.tls {
            None => write!(
                f,
                "NOT encrypted: plain TCP to {} (sslmode={}); passwords, row keys and ciphertexts cross the network readable",
                self.server, self.ssl_mode
            ),
            Some(t) => {
                write!(f, "TLS ({}, {}) to {}, ", t.version, t.cipher, self.server)?;
                match self.ssl_mode {
                    SslMode::VerifyFull => write!(
                        f,
                        "server certificate verified for this host name (sslmode=verify-full)"
                    ),
                    SslMode::VerifyCa => write!(
                        f,
                        "server certificate chain verified but not its host name (sslmode=verify-ca)"
                    ),
                    m => write!(
                        f,
                        "server certificate NOT verified (sslmode={m}): someone on the network path could pose as the server; use sslmode=verify-full"
                    ),
                }
            }
        }
    }
}

/// A connection with its prepared statements.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    pub(crate) statements: HashMap<String, Statement>,
    /// The server, for messages.
    pub(crate) server: Arc<str>,
    unix: bool,
    mode: SslMode,
    /// Set when the connection is known to be unusable; it is then dropped, not pooled.
    pub(crate) broken: bool,
}

impl PgConn {
    /// Maps an error of this connection (marking it broken when the connection is lost).
    /// Takes the error by value to fit `map_err`.
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn fail(&mut self, e: postgres::Error) -> StoreError {
        let kind = classify(&e);
        if kind == Kind::Lost {
            self.broken = true;
        }
        map_error(&e, kind, Some(&self.server))
    }

    /// The security of this connection, asking the server again.
    pub(crate) fn security(&mut self) -> Result<ConnectionSecurity, StoreError> {
        let p = probe(&mut self.client).map_err(|e| self.fail(e))?;
        Ok(ConnectionSecurity {
            server: self.server.to_string(),
            unix_socket: self.unix,
            ssl_mode: self.mode,
            tls: p.tls,
            server_read_only: p.read_only,
            server_in_recovery: p.in_recovery,
        })
    }
}

/// How an error of an established connection is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The connection is gone (closed, reset, terminated by the server).
    Lost,
    /// The server is busy or cancelled the statement; the connection may still work.
    Transient,
    /// The server accepts no writes.
    ReadOnly,
    Other,
}

pub(crate) fn classify(e: &postgres::Error) -> Kind {
    if e.is_closed() {
        return Kind::Lost;
    }
    match e.code() {
        Some(c) => {
            let code = c.code();
            if *c == SqlState::READ_ONLY_SQL_TRANSACTION {
                Kind::ReadOnly
            } else if code == "57P01" || code == "57P02" || code.starts_with("08") {
                Kind::Lost
            } else if code.starts_with("53")
                || code.starts_with("57P")
                || *c == SqlState::QUERY_CANCELED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
            {
                Kind::Transient
            } else {
                Kind::Other
            }
        }
        None if std::error::Error::source(e)
            .is_some_and(<dyn std::error::Error>::is::<std::io::Error>) =>
        {
            Kind::Lost
        }
        None => Kind::Other,
    }
}

/// The server's own message for a database error, else the driver's.
fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut msg = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                msg.push_str(": ");
                msg.push_str(detail);
            }
            msg
        }
        None => with_sources(e),
    }
}

/// An error and its sources, `: `-separated (the driver's `Display` leaves them out).
pub(crate) fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

pub(crate) fn map_error(e: &postgres::Error, kind: Kind, server: Option<&str>) -> StoreError {
    let at = server.map_or_else(String::new, |s| format!(" at {s}"));
    match kind {
        Kind::Lost => StoreError::Unavailable {
            reason: format!("the connection to PostgreSQL{at} was lost: {}", message(e)),
        },
        Kind::Transient => StoreError::Unavailable {
            reason: format!("PostgreSQL{at}: {}", message(e)),
        },
        Kind::ReadOnly => StoreError::ReadOnly {
            reason: format!(
                "PostgreSQL{at} accepts no writes ({}): it is a hot standby or set read-only; send writes to the primary, e.g. list every host with target_session_attrs=read-write",
                message(e)
            ),
        },
        Kind::Other => {
            let mut msg = message(e);
            if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                msg.push_str(
                    "; this role lacks a privilege the operation needs: migrations and restores need the schema owner, normal use the grants of PostgresStore::application_grants",
                );
            }
            StoreError::backend(BACKEND, msg)
        }
    }
}

/// Why connecting to one host failed: `(retrying may help, what happened and what to do)`.
fn connect_failure(
    e: &postgres::Error,
    host: &HostTarget,
    mode: SslMode,
    roots: &RootCerts,
) -> (bool, String) {
    let name = host
        .config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(n) => n.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    if let Some(r) = tls::find_rustls_error(e) {
        return (false, tls::describe(r, &name, mode, roots));
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let msg = message(e);
        return match code.code() {
            "28000" if db.message().contains("no encryption") => (
                false,
                format!(
                    "the server refused the connection: {msg}; its pg_hba.conf has no entry for an unencrypted connection from this client (it may accept only TLS, hostssl): connect with TLS, sslmode=verify-full (the default for TCP hosts)"
                ),
            ),
            "28000" if db.message().contains("certificate authentication failed") => (
                false,
                format!(
                    "the server refused the connection: {msg}; the client certificate's common name must be the user name (or be mapped to it in the server's pg_ident.conf)"
                ),
            ),
            "28000" if db.message().contains("certificate") => (
                false,
                format!(
                    "the server refused the connection: {msg}; name a client certificate the server's CA signed with sslcert= and sslkey="
                ),
            ),
            "28000" | "28P01" => (
                false,
                format!(
                    "authentication failed: {msg}; check the user name, the password (or password file) and the server's pg_hba.conf"
                ),
            ),
            "3D000" => (
                false,
                format!("{msg}; create the database first, or check dbname"),
            ),
            "57P03" => (
                true,
                format!("the server is not accepting connections yet: {msg}; retry shortly"),
            ),
            // Out of connections, a connection failure, or the server shutting down or
            // terminating the new session: another try may work.
            c if c.starts_with("53") || c.starts_with("08") || c.starts_with("57P") => (true, msg),
            _ => (false, msg),
        };
    }
    let text = with_sources(e);
    if text.contains("server does not support TLS") {
        return (
            false,
            format!(
                "the server does not accept TLS connections (its ssl setting is off), but sslmode={mode} requires TLS: enable ssl on the server, or on a trusted network connect with sslmode=disable"
            ),
        );
    }
    if text.contains("no hostname provided for TLS") {
        return (
            false,
            "TLS needs a host name to check the certificate against: give host=<name> (with hostaddr=<ip> for the address)".to_owned(),
        );
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => (
            true,
            "connection refused: no server is listening there (is it running, on this address and port?)".to_owned(),
        ),
        Some(std::io::ErrorKind::NotFound) if host.unix => (
            true,
            "no server socket there (is the server running, with this socket directory and port?)".to_owned(),
        ),
        Some(std::io::ErrorKind::TimedOut) => (
            true,
            "the TCP connection timed out (connect_timeout): the host is unreachable or drops the packets".to_owned(),
        ),
        _ => (true, text),
    }
}

/// Opens connections: each host in turn, with TLS as `sslmode` says, within the connect
/// timeout, until one is the kind of server `target_session_attrs` wants.
pub(crate) struct Connector {
    pub(crate) info: ConnInfo,
    tls: Option<MakeRustlsConnect>,
    tcp_mode: SslMode,
    roots: RootCerts,
    /// Whether the last server connected to accepts no writes.
    pub(crate) server_read_only: AtomicBool,
}

impl Connector {
    pub(crate) fn new(info: ConnInfo) -> Result<Connector, StoreError> {
        let tcp_mode = info.tcp_mode();
        let roots = info.roots();
        // A unix-socket-only string needs no TLS set-up (and no system roots).
        let tls = if info.has_tcp_host()? {
            tls::connector(tcp_mode, &roots, info.client_cert.as_ref())?
        } else {
            None
        };
        Ok(Connector {
            info,
            tls,
            tcp_mode,
            roots,
            server_read_only: AtomicBool::new(false),
        })
    }

    pub(crate) fn connect(&self) -> Result<PgConn, StoreError> {
        let mut hosts = self.info.hosts()?;
        if self.info.random_order {
            shuffle(&mut hosts);
        }
        let target = self.info.target;
        let mut failures: Vec<(String, bool, String)> = Vec::new();
        let mut fallback = None;
        for host in &hosts {
            match self.connect_host(host) {
                Ok((conn, p)) => {
                    if !target.accepts(p.in_recovery, p.read_only) {
                        failures.push((
                            host.label.clone(),
                            true,
                            format!(
                                "the server is {}, but target_session_attrs={} wants {}",
                                describe_server(&p),
                                target.name(),
                                match target {
                                    TargetSessionAttrs::ReadWrite => "one that accepts writes",
                                    TargetSessionAttrs::ReadOnly => "a read-only one",
                                    TargetSessionAttrs::Primary => "a primary",
                                    _ => "a standby",
                                }
                            ),
                        ));
                        continue;
                    }
                    if target == TargetSessionAttrs::PreferStandby && !p.in_recovery {
                        fallback.get_or_insert((conn, p));
                        continue;
                    }
                    return Ok(self.accept(conn, &p));
                }
                Err((transient, why)) => failures.push((host.label.clone(), transient, why)),
            }
        }
        if let Some((conn, p)) = fallback {
            return Ok(self.accept(conn, &p));
        }
        let reason = match failures.as_slice() {
            [(label, _, why)] => format!("cannot connect to PostgreSQL at {label}: {why}"),
            all => format!(
                "cannot connect to any of the {} PostgreSQL hosts: {}",
                all.len(),
                all.iter()
                    .map(|(l, _, w)| format!("{l}: {w}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        if failures.iter().any(|f| f.1) {
            Err(StoreError::Unavailable { reason })
        } else {
            Err(StoreError::backend(BACKEND, reason))
        }
    }

    fn accept(&self, conn: PgConn, p: &Probe) -> PgConn {
        self.server_read_only.store(p.read_only, Ordering::Relaxed);
        conn
    }

    fn connect_host(&self, host: &HostTarget) -> Result<(PgConn, Probe), (bool, String)> {
        let mode = if host.unix {
            SslMode::Disable
        } else {
            self.tcp_mode
        };
        let result = match self.attempt(host, mode) {
            // libpq's prefer: when TLS fails, try without it.
            Err(Attempt::Failed(e))
                if mode == SslMode::Prefer && tls::find_rustls_error(&e).is_some() =>
            {
                self.attempt(host, SslMode::Disable)
            }
            other => other,
        };
        match result {
            Ok((client, p)) => Ok((
                PgConn {
                    client,
                    statements: HashMap::new(),
                    server: host.label.as_str().into(),
                    unix: host.unix,
                    mode,
                    broken: false,
                },
                p,
            )),
            Err(Attempt::Failed(e)) => Err(connect_failure(&e, host, mode, &self.roots)),
            Err(Attempt::Spawn(e)) => Err((true, format!("cannot start a thread to connect: {e}"))),
            Err(Attempt::TimedOut(t)) => Err((
                true,
                format!(
                    "no answer within {} s (connect_timeout): the server or the network is not responding",
                    t.as_secs()
                ),
            )),
        }
    }

    /// One connection attempt, on a thread of its own so that the whole set-up (TCP, TLS,
    /// authentication, the probe) is bounded by the connect timeout; a server that accepts
    /// the TCP connection but never answers cannot hang the caller.
    fn attempt(&self, host: &HostTarget, mode: SslMode) -> Result<(Client, Probe), Attempt> {
        let mut config = host.config.clone();
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        let tls = if mode == SslMode::Disable {
            None
        } else {
            self.tls.clone()
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("strongroom-pg-connect".into())
            .spawn(move || {
                let connected = match tls {
                    Some(tls) => config.connect(tls),
                    None => config.connect(NoTls),
                };
                let result = connected.and_then(|mut c| probe(&mut c).map(|p| (c, p)));
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Err(Attempt::Spawn(e));
        }
        let received = match self.info.connect_timeout {
            Some(t) => rx.recv_timeout(t).map_err(|_| Attempt::TimedOut(t)),
            None => rx
                .recv()
                .map_err(|_| Attempt::TimedOut(Duration::from_secs(0))),
        };
        received?.map_err(Attempt::Failed)
    }
}

enum Attempt {
    Failed(postgres::Error),
    TimedOut(Duration),
    Spawn(std::io::Error),
}

fn describe_server(p: &Probe) -> &'static str {
    if p.in_recovery {
        "a standby (in recovery, read-only)"
    } else if p.read_only {
        "a primary set read-only (default_transaction_read_only)"
    } else {
        "a primary that accepts writes"
    }
}

/// `load_balance_hosts=random`: a shuffle seeded from the standard library's random hasher
/// keys (no cryptographic need).
fn shuffle<T>(items: &mut [T]) {
    use std::hash::{BuildHasher, Hasher};
    for i in (1..items.len()).rev() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        let j = (h.finish() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// A bounded pool of connections.
pub(crate) struct Pool {
    pub(crate) connector: Connector,
    max: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
}

struct Slots {
    idle: Vec<PgConn>,
    open: usize,
}

/// A connection taken from the pool, returned to it when dropped (unless broken).
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<PgConn>,
}

impl Pool {
    pub(crate) fn new(connector: Connector, max: usize) -> Pool {
        Pool {
            connector,
            max: max.max(1),
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// An idle connection, or a new one when fewer than the maximum are open; waits for
    /// one to come back otherwise.
    pub(crate) fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = slots.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if slots.open < self.max {
                slots.open += 1;
                drop(slots);
                return match self.connector.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
                        slots.open -= 1;
                        drop(slots);
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable {
                    reason: format!(
                        "all {} PostgreSQL connections of this store stayed in use for {} s (each open snapshot holds one): raise PostgresOptions::pool_size or hold fewer snapshots",
                        self.max,
                        POOL_WAIT.as_secs()
                    ),
                });
            }
            slots = self
                .freed
                .wait_timeout(slots, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Drops every idle connection (after one was found dead: the others probably are too,
    /// as after a server restart).
    pub(crate) fn flush_idle(&self) {
        let idle = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let idle = std::mem::take(&mut slots.idle);
            slots.open -= idle.len();
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }
}

impl Deref for Pooled<'_> {
    type Target = PgConn;

    fn deref(&self) -> &PgConn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut PgConn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let keep = !conn.broken && !conn.client.is_closed();
        {
            let mut slots = self
                .pool
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if keep {
                slots.idle.push(conn);
            } else {
                slots.open -= 1;
                drop(slots);
                drop(conn);
            }
        }
        self.pool.freed.notify_one();
    }
}
