//! What a host measures, emitted through the [`::metrics`] facade: the
//! application installs the recorder it wants (e.g.
//! `metrics-exporter-prometheus`, as `steadfast worker --metrics` does);
//! without one every call here is a no-op.
//!
//! Every series carries the label `host` (the host's id); those about a
//! process carry `kind` too. The names are listed in [`crate::metric_names`]; [`describe_metrics`] gives each its help text.

use std::time::Duration;

use ::metrics::{counter, gauge, histogram};

/// Names of the metrics a host emits (see the crate docs' table).
pub mod names {
    /// Counter: runs of process functions started (claims), by kind.
    pub const RUNS: &str = "steadfast_runs_total";
    /// Counter: steps whose closures ran to a journaled success, by kind.
    pub const STEPS: &str = "steadfast_steps_total";
    /// Counter: steps journaled as failed for good, by kind.
    pub const STEPS_FAILED: &str = "steadfast_steps_failed_total";
    /// Counter: step attempts that failed and were retried, by kind.
    pub const STEP_RETRIES: &str = "steadfast_step_retries_total";
    /// Counter: runs that unloaded their process to wait, by kind.
    pub const SUSPENSIONS: &str = "steadfast_suspensions_total";
    /// Counter: runs that ended their process (completed, failed,
    /// cancelled), by kind.
    pub const FINISHED: &str = "steadfast_finished_total";
    /// Counter: runs that blocked their process, by kind.
    pub const BLOCKED: &str = "steadfast_blocked_total";
    /// Counter: store writes of runs retried after a transient store error.
    pub const STORE_WRITE_RETRIES: &str = "steadfast_store_write_retries_total";
    /// Counter: runs stopped early because the store failed.
    pub const RUNS_GIVEN_UP: &str = "steadfast_runs_given_up_total";
    /// Counter: signals rejected because no wait could decode them, by kind.
    pub const SIGNALS_REJECTED: &str = "steadfast_signals_rejected_total";
    /// Gauge: processes this host runs now.
    pub const RUNNING: &str = "steadfast_running_processes";
    /// Gauge: this host's clock offset from the store's clock, in seconds.
    pub const CLOCK_OFFSET: &str = "steadfast_clock_offset_seconds";
    /// Histogram: time from a step's first attempt to its outcome, by kind.
    pub const STEP_DURATION: &str = "steadfast_step_duration_seconds";
    /// Histogram: how long after its due time a durable timer fired, by
    /// kind.
    pub const WAKEUP_LAG: &str = "steadfast_wakeup_lag_seconds";
    /// Histogram: time of one store write of a run (one try), by `op`
    /// (`append`, `suspend`, `finish`, `continue_as_new`, `hand_back`).
    pub const STORE_WRITE_DURATION: &str = "steadfast_store_write_duration_seconds";
    /// Histogram: how many writes one group commit of a store carried
    /// (emitted by the stores, label `store`).
    pub const STORE_BATCH_SIZE: &str = "steadfast_store_batch_size";
}

/// Registers the help text of every metric a host emits with the installed
/// recorder (exporters print it as `# HELP`). Call once after installing a
/// recorder; harmless without one.
///
/// ```
/// steadfast::describe_metrics();
/// ```
pub fn describe_metrics() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_counter!(RUNS, "Runs of process functions started (claims).");
    describe_counter!(STEPS, "Steps whose closures ran to a journaled success.");
    describe_counter!(STEPS_FAILED, "Steps journaled as failed for good.");
    describe_counter!(STEP_RETRIES, "Step attempts that failed and were retried.");
    describe_counter!(SUSPENSIONS, "Runs that unloaded their process to wait.");
    describe_counter!(
        FINISHED,
        "Runs that ended their process (completed, failed, cancelled)."
    );
    describe_counter!(BLOCKED, "Runs that blocked their process.");
    describe_counter!(
        STORE_WRITE_RETRIES,
        "Store writes of runs (journal appends, suspensions, ends) retried after a transient \
         store error (busy, full disk, I/O error, lost connection)."
    );
    describe_counter!(
        RUNS_GIVEN_UP,
        "Runs stopped early because the store failed; their processes are replayed by a \
         later claim."
    );
    describe_counter!(
        SIGNALS_REJECTED,
        "Signals rejected because no wait for their name could decode the payload."
    );
    describe_gauge!(RUNNING, "Processes this host runs now.");
    describe_gauge!(
        CLOCK_OFFSET,
        Unit::Seconds,
        "How far this host's clock is ahead of the store's clock (negative: behind), \
         measured round-trip-corrected."
    );
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Time from a step's first attempt to its outcome."
    );
    describe_histogram!(
        WAKEUP_LAG,
        Unit::Seconds,
        "How long after its due time a durable timer fired."
    );
    describe_histogram!(
        STORE_WRITE_DURATION,
        Unit::Seconds,
        "Time of one store write of a run (one try), or of one claim, by operation."
    );
    describe_histogram!(
        STORE_BATCH_SIZE,
        Unit::Count,
        "Writes carried by one group commit of the store."
    );
}

/// A run's store write, as labelled in [`names::STORE_WRITE_DURATION`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum WriteOp {
    /// The dispatcher's claim of due processes (it takes their leases).
    Claim,
    Append,
    Suspend,
    Finish,
    ContinueAsNew,
    HandBack,
}

impl WriteOp {
    /// What the log says the write was doing.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            WriteOp::Claim => "claiming due processes",
            WriteOp::Append => "appending a journal entry",
            WriteOp::Suspend => "suspending the process",
            WriteOp::Finish => "recording the end of the run",
            WriteOp::ContinueAsNew => "continuing as new",
            WriteOp::HandBack => "handing the process back",
        }
    }

    fn label(self) -> &'static str {
        match self {
            WriteOp::Claim => "claim",
            WriteOp::Append => "append",
            WriteOp::Suspend => "suspend",
            WriteOp::Finish => "finish",
            WriteOp::ContinueAsNew => "continue_as_new",
            WriteOp::HandBack => "hand_back",
        }
    }
}

/// A host's handle on the facade: the labels it adds to what it reports.
#[derive(Debug)]
pub(crate) struct Metrics {
    host: String,
}

impl Metrics {
    pub(crate) fn new(host: &str) -> Self {
        Metrics {
            host: host.to_owned(),
        }
    }

    fn count(&self, name: &'static str, kind: &str) {
        counter!(name, "host" => self.host.clone(), "kind" => kind.to_owned()).increment(1);
    }

    pub(crate) fn run_started(&self, kind: &str) {
        self.count(names::RUNS, kind);
    }

    pub(crate) fn suspended(&self, kind: &str) {
        self.count(names::SUSPENSIONS, kind);
    }

    pub(crate) fn finished(&self, kind: &str, blocked: bool) {
        let name = if blocked {
            names::BLOCKED
        } else {
            names::FINISHED
        };
        self.count(name, kind);
    }

    /// A store write of a run failed with a retryable error and is tried again.
    pub(crate) fn store_retried(&self) {
        counter!(names::STORE_WRITE_RETRIES, "host" => self.host.clone()).increment(1);
    }

    /// One try of a store write of a run took `took`.
    pub(crate) fn store_write(&self, op: WriteOp, took: Duration) {
        histogram!(names::STORE_WRITE_DURATION, "host" => self.host.clone(), "op" => op.label())
            .record(took.as_secs_f64());
    }

    /// A run stopped early because the store failed (not because its lease
    /// was taken over); another run replays the process.
    pub(crate) fn given_up(&self) {
        counter!(names::RUNS_GIVEN_UP, "host" => self.host.clone()).increment(1);
    }

    /// A signal no wait for its name could decode was rejected.
    pub(crate) fn signal_rejected(&self, kind: &str) {
        self.count(names::SIGNALS_REJECTED, kind);
    }

    pub(crate) fn retried(&self, kind: &str) {
        self.count(names::STEP_RETRIES, kind);
    }

    /// A step that ran (all its attempts) for `took`.
    pub(crate) fn step(&self, kind: &str, ok: bool, took: Duration) {
        let name = if ok {
            names::STEPS
        } else {
            names::STEPS_FAILED
        };
        self.count(name, kind);
        histogram!(names::STEP_DURATION, "host" => self.host.clone(), "kind" => kind.to_owned())
            .record(took.as_secs_f64());
    }

    /// A durable timer fired `lag` after its due time.
    pub(crate) fn woke(&self, kind: &str, lag: Duration) {
        histogram!(names::WAKEUP_LAG, "host" => self.host.clone(), "kind" => kind.to_owned())
            .record(lag.as_secs_f64());
    }

    /// The host runs `n` processes now.
    pub(crate) fn running(&self, n: usize) {
        gauge!(names::RUNNING, "host" => self.host.clone()).set(n as f64);
    }

    /// The clock offset was measured as `seconds`.
    pub(crate) fn clock_offset(&self, seconds: f64) {
        gauge!(names::CLOCK_OFFSET, "host" => self.host.clone()).set(seconds);
    }
}
