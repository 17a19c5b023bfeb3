//! On PostgreSQL too, a corrupt row blocks its own process only: every other
//! process runs to completion, the corrupt one is parked as blocked with a
//! reason naming the row and the column, and `list` shows it as an error row.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{SchemaGuard, admin};
use steadfast::{Backend, Host, HostBuilder, ListFilter, Listed, Process, Status};
use steadfast::{StepError, StepFailed};

async fn gate(p: Process, n: u32) -> Result<u32, StepFailed> {
    p.step("started", || async { Ok::<_, StepError>(()) })
        .await?;
    let go: u32 = p.wait("go").await;
    Ok(n + go)
}

const GOOD: [&str; 4] = ["p-1", "p-2", "p-3", "p-4"];

/// Waits (polling the store) until `id` has status `status`; a guard of
/// 30 s fails the test instead of hanging it.
async fn reaches(host: &Host, id: &str, status: Status) -> steadfast::ProcessRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(record) = host.status(id).await
            && record.status == status
        {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never became {status}: {:?}",
            host.status(id).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_row_leaves_every_other_process_running_to_completion() {
    if !common::reachable().await {
        return;
    }
    let guard = SchemaGuard::new();
    let store: Arc<dyn Backend> = Arc::new(guard.store().await);
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("gate", gate)
        .poll_interval(Duration::from_millis(5))
        .build();
    for (n, id) in GOOD
        .iter()
        .chain(&["bad-journal", "bad-status"])
        .enumerate()
    {
        host.spawn("gate", id, &(n as u32)).await.expect("spawn");
    }
    for id in GOOD.iter().chain(&["bad-journal", "bad-status"]) {
        reaches(&host, id, Status::Suspended).await;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET search_path TO \"{}\";
         UPDATE journal SET kind = 'bogus' WHERE process_id = 'bad-journal';
         UPDATE processes SET status = 'bogus' WHERE id = 'bad-status';",
        guard.schema
    )))
    .execute(&mut admin().await)
    .await
    .expect("corrupt");
    host.signal("bad-journal", "go", &1u32)
        .await
        .expect("signal");
    for id in GOOD {
        host.signal(id, "go", &10u32).await.expect("signal");
    }
    for (n, id) in GOOD.iter().enumerate() {
        let out: u32 = tokio::time::timeout(Duration::from_secs(30), host.outcome(id))
            .await
            .unwrap_or_else(|_| panic!("{id} never finished"))
            .expect("outcome");
        assert_eq!(out, n as u32 + 10);
    }
    let parked = reaches(&host, "bad-journal", Status::Blocked).await;
    let reason = parked.error.unwrap_or_default();
    assert!(
        reason.contains("journal") && reason.contains("kind") && reason.contains("bogus"),
        "{reason}"
    );
    let listed = store.list(&ListFilter::default()).await.expect("list");
    let ids: Vec<&str> = listed.iter().map(Listed::id).collect();
    assert_eq!(
        ids,
        ["bad-journal", "bad-status", "p-1", "p-2", "p-3", "p-4"]
    );
    assert!(
        matches!(&listed[1], Listed::Unreadable { error, .. } if error.column == "status"),
        "{:?}",
        listed[1]
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.of(Status::Completed), 4);
    assert_eq!(counts.unreadable, 1);
    host.shutdown().await;
}
