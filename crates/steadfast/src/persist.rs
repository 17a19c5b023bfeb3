//! Writing a run's results to the store through transient store errors.
//!
//! A store that is busy (another connection holds SQLite's write lock),
//! full (a full disk), failing I/O or reconnecting (PostgreSQL) answers a
//! write with a *retryable* [`StoreError`]. Giving the run up then would
//! repeat work whose outcome is already in hand (a step's closure would run
//! again), so a run's writes — journal appends, suspensions, its end,
//! hand-backs — are retried with capped exponential backoff and jitter:
//!
//! * while the error is retryable (any other error is returned at once;
//!   [`StoreError::Fenced`] means another host took the process over);
//! * while the host is not stopping;
//! * while the lease is known to last: each retry waits only if the lease,
//!   as last renewed in the store, outlives the wait. Past that bound
//!   another host may claim the process, so the run is given up honestly:
//!   its lease leaves the host's list and is no longer renewed, and a later
//!   claim (on any host, this one included) replays the process.
//!
//! Every retry is counted (`steadfast_store_write_retries_total`) and
//! logged: the first failure of a write and the last as warnings.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::{Clock, Lease, StoreError, Timestamp};
use tokio::sync::watch;

use crate::leases::Leases;
use crate::metrics::{Metrics, WriteOp};

/// The first pause after a failed write.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Capped exponential backoff with jitter: each pause is a random point in
/// the upper half of a doubling window, capped at [`MAX_PAUSE`], so many
/// runs that failed together do not retry in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    window: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            window: FIRST_PAUSE,
        }
    }
}

impl Backoff {
    /// The next pause.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let window = self.window;
        self.window = (self.window * 2).min(MAX_PAUSE);
        window.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

/// What a run's writes need to retry: the clock, the host's stop flag, its
/// held leases and its counters.
#[derive(Clone)]
pub(crate) struct Persist {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stopping: watch::Receiver<bool>,
    pub(crate) leases: Arc<Leases>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Persist {
    /// Runs `write` (a write under `lease` doing `op`; each try is timed)
    /// until it succeeds, fails with an error that is not retryable, the
    /// host stops, or the lease would expire before the next try. The lease's
    /// expiry is the one in the host's list (renewals move it) or, once the
    /// run's lease left the list, `expires`. Returns the last error when it
    /// gives up.
    pub(crate) async fn write<T, F, Fut>(
        &self,
        lease: &Lease,
        op: WriteOp,
        expires: Option<Timestamp>,
        mut write: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let what = op.describe();
        let mut retry = Retry::default();
        loop {
            let began = std::time::Instant::now();
            let written = write().await;
            self.metrics.store_write(op, began.elapsed());
            match written {
                Ok(value) => {
                    if retry.failures > 0 {
                        tracing::info!(process = %lease.id, failures = retry.failures, "{what}: the store accepted the write after transient errors");
                    }
                    return Ok(value);
                }
                Err(err) => {
                    if !self
                        .wait_to_retry(lease, what, expires, &err, &mut retry)
                        .await
                    {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// After `err` on a write under `lease`: waits the next backoff pause
    /// and returns `true` when the write should be tried again, `false`
    /// (at once) when it should not: the error is not retryable, the host
    /// is stopping, or the lease would expire first (see [`Persist::write`]).
    pub(crate) async fn wait_to_retry(
        &self,
        lease: &Lease,
        what: &str,
        expires: Option<Timestamp>,
        err: &StoreError,
        retry: &mut Retry,
    ) -> bool {
        if !err.is_retryable() {
            return false;
        }
        if *self.stopping.borrow() {
            tracing::warn!(process = %lease.id, error = %err, "{what} failed and the host is stopping; not retrying");
            return false;
        }
        let pause = retry.backoff.next_pause();
        let now = self.clock.now();
        let until = self.leases.expires(lease).or(expires);
        if let Some(until) = until
            && now + pause.mul_f64(self.clock.rate()) >= until
        {
            tracing::warn!(
                process = %lease.id,
                error = %err,
                failures = retry.failures + 1,
                "{what} failed and the lease runs out before the store recovered; \
                 giving the run up (another claim replays the process)"
            );
            return false;
        }
        retry.failures += 1;
        self.metrics.store_retried();
        if retry.failures == 1 {
            tracing::warn!(process = %lease.id, error = %err, "{what} failed with a transient store error; retrying with backoff");
        } else {
            tracing::debug!(process = %lease.id, error = %err, failures = retry.failures, "{what} failed again; retrying");
        }
        tokio::time::sleep(pause).await;
        true
    }
}

/// The state of one write's retries: its backoff and how often it failed.
#[derive(Debug, Default)]
pub(crate) struct Retry {
    backoff: Backoff,
    failures: u32,
}
