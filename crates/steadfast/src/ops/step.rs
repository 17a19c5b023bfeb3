//! `step`: a side effect run at least once, its outcome journaled and
//! returned exactly once per run of the function.

use std::borrow::Cow;
use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::FusedFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{EntryKind, EntryStatus, JournalEntry};
use tracing::Instrument;

use super::{decode_recorded, encode_new, halt};
use crate::context::{Begin, PendingGuard, RunCtx, Taken, new_entry};
use crate::error::{StepError, StepFailed};
use crate::retry::RetryPolicy;

/// A step about to run: set its retry policy or timeout, then `.await` it.
///
/// Created by [`crate::Process::step`]. Awaiting it returns the closure's
/// value, or [`StepFailed`] once every attempt has failed (or a permanent
/// error ended the attempts early); both outcomes are journaled, so a replay
/// returns the same without calling the closure.
///
/// A step is a fused future (see [`crate::Durable`]): once it has returned,
/// polling it again returns `Pending`, so it can sit in a `select!` loop
/// without guards.
#[must_use = "a step does nothing until it is awaited"]
pub struct Step<'a, T, F> {
    pub(crate) ctx: Arc<RunCtx>,
    pub(crate) name: Cow<'static, str>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    /// The closure until the first poll.
    pub(crate) run: Option<F>,
    pub(crate) state: StepState<'a, T>,
}

/// Where a [`Step`] future is.
pub(crate) enum StepState<'a, T> {
    /// Not polled yet.
    Idle,
    /// Running.
    Running(Pin<Box<dyn Future<Output = Result<T, StepFailed>> + Send + 'a>>),
    /// Returned.
    Done,
}

// A step never pins its closure in place: the closure moves into the boxed
// future on the first poll.
impl<T, F> Unpin for Step<'_, T, F> {}

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

impl<'a, T, E, F, Fut> Future for Step<'a, T, F>
where
    T: Serialize + DeserializeOwned + Send + 'a,
    E: Into<StepError> + 'a,
    F: FnMut() -> Fut + Send + 'a,
    Fut: Future<Output = Result<T, E>> + Send + 'a,
{
    type Output = Result<T, StepFailed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let StepState::Idle = this.state {
            let Some(run) = this.run.take() else {
                this.state = StepState::Done;
                return Poll::Pending;
            };
            this.state = StepState::Running(Box::pin(run_step(
                Arc::clone(&this.ctx),
                this.name.clone(),
                this.location,
                this.retry.take(),
                this.timeout,
                run,
            )));
        }
        let StepState::Running(running) = &mut this.state else {
            return Poll::Pending;
        };
        let output = std::task::ready!(running.as_mut().poll(cx));
        this.state = StepState::Done;
        Poll::Ready(output)
    }
}

impl<'a, T, E, F, Fut> FusedFuture for Step<'a, T, F>
where
    T: Serialize + DeserializeOwned + Send + 'a,
    E: Into<StepError> + 'a,
    F: FnMut() -> Fut + Send + 'a,
    Fut: Future<Output = Result<T, E>> + Send + 'a,
{
    fn is_terminated(&self) -> bool {
        matches!(self.state, StepState::Done)
    }
}

async fn run_step<T, E, F, Fut>(
    ctx: Arc<RunCtx>,
    name: Cow<'static, str>,
    location: &'static Location<'static>,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    mut run: F,
) -> Result<T, StepFailed>
where
    T: Serialize + DeserializeOwned,
    E: Into<StepError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // A step resumed from a durable retry wait goes on counting its
    // attempts and its time from its first attempt.
    let (mut attempts, started, mut resume_at) = match ctx.begin(&name, EntryKind::Step, location) {
        Some(Begin::New) => (0, None, None),
        Some(Begin::Replay(entry)) => {
            ctx.replay_turn(&name, entry.seq).await;
            return replay(&ctx, &entry).await;
        }
        Some(Begin::Scheduled(entry)) => (
            entry.attempts,
            Some(entry.started_at),
            Some(entry.due_at.unwrap_or(entry.started_at)),
        ),
        None => return halt().await,
    };
    ctx.replayed(&name).await;
    let started = started.unwrap_or_else(|| ctx.clock.now());
    let began = std::time::Instant::now();
    let policy = retry.unwrap_or_else(|| ctx.default_retry.clone());
    // The "retry now" signal that cut a wait short, recorded with the next entry.
    let mut cut_short: Option<i64> = None;
    let result = loop {
        if let Some(due) = resume_at.take()
            && let Some(signal) = retry_wait(&ctx, &name, due).await
        {
            cut_short = Some(signal);
        }
        let busy = ctx.busy();
        attempts += 1;
        let attempt = async { run().await.map_err(Into::into) }.instrument(tracing::debug_span!(
            "step",
            steadfast.process.id = %ctx.id,
            steadfast.process.kind = %ctx.kind,
            steadfast.step.name = %name,
            // OpenTelemetry attributes are i64 (a u64 would be exported as text).
            steadfast.step.attempt = i64::from(attempts)
        ));
        let outcome = match timeout {
            None => attempt.await,
            Some(limit) => tokio::select! {
                outcome = attempt => outcome,
                () = ctx.clock.sleep(limit) => Err(StepError::timed_out(limit)),
            },
        };
        let err = match outcome {
            Ok(value) => break Ok(value),
            Err(err) => err,
        };
        let elapsed = ctx.clock.now().saturating_since(started);
        let delay = policy
            .next_delay(attempts, elapsed)
            .filter(|_| !err.is_permanent());
        let Some(delay) = delay else {
            break Err(StepFailed::new(name.as_ref(), &err, attempts));
        };
        tracing::debug!(process = %ctx.id, step = %name, attempts, error = %err, ?delay, "step attempt failed; retrying");
        ctx.metrics.retried(&ctx.kind);
        if delay <= policy.durable_after() {
            ctx.clock.sleep(delay).await;
            continue;
        }
        // A long wait is durable: journal the attempts and the next retry
        // time, and let the run suspend on the timer.
        let due = ctx.clock.now() + delay;
        let waiting = RetryWait {
            last_error: err.message().to_owned(),
        };
        let Some(json) = encode_new(&ctx, &name, &waiting) else {
            return halt().await;
        };
        let mut entry = new_entry(
            &ctx,
            &name,
            EntryKind::Step,
            EntryStatus::Scheduled,
            started,
            location,
        );
        entry.outcome = Some(json);
        entry.attempts = attempts;
        entry.due_at = Some(due);
        entry.consumed_signal = cut_short.take();
        ctx.append(entry).await;
        drop(busy);
        resume_at = Some(due);
    };
    ctx.metrics.step(&ctx.kind, result.is_ok(), began.elapsed());
    let (status, json) = match &result {
        Ok(value) => (EntryStatus::Completed, encode_new(&ctx, &name, value)),
        Err(failed) => (EntryStatus::Failed, encode_new(&ctx, &name, failed)),
    };
    let Some(json) = json else {
        return halt().await;
    };
    let busy = ctx.busy();
    let token = ctx.completion_token().await;
    let mut entry = new_entry(&ctx, &name, EntryKind::Step, status, started, location);
    entry.outcome = Some(json);
    entry.attempts = attempts;
    entry.finished_at = Some(ctx.clock.now());
    entry.consumed_signal = cut_short;
    ctx.append(entry).await;
    drop(token);
    drop(busy);
    result
}

/// What the journal holds for a step waiting durably for its next attempt.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct RetryWait {
    /// The error the last attempt failed with.
    pub(crate) last_error: String,
}

/// The internal signal that cuts the durable retry wait of step `name`
/// short (sent by [`crate::Host::retry`]).
pub(crate) fn retry_now_signal(name: &str) -> String {
    format!("steadfast: retry {name:?} now")
}

/// Waits durably until `due` or until a "retry now" signal for step `name`
/// arrives; returns that signal's id.
async fn retry_wait(ctx: &Arc<RunCtx>, name: &str, due: steadfast_core::Timestamp) -> Option<i64> {
    let signal = retry_now_signal(name);
    let _pending = PendingGuard {
        ctx: Arc::clone(ctx),
        name: name.to_owned(),
    };
    loop {
        let polled = poll_fn(|cx| {
            if let Poll::Ready(taken) = ctx.poll_signal(name, &signal, |_| Ok(()), cx) {
                return Poll::Ready(Some(taken));
            }
            ctx.poll_timer(name, due, cx).map(|()| None)
        })
        .await;
        match polled {
            Some(Taken::Signal(taken, token)) => {
                drop(token);
                return Some(taken.id);
            }
            // Any payload fits a "retry now" signal; should one be handed
            // here to reject all the same, it is journaled as rejected.
            Some(Taken::Reject(bad, reason, token)) => {
                ctx.reject(name, &bad, &reason).await;
                drop(token);
            }
            None => return None,
        }
    }
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
