//! Running one claimed process: replaying its journal through the function
//! and writing how the run ended (suspended, finished, blocked).

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use steadfast_core::{Claimed, Finish, Lease, StoreError, SuspendOutcome, Suspension};

use serde::Serialize;

use crate::Process;
use crate::context::{Idle, RunCtx, Stop};
use crate::kind::Returned;
use crate::leases::HeldLease;
use crate::metrics::WriteOp;
use crate::shared::Shared;

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
    // However the run ends, its lease leaves the host's list: the heartbeat
    // renews only the leases of live runs.
    let _held = HeldLease {
        leases: &shared.leases,
        lease: lease.clone(),
    };
    let finish = |finish: Finish| {
        let shared = Arc::clone(&shared);
        let lease = lease.clone();
        async move {
            // The store tells a child's parent in the same transaction.
            let now = shared.clock.now();
            match persist(&shared, &lease, WriteOp::Finish, || {
                shared.store.finish(&lease, finish.clone(), now)
            })
            .await
            {
                Ok(()) => true,
                Err(StoreError::Fenced { .. }) => false,
                Err(err) => {
                    tracing::warn!(process = %lease.id, error = %err, "could not record the end of a run; the run will be repeated");
                    hand_back(&shared, &lease).await;
                    false
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
    shared.metrics.run_started(&record.kind);
    let ctx = Arc::new(RunCtx::new(
        shared.run_host(),
        lease.clone(),
        &record.kind,
        journal,
        signals,
    ));
    let process = Process::new(Arc::clone(&ctx));
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
            shared.metrics.suspended(&record.kind);
            None
        }
        Turn::Returned(Returned::Ok(output)) if output.len() > ctx.max_payload_bytes => {
            Some(Finish::Blocked {
                step: None,
                location: None,
                reason: crate::ops::too_large(
                    "the function's output",
                    output.len(),
                    ctx.max_payload_bytes,
                ),
            })
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
            match persist(&shared, &lease, WriteOp::ContinueAsNew, || {
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
            tracing::warn!(process = %id, error = %err, "run given up after a store error; handing the process back to be run again");
            shared.metrics.given_up();
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
            .finished(&record.kind, matches!(outcome, Finish::Blocked { .. }));
        let output = match &outcome {
            Finish::Completed { output } => Some(output.clone()),
            _ => None,
        };
        let recorded = finish(outcome).await;
        match output {
            // The outcome's waiters on this host get the output in hand.
            Some(output) if recorded => shared.completed(&id, output),
            _ => shared.finished(&id),
        }
    }
}

/// Repeats a store write of the run holding `lease` through transient
/// store errors (see [`crate::persist`]).
async fn persist<T, F, Fut>(
    shared: &Shared,
    lease: &Lease,
    op: WriteOp,
    write: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    shared.persist().write(lease, op, None, write).await
}

/// Gives a run's process back to the store, runnable at once, after the run
/// stopped early. The lease leaves the host's list at once (the heartbeat
/// stops renewing it); the hand-back itself is written in the background,
/// retried through transient store errors until it succeeds or the lease
/// runs out (the process is then claimable anyway). Either way the process
/// is not left leased to a run that no longer exists.
async fn hand_back(shared: &Arc<Shared>, lease: &Lease) {
    let expires = shared.leases.release(lease);
    let shared = Arc::clone(shared);
    let lease = lease.clone();
    tokio::spawn(async move {
        let back = || {
            let now = shared.clock.now();
            shared.store.suspend(
                &lease,
                Suspension {
                    wake_at: Some(now),
                    waiting_for: Vec::new(),
                    parked_at: Vec::new(),
                    now,
                },
            )
        };
        let persist = shared.persist();
        match persist
            .write(&lease, WriteOp::HandBack, expires, back)
            .await
        {
            Ok(_) | Err(StoreError::Fenced { .. }) => {}
            Err(err) => {
                tracing::warn!(
                    process = %lease.id,
                    error = %err,
                    "could not hand the process back; its lease is no longer renewed, so \
                     another claim takes the process once the lease runs out"
                );
            }
        }
        shared.work.notify_one();
    });
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
                        if wake_at.is_some_and(|due| due <= ctx.due_now()) {
                            ctx.wake_due_timers();
                            Poll::Pending
                        } else {
                            // Due times are in the store's time, and so is
                            // the suspension's now (a store with a clock of
                            // its own keeps what is left of the wait).
                            Poll::Ready(Turn::Suspend(Suspension {
                                wake_at,
                                waiting_for,
                                parked_at,
                                now: ctx.store_now(),
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
        let suspended = ctx
            .persist
            .write(&ctx.lease, WriteOp::Suspend, None, || {
                shared.store.suspend(&ctx.lease, suspension.clone())
            })
            .await;
        match suspended {
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
) -> Verdict {
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

/// What replaying one process's journal against the current code showed
/// ([`crate::Host::check`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// The whole journal replays; the process would carry on.
    Fits,
    /// The process would block at `step` for `reason`.
    Blocks {
        /// The step it would stop at.
        step: Option<String>,
        /// Why, as the blocked process would say it.
        reason: String,
    },
    /// The replay could not decide (it awaited something that is not
    /// durable for too long).
    Inconclusive {
        /// What happened.
        reason: String,
    },
}
