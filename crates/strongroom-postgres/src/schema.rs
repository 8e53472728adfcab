//! The SQL schema: versioned migrations and the statements of each table.

use std::fmt::Write as _;
use std::ops::Bound;

use strongroom_store::{SCHEMA_VERSION, StoreError, Table};

/// Name of the table recording applied migrations.
pub(crate) const MIGRATIONS_TABLE: &str = "strongroom_migrations";

/// Builds a migration's SQL given the schema prefix (`"name".` or empty).
pub(crate) type MigrationSql = fn(&str) -> String;

/// Forward migrations: `(version reached, SQL builder)`.
pub(crate) const MIGRATIONS: &[(u32, MigrationSql)] = &[(1, migration_1), (2, migration_2)];

/// Version 1: one table per [`Table`], `k bytea PRIMARY KEY, v bytea NOT NULL,
/// ver bigint NOT NULL`. Values are ciphertext, so compression is skipped
/// (`STORAGE EXTERNAL`).
fn migration_1(prefix: &str) -> String {
    let mut sql = String::new();
    for table in Table::ALL {
        let t = format!("{prefix}sr_{}", table.name());
        let _ = write!(
            sql,
            "CREATE TABLE {t} (k bytea PRIMARY KEY, v bytea NOT NULL, ver bigint NOT NULL);\n\
             ALTER TABLE {t} ALTER COLUMN v SET STORAGE EXTERNAL;\n"
        );
    }
    sql
}

/// Version 2: `sr_store`, one row holding the store generation (16 random bytes that
/// every `replace_all` replaces), and `sr_heads`, one row per log holding the sequence
/// number of its last entry (-1 when empty). Appends advance the head row; a batch that
/// needs "this log has not moved" locks that row `FOR SHARE`, so neither needs a table
/// lock (which would take UPDATE rights on the append-only log tables).
fn migration_2(prefix: &str) -> String {
    let mut sql = format!(
        "CREATE TABLE {prefix}sr_store (id integer PRIMARY KEY CHECK (id = 1), generation bytea NOT NULL);\n\
         INSERT INTO {prefix}sr_store (id, generation) VALUES (1, uuid_send(gen_random_uuid()));\n\
         CREATE TABLE {prefix}sr_heads (log text PRIMARY KEY, seq bigint NOT NULL CHECK (seq >= -1));\n"
    );
    for table in Table::ALL.into_iter().filter(|t| t.is_log()) {
        let _ = writeln!(
            sql,
            "INSERT INTO {prefix}sr_heads (log, seq) VALUES ('{name}', {head});",
            name = table.name(),
            head = head_of(&format!("{prefix}sr_{}", table.name())),
        );
    }
    sql
}

/// SQL computing the sequence number of the last entry of the log table `qualified`
/// (keys are 8-byte big-endian numbers), -1 when it is empty.
pub(crate) fn head_of(qualified: &str) -> String {
    format!(
        "(SELECT coalesce(max(('x' || encode(k, 'hex'))::bit(64)::bigint), -1) FROM {qualified})"
    )
}

/// The statements on `sr_heads`.
pub(crate) struct HeadsSql {
    /// The head of log `$1`, row-locked until commit.
    pub(crate) for_share: String,
    /// Moves the head of log `$1` from `$3` to `$2`.
    pub(crate) advance: String,
}

impl HeadsSql {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            for_share: format!("SELECT seq FROM {prefix}sr_heads WHERE log = $1 FOR SHARE"),
            advance: format!(
                "UPDATE {prefix}sr_heads SET seq = $2::bigint WHERE log = $1 AND seq = $3::bigint"
            ),
        }
    }
}

/// Sets the head rows from the log tables (after `replace_all` wrote them).
pub(crate) fn reset_heads(prefix: &str) -> String {
    let mut sql = String::new();
    for table in Table::ALL.into_iter().filter(|t| t.is_log()) {
        let _ = writeln!(
            sql,
            "UPDATE {prefix}sr_heads SET seq = {head} WHERE log = '{name}';",
            name = table.name(),
            head = head_of(&format!("{prefix}sr_{}", table.name())),
        );
    }
    sql
}

/// The privileges an application role needs for normal operation (reads, writes,
/// rotations, membership changes) and nothing more: `SELECT, INSERT, UPDATE, DELETE` on
/// the data tables, only `SELECT, INSERT` on the append-only logs, `SELECT, UPDATE` on the
/// bookkeeping rows, `SELECT` on the migration record. Migrations and restores
/// (`replace_all`) need the owner.
pub(crate) fn application_grants(prefix: &str, schema: Option<&str>, role: &str) -> String {
    let role = quote_ident(role);
    let mut sql = String::new();
    if let Some(schema) = schema {
        let _ = writeln!(
            sql,
            "GRANT USAGE ON SCHEMA {} TO {role};",
            quote_ident(schema)
        );
    }
    let list = |logs: bool| {
        Table::ALL
            .into_iter()
            .filter(|t| t.is_log() == logs)
            .map(|t| format!("{prefix}sr_{}", t.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        sql,
        "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {role};",
        list(false)
    );
    let _ = writeln!(sql, "GRANT SELECT, INSERT ON {} TO {role};", list(true));
    let _ = writeln!(
        sql,
        "GRANT SELECT, UPDATE ON {prefix}sr_heads, {prefix}sr_store TO {role};"
    );
    let _ = writeln!(sql, "GRANT SELECT ON {prefix}{MIGRATIONS_TABLE} TO {role};");
    sql
}

/// Quotes an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements on `sr_store`.
pub(crate) struct StoreSql {
    /// The generation, row-locked against a concurrent `replace_all` until commit.
    pub(crate) generation_for_share: String,
    /// The generation, unlocked.
    pub(crate) generation: String,
    /// Draws a new generation.
    pub(crate) new_generation: String,
}

impl StoreSql {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            generation_for_share: format!(
                "SELECT generation FROM {prefix}sr_store WHERE id = 1 FOR SHARE"
            ),
            generation: format!("SELECT generation FROM {prefix}sr_store WHERE id = 1"),
            new_generation: format!(
                "UPDATE {prefix}sr_store SET generation = uuid_send(gen_random_uuid()) WHERE id = 1"
            ),
        }
    }
}

/// Quotes a schema name as an SQL identifier, refusing names PostgreSQL would truncate.
pub(crate) fn quote_schema(name: &str) -> Result<String, StoreError> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(StoreError::invalid(format!(
            "schema name must be 1 to 63 bytes without NUL (got {} bytes)",
            name.len()
        )));
    }
    Ok(quote_ident(name))
}

/// The statements of one table.
pub(crate) struct TableSql {
    pub(crate) qualified: String,
    pub(crate) get: String,
    pub(crate) exists: String,
    pub(crate) version_for_share: String,
    pub(crate) lock_share: String,
    pub(crate) put_any: String,
    pub(crate) put_absent: String,
    pub(crate) put_version: String,
    pub(crate) delete_any: String,
    pub(crate) delete_version: String,
    pub(crate) head: String,
}

impl TableSql {
    pub(crate) fn new(prefix: &str, table: Table) -> Self {
        let t = format!("{prefix}sr_{}", table.name());
        Self {
            get: format!("SELECT v, ver FROM {t} WHERE k = $1::bytea"),
            exists: format!("SELECT 1 FROM {t} WHERE k = $1::bytea"),
            version_for_share: format!("SELECT ver FROM {t} WHERE k = $1::bytea FOR SHARE"),
            lock_share: format!("LOCK TABLE {t} IN SHARE MODE"),
            put_any: format!(
                "INSERT INTO {t} AS cur (k, v, ver) VALUES ($1::bytea, $2::bytea, 1) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, ver = cur.ver + 1 RETURNING ver"
            ),
            put_absent: format!(
                "INSERT INTO {t} (k, v, ver) VALUES ($1::bytea, $2::bytea, 1) ON CONFLICT (k) DO NOTHING"
            ),
            put_version: format!(
                "UPDATE {t} SET v = $2::bytea, ver = ver + 1 WHERE k = $1::bytea AND ver = $3::bigint"
            ),
            delete_any: format!("DELETE FROM {t} WHERE k = $1::bytea"),
            delete_version: format!("DELETE FROM {t} WHERE k = $1::bytea AND ver = $2::bigint"),
            head: format!("SELECT k FROM {t} ORDER BY k DESC LIMIT 1"),
            qualified: t,
        }
    }

    /// The scan statement for a pair of bounds; parameters are the bound keys in order,
    /// then the row limit.
    pub(crate) fn scan(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> String {
        let mut sql = format!("SELECT k, v, ver FROM {} WHERE TRUE", self.qualified);
        let mut n = 0;
        let mut bound = |op: &str, sql: &mut String| {
            n += 1;
            let _ = write!(sql, " AND k {op} ${n}::bytea");
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
        let _ = write!(sql, " ORDER BY k LIMIT ${}::bigint", n + 1);
        sql
    }
}

/// Checks the migration list ends at the current schema version.
pub(crate) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

const _: () = assert!(
    SCHEMA_VERSION == 2,
    "add a migration for the new schema version"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_reach_the_schema_version() {
        assert_eq!(latest(), SCHEMA_VERSION);
        let sql = migration_1("\"s\".");
        for t in Table::ALL {
            assert!(sql.contains(&format!("CREATE TABLE \"s\".sr_{} (", t.name())));
        }
    }

    #[test]
    fn schema_quoting() {
        assert_eq!(quote_schema("a").unwrap(), "\"a\"");
        assert_eq!(quote_schema("we\"ird").unwrap(), "\"we\"\"ird\"");
        assert!(quote_schema("").is_err());
        assert!(quote_schema(&"x".repeat(64)).is_err());
        assert!(quote_schema("a\0b").is_err());
    }

    #[test]
    fn scan_sql_variants() {
        let s = TableSql::new("", Table::Audit);
        let k: &[u8] = b"k";
        assert_eq!(
            s.scan(Bound::Included(k), Bound::Excluded(k)),
            "SELECT k, v, ver FROM sr_audit WHERE TRUE AND k >= $1::bytea AND k < $2::bytea ORDER BY k LIMIT $3::bigint"
        );
        assert_eq!(
            s.scan(Bound::Unbounded, Bound::Unbounded),
            "SELECT k, v, ver FROM sr_audit WHERE TRUE ORDER BY k LIMIT $1::bigint"
        );
    }
}
