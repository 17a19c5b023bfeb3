//! The writer task: it owns one connection and commits the writes of all
//! callers in batches (group commit, see [`crate::batch`]), answering every
//! caller only after the `COMMIT`.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use steadfast_core::rules::BatchFailure;
use steadfast_core::{
    Finish, HostId, JournalEntry, Lease, NewProcess, ProcessId, SignalSent, SpawnOutcome, Status,
    StoreError, SuspendOutcome, Suspension, Timestamp,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::OP_TIMEOUT;
use crate::clock::Now;
use crate::ops::{admin, claim, journal, signal, spawn};
use crate::rows::{backend, is_retryable};
use crate::schema::setup;

/// The first wait before reconnecting after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where a write's result goes.
pub(crate) type Sender<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write for the writer task.
pub(crate) enum Op {
    Spawn(NewProcess, Now),
    Append(Lease, JournalEntry),
    Suspend(Lease, Suspension, Now),
    Finish(Lease, Finish, Now),
    Renew(HostId, Vec<Lease>, Now, Duration),
    Release(HostId, Now),
    Signal {
        id: ProcessId,
        name: String,
        payload: String,
        now: Now,
        traceparent: Option<String>,
    },
    /// [`steadfast_core::Store::signal_message`].
    SignalMessage {
        id: ProcessId,
        name: String,
        payload: String,
        now: Now,
        message_id: String,
        traceparent: Option<String>,
    },
    Cancel(ProcessId, Now),
    Retry(ProcessId, Now),
    RejectSignal(Lease, i64, String, Timestamp),
    DiscardSignal(ProcessId, i64, Timestamp),
    Rewind(ProcessId, String, Now),
    ContinueAsNew(Lease, String, Now),
    /// Reads a setting of the writer's session (`SHOW`).
    Show(&'static str),
}

/// What a write returned.
pub(crate) enum Value {
    Spawn(SpawnOutcome),
    Unit,
    Suspend(SuspendOutcome),
    Count(u64),
    Id(i64),
    Sent(SignalSent),
    Status(Status),
    Text(String),
}

/// The caller waiting for a write, typed by what it expects.
pub(crate) enum Reply {
    Spawn(Sender<SpawnOutcome>),
    Unit(Sender<()>),
    Suspend(Sender<SuspendOutcome>),
    Count(Sender<u64>),
    Id(Sender<i64>),
    Sent(Sender<SignalSent>),
    Status(Sender<Status>),
    Text(Sender<String>),
}

fn mismatch() -> StoreError {
    StoreError::Backend {
        message: "internal error: a write returned a value of the wrong type".to_owned(),
        retryable: false,
        source: None,
    }
}

/// Sends `result` if it has the type the caller expects; the caller may
/// have gone away, in which case its write stands regardless.
macro_rules! answer {
    ($tx:expr, $result:expr, $variant:ident $(($v:ident))?) => {{
        let result = match $result {
            Ok(Value::$variant $(($v))?) => Ok(answer!(@value $($v)?)),
            Ok(_) => Err(mismatch()),
            Err(e) => Err(e),
        };
        let _ = $tx.send(result);
    }};
    (@value $v:ident) => { $v };
    (@value) => { () };
}

impl Reply {
    fn send(self, result: Result<Value, StoreError>) {
        match self {
            Reply::Spawn(tx) => answer!(tx, result, Spawn(v)),
            Reply::Unit(tx) => answer!(tx, result, Unit),
            Reply::Suspend(tx) => answer!(tx, result, Suspend(v)),
            Reply::Count(tx) => answer!(tx, result, Count(v)),
            Reply::Id(tx) => answer!(tx, result, Id(v)),
            Reply::Sent(tx) => answer!(tx, result, Sent(v)),
            Reply::Status(tx) => answer!(tx, result, Status(v)),
            Reply::Text(tx) => answer!(tx, result, Text(v)),
        }
    }
}

/// A queued write and its caller.
pub(crate) type Command = (Op, Reply);

/// The state owned by the writer task.
pub(crate) struct Writer {
    options: PgConnectOptions,
    schema: String,
    channel: String,
    connect_timeout: Duration,
    max_batch: usize,
    conn: Option<PgConnection>,
    backoff: Duration,
    next_attempt: Option<Instant>,
}

impl Writer {
    /// A writer that starts with `conn` and reconnects with `options`.
    pub(crate) fn new(
        conn: PgConnection,
        options: PgConnectOptions,
        schema: String,
        channel: String,
        connect_timeout: Duration,
        max_batch: usize,
    ) -> Self {
        Writer {
            options,
            schema,
            channel,
            connect_timeout,
            max_batch: max_batch.max(1),
            conn: Some(conn),
            backoff: MIN_BACKOFF,
            next_attempt: None,
        }
    }

    /// Runs until every sender is gone and the queue is drained.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut batch = Vec::with_capacity(self.max_batch.min(1024));
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            // One group commit: how many writes it carries (exported by
            // whatever `metrics` recorder the application installed).
            metrics::histogram!("steadfast_store_batch_size", "store" => "postgres")
                .record(batch.len() as f64);
            self.execute(&mut batch).await;
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
        tracing::debug!("steadfast postgres writer stopped");
    }

    /// The connection, reconnecting (at most once per backoff period) when
    /// it was lost.
    async fn connection(&mut self) -> Result<&mut PgConnection, BatchFailure> {
        if self.conn.is_none() {
            if let Some(at) = self.next_attempt
                && Instant::now() < at
            {
                return Err(BatchFailure {
                    message: "the connection to PostgreSQL was lost; reconnecting".to_owned(),
                    retryable: true,
                });
            }
            match self.connect().await {
                Ok(conn) => {
                    tracing::info!("the steadfast postgres writer reconnected");
                    self.conn = Some(conn);
                    self.backoff = MIN_BACKOFF;
                    self.next_attempt = None;
                }
                Err(e) => {
                    self.next_attempt = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return Err(BatchFailure {
                        message: format!("cannot reconnect to PostgreSQL: {e}"),
                        retryable: true,
                    });
                }
            }
        }
        self.conn.as_mut().ok_or_else(|| BatchFailure {
            message: "no connection to PostgreSQL".to_owned(),
            retryable: true,
        })
    }

    async fn connect(&self) -> Result<PgConnection, StoreError> {
        let attempt = async {
            let mut conn = PgConnection::connect_with(&self.options).await?;
            setup(&mut conn, &self.schema).await?;
            Ok::<_, sqlx::Error>(conn)
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(result) => result.map_err(backend),
            Err(_) => Err(StoreError::Backend {
                message: format!("connecting took longer than {:?}", self.connect_timeout),
                retryable: true,
                source: None,
            }),
        }
    }

    /// Runs a batch in one transaction and answers every caller after the
    /// commit (or with the batch's failure).
    async fn execute(&mut self, batch: &mut Vec<Command>) {
        let channel = self.channel.clone();
        let outcome = match self.connection().await {
            Ok(conn) => {
                match tokio::time::timeout(
                    OP_TIMEOUT,
                    crate::batch::run_batch(conn, &channel, batch),
                )
                .await
                {
                    Ok(Ok(results)) => Ok(results),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, writes = batch.len(), "a write batch failed");
                        Err(BatchFailure {
                            message: format!("the write transaction failed: {e}"),
                            retryable: is_retryable(&e),
                        })
                    }
                    Err(_) => {
                        tracing::warn!(writes = batch.len(), "a write batch timed out");
                        Err(BatchFailure {
                            message: format!(
                                "the write transaction took longer than {OP_TIMEOUT:?}; \
                             its outcome is unknown"
                            ),
                            retryable: true,
                        })
                    }
                }
            }
            Err(failure) => Err(failure),
        };
        match outcome {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    reply.send(result);
                }
            }
            Err(failure) => {
                // The connection may be broken or mid-transaction: drop it;
                // the next batch reconnects.
                self.conn = None;
                for (_, reply) in batch.drain(..) {
                    reply.send(Err(failure.error()));
                }
            }
        }
    }
}

/// Runs one write (inside a savepoint of the batch's transaction).
pub(crate) async fn apply(
    conn: &mut PgConnection,
    channel: &str,
    op: &Op,
) -> Result<Value, StoreError> {
    Ok(match op {
        Op::Spawn(p, now) => Value::Spawn(spawn::spawn(conn, channel, p, *now).await?),
        Op::Append(lease, entry) => {
            journal::append(conn, lease, entry).await?;
            Value::Unit
        }
        Op::Suspend(lease, s, now) => Value::Suspend(journal::suspend(conn, lease, s, *now).await?),
        Op::Finish(lease, f, now) => {
            journal::finish(conn, channel, lease, f, *now).await?;
            Value::Unit
        }
        Op::Renew(owner, leases, now, lease) => {
            Value::Count(claim::renew(conn, owner, leases, *now, *lease).await?)
        }
        Op::Release(owner, now) => Value::Count(claim::release(conn, channel, owner, *now).await?),
        Op::Signal {
            id,
            name,
            payload,
            now,
            traceparent,
        } => Value::Id(
            signal::signal(
                conn,
                channel,
                id,
                name,
                payload,
                *now,
                traceparent.as_deref(),
            )
            .await?,
        ),
        Op::SignalMessage {
            id,
            name,
            payload,
            now,
            message_id,
            traceparent,
        } => Value::Sent(
            signal::signal_message(
                conn,
                channel,
                id,
                name,
                payload,
                *now,
                message_id,
                traceparent.as_deref(),
            )
            .await?,
        ),
        Op::Cancel(id, now) => Value::Status(admin::cancel(conn, channel, id, *now).await?),
        Op::Retry(id, now) => {
            admin::retry(conn, channel, id, *now).await?;
            Value::Unit
        }
        Op::RejectSignal(lease, signal, reason, now) => {
            signal::reject(conn, lease, *signal, reason, *now).await?;
            Value::Unit
        }
        Op::DiscardSignal(id, signal, now) => {
            signal::discard(conn, id, *signal, *now).await?;
            Value::Unit
        }
        Op::Rewind(id, step, now) => {
            Value::Count(admin::rewind(conn, channel, id, step, *now).await?)
        }
        Op::ContinueAsNew(lease, input, now) => {
            spawn::continue_as_new(conn, channel, lease, input, *now).await?;
            Value::Unit
        }
        Op::Show(setting) => Value::Text(admin::show(conn, setting).await?),
    })
}
