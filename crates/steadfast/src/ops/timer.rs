//! `sleep` and `sleep_until`: durable timers whose due time is journaled.

use std::future::poll_fn;
use std::panic::Location;
use std::sync::Arc;

use steadfast_core::{EntryKind, EntryStatus, JournalEntry, Timestamp};

use super::halt;
use crate::context::{Begin, PendingGuard, RunCtx, new_entry};

/// When a timer is due.
pub(crate) enum Due {
    /// After this long, counted from when the timer is first reached.
    In(std::time::Duration),
    /// At this moment.
    At(Timestamp),
}

impl Due {
    pub(crate) fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            Due::In(duration) => now + duration,
            Due::At(at) => at,
        }
    }
}

/// Returns the scheduled journal entry of a timer (or wait timeout) named
/// `name`: the recorded one, or a new one appended now.
pub(crate) async fn schedule(
    ctx: &Arc<RunCtx>,
    name: &str,
    kind: EntryKind,
    due: Due,
    location: &'static Location<'static>,
) -> JournalEntry {
    let now = ctx.clock.now();
    let mut entry = new_entry(ctx, name, kind, EntryStatus::Scheduled, now, location);
    // Due in the store's time, which decides when it fires.
    entry.due_at = Some(due.resolve(ctx.offset.store_now(now)));
    ctx.append(entry.clone()).await;
    entry
}

pub(crate) async fn sleep(
    ctx: Arc<RunCtx>,
    name: String,
    due: Due,
    location: &'static Location<'static>,
) {
    let scheduled = match ctx.begin(&name, EntryKind::Timer, location) {
        Some(Begin::Replay(entry)) => return ctx.replay_turn(&name, entry.seq).await,
        Some(Begin::Scheduled(entry)) => {
            ctx.replayed(&name).await;
            entry
        }
        Some(Begin::New) => {
            ctx.replayed(&name).await;
            schedule(&ctx, &name, EntryKind::Timer, due, location).await
        }
        None => return halt().await,
    };
    let due_at = scheduled.due_at.unwrap_or(scheduled.started_at);
    let _pending = PendingGuard {
        ctx: Arc::clone(&ctx),
        name: name.clone(),
    };
    poll_fn(|cx| ctx.poll_timer(&name, due_at, cx)).await;
    // Due times are in the store's time.
    ctx.metrics
        .woke(&ctx.kind, ctx.store_now().saturating_since(due_at));
    let token = ctx.completion_token().await;
    let mut fired = scheduled;
    fired.seq = ctx.next_seq();
    fired.status = EntryStatus::Completed;
    fired.finished_at = Some(ctx.clock.now());
    fired.outcome = Some("null".to_owned());
    ctx.append(fired).await;
    drop(token);
}
