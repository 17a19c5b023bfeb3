//! `wait`: suspends until a signal of a given name arrives, optionally with
//! a timeout. A signal whose payload does not decode into the wait's type
//! (nor into that of any other wait for the name) is rejected, not taken.

use std::future::poll_fn;
use std::panic::Location;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use steadfast_core::{EntryKind, EntryStatus, JournalEntry};

use super::timer::{Due, schedule};
use super::{decode_recorded, halt, preview};
use crate::context::{Begin, PendingGuard, RunCtx, Taken, TokenGuard, fits, new_entry};

/// How a wait ended, as journaled.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WaitOutcome {
    /// The signal arrived with this payload.
    Signal(serde_json::Value),
    /// The timeout passed first.
    TimedOut,
}

/// Waits for `signal` under step name `name`; `None` when `timeout` passed first.
pub(crate) async fn wait<T: DeserializeOwned>(
    ctx: Arc<RunCtx>,
    name: String,
    signal: String,
    timeout: Option<Duration>,
    location: &'static Location<'static>,
) -> Option<T> {
    let scheduled = match ctx.begin(&name, EntryKind::Wait, location) {
        Some(Begin::Replay(entry)) => {
            ctx.replay_turn(&name, entry.seq).await;
            return replay(&ctx, &name, &entry).await;
        }
        Some(Begin::Scheduled(entry)) => {
            ctx.replayed(&name).await;
            Some(entry)
        }
        Some(Begin::New) => {
            ctx.replayed(&name).await;
            match timeout {
                Some(t) => Some(schedule(&ctx, &name, EntryKind::Wait, Due::In(t), location).await),
                None => None,
            }
        }
        None => return halt().await,
    };
    let due_at = scheduled.as_ref().and_then(|e| e.due_at);
    let pending = PendingGuard {
        ctx: Arc::clone(&ctx),
        name: name.clone(),
    };
    let arrived = loop {
        let polled = poll_fn(|cx| {
            if let Poll::Ready(taken) = ctx.poll_signal(&name, &signal, fits::<T>, cx) {
                return Poll::Ready(Some(taken));
            }
            match due_at {
                Some(due) => ctx.poll_timer(&name, due, cx).map(|()| None),
                None => Poll::Pending,
            }
        })
        .await;
        match polled {
            Some(Taken::Reject(bad, reason, token)) => {
                // Journaled (durably, under the lease) at the point the wait
                // saw it; the wait goes on.
                ctx.reject(&name, &bad, &reason).await;
                drop(token);
            }
            Some(Taken::Signal(signal_row, token)) => {
                crate::trace::signal_received(ctx.id.as_str(), &ctx.kind, &name, &signal_row);
                break Some((signal_row, token));
            }
            None => break None,
        }
    };
    drop(pending);
    let (outcome, token, consumed, value) = match arrived {
        Some((signal_row, token)) => {
            let value: T = match serde_json::from_str(&signal_row.payload) {
                Ok(value) => value,
                Err(err) => {
                    // Cannot happen: the wait takes only a signal that fits.
                    ctx.block(
                        &name,
                        format!(
                            "signal {signal:?} (id {}) carries a payload that does not decode \
                             into {}: {err} (payload: {})",
                            signal_row.id,
                            std::any::type_name::<T>(),
                            preview(&signal_row.payload)
                        ),
                    );
                    return halt().await;
                }
            };
            let payload =
                serde_json::from_str(&signal_row.payload).unwrap_or(serde_json::Value::Null);
            (
                WaitOutcome::Signal(payload),
                token,
                Some(signal_row.id),
                Some(value),
            )
        }
        None => {
            let token: TokenGuard = ctx.completion_token().await;
            (WaitOutcome::TimedOut, token, None, None)
        }
    };
    let now = ctx.clock.now();
    let mut entry: JournalEntry = match scheduled {
        Some(entry) => JournalEntry {
            seq: ctx.next_seq(),
            ..entry
        },
        None => new_entry(
            &ctx,
            &name,
            EntryKind::Wait,
            EntryStatus::Completed,
            now,
            location,
        ),
    };
    entry.status = EntryStatus::Completed;
    entry.finished_at = Some(now);
    entry.outcome = Some(serde_json::to_string(&outcome).unwrap_or_else(|_| "null".to_owned()));
    entry.consumed_signal = consumed;
    ctx.append(entry).await;
    drop(token);
    value
}

async fn replay<T: DeserializeOwned>(ctx: &RunCtx, name: &str, entry: &JournalEntry) -> Option<T> {
    let json = entry.outcome.as_deref().unwrap_or("null");
    let Some(outcome) = decode_recorded::<WaitOutcome>(ctx, name, "wait outcome", json) else {
        return halt().await;
    };
    match outcome {
        WaitOutcome::TimedOut => None,
        WaitOutcome::Signal(payload) => {
            let text = payload.to_string();
            match decode_recorded::<T>(ctx, name, "signal payload", &text) {
                Some(value) => Some(value),
                None => halt().await,
            }
        }
    }
}
