//! The CLI and workers on PostgreSQL: commands on a schema, three worker
//! processes sharing one database with one SIGKILLed, and a SIGSTOPped
//! worker whose late writes are fenced off.

#[path = "support/pg.rs"]
mod pg;
#[path = "support/ten_steps.rs"]
mod ten_steps;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg::Schema;
use steadfast::{
    Backend, EntryStatus, Host, ListFilter, Listed, PostgresOptions, PostgresStore, Status,
};
use steadfast_examples::workload::{self, STEPS};

const BIN: &str = env!("CARGO_BIN_EXE_steadfast");

/// The `steadfast` binary with its example kinds (`--examples`, through
/// the environment so every command line stays as it is).
fn steadfast() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("STEADFAST_EXAMPLES", "1");
    cmd
}

fn cli(db: &str, args: &[&str]) -> Output {
    steadfast()
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("STEADFAST_DB")
        .stdin(Stdio::null())
        .output()
        .expect("run steadfast")
}

fn worker(db: &str, services: &Path, extra: &[&str], log: Option<&Path>) -> Child {
    let mut cmd = steadfast();
    cmd.arg("--db")
        .arg(db)
        .arg("worker")
        .arg("--services")
        .arg(services)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match log {
        Some(path) => {
            let file = std::fs::File::create(path).expect("worker log");
            cmd.env("RUST_LOG", "steadfast=info").stderr(file);
        }
        None => {
            cmd.stderr(Stdio::inherit());
        }
    }
    cmd.spawn().expect("start a worker")
}

async fn store(schema: &Schema) -> Arc<dyn Backend> {
    Arc::new(postgres_store(schema).await)
}

/// The store on `schema`, as its own type (for transactional steps).
async fn postgres_store(schema: &Schema) -> PostgresStore {
    let url = pg::server_url();
    let options = PostgresOptions::default().schema(schema.name.clone());
    PostgresStore::connect_with(&url, options)
        .await
        .expect("connect")
}

async fn spawn_ten_steps(store: &Arc<dyn Backend>, n: usize) {
    let client = workload::register(steadfast::HostBuilder::from_arc(Arc::clone(store)), None)
        .build_client();
    for i in 0..n {
        client
            .spawn(workload::KIND, &format!("p-{i:04}"), &())
            .await
            .expect("spawn");
    }
    drop::<Host>(client);
}

async fn wait_all_completed(store: &Arc<dyn Backend>, n: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        let counts = store.counts().await.expect("counts");
        let done: u64 = counts.of(Status::Completed);
        if done as usize == n {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "only {done} of {n} finished: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_work_on_a_postgres_schema() {
    let Some(schema) = Schema::fresh("cmds").await else {
        return;
    };
    let db = schema.db();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = cli(&db, &["spawn", "ten steps", "job-1", "null"]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(
        &db,
        &[
            "worker",
            "--exit-when-idle",
            "--services",
            &dir.path().display().to_string(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = cli(&db, &["show", "job-1", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["process"]["status"], "completed");
    assert_eq!(shown["journal"].as_array().map(Vec::len), Some(10));
    let out = cli(&db, &["show", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process with id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_logs_its_clock_offset_from_the_database() {
    let Some(schema) = Schema::fresh("offset").await else {
        return;
    };
    let db = schema.db();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = cli(&db, &["spawn", "ten steps", "job-1", "null"]);
    assert!(out.status.success(), "{out:?}");
    let out = steadfast()
        .args(["--db", &db, "worker", "--exit-when-idle", "--services"])
        .arg(dir.path())
        .env_remove("STEADFAST_DB")
        .env("RUST_LOG", "steadfast=info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the worker");
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("clock offset from the store's clock"))
        .unwrap_or_else(|| panic!("no clock offset in the worker's log:\n{log}"));
    let offset: f64 = line
        .split("offset_seconds=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no offset_seconds in {line:?}"));
    // The worker and the server share this machine's clock.
    assert!(offset.abs() < 0.5, "offset {offset} s on one machine");
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let out = cli("postgres://postgres@127.0.0.1:1/test", &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the Steadfast schema"), "{err}");
}

/// Worker processes, killed (and reaped) when dropped, also when a check
/// fails.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The host id a worker logged at start (`host=<id>`), waiting for it.
fn host_id(log: &Path) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("steadfast worker started"))
            && let Some(id) = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("host="))
        {
            return id.trim_matches('"').to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no start line in {}: {text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every host in `hosts` has journaled a step of a process it
/// holds: seen owning a running process, then that process (same lease
/// epoch, so no other host took it) has a longer journal or completed.
async fn worked(store: &Arc<dyn Backend>, hosts: &[String]) {
    // Per host: the process watched (id, epoch, journal length), and
    // whether the host is proven to have written to a journal.
    let mut watched: Vec<Option<(steadfast::ProcessId, i64, usize)>> = vec![None; hosts.len()];
    let mut proven = vec![false; hosts.len()];
    let start = Instant::now();
    while proven.iter().any(|p| !p) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not every worker journaled a step: {hosts:?} {proven:?}"
        );
        for (i, host) in hosts.iter().enumerate() {
            if proven[i] {
                continue;
            }
            if let Some((id, epoch, len)) = &watched[i] {
                let record = store.get(id).await.expect("get");
                let now = store.journal(id).await.expect("journal").len();
                if record.epoch != *epoch {
                    watched[i] = None;
                } else if now > *len || record.status == Status::Completed {
                    proven[i] = true;
                }
                continue;
            }
            let running = store
                .list(&ListFilter {
                    status: Some(Status::Running),
                    limit: 1000,
                    ..ListFilter::default()
                })
                .await
                .expect("list");
            if let Some(record) = running
                .into_iter()
                .filter_map(Listed::into_record)
                .find(|r| r.owner.as_deref() == Some(host.as_str()))
            {
                let len = store.journal(&record.id).await.expect("journal").len();
                watched[i] = Some((record.id, record.epoch, len));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_the_work_and_survive_a_sigkill() {
    const N: usize = 600;
    let Some(schema) = Schema::fresh("three").await else {
        return;
    };
    let db = schema.db();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store(&schema).await;
    spawn_ten_steps(&store, N).await;

    let args = ["--concurrency", "40"];
    let logs: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("worker-{i}.log")))
        .collect();
    let mut workers = Workers(
        logs.iter()
            .map(|log| worker(&db, dir.path(), &args, Some(log)))
            .collect(),
    );
    // Each worker logs its host id as it starts.
    let hosts: Vec<String> = logs.iter().map(|log| host_id(log)).collect();
    // Kill one worker once each of the three has journaled steps.
    worked(&store, &hosts).await;
    workers.0[0].kill().expect("SIGKILL worker 1");
    workers.0[0].wait().expect("reap");

    wait_all_completed(&store, N, Duration::from_secs(120)).await;
    for w in &mut workers.0[1..] {
        w.kill().expect("stop worker");
        w.wait().expect("reap");
    }
    ten_steps::assert_journals_intact(&*store, N).await;
    let (ran, reran, _) = ten_steps::closure_runs(dir.path());
    assert_eq!(ran, N * STEPS, "every step ran");
    assert!(
        reran <= 40,
        "{reran} re-runs: at most one per process in flight at the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigstopped_worker_is_fenced_when_it_wakes_up() {
    const N: usize = 3000;
    let Some(schema) = Schema::fresh("fence").await else {
        return;
    };
    let db = schema.db();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store(&schema).await;
    spawn_ten_steps(&store, N).await;

    let log_a = dir.path().join("worker-a.log");
    let lease = ["--concurrency", "50", "--lease-ms", "1000"];
    let mut a = worker(&db, dir.path(), &lease, Some(&log_a));
    // Stop worker A in the middle of its work, holding leases.
    let start = Instant::now();
    loop {
        let running = store
            .list(&ListFilter {
                status: Some(Status::Running),
                limit: 10,
                ..ListFilter::default()
            })
            .await
            .expect("list");
        let owned = running
            .iter()
            .filter_map(Listed::record)
            .filter(|r| r.owner.is_some())
            .count();
        if owned >= 5 || start.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(a.id(), "STOP");
    let held: Vec<_> = store
        .list(&ListFilter {
            status: Some(Status::Running),
            limit: N,
            ..ListFilter::default()
        })
        .await
        .expect("list")
        .into_iter()
        .filter_map(Listed::into_record)
        .filter(|r| r.owner.is_some())
        .collect();
    assert!(!held.is_empty(), "worker A holds leases when stopped");

    // B takes over once A's leases expire, and finishes everything.
    let mut b = worker(&db, dir.path(), &["--concurrency", "50"], None);
    wait_all_completed(&store, N, Duration::from_secs(180)).await;
    for record in &held {
        let now = store.get(&record.id).await.expect("get");
        assert!(now.epoch > record.epoch, "{} was taken over", record.id);
    }

    // A wakes up: its next write under an old lease is answered `Fenced`
    // by the store, which A logs as "lease lost" with the process and the
    // stale epoch. Wait for that answer for one of the processes it held.
    signal(a.id(), "CONT");
    let stale: Vec<String> = held
        .iter()
        .map(|r| format!("process={} epoch={}", r.id, r.epoch))
        .collect();
    let waited = Instant::now();
    let fenced = loop {
        let log = std::fs::read_to_string(&log_a).expect("worker A log");
        let hit = log
            .lines()
            .filter(|l| l.contains("lease lost"))
            .find(|l| stale.iter().any(|s| l.contains(s.as_str())))
            .map(str::to_owned);
        if let Some(line) = hit {
            break line;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "worker A never had a write under a stale lease rejected:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("rejected: {fenced}");
    for w in [&mut a, &mut b] {
        w.kill().expect("stop worker");
        w.wait().expect("reap");
    }
    ten_steps::assert_journals_intact(&*store, N).await;
}

/// A transactional step on PostgreSQL: its SQL and its journal entry commit
/// together; a replay does not run it again and a failed body leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_transaction_commits_effects_exactly_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use steadfast::{Process, RetryPolicy, StepError, StepFailed};

    let Some(schema) = Schema::fresh("tx").await else {
        return;
    };
    let register = |b: steadfast::HostBuilder| {
        b.retry(RetryPolicy::exponential(3).initial_delay(Duration::from_millis(1)))
            .register(
                "ledger",
                |p: Process<steadfast::PostgresStore>, amount: i64| async move {
                    let flaky = Arc::new(AtomicUsize::new(0));
                    let id = p.id().to_string();
                    p.transaction("booked", move |conn| {
                        let (id, flaky) = (id.clone(), Arc::clone(&flaky));
                        Box::pin(async move {
                            steadfast::sqlx::query(
                                "CREATE TABLE IF NOT EXISTS ledger (process TEXT, amount BIGINT)",
                            )
                            .execute(&mut *conn)
                            .await
                            .map_err(StepError::retryable)?;
                            steadfast::sqlx::query("INSERT INTO ledger VALUES ($1, $2)")
                                .bind(&id)
                                .bind(amount)
                                .execute(&mut *conn)
                                .await
                                .map_err(StepError::retryable)?;
                            if flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                                return Err(StepError::retryable("serialization failure"));
                            }
                            Ok(())
                        })
                    })
                    .await?;
                    let refused = p
                        .transaction("refused", |conn| {
                            Box::pin(async move {
                                steadfast::sqlx::query("INSERT INTO ledger VALUES ('refused', 0)")
                                    .execute(&mut *conn)
                                    .await
                                    .map_err(StepError::retryable)?;
                                Err::<(), _>(StepError::permanent("over the limit"))
                            })
                        })
                        .await;
                    p.wait::<()>("go").await;
                    Ok::<_, StepFailed>(refused.is_err())
                },
            )
    };
    let host = register(steadfast::HostBuilder::new(postgres_store(&schema).await)).build();
    host.spawn("ledger", "l-1", &250i64).await.expect("spawn");
    let start = Instant::now();
    while host.status("l-1").await.expect("status").status != Status::Suspended {
        assert!(start.elapsed() < Duration::from_secs(30), "never suspended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(host);
    let host = register(steadfast::HostBuilder::new(postgres_store(&schema).await)).build();
    host.signal("l-1", "go", &()).await.expect("signal");
    let refused: bool = host.outcome("l-1").await.expect("outcome");
    assert!(refused);

    let pool = steadfast::sqlx::PgPool::connect(&pg::server_url())
        .await
        .expect("connect");
    let rows: Vec<(String, i64)> = steadfast::sqlx::query_as(steadfast::sqlx::AssertSqlSafe(
        format!("SELECT process, amount FROM \"{}\".ledger", schema.name),
    ))
    .fetch_all(&pool)
    .await
    .expect("ledger");
    pool.close().await;
    assert_eq!(
        rows,
        [("l-1".to_owned(), 250)],
        "exactly once, failed bodies rolled back"
    );
    let journal = host
        .store()
        .journal(&"l-1".try_into().expect("id"))
        .await
        .expect("journal");
    assert_eq!(journal[0].attempts, 2);
    assert_eq!(journal[1].status, EntryStatus::Failed);
    drop(host);
}
