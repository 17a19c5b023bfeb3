//! Fused durable futures: steps, waits and timers can stay in a `select!`
//! loop after they returned (no guards, no `Option`s), `futures::select!`
//! accepts them, and an abandoned timer never fires.

use std::time::Duration;

use futures::future::FusedFuture;
use steadfast::testing::TestHost;
use steadfast::{EntryStatus, Process, Status, StepError, StepFailed};

/// Takes two signals in whatever order they come, then a third, polling
/// every wait in every round of a `tokio::select!` loop.
#[steadfast::process]
async fn collector(p: Process, (): ()) -> Result<Vec<String>, StepFailed> {
    let mut a = p.wait::<String>("a");
    let mut b = p.wait::<String>("b");
    let mut done = p.wait::<()>("done");
    let mut seen = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = &mut done => return Ok(seen),
            x = &mut a => seen.push(x),
            y = &mut b => seen.push(y),
        }
    }
}

/// `futures::select!` demands `FusedFuture + Unpin`: steps, waits and
/// timers qualify; the timer is abandoned once the signal came.
#[steadfast::process]
async fn deadline(p: Process, (): ()) -> Result<String, StepFailed> {
    let mut answer = p.wait::<String>("answer");
    let mut late = p.sleep("an hour passed", Duration::from_secs(3_600));
    let mut noted = p.step("noted", || async { Ok::<_, StepError>(1u8) });
    let mut got = None;
    loop {
        futures::select_biased! {
            n = noted => { n?; }
            text = answer => {
                late.abandon();
                got = Some(text);
            }
            () = late => return Ok("too late".to_owned()),
            complete => break,
        }
    }
    assert!(answer.is_terminated() && late.is_terminated() && noted.is_terminated());
    Ok(got.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_loop_polls_finished_waits_again_without_guards() {
    let t = TestHost::start(|b| b.register_kind::<Collector>()).await;
    let handle = t
        .host()
        .start::<Collector>("c-1", &())
        .await
        .expect("start");
    handle.signal("b", &"second").await.expect("b");
    // Wait until "b" was taken before sending the rest, so the loop polls
    // the finished wait "b" again in the following rounds.
    for _ in 0..2000 {
        let names: Vec<String> = t.steps("c-1").await;
        if names.contains(&"b".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.signal("a", &"first").await.expect("a");
    for _ in 0..2000 {
        if t.steps("c-1").await.contains(&"a".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.signal("done", &()).await.expect("done");
    assert_eq!(
        handle.outcome().await.expect("outcome"),
        ["second", "first"]
    );
    // Replays take the same branches in the same order.
    t.crash_and_restart().await;
    assert_eq!(
        t.host()
            .handle::<Collector>("c-1")
            .await
            .expect("handle")
            .outcome()
            .await
            .expect("outcome"),
        ["second", "first"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_timer_never_fires() {
    let t = TestHost::start(|b| b.register_kind::<Deadline>()).await;
    let handle = t.host().start::<Deadline>("d-1", &()).await.expect("start");
    assert_eq!(t.settle("d-1").await.status, Status::Suspended);
    handle.signal("answer", &"42").await.expect("signal");
    assert_eq!(handle.outcome().await.expect("outcome"), "42");
    let journal = handle.journal().await.expect("journal");
    let timer = journal
        .iter()
        .find(|e| e.name == "an hour passed")
        .expect("the timer was scheduled");
    assert_eq!(timer.status, EntryStatus::Scheduled, "it never fired");
    assert_eq!(t.status("d-1").await.status, Status::Completed);
}
