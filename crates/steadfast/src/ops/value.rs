//! `get`: a non-deterministic value recorded once and replayed after.

use std::panic::Location;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{EntryKind, EntryStatus};

use super::{decode_recorded, encode_new, halt};
use crate::context::{Begin, RunCtx, new_entry};

pub(crate) async fn record<T, F>(
    ctx: Arc<RunCtx>,
    name: String,
    location: &'static Location<'static>,
    make: F,
) -> T
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> T,
{
    match ctx.begin(&name, EntryKind::Value, location) {
        Some(Begin::New) => {}
        Some(Begin::Replay(entry)) => {
            ctx.replay_turn(&name, entry.seq).await;
            let json = entry.outcome.unwrap_or_default();
            return match decode_recorded(&ctx, &name, "value", &json) {
                Some(value) => value,
                None => halt().await,
            };
        }
        Some(Begin::Scheduled(_)) | None => return halt().await,
    }
    ctx.replayed(&name).await;
    let token = ctx.completion_token().await;
    let value = make();
    let Some(json) = encode_new(&ctx, &name, &value) else {
        return halt().await;
    };
    let now = ctx.clock.now();
    let mut entry = new_entry(
        &ctx,
        &name,
        EntryKind::Value,
        EntryStatus::Completed,
        now,
        location,
    );
    entry.outcome = Some(json);
    entry.attempts = 1;
    entry.finished_at = Some(now);
    ctx.append(entry).await;
    drop(token);
    value
}
