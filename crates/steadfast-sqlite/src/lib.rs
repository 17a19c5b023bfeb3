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

mod hosts;
mod maintenance;
mod ops;
mod options;
mod reader;
mod rows;
mod schema;
mod signals;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use steadfast_core::{
    Claimed, Finish, FunctionSource, Generation, HostId, JournalEntry, Lease, ListFilter,
    NewProcess, ParkedCount, PendingSignal, ProcessId, ProcessRecord, SignalRecord, SpawnOutcome,
    Status, StatusCount, Store, StoreAdmin, StoreError, SuspendOutcome, Suspension, Timestamp,
};
use tokio::sync::{mpsc, oneshot};

pub use options::{Durability, SqliteOptions};
/// The SQLite binding transactional steps receive their connection from.
pub use rusqlite;
pub use writer::TransactionBody;

use reader::Readers;
use writer::{Command, Reply, Writer};

/// The newest schema version this build of the store reads and writes.
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

/// A Steadfast store in one SQLite file.
///
/// Cheap to clone: clones share the writer thread and the reader pool. When
/// the last clone is dropped, the queued writes are committed, the writer
/// thread stops and the host locks are released.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    commands: Option<mpsc::UnboundedSender<Command>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it and stop.
        self.commands.take();
        if let Some(writer) = self.writer.take()
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
            .finish_non_exhaustive()
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
    /// drop(store);
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
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
                .map_err(|e| StoreError::Backend {
                    message: format!("opening the store failed: {e}"),
                    retryable: false,
                    source: Some(Box::new(e)),
                })?;
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
        let conn = schema::open_writer(&path, &location, &options, found)?;
        // Lock files must be found by every store on this file, however
        // they spelled its path.
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let hosts = hosts::Hosts::new(&canonical);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer::new(conn, hosts, options.max_batch);
        let handle = std::thread::Builder::new()
            .name("steadfast-sqlite-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend {
                message: format!("cannot start the writer thread: {e}"),
                retryable: false,
                source: Some(Box::new(e)),
            })?;
        let readers = Arc::new(Readers::new(canonical, options.busy_timeout));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                commands: Some(tx),
                writer: Some(handle),
                readers,
            }),
        })
    }

    /// The path the store was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Reads `journal_mode` and `synchronous` back from the writer
    /// connection: `("wal", 2)` for [`Durability::Full`], `("wal", 1)` for
    /// [`Durability::ProcessCrash`].
    pub async fn pragmas(&self) -> Result<(String, i64), StoreError> {
        self.call(Command::Pragmas).await
    }

    /// Runs `body` on the store's write connection inside the same
    /// transaction that journals `entry` under `lease`: either both the
    /// body's effects and the entry (with the body's JSON as its outcome)
    /// commit, or neither does. `Ok(false)` when the body failed (nothing of
    /// it is kept). The body must not commit or roll back itself, and should
    /// be quick: it runs on the writer thread, inside a group commit.
    ///
    /// This is what `Process::sqlite_transaction` builds on.
    pub async fn transaction(
        &self,
        lease: &Lease,
        entry: JournalEntry,
        body: TransactionBody,
    ) -> Result<bool, StoreError> {
        let lease = lease.clone();
        self.call(|tx| Command::Transaction(lease, entry, body, tx))
            .await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(make(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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
    async fn spawn(&self, process: NewProcess) -> Result<SpawnOutcome, StoreError> {
        self.call(|tx| Command::Spawn(process, tx)).await
    }

    async fn claim(
        &self,
        owner: &HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let owner = owner.clone();
        self.call(|reply| Command::Claim {
            owner,
            now,
            lease,
            limit,
            reply,
        })
        .await
    }

    async fn append(&self, lease: &Lease, entry: JournalEntry) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.call(|tx| Command::Append(lease, entry, tx)).await
    }

    async fn suspend(
        &self,
        lease: &Lease,
        suspension: Suspension,
    ) -> Result<SuspendOutcome, StoreError> {
        let lease = lease.clone();
        self.call(|tx| Command::Suspend(lease, suspension, tx))
            .await
    }

    async fn finish(
        &self,
        lease: &Lease,
        finish: Finish,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.call(|tx| Command::Finish(lease, finish, now, tx))
            .await
    }

    async fn continue_as_new(
        &self,
        lease: &Lease,
        input: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (lease, input) = (lease.clone(), input.to_owned());
        self.call(|tx| Command::ContinueAsNew(lease, input, now, tx))
            .await
    }

    async fn renew(
        &self,
        owner: &HostId,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let (owner, leases) = (owner.clone(), leases.to_vec());
        self.call(|tx| Command::Renew(owner, leases, now, lease, tx))
            .await
    }

    async fn release(&self, owner: &HostId, now: Timestamp) -> Result<u64, StoreError> {
        let owner = owner.clone();
        self.call(|tx| Command::Release(owner, now, tx)).await
    }

    async fn signal(
        &self,
        id: &ProcessId,
        name: &str,
        payload: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let (id, name, payload) = (id.clone(), name.to_owned(), payload.to_owned());
        self.call(|reply| Command::Signal {
            id,
            name,
            payload,
            now,
            reply,
        })
        .await
    }

    async fn reject_signal(
        &self,
        lease: &Lease,
        signal: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (lease, reason) = (lease.clone(), reason.to_owned());
        self.call(|tx| Command::RejectSignal(lease, signal, reason, now, tx))
            .await
    }

    async fn pending_signals(&self, id: &ProcessId) -> Result<Vec<PendingSignal>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::pending_signals(conn, &id))
            .await
    }

    async fn cancel(&self, id: &ProcessId, now: Timestamp) -> Result<Status, StoreError> {
        let id = id.clone();
        self.call(|tx| Command::Cancel(id, now, tx)).await
    }

    async fn retry(&self, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
        let id = id.clone();
        self.call(|tx| Command::Retry(id, now, tx)).await
    }

    async fn get(&self, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::get(conn, &id)).await
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(reader::next_wake).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    async fn list(&self, filter: &ListFilter) -> Result<Vec<ProcessRecord>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| reader::list(conn, &filter)).await
    }

    async fn journal(&self, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::journal(conn, &id)).await
    }

    async fn counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        self.read(reader::counts).await
    }

    async fn parked_counts(&self, kind: &str) -> Result<Vec<ParkedCount>, StoreError> {
        let kind = kind.to_owned();
        self.read(move |conn| reader::parked_counts(conn, &kind))
            .await
    }

    async fn save_sources(&self, sources: &[FunctionSource]) -> Result<(), StoreError> {
        let sources = sources.to_vec();
        self.call(|tx| Command::SaveSources(sources, tx)).await
    }

    async fn sources(&self) -> Result<Vec<FunctionSource>, StoreError> {
        self.read(reader::sources).await
    }

    async fn history(&self, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reader::history(conn, &id)).await
    }

    async fn signals(&self, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError> {
        let id = id.clone();
        self.read(move |conn| signals::list(conn, &id)).await
    }

    async fn discard_signal(
        &self,
        id: &ProcessId,
        signal: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.call(|tx| Command::DiscardSignal(id, signal, now, tx))
            .await
    }

    async fn rewind(&self, id: &ProcessId, step: &str, now: Timestamp) -> Result<u64, StoreError> {
        let (id, step) = (id.clone(), step.to_owned());
        self.call(|tx| Command::Rewind(id, step, now, tx)).await
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = self
                .call(|tx| Command::PurgeChunk(finished_before, tx))
                .await?;
            total += deleted;
            if deleted < maintenance::PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}
