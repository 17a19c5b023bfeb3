//! Scoped names: `p.scope(i)` prefixes every name given through the handle,
//! so loops need no string building; scopes nest; waits keep their signal
//! names; children of a scope get ids of their own.

use std::sync::{Arc, Mutex};

use steadfast::testing::TestHost;
use steadfast::{Process, Status, StepError, StepFailed};

#[derive(Clone, Default)]
struct Keys(Arc<Mutex<Vec<String>>>);

#[steadfast::process]
async fn batch(p: Process, items: Vec<String>, keys: Keys) -> Result<Vec<String>, StepFailed> {
    let mut approvals = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = p.scope(i);
        keys.0
            .lock()
            .expect("lock")
            .push(p.idempotency_key("packed"));
        p.step("packed", || async { Ok::<_, StepError>(item.len()) })
            .await?;
        let line = p.scope("line");
        line.step("labelled", || async { Ok::<_, StepError>(()) })
            .await?;
        let approval: String = p.wait("approved").name("approval").await;
        approvals.push(approval);
    }
    Ok(approvals)
}

#[steadfast::process]
async fn leaf(_p: Process, n: u32) -> Result<u32, String> {
    Ok(n * 10)
}

#[steadfast::process]
async fn tree(p: Process, (): ()) -> Result<u32, StepFailed> {
    let mut sum = 0;
    for i in 0..2u32 {
        let p = p.scope(format!("round {i}"));
        let n: u32 = p.child("leaf", "leaf", &i).await.map_err(|e| StepFailed {
            step: "leaf".into(),
            message: e.to_string(),
            attempts: 1,
            permanent: true,
            timed_out: false,
            ..StepFailed::default()
        })?;
        sum += n;
    }
    Ok(sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_in_a_loop_are_scoped() {
    let keys = Keys::default();
    let k = keys.clone();
    let t = TestHost::start(move |b| b.provide(k.clone()).register_kind::<Batch>()).await;
    let handle = t
        .host()
        .start::<Batch>("b-1", &vec!["tea".to_owned(), "cake".to_owned()])
        .await
        .expect("start");
    // Both rounds wait for the same signal name; each wait takes one.
    handle.signal("approved", &"yes").await.expect("first");
    // The second signal goes once the first round's wait has taken the first.
    for _ in 0..2000 {
        if t.steps("b-1").await.contains(&"0/approval".to_owned()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    handle
        .signal("approved", &"also yes")
        .await
        .expect("second");
    assert_eq!(
        handle.outcome().await.expect("outcome"),
        ["yes", "also yes"]
    );
    assert_eq!(
        t.steps("b-1").await,
        [
            "0/packed",
            "0/line/labelled",
            "0/approval",
            "1/packed",
            "1/line/labelled",
            "1/approval"
        ]
    );
    // (Replays run the function again, so a key may be recorded more than once.)
    let mut seen = keys.0.lock().expect("lock").clone();
    seen.dedup();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["b-1/0/packed", "b-1/1/packed"]);
    // A replay finds every scoped name again.
    t.crash_and_restart().await;
    assert_eq!(t.status("b-1").await.status, Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_scope_get_their_own_ids() {
    let t = TestHost::start(|b| b.register_kind::<Leaf>().register_kind::<Tree>()).await;
    let handle = t.host().start::<Tree>("t-1", &()).await.expect("start");
    assert_eq!(handle.outcome().await.expect("outcome"), 10);
    assert_eq!(t.status("t-1/round 0:leaf").await.status, Status::Completed);
    assert_eq!(t.status("t-1/round 1:leaf").await.status, Status::Completed);
    assert_eq!(
        t.steps("t-1").await,
        [
            "round 0/leaf: spawned",
            "round 0/leaf",
            "round 1/leaf: spawned",
            "round 1/leaf"
        ]
    );
}
