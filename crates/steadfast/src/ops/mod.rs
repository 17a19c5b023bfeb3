//! The durable operations a process function awaits: steps, recorded
//! values, timers and signal waits.

pub(crate) mod state;
pub(crate) mod step;
pub(crate) mod timer;
pub(crate) mod transaction;
pub(crate) mod value;
pub(crate) mod wait;

use serde::de::DeserializeOwned;

use crate::context::RunCtx;

/// Decodes a recorded JSON outcome into `T`; when it no longer decodes the
/// run is blocked (the journal stays as it is) and `None` is returned.
pub(crate) fn decode_recorded<T: DeserializeOwned>(
    ctx: &RunCtx,
    name: &str,
    what: &str,
    json: &str,
) -> Option<T> {
    match serde_json::from_str(json) {
        Ok(value) => Some(value),
        Err(err) => {
            ctx.block(
                name,
                format!(
                    "the recorded {what} of step {name:?} no longer decodes into {}: {err} \
                     (recorded: {})",
                    std::any::type_name::<T>(),
                    preview(json)
                ),
            );
            None
        }
    }
}

/// Encodes a new outcome; when it cannot be encoded, or is larger than the
/// host's payload limit, the run is blocked and nothing is stored.
pub(crate) fn encode_new<T: serde::Serialize>(
    ctx: &RunCtx,
    name: &str,
    value: &T,
) -> Option<String> {
    match serde_json::to_string(value) {
        Ok(json) if json.len() > ctx.max_payload_bytes => {
            ctx.block(
                name,
                too_large(
                    &format!("the outcome of step {name:?}"),
                    json.len(),
                    ctx.max_payload_bytes,
                ),
            );
            None
        }
        Ok(json) => Some(json),
        Err(err) => {
            ctx.block(
                name,
                format!(
                    "the outcome of step {name:?} (a {}) cannot be encoded as JSON: {err}",
                    std::any::type_name::<T>()
                ),
            );
            None
        }
    }
}

/// Why a JSON text over the payload limit was not stored.
pub(crate) fn too_large(what: &str, size: usize, limit: usize) -> String {
    format!(
        "{what} is {size} bytes of JSON, more than the host's limit of {limit} bytes \
         (HostBuilder::max_payload_bytes); nothing of it was stored. Raise the limit and retry \
         the process, or keep large data outside and store a reference to it"
    )
}

/// At most 120 characters of a JSON text, for error messages.
pub(crate) fn preview(json: &str) -> String {
    let mut chars = json.chars();
    let short: String = chars.by_ref().take(120).collect();
    if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    }
}

/// Parks the calling operation for good: the run is stopping.
pub(crate) async fn halt<T>() -> T {
    std::future::pending().await
}
