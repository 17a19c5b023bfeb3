//! The embedded SQLite store of Steadfast: one file, WAL, group commit.
//!
//! [`SqliteStore`] implements [`steadfast_core::Store`] and
//! [`steadfast_core::StoreAdmin`] on a single SQLite file:
//!
//! * **Group commit.** One OS thread owns the write connection. Writes from
//!   all tasks are queued to it and committed together in one transaction
//!   (each in its own savepoint, so one failing write does not affect the
//!   others); every caller is answered only after the commit.
//! * **Reads** run on a small pool of read-only connections in blocking
//!   tasks; in WAL mode they see every acknowledged write.
//! * **Safe opening.** A file that is not a Steadfast database is rejected
//!   with [`StoreError::NotSteadfast`] (or [`StoreError::NewerSchema`])
//!   before anything is written to it.
//! * **Fast recovery.** A host that claims processes holds a file lock next
//!   to the database; when its process dies, other stores on the machine
//!   notice at their next claim and take its processes over at once instead
//!   of waiting for the leases to expire.
#![forbid(unsafe_code)]

mod clock;
mod hosts;
mod ops;
mod options;
mod reader;
mod rows;
mod schema;
mod transaction;
mod write;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use steadfast_core::{
    Claimed, Counts, Finish, FunctionSource, Generation, HostId, JournalEntry, Lease, ListFilter,
    Listed, NewProcess, ParkedCounts, PendingSignal, ProcessEvent, ProcessId, ProcessRecord,
    SignalRecord, SpawnAndClaim, SpawnOutcome, Status, Store, StoreAdmin, StoreError,
    SuspendOutcome, Suspension, Timestamp,
};

pub use options::{Access, Durability, SqliteOptions};
/// The SQLite binding transactional steps receive their connection from.
pub use rusqlite;
pub use transaction::WriteConnection;

use reader::Readers;
use steadfast_core::group_commit::{self, Queue, Value};
use write::Write;
use writer::Writer;

/// The newest schema version this build of the store reads and writes.
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

/// A Steadfast store in one SQLite file.
///
/// Cheap to clone: clones share the writer thread and the reader pool. When
/// the last clone is dropped (or [`SqliteStore::close`] is called), the
/// queued writes are committed, the WAL is checkpointed into the database
/// file, the writer thread stops and the host locks are released.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// The writer thread, once started.
enum WriterState {
    /// Not started yet: [`Access::ReadOnly`] never starts it,
    /// [`Access::WriteOnDemand`] at the first write.
    Idle,
    /// Running: commands go here.
    Running(Queue<Write>, JoinHandle<()>),
    /// Closed by [`SqliteStore::close`].
    Closed,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    /// What the file held when it was opened.
    found: schema::Found,
    writer: std::sync::Mutex<WriterState>,
    /// Serialises starting the writer on demand.
    starting: tokio::sync::Mutex<()>,
    readers: Arc<Readers>,
    /// The time the store decides with.
    clock: clock::StoreClock,
}

impl Inner {
    fn writer(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the readers, then lets the writer drain its queue, checkpoint
    /// and stop (closing last, SQLite removes the `-wal` and `-shm` files).
    fn shut(&self) -> Option<JoinHandle<()>> {
        self.readers.close();
        match std::mem::replace(&mut *self.writer(), WriterState::Closed) {
            // Dropping the sender lets the writer drain the queue and stop.
            WriterState::Running(commands, handle) => {
                drop(commands);
                Some(handle)
            }
            WriterState::Idle | WriterState::Closed => None,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(writer) = self.shut()
            && writer.join().is_err()
        {
            tracing::error!("the steadfast sqlite writer thread panicked");
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("access", &self.inner.options.access)
            .finish_non_exhaustive()
    }
}

fn join_error(what: &str, e: tokio::task::JoinError) -> StoreError {
    StoreError::Backend {
        message: format!("{what} failed: {e}"),
        retryable: false,
        source: Some(Box::new(e)),
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with [`SqliteOptions::default`]:
    /// full durability, created when missing.
    ///
    /// Fails with [`StoreError::NotSteadfast`] when the file is not a
    /// Steadfast database and with [`StoreError::NewerSchema`] when a newer
    /// Steadfast wrote it; in both cases the file is left untouched.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use steadfast_core::{ProcessId, Store};
    /// use steadfast_sqlite::SqliteStore;
    ///
    /// let dir = std::env::temp_dir().join(format!("steadfast-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let store = SqliteStore::open(dir.join("app.db")).await?;
    /// let (journal_mode, _) = store.pragmas().await?;
    /// assert_eq!(journal_mode, "wal");
    /// assert!(store.get(&ProcessId::new("nope")?).await.is_err());
    /// store.close().await?;
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens an existing store only to read it ([`Access::ReadOnly`]):
    /// nothing is created, migrated or written, and no file is changed.
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default().access(Access::ReadOnly)).await
    }

    /// Opens (or creates) the store at `path` with `options`; see
    /// [`SqliteStore::open`].
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        // Another connection may hold the file's lock while it creates or
        // migrates the schema (switching to WAL does not wait for it): try
        // again for as long as the busy timeout allows.
        let deadline = std::time::Instant::now() + options.busy_timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            let (p, o) = (path.clone(), options.clone());
            let opened = tokio::task::spawn_blocking(move || Self::open_blocking(p, o))
                .await
                .map_err(|e| join_error("opening the store", e))?;
            match opened {
                Err(err) if err.is_retryable() && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    fn open_blocking(path: PathBuf, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        let found = schema::inspect(&path, &location, &options)?;
        let outdated = found != schema::Found::Steadfast(SCHEMA_VERSION);
        if options.access != Access::ReadWrite && found == schema::Found::Fresh {
            return Err(StoreError::NotSteadfast {
                location,
                detail: "it is an SQLite database without any tables".to_owned(),
            });
        }
        if options.access == Access::ReadOnly
            && let schema::Found::Steadfast(version) = found
            && outdated
        {
            return Err(StoreError::ReadOnly {
                location,
                detail: format!(
                    "its schema version {version} must first be upgraded to {SCHEMA_VERSION}, \
                     which only a store opened for writing does (e.g. a worker)"
                ),
            });
        }
        // Readers remove the side files they create only when nobody else
        // (no writer of this store, no other process) had them first.
        let tidy = options.access != Access::ReadWrite && !reader::wal_path(&path).exists();
        // Lock files must be found by every store on this file, however
        // they spelled its path.
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let readers = Arc::new(Readers::new(canonical, options.busy_timeout, tidy));
        let inner = Inner {
            path,
            options,
            found,
            writer: std::sync::Mutex::new(WriterState::Idle),
            starting: tokio::sync::Mutex::new(()),
            readers,
            clock: clock::StoreClock::new(),
        };
        // A store that reads on demand still upgrades an old schema at once:
        // its reads need the current one.
        let eager = match inner.options.access {
            Access::ReadWrite => true,
            Access::WriteOnDemand => outdated,
            Access::ReadOnly => false,
        };
        if eager {
            let state = Self::start_writer(&inner.path, &inner.options, found)?;
            *inner.writer() = state;
        }
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// Opens the write connection (migrating the schema) and starts the
    /// writer thread.
    fn start_writer(
        path: &Path,
        options: &SqliteOptions,
        found: schema::Found,
    ) -> Result<WriterState, StoreError> {
        let location = path.display().to_string();
        schema::check_writable(path, &location)?;
        let conn = schema::open_writer(path, &location, options, found)?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let hosts = hosts::Hosts::new(&canonical);
        let (tx, rx) = group_commit::queue();
        let writer = Writer::new(conn, hosts, options.max_batch);
        let handle = std::thread::Builder::new()
            .name("steadfast-sqlite-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend {
                message: format!("cannot start the writer thread: {e}"),
                retryable: false,
                source: Some(Box::new(e)),
            })?;
        Ok(WriterState::Running(tx, handle))
    }

    /// The path the store was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// What the store may do to its file.
    pub fn access(&self) -> Access {
        self.inner.options.access
    }

    /// Closes the store for every clone: queued writes are committed, the
    /// WAL is checkpointed into the database file (`wal_checkpoint(TRUNCATE)`)
    /// and the writer stops, so that the database file alone holds every
    /// write. Later calls on any clone fail with [`StoreError::Closed`].
    /// Dropping the last clone does the same.
    pub async fn close(&self) -> Result<(), StoreError> {
        let _starting = self.inner.starting.lock().await;
        match self.inner.shut() {
            Some(handle) => tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| join_error("closing the store", e))?
                .map_err(|_| StoreError::Backend {
                    message: "the steadfast sqlite writer thread panicked".to_owned(),
                    retryable: false,
                    source: None,
                }),
            None => Ok(()),
        }
    }

    /// Reads `journal_mode` and `synchronous` back from the writer
    /// connection: `("wal", 2)` for [`Durability::Full`], `("wal", 1)` for
    /// [`Durability::ProcessCrash`].
    pub async fn pragmas(&self) -> Result<(String, i64), StoreError> {
        self.call(Write::Pragmas).await
    }

    /// The writer's queue, starting the writer first for
    /// [`Access::WriteOnDemand`].
    async fn commands(&self) -> Result<Queue<Write>, StoreError> {
        if let Some(tx) = self.running() {
            return tx;
        }
        let _starting = self.inner.starting.lock().await;
        if let Some(tx) = self.running() {
            return tx;
        }
        if self.inner.options.access == Access::ReadOnly {
            return Err(StoreError::ReadOnly {
                location: self.inner.path.display().to_string(),
                detail: "the store was opened read-only".to_owned(),
            });
        }
        let (path, options, found) = (
            self.inner.path.clone(),
            self.inner.options.clone(),
            self.inner.found,
        );
        let state = tokio::task::spawn_blocking(move || Self::start_writer(&path, &options, found))
            .await
            .map_err(|e| join_error("opening the store for writing", e))??;
        let tx = match &state {
            WriterState::Running(tx, _) => tx.clone(),
            WriterState::Idle | WriterState::Closed => return Err(StoreError::Closed),
        };
        *self.inner.writer() = state;
        Ok(tx)
    }

    /// The queue of a running writer; `None` when it has not started.
    fn running(&self) -> Option<Result<Queue<Write>, StoreError>> {
        match &*self.inner.writer() {
            WriterState::Running(tx, _) => Some(Ok(tx.clone())),
            WriterState::Closed => Some(Err(StoreError::Closed)),
            WriterState::Idle => None,
        }
    }

    /// Queues `write` for the writer and waits for its answer (after the
    /// commit of its batch).
    async fn call<T>(&self, write: Write) -> Result<T, StoreError>
    where
        T: TryFrom<Value, Error = Value> + Send + 'static,
    {
        self.commands().await?.call(write).await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.readers.run(f).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn spawn(&self, mut process: NewProcess) -> Result<SpawnOutcome, StoreError> {
        process.now = self.inner.clock.now(process.now);
        self.call(Write::Spawn(process)).await
    }

    async fn spawn_and_claim(
        &self,
        mut process: NewProcess,
        owner: &HostId,
        lease: Duration,
    ) -> Result<SpawnAndClaim, StoreError> {
        process.now = self.inner.clock.now(process.now);
        self.call(Write::SpawnAndClaim(process, owner.clone(), lease))
            .await
    }

    async fn claim(
        &self,
        owner: &HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = self.inner.clock.now(now);
        let owner = owner.clone();
        self.call(Write::Claim {
            owner,
            now,
            lease,
            limit,
        })
        .await
    }

    async fn append(&self, lease: &Lease, entry: JournalEntry) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.call(Write::Append(lease, entry)).await
    }

    async fn suspend(
        &self,
        lease: &Lease,
        suspension: Suspension,
    ) -> Result<SuspendOutcome, StoreError> {
        let lease = lease.clone();
        let suspension = self.inner.clock.suspension(suspension);
        self.call(Write::Suspend(lease, suspension)).await
    }

    async fn finish(
        &self,
        lease: &Lease,
        finish: Finish,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.call(Write::Finish(lease, finish, now)).await
    }

    async fn continue_as_new(
        &self,
        lease: &Lease,
        input: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let now = self.inner.clock.now(now);
        let (lease, input) = (lease.clone(), input.to_owned());
        self.call(Write::ContinueAsNew(lease, input, now)).await
    }

    async fn renew(
        &self,
        owner: &HostId,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        let now = self.inner.clock.now(now);
        if leases.is_empty() {
            return Ok(0);
        }
        let (owner, leases) = (owner.clone(), leases.to_vec());
        self.call(Write::Renew(owner, leases, now, lease)).await
    }

    async fn release(&self, owner: &HostId, now: Timestamp) -> Result<u64, StoreError> {
        let now = self.inner.clock.now(now);
        let owner = owner.clone();
        self.call(Write::Release(owner, now)).await
    }

    async fn send_signal(
        &self,
        id: &ProcessId,
        signal: steadfast_core::NewSignal,
    ) -> Result<steadfast_core::SignalSent, StoreError> {
        if let Some(message_id) = &signal.message_id {
            steadfast_core::check_message_id(message_id)?;
        }
        let signal = steadfast_core::NewSignal {
            now: self.inner.clock.now(signal.now),
            ..signal
        };
        self.call(Write::Signal(id.clone(), signal)).await
    }

    async fn reject_signal(
        &self,
        lease: &Lease,
        signal: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (lease, reason) = (lease.clone(), reason.to_owned());
        self.call(Write::RejectSignal(lease, signal, reason, now))
            .await
    }

    async fn pending_signals(&self, id: &ProcessId) -> Result<Vec<PendingSignal>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::pending_signals(conn, &id))
            .await
    }

    async fn cancel(&self, id: &ProcessId, now: Timestamp) -> Result<Status, StoreError> {
        let now = self.inner.clock.now(now);
        let id = id.clone();
        self.call(Write::Cancel(id, now)).await
    }

    async fn retry(&self, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
        let now = self.inner.clock.now(now);
        let id = id.clone();
        self.call(Write::Retry(id, now)).await
    }

    async fn store_time(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.inner.clock.own())
    }

    fn follow_host_clock(&self) {
        self.inner.clock.follow_host();
    }

    async fn get(&self, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::get(conn, &id)).await
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(reader::next_wake).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        SqliteStore::close(self).await
    }
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Listed>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| reader::list(conn, &filter)).await
    }

    async fn journal(&self, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::journal(conn, &id)).await
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.read(reader::counts).await
    }

    async fn count(&self, filter: &ListFilter) -> Result<Counts, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| reader::count(conn, &filter)).await
    }

    async fn parked_counts(&self, kind: &str) -> Result<ParkedCounts, StoreError> {
        let kind = kind.to_owned();
        self.read(move |conn| reader::parked_counts(conn, &kind))
            .await
    }

    async fn save_sources(&self, sources: &[FunctionSource]) -> Result<(), StoreError> {
        let sources = sources.to_vec();
        self.call(Write::SaveSources(sources)).await
    }

    async fn sources(&self) -> Result<Vec<FunctionSource>, StoreError> {
        self.read(reader::sources).await
    }

    async fn history(&self, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::history(conn, &id)).await
    }

    async fn save_subscription(
        &self,
        report: &steadfast_core::SubscriptionReport,
    ) -> Result<(), StoreError> {
        steadfast_core::check_subscription_report(report)?;
        let report = Box::new(report.clone());
        self.call(Write::SaveSubscription(report)).await
    }

    async fn subscriptions(&self) -> Result<Vec<steadfast_core::SubscriptionReport>, StoreError> {
        self.read(reader::subscriptions).await
    }

    async fn events(&self, id: &ProcessId) -> Result<Vec<ProcessEvent>, StoreError> {
        let id = id.clone();
        self.read(move |conn| ops::events::list(conn, &id)).await
    }

    async fn signals(&self, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError> {
        let id = id.clone();
        self.read(move |conn| ops::signal::list(conn, &id)).await
    }

    async fn discard_signal(
        &self,
        id: &ProcessId,
        signal: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.call(Write::DiscardSignal(id, signal, now)).await
    }

    async fn rewind(&self, id: &ProcessId, step: &str, now: Timestamp) -> Result<u64, StoreError> {
        let now = self.inner.clock.now(now);
        let (id, step) = (id.clone(), step.to_owned());
        self.call(Write::Rewind(id, step, now)).await
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = self.call::<u64>(Write::PurgeChunk(finished_before)).await?;
            total += deleted;
            if deleted < ops::admin::PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}
