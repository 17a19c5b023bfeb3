//! How a [`crate::SqliteStore`] is opened.

use std::time::Duration;

/// How hard every acknowledged write is pushed to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// WAL with `synchronous = FULL`: the WAL is fsynced at every commit, so an
    /// acknowledged write survives a power loss or an OS crash.
    #[default]
    Full,
    /// WAL with `synchronous = NORMAL`: an acknowledged write survives a crash
    /// (or `kill -9`) of the process, but the last commits may be lost on a
    /// power loss or an OS crash. Faster: fsync happens only at checkpoints.
    ProcessCrash,
}

impl Durability {
    /// The value of SQLite's `synchronous` pragma for this level
    /// (2 = FULL, 1 = NORMAL).
    pub fn synchronous(self) -> i64 {
        match self {
            Durability::Full => 2,
            Durability::ProcessCrash => 1,
        }
    }
}

/// What a [`crate::SqliteStore`] may do to its file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Access {
    /// Reads and writes: the file is created when missing (see
    /// [`SqliteOptions::create_if_missing`]) and its schema migrated at
    /// once.
    #[default]
    ReadWrite,
    /// Reads only: the file must already be a Steadfast database of this
    /// schema version. Nothing is created, migrated or written (no `-wal`
    /// or `-shm` file is left behind either); writes fail with
    /// [`steadfast_core::StoreError::ReadOnly`]. For tools that inspect.
    ReadOnly,
    /// Reads like [`Access::ReadOnly`] until the first write, which opens
    /// the write connection (migrating the schema if needed). For tools that
    /// mostly read and sometimes act, like a dashboard.
    WriteOnDemand,
}

/// Options for [`crate::SqliteStore::open_with`].
///
/// ```
/// use std::time::Duration;
/// use steadfast_sqlite::{Durability, SqliteOptions};
///
/// let options = SqliteOptions::default()
///     .durability(Durability::ProcessCrash)
///     .busy_timeout(Duration::from_secs(10));
/// assert!(options.create_if_missing);
/// assert_eq!(options.max_batch, 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How durable an acknowledged write is (default [`Durability::Full`]).
    pub durability: Durability,
    /// Create the file when it does not exist (default `true`).
    pub create_if_missing: bool,
    /// How long a connection waits for a lock held by another connection or
    /// process before failing with a retryable error (default 5 s).
    pub busy_timeout: Duration,
    /// The most writes committed in one transaction (group commit; default 1024).
    pub max_batch: usize,
    /// What the store may do to its file (default [`Access::ReadWrite`]).
    pub access: Access,
    /// The size the `-wal` file is truncated back to after a checkpoint
    /// (SQLite's `journal_size_limit`; default 64 MiB). The store also
    /// checkpoints the whole WAL into the database file when it closes, so
    /// after a clean shutdown the database file alone holds every write.
    pub journal_size_limit: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Full,
            create_if_missing: true,
            busy_timeout: Duration::from_secs(5),
            max_batch: 1024,
            access: Access::ReadWrite,
            journal_size_limit: 64 * 1024 * 1024,
        }
    }
}

impl SqliteOptions {
    /// Sets [`SqliteOptions::durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`SqliteOptions::create_if_missing`].
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Sets [`SqliteOptions::busy_timeout`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`SqliteOptions::access`].
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Sets [`SqliteOptions::journal_size_limit`].
    pub fn journal_size_limit(mut self, bytes: u64) -> Self {
        self.journal_size_limit = bytes;
        self
    }

    /// Sets [`SqliteOptions::max_batch`] (at least 1 is used).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }
}
