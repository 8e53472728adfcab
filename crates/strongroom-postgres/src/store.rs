//! `PostgresStore`: the `Store` trait on PostgreSQL.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, SimpleQueryMessage, Statement};
use strongroom_store::backend::{
    ScanPlan, check_log_table, check_row, check_scan_limit, plan_scan, require, version_from_sql,
    version_to_sql,
};
use strongroom_store::{
    Batch, Committed, Cursor, Expect, Generation, Op, Page, ReadView, Row, SCHEMA_VERSION,
    ScanRange, Snapshot, Store, StoreError, Table, TableRow, Versioned, log_key, parse_log_key,
};

use crate::PostgresOptions;
use crate::connect::{
    ConnectionSecurity, Connector, Kind, PgConn, Pool, Pooled, classify, map_error,
};
use crate::conninfo::ConnInfo;
use crate::schema::{self, HeadsSql, MIGRATIONS, MIGRATIONS_TABLE, StoreSql, TableSql};

const BACKEND: &str = "postgres";

/// Attempts of a batch that keeps hitting deadlocks or serialization failures.
const TXN_ATTEMPTS: u32 = 8;

/// How long the outcome of a commit whose connection was lost during `COMMIT` is polled
/// while the server still reports the transaction in progress.
const OUTCOME_WAIT: Duration = Duration::from_secs(3);

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

/// Maps a PostgreSQL error outside a pooled connection: connection trouble →
/// `Unavailable`, a read-only server → `ReadOnly`, else `Backend`.
#[allow(clippy::needless_pass_by_value)] // by value to fit `map_err`
pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    map_error(&e, classify(&e), None)
}

fn is_txn_retryable(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
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
/// - Connections come from a small pool and keep their prepared statements; a connection
///   found dead is replaced (see [`Store::commit`] for what happens to a batch).
/// - Schema versions are recorded in a `strongroom_migrations` table; a database written
///   by a newer strongroom is refused with `StoreError::SchemaTooNew`.
pub struct PostgresStore {
    pool: Pool,
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
    /// TLS follows libpq's `sslmode` (`disable`, `allow`/`prefer`, `require`, `verify-ca`,
    /// `verify-full`), `sslrootcert` (a PEM file, or `system`) and `sslcert`/`sslkey` (a
    /// client certificate); a TCP host defaults to `verify-full` against the system's CA
    /// roots, and a unix socket needs no TLS. Several hosts (`host=a,b port=5432,5433`)
    /// are tried in order until one is the kind `target_session_attrs` asks for (`any`,
    /// `read-write`, `read-only`, `primary`, `standby`, `prefer-standby`). Connecting to one
    /// host, TLS and authentication included, takes at most `connect_timeout` seconds
    /// (default 5; `0` waits without limit); an error names each host tried and why it
    /// failed. See the crate README for the deployment.
    ///
    /// Connection failures are [`StoreError::Unavailable`] when retrying may help (the
    /// server is down, restarting, unreachable) and [`StoreError::Backend`] when it cannot
    /// (a certificate that does not verify, a refused login).
    pub fn connect(config: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let info = ConnInfo::parse(config)?;
        let prefix = match &options.schema {
            Some(name) => format!("{}.", schema::quote_schema(name)?),
            None => String::new(),
        };
        let pool = Pool::new(Connector::new(info)?, options.pool_size);
        let store = PostgresStore {
            store_sql: StoreSql::new(&prefix),
            heads_sql: HeadsSql::new(&prefix),
            sql: Table::ALL
                .into_iter()
                .map(|t| TableSql::new(&prefix, t))
                .collect(),
            pool,
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
    ///     PostgresOptions::default().with_schema(Some("team_a".into())))?;
    /// println!("{}", owner.application_grants("vault_app"));
    /// # Ok::<(), strongroom_store::StoreError>(())
    /// ```
    pub fn application_grants(&self, role: &str) -> String {
        schema::application_grants(&self.prefix, self.options.schema.as_deref(), role)
    }

    /// How this store's connections reach the server: encrypted or not, what was
    /// verified, and whether the server is a read-only standby. `doctor` and `status`
    /// report it.
    ///
    /// ```no_run
    /// # use strongroom_postgres::{PostgresOptions, PostgresStore};
    /// let store = PostgresStore::connect(
    ///     "host=db.example dbname=vault user=app sslrootcert=/etc/strongroom/db-ca.pem",
    ///     PostgresOptions::default(),
    /// )?;
    /// let security = store.connection_security()?;
    /// assert!(security.is_encrypted() && security.is_verified(), "{security}");
    /// # Ok::<(), strongroom_store::StoreError>(())
    /// ```
    pub fn connection_security(&self) -> Result<ConnectionSecurity, StoreError> {
        self.with_conn(PgConn::security)
    }

    fn conn(&self) -> Result<Pooled<'_>, StoreError> {
        self.pool.get()
    }

    /// Runs a read on a pooled connection; when that connection turns out to be dead (the
    /// server restarted, the backend was terminated), once more on a new connection.
    fn with_conn<T>(
        &self,
        f: impl Fn(&mut PgConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let result = f(&mut conn);
        if result.is_err() && conn.broken {
            drop(conn);
            self.pool.flush_idle();
            let mut conn = self.conn()?;
            return f(&mut conn);
        }
        result
    }

    /// Refuses a write up front when the store was opened read-only.
    fn refuse_writes(&self) -> Result<(), StoreError> {
        if self.options.read_only {
            return Err(StoreError::ReadOnly {
                reason: "this PostgreSQL store was opened read-only (PostgresOptions::read_only): open a store on the primary for writes".into(),
            });
        }
        let target = self.pool.connector.info.target;
        if target.only_read_only() {
            return Err(StoreError::ReadOnly {
                reason: format!(
                    "this PostgreSQL store connects only to read-only servers (target_session_attrs={}): open a store on the primary for writes",
                    target.name()
                ),
            });
        }
        Ok(())
    }

    /// Whether the transaction `xid`, whose connection was lost during its `COMMIT`,
    /// committed (`Ok(true)`) or rolled back (`Ok(false)`); `Err` says why it is unknown.
    fn commit_outcome(&self, xid: i64) -> Result<bool, String> {
        let deadline = Instant::now() + OUTCOME_WAIT;
        loop {
            let status = self.with_conn(|c| {
                let row = c
                    .client
                    .query_one("SELECT txid_status($1::bigint)", &[&xid])
                    .map_err(|e| c.fail(e))?;
                column::<Option<String>>(&row, 0)
            });
            match status.as_ref().map(Option::as_deref) {
                Ok(Some("committed")) => return Ok(true),
                Ok(Some("aborted")) => return Ok(false),
                Ok(Some("in progress")) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Ok(other) => {
                    return Err(format!(
                        "the server reports the transaction as {}",
                        other.unwrap_or("too old to know")
                    ));
                }
                Err(e) => return Err(format!("asking the server failed: {e}")),
            }
        }
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
            .map_err(|e| conn.fail(e))?;
        if !column::<bool>(&row, 0)? {
            return Ok(None);
        }
        let row = conn
            .client
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {qualified}"),
                &[],
            )
            .map_err(|e| conn.fail(e))?;
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
        let PgConn { client, server, .. } = &mut *conn;
        let pg_err = |e: postgres::Error| map_error(&e, classify(&e), Some(server));
        let mut tx = client.transaction().map_err(pg_err)?;
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

    /// One attempt at a batch: `BEGIN` (learning the transaction id, in the same round
    /// trip), the operations, `COMMIT`.
    fn commit_once(&self, conn: &mut PgConn, batch: &Batch) -> Result<Committed, Failure> {
        let xid = match begin(&mut conn.client) {
            Ok(xid) => xid,
            Err(e) => {
                // BEGIN may have opened the transaction the SELECT then aborted (a standby
                // cannot assign transaction ids): close it.
                if !conn.client.is_closed() && conn.client.batch_execute("ROLLBACK").is_err() {
                    conn.broken = true;
                }
                return Err(Failure::Pg(e, 0));
            }
        };
        let applied = {
            let PgConn {
                client, statements, ..
            } = &mut *conn;
            self.apply(client, statements, batch)
        };
        match applied {
            Ok(versions) => match conn.client.batch_execute("COMMIT") {
                Ok(()) => Ok(Committed { versions }),
                Err(error) => Err(Failure::AtCommit {
                    error,
                    xid,
                    versions,
                }),
            },
            Err(f) => {
                // Ready the connection for its next user; if even that fails, drop it.
                if !conn.client.is_closed() && conn.client.batch_execute("ROLLBACK").is_err() {
                    conn.broken = true;
                }
                Err(f)
            }
        }
    }

    /// The operations of a batch inside the open transaction; their versions.
    fn apply(
        &self,
        tx: &mut Client,
        statements: &mut HashMap<String, Statement>,
        batch: &Batch,
    ) -> Result<Vec<u64>, Failure> {
        if batch.generation().is_some() {
            self.check_generation(tx, statements, batch)?;
        }
        let mut versions = Vec::with_capacity(batch.len());
        for (i, op) in batch.ops().iter().enumerate() {
            let mut txn = BatchTxn {
                store: self,
                client: &mut *tx,
                statements: &mut *statements,
                op: i,
            };
            let version = match op {
                Op::Put {
                    table,
                    key,
                    value,
                    expect,
                } => txn.put(*table, key, value, *expect)?,
                Op::Delete { table, key, expect } => {
                    txn.delete(*table, key, *expect)?;
                    0
                }
                Op::Check { table, key, expect } => {
                    txn.check(*table, key, *expect)?;
                    0
                }
                Op::Append { table, seq, value } => {
                    txn.append(*table, *seq, value)?;
                    1
                }
            };
            versions.push(version);
        }
        Ok(versions)
    }

    /// Checks the batch's expected generation against the store's, which stays locked
    /// until commit.
    fn check_generation(
        &self,
        tx: &mut Client,
        statements: &mut HashMap<String, Statement>,
        batch: &Batch,
    ) -> Result<(), Failure> {
        // Row-locked until commit: a concurrent replace_all waits for this batch, or
        // this batch waits for it and then reads the new generation.
        let current = generation_on(statements, tx, &self.store_sql.generation_for_share).map_err(
            |e| match e {
                GenerationError::Pg(e) => Failure::Pg(e, 0),
                GenerationError::Store(e) => Failure::Store(e),
            },
        )?;
        StoreError::check_generation(batch, current)?;
        Ok(())
    }
}

/// A batch's open transaction while it runs operation `op`: a PostgreSQL error is
/// `Failure::Pg(_, op)`, so the conflict reported after the last retry names that operation.
struct BatchTxn<'a> {
    store: &'a PostgresStore,
    client: &'a mut Client,
    statements: &'a mut HashMap<String, Statement>,
    op: usize,
}

impl BatchTxn<'_> {
    /// `Op::Put` under `expect`: the row's new version.
    fn put(
        &mut self,
        table: Table,
        key: &[u8],
        value: &[u8],
        expect: Expect,
    ) -> Result<u64, Failure> {
        let sql = self.store.table_sql(table);
        match expect {
            Expect::Any => {
                let row = self.query_one(&sql.put_any, &[&key, &value])?;
                Ok(version_from_sql(table, column(&row, 0)?)?)
            }
            Expect::Absent => {
                let n = self.execute(&sql.put_absent, &[&key, &value])?;
                require(n == 1, table, key)?;
                Ok(1)
            }
            Expect::Version(v) => {
                // No stored version exceeds i64::MAX: such an expectation fails.
                let expected = version_to_sql(table, key, v)?;
                let n = self.execute(&sql.put_version, &[&key, &value, &expected])?;
                require(n == 1, table, key)?;
                Ok(v + 1)
            }
        }
    }

    /// `Op::Delete` under `expect`.
    fn delete(&mut self, table: Table, key: &[u8], expect: Expect) -> Result<(), Failure> {
        let sql = self.store.table_sql(table);
        match expect {
            Expect::Any => {
                self.execute(&sql.delete_any, &[&key])?;
            }
            Expect::Absent => {
                // As for `Op::Check`: absence must hold until commit.
                let found = if table.is_log() {
                    self.log_version(table, key, true)?
                } else {
                    self.batch_execute(&sql.lock_share)?;
                    self.query_opt(&sql.exists, &[&key])?.map(|_| 1)
                };
                require(found.is_none(), table, key)?;
            }
            Expect::Version(v) => {
                let expected = version_to_sql(table, key, v)?;
                let n = self.execute(&sql.delete_version, &[&key, &expected])?;
                require(n == 1, table, key)?;
            }
        }
        Ok(())
    }

    /// `Op::Check`: `expect` holds for the row, and goes on holding until commit.
    fn check(&mut self, table: Table, key: &[u8], expect: Expect) -> Result<(), Failure> {
        let current = if table.is_log() {
            // Log rows never change once appended, and appends move only the head row: an
            // absence holds until commit when that row is locked.
            self.log_version(table, key, expect == Expect::Absent)?
        } else {
            self.row_version_for_share(table, key, expect)?
        };
        require(expect.holds(current), table, key)?;
        Ok(())
    }

    /// The version of a table row (not a log's) for `Op::Check`. A present row is locked
    /// FOR SHARE until commit. Absence cannot be locked row by row under READ COMMITTED, so
    /// an Absent check first takes the table in SHARE mode: writers of that table wait for
    /// this batch, and the read below sees every committed insert.
    fn row_version_for_share(
        &mut self,
        table: Table,
        key: &[u8],
        expect: Expect,
    ) -> Result<Option<u64>, Failure> {
        let sql = self.store.table_sql(table);
        if expect == Expect::Absent {
            self.batch_execute(&sql.lock_share)?;
        }
        let row = self.query_opt(&sql.version_for_share, &[&key])?;
        let current: Option<i64> = match &row {
            Some(r) => Some(column(r, 0)?),
            None => None,
        };
        Ok(current.map(|c| version_from_sql(table, c)).transpose()?)
    }

    /// `Op::Append`: only at the head. The head row moves from seq-1 to seq (racing appends
    /// wait on that row; the loser finds it moved), then the entry is inserted.
    fn append(&mut self, table: Table, seq: u64, value: &[u8]) -> Result<(), Failure> {
        let key = log_key(seq);
        let (Ok(to), Ok(from)) = (i64::try_from(seq), i64::try_from(seq).map(|s| s - 1)) else {
            return Err(Failure::Store(StoreError::conflict(table, &key)));
        };
        let n = self.execute(&self.store.heads_sql.advance, &[&table.name(), &to, &from])?;
        require(n == 1, table, &key)?;
        let n = self.execute(
            &self.store.table_sql(table).put_absent,
            &[&&key[..], &value],
        )?;
        require(n == 1, table, &key)?;
        Ok(())
    }

    /// [`PostgresStore::log_version`] in this transaction.
    fn log_version(
        &mut self,
        table: Table,
        key: &[u8],
        lock: bool,
    ) -> Result<Option<u64>, Failure> {
        self.store
            .log_version(self.statements, self.client, table, key, lock)
    }

    /// Maps a PostgreSQL error of this operation.
    fn pg(&self, e: postgres::Error) -> Failure {
        Failure::Pg(e, self.op)
    }

    /// `sql`, prepared once per connection.
    fn prepare(&mut self, sql: &str) -> Result<Statement, Failure> {
        prepared(self.statements, self.client, sql).map_err(|e| self.pg(e))
    }

    /// Runs `sql` (prepared); the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Failure> {
        let s = self.prepare(sql)?;
        self.client.execute(&s, params).map_err(|e| self.pg(e))
    }

    /// Runs `sql` (prepared), which returns one row.
    fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<postgres::Row, Failure> {
        let s = self.prepare(sql)?;
        self.client.query_one(&s, params).map_err(|e| self.pg(e))
    }

    /// Runs `sql` (prepared), which returns at most one row.
    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, Failure> {
        let s = self.prepare(sql)?;
        self.client.query_opt(&s, params).map_err(|e| self.pg(e))
    }

    /// Runs `sql` unprepared (a `LOCK TABLE`).
    fn batch_execute(&mut self, sql: &str) -> Result<(), Failure> {
        self.client.batch_execute(sql).map_err(|e| self.pg(e))
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
            Some(r) => Ok(Some(version_from_sql(table, column(&r, 1)?)?)),
            None => Ok(None),
        }
    }
}

/// An error inside a commit attempt: final; PostgreSQL's at operation `i`, before `COMMIT`
/// (maybe a deadlock, retried); or at `COMMIT` itself.
enum Failure {
    Store(StoreError),
    Pg(postgres::Error, usize),
    AtCommit {
        error: postgres::Error,
        /// The transaction's id, to ask the server what became of it.
        xid: i64,
        /// The versions the batch's operations got.
        versions: Vec<u64>,
    },
}

/// A failed attempt at a batch that `commit` does not give up on.
enum Failed {
    /// A deadlock or serialization failure rolled the transaction back: run the batch again
    /// on the same connection.
    Retry,
    /// The connection was lost before `COMMIT` (the server rolls the transaction back): run
    /// the batch again on a new connection.
    LostBeforeCommit(StoreError),
    /// The connection was lost during `COMMIT`: the server is asked whether transaction
    /// `xid` committed (then the batch got `versions`) before the batch is run again.
    LostAtCommit {
        lost: StoreError,
        xid: i64,
        versions: Vec<u64>,
    },
}

/// What a failed attempt at `batch` leaves to do: a final error (`Err`), or the
/// [`Failed`] case that `commit` goes on with. A deadlock or serialization failure
/// waits a little before its retry, up to `TXN_ATTEMPTS` attempts.
fn after_failure(
    conn: &mut PgConn,
    batch: &Batch,
    attempt: u32,
    failure: Failure,
) -> Result<Failed, StoreError> {
    let (error, op) = match failure {
        Failure::Store(e) => return Err(e),
        Failure::Pg(e, i) => (e, i),
        Failure::AtCommit {
            error,
            xid,
            versions,
        } if classify(&error) == Kind::Lost => {
            return Ok(Failed::LostAtCommit {
                lost: conn.fail(error),
                xid,
                versions,
            });
        }
        // The server refused the COMMIT itself: the transaction is rolled back.
        Failure::AtCommit { error, .. } => (error, batch.len() - 1),
    };
    if is_txn_retryable(&error) {
        if attempt >= TXN_ATTEMPTS {
            let op = &batch.ops()[op.min(batch.len() - 1)];
            return Err(StoreError::conflict(op.table(), &op.key()));
        }
        tracing::debug!(error = %error, attempt, "postgres transaction retried");
        thread::sleep(Duration::from_millis(u64::from(attempt)));
        return Ok(Failed::Retry);
    }
    let err = conn.fail(error);
    if !conn.broken {
        return Err(err);
    }
    Ok(Failed::LostBeforeCommit(err))
}

/// `BEGIN` and the new transaction's id (`txid_current()`), in one round trip.
fn begin(client: &mut Client) -> Result<i64, postgres::Error> {
    let messages = client.simple_query("BEGIN; SELECT txid_current()")?;
    let xid = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
        _ => None,
    });
    // The server always answers the SELECT; -1 is never a transaction id, so a lost
    // outcome is then reported unknown.
    Ok(xid.unwrap_or(-1))
}

/// Adds to the reason of an `Unavailable` error.
fn amend(e: StoreError, more: &str) -> StoreError {
    match e {
        StoreError::Unavailable { reason } => StoreError::Unavailable {
            reason: format!("{reason}; {more}"),
        },
        other => other,
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ConnInfo's Debug leaves the password out.
        f.debug_struct("PostgresStore")
            .field("connection", &self.pool.connector.info)
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
    let s = prepared(&mut conn.statements, &mut conn.client, &sql.get).map_err(|e| conn.fail(e))?;
    let row = conn
        .client
        .query_opt(&s, &[&key])
        .map_err(|e| conn.fail(e))?;
    row.map(|r| {
        Ok(Versioned {
            value: column(&r, 0)?,
            version: version_from_sql(table, column(&r, 1)?)?,
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
    let Some(ScanPlan { start, end, fetch }) = plan_scan(range, resume, limit)? else {
        return Ok(Page::default());
    };
    let s = prepared(
        &mut conn.statements,
        &mut conn.client,
        &sql.scan(start, end),
    )
    .map_err(|e| conn.fail(e))?;
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
    let rows = conn.client.query(&s, &params).map_err(|e| conn.fail(e))?;
    let out = rows
        .iter()
        .map(|r| {
            Ok(Row {
                key: column(r, 0)?,
                value: column(r, 1)?,
                version: version_from_sql(table, column(r, 2)?)?,
            })
        })
        .collect::<Result<Vec<Row>, StoreError>>()?;
    Ok(Page::from_overfetch(out, limit))
}

fn log_head_on(sql: &TableSql, conn: &mut PgConn, table: Table) -> Result<Option<u64>, StoreError> {
    check_log_table(table)?;
    let s =
        prepared(&mut conn.statements, &mut conn.client, &sql.head).map_err(|e| conn.fail(e))?;
    let row = conn.client.query_opt(&s, &[]).map_err(|e| conn.fail(e))?;
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
        self.with_conn(|c| get_on(self.table_sql(table), c, table, key))
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
                version: version_from_sql(keys[i].0, column(&r, 2)?)?,
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
        self.with_conn(|c| scan_on(self.table_sql(table), c, table, range, resume, limit))
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        self.with_conn(|c| log_head_on(self.table_sql(table), c, table))
    }

    fn generation(&self) -> Result<Generation, StoreError> {
        self.with_conn(|c| generation_of(c, &self.store_sql.generation))
    }
}

/// The generation, read on `conn`.
fn generation_of(conn: &mut PgConn, sql: &str) -> Result<Generation, StoreError> {
    let PgConn {
        client, statements, ..
    } = &mut *conn;
    match generation_on(statements, client, sql) {
        Ok(g) => Ok(g),
        Err(GenerationError::Pg(e)) => Err(conn.fail(e)),
        Err(GenerationError::Store(e)) => Err(e),
    }
}

impl PostgresStore {
    /// A new connection to run a batch once more after its connection was lost with
    /// nothing applied; the second loss is reported.
    fn reconnect_for_retry(
        &self,
        reconnected: &mut bool,
        lost: StoreError,
    ) -> Result<Pooled<'_>, StoreError> {
        if *reconnected {
            return Err(amend(lost, "nothing of the batch was applied; retry"));
        }
        *reconnected = true;
        tracing::debug!(error = %lost, "postgres connection lost before commit; retrying the batch on a new connection");
        self.conn()
            .map_err(|e| amend(e, "nothing of the batch was applied; retry"))
    }
}

impl Store for PostgresStore {
    /// Commits the batch in one transaction.
    ///
    /// When the connection is lost (the server restarted, the backend was terminated), a
    /// batch that was not yet committing is rolled back by the server and run once more on
    /// a new connection. When it is lost during `COMMIT`, the server is asked what became
    /// of the transaction: committed is success, rolled back is run once more, and an
    /// answer that cannot be had is [`StoreError::Unavailable`] saying the outcome is
    /// unknown. A batch is never applied twice.
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(Committed::default());
        }
        self.refuse_writes()?;
        let mut conn = self.conn()?;
        let mut attempt = 0;
        let mut reconnected = false;
        loop {
            attempt += 1;
            let failed = match self.commit_once(&mut conn, batch) {
                Ok(committed) => return Ok(committed),
                Err(failure) => after_failure(&mut conn, batch, attempt, failure)?,
            };
            let lost = match failed {
                Failed::Retry => continue,
                // Lost before COMMIT: the server rolls the transaction back.
                Failed::LostBeforeCommit(lost) => {
                    drop(conn);
                    self.pool.flush_idle();
                    lost
                }
                Failed::LostAtCommit {
                    lost,
                    xid,
                    versions,
                } => {
                    drop(conn);
                    self.pool.flush_idle();
                    match self.commit_outcome(xid) {
                        Ok(true) => {
                            tracing::debug!(error = %lost, "the connection was lost during COMMIT; the server committed the batch");
                            return Ok(Committed { versions });
                        }
                        Ok(false) => lost,
                        Err(why) => {
                            return Err(amend(
                                lost,
                                &format!(
                                    "it was lost during COMMIT and whether the batch was applied is unknown ({why}): re-read before retrying"
                                ),
                            ));
                        }
                    }
                }
            };
            conn = self.reconnect_for_retry(&mut reconnected, lost)?;
        }
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        self.refuse_writes()?;
        let mut conn = self.conn()?;
        let PgConn {
            client,
            statements,
            server,
            ..
        } = &mut *conn;
        let pg_err = |e: postgres::Error| map_error(&e, classify(&e), Some(server));
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
        // The snapshot is taken by the first statement after BEGIN.
        let begin = |c: &mut PgConn| {
            c.client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")
                .map_err(|e| c.fail(e))
        };
        let mut conn = self.conn()?;
        if let Err(e) = begin(&mut conn) {
            if !conn.broken {
                return Err(e);
            }
            drop(conn);
            self.pool.flush_idle();
            conn = self.conn()?;
            begin(&mut conn)?;
        }
        Ok(Box::new(PgSnapshot {
            store: self,
            conn: Mutex::new(conn),
        }))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let sql = format!(
            "SELECT coalesce(max(version), 0) FROM {}{MIGRATIONS_TABLE}",
            self.prefix
        );
        let row = self.with_conn(|c| c.client.query_one(&sql, &[]).map_err(|e| c.fail(e)))?;
        let v: i32 = column(&row, 0)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            table: Table::Meta,
            reason: format!("negative schema version {v}"),
        })
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn is_read_only(&self) -> bool {
        self.options.read_only
            || self.pool.connector.info.target.only_read_only()
            || self
                .pool
                .connector
                .server_read_only
                .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A `REPEATABLE READ READ ONLY` transaction on a dedicated connection.
struct PgSnapshot<'a> {
    store: &'a PostgresStore,
    conn: Mutex<Pooled<'a>>,
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
        self.with(|c| generation_of(c, &self.store.store_sql.generation))
    }
}

impl Snapshot for PgSnapshot<'_> {}

impl Drop for PgSnapshot<'_> {
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = conn.client.batch_execute("COMMIT") {
            conn.broken = true;
            tracing::warn!(error = %e, "ending a postgres snapshot failed");
        }
    }
}
