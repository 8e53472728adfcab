//! Connection strings: libpq's `key=value` and URL forms.
//!
//! The driver (`tokio-postgres`) parses most keys. strongroom takes out and implements the
//! ones it handles differently: TLS (`sslmode` with libpq's five modes, `sslrootcert`,
//! `sslcert`, `sslkey`), host selection (`target_session_attrs` with libpq's six values,
//! `load_balance_hosts`) and `connect_timeout` (which bounds the whole connection set-up,
//! not only the TCP handshake, and has a default).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use postgres::config::Host;
use strongroom_store::StoreError;

/// How long connecting to one host may take when the connection string does not say
/// (`connect_timeout`, in seconds as in libpq; `0` waits without limit).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// libpq's smallest `connect_timeout`: a value of 1 means 2 seconds.
const MIN_CONNECT_TIMEOUT: u64 = 2;

/// libpq's `sslmode`: whether the connection to a TCP host is encrypted, and what is
/// checked about the server's certificate.
///
/// strongroom's default for a TCP host is [`SslMode::VerifyFull`] (libpq's is `prefer`),
/// against the system's CA roots unless `sslrootcert` names a file. A unix socket is local
/// and needs no TLS: the mode does not apply to it.
///
/// ```
/// use strongroom_postgres::SslMode;
///
/// assert_eq!("verify-full".parse::<SslMode>().ok(), Some(SslMode::VerifyFull));
/// assert_eq!(SslMode::Require.to_string(), "require");
/// assert!(SslMode::VerifyCa.verifies_certificate() && !SslMode::VerifyCa.verifies_host_name());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// No TLS. Passwords and every row cross the network in clear (values stay
    /// ciphertext, but names of tables, row versions and the login are visible).
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    /// libpq's `allow` is read as `prefer`.
    Prefer,
    /// TLS or no connection; the certificate is not checked (with `sslrootcert`, it is,
    /// as in libpq: then the same as [`SslMode::VerifyCa`]).
    Require,
    /// TLS, and the server's certificate must chain to a trusted root; its host name is
    /// not checked.
    VerifyCa,
    /// TLS, the certificate must chain to a trusted root and name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// libpq's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must chain to a trusted root.
    pub fn verifies_certificate(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// Whether the server's certificate must also name the host.
    pub fn verifies_host_name(self) -> bool {
        self == SslMode::VerifyFull
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SslMode {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::invalid(format!(
                    "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// libpq's `target_session_attrs`: which kind of server among the hosts is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetSessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl TargetSessionAttrs {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "any" => Self::Any,
            "read-write" => Self::ReadWrite,
            "read-only" => Self::ReadOnly,
            "primary" => Self::Primary,
            "standby" => Self::Standby,
            "prefer-standby" => Self::PreferStandby,
            other => {
                return Err(StoreError::invalid(format!(
                    "target_session_attrs={other:?} is not one of any, read-write, read-only, primary, standby, prefer-standby"
                )));
            }
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
        }
    }

    /// Whether every server this target accepts refuses writes.
    pub(crate) fn only_read_only(self) -> bool {
        matches!(self, Self::ReadOnly | Self::Standby)
    }

    /// Whether a server with these properties fits (`prefer-standby` accepts anything; the
    /// caller prefers standbys).
    pub(crate) fn accepts(self, in_recovery: bool, read_only: bool) -> bool {
        match self {
            Self::Any | Self::PreferStandby => true,
            Self::ReadWrite => !read_only,
            Self::ReadOnly => read_only,
            Self::Primary => !in_recovery,
            Self::Standby => in_recovery,
        }
    }
}

/// Where the trusted roots for server certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RootCerts {
    /// The platform's CA store (`sslrootcert` absent, or `sslrootcert=system`).
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

impl fmt::Display for RootCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCerts::System => f.write_str("the system's CA roots"),
            RootCerts::File(p) => write!(f, "sslrootcert={}", p.display()),
        }
    }
}

/// A parsed connection string. No `Debug` output shows the password.
pub(crate) struct ConnInfo {
    /// Everything the driver parses (hosts, user, password, dbname, ...).
    pub(crate) base: postgres::Config,
    /// `sslmode`, when given.
    pub(crate) ssl_mode: Option<SslMode>,
    /// `sslrootcert`; `None` when absent (then the system roots).
    pub(crate) root_file: Option<RootCerts>,
    /// `sslcert` and `sslkey`.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) target: TargetSessionAttrs,
    /// `None`: wait without limit (`connect_timeout=0`).
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) random_order: bool,
}

/// One host to try, with a driver config for it alone.
pub(crate) struct HostTarget {
    pub(crate) config: postgres::Config,
    /// `db.example:5432`, `db.example (10.0.0.5):5432` or `/run/postgresql (unix socket, port 5432)`.
    pub(crate) label: String,
    pub(crate) unix: bool,
}

impl ConnInfo {
    /// Parses a libpq connection string or URL.
    pub(crate) fn parse(s: &str) -> Result<ConnInfo, StoreError> {
        let (rest, ours) = split(s.trim())?;
        let base: postgres::Config = rest.parse().map_err(|e: postgres::Error| {
            let why = std::error::Error::source(&e)
                .map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
            StoreError::invalid(format!(
                "cannot parse the PostgreSQL connection string: {why}"
            ))
        })?;
        let mut info = ConnInfo {
            base,
            ssl_mode: None,
            root_file: None,
            client_cert: None,
            target: TargetSessionAttrs::Any,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            random_order: false,
        };
        let (mut cert, mut key) = (None, None);
        for (k, v) in ours {
            match k.as_str() {
                "sslmode" => info.ssl_mode = Some(v.parse()?),
                "sslrootcert" => {
                    info.root_file = Some(if v == "system" {
                        RootCerts::System
                    } else {
                        RootCerts::File(PathBuf::from(v))
                    });
                }
                "sslcert" => cert = Some(PathBuf::from(v)),
                "sslkey" => key = Some(PathBuf::from(v)),
                "sslpassword" => {
                    return Err(StoreError::invalid(
                        "sslpassword: encrypted client keys are not supported; give sslkey an unencrypted key file readable only by this user (mode 0600)",
                    ));
                }
                "target_session_attrs" => info.target = TargetSessionAttrs::parse(&v)?,
                "load_balance_hosts" => {
                    info.random_order = match v.as_str() {
                        "disable" => false,
                        "random" => true,
                        other => {
                            return Err(StoreError::invalid(format!(
                                "load_balance_hosts={other:?} is not one of disable, random"
                            )));
                        }
                    };
                }
                "connect_timeout" => {
                    let secs: i64 = v.trim().parse().map_err(|_| {
                        StoreError::invalid(format!(
                            "connect_timeout={v:?} is not a whole number of seconds"
                        ))
                    })?;
                    info.connect_timeout = u64::try_from(secs)
                        .ok()
                        .filter(|s| *s > 0)
                        .map(|s| Duration::from_secs(s.max(MIN_CONNECT_TIMEOUT)));
                }
                _ => unreachable!("split only returns the keys of OURS"),
            }
        }
        info.client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(StoreError::invalid(
                    "sslcert is given without sslkey: name the client certificate's private key file too",
                ));
            }
            (None, Some(_)) => {
                return Err(StoreError::invalid(
                    "sslkey is given without sslcert: name the client certificate file too",
                ));
            }
        };
        if info.ssl_mode == Some(SslMode::Disable) && info.client_cert.is_some() {
            return Err(StoreError::invalid(
                "sslcert/sslkey need TLS, but sslmode=disable: remove one or the other",
            ));
        }
        info.hosts()?;
        Ok(info)
    }

    /// The TLS mode used for TCP hosts: the given one (`require` with `sslrootcert` is
    /// `verify-ca`, as in libpq), else `verify-full`.
    pub(crate) fn tcp_mode(&self) -> SslMode {
        match self.ssl_mode {
            None => SslMode::VerifyFull,
            Some(SslMode::Require) if matches!(self.root_file, Some(RootCerts::File(_))) => {
                SslMode::VerifyCa
            }
            Some(m) => m,
        }
    }

    /// Where trusted roots come from.
    pub(crate) fn roots(&self) -> RootCerts {
        self.root_file.clone().unwrap_or(RootCerts::System)
    }

    /// Whether any host is reached over TCP.
    pub(crate) fn has_tcp_host(&self) -> Result<bool, StoreError> {
        Ok(self.hosts()?.iter().any(|h| !h.unix))
    }

    /// The hosts in connection-string order, each with its own driver config.
    pub(crate) fn hosts(&self) -> Result<Vec<HostTarget>, StoreError> {
        let hosts = self.base.get_hosts();
        let addrs = self.base.get_hostaddrs();
        let ports = self.base.get_ports();
        let n = hosts.len().max(addrs.len());
        if n == 0 {
            return Err(StoreError::invalid(
                "the PostgreSQL connection string names no host: add host=/run/postgresql (a unix socket directory) or host=db.example",
            ));
        }
        if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
            return Err(StoreError::invalid(format!(
                "the connection string names {} hosts but {} hostaddrs: give one hostaddr per host",
                hosts.len(),
                addrs.len()
            )));
        }
        if ports.len() > 1 && ports.len() != n {
            return Err(StoreError::invalid(format!(
                "the connection string names {n} hosts but {} ports: give one port, or one per host",
                ports.len()
            )));
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let host = hosts.get(i);
            let addr = addrs.get(i);
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            let mut c = self.common();
            c.port(port);
            let (label, unix) = match (host, addr) {
                (Some(Host::Unix(path)), _) => {
                    c.host_path(path);
                    (
                        format!("{} (unix socket, port {port})", path.display()),
                        true,
                    )
                }
                (Some(Host::Tcp(name)), Some(ip)) => {
                    c.host(name);
                    c.hostaddr(*ip);
                    (format!("{name} ({ip}):{port}"), false)
                }
                (Some(Host::Tcp(name)), None) => {
                    c.host(name);
                    (format!("{}:{port}", bracket(name)), false)
                }
                (None, Some(ip)) => {
                    c.hostaddr(*ip);
                    (format!("{}:{port}", bracket(&ip.to_string())), false)
                }
                (None, None) => unreachable!("i < max(hosts, hostaddrs)"),
            };
            out.push(HostTarget {
                config: c,
                label,
                unix,
            });
        }
        Ok(out)
    }

    /// A config with everything but the hosts, TLS and host selection.
    fn common(&self) -> postgres::Config {
        let b = &self.base;
        let mut c = postgres::Config::new();
        if let Some(v) = b.get_user() {
            c.user(v);
        }
        if let Some(v) = b.get_password() {
            c.password(v);
        }
        if let Some(v) = b.get_dbname() {
            c.dbname(v);
        }
        if let Some(v) = b.get_options() {
            c.options(v);
        }
        if let Some(v) = b.get_application_name() {
            c.application_name(v);
        }
        if let Some(v) = b.get_tcp_user_timeout() {
            c.tcp_user_timeout(*v);
        }
        if let Some(v) = self.connect_timeout {
            c.connect_timeout(v);
        }
        c.ssl_negotiation(b.get_ssl_negotiation())
            .keepalives(b.get_keepalives())
            .keepalives_idle(b.get_keepalives_idle())
            .channel_binding(b.get_channel_binding());
        if let Some(v) = b.get_keepalives_interval() {
            c.keepalives_interval(v);
        }
        if let Some(v) = b.get_keepalives_retries() {
            c.keepalives_retries(v);
        }
        c
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .hosts()
            .map(|h| h.into_iter().map(|h| h.label).collect())
            .unwrap_or_default();
        f.debug_struct("ConnInfo")
            .field("hosts", &hosts)
            .field("user", &self.base.get_user())
            .field("dbname", &self.base.get_dbname())
            .field("sslmode", &self.ssl_mode)
            .field("sslrootcert", &self.root_file)
            .field("client_cert", &self.client_cert.as_ref().map(|c| &c.0))
            .field("target_session_attrs", &self.target.name())
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The keys strongroom handles itself.
const OURS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "target_session_attrs",
    "load_balance_hosts",
    "connect_timeout",
];

/// Splits our keys from a connection string: `(the rest for the driver, our pairs)`.
fn split(s: &str) -> Result<(String, Vec<(String, String)>), StoreError> {
    let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(split_url(s));
    }
    let mut rest = String::with_capacity(s.len());
    let mut ours = Vec::new();
    for (k, v) in parse_pairs(s)? {
        if OURS.contains(&k.as_str()) {
            ours.push((k, v));
        } else {
            if !rest.is_empty() {
                rest.push(' ');
            }
            rest.push_str(&k);
            rest.push_str("='");
            for c in v.chars() {
                if c == '\'' || c == '\\' {
                    rest.push('\\');
                }
                rest.push(c);
            }
            rest.push('\'');
        }
    }
    Ok((rest, ours))
}

fn split_url(s: &str) -> (String, Vec<(String, String)>) {
    let Some((head, query)) = s.split_once('?') else {
        return (s.to_owned(), Vec::new());
    };
    let mut ours = Vec::new();
    let mut kept = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(k);
        if OURS.contains(&key.as_str()) {
            ours.push((key, percent_decode(v)));
        } else {
            kept.push(part);
        }
    }
    let rest = if kept.is_empty() {
        head.to_owned()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    (rest, ours)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(byte) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's `key = value` pairs: values may be single-quoted, `\` escapes the next character.
fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, StoreError> {
    let bad = |what: &str| {
        StoreError::invalid(format!(
            "cannot parse the PostgreSQL connection string: {what}"
        ))
    };
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(bad(&format!("expected `=` after `{key}`")));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    None => return Err(bad(&format!("the value of `{key}` has no closing quote"))),
                    Some('\'') => break,
                    Some('\\') => value.extend(it.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_strings_split_our_keys_out() {
        let info = ConnInfo::parse(
            "host=db.example port=6432 user=app password='it''s' dbname=vault sslmode=verify-ca sslrootcert=/etc/ca.pem connect_timeout=7 target_session_attrs=standby", // pragma: allowlist secret
        );
        // '' is not an escape in libpq: the value ends at the second quote
        assert!(info.is_err());
        let info = ConnInfo::parse(
            "host=db.example port=6432 user=app password='it\\'s a \\\\ secret' dbname=vault sslmode=verify-ca sslrootcert=/etc/ca.pem connect_timeout=7 target_session_attrs=standby", // pragma: allowlist secret
        )
        .unwrap();
        assert_eq!(info.base.get_password(), Some(&b"it's a \\ secret"[..]));
        assert_eq!(info.base.get_dbname(), Some("vault"));
        assert_eq!(info.ssl_mode, Some(SslMode::VerifyCa));
        assert_eq!(
            info.root_file,
            Some(RootCerts::File(PathBuf::from("/etc/ca.pem")))
        );
        assert_eq!(info.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(info.target, TargetSessionAttrs::Standby);
        let hosts = info.hosts().unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].label, "db.example:6432");
        let shown = format!("{info:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn urls_split_our_keys_out() {
        let info = ConnInfo::parse(
            "postgresql://app:pw@a.example:5432,b.example:5433/vault?sslmode=require&application_name=x&sslrootcert=%2Ftmp%2Fca.pem&target_session_attrs=read-write", // pragma: allowlist secret
        )
        .unwrap();
        assert_eq!(info.tcp_mode(), SslMode::VerifyCa, "require + a root file");
        assert_eq!(info.base.get_application_name(), Some("x"));
        assert_eq!(info.target, TargetSessionAttrs::ReadWrite);
        let labels: Vec<_> = info.hosts().unwrap().into_iter().map(|h| h.label).collect();
        assert_eq!(labels, ["a.example:5432", "b.example:5433"]);
    }

    #[test]
    fn defaults_and_limits() {
        let tcp = ConnInfo::parse("host=db.example dbname=v").unwrap();
        assert_eq!(tcp.tcp_mode(), SslMode::VerifyFull);
        assert_eq!(tcp.roots(), RootCerts::System);
        assert_eq!(tcp.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
        let unix = ConnInfo::parse("host=/run/postgresql dbname=v").unwrap();
        assert!(unix.hosts().unwrap()[0].unix);
        assert!(!unix.has_tcp_host().unwrap());
        let one = ConnInfo::parse("host=h connect_timeout=1").unwrap();
        assert_eq!(one.connect_timeout, Some(Duration::from_secs(2)));
        let none = ConnInfo::parse("host=h connect_timeout=0").unwrap();
        assert_eq!(none.connect_timeout, None);
        let ip = ConnInfo::parse("hostaddr=::1 port=1").unwrap();
        assert_eq!(ip.hosts().unwrap()[0].label, "[::1]:1");
        let system = ConnInfo::parse("host=h sslmode=require sslrootcert=system").unwrap();
        assert_eq!(system.tcp_mode(), SslMode::Require);
    }

    #[test]
    fn bad_strings_are_refused_with_the_reason() {
        for (s, says) in [
            ("host=h sslmode=sometimes", "sslmode"),
            (
                "host=h target_session_attrs=any-will-do",
                "target_session_attrs",
            ),
            ("host=h sslcert=/c.pem", "sslkey"),
            ("host=h sslkey=/k.pem", "sslcert"),
            (
                "host=h sslmode=disable sslcert=/c sslkey=/k",
                "sslmode=disable",
            ),
            ("host=h sslpassword=x", "encrypted client keys"), // pragma: allowlist secret
            ("host=h connect_timeout=soon", "connect_timeout"),
            ("host=a,b port=1,2,3", "ports"),
            ("dbname=x", "names no host"),
            ("host='h", "closing quote"),
            ("host h", "expected `=`"),
            ("host=h nosuchkey=1", "nosuchkey"),
        ] {
            let e = ConnInfo::parse(s).unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn target_session_attrs_accept() {
        use TargetSessionAttrs as T;
        assert!(T::ReadWrite.accepts(false, false));
        assert!(!T::ReadWrite.accepts(true, true));
        assert!(T::Standby.accepts(true, true) && !T::Standby.accepts(false, false));
        assert!(T::Primary.accepts(false, true) && !T::Primary.accepts(true, true));
        assert!(T::ReadOnly.accepts(false, true));
        assert!(T::Standby.only_read_only() && !T::PreferStandby.only_read_only());
    }
}
