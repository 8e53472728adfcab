//! `SqliteStore`: the `Store` trait on a WAL-mode SQLite file.

use std::fmt;
use std::fs::OpenOptions;
use std::ops::{Bound, Deref};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use strongroom_store::backend::{
    ScanPlan, check_log_table, check_row, check_scan_limit, plan_scan, require, version_from_sql,
    version_to_sql,
};
use strongroom_store::{
    Batch, Committed, Cursor, Expect, Generation, Op, Page, ReadView, Row, SCHEMA_VERSION,
    ScanRange, Snapshot, Store, StoreError, Table, TableRow, Versioned, log_key, parse_log_key,
};

use crate::SqliteOptions;
use crate::schema::{self, TableSql};

const BACKEND: &str = "sqlite";

/// Statements cached per connection (10 tables × a handful of statements and scans).
const STATEMENT_CACHE: usize = 256;

/// WAL size kept after a checkpoint (bytes); a larger WAL is truncated back to this.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// Maps a SQLite error: not a database → `InvalidRequest`, busy/locked → `Unavailable`,
/// anything else → `Backend`.
pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        return StoreError::invalid(format!(
            "the file is not a SQLite database (nor a strongroom vault): {e}"
        ));
    }
    if is_busy(&e) {
        StoreError::Unavailable {
            reason: format!("the SQLite database is locked by another writer: {e}"),
        }
    } else {
        StoreError::backend(BACKEND, e)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// A strongroom [`Store`] in one SQLite file (bundled SQLite, WAL mode).
///
/// - The file (and SQLite's `-wal` and `-shm` files beside it) is created with mode 0600.
/// - Commits run in one `BEGIN IMMEDIATE` transaction per batch with cached prepared
///   statements; a compare-and-swap is a conditional `UPDATE`/`INSERT` whose row count
///   decides, so concurrent writers (threads or processes) never lose an update. A lock
///   held by another writer is waited for up to `busy_timeout`, then the commit fails
///   with `StoreError::Unavailable`.
/// - Durability follows [`SqliteOptions::synchronous`](crate::SqliteOptions): with the
///   default `Normal`, a power loss may lose the last commits but never corrupts the file;
///   with `Full`, a commit is durable when `commit` returns.
/// - A [`Snapshot`] is a read transaction held on its own connection: WAL readers see
///   one instant while writers go on.
/// - [`SqliteStore::backup_to`] writes a consistent, compacted copy (`VACUUM INTO`).
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    pool: Mutex<Vec<Connection>>,
    sql: Vec<TableSql>,
}

impl SqliteStore {
    /// Opens the store in the SQLite file at `path`, creating it (mode 0600) if missing,
    /// switching it to WAL mode and migrating its schema to the current version. An
    /// existing empty file becomes a store too (and gets mode 0600).
    ///
    /// Nothing is written before the file is known to be a strongroom store (or empty),
    /// and an up-to-date store is opened without taking the write lock. Fails with
    /// `StoreError::SchemaTooNew` if a newer strongroom wrote the file, and with
    /// `StoreError::InvalidRequest` if it is another application's database, a directory,
    /// or a file this process may not write.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        Self::open_inner(path.as_ref(), options, true)
    }

    /// Opens an existing store, like [`SqliteStore::open`] but never making one: a
    /// missing or empty file is `StoreError::InvalidRequest`. For tools that read or
    /// change a vault (rather than create it), so a mistyped path is reported instead of
    /// becoming an empty store.
    pub fn open_existing(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        Self::open_inner(path.as_ref(), options, false)
    }

    fn open_inner(
        path: &Path,
        options: SqliteOptions,
        create: bool,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        prepare_file(&path, create)?;
        let store = SqliteStore {
            sql: Table::ALL.into_iter().map(TableSql::new).collect(),
            pool: Mutex::new(Vec::new()),
            path,
            options,
        };
        let conn = store.new_connection()?;
        // Read-only checks first: another application's database is left as it was.
        let found = schema::inspect(&conn)?;
        let version = if found < SCHEMA_VERSION {
            let conn = store.switch_to_wal(conn)?;
            let version = schema::migrate(&conn)?;
            store.release(conn);
            version
        } else {
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(sql_err)?;
            let conn = if mode.eq_ignore_ascii_case("wal") {
                conn
            } else {
                store.switch_to_wal(conn)?
            };
            if found > 0 && !schema::layout_is_current(&conn)? {
                store.try_upgrade_layout(&conn)?;
            }
            store.release(conn);
            found
        };
        tracing::debug!(path = %store.path.display(), version, "opened strongroom sqlite store");
        Ok(store)
    }

    /// Rebuilds an index table of an older layout ([`schema::upgrade_layout`]) if the write
    /// lock is free right now. An open never waits for it: while another connection
    /// writes, the store opens in the old layout (which works) and a later open upgrades.
    fn try_upgrade_layout(&self, conn: &Connection) -> Result<(), StoreError> {
        conn.busy_timeout(Duration::ZERO).map_err(sql_err)?;
        let upgraded = match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                let done = schema::upgrade_layout(conn);
                let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let ended = conn.execute_batch(end).map_err(sql_err);
                if ended.is_err() {
                    rollback(conn);
                }
                done.and_then(|d| ended.map(|()| d))
            }
            Err(e) if is_busy(&e) => {
                tracing::debug!(
                    "the write lock is taken: the index table layout is upgraded at a later open"
                );
                Ok(false)
            }
            Err(e) => Err(sql_err(e)),
        };
        conn.busy_timeout(self.options.busy_timeout)
            .map_err(sql_err)?;
        upgraded.map(|_| ())
    }

    /// Switches the database to WAL mode. Switching a new file takes an exclusive lock
    /// and SQLite does not wait for it through the busy handler: when another process
    /// opens the same fresh file at the same moment, retry until the busy timeout.
    fn switch_to_wal(&self, first: Connection) -> Result<Connection, StoreError> {
        let deadline = Instant::now() + self.options.busy_timeout;
        let mut conn = first;
        loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(conn),
                Ok(mode) => {
                    return Err(StoreError::Unavailable {
                        reason: format!("SQLite refused WAL mode (journal_mode is {mode})"),
                    });
                }
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5));
                    conn = self.new_connection()?;
                }
                Err(e) => return Err(sql_err(e)),
            }
        }
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// Writes a consistent, compacted copy of the database to `dest` (created with mode
    /// 0600; it must not exist) while writers continue. The copy opens with
    /// [`SqliteStore::open`].
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let dest_str = dest.to_str().ok_or_else(|| {
            StoreError::invalid(format!("backup path {} is not valid UTF-8", dest.display()))
        })?;
        create_private_file(dest).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::invalid(format!(
                    "backup destination {} already exists; choose a new path",
                    dest.display()
                ))
            } else {
                StoreError::Unavailable {
                    reason: format!("cannot create backup file {}: {e}", dest.display()),
                }
            }
        })?;
        let result = self
            .conn()
            .and_then(|conn| {
                conn.execute("VACUUM INTO ?1", [dest_str])
                    .map_err(sql_err)
                    .map(drop)
            })
            .and_then(|()| {
                std::fs::File::open(dest)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| StoreError::Unavailable {
                        reason: format!("cannot sync backup file {}: {e}", dest.display()),
                    })
            });
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    fn new_connection(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err)?;
        conn.busy_timeout(self.options.busy_timeout)
            .map_err(sql_err)?;
        conn.pragma_update(None, "synchronous", self.options.synchronous.pragma())
            .map_err(sql_err)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(sql_err)?;
        conn.pragma_update(None, "trusted_schema", "OFF")
            .map_err(sql_err)?;
        // Deleted and overwritten rows (retired key-chain links, rewrapped data keys) are
        // zeroed in the database file instead of lingering in free pages.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(sql_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn conn(&self) -> Result<PooledConn<'_>, StoreError> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.new_connection()?,
        };
        Ok(PooledConn {
            store: self,
            conn: Some(conn),
        })
    }

    fn release(&self, conn: Connection) {
        if !conn.is_autocommit() {
            // A transaction is still open (its end failed): do not reuse the connection.
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < self.options.pool_size.max(1) {
            pool.push(conn);
        }
    }

    fn table_sql(&self, table: Table) -> &TableSql {
        &self.sql[table.index()]
    }

    fn commit_once(&self, conn: &Connection, batch: &Batch) -> Result<Committed, Failure> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        match self.apply(conn, batch) {
            Ok(committed) => match conn.prepare_cached("COMMIT")?.execute([]) {
                Ok(_) => Ok(committed),
                Err(e) => {
                    rollback(conn);
                    Err(e.into())
                }
            },
            Err(e) => {
                rollback(conn);
                Err(e)
            }
        }
    }

    /// The operations of a batch inside the open transaction; their versions.
    fn apply(&self, conn: &Connection, batch: &Batch) -> Result<Committed, Failure> {
        if batch.generation().is_some() {
            StoreError::check_generation(batch, generation_on(conn)?)?;
        }
        let mut versions = Vec::with_capacity(batch.len());
        for op in batch.ops() {
            let sql = self.table_sql(op.table());
            let version = match op {
                Op::Put {
                    table,
                    key,
                    value,
                    expect,
                } => put(conn, sql, *table, key, value, *expect)?,
                Op::Delete { table, key, expect } => {
                    delete(conn, sql, *table, key, *expect)?;
                    0
                }
                Op::Check { table, key, expect } => {
                    check(conn, sql, *table, key, *expect)?;
                    0
                }
                Op::Append { table, seq, value } => {
                    append(conn, sql, *table, *seq, value)?;
                    1
                }
            };
            versions.push(version);
        }
        Ok(Committed { versions })
    }
}

/// `Op::Put` under `expect`: the row's new version.
fn put(
    conn: &Connection,
    sql: &TableSql,
    table: Table,
    key: &[u8],
    value: &[u8],
    expect: Expect,
) -> Result<u64, Failure> {
    match expect {
        Expect::Any => {
            // Read the version, then update or insert: under the write lock of
            // `BEGIN IMMEDIATE` nothing changes in between, and two plain statements cost
            // less than an `UPSERT … RETURNING`.
            if let Some(raw) = version_on(conn, sql, key)? {
                let next = version_from_sql(table, raw)? + 1;
                let next_sql = version_to_sql(table, key, next)?;
                conn.prepare_cached(&sql.put_set)?
                    .execute(params![key, value, next_sql])?;
                Ok(next)
            } else {
                insert_absent(conn, sql, table, key, value)?;
                Ok(1)
            }
        }
        Expect::Absent => {
            insert_absent(conn, sql, table, key, value)?;
            Ok(1)
        }
        Expect::Version(v) => {
            let expected = version_to_sql(table, key, v)?;
            let n = conn
                .prepare_cached(&sql.put_version)?
                .execute(params![key, value, expected])?;
            require(n == 1, table, key)?;
            Ok(v + 1)
        }
    }
}

/// Inserts a row that must not exist yet (version 1).
fn insert_absent(
    conn: &Connection,
    sql: &TableSql,
    table: Table,
    key: &[u8],
    value: &[u8],
) -> Result<(), Failure> {
    let n = conn
        .prepare_cached(&sql.put_absent)?
        .execute(params![key, value])?;
    require(n == 1, table, key)?;
    Ok(())
}

/// `Op::Delete` under `expect`.
fn delete(
    conn: &Connection,
    sql: &TableSql,
    table: Table,
    key: &[u8],
    expect: Expect,
) -> Result<(), Failure> {
    match expect {
        Expect::Any => {
            conn.prepare_cached(&sql.delete_any)?
                .execute(params![key])?;
        }
        Expect::Absent => {
            let exists = conn
                .prepare_cached(&sql.exists)?
                .query_row(params![key], |_| Ok(()))
                .optional()?
                .is_some();
            require(!exists, table, key)?;
        }
        Expect::Version(v) => {
            let expected = version_to_sql(table, key, v)?;
            let n = conn
                .prepare_cached(&sql.delete_version)?
                .execute(params![key, expected])?;
            require(n == 1, table, key)?;
        }
    }
    Ok(())
}

/// `Op::Check`: `expect` holds for the row now. `BEGIN IMMEDIATE` holds the write lock, so
/// the row cannot change before this batch commits.
fn check(
    conn: &Connection,
    sql: &TableSql,
    table: Table,
    key: &[u8],
    expect: Expect,
) -> Result<(), Failure> {
    let current = version_on(conn, sql, key)?
        .map(|c| version_from_sql(table, c))
        .transpose()?;
    require(expect.holds(current), table, key)?;
    Ok(())
}

/// `Op::Append`: the log row at `seq`, only at the head (no row at `seq`, and `seq` is 0 or
/// follows a row at `seq - 1`).
fn append(
    conn: &Connection,
    sql: &TableSql,
    table: Table,
    seq: u64,
    value: &[u8],
) -> Result<(), Failure> {
    let key = log_key(seq);
    let prev = log_key(seq.wrapping_sub(1));
    let n =
        conn.prepare_cached(&sql.append)?
            .execute(params![&key[..], value, seq == 0, &prev[..]])?;
    require(n == 1, table, &key)?;
    Ok(())
}

/// The stored (SQL) version of row `key`, if the row exists.
fn version_on(conn: &Connection, sql: &TableSql, key: &[u8]) -> Result<Option<i64>, Failure> {
    Ok(conn
        .prepare_cached(&sql.version)?
        .query_row(params![key], |r| r.get(0))
        .optional()?)
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "sqlite rollback failed; the connection is discarded");
    }
}

/// An error inside a commit attempt: either final, or SQLite's (maybe busy, retried).
enum Failure {
    Store(StoreError),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sqlite(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// Checks `path` before SQLite opens it, so each bad path gets its own accurate error:
/// a directory, a file this process may not write, a missing or empty file when not
/// `create`-ing. With `create`, a missing file is made with mode 0600, and an empty one
/// (about to become a store) is given mode 0600.
fn prepare_file(path: &Path, create: bool) -> Result<(), StoreError> {
    let shown = path.display();
    let invalid = |reason: String| Err(StoreError::InvalidRequest { reason });
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return invalid(format!(
                "{shown} is a directory, not a vault file: give the path of the database file"
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return invalid(format!(
                "{shown} is not a regular file (a device, FIFO or socket cannot hold a vault)"
            ));
        }
        Ok(meta) if meta.len() == 0 && !create => {
            return invalid(format!(
                "{shown} is an empty file, not a strongroom vault: create one there first"
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
            return invalid(format!("there is no vault file at {shown}"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(path, "cannot inspect", &e)),
    }
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(create);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(path)
        .map_err(|e| io_error(path, "cannot open for reading and writing", &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = file
            .metadata()
            .map_err(|e| io_error(path, "cannot inspect", &e))?;
        if create && meta.len() == 0 && meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io_error(path, "cannot make private (mode 0600)", &e))?;
        }
    }
    drop(file);
    Ok(())
}

/// Creates `path` with mode 0600, failing if it exists.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map(drop)
}

/// An I/O error on the vault file: permissions and wrong file types are the caller's
/// to fix (`InvalidRequest`); anything else may pass (`Unavailable`).
fn io_error(path: &Path, what: &str, e: &std::io::Error) -> StoreError {
    use std::io::ErrorKind as K;
    let shown = path.display();
    match e.kind() {
        K::PermissionDenied => StoreError::InvalidRequest {
            reason: format!(
                "{what} {shown}: permission denied (the vault file and its directory must be writable by this user)"
            ),
        },
        K::ReadOnlyFilesystem => StoreError::InvalidRequest {
            reason: format!("{what} {shown}: the file system is read-only"),
        },
        K::NotFound => StoreError::InvalidRequest {
            reason: format!("{what} {shown}: its directory does not exist"),
        },
        K::IsADirectory | K::NotADirectory => StoreError::InvalidRequest {
            reason: format!("{what} {shown}: {e}"),
        },
        _ => StoreError::Unavailable {
            reason: format!("{what} {shown}: {e}"),
        },
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A connection borrowed from the pool, returned on drop.
struct PooledConn<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
}

impl Deref for PooledConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.store.release(conn);
        }
    }
}

fn get_on(
    sql: &TableSql,
    conn: &Connection,
    table: Table,
    key: &[u8],
) -> Result<Option<Versioned>, StoreError> {
    let row: Option<(Vec<u8>, i64)> = conn
        .prepare_cached(&sql.get)
        .and_then(|mut s| {
            s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_err)?;
    row.map(|(value, raw)| {
        Ok(Versioned {
            value,
            version: version_from_sql(table, raw)?,
        })
    })
    .transpose()
}

fn scan_on(
    sql: &TableSql,
    conn: &Connection,
    table: Table,
    range: &ScanRange,
    resume: Option<&Cursor>,
    limit: usize,
) -> Result<Page, StoreError> {
    let Some(ScanPlan { start, end, fetch }) = plan_scan(range, resume, limit)? else {
        return Ok(Page::default());
    };
    let text = sql.scan(start, end);
    let mut stmt = conn.prepare_cached(&text).map_err(sql_err)?;
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(3);
    if let Bound::Included(k) | Bound::Excluded(k) = &start {
        params.push(k);
    }
    if let Bound::Included(k) | Bound::Excluded(k) = &end {
        params.push(k);
    }
    params.push(&fetch);
    let mut rows = stmt.query(params.as_slice()).map_err(sql_err)?;
    let mut out = Vec::with_capacity(limit.min(1024) + 1);
    while let Some(r) = rows.next().map_err(sql_err)? {
        let key: Vec<u8> = r.get(0).map_err(sql_err)?;
        let value: Vec<u8> = r.get(1).map_err(sql_err)?;
        let raw: i64 = r.get(2).map_err(sql_err)?;
        out.push(Row {
            key,
            value,
            version: version_from_sql(table, raw)?,
        });
    }
    Ok(Page::from_overfetch(out, limit))
}

fn log_head_on(sql: &TableSql, conn: &Connection, table: Table) -> Result<Option<u64>, StoreError> {
    check_log_table(table)?;
    let key: Option<Vec<u8>> = conn
        .prepare_cached(&sql.head)
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    key.map(|k| parse_log_key(table, &k)).transpose()
}

fn generation_on(conn: &Connection) -> Result<Generation, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached(schema::GET_GENERATION)
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    match bytes {
        Some(b) => Generation::from_slice(Table::Meta, &b),
        None => Err(StoreError::Corrupt {
            table: Table::Meta,
            reason: "the sr_store row holding the store generation is missing".into(),
        }),
    }
}

impl ReadView for SqliteStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let conn = self.conn()?;
        get_on(self.table_sql(table), &conn, table, key)
    }

    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let conn = self.conn()?;
        if keys.len() <= 1 {
            // One statement is one point in time already.
            return keys
                .iter()
                .map(|(t, k)| get_on(self.table_sql(*t), &conn, *t, k))
                .collect();
        }
        // Several statements in one read transaction: one WAL snapshot.
        conn.execute_batch("BEGIN DEFERRED").map_err(sql_err)?;
        let out: Result<Vec<_>, _> = keys
            .iter()
            .map(|(t, k)| get_on(self.table_sql(*t), &conn, *t, k))
            .collect();
        rollback(&conn);
        out
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        check_scan_limit(limit)?;
        let conn = self.conn()?;
        scan_on(self.table_sql(table), &conn, table, range, resume, limit)
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        let conn = self.conn()?;
        log_head_on(self.table_sql(table), &conn, table)
    }

    fn generation(&self) -> Result<Generation, StoreError> {
        let conn = self.conn()?;
        generation_on(&conn)
    }
}

impl Store for SqliteStore {
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(Committed::default());
        }
        let conn = self.conn()?;
        let deadline = Instant::now() + self.options.busy_timeout;
        let mut backoff = Duration::from_millis(1);
        loop {
            match self.commit_once(&conn, batch) {
                Ok(committed) => return Ok(committed),
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Sqlite(e)) if is_busy(&e) && Instant::now() < deadline => {
                    tracing::trace!(error = %e, "sqlite busy, retrying commit");
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                Err(Failure::Sqlite(e)) => return Err(sql_err(e)),
            }
        }
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let conn = self.conn()?;
        conn.execute_batch("BEGIN DEFERRED").map_err(sql_err)?;
        // A WAL read transaction takes its snapshot at the first read: read now.
        if let Err(e) = conn.query_row("SELECT count(*) FROM sr_meta", [], |r| r.get::<_, i64>(0)) {
            rollback(&conn);
            return Err(sql_err(e));
        }
        Ok(Box::new(SqliteSnapshot { conn }))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let conn = self.conn()?;
        schema::user_version(&conn)
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        // One write transaction: a crash or an error rolls the whole replacement back.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err)?;
        let result = (|| -> Result<u64, StoreError> {
            for table in Table::ALL {
                conn.execute_batch(&format!("DELETE FROM sr_{}", table.name()))
                    .map_err(sql_err)?;
            }
            conn.execute_batch(schema::NEW_GENERATION)
                .map_err(sql_err)?;
            let mut n = 0u64;
            for item in rows {
                let (table, row) = item?;
                check_row(&row.key, &row.value)?;
                let inserted = conn
                    .prepare_cached(&self.table_sql(table).put_absent)
                    .map_err(sql_err)?
                    .execute(params![row.key, row.value])
                    .map_err(sql_err)?;
                if inserted != 1 {
                    return Err(StoreError::invalid(format!(
                        "replace_all: a key of table {table} is given twice"
                    )));
                }
                n += 1;
            }
            conn.execute_batch("COMMIT").map_err(sql_err)?;
            Ok(n)
        })();
        if result.is_err() {
            rollback(&conn);
        }
        result
    }
}

/// A read transaction held on a dedicated connection.
struct SqliteSnapshot<'a> {
    conn: PooledConn<'a>,
}

impl ReadView for SqliteSnapshot<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        get_on(self.conn.store.table_sql(table), &self.conn, table, key)
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        scan_on(
            self.conn.store.table_sql(table),
            &self.conn,
            table,
            range,
            resume,
            limit,
        )
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        log_head_on(self.conn.store.table_sql(table), &self.conn, table)
    }

    fn generation(&self) -> Result<Generation, StoreError> {
        generation_on(&self.conn)
    }
}

impl Snapshot for SqliteSnapshot<'_> {}

impl Drop for SqliteSnapshot<'_> {
    fn drop(&mut self) {
        rollback(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_the_operators_problem() {
        use std::io::{Error, ErrorKind};
        let path = Path::new("/srv/vault.db");
        for kind in [
            ErrorKind::PermissionDenied,
            ErrorKind::ReadOnlyFilesystem,
            ErrorKind::NotFound,
            ErrorKind::IsADirectory,
        ] {
            let e = io_error(path, "cannot open", &Error::from(kind));
            assert!(
                matches!(e, StoreError::InvalidRequest { .. }),
                "{kind:?}: {e}"
            );
            assert!(e.to_string().contains("/srv/vault.db"), "{e}");
        }
        let e = io_error(
            path,
            "cannot open",
            &Error::from(ErrorKind::PermissionDenied),
        );
        assert!(e.to_string().contains("permission denied"), "{e}");
        let e = io_error(path, "cannot open", &Error::from(ErrorKind::Interrupted));
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    }
}
