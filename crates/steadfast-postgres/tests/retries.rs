//! The engine on PostgreSQL: a step's durable retry wait is journaled,
//! rescheduled after another failed attempt, and cut short by `retry`.

#![allow(clippy::unwrap_used, reason = "test code")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{SchemaGuard, reachable};
use steadfast::{
    EntryStatus, HostBuilder, Process, ProcessId, RetryPolicy, Status, StepError, StepFailed,
    Store, StoreAdmin,
};

#[derive(Clone, Default)]
struct Mailer {
    up: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
}

async fn welcome(p: Process, (): (), mailer: Mailer) -> Result<u32, StepFailed> {
    p.step("mail sent", || async {
        let n = mailer.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if mailer.up.load(Ordering::SeqCst) {
            Ok(n)
        } else {
            Err(StepError::retryable("mail server unreachable"))
        }
    })
    .retry(
        RetryPolicy::for_duration(Duration::from_secs(86_400))
            .initial_delay(Duration::from_secs(3_600))
            .jitter(0.0),
    )
    .await
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
async fn a_durable_retry_wait_is_rescheduled_and_cut_short_on_postgres() {
    if !reachable().await {
        return;
    }
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    let mailer = Mailer::default();
    let m = mailer.clone();
    let host = HostBuilder::new(store.clone())
        .register("welcome", move |p, input| welcome(p, input, m.clone()))
        .poll_interval(Duration::from_millis(20))
        .build();
    let id = ProcessId::new("pg-retry").unwrap();
    host.spawn("welcome", id.as_str(), &()).await.unwrap();
    let waiting = async |attempts: u32| {
        let record = store.get(&id).await.unwrap();
        let journal = store.journal(&id).await.unwrap();
        record.status == Status::Suspended
            && journal.len() == 1
            && journal[0].status == EntryStatus::Scheduled
            && journal[0].attempts == attempts
    };
    until("the first durable wait", async || waiting(1).await).await;
    // Still down: the second attempt fails and the wait is rescheduled.
    host.retry(id.as_str()).await.unwrap();
    until("the second durable wait", async || waiting(2).await).await;
    mailer.up.store(true, Ordering::SeqCst);
    host.retry(id.as_str()).await.unwrap();
    let n: u32 = host.outcome(id.as_str()).await.unwrap();
    assert_eq!(n, 3);
    let journal = store.journal(&id).await.unwrap();
    assert_eq!(
        (journal.len(), journal[0].status, journal[0].attempts),
        (1, EntryStatus::Completed, 3)
    );
    host.shutdown().await;
}
