//! `Host::outcome` of a process that completes on the waiting host: the
//! run hands its output to the waiters once the store acknowledged the
//! completion, so the waiter does not read it back; a process that ends
//! otherwise (failed, here) is read from the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::core::Backend;
use steadfast::{
    Error, Host, HostBuilder, Process, SqliteStore, StepError, StepFailed, StoreError,
};
use steadfast_conformance::faults::{Call, Faults, FaultyStore};
use tokio::sync::watch;

/// How long a test may wait for an observable event before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Injects nothing; counts the reads of one process's record.
#[derive(Default)]
struct CountGets {
    gets: AtomicUsize,
}

impl Faults for CountGets {
    fn fault(&self, call: &Call<'_>) -> Option<StoreError> {
        if call.operation == "get" {
            self.gets.fetch_add(1, Ordering::SeqCst);
        }
        None
    }
}

/// A host on a SQLite store that counts reads, with kind "gated" (one
/// step that waits for `gate`, then returns 7, or fails when the input
/// says so).
async fn host(
    gate: watch::Receiver<bool>,
) -> (Host, Arc<FaultyStore<CountGets>>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("outcome.db"))
        .await
        .expect("open store");
    let store = Arc::new(FaultyStore::new(Arc::new(sqlite), CountGets::default()));
    let host = HostBuilder::from_arc(Arc::clone(&store) as Arc<dyn Backend>)
        .register("gated", move |p: Process, fail: bool| {
            let gate = gate.clone();
            async move {
                let n = p
                    .step("wait", || async {
                        let mut gate = gate.clone();
                        let _ = gate.wait_for(|open| *open).await;
                        Ok::<_, StepError>(7)
                    })
                    .await?;
                if fail {
                    return Err(StepFailed::new(
                        "wait",
                        &StepError::permanent("told to fail"),
                        1,
                    ));
                }
                Ok::<_, StepFailed>(n)
            }
        })
        .build();
    (host, store, dir)
}

/// Waits until `store` has answered at least `n` reads.
async fn reads(store: &FaultyStore<CountGets>, n: usize) {
    tokio::time::timeout(PATIENCE, async {
        while store.faults().gets.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the waiter reads the process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_on_this_host_is_handed_to_its_waiter() {
    let (open, gate) = watch::channel(false);
    let (host, store, _dir) = host(gate).await;
    host.spawn("gated", "p", &false).await.expect("spawn");
    let waiting = {
        let host = host.clone();
        tokio::spawn(async move { host.outcome::<u32>("p").await })
    };
    // The waiter has read the running process and waits.
    reads(&store, 1).await;
    open.send_replace(true);
    let out = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the outcome arrives")
        .expect("waiter task")
        .expect("outcome");
    assert_eq!(out, 7);
    assert_eq!(
        store.faults().gets.load(Ordering::SeqCst),
        1,
        "the completion's output came from the run, not from a second read"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_read_from_the_store() {
    let (open, gate) = watch::channel(false);
    let (host, store, _dir) = host(gate).await;
    host.spawn("gated", "f", &true).await.expect("spawn");
    let waiting = {
        let host = host.clone();
        tokio::spawn(async move { host.outcome::<u32>("f").await })
    };
    reads(&store, 1).await;
    open.send_replace(true);
    let out = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the outcome arrives")
        .expect("waiter task");
    match out {
        Err(Error::Failed { error, .. }) => assert!(error.contains("told to fail"), "{error}"),
        other => panic!("expected the process's failure, got {other:?}"),
    }
    assert!(
        store.faults().gets.load(Ordering::SeqCst) >= 2,
        "a failure is read back from the store"
    );
    host.shutdown().await;
}
