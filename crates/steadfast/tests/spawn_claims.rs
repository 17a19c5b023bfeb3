//! A host that spawns a process it can run claims it in the spawn's own
//! write ([`Store::spawn_and_claim`]) and starts its run at once, with no
//! claim afterwards; without a free run slot, or on a client host, the
//! spawn leaves the process to a dispatcher's claim.
//!
//! The SQLite store here fails every `claim` call until it is healed, so a
//! process runs before then only if its spawn claimed it.
//!
//! [`Store::spawn_and_claim`]: steadfast::core::Store::spawn_and_claim

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::core::{Backend, EventKind, ProcessId, ProcessRecord, StoreAdmin};
use steadfast::{
    Host, HostBuilder, Process, SqliteStore, Status, StepError, StepFailed, StoreError,
};
use steadfast_conformance::faults::{Call, Faults, FaultyStore, injected_error};
use tokio::sync::watch;

/// How long a test may wait for an observable event before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Fails every claim until healed, counting the claims it failed.
#[derive(Default)]
struct NoClaims {
    healed: AtomicBool,
    failed: AtomicUsize,
}

impl Faults for NoClaims {
    fn fault(&self, call: &Call<'_>) -> Option<StoreError> {
        if call.operation != "claim" || self.healed.load(Ordering::SeqCst) {
            return None;
        }
        self.failed.fetch_add(1, Ordering::SeqCst);
        Some(injected_error("claim", true))
    }
}

/// Waits until the host's dispatcher has failed six claims in a row: it
/// then backs off for 1.6 s (50 ms, doubled after each failure) before it
/// claims again, so the dispatcher holds no run slots (it takes them only
/// for the moment of a claim) while the test spawns.
async fn dispatcher_backed_off(store: &FaultyStore<NoClaims>) {
    tokio::time::timeout(PATIENCE, async {
        while store.faults().failed.load(Ordering::SeqCst) < 6 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the dispatcher tries to claim");
}

/// A SQLite store that refuses claims, the policy to heal it, and the
/// directory that holds it.
async fn store() -> (Arc<FaultyStore<NoClaims>>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("claims.db"))
        .await
        .expect("open store");
    let store = FaultyStore::new(Arc::new(sqlite), NoClaims::default());
    (Arc::new(store), dir)
}

/// A host on `store` with kind "gated": one step that waits until `gate`
/// opens (and says it started on `started`), returning 7.
fn host(
    store: Arc<dyn Backend>,
    slots: usize,
    gate: watch::Receiver<bool>,
    started: watch::Sender<usize>,
) -> HostBuilder {
    let started = Arc::new(started);
    HostBuilder::from_arc(store)
        .max_concurrency(slots)
        .poll_interval(Duration::from_millis(20))
        .register("gated", move |p: Process, (): ()| {
            let gate = gate.clone();
            let started = Arc::clone(&started);
            async move {
                let n = p
                    .step("wait", || async {
                        started.send_modify(|n| *n += 1);
                        let mut gate = gate.clone();
                        let _ = gate.wait_for(|open| *open).await;
                        Ok::<_, StepError>(7)
                    })
                    .await?;
                Ok::<_, StepFailed>(n)
            }
        })
}

/// The record of `id`.
async fn record(host: &Host, id: &str) -> ProcessRecord {
    host.status(id).await.expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawning_host_runs_its_process_without_a_claim() {
    let (store, _dir) = store().await;
    let (_open, gate) = watch::channel(true);
    let (started, _) = watch::channel(0);
    let host = host(Arc::clone(&store) as Arc<dyn Backend>, 4, gate, started).build();
    dispatcher_backed_off(&store).await;

    host.spawn("gated", "p", &()).await.expect("spawn");
    let out: u32 = tokio::time::timeout(PATIENCE, host.outcome("p"))
        .await
        .expect("the process runs though every claim fails")
        .expect("outcome");
    assert_eq!(out, 7);
    let history: Vec<_> = store
        .events(&ProcessId::new("p").expect("id"))
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == EventKind::Claimed)
        .map(|e| (e.host, e.epoch))
        .collect();
    assert_eq!(
        history,
        [(Some(host.id().as_str().to_owned()), 1)],
        "claimed once, by the spawning host, at its spawn"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_free_run_slot_the_spawn_leaves_the_claim_to_the_dispatcher() {
    let (store, _dir) = store().await;
    let (open, gate) = watch::channel(false);
    let (started, mut started_rx) = watch::channel(0);
    let host = host(Arc::clone(&store) as Arc<dyn Backend>, 1, gate, started).build();
    dispatcher_backed_off(&store).await;

    // "a" takes the only run slot and holds it at its gate.
    host.spawn("gated", "a", &()).await.expect("spawn a");
    tokio::time::timeout(PATIENCE, started_rx.wait_for(|n| *n == 1))
        .await
        .expect("a's step starts")
        .expect("started");
    // "b" finds no free slot: stored unclaimed, and no claim can take it.
    host.spawn("gated", "b", &()).await.expect("spawn b");
    let b = record(&host, "b").await;
    assert_eq!(
        (b.status, b.owner.as_deref(), b.epoch),
        (Status::Running, None, 0),
        "b is stored runnable and unclaimed"
    );

    // With "a" done and claims still failing, "b" stays unclaimed ...
    open.send_replace(true);
    let a: u32 = tokio::time::timeout(PATIENCE, host.outcome("a"))
        .await
        .expect("a completes")
        .expect("outcome a");
    assert_eq!(a, 7);
    let b = record(&host, "b").await;
    assert_eq!((b.owner.as_deref(), b.epoch), (None, 0), "b is not claimed");
    // ... until the dispatcher's claims work again.
    store.faults().healed.store(true, Ordering::SeqCst);
    let b: u32 = tokio::time::timeout(PATIENCE, host.outcome("b"))
        .await
        .expect("the dispatcher claims b once claims work")
        .expect("outcome b");
    assert_eq!(b, 7);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_host_claims_nothing_it_spawns() {
    let (store, _dir) = store().await;
    let (_open, gate) = watch::channel(true);
    let (started, _) = watch::channel(0);
    let client = host(Arc::clone(&store) as Arc<dyn Backend>, 4, gate, started).build_client();

    client.spawn("gated", "p", &()).await.expect("spawn");
    let p = record(&client, "p").await;
    assert_eq!(
        (p.status, p.owner.as_deref(), p.epoch),
        (Status::Running, None, 0),
        "a client host stores the process unclaimed"
    );
    client.shutdown().await;
}

/// Spawns that claim their processes race with the dispatcher's claims for
/// the same run slots: a slot the dispatcher counted free when it claimed
/// may be taken by a spawn before its claim returns. Every process claimed
/// must still get a slot (the dispatcher takes them before it claims);
/// otherwise one waits for its lease to run out (here ten minutes, far
/// beyond the test's patience).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawns_and_claims_never_leave_a_claimed_process_without_a_slot() {
    const TASKS: usize = 16;
    const EACH: usize = 25;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("race.db"))
        .await
        .expect("open store");
    let host = Host::builder(store)
        .max_concurrency(4)
        .lease(Duration::from_secs(600))
        .register("quick", |p: Process, n: usize| async move {
            let n = p
                .step("double", || async move { Ok::<_, StepError>(2 * n) })
                .await?;
            Ok::<_, StepFailed>(n)
        })
        .build();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let host = host.clone();
        tasks.spawn(async move {
            let ids: Vec<(String, usize)> =
                (0..EACH).map(|i| (format!("q-{t:02}-{i:02}"), i)).collect();
            for (id, n) in &ids {
                host.spawn("quick", id, n).await.expect("spawn");
            }
            for (id, n) in &ids {
                let out: usize = host.outcome(id).await.expect("outcome");
                assert_eq!(out, 2 * n, "{id}");
            }
        });
    }
    tokio::time::timeout(PATIENCE, async {
        while let Some(done) = tasks.join_next().await {
            done.expect("spawning task");
        }
    })
    .await
    .expect("every process completes without waiting for a lease to run out");
    host.shutdown().await;
}
