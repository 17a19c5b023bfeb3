//! Signals whose payload does not fit the wait are rejected (kept, visible,
//! never handed out again) and the wait goes on; typed signal definitions;
//! listing and discarding pending signals; reserved names.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steadfast::{
    EntryKind, EntryStatus, Error, Host, HostBuilder, Process, Signal, SignalRecord, SignalState,
    SqliteStore, Status, StepError, StepFailed, StoreError,
};
use tempfile::TempDir;

#[path = "support/metrics.rs"]
mod metrics_support;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Verification {
    code: String,
}

const VERIFIED: Signal<Verification> = Signal::new("email verified");

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    async fn builder(&self) -> HostBuilder {
        let store = SqliteStore::open(self.dir.path().join("signals.db"))
            .await
            .expect("open store");
        metrics_support::install();
        Host::builder(store).poll_interval(Duration::from_millis(20))
    }
}

/// Polls the store until `done` holds for process `id`, failing after 20 s.
async fn until<T>(host: &Host, what: &str, mut probe: impl AsyncFnMut(&Host) -> Option<T>) -> T {
    for _ in 0..2000 {
        if let Some(found) = probe(host).await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw: {what}");
}

async fn status(host: &Host, id: &str, want: Status) -> steadfast::ProcessRecord {
    until(host, &format!("{id} {want}"), async |h: &Host| {
        let record = h.status(id).await.expect("status");
        assert!(
            !matches!(record.status, Status::Blocked | Status::Failed),
            "{id} must not block or fail: {record:?}"
        );
        (record.status == want).then_some(record)
    })
    .await
}

async fn signal_in_state(host: &Host, id: &str, signal: &str, state: SignalState) -> SignalRecord {
    until(
        host,
        &format!("a {state} signal {signal:?}"),
        async |h: &Host| {
            h.signals(id)
                .await
                .expect("signals")
                .into_iter()
                .find(|s| s.name == signal && s.state == state)
        },
    )
    .await
}

/// The onboarding shape: a step, a typed wait, a step.
fn onboarding(b: HostBuilder, before: Arc<AtomicUsize>) -> HostBuilder {
    b.register("onboarding", move |p: Process, email: String| {
        let before = Arc::clone(&before);
        async move {
            p.step("welcome mail sent", || async {
                before.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StepError>(())
            })
            .await?;
            let verified = p.wait(VERIFIED).await;
            let second: u32 = p.wait("second").await;
            Ok::<_, StepFailed>(format!(
                "{email} verified with {} ({second})",
                verified.code
            ))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_signal_is_rejected_and_the_wait_goes_on() {
    let fx = Fixture::new();
    let host = onboarding(fx.builder().await, Arc::new(AtomicUsize::new(0))).build();
    host.spawn("onboarding", "u-1", "ada@example.com")
        .await
        .expect("spawn");
    status(&host, "u-1", Status::Suspended).await;

    // What the CLI's `steadfast signal u-1 "email verified" null` sends.
    host.signal_json("u-1", "email verified", "null")
        .await
        .expect("a mistyped signal is still accepted for delivery");
    let rejected = signal_in_state(&host, "u-1", "email verified", SignalState::Rejected).await;
    assert_eq!(rejected.payload, "null");
    assert!(rejected.settled_at.is_some(), "rejected at a time");
    let reason = rejected.reason.expect("a rejection has a reason");
    assert!(
        reason.contains("Verification") && reason.contains("invalid type: null"),
        "the reason names the expected type and what serde said: {reason}"
    );
    let record = status(&host, "u-1", Status::Suspended).await;
    assert_eq!(record.waiting_for, vec!["email verified".to_owned()]);
    assert_eq!(record.error, None);
    let pending = host
        .store()
        .pending_signals(&record.id)
        .await
        .expect("pending");
    assert!(
        pending.is_empty(),
        "a rejected signal is not pending: {pending:?}"
    );

    host.signal(
        "u-1",
        VERIFIED,
        &Verification {
            code: "1234".to_owned(),
        },
    )
    .await
    .expect("signal");
    host.signal("u-1", "second", &7).await.expect("signal");
    let out: String = host.outcome("u-1").await.expect("outcome");
    assert_eq!(out, "ada@example.com verified with 1234 (7)");
    let states: Vec<SignalState> = host
        .signals("u-1")
        .await
        .expect("signals")
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(
        states,
        vec![
            SignalState::Rejected,
            SignalState::Consumed,
            SignalState::Consumed
        ]
    );
    let rejected = metrics_support::sum(
        host.id().as_str(),
        "steadfast_signals_rejected_total",
        &[("kind", "onboarding")],
    );
    assert_eq!(
        rejected,
        1.0,
        "the rejection is counted for its kind: {}",
        metrics_support::text()
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_restarts_around_a_rejection_returns_the_same_result() {
    let fx = Fixture::new();
    let before = Arc::new(AtomicUsize::new(0));

    // First host: the mistyped signal is rejected, then the host stops.
    let host = onboarding(fx.builder().await, Arc::clone(&before)).build();
    host.spawn("onboarding", "u-2", "bob@example.com")
        .await
        .expect("spawn");
    status(&host, "u-2", Status::Suspended).await;
    host.signal_json("u-2", "email verified", "{\"code\": 5}")
        .await
        .expect("signal");
    signal_in_state(&host, "u-2", "email verified", SignalState::Rejected).await;
    status(&host, "u-2", Status::Suspended).await;
    host.shutdown().await;

    // Second host: the good signal is consumed; the second wait suspends.
    let host = onboarding(fx.builder().await, Arc::clone(&before)).build();
    host.signal(
        "u-2",
        VERIFIED,
        &Verification {
            code: "good".to_owned(),
        },
    )
    .await
    .expect("signal");
    let consumed = signal_in_state(&host, "u-2", "email verified", SignalState::Consumed).await;
    status(&host, "u-2", Status::Suspended).await;
    host.shutdown().await;

    // Third host: replays the first wait from the journal.
    let host = onboarding(fx.builder().await, Arc::clone(&before)).build();
    host.signal("u-2", "second", &2).await.expect("signal");
    let out: String = host.outcome("u-2").await.expect("outcome");
    assert_eq!(out, "bob@example.com verified with good (2)");
    assert_eq!(before.load(Ordering::SeqCst), 1, "the step ran once");
    let journal = host
        .store()
        .journal(&steadfast::ProcessId::new("u-2").expect("id"))
        .await
        .expect("journal");
    let wait = journal
        .iter()
        .find(|e| e.name == "email verified")
        .expect("the wait is journaled");
    assert_eq!(wait.kind, EntryKind::Wait);
    assert_eq!(wait.status, EntryStatus::Completed);
    assert_eq!(wait.consumed_signal, Some(consumed.id));
    let report = host.check().await.expect("check");
    assert!(
        report.iter().all(|r| r.verdict == steadfast::Verdict::Fits),
        "the journal replays: {report:?}"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_over_waits_of_one_name_takes_the_type_that_fits() {
    let fx = Fixture::new();
    let host = fx
        .builder()
        .await
        .register("either", |p: Process, (): ()| async move {
            let mut number = p.wait::<u32>("value").name("as number").into_future();
            let mut text = p.wait::<String>("value").name("as text").into_future();
            // Unbiased: the branches are polled in a random order.
            let got = tokio::select! {
                n = &mut number => format!("number {n}"),
                t = &mut text => format!("text {t}"),
            };
            Ok::<_, StepFailed>(got)
        })
        .build();
    host.spawn("either", "e-1", &()).await.expect("spawn");
    status(&host, "e-1", Status::Suspended).await;
    host.signal_json("e-1", "value", "null")
        .await
        .expect("signal");
    let rejected = signal_in_state(&host, "e-1", "value", SignalState::Rejected).await;
    let reason = rejected.reason.expect("reason");
    assert!(
        reason.contains("\"as number\"") && reason.contains("\"as text\""),
        "a signal is rejected only when no wait for its name fits: {reason}"
    );
    status(&host, "e-1", Status::Suspended).await;
    host.signal("e-1", "value", "hello").await.expect("signal");
    let out: String = host.outcome("e-1").await.expect("outcome");
    assert_eq!(out, "text hello", "the wait whose type fits takes it");
    let states: Vec<SignalState> = host
        .signals("e-1")
        .await
        .expect("signals")
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states, vec![SignalState::Rejected, SignalState::Consumed]);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_signal_can_be_listed_and_discarded() {
    let fx = Fixture::new();
    let host = fx
        .builder()
        .await
        .register("two", |p: Process, (): ()| async move {
            let first: String = p.wait("first").await;
            let later: String = p.wait("later").await;
            Ok::<_, StepFailed>(format!("{first} {later}"))
        })
        .build();
    host.spawn("two", "t-1", &()).await.expect("spawn");
    status(&host, "t-1", Status::Suspended).await;
    host.signal("t-1", "later", "stale").await.expect("signal");
    let listed = host.signals("t-1").await.expect("signals");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, SignalState::Pending);
    assert_eq!(listed[0].payload, "\"stale\"");
    // The signal woke the process; it suspends again, still waiting for "first".
    let before = until(&host, "settled again", async |h: &Host| {
        let r = h.status("t-1").await.expect("status");
        (r.status == Status::Suspended && r.wake_at.is_none() && r.epoch == 2).then_some(r)
    })
    .await;
    host.discard_signal("t-1", listed[0].id)
        .await
        .expect("discard");
    let after = host.status("t-1").await.expect("status");
    assert_eq!(before, after, "discarding changes nothing else");
    let again = host.discard_signal("t-1", listed[0].id).await;
    assert!(
        matches!(again, Err(Error::Store(StoreError::InvalidInput(ref m))) if m.contains("discarded")),
        "a discarded signal cannot be discarded again: {again:?}"
    );
    let unknown = host.discard_signal("nobody", 1).await;
    assert!(
        matches!(unknown, Err(Error::Store(StoreError::NotFound(_)))),
        "{unknown:?}"
    );

    host.signal("t-1", "first", "one").await.expect("signal");
    let record = until(&host, "waiting for later", async |h: &Host| {
        let r = h.status("t-1").await.expect("status");
        (r.status == Status::Suspended && r.waiting_for == ["later"]).then_some(r)
    })
    .await;
    assert_eq!(record.waiting_for, vec!["later".to_owned()]);
    host.signal("t-1", "later", "fresh").await.expect("signal");
    let out: String = host.outcome("t-1").await.expect("outcome");
    assert_eq!(out, "one fresh", "the discarded signal was never delivered");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_signal_names_are_refused() {
    let fx = Fixture::new();
    let host = fx
        .builder()
        .await
        .register("parent", |p: Process, (): ()| async move {
            let out: Result<u32, steadfast::ChildError> = p.child("kid", "kid", &()).await;
            Ok::<_, StepFailed>(out.unwrap_or(0))
        })
        .register("kid", |p: Process, (): ()| async move {
            let n: u32 = p.wait("n").await;
            Ok::<_, StepFailed>(n)
        })
        .build();
    host.spawn("parent", "p-1", &()).await.expect("spawn");
    status(&host, "p-1", Status::Suspended).await;
    for name in ["steadfast: child \"kid\" ended", "steadfast:anything"] {
        let sent = host
            .signal_json("p-1", name, "{\"status\":\"completed\",\"output\":1}")
            .await;
        assert!(
            matches!(sent, Err(Error::Store(StoreError::InvalidInput(ref m))) if m.contains("reserved")),
            "{name:?} must be refused: {sent:?}"
        );
    }
    assert!(
        host.signals("p-1").await.expect("signals").is_empty(),
        "a refused signal stores nothing"
    );
    // The engine's own end notification still reaches the parent.
    status(&host, "p-1/kid", Status::Suspended).await;
    host.signal("p-1/kid", "n", &41).await.expect("signal");
    let out: u32 = host.outcome("p-1").await.expect("outcome");
    assert_eq!(out, 41);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_with_a_timeout_keeps_its_deadline_after_a_rejection() {
    let fx = Fixture::new();
    let host = fx
        .builder()
        .await
        .register("deadline", |p: Process, (): ()| async move {
            let got = p
                .wait(VERIFIED)
                .timeout(Duration::from_secs(3600))
                .await
                .map(|v| v.code);
            Ok::<_, StepFailed>(got)
        })
        .build();
    host.spawn("deadline", "d-1", &()).await.expect("spawn");
    let before = status(&host, "d-1", Status::Suspended).await;
    let due = before.wake_at.expect("the timeout is due");
    host.signal_json("d-1", "email verified", "[1, 2]")
        .await
        .expect("signal");
    signal_in_state(&host, "d-1", "email verified", SignalState::Rejected).await;
    let after = until(&host, "suspended again", async |h: &Host| {
        let r = h.status("d-1").await.expect("status");
        (r.status == Status::Suspended && r.epoch > before.epoch).then_some(r)
    })
    .await;
    assert_eq!(after.wake_at, Some(due), "the deadline is unchanged");
    host.signal(
        "d-1",
        VERIFIED,
        &Verification {
            code: "in time".to_owned(),
        },
    )
    .await
    .expect("signal");
    let out: Option<String> = host.outcome("d-1").await.expect("outcome");
    assert_eq!(out.as_deref(), Some("in time"));
    host.shutdown().await;
}
