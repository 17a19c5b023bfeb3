//! The engine on PostgreSQL: a signal whose payload does not fit the wait
//! is rejected (kept with the reason) and the wait goes on, also across a
//! host restart.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use std::time::Duration;

use common::{SchemaGuard, reachable};
use steadfast::{
    HostBuilder, Process, ProcessId, Signal, SignalState, Status, StepFailed, Store, StoreAdmin,
};

#[derive(serde::Serialize, serde::Deserialize)]
struct Verification {
    code: String,
}

const VERIFIED: Signal<Verification> = Signal::new("email verified");

async fn onboarding(p: Process, (): ()) -> Result<String, StepFailed> {
    let first = p.wait(VERIFIED).await;
    let again: u32 = p.wait("again").await;
    Ok(format!("{} {again}", first.code))
}

fn host(store: &steadfast::PostgresStore) -> steadfast::Host {
    HostBuilder::new(store.clone())
        .register("onboarding", onboarding)
        .poll_interval(Duration::from_millis(20))
        .build()
}

/// Polls until `probe` holds, failing after 20 s.
async fn until(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    for _ in 0..2000 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_signal_is_rejected_on_postgres_and_replay_keeps_the_good_one() {
    if !reachable().await {
        return;
    }
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    let id = ProcessId::new("pg-1").unwrap();
    let suspended = async || {
        let record = store.get(&id).await.unwrap();
        assert_ne!(record.status, Status::Blocked, "{record:?}");
        record.status == Status::Suspended
    };

    let first = host(&store);
    first.spawn("onboarding", "pg-1", &()).await.unwrap();
    until("suspended", suspended).await;
    first
        .signal_json("pg-1", "email verified", "null")
        .await
        .unwrap();
    until("rejected", async || {
        store
            .signals(&id)
            .await
            .unwrap()
            .first()
            .is_some_and(|s| s.state == SignalState::Rejected)
    })
    .await;
    until("suspended after the rejection", suspended).await;
    first
        .signal(
            "pg-1",
            VERIFIED,
            &Verification {
                code: "ok".to_owned(),
            },
        )
        .await
        .unwrap();
    until("the good signal consumed", async || {
        let signals = store.signals(&id).await.unwrap();
        signals.len() == 2 && signals[1].state == SignalState::Consumed
    })
    .await;
    until("waiting again", suspended).await;
    first.shutdown().await;

    // A new host replays the first wait from the journal.
    let second = host(&store);
    second.signal("pg-1", "again", &3).await.unwrap();
    let out: String = second.outcome("pg-1").await.unwrap();
    assert_eq!(out, "ok 3");
    let signals = store.signals(&id).await.unwrap();
    assert_eq!(signals[0].state, SignalState::Rejected);
    assert!(
        signals[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("Verification")),
        "{signals:?}"
    );
    second.shutdown().await;
    drop(store);
    drop(guard);
}
