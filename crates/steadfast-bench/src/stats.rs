//! Counting the SQL statements this process sends to PostgreSQL, without
//! touching the store: the driver (sqlx) reports every statement it
//! executes as a `sqlx::query` tracing event at debug level, and
//! [`init_logging`] installs a layer that only counts those.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Statements reported by the driver since the process started.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// The driver's statement events.
const TARGET: &str = "sqlx::query";

/// Statements sent to PostgreSQL so far (0 when [`init_logging`] was not
/// called).
pub fn statements() -> u64 {
    STATEMENTS.load(Ordering::Relaxed)
}

/// Whether the statement counter is installed.
pub fn counting() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
}

/// A layer that counts the driver's statement events.
struct CountStatements;

impl<S: Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == TARGET {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Installs the bench's logging: messages to stderr filtered by `RUST_LOG`
/// (default `warn`), plus the statement counter. Does nothing when a
/// subscriber is already installed.
///
/// ```
/// steadfast_bench::init_logging();
/// ```
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let count =
        CountStatements.with_filter(Targets::new().with_target(TARGET, tracing::Level::DEBUG));
    // Fails only when a subscriber is already set, which is harmless.
    let _ = Registry::default().with(fmt).with(count).try_init();
}
