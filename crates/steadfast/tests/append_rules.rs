//! The rules of a run's journal appends, through a store that fails them
//! precisely:
//!
//! * a retried append that finds its entry already written (the first try
//!   committed, its answer was lost) counts as written, and the run goes on;
//! * a duplicate entry on the *first* try is an error: the run is given up
//!   and its replay runs the step again (nothing of it was written);
//! * the journal-length warning is logged once, when the journal reaches
//!   the configured number of entries, counting an entry scheduled and then
//!   completed (a timer) once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[path = "support/metrics.rs"]
mod metrics_support;

use serde::{Deserialize, Serialize};
use steadfast::core::ProcessId;
use steadfast::testing::TestHost;
use steadfast::{HostBuilder, Process, SqliteStore, Status, StepError, StepFailed, StoreError};
use steadfast_conformance::faults::{Call, Faults, FaultyStore, injected_error};

/// How long a test waits for a process to finish before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs of the function and closure executions, per process.
#[derive(Default)]
struct Tally {
    runs: Mutex<HashMap<String, usize>>,
    steps: Mutex<HashMap<(String, &'static str), usize>>,
}

impl Tally {
    fn run(&self, id: &str) {
        *self
            .runs
            .lock()
            .expect("tally")
            .entry(id.to_owned())
            .or_default() += 1;
    }

    fn step(&self, id: &str, step: &'static str) {
        *self
            .steps
            .lock()
            .expect("tally")
            .entry((id.to_owned(), step))
            .or_default() += 1;
    }

    fn runs_of(&self, id: &str) -> usize {
        self.runs
            .lock()
            .expect("tally")
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    fn executions(&self, id: &str, step: &'static str) -> usize {
        self.steps
            .lock()
            .expect("tally")
            .get(&(id.to_owned(), step))
            .copied()
            .unwrap_or(0)
    }
}

/// Registers kind "abc": steps "a", "b" and "c", each counted, returning
/// the number of steps.
fn abc(b: HostBuilder, tally: Arc<Tally>) -> HostBuilder {
    metrics_support::install();
    b.register("abc", move |p: Process, (): ()| {
        let tally = Arc::clone(&tally);
        async move {
            let id = p.id().to_string();
            tally.run(&id);
            for step in ["a", "b", "c"] {
                p.step(step, || async {
                    tally.step(&id, step);
                    Ok::<_, StepError>(())
                })
                .await?;
            }
            Ok::<_, StepFailed>(3u32)
        }
    })
}

/// A test host whose store is a SQLite file wrapped in a [`FaultyStore`]
/// with policy `faults` (the same policy across restarts).
async fn faulty_host<F: Faults + Clone>(
    faults: F,
    configure: impl Fn(HostBuilder) -> HostBuilder + Send + Sync + 'static,
) -> (tempfile::TempDir, TestHost) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("faulty.db");
    let open = move || {
        let path = path.clone();
        let faults = faults.clone();
        async move {
            let store = SqliteStore::open(&path).await.expect("open store");
            FaultyStore::new(Arc::new(store), faults)
        }
    };
    let t = TestHost::on_store(open, configure).await;
    (dir, t)
}

/// The value of counter `name` for the test host's host.
fn metric(t: &TestHost, name: &str) -> u64 {
    metrics_support::sum(t.host().id().as_str(), name, &[]) as u64
}

/// Waits for process `id`'s outcome.
async fn outcome(t: &TestHost, id: &str) -> u32 {
    tokio::time::timeout(PATIENCE, t.host().outcome::<u32>(id))
        .await
        .unwrap_or_else(|_| panic!("{id} did not finish in time"))
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// Loses the answer of the first `left` successful appends of `victim`:
/// each is committed, and the run is told it failed with a retryable error.
#[derive(Clone)]
struct LoseAnswers {
    victim: ProcessId,
    left: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
}

impl Faults for LoseAnswers {
    fn fault(&self, _call: &Call<'_>) -> Option<StoreError> {
        None
    }

    fn lost_answer(&self, call: &Call<'_>) -> Option<StoreError> {
        let lease = call.lease?;
        if call.operation != "append" || lease.id != self.victim {
            return None;
        }
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()?;
        self.lost.fetch_add(1, Ordering::SeqCst);
        Some(injected_error(call.operation, true))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_whose_answers_were_lost_count_as_written_and_the_run_goes_on() {
    let tally = Arc::new(Tally::default());
    let faults = LoseAnswers {
        victim: ProcessId::new("lost").expect("id"),
        left: Arc::new(AtomicUsize::new(3)),
        lost: Arc::new(AtomicUsize::new(0)),
    };
    let lost = Arc::clone(&faults.lost);
    let t2 = Arc::clone(&tally);
    let (_dir, t) = faulty_host(faults, move |b| abc(b, Arc::clone(&t2))).await;
    t.host().spawn("abc", "lost", &()).await.expect("spawn");

    assert_eq!(outcome(&t, "lost").await, 3);
    assert_eq!(
        lost.load(Ordering::SeqCst),
        3,
        "the answer of each step's append was lost once"
    );
    assert_eq!(
        tally.runs_of("lost"),
        1,
        "a retry that finds its entry written goes on with the same run"
    );
    for step in ["a", "b", "c"] {
        assert_eq!(tally.executions("lost", step), 1, "step {step} ran once");
    }
    assert_eq!(t.steps("lost").await, ["a", "b", "c"]);
    assert!(
        metric(&t, "steadfast_store_write_retries_total") >= 3,
        "each lost answer was retried"
    );
    assert_eq!(metric(&t, "steadfast_runs_given_up_total"), 0);
    t.stop().await;
}

/// Answers the first `left` appends of `victim` with a duplicate entry,
/// without reaching the store.
#[derive(Clone)]
struct DuplicateFirst {
    victim: ProcessId,
    left: Arc<AtomicUsize>,
}

impl Faults for DuplicateFirst {
    fn fault(&self, call: &Call<'_>) -> Option<StoreError> {
        let lease = call.lease?;
        if call.operation != "append" || lease.id != self.victim {
            return None;
        }
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()?;
        Some(StoreError::DuplicateEntry {
            id: lease.id.clone(),
            name: "a".to_owned(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_entry_on_the_first_try_is_not_taken_as_written() {
    let tally = Arc::new(Tally::default());
    let faults = DuplicateFirst {
        victim: ProcessId::new("dup").expect("id"),
        left: Arc::new(AtomicUsize::new(1)),
    };
    let t2 = Arc::clone(&tally);
    let (_dir, t) = faulty_host(faults, move |b| abc(b, Arc::clone(&t2))).await;
    t.host().spawn("abc", "dup", &()).await.expect("spawn");

    assert_eq!(outcome(&t, "dup").await, 3);
    assert_eq!(
        t.steps("dup").await,
        ["a", "b", "c"],
        "step a's outcome was journaled (by the second run)"
    );
    assert_eq!(
        tally.runs_of("dup"),
        2,
        "the first run was given up at its first append and replayed"
    );
    assert_eq!(
        tally.executions("dup", "a"),
        2,
        "step a ran again: its entry had not been written"
    );
    assert_eq!(tally.executions("dup", "b"), 1);
    assert_eq!(tally.executions("dup", "c"), 1);
    assert_eq!(metric(&t, "steadfast_runs_given_up_total"), 1);
    t.stop().await;
}

/// One warning event the engine logged: its fields, as text.
type Fields = HashMap<String, String>;

/// The warnings (and errors) logged by this test binary so far; the first
/// call installs the capturing subscriber as the global default.
fn warnings() -> &'static Mutex<Vec<Fields>> {
    static WARNINGS: OnceLock<&'static Mutex<Vec<Fields>>> = OnceLock::new();
    WARNINGS.get_or_init(|| {
        let events: &'static Mutex<Vec<Fields>> = Box::leak(Box::default());
        tracing::subscriber::set_global_default(Capture(events))
            .expect("no other subscriber in this test binary");
        events
    })
}

/// A subscriber that keeps the fields of every warning and error event.
struct Capture(&'static Mutex<Vec<Fields>>);

struct FieldText<'a>(&'a mut Fields);

impl tracing::field::Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() <= tracing::Level::WARN
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut FieldText(&mut fields));
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fields);
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}

/// The `entries` field of each journal-length warning logged for process
/// `id`, in order.
fn journal_warnings(id: &str) -> Vec<String> {
    warnings()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|f| {
            f.get("process").map(String::as_str) == Some(id)
                && f.get("message")
                    .is_some_and(|m| m.contains("journal of this process has grown large"))
        })
        .filter_map(|f| f.get("entries").cloned())
        .collect()
}

/// The shape of a "grow" process's journal.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct Shape {
    /// Steps before the timer.
    steps: usize,
    /// The timer's duration, in seconds (0: it fires in the run that
    /// scheduled it).
    nap: u64,
    /// Whether step "after" follows the timer.
    after: bool,
}

/// Registers kind "grow": `steps` steps, timer "nap", then step "after"
/// if asked; the journal holds `steps + 1 (+ 1)` entries.
fn grow(b: HostBuilder) -> HostBuilder {
    b.register("grow", |p: Process, shape: Shape| async move {
        for i in 0..shape.steps {
            p.step(format!("s{i}"), || async { Ok::<_, StepError>(()) })
                .await?;
        }
        p.sleep("nap", Duration::from_secs(shape.nap)).await;
        if shape.after {
            p.step("after", || async { Ok::<_, StepError>(()) }).await?;
        }
        Ok::<_, StepFailed>(0u32)
    })
}

#[tokio::test]
async fn the_journal_warning_is_logged_once_when_the_journal_reaches_its_length() {
    warnings();
    let t = TestHost::start(|b| grow(b).journal_warning(4)).await;
    let host = t.host();
    let shapes = [
        // 3 steps and a timer fired in the same run: 4 entries.
        (
            "warn-exact",
            Shape {
                steps: 3,
                nap: 0,
                after: false,
            },
        ),
        // 2 steps and a timer fired in the same run: 3 entries, the timer
        // scheduled and completed being one.
        (
            "warn-short",
            Shape {
                steps: 2,
                nap: 0,
                after: false,
            },
        ),
        // 7 entries: the warning is logged when the 4th is written, once.
        (
            "warn-long",
            Shape {
                steps: 6,
                nap: 0,
                after: false,
            },
        ),
        // 2 steps and a timer scheduled in the first run; the second run
        // (loaded with those 3 entries) completes the timer and writes the
        // 4th entry.
        (
            "warn-resumed",
            Shape {
                steps: 2,
                nap: 3600,
                after: true,
            },
        ),
    ];
    for (id, shape) in &shapes {
        host.spawn("grow", id, shape).await.expect("spawn");
    }
    for (id, shape) in &shapes {
        if shape.nap == 0 {
            assert_eq!(outcome(&t, id).await, 0);
        }
    }
    assert_eq!(t.settle("warn-resumed").await.status, Status::Suspended);
    assert_eq!(
        journal_warnings("warn-resumed"),
        Vec::<String>::new(),
        "3 entries before the timer fires"
    );
    t.advance(Duration::from_secs(3600)).await;
    assert_eq!(outcome(&t, "warn-resumed").await, 0);

    assert_eq!(t.journal("warn-exact").await.len(), 4);
    assert_eq!(journal_warnings("warn-exact"), ["4"]);
    assert_eq!(t.journal("warn-short").await.len(), 3);
    assert_eq!(journal_warnings("warn-short"), Vec::<String>::new());
    assert_eq!(t.journal("warn-long").await.len(), 7);
    assert_eq!(journal_warnings("warn-long"), ["4"]);
    assert_eq!(t.journal("warn-resumed").await.len(), 4);
    assert_eq!(journal_warnings("warn-resumed"), ["4"]);
    t.stop().await;
}
