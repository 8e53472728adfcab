//! `PostgresStore`: the `Store` trait on PostgreSQL.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Statement};
use r2d2::{ManageConnection, Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use strongroom_store::{
    Batch, Committed, Cursor, Expect, Generation, Op, Page, ReadView, Row, SCHEMA_VERSION,
    ScanRange, Snapshot, Store, StoreError, Table, TableRow, Versioned, bounds_are_empty,
    check_row, check_scan_limit, log_key, parse_log_key,
};

use crate::PostgresOptions;
use crate::schema::{self, HeadsSql, MIGRATIONS, MIGRATIONS_TABLE, StoreSql, TableSql};

const BACKEND: &str = "postgres";

/// How long getting a pooled connection may wait before `StoreError::Unavailable`.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Attempts of a batch that keeps hitting deadlocks or serialization failures.
const TXN_ATTEMPTS: u32 = 8;

/// A pooled connection with its prepared statements.
pub(crate) struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// r2d2 manager: `r2d2_postgres`'s, plus a per-connection statement cache.
struct Manager {
    inner: PostgresConnectionManager<NoTls>,
}

impl ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.inner.connect()?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        self.inner.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.inner.has_broken(&mut conn.client)
    }
}

/// Prepares `sql` once per connection.
fn prepared<C: GenericClient>(
    cache: &mut HashMap<String, Statement>,
    client: &mut C,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql)?;
    cache.insert(sql.to_owned(), s.clone());
    Ok(s)
}

/// Maps a PostgreSQL error: connection trouble → `Unavailable`, else `Backend`.
pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    let unavailable = e.is_closed()
        || e.code().is_some_and(|c| {
            let code = c.code();
            code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
        })
        || (e.code().is_none()
            && std::error::Error::source(&e)
                .is_some_and(<dyn std::error::Error>::is::<std::io::Error>));
    if unavailable {
        StoreError::Unavailable {
            reason: format!("PostgreSQL connection failed: {e}"),
        }
    } else if let Some(db) = e.as_db_error() {
        // The server's message, not the driver's bare "db error".
        let mut msg = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            msg.push_str(": ");
            msg.push_str(detail);
        }
        if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
            msg.push_str(
                "; this role lacks a privilege the operation needs: migrations and restores need the schema owner, normal use the grants of PostgresStore::application_grants",
            );
        }
        StoreError::backend(BACKEND, msg)
    } else {
        StoreError::backend(BACKEND, e)
    }
}

fn is_txn_retryable(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

fn version_from(table: Table, raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| StoreError::Corrupt {
        table,
        reason: format!("negative row version {raw}"),
    })
}

fn column<'a, T: postgres::types::FromSql<'a>>(
    row: &'a postgres::Row,
    idx: usize,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(pg_err)
}

/// A strongroom [`Store`] in PostgreSQL tables (`bytea` keys and values).
///
/// - Each batch is one transaction (`READ COMMITTED`). Compare-and-swap preconditions are
///   conditional statements decided by row count (`UPDATE … WHERE ver = $n`,
///   `INSERT … ON CONFLICT DO NOTHING`); row locks make racing writers queue, then
///   re-check, so no update is lost and racing log appends have exactly one winner.
///   Deadlocks and serialization failures are retried internally, then reported as
///   `StoreError::Conflict`.
/// - A [`Snapshot`] is a `REPEATABLE READ READ ONLY` transaction on a pooled connection
///   of its own, committed when dropped.
/// - Connections come from an `r2d2` pool and keep their prepared statements.
/// - Schema versions are recorded in a `strongroom_migrations` table; a database written
///   by a newer strongroom is refused with `StoreError::SchemaTooNew`.
pub struct PostgresStore {
    pool: Pool<Manager>,
    config: postgres::Config,
    options: PostgresOptions,
    prefix: String,
    sql: Vec<TableSql>,
    store_sql: StoreSql,
    heads_sql: HeadsSql,
}

impl PostgresStore {
    /// Connects with a libpq-style (`host=/run/postgresql user=vault dbname=vault`) or URL
    /// (`postgres://vault@db.example/vault`) connection string, creates the schema and
    /// tables if missing and migrates them to the current version.
    ///
    /// Only plain connections (unix socket or TCP without TLS) are supported.
    pub fn connect(config: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let config: postgres::Config = config.parse().map_err(|e| {
            StoreError::invalid(format!(
                "cannot parse the PostgreSQL connection string: {e}"
            ))
        })?;
        let prefix = match &options.schema {
            Some(name) => format!("{}.", schema::quote_schema(name)?),
            None => String::new(),
        };
        let max = u32::try_from(options.pool_size.max(1)).unwrap_or(u32::MAX);
        let pool = Pool::builder()
            .max_size(max)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(CONNECTION_TIMEOUT)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(Manager {
                inner: PostgresConnectionManager::new(config.clone(), NoTls),
            })
            .map_err(|e| StoreError::Unavailable {
                reason: format!("cannot create the PostgreSQL pool: {e}"),
            })?;
        let store = PostgresStore {
            store_sql: StoreSql::new(&prefix),
            heads_sql: HeadsSql::new(&prefix),
            sql: Table::ALL
                .into_iter()
                .map(|t| TableSql::new(&prefix, t))
                .collect(),
            pool,
            config,
            options,
            prefix,
        };
        let version = store.migrate()?;
        tracing::debug!(store = ?store, version, "connected strongroom postgres store");
        Ok(store)
    }

    /// The options the store was created with.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }

    /// The `GRANT` statements that give `role` exactly what normal operation needs on
    /// this store's tables: `SELECT, INSERT, UPDATE, DELETE` on the data tables, only
    /// `SELECT, INSERT` on the append-only logs (`sr_member_log`, `sr_audit`), `SELECT,
    /// UPDATE` on the bookkeeping rows (`sr_heads`, `sr_store`), `SELECT` on
    /// `strongroom_migrations`, and `USAGE` on the schema. Run them as the owner after
    /// the first connection created the tables. Migrations and restores (`replace_all`)
    /// stay with the owner.
    ///
    /// ```no_run
    /// # use strongroom_postgres::{PostgresOptions, PostgresStore};
    /// let owner = PostgresStore::connect("host=/run/postgresql user=vault_owner dbname=vault",
    ///     PostgresOptions { schema: Some("team_a".into()), ..PostgresOptions::default() })?;
    /// println!("{}", owner.application_grants("vault_app"));
    /// # Ok::<(), strongroom_store::StoreError>(())
    /// ```
    pub fn application_grants(&self, role: &str) -> String {
        schema::application_grants(&self.prefix, self.options.schema.as_deref(), role)
    }

    fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Unavailable {
            reason: format!("no PostgreSQL connection available: {e}"),
        })
    }

    fn table_sql(&self, table: Table) -> &TableSql {
        &self.sql[table.index()]
    }

    /// The schema version recorded in the database, read without any DDL or lock: `None`
    /// when no strongroom schema exists yet.
    fn recorded_version(&self, conn: &mut PgConn) -> Result<Option<u32>, StoreError> {
        let qualified = format!("{}{MIGRATIONS_TABLE}", self.prefix);
        let row = conn
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified])
            .map_err(pg_err)?;
        if !column::<bool>(&row, 0)? {
            return Ok(None);
        }
        let row = conn
            .client
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {qualified}"),
                &[],
            )
            .map_err(pg_err)?;
        let found: i32 = column(&row, 0)?;
        u32::try_from(found)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                table: Table::Meta,
                reason: format!("negative schema version {found}"),
            })
    }

    fn migrate(&self) -> Result<u32, StoreError> {
        let mut conn = self.conn()?;
        // An up-to-date schema opens with reads only: an application role with only DML
        // rights connects; migrations need a role that may create tables.
        match self.recorded_version(&mut conn)? {
            Some(found) if found == SCHEMA_VERSION => return Ok(found),
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            _ => {}
        }
        let mut tx = conn.client.transaction().map_err(pg_err)?;
        let qualified = format!("{}{MIGRATIONS_TABLE}", self.prefix);
        // Serialise concurrent migrations of the same schema.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&qualified])
            .map_err(pg_err)?;
        if let Some(name) = &self.options.schema {
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                schema::quote_schema(name)?
            ))
            .map_err(pg_err)?;
        }
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {qualified} (version integer PRIMARY KEY, \
             applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .map_err(pg_err)?;
        let row = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {qualified}"),
                &[],
            )
            .map_err(pg_err)?;
        let found: i32 = column(&row, 0)?;
        let found = u32::try_from(found).map_err(|_| StoreError::Corrupt {
            table: Table::Meta,
            reason: format!("negative schema version {found}"),
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (version, build) in MIGRATIONS {
            if *version > found {
                tracing::debug!(version, "applying strongroom postgres migration");
                tx.batch_execute(&build(&self.prefix)).map_err(pg_err)?;
                let v = i32::try_from(*version).unwrap_or(i32::MAX);
                tx.execute(
                    &format!("INSERT INTO {qualified} (version) VALUES ($1)"),
                    &[&v],
                )
                .map_err(pg_err)?;
            }
        }
        tx.commit().map_err(pg_err)?;
        Ok(found.max(schema::latest()))
    }

    fn commit_once(&self, conn: &mut PgConn, batch: &Batch) -> Result<Committed, Failure> {
        let PgConn { client, statements } = conn;
        let mut tx = client.transaction().map_err(|e| Failure::Pg(e, 0))?;
        if batch.generation().is_some() {
            // Row-locked until commit: a concurrent replace_all waits for this batch, or
            // this batch waits for it and then reads the new generation.
            let current = generation_on(statements, &mut tx, &self.store_sql.generation_for_share)
                .map_err(|e| match e {
                    GenerationError::Pg(e) => Failure::Pg(e, 0),
                    GenerationError::Store(e) => Failure::Store(e),
                })?;
            StoreError::check_generation(batch, current)?;
        }
        let mut versions = Vec::with_capacity(batch.len());
        for (i, op) in batch.ops().iter().enumerate() {
            let pg = |e| Failure::Pg(e, i);
            let sql = self.table_sql(op.table());
            let version = match op {
                Op::Put {
                    table,
                    key,
                    value,
                    expect,
                } => match expect {
                    Expect::Any => {
                        let s = prepared(statements, &mut tx, &sql.put_any).map_err(pg)?;
                        let row = tx.query_one(&s, &[key, value]).map_err(pg)?;
                        version_from(*table, column(&row, 0)?)?
                    }
                    Expect::Absent => {
                        let s = prepared(statements, &mut tx, &sql.put_absent).map_err(pg)?;
                        let n = tx.execute(&s, &[key, value]).map_err(pg)?;
                        ensure(n == 1, *table, key)?;
                        1
                    }
                    Expect::Version(v) => {
                        // No stored version exceeds i64::MAX: such an expectation fails.
                        let expected = i64::try_from(*v)
                            .map_err(|_| Failure::Store(StoreError::conflict(*table, key)))?;
                        let s = prepared(statements, &mut tx, &sql.put_version).map_err(pg)?;
                        let n = tx.execute(&s, &[key, value, &expected]).map_err(pg)?;
                        ensure(n == 1, *table, key)?;
                        v + 1
                    }
                },
                Op::Delete { table, key, expect } => {
                    match expect {
                        Expect::Any => {
                            let s = prepared(statements, &mut tx, &sql.delete_any).map_err(pg)?;
                            tx.execute(&s, &[key]).map_err(pg)?;
                        }
                        Expect::Absent => {
                            // As for `Op::Check`: absence must hold until commit.
                            let found = if table.is_log() {
                                self.log_version(statements, &mut tx, *table, key, true)?
                            } else {
                                tx.batch_execute(&sql.lock_share).map_err(pg)?;
                                let s = prepared(statements, &mut tx, &sql.exists).map_err(pg)?;
                                tx.query_opt(&s, &[key]).map_err(pg)?.map(|_| 1)
                            };
                            ensure(found.is_none(), *table, key)?;
                        }
                        Expect::Version(v) => {
                            let expected = i64::try_from(*v)
                                .map_err(|_| Failure::Store(StoreError::conflict(*table, key)))?;
                            let s =
                                prepared(statements, &mut tx, &sql.delete_version).map_err(pg)?;
                            let n = tx.execute(&s, &[key, &expected]).map_err(pg)?;
                            ensure(n == 1, *table, key)?;
                        }
                    }
                    0
                }
                Op::Check { table, key, expect } if table.is_log() => {
                    // Log rows never change once appended, and appends move only the head
                    // row: an absence holds until commit when that row is locked.
                    let current = self.log_version(
                        statements,
                        &mut tx,
                        *table,
                        key,
                        *expect == Expect::Absent,
                    )?;
                    ensure(expect.holds(current), *table, key)?;
                    0
                }
                Op::Check { table, key, expect } => {
                    // A present row is locked FOR SHARE until commit. Absence cannot be
                    // locked row by row under READ COMMITTED, so an Absent check first
                    // takes the table in SHARE mode: writers of that table wait for this
                    // batch, and the check below sees every committed insert.
                    if *expect == Expect::Absent {
                        tx.batch_execute(&sql.lock_share).map_err(pg)?;
                    }
                    let s = prepared(statements, &mut tx, &sql.version_for_share).map_err(pg)?;
                    let row = tx.query_opt(&s, &[key]).map_err(pg)?;
                    let current: Option<i64> = match &row {
                        Some(r) => Some(column(r, 0)?),
                        None => None,
                    };
                    let current = current.map(|c| version_from(*table, c)).transpose()?;
                    ensure(expect.holds(current), *table, key)?;
                    0
                }
                Op::Append { table, seq, value } => {
                    let key = log_key(*seq);
                    // Only at the head: the head row moves from seq-1 to seq (racing
                    // appends wait on that row; the loser finds it moved).
                    let (Ok(to), Ok(from)) =
                        (i64::try_from(*seq), i64::try_from(*seq).map(|s| s - 1))
                    else {
                        return Err(Failure::Store(StoreError::conflict(*table, &key)));
                    };
                    let s = prepared(statements, &mut tx, &self.heads_sql.advance).map_err(pg)?;
                    let n = tx.execute(&s, &[&table.name(), &to, &from]).map_err(pg)?;
                    ensure(n == 1, *table, &key)?;
                    let s = prepared(statements, &mut tx, &sql.put_absent).map_err(pg)?;
                    let n = tx.execute(&s, &[&&key[..], value]).map_err(pg)?;
                    ensure(n == 1, *table, &key)?;
                    1
                }
            };
            versions.push(version);
        }
        tx.commit().map_err(|e| Failure::Pg(e, batch.len() - 1))?;
        Ok(Committed { versions })
    }
}

impl PostgresStore {
    /// The version of row `key` of log `table` (1 when present). With `lock`, the log's
    /// head row is locked FOR SHARE until commit, so an absence holds until then.
    fn log_version<C: GenericClient>(
        &self,
        statements: &mut HashMap<String, Statement>,
        client: &mut C,
        table: Table,
        key: &[u8],
        lock: bool,
    ) -> Result<Option<u64>, Failure> {
        if lock {
            let s = prepared(statements, client, &self.heads_sql.for_share)
                .map_err(|e| Failure::Pg(e, 0))?;
            let row = client
                .query_opt(&s, &[&table.name()])
                .map_err(|e| Failure::Pg(e, 0))?
                .ok_or_else(|| StoreError::Corrupt {
                    table,
                    reason: "the head row of this log is missing from sr_heads".into(),
                })?;
            let head: i64 = column(&row, 0)?;
            // No gaps: entries 0..=head exist, none after.
            return Ok(match <[u8; 8]>::try_from(key) {
                Ok(k) if i128::from(u64::from_be_bytes(k)) <= i128::from(head) => Some(1),
                _ => None,
            });
        }
        let s = prepared(statements, client, &self.table_sql(table).get)
            .map_err(|e| Failure::Pg(e, 0))?;
        let row = client
            .query_opt(&s, &[&key])
            .map_err(|e| Failure::Pg(e, 0))?;
        match row {
            Some(r) => Ok(Some(version_from(table, column(&r, 1)?)?)),
            None => Ok(None),
        }
    }
}

fn ensure(ok: bool, table: Table, key: &[u8]) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(Failure::Store(StoreError::conflict(table, key)))
    }
}

/// An error inside a commit attempt: final, or PostgreSQL's at operation `i` (maybe a
/// deadlock, retried).
enum Failure {
    Store(StoreError),
    Pg(postgres::Error, usize),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        f.debug_struct("PostgresStore")
            .field("hosts", &hosts)
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn get_on(
    sql: &TableSql,
    conn: &mut PgConn,
    table: Table,
    key: &[u8],
) -> Result<Option<Versioned>, StoreError> {
    let s = prepared(&mut conn.statements, &mut conn.client, &sql.get).map_err(pg_err)?;
    let row = conn.client.query_opt(&s, &[&key]).map_err(pg_err)?;
    row.map(|r| {
        Ok(Versioned {
            value: column(&r, 0)?,
            version: version_from(table, column(&r, 1)?)?,
        })
    })
    .transpose()
}

fn scan_on(
    sql: &TableSql,
    conn: &mut PgConn,
    table: Table,
    range: &ScanRange,
    resume: Option<&Cursor>,
    limit: usize,
) -> Result<Page, StoreError> {
    check_scan_limit(limit)?;
    let start = range.resume_start(resume);
    let end = range.end();
    if bounds_are_empty(start, end) {
        return Ok(Page::default());
    }
    let s = prepared(
        &mut conn.statements,
        &mut conn.client,
        &sql.scan(start, end),
    )
    .map_err(pg_err)?;
    let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(3);
    let (start_key, end_key);
    if let Bound::Included(k) | Bound::Excluded(k) = start {
        start_key = k;
        params.push(&start_key);
    }
    if let Bound::Included(k) | Bound::Excluded(k) = end {
        end_key = k;
        params.push(&end_key);
    }
    params.push(&fetch);
    let rows = conn.client.query(&s, &params).map_err(pg_err)?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(Row {
                key: column(r, 0)?,
                value: column(r, 1)?,
                version: version_from(table, column(r, 2)?)?,
            })
        })
        .collect::<Result<Vec<Row>, StoreError>>()?;
    Ok(Page::from_overfetch(out, limit))
}

fn log_head_on(sql: &TableSql, conn: &mut PgConn, table: Table) -> Result<Option<u64>, StoreError> {
    if !table.is_log() {
        return Err(StoreError::invalid(format!(
            "log_head on table {table}, which is not a log"
        )));
    }
    let s = prepared(&mut conn.statements, &mut conn.client, &sql.head).map_err(pg_err)?;
    let row = conn.client.query_opt(&s, &[]).map_err(pg_err)?;
    row.map(|r| {
        let key: Vec<u8> = column(&r, 0)?;
        parse_log_key(table, &key)
    })
    .transpose()
}

enum GenerationError {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<GenerationError> for StoreError {
    fn from(e: GenerationError) -> Self {
        match e {
            GenerationError::Pg(e) => pg_err(e),
            GenerationError::Store(e) => e,
        }
    }
}

fn generation_on<C: GenericClient>(
    statements: &mut HashMap<String, Statement>,
    client: &mut C,
    sql: &str,
) -> Result<Generation, GenerationError> {
    let s = prepared(statements, client, sql).map_err(GenerationError::Pg)?;
    let row = client.query_opt(&s, &[]).map_err(GenerationError::Pg)?;
    let Some(row) = row else {
        return Err(GenerationError::Store(StoreError::Corrupt {
            table: Table::Meta,
            reason: "the sr_store row holding the store generation is missing".into(),
        }));
    };
    let bytes: Vec<u8> = column(&row, 0).map_err(GenerationError::Store)?;
    Generation::from_slice(Table::Meta, &bytes).map_err(GenerationError::Store)
}

impl ReadView for PostgresStore {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let mut conn = self.conn()?;
        get_on(self.table_sql(table), &mut conn, table, key)
    }

    /// One statement (a `UNION ALL` of point reads, prepared once per shape): one round
    /// trip and one snapshot, whatever tables the keys are in.
    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn()?;
        let sql = keys
            .iter()
            .enumerate()
            .map(|(i, (t, _))| {
                format!(
                    "SELECT {i}::int4, v, ver FROM {} WHERE k = ${}::bytea",
                    self.table_sql(*t).qualified,
                    i + 1
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let conn = &mut *conn;
        let s = prepared(&mut conn.statements, &mut conn.client, &sql).map_err(pg_err)?;
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = keys
            .iter()
            .map(|(_, k)| k as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let rows = conn.client.query(&s, &params).map_err(pg_err)?;
        let mut out = vec![None; keys.len()];
        for r in rows {
            let i: i32 = column(&r, 0)?;
            let i = usize::try_from(i)
                .ok()
                .filter(|i| *i < keys.len())
                .ok_or_else(|| StoreError::Corrupt {
                    table: keys[0].0,
                    reason: format!("a multi-get row names key {i} of {}", keys.len()),
                })?;
            out[i] = Some(Versioned {
                value: column(&r, 1)?,
                version: version_from(keys[i].0, column(&r, 2)?)?,
            });
        }
        Ok(out)
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        check_scan_limit(limit)?;
        let mut conn = self.conn()?;
        scan_on(
            self.table_sql(table),
            &mut conn,
            table,
            range,
            resume,
            limit,
        )
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn()?;
        log_head_on(self.table_sql(table), &mut conn, table)
    }

    fn generation(&self) -> Result<Generation, StoreError> {
        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        Ok(generation_on(
            statements,
            client,
            &self.store_sql.generation,
        )?)
    }
}

impl Store for PostgresStore {
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(Committed::default());
        }
        let mut conn = self.conn()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.commit_once(&mut conn, batch) {
                Ok(committed) => return Ok(committed),
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Pg(e, i)) if is_txn_retryable(&e) => {
                    if attempt >= TXN_ATTEMPTS {
                        let op = &batch.ops()[i.min(batch.len() - 1)];
                        return Err(StoreError::conflict(op.table(), &op.key()));
                    }
                    tracing::debug!(error = %e, attempt, "postgres transaction retried");
                    thread::sleep(Duration::from_millis(u64::from(attempt)));
                }
                Err(Failure::Pg(e, _)) => return Err(pg_err(e)),
            }
        }
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        // One transaction: an error or a crash rolls the whole replacement back.
        let mut tx = client.transaction().map_err(pg_err)?;
        // The generation row first (batches that require a generation hold it FOR SHARE),
        // then every table exclusively: transactions in flight finish before the old
        // content is deleted, and none starts until the new content is committed.
        tx.batch_execute(&self.store_sql.new_generation)
            .map_err(pg_err)?;
        let tables: Vec<&str> = Table::ALL
            .iter()
            .map(|t| self.table_sql(*t).qualified.as_str())
            .collect();
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            tables.join(", ")
        ))
        .map_err(pg_err)?;
        for table in tables {
            tx.batch_execute(&format!("DELETE FROM {table}"))
                .map_err(pg_err)?;
        }
        let mut n = 0u64;
        for item in rows {
            let (table, row) = item?;
            check_row(&row.key, &row.value)?;
            let s =
                prepared(statements, &mut tx, &self.table_sql(table).put_absent).map_err(pg_err)?;
            if tx.execute(&s, &[&row.key, &row.value]).map_err(pg_err)? != 1 {
                return Err(StoreError::invalid(format!(
                    "replace_all: a key of table {table} is given twice"
                )));
            }
            n += 1;
        }
        tx.batch_execute(&schema::reset_heads(&self.prefix))
            .map_err(pg_err)?;
        tx.commit().map_err(pg_err)?;
        Ok(n)
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let mut conn = self.conn()?;
        // The snapshot is taken by the first statement after BEGIN.
        conn.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")
            .map_err(pg_err)?;
        Ok(Box::new(PgSnapshot {
            store: self,
            conn: Mutex::new(conn),
        }))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.conn()?;
        let row = conn
            .client
            .query_one(
                &format!(
                    "SELECT coalesce(max(version), 0) FROM {}{MIGRATIONS_TABLE}",
                    self.prefix
                ),
                &[],
            )
            .map_err(pg_err)?;
        let v: i32 = column(&row, 0)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            table: Table::Meta,
            reason: format!("negative schema version {v}"),
        })
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}

/// A `REPEATABLE READ READ ONLY` transaction on a dedicated connection.
struct PgSnapshot<'a> {
    store: &'a PostgresStore,
    conn: Mutex<PooledConnection<Manager>>,
}

impl PgSnapshot<'_> {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut PgConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn)
    }
}

impl ReadView for PgSnapshot<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.with(|c| get_on(self.store.table_sql(table), c, table, key))
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.with(|c| scan_on(self.store.table_sql(table), c, table, range, resume, limit))
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        self.with(|c| log_head_on(self.store.table_sql(table), c, table))
    }

    fn generation(&self) -> Result<Generation, StoreError> {
        self.with(|c| {
            let PgConn { client, statements } = c;
            Ok(generation_on(
                statements,
                client,
                &self.store.store_sql.generation,
            )?)
        })
    }
}

impl Snapshot for PgSnapshot<'_> {}

impl Drop for PgSnapshot<'_> {
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = conn.client.batch_execute("COMMIT") {
            tracing::warn!(error = %e, "ending a postgres snapshot failed");
        }
    }
}
