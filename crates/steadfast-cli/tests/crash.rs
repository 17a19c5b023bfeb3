//! Kill -9 at random moments loses nothing: a real worker process runs many
//! ten-step processes and is SIGKILLed again and again, then restarted.
//!
//! Asserts that every process finishes, that every journal holds exactly
//! its ten steps with the values the steps returned, and that the closures
//! that ran twice stay within the at-least-once bound (at most one per
//! process in flight at each kill).

#[path = "support/ten_steps.rs"]
mod ten_steps;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use steadfast::{Host, SqliteStore, StoreAdmin};
use steadfast_examples::workload::{self, STEPS};

const PROCESSES: usize = 3000;
const KILLS: usize = 8;
const CONCURRENCY: usize = 50;

fn worker(db: &Path, services: &Path, exit_when_idle: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steadfast"));
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

async fn unfinished(store: &SqliteStore) -> u64 {
    store
        .counts()
        .await
        .expect("counts")
        .by_status
        .iter()
        .filter(|c| !c.status.is_finished())
        .map(|c| c.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
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

    let mut rng = rand::rng();
    let mut kills_mid_run = 0;
    for _ in 0..KILLS {
        if unfinished(&store).await == 0 {
            break;
        }
        let mut child = worker(&db, &services, false);
        tokio::time::sleep(Duration::from_millis(rng.random_range(40..250))).await;
        child.kill().expect("SIGKILL the worker");
        child.wait().expect("reap the worker");
        kills_mid_run += 1;
    }
    assert!(kills_mid_run > 0, "the worker was never killed mid-run");

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
        "{kills_mid_run} kills, {PROCESSES} processes: {reran} closures re-ran, \
         at most {worst} runs of one step"
    );
    assert!(
        worst <= 1 + kills_mid_run,
        "a step ran {worst} times in {kills_mid_run} kills"
    );
    assert!(
        reran <= kills_mid_run * CONCURRENCY,
        "{reran} re-runs exceed one per process in flight at each kill"
    );
}
