//! W3's process kind: it sleeps durably and finishes. Registered by the
//! bench's client and by its worker children, under the same name
//! (the production `steadfast worker` does not know it).

use std::convert::Infallible;
use std::time::Duration;

use steadfast::{HostBuilder, Process};

/// The kind's name.
pub const KIND: &str = "bench sleeper";

/// The process function: sleeps `sleep_ms` milliseconds (a durable timer:
/// while it sleeps the process is unloaded and holds no task), then ends.
pub async fn sleeper(p: Process, sleep_ms: u64) -> Result<(), Infallible> {
    p.sleep("slept", Duration::from_millis(sleep_ms)).await;
    Ok(())
}

/// Registers the kind on `builder`.
pub fn register(builder: HostBuilder) -> HostBuilder {
    builder.register(KIND, sleeper)
}
