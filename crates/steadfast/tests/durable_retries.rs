//! Durable retries: long waits between attempts are journaled and the
//! process is unloaded; the default policy outlasts an hour-long outage;
//! the wait survives a restart; `retry` cuts it short.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use steadfast::testing::TestHost;
use steadfast::{EntryStatus, Process, RetryPolicy, Status, StepError, StepFailed, Timestamp};

/// An outside service that is down until told otherwise.
#[derive(Clone, Default)]
struct Mailer {
    up: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
}

impl Mailer {
    async fn send(&self) -> Result<u32, StepError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.up.load(Ordering::SeqCst) {
            Ok(n)
        } else {
            Err(StepError::retryable("mail server unreachable"))
        }
    }
}

#[steadfast::process]
async fn welcome(p: Process, (): (), mailer: Mailer) -> Result<u32, StepFailed> {
    p.step("welcome mail sent", || mailer.send()).await
}

#[steadfast::process]
async fn patient(p: Process, (): (), mailer: Mailer) -> Result<u32, StepFailed> {
    p.step("welcome mail sent", || mailer.send())
        .retry(
            RetryPolicy::for_duration(Duration::from_secs(3 * 86_400))
                .initial_delay(Duration::from_secs(3_600))
                .max_delay(Duration::from_secs(3_600))
                .jitter(0.0),
        )
        .await
}

/// Drives virtual time: a suspended process is moved to its wake-up time,
/// a running one (sleeping in memory) by a second, until `done` says so.
async fn drive(t: &TestHost, id: &str, mut done: impl FnMut(&TestHost) -> bool) {
    for _ in 0..100_000 {
        if done(t) {
            return;
        }
        let record = t.status(id).await;
        match record.status {
            Status::Suspended => {
                if let Some(at) = record.wake_at {
                    t.clock().set(at);
                }
            }
            Status::Running => t.clock().advance(Duration::from_secs(1)),
            _ => return,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{id} never got where the test drives it");
}

fn now(t: &TestHost) -> Timestamp {
    steadfast::Clock::now(t.clock())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_outlasts_an_hour_long_outage() {
    let mailer = Mailer::default();
    let m = mailer.clone();
    let t = TestHost::start(move |b| b.provide(m.clone()).register_kind::<Welcome>()).await;
    let start = now(&t);
    let handle = t.host().start::<Welcome>("w-1", &()).await.expect("start");
    // The mail server is down for an hour.
    drive(&t, "w-1", |t| now(t) >= start + Duration::from_secs(3_600)).await;
    let record = t.status("w-1").await;
    assert!(
        !record.status.is_finished(),
        "the step gave up during the outage: {record:?}"
    );
    let calls_during_outage = mailer.calls.load(Ordering::SeqCst);
    assert!(calls_during_outage > 5, "{calls_during_outage}");
    mailer.up.store(true, Ordering::SeqCst);
    let came_back = now(&t);
    drive(&t, "w-1", |_| false).await;
    assert_eq!(
        handle.outcome().await.expect("outcome"),
        calls_during_outage + 1
    );
    let journal = handle.journal().await.expect("journal");
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, EntryStatus::Completed);
    assert_eq!(journal[0].attempts, calls_during_outage + 1);
    let finished = journal[0].finished_at.expect("finished");
    assert!(
        finished.saturating_since(came_back) <= Duration::from_secs(5 * 60),
        "the step succeeded {:?} after the server came back",
        finished.saturating_since(came_back)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_wait_is_journaled_suspends_and_survives_a_restart() {
    let mailer = Mailer::default();
    let m = mailer.clone();
    let t = TestHost::start(move |b| b.provide(m.clone()).register_kind::<Patient>()).await;
    let start = now(&t);
    let handle = t.host().start::<Patient>("p-1", &()).await.expect("start");
    // The first attempt failed: the wait for the second is in the journal,
    // and the process holds no run while it waits.
    let record = t.settle("p-1").await;
    assert_eq!(record.status, Status::Suspended);
    assert_eq!(record.wake_at, Some(start + Duration::from_secs(3_600)));
    let journal = handle.journal().await.expect("journal");
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, EntryStatus::Scheduled);
    assert_eq!(journal[0].attempts, 1);
    assert_eq!(journal[0].due_at, Some(start + Duration::from_secs(3_600)));
    assert!(
        journal[0]
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("mail server unreachable")),
        "{:?}",
        journal[0].outcome
    );

    t.crash_and_restart().await;
    assert_eq!(t.settle("p-1").await.status, Status::Suspended);
    assert_eq!(
        mailer.calls.load(Ordering::SeqCst),
        1,
        "a restart does not retry early"
    );
    // The second attempt, an hour later, fails too; the third succeeds.
    t.clock().set(start + Duration::from_secs(3_600));
    for _ in 0..2000 {
        if mailer.calls.load(Ordering::SeqCst) == 2
            && t.status("p-1").await.status == Status::Suspended
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let journal = handle.journal().await.expect("journal");
    assert_eq!(journal[0].attempts, 2);
    assert_eq!(journal[0].due_at, Some(start + Duration::from_secs(7_200)));
    mailer.up.store(true, Ordering::SeqCst);
    t.clock().set(start + Duration::from_secs(7_200));
    assert_eq!(handle.outcome().await.expect("outcome"), 3);
    let journal = handle.journal().await.expect("journal");
    assert_eq!(journal[0].status, EntryStatus::Completed);
    assert_eq!(journal[0].attempts, 3);
    assert_eq!(
        journal[0].started_at, start,
        "time counts from the first attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_now_cuts_a_durable_wait_short() {
    let mailer = Mailer::default();
    let m = mailer.clone();
    let t = TestHost::start(move |b| b.provide(m.clone()).register_kind::<Patient>()).await;
    let handle = t.host().start::<Patient>("p-2", &()).await.expect("start");
    assert_eq!(t.settle("p-2").await.status, Status::Suspended);
    mailer.up.store(true, Ordering::SeqCst);
    // No virtual time passes: only `retry` can bring the next attempt.
    handle.retry().await.expect("retry now");
    assert_eq!(handle.outcome().await.expect("outcome"), 2);
    let journal = handle.journal().await.expect("journal");
    assert_eq!(journal[0].attempts, 2);
    assert!(
        journal[0].consumed_signal.is_some(),
        "the retry signal is consumed"
    );
    // Nothing is left waiting for a signal.
    let pending = t
        .host()
        .store()
        .pending_signals(handle.id())
        .await
        .expect("signals");
    assert!(pending.is_empty(), "{pending:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_gives_up_after_its_duration() {
    let mailer = Mailer::default();
    let m = mailer.clone();
    let t = TestHost::start(move |b| b.provide(m.clone()).register_kind::<Patient>()).await;
    let start = now(&t);
    let handle = t.host().start::<Patient>("p-3", &()).await.expect("start");
    drive(&t, "p-3", |_| false).await;
    let err = handle.outcome().await.expect_err("gave up");
    assert!(err.to_string().contains("mail server unreachable"), "{err}");
    let journal = handle.journal().await.expect("journal");
    assert_eq!(journal[0].status, EntryStatus::Failed);
    // Hourly attempts for three days: the first plus 72 more.
    assert_eq!(journal[0].attempts, 73);
    // The last attempt ran at the deadline (the driver may have moved the
    // virtual clock a few seconds on while the run was loaded).
    let finished = journal[0].finished_at.expect("finished");
    let deadline = start + Duration::from_secs(3 * 86_400);
    assert!(finished >= deadline && finished.saturating_since(deadline) < Duration::from_secs(60));
}
