//! Counters and a step-latency histogram a host keeps about the work it
//! does, rendered in the Prometheus text format by [`crate::Host::metrics`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the step-latency buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// What a host counts.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    runs: AtomicU64,
    steps_completed: AtomicU64,
    steps_failed: AtomicU64,
    retries: AtomicU64,
    suspensions: AtomicU64,
    finished: AtomicU64,
    blocked: AtomicU64,
    store_retries: AtomicU64,
    runs_given_up: AtomicU64,
    signals_rejected: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl Metrics {
    pub(crate) fn run_started(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn suspended(&self) {
        self.suspensions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finished(&self, blocked: bool) {
        let counter = if blocked {
            &self.blocked
        } else {
            &self.finished
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A store write of a run failed with a retryable error and is tried again.
    pub(crate) fn store_retried(&self) {
        self.store_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A run stopped early because the store failed (not because its lease
    /// was taken over); another run replays the process.
    pub(crate) fn given_up(&self) {
        self.runs_given_up.fetch_add(1, Ordering::Relaxed);
    }

    /// A signal no wait for its name could decode was rejected.
    pub(crate) fn signal_rejected(&self) {
        self.signals_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A step that ran (all its attempts) for `took`.
    pub(crate) fn step(&self, ok: bool, took: Duration) {
        let counter = if ok {
            &self.steps_completed
        } else {
            &self.steps_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(
            took.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition of everything counted.
    pub(crate) fn render(&self, host: &str, running: usize, offset: Option<f64>) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name}{{host=\"{host}\"}} {value}");
        };
        counter(
            "steadfast_runs_total",
            "Runs of process functions started (claims).",
            get(&self.runs),
        );
        counter(
            "steadfast_steps_total",
            "Steps whose closures ran to a journaled success.",
            get(&self.steps_completed),
        );
        counter(
            "steadfast_steps_failed_total",
            "Steps journaled as failed for good.",
            get(&self.steps_failed),
        );
        counter(
            "steadfast_step_retries_total",
            "Step attempts that failed and were retried.",
            get(&self.retries),
        );
        counter(
            "steadfast_suspensions_total",
            "Runs that unloaded their process to wait.",
            get(&self.suspensions),
        );
        counter(
            "steadfast_finished_total",
            "Runs that ended their process (completed, failed, cancelled).",
            get(&self.finished),
        );
        counter(
            "steadfast_blocked_total",
            "Runs that blocked their process.",
            get(&self.blocked),
        );
        counter(
            "steadfast_store_write_retries_total",
            "Store writes of runs (journal appends, suspensions, ends) retried after a transient \
             store error (busy, full disk, I/O error, lost connection).",
            get(&self.store_retries),
        );
        counter(
            "steadfast_runs_given_up_total",
            "Runs stopped early because the store failed; their processes are replayed by a \
             later claim.",
            get(&self.runs_given_up),
        );
        counter(
            "steadfast_signals_rejected_total",
            "Signals rejected because no wait for their name could decode the payload.",
            get(&self.signals_rejected),
        );
        let _ = writeln!(
            out,
            "# HELP steadfast_running_processes Processes this host runs now.\n\
             # TYPE steadfast_running_processes gauge\n\
             steadfast_running_processes{{host=\"{host}\"}} {running}"
        );
        if let Some(offset) = offset {
            let _ = writeln!(
                out,
                "# HELP steadfast_clock_offset_seconds How far this host's clock is ahead of the \
                 store's clock (negative: behind), measured round-trip-corrected.\n\
                 # TYPE steadfast_clock_offset_seconds gauge\n\
                 steadfast_clock_offset_seconds{{host=\"{host}\"}} {offset}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP steadfast_step_duration_seconds Time from a step's first attempt to its outcome.\n\
             # TYPE steadfast_step_duration_seconds histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "steadfast_step_duration_seconds_bucket{{host=\"{host}\",le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "steadfast_step_duration_seconds_bucket{{host=\"{host}\",le=\"+Inf\"}} {count}\n\
             steadfast_step_duration_seconds_sum{{host=\"{host}\"}} {}\n\
             steadfast_step_duration_seconds_count{{host=\"{host}\"}} {count}",
            get(&self.latency_micros) as f64 / 1e6
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.step(true, Duration::from_millis(3));
        m.step(false, Duration::from_secs(2));
        m.retried();
        let text = m.render("h", 1, None);
        assert!(text.contains("steadfast_step_duration_seconds_bucket{host=\"h\",le=\"0.005\"} 1"));
        assert!(text.contains("steadfast_step_duration_seconds_bucket{host=\"h\",le=\"5\"} 2"));
        assert!(text.contains("steadfast_step_duration_seconds_count{host=\"h\"} 2"));
        assert!(text.contains("steadfast_steps_failed_total{host=\"h\"} 1"));
        assert!(text.contains("steadfast_step_retries_total{host=\"h\"} 1"));
    }
}
