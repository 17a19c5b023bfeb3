//! Real store faults on the SQLite store: a database held busy by another
//! connection past the busy timeout, a disk that fills up mid-run and is
//! freed again, and a run given up after a store error whose hand-back
//! fails. Each must leave every process finished without a restart of the
//! host, and must not run a step's closure again unless its run was really
//! given up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/metrics.rs"]
mod metrics_support;

use steadfast::core::{Backend, ProcessId};
use steadfast::{
    Host, HostBuilder, Process, SqliteOptions, SqliteStore, Status, StepError, StepFailed,
    StoreError, rusqlite,
};
use steadfast_conformance::faults::{Call, Faults, FaultyStore, injected_error};
use tokio::sync::watch;

/// How many processes each fault test runs at once.
const PROCESSES: usize = 300;
/// How long a test may wait for an observable event before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Closure executions per (process, step) and runs of the function per
/// process.
#[derive(Default)]
struct Tally {
    steps: Mutex<HashMap<(String, &'static str), usize>>,
    runs: Mutex<HashMap<String, usize>>,
}

impl Tally {
    fn step(&self, id: &str, step: &'static str) {
        *self
            .steps
            .lock()
            .expect("tally")
            .entry((id.to_owned(), step))
            .or_default() += 1;
    }

    fn run(&self, id: &str) {
        *self
            .runs
            .lock()
            .expect("tally")
            .entry(id.to_owned())
            .or_default() += 1;
    }

    fn executions(&self, step: &'static str) -> usize {
        self.steps
            .lock()
            .expect("tally")
            .iter()
            .filter(|((_, s), _)| *s == step)
            .map(|(_, n)| *n)
            .sum()
    }

    fn runs_of(&self, id: &str) -> usize {
        self.runs
            .lock()
            .expect("tally")
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    fn steps_of(&self, id: &str) -> Vec<(&'static str, usize)> {
        let mut steps: Vec<_> = self
            .steps
            .lock()
            .expect("tally")
            .iter()
            .filter(|((p, _), _)| p == id)
            .map(|((_, s), n)| (*s, *n))
            .collect();
        steps.sort_unstable();
        steps
    }
}

/// Registers kind "work": step "a", step "b" (whose closure waits for the
/// gate to open) and step "c", each returning `size` bytes.
fn register(b: HostBuilder, tally: Arc<Tally>, gate: watch::Receiver<bool>) -> HostBuilder {
    metrics_support::install();
    b.register("work", move |p: Process, size: usize| {
        let tally = Arc::clone(&tally);
        let gate = gate.clone();
        async move {
            let id = p.id().to_string();
            tally.run(&id);
            let a = p
                .step("a", || async {
                    tally.step(&id, "a");
                    Ok::<_, StepError>("a".repeat(size))
                })
                .await?;
            let b = p
                .step("b", || async {
                    tally.step(&id, "b");
                    let mut gate = gate.clone();
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, StepError>("b".repeat(size))
                })
                .await?;
            let c = p
                .step("c", || async {
                    tally.step(&id, "c");
                    Ok::<_, StepError>("c".repeat(size))
                })
                .await?;
            Ok::<_, StepFailed>(a.len() + b.len() + c.len())
        }
    })
}

/// The value of counter `name` in the host's metrics (every kind's
/// series summed).
fn metric(host: &Host, name: &str) -> u64 {
    metrics_support::sum(host.id().as_str(), name, &[]) as u64
}

/// Waits (polling) until `done` holds, failing the test with `what` after
/// [`PATIENCE`].
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Spawns `n` processes of kind "work" and waits until each has journaled
/// step "a" and started step "b" (held at the gate).
async fn spawn_and_reach_the_gate(
    host: &Host,
    tally: &Tally,
    size: usize,
    n: usize,
) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("w-{i:03}")).collect();
    for id in &ids {
        host.spawn("work", id, &size).await.expect("spawn");
    }
    until("every process started step b", || {
        tally.executions("b") >= n
    })
    .await;
    ids
}

/// Waits until every process completed, and checks that no step's closure
/// ran more often than its process's function ran (a closure runs again
/// only in a new run) and that every extra run follows a run the host gave
/// up. Returns how many runs were given up.
async fn assert_all_completed(host: &Host, tally: &Tally, ids: &[String], size: usize) -> u64 {
    tokio::time::timeout(PATIENCE, async {
        for id in ids {
            let out: usize = host.outcome(id).await.expect("outcome");
            assert_eq!(out, 3 * size, "{id}: output");
        }
    })
    .await
    .expect("every process completes once the fault is gone, without a restart");
    let counts = host.store().counts().await.expect("counts");
    assert_eq!(
        counts
            .by_status
            .iter()
            .map(|c| (c.status, c.count))
            .collect::<Vec<_>>(),
        [(Status::Completed, ids.len() as u64)],
        "no process left running (leased) or blocked"
    );
    let given_up = metric(host, "steadfast_runs_given_up_total");
    let mut extra_runs = 0;
    for id in ids {
        let runs = tally.runs_of(id);
        extra_runs += runs - 1;
        for (step, n) in tally.steps_of(id) {
            assert!(
                n <= runs,
                "{id}: step {step} ran {n} times in {runs} run(s): a closure whose outcome was in \
                 hand ran again"
            );
        }
    }
    assert_eq!(
        extra_runs as u64, given_up,
        "every extra run follows a run the host gave up"
    );
    given_up
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_busy_past_the_busy_timeout_reruns_no_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("busy.db");
    let options = SqliteOptions::default().busy_timeout(Duration::from_millis(200));
    let store = SqliteStore::open_with(&path, options)
        .await
        .expect("open store");
    let tally = Arc::new(Tally::default());
    let (open_gate, gate) = watch::channel(false);
    let host = register(Host::builder(store), Arc::clone(&tally), gate)
        .poll_interval(Duration::from_millis(20))
        .build();
    let ids = spawn_and_reach_the_gate(&host, &tally, 16, PROCESSES).await;

    // Another connection takes the write lock and holds it well past the
    // store's busy timeout while every process tries to journal step b.
    let holder = rusqlite::Connection::open(&path).expect("second connection");
    holder
        .busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    open_gate.send_replace(true);
    until(
        "every process's append of b was refused at least once",
        || metric(&host, "steadfast_store_write_retries_total") >= PROCESSES as u64,
    )
    .await;
    holder.execute_batch("ROLLBACK").expect("release the lock");

    let given_up = assert_all_completed(&host, &tally, &ids, 16).await;
    assert_eq!(
        given_up, 0,
        "a busy store is waited out within the lease: no run is given up"
    );
    for step in ["a", "b", "c"] {
        assert_eq!(
            tally.executions(step),
            PROCESSES,
            "step {step} ran exactly once per process"
        );
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_busy_past_the_lease_gives_the_runs_up_and_they_are_replayed() {
    const N: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("busy-long.db");
    let options = SqliteOptions::default().busy_timeout(Duration::from_millis(50));
    let store = SqliteStore::open_with(&path, options)
        .await
        .expect("open store");
    let tally = Arc::new(Tally::default());
    let (open_gate, gate) = watch::channel(false);
    let host = register(Host::builder(store), Arc::clone(&tally), gate)
        .lease(Duration::from_millis(500))
        .poll_interval(Duration::from_millis(20))
        .build();
    let ids = spawn_and_reach_the_gate(&host, &tally, 16, N).await;

    // The store stays busy until every run has given up: their leases ran
    // out (renewals fail too), so retrying longer could race another host.
    let holder = rusqlite::Connection::open(&path).expect("second connection");
    holder
        .busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    open_gate.send_replace(true);
    until("every run gave up as its lease ran out", || {
        metric(&host, "steadfast_runs_given_up_total") >= N as u64
    })
    .await;
    holder.execute_batch("ROLLBACK").expect("release the lock");

    // Each process is claimed again by this host (no restart) and replayed:
    // step a from the journal, step b once more (its outcome never reached
    // the store), step c once.
    let given_up = assert_all_completed(&host, &tally, &ids, 16).await;
    assert_eq!(given_up, N as u64);
    for id in &ids {
        assert_eq!(tally.runs_of(id), 2, "{id}: one run given up, one replay");
        assert_eq!(
            tally.steps_of(id),
            [("a", 1), ("b", 2), ("c", 1)],
            "{id}: only the step whose run was given up ran again"
        );
    }
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_step_on_a_busy_database_is_retried_in_the_same_run() {
    const N: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("busy-transaction.db");
    let options = SqliteOptions::default().busy_timeout(Duration::from_millis(100));
    let store = SqliteStore::open_with(&path, options)
        .await
        .expect("open store");
    let tally = Arc::new(Tally::default());
    let counted = Arc::clone(&tally);
    let (open_gate, gate) = watch::channel(false);
    metrics_support::install();
    let host = Host::builder(store)
        .poll_interval(Duration::from_millis(20))
        .register("ledger", move |p: Process<SqliteStore>, amount: i64| {
            let tally = Arc::clone(&counted);
            let mut gate = gate.clone();
            async move {
                let id = p.id().to_string();
                tally.run(&id);
                // Not durable: holds the run loaded until the test opens it.
                let _ = gate.wait_for(|open| *open).await;
                let booked = p
                    .transaction("booked", move |conn| {
                        conn.execute("INSERT INTO ledger VALUES (?1, ?2)", (&id, amount))
                            .map_err(StepError::retryable)?;
                        Ok(amount)
                    })
                    .await?;
                Ok::<_, StepFailed>(booked)
            }
        })
        .build();
    let setup = rusqlite::Connection::open(&path).expect("second connection");
    setup
        .busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    setup
        .execute_batch("CREATE TABLE ledger (process TEXT, amount INTEGER)")
        .expect("the application's table");
    let ids: Vec<String> = (0..N).map(|i| format!("l-{i:02}")).collect();
    for id in &ids {
        host.spawn("ledger", id, &7i64).await.expect("spawn");
    }
    until("every run is loaded", || {
        ids.iter().all(|id| tally.runs_of(id) == 1)
    })
    .await;
    setup
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    open_gate.send_replace(true);
    until("every transaction was refused at least once", || {
        metric(&host, "steadfast_store_write_retries_total") >= N as u64
    })
    .await;
    setup.execute_batch("ROLLBACK").expect("release the lock");

    for id in &ids {
        let booked: i64 = tokio::time::timeout(PATIENCE, host.outcome(id))
            .await
            .expect("completes once the lock is released")
            .expect("outcome");
        assert_eq!(booked, 7);
        assert_eq!(tally.runs_of(id), 1, "{id}: retried in the same run");
    }
    let rows: i64 = setup
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, N as i64, "each transaction committed exactly once");
    assert_eq!(metric(&host, "steadfast_runs_given_up_total"), 0);
    host.shutdown().await;
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "32m"). `None` (with a notice) when
    /// the test cannot mount one here and is allowed to skip.
    fn mount(size: &str) -> Option<Tmpfs> {
        let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
            || std::env::var("STEADFAST_REQUIRE_ROOT_FS").is_ok_and(|v| v == "1");
        let skip = |why: String| {
            assert!(
                !required,
                "{why}; this test must run (CI=true or STEADFAST_REQUIRE_ROOT_FS=1)"
            );
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
            None
        };
        if !is_root() {
            return skip("mounting a tmpfs for the full-disk test needs root".to_owned());
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => skip(format!(
                "cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => skip(format!("cannot run mount: {e}")),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Fills the file system of `dir` with a ballast file until it is full.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).expect("create the ballast");
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("writing the ballast: {e}"),
        }
    }
    // The last partial chunk may have been cut short; fill to the last byte.
    while file.write(&[0]).is_ok_and(|n| n == 1) {}
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_then_freed_finishes_every_process_without_a_restart() {
    let Some(fs) = Tmpfs::mount("32m") else {
        return;
    };
    let path = fs.path().join("full.db");
    let store = SqliteStore::open(&path).await.expect("open store");
    let tally = Arc::new(Tally::default());
    let (open_gate, gate) = watch::channel(false);
    let host = register(Host::builder(store), Arc::clone(&tally), gate)
        .poll_interval(Duration::from_millis(20))
        .build();
    let ids = spawn_and_reach_the_gate(&host, &tally, 512, PROCESSES).await;

    // Empty the WAL (so the next commit needs new space), then fill the
    // disk to the last byte and let every process try to journal step b.
    let side = rusqlite::Connection::open(&path).expect("second connection");
    side.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    until("the WAL is checkpointed and truncated", || {
        side.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok_and(|busy| busy == 0)
    })
    .await;
    drop(side);
    let ballast = fill(fs.path());
    let refused = host
        .spawn("work", "while-full", &1usize)
        .await
        .expect_err("a spawn on a full disk fails");
    assert!(
        refused.is_retryable() && refused.to_string().contains("full"),
        "a full disk is a retryable store error: {refused}"
    );
    open_gate.send_replace(true);
    until(
        "every process's append of b failed on the full disk",
        || metric(&host, "steadfast_store_write_retries_total") >= PROCESSES as u64,
    )
    .await;
    let done_while_full = host
        .store()
        .journal(&ProcessId::new("w-000").expect("id"))
        .await
        .expect("journal")
        .len();
    assert_eq!(done_while_full, 1, "nothing is journaled on a full disk");
    std::fs::remove_file(&ballast).expect("free the disk");

    let given_up = assert_all_completed(&host, &tally, &ids, 512).await;
    let executions: usize = ["a", "b", "c"].iter().map(|s| tally.executions(s)).sum();
    eprintln!(
        "full disk: {PROCESSES} processes completed; {given_up} runs given up; {executions} \
         step closures ran for {} steps",
        3 * PROCESSES
    );
    host.shutdown().await;
    drop(host);
}

/// Rejects, with a non-retryable error, the journal appends of the first
/// run of one process, and fails its hand-back as `hand_back` says.
struct FailFirstRun {
    victim: ProcessId,
    hand_back: HandBack,
}

/// How [`FailFirstRun`] answers the hand-back of the failed run.
enum HandBack {
    /// Always with a non-retryable error.
    Refused,
    /// With a retryable error this many more times, then it passes.
    FailsTimes(std::sync::atomic::AtomicUsize),
}

impl Faults for FailFirstRun {
    fn fault(&self, call: &Call<'_>) -> Option<StoreError> {
        let lease = call.lease?;
        if lease.id != self.victim || lease.epoch != 1 {
            return None;
        }
        match (call.operation, &self.hand_back) {
            ("append", _) | ("suspend", HandBack::Refused) => {
                Some(injected_error(call.operation, false))
            }
            ("suspend", HandBack::FailsTimes(left)) => left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
                .then(|| injected_error(call.operation, true)),
            _ => None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_of_a_given_up_run_is_not_renewed_and_its_process_is_claimed_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("given-up.db"))
        .await
        .expect("open store");
    let victim = ProcessId::new("victim").expect("id");
    let faulty: Arc<dyn Backend> = Arc::new(FaultyStore::new(
        Arc::new(store),
        FailFirstRun {
            victim: victim.clone(),
            hand_back: HandBack::Refused,
        },
    ));
    let tally = Arc::new(Tally::default());
    let (_open, gate) = watch::channel(true);
    // The heartbeat renews every third of the lease: in the time the
    // victim's lease takes to run out it renews live leases many times.
    let host = register(HostBuilder::from_arc(faulty), Arc::clone(&tally), gate)
        .lease(Duration::from_millis(600))
        .poll_interval(Duration::from_millis(20))
        .build();
    host.spawn("work", "victim", &1usize).await.expect("spawn");

    // The first run's append of step a is refused and so is its hand-back:
    // the run is given up and its lease must not be renewed, so it runs out
    // and the process is claimed again (epoch 2), where the writes pass.
    let out: usize = tokio::time::timeout(PATIENCE, host.outcome("victim"))
        .await
        .expect("the given-up process is claimed again once its lease runs out")
        .expect("outcome");
    assert_eq!(out, 3);
    let record = host.status("victim").await.expect("status");
    assert_eq!(record.epoch, 2, "claimed exactly once more: {record:?}");
    assert_eq!(metric(&host, "steadfast_runs_given_up_total"), 1);
    assert_eq!(tally.runs_of("victim"), 2, "two runs");
    assert_eq!(
        tally.steps_of("victim"),
        [("a", 2), ("b", 1), ("c", 1)],
        "step a ran again only because its first run was given up"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_hand_back_is_retried_in_the_background_until_it_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("hand-back.db"))
        .await
        .expect("open store");
    let faulty: Arc<dyn Backend> = Arc::new(FaultyStore::new(
        Arc::new(store),
        FailFirstRun {
            victim: ProcessId::new("victim").expect("id"),
            hand_back: HandBack::FailsTimes(3.into()),
        },
    ));
    let tally = Arc::new(Tally::default());
    let (_open, gate) = watch::channel(true);
    // A lease longer than the test's patience: the process runs again in
    // time only if the hand-back itself went through.
    let host = register(HostBuilder::from_arc(faulty), Arc::clone(&tally), gate)
        .lease(PATIENCE * 2)
        .poll_interval(Duration::from_millis(20))
        .build();
    host.spawn("work", "victim", &1usize).await.expect("spawn");
    let out: usize = tokio::time::timeout(PATIENCE, host.outcome("victim"))
        .await
        .expect("the hand-back is retried until it passes, so the process runs again")
        .expect("outcome");
    assert_eq!(out, 3);
    assert_eq!(host.status("victim").await.expect("status").epoch, 2);
    assert_eq!(metric(&host, "steadfast_runs_given_up_total"), 1);
    assert!(metric(&host, "steadfast_store_write_retries_total") >= 3);
    assert_eq!(
        tally.steps_of("victim"),
        [("a", 2), ("b", 1), ("c", 1)],
        "step a ran again only because its first run was given up"
    );
    host.shutdown().await;
}
