//! Planner statistics for `processes`, kept by the store itself.
//!
//! The claim picks due processes in `processes_wake` order; before
//! `processes` has statistics (a new schema, or a server with autovacuum
//! off or not yet round to it) the planner takes the table for a few pages
//! and scans all of it, on every claim, sorting the runnable rows. So the
//! store analyses `processes` itself as it grows: after its 500th spawn,
//! its 1,000th, 2,000th and so on (each threshold twice the one before), on
//! a pooled connection in the background. `ANALYZE` reads a sample of at
//! most 30,000 rows and blocks no write; a few per run of the store cost
//! nothing beside the scans they save.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;

/// The first spawn count after which `processes` is analysed.
pub(crate) const FIRST_ANALYSIS: u64 = 500;

/// Counts this store's new processes and says when to analyse.
#[derive(Debug)]
pub(crate) struct Statistics {
    spawned: AtomicU64,
    next: AtomicU64,
}

impl Statistics {
    pub(crate) fn new() -> Self {
        Statistics {
            spawned: AtomicU64::new(0),
            next: AtomicU64::new(FIRST_ANALYSIS),
        }
    }

    /// Counts one new process; `true` for exactly one caller each time the
    /// count reaches the next threshold (which then doubles).
    pub(crate) fn spawned(&self) -> bool {
        let count = self.spawned.fetch_add(1, Ordering::Relaxed) + 1;
        let next = self.next.load(Ordering::Relaxed);
        count >= next
            && self
                .next
                .compare_exchange(
                    next,
                    next.saturating_mul(2),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Analyses `processes` on a pooled connection (whose `search_path` leads
/// with the store's schema); a failure is only logged: the claim is right
/// without statistics, only slower.
pub(crate) async fn analyse(pool: PgPool) {
    match sqlx::query("ANALYZE processes").execute(&pool).await {
        Ok(_) => tracing::debug!("analysed processes for the planner"),
        Err(e) => tracing::debug!(error = %e, "could not analyse processes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_double_and_each_is_reported_once() {
        let stats = Statistics::new();
        let at: Vec<u64> = (1..=4_000u64).filter(|_| stats.spawned()).collect();
        assert_eq!(at, [500, 1_000, 2_000, 4_000]);
    }
}
