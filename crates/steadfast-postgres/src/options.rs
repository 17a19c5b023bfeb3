//! How a [`crate::PostgresStore`] connects.

use std::time::Duration;

/// Options for [`crate::PostgresStore::connect_with`].
///
/// ```
/// use std::time::Duration;
/// use steadfast_postgres::PostgresOptions;
///
/// let options = PostgresOptions::default()
///     .schema("orders")
///     .max_connections(20)
///     .connect_timeout(Duration::from_secs(3));
/// assert_eq!(options.schema, "orders");
/// assert!(options.create_schema);
/// assert_eq!(options.max_batch, 512);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The PostgreSQL schema holding the store's tables (default
    /// `"steadfast"`). ASCII letters, digits and `_`, not starting with a
    /// digit, at most 48 bytes; it is always quoted, so case matters.
    pub schema: String,
    /// The most pooled connections used for reads and claims (default 10).
    /// The store opens up to three more: the group-commit writer, the
    /// `LISTEN` connection and the host-liveness connection.
    pub max_connections: u32,
    /// The most writes committed in one transaction (group commit; default 512).
    pub max_batch: usize,
    /// Create the schema and its tables when they do not exist (default `true`).
    pub create_schema: bool,
    /// Upgrade the tables of an older Steadfast to this version's schema
    /// (default `true`). Off, an older schema is refused with
    /// [`steadfast_core::StoreError::ReadOnly`] and left as it is: for
    /// tools that only read.
    pub upgrade_schema: bool,
    /// How long connecting, or waiting for a pooled connection, may take
    /// before the operation fails with a retryable error (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "steadfast".to_owned(),
            max_connections: 10,
            max_batch: 512,
            create_schema: true,
            upgrade_schema: true,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl PostgresOptions {
    /// Sets [`PostgresOptions::schema`].
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets [`PostgresOptions::max_connections`] (at least 1 is used).
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Sets [`PostgresOptions::max_batch`] (at least 1 is used).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// Sets [`PostgresOptions::create_schema`].
    pub fn create_schema(mut self, create: bool) -> Self {
        self.create_schema = create;
        self
    }

    /// Sets [`PostgresOptions::upgrade_schema`].
    pub fn upgrade_schema(mut self, upgrade: bool) -> Self {
        self.upgrade_schema = upgrade;
        self
    }

    /// Sets [`PostgresOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}
