//! Transactional steps: the user's SQL and the journal entry commit in one
//! store transaction, so effects in the same database happen exactly once.

use std::future::Future;
use std::panic::Location;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{EntryKind, EntryStatus, JournalEntry, StoreError};

use super::{encode_new, halt, step};
use crate::context::{Begin, RunCtx, Stop, new_entry};
use crate::error::{StepError, StepFailed};

/// What one attempt of a transactional step ended with: committed with a
/// value, the body failed (rolled back), or the store refused.
pub(crate) type Attempt<T> = Result<Result<T, StepError>, StoreError>;

/// Runs a transactional step named `name`; `attempt(entry)` runs the body
/// and journals `entry` in one store transaction. Failed bodies are retried
/// by the host's retry policy, in memory only (waits up to its durable
/// threshold); a final failure is journaled like a step's.
pub(crate) async fn run<T, A, Fut>(
    ctx: Arc<RunCtx>,
    name: String,
    location: &'static Location<'static>,
    mut attempt: A,
) -> Result<T, StepFailed>
where
    T: Serialize + DeserializeOwned,
    A: FnMut(JournalEntry) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    match ctx.begin(&name, EntryKind::Step, location) {
        Some(Begin::New) => {}
        Some(Begin::Replay(entry)) => {
            ctx.replay_turn(&name, entry.seq).await;
            return step::replay(&ctx, &entry).await;
        }
        Some(Begin::Scheduled(_)) | None => return halt().await,
    }
    ctx.replayed(&name).await;
    let started = ctx.clock.now();
    let policy = ctx.default_retry.clone();
    let _busy = ctx.busy();
    let mut attempts = 0;
    let mut store_retry = crate::persist::Retry::default();
    loop {
        attempts += 1;
        let token = ctx.completion_token().await;
        let mut entry = new_entry(
            &ctx,
            &name,
            EntryKind::Step,
            EntryStatus::Completed,
            started,
            location,
        );
        entry.attempts = attempts;
        entry.finished_at = Some(ctx.clock.now());
        let error = match attempt(entry).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(StoreError::CancelRequested(_)) => {
                ctx.stop(Stop::Cancelled);
                return halt().await;
            }
            Err(err) => {
                // The body was rolled back with the transaction: a transient
                // store error retries the attempt (it does not count as one
                // of the body's attempts). A retry that finds the entry
                // already written (a commit whose answer was lost) stops the
                // run; the replay returns the journaled outcome.
                let retry = ctx
                    .persist
                    .wait_to_retry(
                        &ctx.lease,
                        "a transactional step",
                        None,
                        &err,
                        &mut store_retry,
                    )
                    .await;
                if retry {
                    drop(token);
                    attempts -= 1;
                    continue;
                }
                ctx.stop(Stop::Aborted(err));
                return halt().await;
            }
        };
        // A transaction's body runs inside the store's commit, so its retries
        // stay in memory: up to the policy's durable threshold.
        let elapsed = ctx.clock.now().saturating_since(started);
        let next = policy.next_delay(attempts, elapsed);
        if !error.is_permanent()
            && let Some(delay) = next.filter(|d| *d <= policy.durable_after())
        {
            drop(token);
            ctx.clock.sleep(delay).await;
            continue;
        }
        let failed = StepFailed::new(name.clone(), &error, attempts);
        let Some(json) = encode_new(&ctx, &name, &failed) else {
            return halt().await;
        };
        let mut entry = new_entry(
            &ctx,
            &name,
            EntryKind::Step,
            EntryStatus::Failed,
            started,
            location,
        );
        entry.outcome = Some(json);
        entry.attempts = attempts;
        entry.finished_at = Some(ctx.clock.now());
        ctx.append(entry).await;
        drop(token);
        return Err(failed);
    }
}

/// Holds what a body produced until its transaction has committed.
pub(crate) struct Slot<T>(Arc<Mutex<Option<Result<T, StepError>>>>, usize);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot(Arc::clone(&self.0), self.1)
    }
}

impl<T: Serialize> Slot<T> {
    /// A slot for a value of at most `limit` bytes of JSON.
    pub(crate) fn new(limit: usize) -> Self {
        Slot(Arc::new(Mutex::new(None)), limit)
    }

    /// Records the body's result; returns the outcome JSON to journal, or
    /// `Err(())` when the transaction must be rolled back (the body failed,
    /// or its value cannot be encoded or is over the payload limit: a
    /// permanent failure, with the body's effects rolled back).
    pub(crate) fn put(&self, result: Result<T, StepError>) -> Result<String, ()> {
        let (json, kept) = match result {
            Ok(value) => match serde_json::to_string(&value) {
                Ok(json) if json.len() > self.1 => (
                    Err(()),
                    Err(StepError::permanent(super::too_large(
                        "the value",
                        json.len(),
                        self.1,
                    ))),
                ),
                Ok(json) => (Ok(json), Ok(value)),
                Err(e) => (
                    Err(()),
                    Err(StepError::permanent(format!(
                        "the value cannot be encoded as JSON: {e}"
                    ))),
                ),
            },
            Err(error) => (Err(()), Err(error)),
        };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(kept);
        json
    }

    /// The body's result once the store has answered.
    pub(crate) fn take(&self) -> Result<T, StepError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Err(StepError::permanent("the transaction body did not run")))
    }
}

/// A test hook: called with the step's name after a transactional step's
/// body ran and before its journal entry is written, while the store's
/// transaction is still open.
#[doc(hidden)]
pub type AfterBodyHook = Arc<dyn Fn(&str) + Send + Sync>;

static AFTER_BODY: RwLock<Option<AfterBodyHook>> = RwLock::new(None);

/// Installs (or with `None` removes) the process-wide [`AfterBodyHook`].
///
/// For crash tests only: a hook that blocks holds the step between the
/// user's SQL and the journal write, so a test can kill the worker or take
/// its lease over at exactly that point. No hook is installed unless a test
/// calls this; without one the cost is one uncontended read lock per
/// transactional attempt. On SQLite the hook runs on the store's writer
/// thread, on PostgreSQL inside the step's task.
#[doc(hidden)]
pub fn set_after_body_hook(hook: Option<AfterBodyHook>) {
    *AFTER_BODY.write().unwrap_or_else(|p| p.into_inner()) = hook;
}

/// Calls the [`AfterBodyHook`], if a test installed one.
pub(crate) fn after_body(step: &str) {
    let hook = AFTER_BODY.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(hook) = hook {
        hook(step);
    }
}
