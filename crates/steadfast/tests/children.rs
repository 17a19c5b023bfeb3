//! Child processes: spawned under a derived id, awaited durably across a
//! crash, failures and cancellation passed to the parent, cancelling a
//! parent cancels its children but not detached ones.

use std::time::Duration;

use steadfast::testing::TestHost;
use steadfast::{ChildError, HostBuilder, Process, Status, StepError, StepFailed};

#[steadfast::process]
async fn charge(p: Process, amount: i64) -> Result<i64, String> {
    let confirmed: bool = p.wait("confirmed").await;
    if !confirmed {
        return Err(format!("charge of {amount} declined"));
    }
    p.step("charged", || async { Ok::<_, StepError>(amount) })
        .await
        .map_err(|e| e.to_string())
}

#[steadfast::process]
async fn order(p: Process, amount: i64) -> Result<String, StepFailed> {
    p.spawn_detached("audit started", &format!("audit-{}", p.id()), "charge", &0)
        .await
        .map_err(|e| StepFailed {
            step: "audit started".into(),
            message: e.to_string(),
            attempts: 1,
            permanent: true,
            timed_out: false,
            ..StepFailed::default()
        })?;
    let paid: Result<i64, ChildError> = p.child("payment", "charge", &amount).await;
    Ok(match paid {
        Ok(n) => format!("paid {n}"),
        Err(ChildError::Failed { error, .. }) => format!("failed: {error}"),
        Err(other) => format!("other: {other}"),
    })
}

fn kinds(b: HostBuilder) -> HostBuilder {
    b.register("charge", charge).register("order", order)
}

async fn settled(t: &TestHost, id: &str, status: Status) {
    for _ in 0..2000 {
        if t.host().status(id).await.is_ok_and(|r| r.status == status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{id} never became {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_is_awaited_across_a_crash() {
    let t = TestHost::start(kinds).await;
    t.host()
        .spawn("order", "o-1", &250i64)
        .await
        .expect("spawn");
    settled(&t, "o-1/payment", Status::Suspended).await;
    settled(&t, "o-1", Status::Suspended).await;
    t.crash_and_restart().await;
    t.host()
        .signal("o-1/payment", "confirmed", &true)
        .await
        .expect("signal");
    let out: String = t.host().outcome("o-1").await.expect("outcome");
    assert_eq!(out, "paid 250");
    assert_eq!(
        t.steps("o-1").await,
        ["audit started", "payment: spawned", "payment"]
    );
    assert_eq!(t.status("o-1/payment").await.status, Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_child_reaches_its_parent_as_an_error() {
    let t = TestHost::start(kinds).await;
    t.host().spawn("order", "o-2", &99i64).await.expect("spawn");
    settled(&t, "o-2/payment", Status::Suspended).await;
    t.host()
        .signal("o-2/payment", "confirmed", &false)
        .await
        .expect("signal");
    let out: String = t.host().outcome("o-2").await.expect("outcome");
    assert_eq!(out, "failed: charge of 99 declined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_its_children_but_not_detached_ones() {
    let t = TestHost::start(kinds).await;
    t.host().spawn("order", "o-3", &5i64).await.expect("spawn");
    settled(&t, "o-3/payment", Status::Suspended).await;
    settled(&t, "o-3", Status::Suspended).await;
    t.host().cancel("o-3").await.expect("cancel");
    assert_eq!(t.status("o-3").await.status, Status::Cancelled);
    assert_eq!(t.status("o-3/payment").await.status, Status::Cancelled);
    assert_eq!(
        t.status("audit-o-3").await.status,
        Status::Suspended,
        "detached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_child_tells_the_parent() {
    let t = TestHost::start(kinds).await;
    t.host().spawn("order", "o-4", &5i64).await.expect("spawn");
    settled(&t, "o-4/payment", Status::Suspended).await;
    t.host().cancel("o-4/payment").await.expect("cancel");
    let out: String = t.host().outcome("o-4").await.expect("outcome");
    assert!(
        out.starts_with("other: child process \"o-4/payment\" was cancelled"),
        "{out}"
    );
}

/// A loop that runs forever keeps its journal small with continue-as-new,
/// and its earlier rounds stay viewable as history.
#[steadfast::process]
async fn counter(p: Process, round: u32) -> Result<u32, StepFailed> {
    let tick: u32 = p.wait("tick").await;
    p.step("counted", || async { Ok::<_, StepError>(tick) })
        .await?;
    if round == 3 {
        return Ok(round);
    }
    p.continue_as_new(&(round + 1)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_keeps_the_journal_small_and_the_history() {
    let t = TestHost::start(|b| b.register("counter", counter)).await;
    t.host()
        .spawn("counter", "loop", &1u32)
        .await
        .expect("spawn");
    for tick in 1..=3u32 {
        settled(&t, "loop", Status::Suspended).await;
        let before = t.status("loop").await.generation;
        t.host()
            .signal("loop", "tick", &tick)
            .await
            .expect("signal");
        if tick < 3 {
            for _ in 0..2000 {
                if t.status("loop").await.generation > before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let last: u32 = t.host().outcome("loop").await.expect("outcome");
    assert_eq!(last, 3);
    let record = t.status("loop").await;
    assert_eq!(record.generation, 2);
    assert_eq!(
        t.steps("loop").await,
        ["tick", "counted"],
        "only the last round"
    );
    let history = t.host().store().history(&record.id).await.expect("history");
    let inputs: Vec<&str> = history.iter().map(|g| g.input.as_str()).collect();
    assert_eq!(inputs, ["1", "2"]);
    assert!(history.iter().all(|g| g.journal.len() == 2));
}

/// An unrelated process whose id merely starts with `<parent>/` is neither
/// cancelled with the parent nor a messenger to it: the link is the stored
/// parent, set only by `Process::child`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_id_under_a_parent_is_not_cancelled_with_it() {
    let t = TestHost::start(kinds).await;
    t.host().spawn("order", "o-5", &5i64).await.expect("spawn");
    t.host()
        .spawn("charge", "o-5/other", &1i64)
        .await
        .expect("spawn");
    settled(&t, "o-5/payment", Status::Suspended).await;
    settled(&t, "o-5", Status::Suspended).await;
    settled(&t, "o-5/other", Status::Suspended).await;
    assert_eq!(
        t.status("o-5/payment").await.parent.map(|p| p.to_string()),
        Some("o-5".to_owned())
    );
    assert_eq!(t.status("o-5/other").await.parent, None);
    assert_eq!(t.status("audit-o-5").await.parent, None, "detached");
    t.host().cancel("o-5").await.expect("cancel");
    assert_eq!(t.status("o-5").await.status, Status::Cancelled);
    assert_eq!(t.status("o-5/payment").await.status, Status::Cancelled);
    assert_eq!(
        t.status("o-5/other").await.status,
        Status::Suspended,
        "not a child of o-5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_id_under_a_parent_does_not_signal_it_when_it_ends() {
    let t = TestHost::start(kinds).await;
    t.host().spawn("order", "o-6", &5i64).await.expect("spawn");
    settled(&t, "o-6", Status::Suspended).await;
    t.host()
        .spawn("charge", "o-6/other", &1i64)
        .await
        .expect("spawn");
    settled(&t, "o-6/other", Status::Suspended).await;
    t.host()
        .signal("o-6/other", "confirmed", &true)
        .await
        .expect("signal");
    let paid: i64 = t.host().outcome("o-6/other").await.expect("outcome");
    assert_eq!(paid, 1);
    let pending = t
        .host()
        .store()
        .pending_signals(&steadfast::ProcessId::new("o-6").expect("id"))
        .await
        .expect("pending");
    assert!(
        pending.is_empty(),
        "o-6 must not hear of o-6/other: {pending:?}"
    );
    // The real child still reaches it.
    t.host()
        .signal("o-6/payment", "confirmed", &true)
        .await
        .expect("signal");
    let out: String = t.host().outcome("o-6").await.expect("outcome");
    assert_eq!(out, "paid 5");
}

/// Generation 0 waits for "go" only; generation 1 waits for "carried".
#[steadfast::process]
async fn relay(p: Process, round: u32) -> Result<String, StepFailed> {
    if round == 0 {
        let () = p.wait("go").await;
        return p.continue_as_new(&1u32).await;
    }
    let carried: String = p.wait("carried").await;
    Ok(carried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_queued_before_continue_as_new_reaches_the_next_generation() {
    let t = TestHost::start(|b| b.register("relay", relay)).await;
    t.host().spawn("relay", "r", &0u32).await.expect("spawn");
    settled(&t, "r", Status::Suspended).await;
    // Sent while generation 0 runs and waits for something else: pending.
    t.host()
        .signal("r", "carried", &"sent to generation 0")
        .await
        .expect("signal");
    t.host().signal("r", "go", &()).await.expect("signal");
    // Generation 1 finds the signal waiting: it completes with no further
    // signal (had continue-as-new dropped it, it would suspend instead).
    let record = loop_until_settled_in(&t, "r", 1).await;
    assert_eq!(record.status, Status::Completed, "{record:?}");
    let out: String = t.host().outcome("r").await.expect("outcome");
    assert_eq!(out, "sent to generation 0");
    assert_eq!(t.steps("r").await, ["carried"]);
}

/// Waits until process `id` is in `generation` and not running.
async fn loop_until_settled_in(
    t: &TestHost,
    id: &str,
    generation: u32,
) -> steadfast::ProcessRecord {
    for _ in 0..2000 {
        let record = t.status(id).await;
        if record.generation == generation && record.status != Status::Running {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{id} never settled in generation {generation}");
}
