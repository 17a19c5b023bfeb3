//! Fault injection: a store that fails a random 1 % of its calls with
//! retryable errors and 0.1 % with non-retryable ones, under 2,000 processes
//! with steps, timers, signals (each waiting process first gets one that
//! does not fit its wait) and children, then heals. Whatever failed,
//! every process must end completed (or failed/blocked naming the fault),
//! nothing may stay leased without a live run, no journal entry may be lost
//! or doubled, and a step closure may run again only for a run that a
//! non-retryable fault actually aborted.
//!
//! Runs on SQLite always and on PostgreSQL when `STEADFAST_TEST_PG` answers
//! (required under `STEADFAST_REQUIRE_PG=1`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use steadfast::{
    Backend, Host, HostBuilder, ListFilter, Process, ProcessId, SignalState, SqliteStore, Status,
    StepError, StepFailed,
};
use steadfast_conformance::faults::{FaultPlan, FaultyStore};

/// How many processes each run spawns.
const PROCESSES: u32 = 2_000;

/// Executions of each step closure, by process id and step name.
fn executions() -> &'static Mutex<HashMap<(String, &'static str), u32>> {
    static EXECUTIONS: OnceLock<Mutex<HashMap<(String, &'static str), u32>>> = OnceLock::new();
    EXECUTIONS.get_or_init(Default::default)
}

/// Records one execution of `step` for process `id` and returns its value.
async fn executed(id: String, step: &'static str) -> Result<String, StepError> {
    let mut map = executions().lock().expect("executions");
    *map.entry((id.clone(), step)).or_default() += 1;
    Ok(format!("{id}: {step}"))
}

/// What the waiting processes are sent.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Go {
    round: u32,
}

/// The workload: two steps around one of a timer, a signal, a child, or
/// nothing, chosen by the input.
#[steadfast::process]
async fn faulty(p: Process, n: u32) -> Result<u32, StepFailed> {
    let id = p.id().to_string();
    p.step("first", || executed(id.clone(), "first")).await?;
    match n % 4 {
        0 => p.sleep("nap", Duration::from_millis(20)).await,
        1 => {
            let go: Go = p.wait("go").await;
            assert_eq!(go.round, n, "the signal carries the round it was sent for");
        }
        2 => {
            let child: u32 = p
                .child("helper", "helper", &n)
                .await
                .map_err(|e| StepFailed {
                    step: "helper".into(),
                    message: e.to_string(),
                    attempts: 1,
                    permanent: true,
                    timed_out: false,
                    ..StepFailed::default()
                })?;
            assert_eq!(child, n + 1);
        }
        _ => {}
    }
    p.step("second", || executed(id.clone(), "second")).await?;
    Ok(n)
}

/// The child kind: one step.
#[steadfast::process]
async fn helper(p: Process, n: u32) -> Result<u32, StepFailed> {
    let id = p.id().to_string();
    p.step("helped", || executed(id.clone(), "helped")).await?;
    Ok(n + 1)
}

fn kinds(builder: HostBuilder) -> HostBuilder {
    builder
        .register("faulty", faulty)
        .register("helper", helper)
        .max_concurrency(100)
        .lease(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(100))
}

/// The journal a completed process of round `n` must have, in order.
fn expected_steps(n: u32) -> Vec<String> {
    let middle: &[&str] = match n % 4 {
        0 => &["nap"],
        1 => &["go"],
        2 => &["helper: spawned", "helper"],
        _ => &[],
    };
    std::iter::once("first")
        .chain(middle.iter().copied())
        .chain(std::iter::once("second"))
        .map(str::to_owned)
        .collect()
}

/// Repeats a client call until it succeeds: the client sees the faults
/// too, and a real client retries (spawn and signal are idempotent enough:
/// spawn by id; a doubled signal is harmless here because each waiting
/// process takes one and finishes).
async fn until_ok<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, steadfast::Error>>,
{
    for _ in 0..1_000 {
        match call().await {
            Ok(value) => return value,
            Err(err) if err.to_string().contains("injected fault") => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(err) => panic!("{what} failed with a fault that was not injected: {err}"),
        }
    }
    panic!("{what} kept failing");
}

/// Every process of the store, all pages.
async fn all_processes(store: &Arc<dyn Backend>) -> Vec<steadfast::ProcessRecord> {
    let mut all = Vec::new();
    let mut after: Option<ProcessId> = None;
    loop {
        let page = store
            .list(&ListFilter {
                after: after.clone(),
                limit: 1_000,
                ..ListFilter::default()
            })
            .await
            .expect("list after healing");
        let Some(last) = page.last() else {
            return all;
        };
        after = Some(ProcessId::new(last.id()).expect("a stored id"));
        all.extend(
            page.into_iter()
                .map(|row| row.into_record().expect("every row decodes")),
        );
    }
}

/// The processes that have not ended (neither finished nor blocked), named
/// with their status and owner.
async fn open_processes(store: &Arc<dyn Backend>) -> Vec<String> {
    all_processes(store)
        .await
        .iter()
        .filter(|r| !r.status.is_finished() && r.status != Status::Blocked)
        .map(|r| format!("{} ({}, owner {:?})", r.id, r.status, r.owner))
        .collect()
}

/// Runs the workload on `inner` behind a faulty store and checks the
/// outcome. `tag` keeps process ids apart between the stores.
async fn survive_faults(inner: Arc<dyn Backend>, tag: &str) {
    let faulty = Arc::new(FaultyStore::random(
        Arc::clone(&inner),
        FaultPlan::new(0x5eed_0000 + u64::from(tag.len() as u32))
            .retryable(0.01)
            .fatal(0.001),
    ));
    let host: Host = kinds(HostBuilder::from_arc(
        Arc::clone(&faulty) as Arc<dyn Backend>
    ))
    .build();
    let ids: Vec<String> = (0..PROCESSES).map(|n| format!("{tag}-{n:05}")).collect();
    for (n, id) in (0u32..).zip(&ids) {
        until_ok("spawn", || host.spawn("faulty", id, &n)).await;
    }
    // The waiting processes first get a signal that does not fit their
    // wait: it must be rejected while the wait goes on...
    let waiting: Vec<(u32, &String)> = (0u32..).zip(&ids).filter(|(n, _)| n % 4 == 1).collect();
    for (_, id) in &waiting {
        until_ok("signal", || host.signal(id, "go", "not a Go")).await;
    }
    let rejected_by = Instant::now() + Duration::from_secs(60);
    for (_, id) in &waiting {
        let pid = ProcessId::new(id.as_str()).expect("id");
        loop {
            let signals = inner.signals(&pid).await.expect("signals");
            if signals.iter().any(|s| s.state == SignalState::Rejected) {
                break;
            }
            assert!(
                Instant::now() < rejected_by,
                "the mistyped signal to {id} was not rejected: {signals:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // ... and the signal that fits is delivered after it.
    for (n, id) in &waiting {
        let go = Go { round: *n };
        until_ok("signal", || host.signal(id, "go", &go)).await;
    }
    // Let the faults hit the runs until they all ended or 30 s passed.
    let faulty_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < faulty_until && !open_processes(&inner).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    faulty.faults().heal();
    let injected = faulty.faults().injected();
    assert!(
        injected.retryable > 20,
        "the plan injected too few retryable faults to prove anything: {injected:?}"
    );

    // Once healed, every process ends: nothing stays leased without a run.
    let settle_by = Instant::now() + Duration::from_secs(120);
    let records = loop {
        let open = open_processes(&inner).await;
        if open.is_empty() {
            break all_processes(&inner).await;
        }
        assert!(
            Instant::now() < settle_by,
            "{} processes did not end after the faults stopped (injected {injected:?}), e.g. {:?}",
            open.len(),
            &open[..open.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    host.shutdown().await;

    let parents: Vec<_> = records.iter().filter(|r| r.kind == "faulty").collect();
    assert_eq!(parents.len(), ids.len(), "a spawned process was lost");
    for record in &records {
        match record.status {
            Status::Completed => {}
            Status::Failed | Status::Blocked => {
                let reason = record.error.as_deref().unwrap_or_default();
                assert!(
                    reason.contains("injected fault"),
                    "{} ended {} without naming the fault: {reason:?}",
                    record.id,
                    record.status
                );
            }
            other => panic!("{} ended {other}", record.id),
        }
    }
    let completed = records
        .iter()
        .filter(|r| r.status == Status::Completed)
        .count();
    assert!(
        completed * 100 >= records.len() * 99,
        "only {completed} of {} processes completed (injected {injected:?})",
        records.len()
    );

    // No journal entry lost or doubled: each completed process has exactly
    // the steps its round takes, in order.
    for (n, id) in (0u32..).zip(&ids) {
        let record = records
            .iter()
            .find(|r| r.id.as_str() == id)
            .expect("listed");
        if record.status != Status::Completed {
            continue;
        }
        let journal = inner
            .journal(&ProcessId::new(id).expect("id"))
            .await
            .expect("journal");
        let names: Vec<String> = journal.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, expected_steps(n), "journal of {id}");
        let output: u32 = serde_json::from_str(record.output.as_deref().unwrap_or("null"))
            .expect("output decodes");
        assert_eq!(output, n);
    }

    // Step closures ran again only for runs a non-retryable fault aborted:
    // at most one closure of a process is in flight when its run aborts.
    let reran: u32 = {
        let map = executions().lock().expect("executions");
        map.iter()
            .filter(|((id, _), _)| id.starts_with(&format!("{tag}-")))
            .map(|(_, count)| count.saturating_sub(1))
            .sum()
    };
    assert!(
        u64::from(reran) <= injected.fatal,
        "{reran} step closures ran more than once, but only {} non-retryable faults were \
         injected ({injected:?}): a retryable fault re-ran a closure whose outcome was in hand",
        injected.fatal
    );
    eprintln!(
        "{tag}: {} processes, {completed} completed, injected {injected:?}, {reran} closures re-ran",
        records.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_random_store_faults() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("faults.db"))
        .await
        .expect("open");
    survive_faults(Arc::new(store), "sqlite").await;
}

/// The PostgreSQL server the tests use (`STEADFAST_TEST_PG`).
fn pg_url() -> String {
    std::env::var("STEADFAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs `sql` on a connection of its own.
async fn pg_execute(sql: String) -> Result<(), steadfast::sqlx::Error> {
    use steadfast::sqlx::{Connection, PgConnection};
    let mut conn = PgConnection::connect(&pg_url()).await?;
    steadfast::sqlx::raw_sql(steadfast::sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    conn.close().await
}

/// Drops its schema when dropped, also when the test failed.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the schema")
                .block_on(pg_execute(sql))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}", self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_random_store_faults() {
    if let Err(err) = pg_execute("SELECT 1".to_owned()).await {
        if std::env::var("STEADFAST_REQUIRE_PG").as_deref() == Ok("1") {
            panic!(
                "STEADFAST_REQUIRE_PG=1 but PostgreSQL at {} is unreachable: {err}",
                pg_url()
            );
        }
        eprintln!("SKIPPED: PostgreSQL at {} is unreachable ({err})", pg_url());
        return;
    }
    let schema = DropSchema(format!("steadfast_faults_{:016x}", rand::random::<u64>()));
    let store = steadfast::PostgresStore::connect_with(
        &pg_url(),
        steadfast::PostgresOptions::default().schema(schema.0.clone()),
    )
    .await
    .expect("connect to a fresh schema");
    survive_faults(Arc::new(store), "postgres").await;
}
