//! Connection options of a PostgreSQL store.

use std::fmt;

/// How [`PostgresStore::connect`](crate::PostgresStore::connect) sets up its pool and tables.
///
/// ```
/// use strongroom_postgres::PostgresOptions;
///
/// let opts = PostgresOptions::default().with_schema(Some("vault_a".into()));
/// assert_eq!(opts.pool_size, 8);
/// assert!(!opts.read_only);
/// ```
///
/// Connection settings (TLS, hosts, timeouts) live in the connection string; see
/// [`PostgresStore::connect`](crate::PostgresStore::connect).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Most connections the pool opens (snapshots hold one each). Default 8.
    pub pool_size: usize,
    /// The schema holding strongroom's tables, created if missing; `None` uses the
    /// connection's `search_path` (normally `public`). One schema per vault isolates
    /// vaults sharing a database. At most 63 bytes.
    pub schema: Option<String>,
    /// Refuse every write with [`StoreError::ReadOnly`](strongroom_store::StoreError::ReadOnly)
    /// without asking the server: a handle for a replica (a hot standby), or for readers
    /// that must never write. The vault opened on such a store is read-only. A connection
    /// string with `target_session_attrs=standby` or `read-only` has the same effect.
    /// Default `false`.
    pub read_only: bool,
}

impl PostgresOptions {
    /// Sets [`PostgresOptions::pool_size`].
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Sets [`PostgresOptions::schema`].
    #[must_use]
    pub fn with_schema(mut self, schema: Option<String>) -> Self {
        self.schema = schema;
        self
    }

    /// Sets [`PostgresOptions::read_only`].
    #[must_use]
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            schema: None,
            read_only: false,
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("pool_size", &self.pool_size)
            .field("schema", &self.schema)
            .field("read_only", &self.read_only)
            .finish()
    }
}
