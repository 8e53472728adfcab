//! The SQL schema: versioned migrations and the statements of each table.

use std::fmt::Write as _;
use std::ops::Bound;

use rusqlite::{Connection, OptionalExtension};
use strongroom_store::{SCHEMA_VERSION, StoreError, Table};

use crate::store::sql_err;

/// `PRAGMA application_id` of a strongroom database ("SRm1").
pub(crate) const APPLICATION_ID: i32 = 0x5352_6d31;

/// Forward migrations: `(version reached, SQL)`, applied in order inside one transaction.
///
/// Every table has `k BLOB PRIMARY KEY, v BLOB NOT NULL, ver INTEGER NOT NULL`. Bodies,
/// whose values are large, live in a rowid table (the primary key is a separate index, so
/// B-tree pages of the key index stay small); the others are `WITHOUT ROWID`, except the
/// index table, which version 1 created `WITHOUT ROWID` and [`upgrade_layout`] rebuilds as
/// a rowid table after the migrations (its entries now carry small bodies inline).
///
/// Version 2 adds `sr_store`, one row holding the store's generation (16 random bytes,
/// replaced by every `replace_all`).
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (
    1,
    "
    CREATE TABLE sr_meta (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_keyholders (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_identities (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_wraps (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_bodies (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT;
    CREATE TABLE sr_deks (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_index (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_jobs (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_member_log (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    CREATE TABLE sr_audit (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT, WITHOUT ROWID;
    ",
    ),
    (
        2,
        "
    CREATE TABLE sr_store (id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1), generation BLOB NOT NULL) STRICT;
    INSERT INTO sr_store (id, generation) VALUES (1, randomblob(16));
    ",
    ),
];

/// The physical layout of the index table: a rowid table, like `sr_bodies`.
///
/// Index entries carry the head version's wrapped data key and, up to 8 KiB, its body
/// inline (one read per get). Rows that large overflow the pages of a `WITHOUT ROWID`
/// B-tree, whose cells hold at most about a quarter of a page: a 1 KiB secret then costs
/// an overflow page on every read and three times the file size. Stores created before
/// have `sr_index` as `WITHOUT ROWID`; [`upgrade_layout`] rebuilds it. Both layouts hold
/// the same rows and answer the same statements, so the layout is not a schema version: a
/// store in either opens in every release.
const INDEX_TABLE_LAYOUT: &str = "
    CREATE TABLE sr_index_rowid (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL, ver INTEGER NOT NULL) STRICT;
    INSERT INTO sr_index_rowid (k, v, ver) SELECT k, v, ver FROM sr_index ORDER BY k;
    DROP TABLE sr_index;
    ALTER TABLE sr_index_rowid RENAME TO sr_index;
";

/// Whether `sr_index` has the current layout (read-only; true for a store without one).
pub(crate) fn layout_is_current(conn: &Connection) -> Result<bool, StoreError> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'sr_index'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err)?;
    Ok(sql.is_none_or(|s| !s.to_ascii_uppercase().contains("WITHOUT ROWID")))
}

/// Rebuilds `sr_index` in the current layout, inside the caller's write transaction (all
/// or nothing: a crash leaves the old table). Does nothing when it is current.
pub(crate) fn upgrade_layout(conn: &Connection) -> Result<bool, StoreError> {
    if layout_is_current(conn)? {
        return Ok(false);
    }
    tracing::info!("rebuilding the sqlite index table as a rowid table (one time)");
    conn.execute_batch(INDEX_TABLE_LAYOUT).map_err(sql_err)?;
    Ok(true)
}

/// Reads the store's generation.
pub(crate) const GET_GENERATION: &str = "SELECT generation FROM sr_store WHERE id = 1";
/// Gives the store a new random generation.
pub(crate) const NEW_GENERATION: &str =
    "UPDATE sr_store SET generation = randomblob(16) WHERE id = 1";

/// Brings the database to [`SCHEMA_VERSION`], refusing newer or foreign databases.
pub(crate) fn migrate(conn: &Connection) -> Result<u32, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err)?;
    let result = migrate_in_transaction(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(sql_err);
    let version = result?;
    ended?;
    Ok(version)
}

/// Reads (without writing anything) whether the database is a strongroom store or an
/// empty file, and its schema version: another application's database, a file with
/// foreign tables, or a newer schema is refused.
pub(crate) fn inspect(conn: &Connection) -> Result<u32, StoreError> {
    if !conn.is_autocommit() {
        return inspect_in(conn);
    }
    // One read transaction (one WAL snapshot): another process creating the schema commits
    // its tables and its version together, and reads in separate statements could see the
    // version from before that commit and the tables from after it.
    conn.execute_batch("BEGIN DEFERRED").map_err(sql_err)?;
    let result = inspect_in(conn);
    let ended = conn.execute_batch("ROLLBACK").map_err(sql_err);
    let found = result?;
    ended?;
    Ok(found)
}

/// [`inspect`] inside the caller's transaction.
fn inspect_in(conn: &Connection) -> Result<u32, StoreError> {
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql_err)?;
    let found = user_version(conn)?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(StoreError::invalid(format!(
            "the file is a SQLite database of another application (application_id {app_id:#x}), not a strongroom store"
        )));
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == 0 {
        let foreign: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_schema WHERE type = 'table' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if let Some(name) = foreign {
            return Err(StoreError::invalid(format!(
                "the SQLite database already has tables (such as {name:?}) but no strongroom schema; use an empty or new file"
            )));
        }
    }
    Ok(found)
}

fn migrate_in_transaction(conn: &Connection) -> Result<u32, StoreError> {
    // Again under the write lock: another process may have migrated meanwhile.
    let found = inspect_in(conn)?;
    for (version, sql) in MIGRATIONS {
        if *version > found {
            tracing::debug!(version, "applying strongroom sqlite migration");
            conn.execute_batch(sql).map_err(sql_err)?;
            conn.pragma_update(None, "user_version", version)
                .map_err(sql_err)?;
        }
    }
    upgrade_layout(conn)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(sql_err)?;
    user_version(conn)
}

pub(crate) fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        table: Table::Meta,
        reason: format!("negative schema version {v}"),
    })
}

/// The statements of one table.
pub(crate) struct TableSql {
    pub(crate) name: &'static str,
    pub(crate) get: String,
    pub(crate) exists: String,
    pub(crate) version: String,
    pub(crate) put_set: String,
    pub(crate) put_absent: String,
    pub(crate) put_version: String,
    pub(crate) delete_any: String,
    pub(crate) delete_version: String,
    pub(crate) append: String,
    pub(crate) head: String,
}

impl TableSql {
    pub(crate) fn new(table: Table) -> Self {
        let t = format!("sr_{}", table.name());
        Self {
            name: table.name(),
            get: format!("SELECT v, ver FROM {t} WHERE k = ?1"),
            exists: format!("SELECT 1 FROM {t} WHERE k = ?1"),
            version: format!("SELECT ver FROM {t} WHERE k = ?1"),
            put_set: format!("UPDATE {t} SET v = ?2, ver = ?3 WHERE k = ?1"),
            put_absent: format!(
                "INSERT INTO {t} (k, v, ver) VALUES (?1, ?2, 1) ON CONFLICT (k) DO NOTHING"
            ),
            put_version: format!("UPDATE {t} SET v = ?2, ver = ver + 1 WHERE k = ?1 AND ver = ?3"),
            delete_any: format!("DELETE FROM {t} WHERE k = ?1"),
            delete_version: format!("DELETE FROM {t} WHERE k = ?1 AND ver = ?2"),
            append: format!(
                "INSERT INTO {t} (k, v, ver) SELECT ?1, ?2, 1 \
                 WHERE ?3 OR EXISTS (SELECT 1 FROM {t} WHERE k = ?4) ON CONFLICT (k) DO NOTHING"
            ),
            head: format!("SELECT k FROM {t} ORDER BY k DESC LIMIT 1"),
        }
    }

    /// The scan statement for a pair of bounds; parameters are the bound keys in order,
    /// then the row limit.
    pub(crate) fn scan(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> String {
        let mut sql = format!("SELECT k, v, ver FROM sr_{} WHERE 1", self.name);
        let mut n = 0;
        let mut bound = |op: &str, sql: &mut String| {
            n += 1;
            let _ = write!(sql, " AND k {op} ?{n}");
        };
        match start {
            Bound::Included(_) => bound(">=", &mut sql),
            Bound::Excluded(_) => bound(">", &mut sql),
            Bound::Unbounded => {}
        }
        match end {
            Bound::Included(_) => bound("<=", &mut sql),
            Bound::Excluded(_) => bound("<", &mut sql),
            Bound::Unbounded => {}
        }
        let _ = write!(sql, " ORDER BY k LIMIT ?{}", n + 1);
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_covers_every_table() {
        let (_, sql) = MIGRATIONS[0];
        for t in Table::ALL {
            assert!(
                sql.contains(&format!("CREATE TABLE sr_{} (", t.name())),
                "{t} missing"
            );
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(SCHEMA_VERSION));
    }

    #[test]
    fn scan_sql_variants() {
        let s = TableSql::new(Table::Deks);
        let k: &[u8] = b"k";
        assert_eq!(
            s.scan(Bound::Unbounded, Bound::Unbounded),
            "SELECT k, v, ver FROM sr_deks WHERE 1 ORDER BY k LIMIT ?1"
        );
        assert_eq!(
            s.scan(Bound::Excluded(k), Bound::Included(k)),
            "SELECT k, v, ver FROM sr_deks WHERE 1 AND k > ?1 AND k <= ?2 ORDER BY k LIMIT ?3"
        );
        assert_eq!(
            s.scan(Bound::Unbounded, Bound::Excluded(k)),
            "SELECT k, v, ver FROM sr_deks WHERE 1 AND k < ?1 ORDER BY k LIMIT ?2"
        );
    }
}
