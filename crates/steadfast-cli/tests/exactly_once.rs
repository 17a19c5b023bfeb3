//! Transactional steps are exactly-once under a real crash and under a
//! lease taken over mid-transaction, on SQLite and on PostgreSQL.
//!
//! A worker (this test binary re-run as a child process) stops inside a
//! transactional step, after the user's SQL ran and before the journal entry
//! is written (the `set_after_body_hook` failpoint), and is SIGKILLed there.
//! A new host finishes the processes; every user row must match exactly one
//! journal entry.

#[path = "support/pg.rs"]
#[allow(dead_code, reason = "this test uses only part of the helper")]
mod pg;

// The engine tests' recorder helper, shared rather than copied.
#[path = "../../steadfast/tests/support/metrics.rs"]
mod metrics_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use pg::Schema;
use steadfast::__private::set_after_body_hook;
use steadfast::core::HostId;
use steadfast::{
    Backend, EntryKind, HostBuilder, PostgresOptions, PostgresStore, Process, SqliteStore,
    StepError, StepFailed, Store, Timestamp,
};

/// The transactional steps of the `ledger` kind, in order.
const STEPS: [&str; 3] = ["book-1", "book-2", "book-3"];
/// The step the crashing worker stops in.
const FAILPOINT_STEP: &str = "book-2";
/// How many processes each test runs.
const PROCESSES: usize = 4;
/// Set in the child: `sqlite <path>` or `postgres <schema>`.
const CHILD_ENV: &str = "STEADFAST_EXACTLY_ONCE_CHILD";

/// Registers `ledger` on SQLite: three transactional steps, each inserting
/// one `(process, step)` row into the user's table in the store's file.
fn sqlite_ledger(b: HostBuilder) -> HostBuilder {
    b.register("ledger", |p: Process<SqliteStore>, _: ()| async move {
        for step in STEPS {
            let id = p.id().to_string();
            p.transaction(step, move |conn| {
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS effects (process TEXT, step TEXT)",
                    [],
                )
                .map_err(StepError::retryable)?;
                conn.execute("INSERT INTO effects VALUES (?1, ?2)", [&id, step])
                    .map_err(StepError::retryable)?;
                Ok(())
            })
            .await?;
        }
        Ok::<_, StepFailed>(())
    })
}

/// The steps of the stale-lease test (names of their own, so that its
/// in-process failpoint never stops another test's steps).
const STALE_STEPS: [&str; 3] = ["stale-1", "stale-2", "stale-3"];

/// Registers `ledger` on PostgreSQL, like [`sqlite_ledger`]. With
/// `short_idle`, the steps are [`STALE_STEPS`] and the server ends a
/// session left idle inside their transaction for 300 ms (how a frozen
/// worker loses its row lock).
fn postgres_ledger(b: HostBuilder) -> HostBuilder {
    b.register(
        "ledger",
        |p: Process<PostgresStore>, short_idle: bool| async move {
            for step in if short_idle { STALE_STEPS } else { STEPS } {
                let id = p.id().to_string();
                p.transaction(step, move |conn| {
                    let id = id.clone();
                    Box::pin(async move {
                        if short_idle {
                            steadfast::sqlx::query(
                                "SET LOCAL idle_in_transaction_session_timeout = '300ms'",
                            )
                            .execute(&mut *conn)
                            .await
                            .map_err(StepError::retryable)?;
                        }
                        steadfast::sqlx::query("INSERT INTO effects VALUES ($1, $2)")
                            .bind(&id)
                            .bind(step)
                            .execute(&mut *conn)
                            .await
                            .map_err(StepError::retryable)?;
                        Ok(())
                    })
                })
                .await?;
            }
            Ok::<_, StepFailed>(())
        },
    )
}

async fn postgres_store(schema: &str) -> PostgresStore {
    let options = PostgresOptions::default().schema(schema.to_owned());
    PostgresStore::connect_with(&pg::server_url(), options)
        .await
        .expect("connect")
}

/// The child worker: runs `ledger` with a failpoint that announces
/// `failpoint <step>` on stdout and then blocks forever, until killed.
fn run_child(spec: &str) {
    set_after_body_hook(Some(Arc::new(|step: &str| {
        if step == FAILPOINT_STEP {
            {
                // On a line of its own: the harness's "test ... " has none.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "\nfailpoint {step}");
                let _ = out.flush();
            }
            loop {
                std::thread::park();
            }
        }
    })));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let host = match spec.split_once(' ') {
            Some(("sqlite", path)) => {
                let store = SqliteStore::open(path).await.expect("open");
                sqlite_ledger(HostBuilder::new(store)).build()
            }
            Some(("postgres", schema)) => {
                postgres_ledger(HostBuilder::new(postgres_store(schema).await)).build()
            }
            _ => panic!("bad {CHILD_ENV}: {spec:?}"),
        };
        std::future::pending::<()>().await;
        drop(host);
    });
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test (`test`) again as a child worker, waits until it
/// reports that it stopped at the failpoint, and SIGKILLs it there.
async fn crash_at_failpoint(test: &str, spec: String) {
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child worker"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("failpoint "))
    })
    .await
    .expect("reader");
    assert_eq!(
        line.as_deref(),
        Some("failpoint book-2"),
        "the child stopped between the user's SQL and the journal write"
    );
    child.0.kill().expect("SIGKILL the worker");
    child.0.wait().expect("reap the worker");
}

/// Each process's transactional step entries, as `(process, step)` pairs
/// sorted (duplicates kept).
async fn journaled(store: &dyn Backend) -> Vec<(String, String)> {
    let ids: Vec<String> = (0..PROCESSES).map(|n| format!("l-{n}")).collect();
    journaled_of(store, &ids).await
}

async fn journaled_of(store: &dyn Backend, ids: &[String]) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for id in ids {
        let journal = store
            .journal(&id.as_str().try_into().expect("id"))
            .await
            .expect("journal");
        for e in journal.into_iter().filter(|e| e.kind == EntryKind::Step) {
            all.push((id.clone(), e.name));
        }
    }
    all.sort();
    all
}

/// Asserts that the user rows are exactly the journaled steps, and that
/// every process did every step once.
fn assert_exactly_once(rows: &[(String, String)], journaled: &[(String, String)]) {
    assert_exactly_once_of(rows, journaled, PROCESSES * STEPS.len());
}

fn assert_exactly_once_of(rows: &[(String, String)], journaled: &[(String, String)], pairs: usize) {
    assert_eq!(rows, journaled, "user rows must equal journal entries");
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in rows {
        *per.entry(row.clone()).or_default() += 1;
    }
    assert_eq!(per.len(), pairs, "every step of every process: {per:?}");
    assert!(
        per.values().all(|n| *n == 1),
        "a step's effect committed twice: {per:?}"
    );
}

fn sqlite_rows(db: &Path) -> Vec<(String, String)> {
    let conn = steadfast::rusqlite::Connection::open(db).expect("open");
    let exists: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'effects'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    if exists == 0 {
        return Vec::new();
    }
    let mut stmt = conn
        .prepare("SELECT process, step FROM effects ORDER BY process, step")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

async fn postgres_rows(schema: &str) -> Vec<(String, String)> {
    let pool = steadfast::sqlx::PgPool::connect(&pg::server_url())
        .await
        .expect("connect");
    let rows = steadfast::sqlx::query_as(steadfast::sqlx::AssertSqlSafe(format!(
        "SELECT process, step FROM \"{schema}\".effects ORDER BY process, step"
    )))
    .fetch_all(&pool)
    .await
    .expect("effects");
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_between_user_sql_and_journal_write() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return tokio::task::spawn_blocking(move || run_child(&spec))
            .await
            .expect("child");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("tx.db");
    let store = SqliteStore::open(&db).await.expect("store");
    let client = sqlite_ledger(HostBuilder::new(store.clone())).build_client();
    for n in 0..PROCESSES {
        client
            .spawn("ledger", &format!("l-{n}"), &())
            .await
            .expect("spawn");
    }
    drop(client);

    crash_at_failpoint(
        "sqlite_sigkill_between_user_sql_and_journal_write",
        format!("sqlite {}", db.display()),
    )
    .await;
    // The killed transaction held book-2's row; nothing of it committed.
    let rows = sqlite_rows(&db);
    assert!(
        !rows.iter().any(|(_, step)| step == FAILPOINT_STEP),
        "the killed transaction's SQL committed: {rows:?}"
    );
    assert_eq!(rows, journaled(&store).await, "rows == journal at the kill");

    let host = sqlite_ledger(HostBuilder::new(store.clone())).build();
    for n in 0..PROCESSES {
        let () = host.outcome(&format!("l-{n}")).await.expect("outcome");
    }
    host.shutdown().await;
    assert_exactly_once(&sqlite_rows(&db), &journaled(&store).await);
}

/// Creates the user's table in the schema (after the store created it).
async fn create_effects(schema: &str) {
    let pool = steadfast::sqlx::PgPool::connect(&pg::server_url())
        .await
        .expect("connect");
    steadfast::sqlx::raw_sql(steadfast::sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".effects (process TEXT, step TEXT)"
    )))
    .execute(&pool)
    .await
    .expect("create effects");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_between_user_sql_and_journal_write() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return tokio::task::spawn_blocking(move || run_child(&spec))
            .await
            .expect("child");
    }
    let Some(schema) = Schema::fresh("exactly_once").await else {
        return;
    };
    let store = postgres_store(&schema.name).await;
    create_effects(&schema.name).await;
    let client = postgres_ledger(HostBuilder::new(store.clone())).build_client();
    for n in 0..PROCESSES {
        client
            .spawn("ledger", &format!("l-{n}"), &false)
            .await
            .expect("spawn");
    }
    drop(client);

    crash_at_failpoint(
        "postgres_sigkill_between_user_sql_and_journal_write",
        format!("postgres {}", schema.name),
    )
    .await;
    // The killed worker's last COMMIT may still land on the server after
    // the kill; rows and journal entries commit together, so reading them in
    // two snapshots can straddle it. Read again until one reading agrees: a
    // journal entry without its row (or the reverse) would never agree.
    let mut rows = postgres_rows(&schema.name).await;
    let mut journal = journaled(&store).await;
    for _ in 0..50 {
        if rows == journal {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = postgres_rows(&schema.name).await;
        journal = journaled(&store).await;
    }
    assert_eq!(rows, journal, "rows == journal at the kill");
    assert!(
        rows.len() < PROCESSES * STEPS.len(),
        "the killed worker left work to do: {rows:?}"
    );

    let host = postgres_ledger(HostBuilder::new(store.clone())).build();
    for n in 0..PROCESSES {
        let () = host.outcome(&format!("l-{n}")).await.expect("outcome");
    }
    host.shutdown().await;
    assert_exactly_once(&postgres_rows(&schema.name).await, &journaled(&store).await);
    drop(schema);
}

/// Waits until `host` runs no process any more (its aborted run ended).
async fn wait_idle(host: &steadfast::Host) {
    let started = Instant::now();
    while metrics_support::sum(host.id().as_str(), "steadfast_running_processes", &[]) != 0.0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stale run never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Host A stops inside `stale-2` after its SQL ran; the server ends A's
/// session (left idle in the transaction), host B claims the process with a
/// higher epoch while A's body is still "running", then A resumes: its SQL
/// and entry must not be kept. After B gives the process back, it finishes
/// with each step's effect exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_lease_taken_over_mid_transaction_rolls_back_stale_sql() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(schema) = Schema::fresh("stale_tx").await else {
        return;
    };
    let store = postgres_store(&schema.name).await;
    create_effects(&schema.name).await;
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (reached_tx, release_rx) = (Mutex::new(reached_tx), Mutex::new(release_rx));
    let armed = AtomicBool::new(true);
    set_after_body_hook(Some(Arc::new(move |step: &str| {
        if step == STALE_STEPS[1] && armed.swap(false, Ordering::SeqCst) {
            let _ = reached_tx.lock().expect("channel").send(());
            // Hand this runtime worker's queued tasks to another thread while
            // the step is held.
            tokio::task::block_in_place(|| {
                let _ = release_rx.lock().expect("channel").recv();
            });
        }
    })));
    metrics_support::install();
    let host_a = postgres_ledger(HostBuilder::new(store.clone()))
        .host_id("host-a")
        .build();
    host_a.spawn("ledger", "s-0", &true).await.expect("spawn");
    tokio::task::spawn_blocking(move || reached_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("waiter")
        .expect("host A reached the failpoint inside stale-2");
    let a_epoch = host_a.status("s-0").await.expect("status").epoch;

    // B takes the lease over as soon as the server has ended A's session
    // (until then A's transaction holds the row and claims skip it).
    let store_b = postgres_store(&schema.name).await;
    // B claims "a day later" to take the live lease over: its store must
    // decide with that time, not the database's clock.
    store_b.follow_host_clock();
    let host_b = HostId::new("host-b");
    let far = Timestamp::now_system() + Duration::from_secs(86_400);
    let started = Instant::now();
    let taken = loop {
        let claimed = store_b
            .claim(&host_b, far, Duration::from_secs(3600), 10)
            .await
            .expect("claim");
        if let Some(c) = claimed.into_iter().next() {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "B never took the lease over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(taken.lease.epoch > a_epoch, "B holds a newer epoch");
    let names: Vec<&str> = taken.journal.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [STALE_STEPS[0]], "A's stale-2 was never journaled");

    // A resumes: its transaction must come to nothing.
    release_tx.send(()).expect("release A");
    wait_idle(&host_a).await;
    let ids = ["s-0".to_owned()];
    let rows = postgres_rows(&schema.name).await;
    assert_eq!(
        rows,
        [("s-0".to_owned(), STALE_STEPS[0].to_owned())],
        "the stale transaction's SQL was rolled back"
    );
    assert_eq!(rows, journaled_of(&store, &ids).await);

    store_b
        .release(&host_b, Timestamp::now_system())
        .await
        .expect("B gives the process back");
    let () = host_a.outcome("s-0").await.expect("outcome");
    host_a.shutdown().await;
    set_after_body_hook(None);
    assert_exactly_once_of(
        &postgres_rows(&schema.name).await,
        &journaled_of(&store, &ids).await,
        STALE_STEPS.len(),
    );
    drop(schema);
}
