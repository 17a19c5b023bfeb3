//! Replay at its edges: a function that awaits something not durable
//! between journaled operations replays past it; a function that returns
//! before it consumed its journal is blocked as changed code, not
//! completed; and a timer dropped in a `select!` is no longer waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use steadfast::testing::TestHost;
use steadfast::{Process, Status, StepError, StepFailed};

/// How long a test waits for an outcome before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Step "a", a plain (not durable) Tokio sleep, step "b", an hour's
/// durable sleep, step "c". Replayed after the hour, the function awaits
/// the plain sleep while "b" and the timer are still to be replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_await_between_recorded_operations_replays() {
    let t = TestHost::start(|b| {
        b.register("gap", |p: Process, (): ()| async move {
            let a = p.step("a", || async { Ok::<_, StepError>(1u32) }).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let b = p.step("b", || async { Ok::<_, StepError>(2u32) }).await?;
            p.sleep("an hour", Duration::from_secs(3600)).await;
            let c = p.step("c", || async { Ok::<_, StepError>(4u32) }).await?;
            Ok::<_, StepFailed>(a + b + c)
        })
    })
    .await;
    t.host().spawn("gap", "g-1", &()).await.expect("spawn");
    assert_eq!(t.settle("g-1").await.status, Status::Suspended);
    t.advance(Duration::from_secs(3600)).await;
    let out: u32 = tokio::time::timeout(PATIENCE, t.host().outcome("g-1"))
        .await
        .expect("the replay goes past the plain sleep")
        .expect("outcome");
    assert_eq!(out, 7);
}

/// Steps "a" and "b", then an hour's sleep; replayed after the hour by code
/// that now returns right after "a" (the flag), leaving "b" and the timer
/// of the journal unreplayed: the process blocks, naming "b".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_returns_before_its_journal_ends_is_blocked() {
    let shortened = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shortened);
    let t = TestHost::start(move |b| {
        let flag = Arc::clone(&flag);
        b.register("shrinks", move |p: Process, (): ()| {
            let flag = Arc::clone(&flag);
            async move {
                let a = p.step("a", || async { Ok::<_, StepError>(1u32) }).await?;
                if flag.load(Ordering::SeqCst) {
                    return Ok(a);
                }
                let b = p.step("b", || async { Ok::<_, StepError>(2u32) }).await?;
                p.sleep("an hour", Duration::from_secs(3600)).await;
                Ok::<_, StepFailed>(a + b)
            }
        })
    })
    .await;
    t.host().spawn("shrinks", "s-1", &()).await.expect("spawn");
    assert_eq!(t.settle("s-1").await.status, Status::Suspended);
    shortened.store(true, Ordering::SeqCst);
    t.advance(Duration::from_secs(3600)).await;
    let record = tokio::time::timeout(PATIENCE, async {
        loop {
            let r = t.status("s-1").await;
            if r.status.is_finished() || r.status == Status::Blocked {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the replay ends");
    assert_eq!(
        record.status,
        Status::Blocked,
        "a replay that leaves recorded outcomes unconsumed must not complete: {record:?}"
    );
    assert_eq!(record.blocked_step.as_deref(), Some("b"), "{record:?}");
}

/// A `select!` between signal "x" and an hour's durable sleep; "x" wins and
/// the sleep is dropped; then the function waits for signal "y". Waiting
/// for "y" it must not wake at the dropped timer's due time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_dropped_in_a_select_is_not_waited_for() {
    let t = TestHost::start(|b| {
        b.register("either", |p: Process, (): ()| async move {
            let x = tokio::select! {
                x = p.wait::<u32>("x") => x,
                () = p.sleep("late", Duration::from_secs(3600)) => 0,
            };
            let y = p.wait::<u32>("y").await;
            Ok::<_, StepFailed>(x + y)
        })
    })
    .await;
    let host = t.host();
    host.spawn("either", "e-1", &()).await.expect("spawn");
    let first = t.settle("e-1").await;
    assert_eq!(first.status, Status::Suspended);
    assert!(
        first.wake_at.is_some(),
        "waits for x or the hour: {first:?}"
    );
    host.signal("e-1", "x", &1u32).await.expect("signal x");
    // The run takes "x" and suspends again, waiting for "y" only.
    let waiting = tokio::time::timeout(PATIENCE, async {
        loop {
            let r = t.status("e-1").await;
            if r.status == Status::Suspended && r.waiting_for == ["y"] {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the process takes x and waits for y");
    assert_eq!(
        waiting.wake_at, None,
        "the dropped timer is not waited for: {waiting:?}"
    );
    host.signal("e-1", "y", &2u32).await.expect("signal y");
    let out: u32 = tokio::time::timeout(PATIENCE, host.outcome("e-1"))
        .await
        .expect("completes")
        .expect("outcome");
    assert_eq!(out, 3);
}
