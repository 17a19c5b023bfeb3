//! Published state: a running process publishes values; readers get the
//! latest from the store, even with no worker running; replays publish
//! nothing twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use steadfast::{EntryKind, Error, Host, Process, SqliteStore, Status, StepError, StepFailed};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    done: u32,
    of: u32,
}

#[steadfast::process]
async fn import(p: Process, rows: u32) -> Result<u32, StepFailed> {
    p.publish_state("phase", "importing").await;
    for row in 0..rows {
        p.scope(row)
            .step("imported", || async { Ok::<_, StepError>(()) })
            .await?;
        p.publish_state(
            "progress",
            &Progress {
                done: row + 1,
                of: rows,
            },
        )
        .await;
    }
    p.publish_state("phase", "waiting for approval").await;
    let () = p.wait("approved").await;
    Ok(rows)
}

async fn worker(db: &std::path::Path) -> Host {
    Host::builder(SqliteStore::open(db).await.expect("store"))
        .poll_interval(Duration::from_millis(5))
        .register_kind::<Import>()
        .build()
}

async fn until_suspended(host: &Host, id: &str) {
    for _ in 0..2000 {
        if host.status(id).await.expect("status").status == Status::Suspended {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{id} never suspended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_read_from_the_store_without_a_worker() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("state.db");
    let host = worker(&db).await;
    let handle = host.start::<Import>("i-1", &3).await.expect("start");
    until_suspended(&host, "i-1").await;
    assert_eq!(
        handle.state::<Progress>("progress").await.expect("state"),
        Some(Progress { done: 3, of: 3 })
    );
    let entries = handle.journal().await.expect("journal");
    let published = entries
        .iter()
        .filter(|e| e.kind == EntryKind::State)
        .count();
    assert_eq!(published, 5, "{entries:?}");
    host.shutdown().await;
    drop(host);

    // No worker runs the process now: a client reads its state.
    let client = Host::builder(SqliteStore::open(&db).await.expect("store"))
        .register_kind::<Import>()
        .build_client();
    let handle = client.handle::<Import>("i-1").await.expect("handle");
    assert_eq!(
        handle
            .state::<String>("phase")
            .await
            .expect("phase")
            .as_deref(),
        Some("waiting for approval")
    );
    assert_eq!(handle.state::<u32>("nothing").await.expect("none"), None);
    let states = client.states("i-1").await.expect("states");
    assert_eq!(
        states.keys().collect::<Vec<_>>(),
        ["phase", "progress"],
        "{states:?}"
    );
    // The wrong type is a typed error, not a panic.
    match handle.state::<u32>("progress").await {
        Err(Error::Decode { what, .. }) => assert!(what.contains("progress"), "{what}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    drop(client);

    // A restarted worker replays the publications without adding any.
    let host = worker(&db).await;
    let handle = host.handle::<Import>("i-1").await.expect("handle");
    handle.signal("approved", &()).await.expect("signal");
    assert_eq!(handle.outcome().await.expect("outcome"), 3);
    let entries = handle.journal().await.expect("journal");
    let published = entries
        .iter()
        .filter(|e| e.kind == EntryKind::State)
        .count();
    assert_eq!(published, 5, "{entries:?}");
    // Finished processes keep their last state.
    assert_eq!(
        handle.state::<Progress>("progress").await.expect("state"),
        Some(Progress { done: 3, of: 3 })
    );
}
