//! Fast wake-ups: a task listens on the store's `NOTIFY` channel and bumps
//! a counter for every notification, so hosts on every machine learn at
//! once that work may be due. It reconnects with backoff when the
//! connection drops and bumps the counter after reconnecting, since
//! notifications may have been missed meanwhile.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use steadfast_core::StoreError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::rows::Db;

/// The first wait before reconnecting after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts listening on `channel` (the `LISTEN` is active when this returns)
/// and returns the counter and the task.
pub(crate) async fn start(
    options: PgConnectOptions,
    channel: String,
    connect_timeout: Duration,
) -> Result<(watch::Receiver<u64>, JoinHandle<()>), StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(connect_timeout)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options);
    let listener = listen(&pool, &channel).await.db()?;
    let (tx, rx) = watch::channel(0u64);
    let task = tokio::spawn(run(pool, listener, channel, tx));
    Ok((rx, task))
}

async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

async fn run(pool: PgPool, listener: PgListener, channel: String, tx: watch::Sender<u64>) {
    let mut listener = Some(listener);
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(active) = listener.as_mut() else {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = tx.closed() => break,
            }
            match listen(&pool, &channel).await {
                Ok(l) => {
                    tracing::info!(channel, "the steadfast postgres listener reconnected");
                    listener = Some(l);
                    backoff = MIN_BACKOFF;
                    bump(&tx);
                }
                Err(e) => {
                    tracing::debug!(channel, error = %e, "cannot reconnect the listener");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        };
        let received = tokio::select! {
            r = active.try_recv() => r,
            () = tx.closed() => break,
        };
        match received {
            Ok(Some(_)) => bump(&tx),
            // The connection was lost and re-established (and re-LISTENed).
            Ok(None) => bump(&tx),
            Err(e) => {
                tracing::warn!(channel, error = %e, "the steadfast postgres listener lost its connection");
                listener = None;
            }
        }
    }
}
