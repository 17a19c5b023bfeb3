//! `publish_state`: a value the process publishes for readers outside,
//! journaled so it is read from the store without a live worker.

use std::panic::Location;
use std::sync::Arc;

use steadfast_core::{EntryKind, EntryStatus};

use super::halt;
use crate::context::{Begin, RunCtx, new_entry};

/// Journals `json` (or blocks the run when the value could not be encoded)
/// as the state entry `name`; a replay finds it recorded.
pub(crate) async fn publish(
    ctx: Arc<RunCtx>,
    name: String,
    json: Result<String, String>,
    location: &'static Location<'static>,
) {
    match ctx.begin(&name, EntryKind::State, location) {
        Some(Begin::New) => {}
        Some(Begin::Replay(entry)) => return ctx.replay_turn(&name, entry.seq).await,
        Some(Begin::Scheduled(_)) | None => return halt().await,
    }
    ctx.replayed(&name).await;
    let json = match json {
        Ok(json) => json,
        Err(err) => {
            ctx.block(
                &name,
                format!("the state published as {name:?} cannot be encoded as JSON: {err}"),
            );
            return halt().await;
        }
    };
    let token = ctx.completion_token().await;
    let now = ctx.clock.now();
    let mut entry = new_entry(
        &ctx,
        &name,
        EntryKind::State,
        EntryStatus::Completed,
        now,
        location,
    );
    entry.outcome = Some(json);
    entry.attempts = 1;
    entry.finished_at = Some(now);
    ctx.append(entry).await;
    drop(token);
}
