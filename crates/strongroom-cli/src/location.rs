//! Where the vault and the local state live: `--vault`, `--state-dir`, pins files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use strongroom::crypto::VaultId;
use strongroom::sharing::Pins;
use strongroom::store::Store;

/// A parsed `--vault` value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (URL or libpq key=value form). Never printed: it may
    /// carry a password.
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Location::Postgres(_) => f.write_str("Postgres(<connection string>)"),
        }
    }
}

impl Location {
    /// Parses `--vault` (or the default path when absent).
    pub(crate) fn parse(value: Option<&str>) -> Result<Self> {
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Location::Sqlite(default_vault_path()?));
        };
        if v.starts_with("postgres://") || v.starts_with("postgresql://") || looks_like_libpq(v) {
            return Ok(Location::Postgres(v.to_owned()));
        }
        if let Some(rest) = v.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                bail!("--vault sqlite: needs a path, e.g. sqlite:///var/lib/app/vault.sqlite");
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        Ok(Location::Sqlite(PathBuf::from(v)))
    }

    /// A description safe to print (no connection string).
    pub(crate) fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(_) => "the PostgreSQL vault".to_owned(),
        }
    }

    /// Opens the store. `create`: the SQLite file (and its directory, 0700) may be created;
    /// otherwise a missing file is an error instead of a new empty vault.
    pub(crate) fn open(&self, create: bool) -> Result<Arc<dyn Store>> {
        match self {
            Location::Sqlite(path) => {
                if !create && !path.exists() {
                    bail!(
                        "no vault at {}: create one with `strongroom init`, or pick one with --vault",
                        path.display()
                    );
                }
                if create && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_private_dir(dir)?;
                }
                tracing::debug!(path = %path.display(), "opening sqlite vault");
                let options = sqlite_options();
                let store = if create {
                    strongroom_sqlite::SqliteStore::open(path, options)
                } else {
                    // Never turns a mistyped or empty file into a new vault.
                    strongroom_sqlite::SqliteStore::open_existing(path, options)
                }
                .with_context(|| format!("cannot open the vault {}", path.display()))?;
                Ok(Arc::new(store))
            }
            Location::Postgres(conn) => open_postgres(conn),
        }
    }
}

/// The CLI's SQLite options: every commit is durable (fsynced) before the command goes on,
/// because it then saves pins recording that commit outside the database. With SQLite's
/// default `NORMAL`, a power cut could take the commit back while the pins stay ahead, and
/// every later command would report the vault as rolled back.
fn sqlite_options() -> strongroom_sqlite::SqliteOptions {
    strongroom_sqlite::SqliteOptions::default()
        .with_synchronous(strongroom_sqlite::Synchronous::Full)
}

#[cfg(feature = "postgres")]
fn open_postgres(conn: &str) -> Result<Arc<dyn Store>> {
    Ok(postgres_store(conn)?)
}

/// Connects to a PostgreSQL vault (TLS, hosts and timeouts as the connection string says).
#[cfg(feature = "postgres")]
pub(crate) fn postgres_store(conn: &str) -> Result<Arc<strongroom_postgres::PostgresStore>> {
    tracing::debug!("connecting to the postgres vault");
    let store = strongroom_postgres::PostgresStore::connect(
        conn,
        strongroom_postgres::PostgresOptions::default(),
    )
    .context("cannot open the PostgreSQL vault")?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_conn: &str) -> Result<Arc<dyn Store>> {
    bail!(
        "this strongroom was built without PostgreSQL support: rebuild with the cargo feature `postgres`"
    )
}

/// Whether a PostgreSQL connection string carries a password: after the user name in a
/// URL's authority (`user:…@host`), as a `password` URL parameter, or as a libpq `password`
/// key (spaces around its `=` allowed).
pub(crate) fn has_password(conn: &str) -> bool {
    let conn = conn.trim();
    let lower = conn.to_ascii_lowercase();
    if let Some(rest) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
    {
        let (authority, query) = match rest.split_once('?') {
            Some((before, query)) => (before, query),
            None => (rest, ""),
        };
        let authority = authority.split('/').next().unwrap_or("");
        let userinfo_password = authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
        let query_password = query
            .split('&')
            .any(|kv| kv.split('=').next() == Some("password"));
        return userinfo_password || query_password;
    }
    // libpq key=value pairs: a `password` key
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let at = from + i;
        let starts_word = at == 0 || bytes[at - 1].is_ascii_whitespace();
        let after = lower[at + "password".len()..].trim_start();
        if starts_word && after.starts_with('=') {
            return true;
        }
        from = at + 1;
    }
    false
}

/// `host=/run/postgresql dbname=vault`: a libpq key=value string.
fn looks_like_libpq(v: &str) -> bool {
    const KEYS: &[&str] = &[
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "target_session_attrs",
        "application_name",
        "options",
        "connect_timeout",
    ];
    v.split_whitespace().next().is_some_and(|first| {
        first
            .split_once('=')
            .is_some_and(|(k, _)| KEYS.contains(&k.trim()))
    })
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set: pass --vault and --state-dir explicitly")
}

fn xdg(var: &str, fallback: &[&str]) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return Ok(dir);
        }
    }
    let mut p = home()?;
    p.extend(fallback);
    Ok(p)
}

/// `$XDG_DATA_HOME/strongroom/vault.sqlite` or `~/.local/share/strongroom/vault.sqlite`.
pub(crate) fn default_vault_path() -> Result<PathBuf> {
    Ok(xdg("XDG_DATA_HOME", &[".local", "share"])?
        .join("strongroom")
        .join("vault.sqlite"))
}

/// `$XDG_STATE_HOME/strongroom` or `~/.local/state/strongroom`.
pub(crate) fn default_state_dir() -> Result<PathBuf> {
    Ok(xdg("XDG_STATE_HOME", &[".local", "state"])?.join("strongroom"))
}

/// Creates a directory (and parents) with mode 0700 for the new ones, durably: each new
/// directory's entry in its parent is synced, or a power cut could take the directory
/// back with the files (pins) synced into it.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let what = || format!("cannot create the directory {}", dir.display());
    // The directories to create, innermost first.
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).with_context(what)?;
    for new in missing.iter().rev() {
        sync_dir(parent_dir(new)).with_context(what)?;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates `path` with mode 0600 and writes `bytes` (fails if it exists unless `replace`,
/// which writes a temporary file and renames it over `path`).
pub(crate) fn write_private_file(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let what = || format!("cannot write {}", path.display());
    if replace {
        let dir = parent_dir(path);
        let mut tmp = tempfile::Builder::new()
            .prefix(".strongroom-")
            .tempfile_in(dir)
            .with_context(what)?;
        // tempfile creates files 0600.
        tmp.write_all(bytes).with_context(what)?;
        tmp.as_file().sync_all().with_context(what)?;
        tmp.persist(path).map_err(|e| e.error).with_context(what)?;
        return sync_dir(dir).with_context(what);
    }
    let mut f = private_options()
        .open(path)
        .with_context(|| format!("cannot create {} (does it exist already?)", path.display()))?;
    f.write_all(bytes).with_context(what)?;
    f.sync_all().with_context(what)?;
    sync_dir(parent_dir(path)).with_context(what)
}

/// Makes a rename or a new file in `dir` durable: without it, a power cut may bring back
/// the old directory entry even though the file's content was synced.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Options that create a new file with mode 0600 (failing if it exists).
pub(crate) fn private_options() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// The local state directory: pins, one file per vault.
pub(crate) struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub(crate) fn new(dir: Option<&Path>) -> Result<Self> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => default_state_dir()?,
        };
        Ok(Self { dir })
    }

    pub(crate) fn pins_path(&self, vault: VaultId) -> PathBuf {
        self.dir.join(format!("{vault}.pins"))
    }

    /// The pins saved for `vault` (empty on first use).
    pub(crate) fn load_pins(&self, vault: VaultId) -> Result<Pins> {
        let path = self.pins_path(vault);
        match fs::read(&path) {
            Ok(bytes) => {
                let pins = Pins::decode(&bytes).with_context(|| {
                    format!(
                        "the pins file {} is corrupt; if you trust the vault as it is now, delete the file to pin it again",
                        path.display()
                    )
                })?;
                if pins.vault_id().is_some_and(|v| v != vault) {
                    bail!(
                        "the pins file {} belongs to another vault; delete it to pin this vault again",
                        path.display()
                    );
                }
                Ok(pins)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(vault = %vault, "no pins yet for this vault: trusting it on first use");
                Ok(Pins::new())
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The last audit verification of `vault` (`None` before the first one).
    pub(crate) fn load_audit_pin(&self, vault: VaultId) -> Result<Option<strongroom::AuditReport>> {
        let path = self.dir.join(format!("{vault}.audit"));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut parts = text.split_whitespace();
        let (Some(entries), Some(head), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!(
                "the audit pin {} is corrupt; delete it to pin the audit log again",
                path.display()
            );
        };
        let entries = entries
            .parse()
            .with_context(|| format!("the audit pin {} is corrupt", path.display()))?;
        Ok(Some(strongroom::AuditReport::new(entries, head)))
    }

    /// Saves the audit verification `report` of `vault` (0600, atomically).
    pub(crate) fn save_audit_pin(
        &self,
        vault: VaultId,
        report: &strongroom::AuditReport,
    ) -> Result<()> {
        create_private_dir(&self.dir)?;
        let path = self.dir.join(format!("{vault}.audit"));
        write_private_file(
            &path,
            format!("{} {}\n", report.entries, report.head_hash).as_bytes(),
            true,
        )
    }

    /// Saves `pins` for `vault` (0600, atomically; the directory is created 0700).
    pub(crate) fn save_pins(&self, vault: VaultId, pins: &Pins) -> Result<()> {
        if pins.is_empty() {
            return Ok(());
        }
        create_private_dir(&self.dir)?;
        let path = self.pins_path(vault);
        if fs::read(&path).is_ok_and(|old| old == pins.encode()) {
            return Ok(());
        }
        write_private_file(&path, &pins.encode(), true)?;
        tracing::debug!(path = %path.display(), "pins saved");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_commits_are_durable_before_pins_are_saved() {
        assert_eq!(
            sqlite_options().synchronous,
            strongroom_sqlite::Synchronous::Full
        );
    }

    #[test]
    fn private_files_are_written_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pins");
        write_private_file(&p, b"one", false).unwrap();
        assert!(write_private_file(&p, b"two", false).is_err());
        write_private_file(&p, b"three", true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert!(write_private_file(&dir.path().join("no/such/dir/f"), b"x", true).is_err());
    }

    #[test]
    fn private_dirs_are_created_with_their_parents() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        create_private_dir(&nested).unwrap();
        for d in [dir.path().join("a"), dir.path().join("a/b"), nested.clone()] {
            assert_eq!(
                fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
        create_private_dir(&nested).unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(create_private_dir(&file.join("d")).is_err());
    }

    #[test]
    fn vault_locations() {
        assert_eq!(
            Location::parse(Some("sqlite:///var/lib/v.sqlite")).unwrap(),
            Location::Sqlite("/var/lib/v.sqlite".into())
        );
        assert_eq!(
            Location::parse(Some("./v.sqlite")).unwrap(),
            Location::Sqlite("./v.sqlite".into())
        );
        for pg in [
            "postgres://u@h/db",
            "postgresql://u:pw@h/db", // pragma: allowlist secret
            "host=/run/postgresql dbname=vault",
            "dbname=vault",
            "sslrootcert=/etc/ca.pem host=db.example dbname=vault",
            "target_session_attrs=read-write host=a,b dbname=vault",
        ] {
            assert_eq!(
                Location::parse(Some(pg)).unwrap(),
                Location::Postgres(pg.into())
            );
        }
        assert!(
            !format!(
                "{:?}",
                Location::parse(Some("postgres://u:pw@h/db")).unwrap()
            )
            .contains("pw")
        );
        assert!(Location::parse(Some("sqlite:")).is_err());
        // passwords in connection strings
        for with in [
            "postgres://u:pw@h/db",                          // pragma: allowlist secret
            "postgresql://u:pw@h:5432/db?sslmode=disable",   // pragma: allowlist secret
            "POSTGRES://u:pw@h/db",                          // pragma: allowlist secret
            "postgres://u@h/db?password=pw",                 // pragma: allowlist secret
            "postgres://u@h/db?sslmode=disable&password=pw", // pragma: allowlist secret
            "host=h password=pw dbname=db",                  // pragma: allowlist secret
            "password=pw host=h",                            // pragma: allowlist secret
            "host=h password = 'p w' dbname=db",             // pragma: allowlist secret
            "host=h\tPASSWORD=pw",                           // pragma: allowlist secret
        ] {
            assert!(has_password(with), "{with}");
        }
        for without in [
            "postgres://u@h/db",
            "postgres:///db?host=/run/postgresql",
            "postgres://h/db",
            "postgres://u@h/db/with:colon",
            "host=/run/postgresql dbname=vault user=password",
            "host=h dbname=passwords",
            "host=h passwordless=1",
            "host=h application_name=mypassword",
        ] {
            assert!(!has_password(without), "{without}");
        }
        // a file name with '=' that is not a libpq key stays a path
        assert_eq!(
            Location::parse(Some("a=b.sqlite")).unwrap(),
            Location::Sqlite("a=b.sqlite".into())
        );
    }
}
