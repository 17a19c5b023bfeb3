//! The writer task: it owns one connection and runs the store's side of the
//! shared group commit ([`steadfast_core::group_commit`]): each batch in one
//! transaction (see [`crate::batch`]), every caller answered only after the
//! `COMMIT`.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use steadfast_core::StoreError;
use steadfast_core::group_commit::{self, GroupCommit, Inbox, Value};
use steadfast_core::rules::BatchFailure;
use tokio::time::Instant;

use crate::OP_TIMEOUT;
use crate::rows::{backend, is_retryable};
use crate::schema::setup_writer;
use crate::write::Write;

/// The first wait before reconnecting after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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

    /// Runs the group commit until every sender is gone and the queue is
    /// drained.
    pub(crate) async fn run(self, inbox: Inbox<Write>) {
        let max_batch = self.max_batch;
        let mut writer = group_commit::run(self, inbox, max_batch).await;
        if let Some(conn) = writer.conn.take() {
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
            setup_writer(&mut conn, &self.schema).await?;
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
}

/// A batch runs as [`crate::batch::run_batch`] says: one write alone is one
/// autocommitted statement, more share one transaction with the writes of
/// a kind grouped into one statement.
impl GroupCommit for Writer {
    type Write = Write;
    const STORE: &'static str = "postgres";

    async fn run(
        &mut self,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<Value, StoreError>>, BatchFailure> {
        let channel = self.channel.clone();
        let conn = self.connection().await?;
        let failure = match tokio::time::timeout(
            OP_TIMEOUT,
            crate::batch::run_batch(conn, &channel, &writes),
        )
        .await
        {
            Ok(Ok(results)) => return Ok(results),
            Ok(Err(e)) => BatchFailure {
                message: format!("the write transaction failed: {e}"),
                retryable: is_retryable(&e),
            },
            Err(_) => BatchFailure {
                message: format!(
                    "the write transaction took longer than {OP_TIMEOUT:?}; its outcome is unknown"
                ),
                retryable: true,
            },
        };
        // The connection may be broken or mid-transaction: drop it; the
        // next batch reconnects.
        self.conn = None;
        Err(failure)
    }
}
