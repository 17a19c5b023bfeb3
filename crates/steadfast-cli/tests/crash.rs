//! Kill -9 mid-run loses nothing: a real worker process runs many ten-step
//! processes and is SIGKILLed again and again (each time after a given
//! number of completions, with processes in flight), then restarted.
//!
//! Asserts that every process finishes, that every journal holds exactly
//! its ten steps with the values the steps returned, and that the closures
//! that ran twice stay within the at-least-once bound (at most one per
//! process in flight at each kill).

#[path = "support/ten_steps.rs"]
mod ten_steps;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use steadfast::{Host, ListFilter, SqliteStore, Status, StoreAdmin};
use steadfast_examples::workload::{self, STEPS};

const PROCESSES: usize = 3000;
const KILLS: usize = 8;
const CONCURRENCY: usize = 50;

fn worker(db: &Path, services: &Path, exit_when_idle: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steadfast"));
    cmd.env("STEADFAST_EXAMPLES", "1");
    cmd.arg("--db")
        .arg(db)
        .arg("worker")
        .arg("--services")
        .arg(services)
        .arg("--concurrency")
        .arg(CONCURRENCY.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if exit_when_idle {
        cmd.arg("--exit-when-idle");
    }
    cmd.spawn().expect("start the worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("crash.db");
    let services = dir.path().join("services");
    let store = SqliteStore::open(&db).await.expect("store");
    let client = workload::register(Host::builder(store.clone()), None).build_client();
    for n in 0..PROCESSES {
        client
            .spawn(workload::KIND, &format!("crash-{n:04}"), &())
            .await
            .expect("spawn");
    }

    // Kill each worker after the store shows a given number of completions,
    // so every kill lands on a worker that is running processes; the
    // processes it held (still owned by it after the kill) are the ones in
    // flight, the only ones whose current step may run again.
    let mut in_flight_at_kills = Vec::new();
    let mut dead_owners: HashSet<String> = HashSet::new();
    for kill in 1..=KILLS {
        let target = (kill * PROCESSES / (KILLS + 2)) as u64;
        let mut child = worker(&db, &services, false);
        let waited = Instant::now();
        while completed(&store).await < target {
            assert!(
                waited.elapsed() < Duration::from_secs(120),
                "the worker did not reach {target} completions"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().expect("SIGKILL the worker");
        child.wait().expect("reap the worker");
        let held = held_by_dead_worker(&store, &mut dead_owners).await;
        assert!(
            held > 0,
            "kill {kill} (after {target} completions) hit a worker with nothing in flight"
        );
        assert!(
            completed(&store).await < PROCESSES as u64,
            "kill {kill} came after the last completion"
        );
        in_flight_at_kills.push(held);
    }
    let kills = in_flight_at_kills.len();
    let in_flight: usize = in_flight_at_kills.iter().sum();

    let started = Instant::now();
    let mut last = worker(&db, &services, true);
    let status = loop {
        if let Some(status) = last.try_wait().expect("poll the worker") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the final worker did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "the final worker failed: {status}");

    // Every process finished, with exactly its ten journaled steps.
    ten_steps::assert_journals_intact(&store, PROCESSES).await;

    // Closures ran at least once; re-runs stay within the at-least-once bound.
    let (ran, reran, worst) = ten_steps::closure_runs(&services);
    assert_eq!(ran, PROCESSES * STEPS, "every step's closure ran");
    eprintln!(
        "{kills} kills with {in_flight_at_kills:?} processes in flight, {PROCESSES} processes: \
         {reran} closures re-ran, at most {worst} runs of one step"
    );
    assert!(
        worst <= 1 + kills,
        "a step ran {worst} times in {kills} kills"
    );
    assert!(
        reran <= in_flight,
        "{reran} re-runs exceed one per process in flight at each kill ({in_flight})"
    );
}

async fn completed(store: &SqliteStore) -> u64 {
    store
        .counts()
        .await
        .expect("counts")
        .by_status
        .iter()
        .filter(|c| c.status == Status::Completed)
        .map(|c| c.count)
        .sum()
}

/// How many processes the worker just killed still holds: running, owned
/// by a host not seen dead before (which is then remembered).
async fn held_by_dead_worker(store: &SqliteStore, dead: &mut HashSet<String>) -> usize {
    let running = store
        .list(&ListFilter {
            status: Some(Status::Running),
            limit: PROCESSES + 1,
            ..ListFilter::default()
        })
        .await
        .expect("list");
    let owners: Vec<String> = running
        .into_iter()
        .filter_map(|listed| listed.into_record()?.owner)
        .filter(|o| !dead.contains(o))
        .collect();
    let held = owners.len();
    dead.extend(owners);
    held
}
