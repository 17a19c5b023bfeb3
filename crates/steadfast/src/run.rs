//! Running one claimed process: replaying its journal through the function
//! and writing how the run ended (suspended, finished, blocked).

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use std::time::Duration;

use steadfast_core::{Claimed, Finish, Lease, StoreError, SuspendOutcome, Suspension};

use crate::Process;
use crate::context::{Idle, RunCtx, Stop};
use crate::host::Shared;
use crate::kind::Returned;

/// How one drive of the function ended.
enum Turn {
    Returned(Returned),
    Panicked(String),
    Stop(Stop),
    Suspend(Suspension),
}

/// Runs a claimed process until it suspends, finishes or stops.
pub(crate) async fn run(shared: Arc<Shared>, claimed: Claimed) {
    let Claimed {
        record,
        lease,
        journal,
        signals,
    } = claimed;
    let id = record.id.clone();
    let finish = |finish: Finish| {
        let shared = Arc::clone(&shared);
        let lease = lease.clone();
        async move {
            let now = shared.clock.now();
            let told = persist(&shared, || {
                crate::child::notify_parent(&shared.store, &lease.id, &finish, now)
            })
            .await;
            if let Err(err) = told {
                tracing::warn!(process = %lease.id, error = %err, "could not tell the parent how this child ended; the run will be repeated");
                hand_back(&shared, &lease).await;
                return;
            }
            match persist(&shared, || shared.store.finish(&lease, finish.clone(), now)).await {
                Ok(()) | Err(StoreError::Fenced { .. }) => {}
                Err(err) => {
                    tracing::warn!(process = %lease.id, error = %err, "could not record the end of a run; the run will be repeated");
                    hand_back(&shared, &lease).await;
                }
            }
        }
    };
    if record.cancel_requested {
        finish(Finish::Cancelled).await;
        shared.finished(&id);
        return;
    }
    let kind = match shared.kinds.get(&record.kind, record.version) {
        Ok(kind) => kind,
        Err(reason) => {
            finish(Finish::Blocked {
                step: None,
                location: None,
                reason: format!("{reason}; register it and retry the process"),
            })
            .await;
            shared.finished(&id);
            return;
        }
    };
    shared.metrics.run_started();
    let ctx = Arc::new(RunCtx::new(&shared, lease.clone(), journal, signals));
    let process = Process {
        ctx: Arc::clone(&ctx),
    };
    let future = match kind.start(process, &record.input) {
        Ok(future) => future,
        Err(err) => {
            finish(Finish::Blocked {
                step: None,
                location: None,
                reason: format!(
                    "the stored input no longer decodes into {}: {err}",
                    kind.input_type
                ),
            })
            .await;
            shared.finished(&id);
            return;
        }
    };
    shared.activate(&id, &ctx);
    let end = drive(&shared, &ctx, future).await;
    shared.deactivate(&id, &ctx);
    let outcome = match end {
        Turn::Suspend(_) => {
            shared.metrics.suspended();
            None
        }
        Turn::Returned(Returned::Ok(output)) => Some(Finish::Completed { output }),
        Turn::Returned(Returned::Err(error)) => Some(Finish::Failed { error }),
        Turn::Returned(Returned::Unencodable(err)) => Some(Finish::Blocked {
            step: None,
            location: None,
            reason: format!("the function's output cannot be encoded as JSON: {err}"),
        }),
        Turn::Panicked(message) => Some(Finish::Blocked {
            step: None,
            location: None,
            reason: format!("the process function panicked: {message}"),
        }),
        Turn::Stop(Stop::Blocked {
            step,
            reason,
            location,
        }) => Some(Finish::Blocked {
            step,
            reason,
            location,
        }),
        Turn::Stop(Stop::Cancelled) => Some(Finish::Cancelled),
        Turn::Stop(Stop::Aborted(StoreError::Fenced { epoch, .. })) => {
            tracing::info!(process = %id, epoch, "lease lost: another host took the process over; this run stops");
            None
        }
        Turn::Stop(Stop::Aborted(StoreError::Closed) | Stop::Fits) => None,
        Turn::Stop(Stop::ContinueAsNew(input)) => {
            let now = shared.clock.now();
            match persist(&shared, || {
                shared.store.continue_as_new(&lease, &input, now)
            })
            .await
            {
                Ok(()) => shared.work.notify_one(),
                Err(StoreError::Fenced { .. }) => {}
                Err(StoreError::CancelRequested(_)) => {
                    finish(Finish::Cancelled).await;
                    shared.finished(&id);
                }
                Err(err) => {
                    tracing::warn!(process = %id, error = %err, "could not continue as new; the run will be repeated");
                    hand_back(&shared, &lease).await;
                }
            }
            None
        }
        Turn::Stop(Stop::Aborted(err)) => {
            tracing::warn!(process = %id, error = %err, "run aborted; handing the process back to be run again");
            hand_back(&shared, &lease).await;
            None
        }
    };
    if let Some(outcome) = outcome {
        if let Finish::Blocked { reason, .. } = &outcome {
            tracing::warn!(process = %id, %reason, "process blocked");
        }
        shared
            .metrics
            .finished(matches!(outcome, Finish::Blocked { .. }));
        finish(outcome).await;
        shared.finished(&id);
    }
}

/// Repeats a store write while it fails with a retryable error (a lost
/// connection, a restarting server) and the host is not stopping.
async fn persist<T, F, Fut>(shared: &Shared, mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match write().await {
            Err(err) if err.is_retryable() && !*shared.stopping.borrow() => {
                tracing::debug!(error = %err, "a store write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Gives a run's process back to the store, runnable at once, after the run
/// stopped early (its heartbeat would otherwise keep renewing the lease of a
/// run that no longer exists).
async fn hand_back(shared: &Shared, lease: &Lease) {
    let back = || {
        let now = shared.clock.now();
        shared.store.suspend(
            lease,
            Suspension {
                wake_at: Some(now),
                waiting_for: Vec::new(),
                parked_at: Vec::new(),
                now,
            },
        )
    };
    if let Err(err) = persist(shared, back).await
        && !matches!(err, StoreError::Fenced { .. })
    {
        tracing::warn!(process = %lease.id, error = %err, "could not hand the process back; it resumes when this host stops");
    }
    shared.work.notify_one();
}

/// Polls the function until it returns, stops, or only durable waits remain
/// and the store accepted the suspension.
async fn drive(
    shared: &Shared,
    ctx: &RunCtx,
    mut future: Pin<Box<dyn Future<Output = Returned> + Send>>,
) -> Turn {
    loop {
        let turn = poll_fn(|cx| {
            ctx.begin_round(cx.waker());
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
            match polled {
                Err(panic) => Poll::Ready(Turn::Panicked(panic_message(&panic))),
                Ok(Poll::Ready(returned)) => Poll::Ready(match ctx.finished_cleanly() {
                    Ok(()) => Turn::Returned(returned),
                    Err(stop) => Turn::Stop(stop),
                }),
                Ok(Poll::Pending) => match ctx.idle() {
                    Idle::KeepRunning => Poll::Pending,
                    Idle::Stop(stop) => Poll::Ready(Turn::Stop(stop)),
                    Idle::Suspend {
                        wake_at,
                        waiting_for,
                        parked_at,
                    } => {
                        let now = ctx.clock.now();
                        if wake_at.is_some_and(|due| due <= now) {
                            ctx.wake_due_timers();
                            Poll::Pending
                        } else {
                            Poll::Ready(Turn::Suspend(Suspension {
                                wake_at,
                                waiting_for,
                                parked_at,
                                now,
                            }))
                        }
                    }
                },
            }
        })
        .await;
        let Turn::Suspend(suspension) = turn else {
            return turn;
        };
        if ctx.dry_run {
            return Turn::Stop(Stop::Fits);
        }
        match shared.store.suspend(&ctx.lease, suspension.clone()).await {
            Ok(SuspendOutcome::Suspended) => return Turn::Suspend(suspension),
            Ok(SuspendOutcome::SignalsPending(signals)) => ctx.deliver(signals),
            Err(StoreError::CancelRequested(_)) => return Turn::Stop(Stop::Cancelled),
            Err(err) => return Turn::Stop(Stop::Aborted(err)),
        }
    }
}

/// Drives a dry run ([`crate::Host::check`]) to its verdict.
pub(crate) async fn dry_drive(
    shared: &Shared,
    ctx: &RunCtx,
    future: Pin<Box<dyn Future<Output = Returned> + Send>>,
) -> crate::check::Verdict {
    use crate::check::Verdict;
    match drive(shared, ctx, future).await {
        Turn::Returned(_) | Turn::Stop(Stop::Fits) | Turn::Suspend(_) => Verdict::Fits,
        Turn::Stop(Stop::Blocked { step, reason, .. }) => Verdict::Blocks { step, reason },
        Turn::Panicked(message) => Verdict::Blocks {
            step: None,
            reason: format!("the process function panicked: {message}"),
        },
        Turn::Stop(Stop::Cancelled | Stop::ContinueAsNew(_)) => Verdict::Fits,
        Turn::Stop(Stop::Aborted(err)) => Verdict::Inconclusive {
            reason: err.to_string(),
        },
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
