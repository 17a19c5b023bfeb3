//! Lost connections mid-run on PostgreSQL: the store's sessions (writer,
//! pool, listener) are terminated by the server (`pg_terminate_backend`)
//! several times while processes journal steps. The writes in flight fail
//! with retryable errors, the engine retries them once the store has
//! reconnected, and no step's closure runs twice.
//!
//! Uses a fresh schema of its own; skipped with a notice when the server is
//! unreachable, unless `STEADFAST_REQUIRE_PG=1`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SchemaGuard, admin, url};
use steadfast::{HostBuilder, Process, Status, StepError, StepFailed};
use steadfast_postgres::PostgresStore;

/// Processes run at once.
const PROCESSES: usize = 40;
/// Steps per process.
const STEPS: usize = 15;
/// How many times the store's sessions are terminated mid-run.
const KILLS: usize = 3;
/// How long anything may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(90);

type Tally = Arc<Mutex<HashMap<(String, usize), usize>>>;

fn executions(tally: &Tally) -> usize {
    tally.lock().expect("tally").values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_sessions_mid_run_rerun_no_step() {
    if !common::reachable().await {
        return;
    }
    let guard = SchemaGuard::new();
    let app = guard.schema.clone();
    let store = PostgresStore::connect_with(
        &format!("{}?application_name={app}", url()),
        guard.options(),
    )
    .await
    .expect("connect");
    let tally: Tally = Arc::default();
    let counted = Arc::clone(&tally);
    let host = HostBuilder::new(store)
        .lease(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(50))
        .register("steps", move |p: Process, (): ()| {
            let tally = Arc::clone(&counted);
            async move {
                let id = p.id().to_string();
                let mut sum = 0;
                for i in 0..STEPS {
                    sum += p
                        .step(format!("step {i}"), || async {
                            *tally
                                .lock()
                                .expect("tally")
                                .entry((id.clone(), i))
                                .or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, StepError>(i)
                        })
                        .await?;
                }
                Ok::<_, StepFailed>(sum)
            }
        })
        .build();
    let ids: Vec<String> = (0..PROCESSES).map(|i| format!("p-{i:02}")).collect();
    for id in &ids {
        host.spawn("steps", id, &()).await.expect("spawn");
    }

    let total = PROCESSES * STEPS;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut killed_sessions = 0;
    for kill in 1..=KILLS {
        // Kill while steps are being journaled: after a share of the work.
        let mark = total * kill / (KILLS + 1);
        while executions(&tally) < mark {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no progress after kill {}",
                kill - 1
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&app)
        .fetch_all(&mut admin().await)
        .await
        .expect("terminate the store's sessions");
        killed_sessions += killed.len();
    }
    assert!(killed_sessions >= KILLS, "sessions were terminated");

    tokio::time::timeout(PATIENCE, async {
        for id in &ids {
            let sum: usize = host.outcome(id).await.expect("outcome");
            assert_eq!(sum, (0..STEPS).sum::<usize>(), "{id}");
        }
    })
    .await
    .expect("every process completes after the store reconnects");
    let counts = host.store().counts().await.expect("counts");
    assert!(
        counts.unreadable == 0
            && counts
                .by_status
                .iter()
                .all(|c| c.status == Status::Completed || c.count == 0),
        "every process completed: {counts:?}"
    );
    let twice: Vec<_> = tally
        .lock()
        .expect("tally")
        .iter()
        .filter(|(_, n)| **n != 1)
        .map(|((id, step), n)| format!("{id} step {step}: {n} times"))
        .collect();
    assert!(
        twice.is_empty(),
        "a lost connection re-ran step closures whose outcome was in hand: {twice:?}"
    );
    assert_eq!(executions(&tally), total, "every step ran exactly once");
    eprintln!("{killed_sessions} sessions terminated in {KILLS} rounds; no step ran twice");
    host.shutdown().await;
}
