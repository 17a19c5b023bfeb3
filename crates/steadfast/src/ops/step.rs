//! `step`: a side effect run at least once, its outcome journaled and
//! returned exactly once per run of the function.

use std::borrow::Cow;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{EntryKind, EntryStatus, JournalEntry};
use tracing::Instrument;

use super::{decode_recorded, encode_new, halt};
use crate::context::{Begin, RunCtx, new_entry};
use crate::error::{StepError, StepFailed};
use crate::retry::RetryPolicy;

/// A step about to run: set its retry policy or timeout, then `.await` it.
///
/// Created by [`crate::Process::step`]. Awaiting it returns the closure's
/// value, or [`StepFailed`] once every attempt has failed (or a permanent
/// error ended the attempts early); both outcomes are journaled, so a replay
/// returns the same without calling the closure.
#[must_use = "a step does nothing until it is awaited"]
pub struct Step<'a, T, F> {
    pub(crate) ctx: Arc<RunCtx>,
    pub(crate) name: Cow<'static, str>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) run: F,
    pub(crate) _marker: PhantomData<fn() -> &'a T>,
}

impl<T, F> Step<'_, T, F> {
    /// Retries failed attempts by `policy` instead of the host's default.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Fails an attempt that runs longer than `timeout` (a retryable failure).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl<'a, T, E, F, Fut> IntoFuture for Step<'a, T, F>
where
    T: Serialize + DeserializeOwned + Send + 'a,
    E: Into<StepError> + 'a,
    F: FnMut() -> Fut + Send + 'a,
    Fut: Future<Output = Result<T, E>> + Send + 'a,
{
    type Output = Result<T, StepFailed>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, StepFailed>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run_step(self))
    }
}

async fn run_step<T, E, F, Fut>(step: Step<'_, T, F>) -> Result<T, StepFailed>
where
    T: Serialize + DeserializeOwned,
    E: Into<StepError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let Step {
        ctx,
        name,
        location,
        retry,
        timeout,
        mut run,
        ..
    } = step;
    match ctx.begin(&name, EntryKind::Step, location) {
        Some(Begin::New) => {}
        Some(Begin::Replay(entry)) => {
            ctx.replay_turn(&name, entry.seq).await;
            return replay(&ctx, &entry).await;
        }
        Some(Begin::Scheduled(_)) | None => return halt().await,
    }
    ctx.replayed(&name).await;
    let started = ctx.clock.now();
    let began = std::time::Instant::now();
    let policy = retry.unwrap_or_else(|| ctx.default_retry.clone());
    let busy = ctx.busy();
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        let attempt = async { run().await.map_err(Into::into) }.instrument(tracing::debug_span!(
            "step",
            process = %ctx.id,
            step = %name,
            attempt = attempts
        ));
        let outcome = match timeout {
            None => attempt.await,
            Some(limit) => tokio::select! {
                outcome = attempt => outcome,
                () = ctx.clock.sleep(limit) => Err(StepError::timed_out(limit)),
            },
        };
        match outcome {
            Ok(value) => break Ok(value),
            Err(err) if !err.is_permanent() && attempts < policy.max_attempts() => {
                tracing::debug!(process = %ctx.id, step = %name, attempts, error = %err, "step attempt failed; retrying");
                ctx.metrics.retried();
                ctx.clock.sleep(policy.delay_before(attempts + 1)).await;
            }
            Err(err) => {
                break Err(StepFailed {
                    step: name.to_string(),
                    message: err.message().to_owned(),
                    attempts,
                    permanent: err.is_permanent(),
                    timed_out: err.is_timeout(),
                });
            }
        }
    };
    drop(busy);
    ctx.metrics.step(result.is_ok(), began.elapsed());
    let (status, json) = match &result {
        Ok(value) => (EntryStatus::Completed, encode_new(&ctx, &name, value)),
        Err(failed) => (EntryStatus::Failed, encode_new(&ctx, &name, failed)),
    };
    let Some(json) = json else {
        return halt().await;
    };
    let token = ctx.completion_token().await;
    let mut entry = new_entry(&ctx, &name, EntryKind::Step, status, started, location);
    entry.outcome = Some(json);
    entry.attempts = attempts;
    entry.finished_at = Some(ctx.clock.now());
    ctx.append(entry).await;
    drop(token);
    result
}

pub(crate) async fn replay<T: DeserializeOwned>(
    ctx: &RunCtx,
    entry: &JournalEntry,
) -> Result<T, StepFailed> {
    let json = entry.outcome.as_deref().unwrap_or("null");
    let decoded = if entry.status == EntryStatus::Failed {
        decode_recorded::<StepFailed>(ctx, &entry.name, "failure", json).map(Err)
    } else {
        decode_recorded::<T>(ctx, &entry.name, "outcome", json).map(Ok)
    };
    match decoded {
        Some(result) => result,
        None => halt().await,
    }
}
