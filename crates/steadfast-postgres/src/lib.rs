//! The PostgreSQL store of Steadfast: many workers on many machines sharing
//! one database.
//!
//! [`PostgresStore`] implements [`steadfast_core::Store`] and
//! [`steadfast_core::StoreAdmin`] on the tables of one PostgreSQL schema:
//!
//! * **Group commit.** One task per store owns a write connection. Writes
//!   from all tasks are queued to it and committed together in one
//!   transaction (spawns, appends, suspensions and finishes one statement
//!   per kind that answers each write on its own, other writes in a
//!   savepoint each, so one failing write does not affect the others);
//!   every caller is answered only after the `COMMIT`, with
//!   `synchronous_commit = on`. A write alone in the queue is one
//!   autocommitted statement.
//! * **Claims** run on a connection pool with `FOR UPDATE SKIP LOCKED`, so
//!   concurrent claimers on any number of machines get disjoint processes.
//! * **Fast wake-ups.** Writes that make work due send a `NOTIFY`; every
//!   store listens and bumps [`steadfast_core::Store::work_events`].
//! * **Dead hosts.** A host that claims holds a session-level advisory lock;
//!   when its worker dies, its session ends and other stores take its
//!   processes over at their next claim instead of waiting for the leases
//!   to expire.
//! * **Safe opening.** A schema that holds foreign tables is rejected with
//!   [`StoreError::NotSteadfast`] (a newer one with
//!   [`StoreError::NewerSchema`]) and left untouched; migrations run once
//!   under an advisory lock when many workers start together.
//! * **Connection loss** surfaces as retryable [`StoreError::Backend`]
//!   errors; the store reconnects when PostgreSQL is back.
#![forbid(unsafe_code)]

mod batch;
mod clock;
mod hosts;
mod listen;
mod ops;
mod options;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod plans;
mod reader;
mod rows;
mod schema;
mod statistics;
#[cfg(test)]
#[allow(clippy::expect_used, reason = "test code")]
mod test_schema;
mod transaction;
mod url;
mod write;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use steadfast_core::{
    Claimed, Counts, Finish, FunctionSource, Generation, HostId, JournalEntry, Lease, ListFilter,
    Listed, NewProcess, ParkedCounts, PendingSignal, ProcessEvent, ProcessId, ProcessRecord,
    SignalRecord, SpawnAndClaim, SpawnOutcome, Status, Store, StoreAdmin, StoreError,
    SuspendOutcome, Suspension, Timestamp,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use options::PostgresOptions;
/// The SQL toolkit transactional steps receive their connection from.
pub use sqlx;
pub use url::{PostgresUrl, redact};

use clock::Now;
use hosts::Hosts;
use rows::{Db, backend};
use steadfast_core::group_commit::{self, Queue, Value};
use write::Write;
use writer::Writer;

/// How long one batch of writes, one claim or one read may take before it
/// fails with a retryable error (a half-open connection would otherwise
/// hang until the kernel gives up on it).
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `op` for at most [`OP_TIMEOUT`].
async fn bounded<T>(op: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Backend {
                message: format!("the operation took longer than {OP_TIMEOUT:?}"),
                retryable: true,
                source: None,
            })
        })
}

/// The newest schema version this build of the store reads and writes.
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

/// A Steadfast store in one schema of a PostgreSQL database.
///
/// Cheap to clone: clones share the pool, the writer task, the listener and
/// the host locks. When the last clone is dropped, the queued writes are
/// committed, the writer stops and the host locks are released (their
/// connection closes).
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    schema: String,
    location: String,
    channel: String,
    pool: PgPool,
    commands: Queue<Write>,
    hosts: Hosts,
    events: watch::Receiver<u64>,
    listener: JoinHandle<()>,
    /// Set by [`Store::follow_host_clock`]: the hosts' times decide instead
    /// of the database's clock.
    host_clock: AtomicBool,
    /// When to analyse `processes` (see [`statistics`]).
    statistics: statistics::Statistics,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.inner.location)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

fn config_error(url: &PostgresUrl, e: sqlx::Error) -> StoreError {
    StoreError::InvalidInput(format!(
        "invalid PostgreSQL URL {url}: {}",
        redact(&e.to_string())
    ))
}

/// Why the pool could not connect: a pool only says it timed out, so one
/// direct connection is tried to find the server's (or the network's) own
/// error.
async fn connect_failure(
    connect: &PgConnectOptions,
    location: &str,
    timeout: Duration,
    e: sqlx::Error,
) -> StoreError {
    if !matches!(e, sqlx::Error::PoolTimedOut) {
        return connect_error(location, e);
    }
    let direct = <sqlx::PgConnection as sqlx::Connection>::connect_with(connect);
    match tokio::time::timeout(timeout, direct).await {
        Ok(Err(underlying)) => connect_error(location, underlying),
        Ok(Ok(_)) | Err(_) => StoreError::Backend {
            message: format!("cannot connect to {location}: no connection within {timeout:?}"),
            retryable: true,
            source: Some(Box::new(e)),
        },
    }
}

fn connect_error(location: &str, e: sqlx::Error) -> StoreError {
    let retryable = is_transient(&e);
    StoreError::Backend {
        message: format!("cannot connect to {location}: {}", redact(&e.to_string())),
        retryable,
        source: Some(Box::new(e)),
    }
}

/// Connection errors worth retrying: the server is down, restarting or
/// unreachable (not a wrong password or database name).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (e.g.
    /// `postgres://user:password@host:5432/db`) with
    /// [`PostgresOptions::default`]: schema `steadfast` (or the URL's
    /// `schema=NAME` parameter), created (with its tables) when missing.
    /// The URL is checked by [`PostgresUrl::parse`]: a query parameter that
    /// is neither `schema` nor one the driver knows is refused with
    /// [`StoreError::InvalidInput`]. Messages never show the URL's password.
    ///
    /// Fails with [`StoreError::NotSteadfast`] when the schema holds tables
    /// but is not a Steadfast store and with [`StoreError::NewerSchema`]
    /// when a newer Steadfast wrote it; in both cases nothing is changed.
    /// An unreachable server is a retryable [`StoreError::Backend`] error.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use steadfast_core::{ProcessId, Store};
    /// use steadfast_postgres::{PostgresOptions, PostgresStore};
    ///
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/app").await?;
    /// assert_eq!(store.schema(), "steadfast");
    /// assert!(store.get(&ProcessId::new("nope")?).await.is_err());
    ///
    /// // Another application in the same database, in its own schema:
    /// let other = PostgresStore::connect_with(
    ///     "postgres://postgres@127.0.0.1:5432/app",
    ///     PostgresOptions::default().schema("billing").max_connections(4),
    /// )
    /// .await?;
    /// assert_eq!(other.synchronous_commit().await?, "on");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with `options`; see [`PostgresStore::connect`]. A
    /// `schema=NAME` parameter in the URL takes the place of
    /// [`PostgresOptions::schema`] (naming two different schemas is an
    /// error). Must be called within a Tokio runtime, which runs the store's
    /// tasks.
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, StoreError> {
        let url = PostgresUrl::parse(url)?;
        let mut options = options;
        if let Some(from_url) = url.schema() {
            let default = PostgresOptions::default().schema;
            if options.schema != default && options.schema != from_url {
                return Err(StoreError::InvalidInput(format!(
                    "the URL {url} names schema {from_url:?} but the options name {:?}; give one",
                    options.schema
                )));
            }
            options.schema = from_url.to_owned();
        }
        schema::validate_schema(&options.schema)?;
        let schema = options.schema.clone();
        let mut connect =
            PgConnectOptions::from_str(url.driver_url()).map_err(|e| config_error(&url, e))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("steadfast");
        }
        let location = format!(
            "postgres://{}@{}:{}/{} (schema {schema})",
            connect.get_username(),
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or(""),
        );
        let timeout = options.connect_timeout;
        let setup_schema = schema.clone();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(timeout)
            .after_connect(move |conn, _meta| {
                let schema = setup_schema.clone();
                Box::pin(async move { schema::setup(conn, &schema).await })
            })
            .connect_with(connect.clone())
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(e) => return Err(connect_failure(&connect, &location, timeout, e).await),
        };
        {
            let mut conn = match pool.acquire().await {
                Ok(conn) => conn,
                Err(e) => return Err(connect_failure(&connect, &location, timeout, e).await),
            };
            schema::migrate(
                &mut conn,
                &schema,
                &location,
                options.create_schema,
                options.upgrade_schema,
            )
            .await?;
        }
        let channel = schema::channel(&schema);
        let writer_conn = {
            let attempt = async {
                let mut conn =
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect).await?;
                schema::setup_writer(&mut conn, &schema).await?;
                Ok::<_, sqlx::Error>(conn)
            };
            tokio::time::timeout(timeout, attempt)
                .await
                .map_err(|_| StoreError::Backend {
                    message: format!("{location}: connecting took longer than {timeout:?}"),
                    retryable: true,
                    source: None,
                })?
                .map_err(backend)?
        };
        let (events, listener) = listen::start(connect.clone(), channel.clone(), timeout).await?;
        let (tx, rx) = group_commit::queue();
        let writer = Writer::new(
            writer_conn,
            connect.clone(),
            schema.clone(),
            channel.clone(),
            timeout,
            options.max_batch,
        );
        tokio::spawn(writer.run(rx));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                hosts: Hosts::new(connect, &schema, timeout),
                schema,
                location,
                channel,
                pool,
                commands: tx,
                events,
                listener,
                host_clock: AtomicBool::new(false),
                statistics: statistics::Statistics::new(),
            }),
        })
    }

    /// The PostgreSQL schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Reads `synchronous_commit` back from the write connection (`"on"`:
    /// every acknowledged write is flushed to the server's disk).
    pub async fn synchronous_commit(&self) -> Result<String, StoreError> {
        self.call(Write::Show("synchronous_commit")).await
    }

    /// The time a decision is made at: the database's clock unless the
    /// store follows the host's.
    fn now(&self, host: Timestamp) -> Now {
        Now::new(host, !self.inner.host_clock.load(Ordering::Relaxed))
    }

    /// Queues `op` for the writer and waits for its answer (after the
    /// commit of its batch).
    async fn call<T>(&self, op: Write) -> Result<T, StoreError>
    where
        T: TryFrom<Value, Error = Value> + Send + 'static,
    {
        self.inner.commands.call(op).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn spawn(&self, process: NewProcess) -> Result<SpawnOutcome, StoreError> {
        let now = self.now(process.now);
        let outcome = self.call(Write::Spawn(process, now)).await?;
        if matches!(outcome, SpawnOutcome::Created) && self.inner.statistics.spawned() {
            tokio::spawn(statistics::analyse(self.inner.pool.clone()));
        }
        Ok(outcome)
    }

    async fn spawn_and_claim(
        &self,
        process: NewProcess,
        owner: &HostId,
        lease: Duration,
    ) -> Result<SpawnAndClaim, StoreError> {
        let inner = &self.inner;
        let now = self.now(process.now);
        let outcome = bounded(async {
            inner.hosts.ensure_held(owner).await?;
            let mut conn = inner.pool.acquire().await.db()?;
            ops::spawn::spawn_and_claim(&mut conn, &process, now, owner, lease).await
        })
        .await?;
        if matches!(outcome, SpawnAndClaim::Claimed(_)) && inner.statistics.spawned() {
            tokio::spawn(statistics::analyse(inner.pool.clone()));
        }
        Ok(outcome)
    }

    async fn claim(
        &self,
        owner: &HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let inner = &self.inner;
        bounded(ops::claim::claim(
            &inner.pool,
            &inner.hosts,
            &inner.channel,
            owner,
            self.now(now),
            lease,
            limit,
        ))
        .await
    }

    async fn append(&self, lease: &Lease, entry: JournalEntry) -> Result<(), StoreError> {
        self.call(Write::Append(lease.clone(), entry)).await
    }

    async fn suspend(
        &self,
        lease: &Lease,
        suspension: Suspension,
    ) -> Result<SuspendOutcome, StoreError> {
        let now = self.now(suspension.now);
        self.call(Write::Suspend(lease.clone(), suspension, now))
            .await
    }

    async fn finish(
        &self,
        lease: &Lease,
        finish: Finish,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.call(Write::Finish(lease.clone(), finish, self.now(now)))
            .await
    }

    async fn continue_as_new(
        &self,
        lease: &Lease,
        input: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.call(Write::ContinueAsNew(
            lease.clone(),
            input.to_owned(),
            self.now(now),
        ))
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
        let n = self
            .call::<u64>(Write::Renew(
                owner.clone(),
                leases.to_vec(),
                self.now(now),
                lease,
            ))
            .await?;
        if n > 0 {
            // The leases were renewed; a missing host lock is retried at
            // the next claim (and only speeds up recovery).
            let _ = self.inner.hosts.ensure_held(owner).await;
        }
        Ok(n)
    }

    async fn release(&self, owner: &HostId, now: Timestamp) -> Result<u64, StoreError> {
        let n = self
            .call::<u64>(Write::Release(owner.clone(), self.now(now)))
            .await?;
        // Dropping the host lock only matters for liveness checks; do not
        // let a hung connection hold the caller up.
        let _ = tokio::time::timeout(OP_TIMEOUT, self.inner.hosts.release(owner)).await;
        Ok(n)
    }

    async fn send_signal(
        &self,
        id: &ProcessId,
        signal: steadfast_core::NewSignal,
    ) -> Result<steadfast_core::SignalSent, StoreError> {
        if let Some(message_id) = &signal.message_id {
            steadfast_core::check_message_id(message_id)?;
        }
        let now = self.now(signal.now);
        self.call(Write::Signal(id.clone(), signal, now)).await
    }

    async fn pending_signals(&self, id: &ProcessId) -> Result<Vec<PendingSignal>, StoreError> {
        bounded(reader::pending_signals(&self.inner.pool, id)).await
    }

    async fn cancel(&self, id: &ProcessId, now: Timestamp) -> Result<Status, StoreError> {
        self.call(Write::Cancel(id.clone(), self.now(now))).await
    }

    async fn retry(&self, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
        self.call(Write::Retry(id.clone(), self.now(now))).await
    }

    async fn reject_signal(
        &self,
        lease: &Lease,
        signal: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let op = Write::RejectSignal(lease.clone(), signal, reason.to_owned(), now);
        self.call(op).await
    }

    async fn get(&self, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
        bounded(reader::get(&self.inner.pool, id)).await
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        bounded(reader::next_wake(&self.inner.pool)).await
    }

    async fn store_time(&self) -> Result<Option<Timestamp>, StoreError> {
        if self.inner.host_clock.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let inner = &self.inner;
        let micros: i64 = bounded(async {
            sqlx::query_scalar(concat!("SELECT ", clock::db_now!()))
                .fetch_one(&inner.pool)
                .await
                .map_err(backend)
        })
        .await?;
        Ok(Some(Timestamp::from_micros(micros)))
    }

    fn follow_host_clock(&self) {
        self.inner.host_clock.store(true, Ordering::Relaxed);
    }

    fn work_events(&self) -> Option<watch::Receiver<u64>> {
        Some(self.inner.events.clone())
    }
}

#[async_trait]
impl StoreAdmin for PostgresStore {
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Listed>, StoreError> {
        bounded(reader::list(&self.inner.pool, filter)).await
    }

    async fn journal(&self, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError> {
        bounded(reader::journal(&self.inner.pool, id)).await
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        bounded(reader::counts(&self.inner.pool)).await
    }

    async fn count(&self, filter: &ListFilter) -> Result<Counts, StoreError> {
        bounded(reader::count(&self.inner.pool, filter)).await
    }

    async fn parked_counts(&self, kind: &str) -> Result<ParkedCounts, StoreError> {
        bounded(reader::parked_counts(&self.inner.pool, kind)).await
    }

    async fn save_sources(&self, sources: &[FunctionSource]) -> Result<(), StoreError> {
        bounded(ops::admin::save_sources(&self.inner.pool, sources)).await
    }

    async fn sources(&self) -> Result<Vec<FunctionSource>, StoreError> {
        bounded(ops::admin::sources(&self.inner.pool)).await
    }

    async fn save_subscription(
        &self,
        report: &steadfast_core::SubscriptionReport,
    ) -> Result<(), StoreError> {
        bounded(ops::admin::save_subscription(&self.inner.pool, report)).await
    }

    async fn subscriptions(&self) -> Result<Vec<steadfast_core::SubscriptionReport>, StoreError> {
        bounded(ops::admin::subscriptions(&self.inner.pool)).await
    }

    async fn history(&self, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
        bounded(ops::admin::history(&self.inner.pool, id)).await
    }

    async fn events(&self, id: &ProcessId) -> Result<Vec<ProcessEvent>, StoreError> {
        bounded(ops::events::list(&self.inner.pool, id)).await
    }

    async fn signals(&self, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError> {
        bounded(ops::signal::list(&self.inner.pool, id)).await
    }

    async fn discard_signal(
        &self,
        id: &ProcessId,
        signal: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.call(Write::DiscardSignal(id.clone(), signal, now))
            .await
    }

    async fn rewind(&self, id: &ProcessId, step: &str, now: Timestamp) -> Result<u64, StoreError> {
        self.call(Write::Rewind(id.clone(), step.to_owned(), self.now(now)))
            .await
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted =
                bounded(ops::admin::purge_chunk(&self.inner.pool, finished_before)).await?;
            total += deleted;
            if deleted < ops::admin::PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}
