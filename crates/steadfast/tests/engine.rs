//! Behaviour of the engine on both real stores: replay, determinism
//! errors, retries, timeouts, signals, idempotent spawn, cancellation. Each
//! scenario is one `async fn(Fixture)`; `scenarios!` runs it as a test on
//! SQLite (`sqlite::NAME`) and on PostgreSQL (`postgres::NAME`, skipped when
//! the server is unreachable unless `STEADFAST_REQUIRE_PG=1`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::testing::TestHost;
use steadfast::{
    EntryStatus, Error, Host, HostBuilder, PostgresStore, Process, RetryPolicy, Spawned,
    SqliteStore, Status, StepError, StepFailed, StoreError,
};
use tempfile::TempDir;

/// A store of a test's own: a SQLite file in a temporary directory, or a
/// PostgreSQL schema (dropped afterwards). Every scenario below runs on both
/// (see `scenarios!` at the end); stores are opened by URL through
/// `steadfast::open`, as the CLI does.
enum Fixture {
    Sqlite(TempDir),
    Postgres { url: String, _schema: DropSchema },
}

impl Fixture {
    fn sqlite() -> Self {
        Fixture::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh schema, or `None` (the test is skipped) when PostgreSQL is
    /// unreachable, which fails under `STEADFAST_REQUIRE_PG=1`.
    async fn postgres() -> Option<Self> {
        let name = format!("steadfast_engine_{:016x}", rand::random::<u64>());
        let base = pg_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}schema={name}");
        let schema = DropSchema(name);
        match steadfast::open(&url).await {
            Ok(store) => {
                store.close().await.expect("close");
                Some(Fixture::Postgres {
                    url,
                    _schema: schema,
                })
            }
            Err(err) => {
                assert!(
                    std::env::var("STEADFAST_REQUIRE_PG").as_deref() != Ok("1"),
                    "STEADFAST_REQUIRE_PG=1 but PostgreSQL at {base} is unreachable: {err}"
                );
                eprintln!("SKIPPED: PostgreSQL at {base} is unreachable ({err})");
                None
            }
        }
    }

    /// The store's URL.
    fn url(&self) -> String {
        match self {
            Fixture::Sqlite(dir) => format!("sqlite:{}", dir.path().join("engine.db").display()),
            Fixture::Postgres { url, .. } => url.clone(),
        }
    }

    /// A builder on a newly opened store (a restart opens it again).
    async fn builder(&self) -> HostBuilder {
        let store = steadfast::open(&self.url()).await.expect("open store");
        HostBuilder::from_arc(store).poll_interval(Duration::from_millis(20))
    }

    /// A test host with a virtual clock on this fixture's store.
    async fn test_host(
        &self,
        configure: impl Fn(HostBuilder) -> HostBuilder + Send + Sync + 'static,
    ) -> TestHost {
        match self {
            Fixture::Sqlite(dir) => {
                let path = dir.path().join("engine.db");
                let open = move || {
                    let path = path.clone();
                    async move { SqliteStore::open(path).await.expect("open store") }
                };
                TestHost::on_store(open, configure).await
            }
            Fixture::Postgres { url, .. } => {
                let url = url.clone();
                let open = move || {
                    let url = url.clone();
                    async move { PostgresStore::connect(&url).await.expect("open store") }
                };
                TestHost::on_store(open, configure).await
            }
        }
    }
}

fn pg_url() -> String {
    std::env::var("STEADFAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
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
                .block_on(async move {
                    let pool = steadfast::sqlx::PgPool::connect(&pg_url()).await?;
                    steadfast::sqlx::raw_sql(steadfast::sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await?;
                    pool.close().await;
                    Ok::<_, steadfast::sqlx::Error>(())
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}", self.0);
        }
    }
}

/// Polls until process `id` satisfies `done`, failing the test after 20 s.
async fn wait_for(
    host: &Host,
    id: &str,
    done: impl Fn(Status) -> bool,
) -> steadfast::ProcessRecord {
    for _ in 0..2000 {
        let record = host.status(id).await.expect("status");
        if done(record.status) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {id} never reached the expected status");
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

async fn replay_after_restart_does_not_rerun_steps(fx: Fixture) {
    let runs = counter();
    let register = |b: HostBuilder, runs: Arc<AtomicUsize>| {
        b.register("greet", move |p: Process, name: String| {
            let runs = Arc::clone(&runs);
            async move {
                let greeting = p
                    .step("greeted", || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, StepError>(format!("Hello, {name}"))
                    })
                    .await?;
                let secret = p.uuid("secret").await;
                let reply: String = p.wait("reply").await;
                Ok::<_, StepFailed>(format!("{greeting} / {reply} / {secret}"))
            }
        })
    };
    let host = register(fx.builder().await, Arc::clone(&runs)).build();
    host.spawn("greet", "g-1", "Ada").await.expect("spawn");
    let suspended = wait_for(&host, "g-1", |s| s == Status::Suspended).await;
    assert_eq!(suspended.waiting_for, vec!["reply".to_owned()]);
    assert_eq!(suspended.wake_at, None, "waiting only for a signal");
    assert_eq!(suspended.parked_at.len(), 1, "parked at the wait's line");
    assert!(suspended.parked_at[0].file.ends_with("tests/engine.rs"));
    let journal = host.store().journal(&suspended.id).await.expect("journal");
    let secret = journal
        .iter()
        .find(|e| e.name == "secret")
        .and_then(|e| e.outcome.clone())
        .expect("secret journaled");
    drop(host);

    let host = register(fx.builder().await, Arc::clone(&runs)).build();
    host.signal("g-1", "reply", "hi").await.expect("signal");
    let out: String = host.outcome("g-1").await.expect("outcome");
    assert_eq!(
        out,
        format!("Hello, Ada / hi / {}", secret.trim_matches('"'))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step closure ran once");

    let journal = host.store().journal(&suspended.id).await.expect("journal");
    let names: Vec<&str> = journal.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["greeted", "secret", "reply"]);
    let location = journal[0].location.as_ref().expect("location");
    assert!(location.file.ends_with("tests/engine.rs"), "{location:?}");
    assert!(location.line > 50);
}

async fn step_name_used_twice_blocks_the_process(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("dup", |p: Process, (): ()| async move {
            p.step("a", || async { Ok::<_, StepError>(1) }).await?;
            p.step("a", || async { Ok::<_, StepError>(2) }).await?;
            Ok::<_, StepFailed>(())
        })
        .build();
    host.spawn("dup", "d-1", &()).await.expect("spawn");
    let record = wait_for(&host, "d-1", |s| s == Status::Blocked).await;
    assert_eq!(record.blocked_step.as_deref(), Some("a"));
    assert!(
        record.error.as_deref().unwrap_or("").contains("used twice"),
        "{record:?}"
    );
    let journal = host.store().journal(&record.id).await.expect("journal");
    assert_eq!(journal.len(), 1, "the first step stays journaled");
}

async fn typed_kind(b: HostBuilder, v2: bool) -> HostBuilder {
    if v2 {
        b.register("typed", |p: Process, (): ()| async move {
            let n: u64 = p.step("x", || async { Ok::<_, StepError>(7) }).await?;
            let go: String = p.wait("go").await;
            Ok::<_, StepFailed>(format!("{n} {go}"))
        })
    } else {
        b.register("typed", |p: Process, (): ()| async move {
            let s: String = p
                .step("x", || async { Ok::<_, StepError>("seven".to_owned()) })
                .await?;
            let go: String = p.wait("go").await;
            Ok::<_, StepFailed>(format!("{s} {go}"))
        })
    }
}

async fn journal_that_no_longer_fits_blocks_untouched_and_retry_resumes(fx: Fixture) {
    let host = typed_kind(fx.builder().await, false).await.build();
    host.spawn("typed", "t-1", &()).await.expect("spawn");
    let record = wait_for(&host, "t-1", |s| s == Status::Suspended).await;
    let before = host.store().journal(&record.id).await.expect("journal");
    drop(host);

    // A deploy changed the step's type: the process blocks, naming the step.
    let host = typed_kind(fx.builder().await, true).await.build();
    host.signal("t-1", "go", "now").await.expect("signal");
    let blocked = wait_for(&host, "t-1", |s| s == Status::Blocked).await;
    assert_eq!(blocked.blocked_step.as_deref(), Some("x"));
    let reason = blocked.error.clone().unwrap_or_default();
    assert!(reason.contains("no longer decodes into u64"), "{reason}");
    let after = host.store().journal(&record.id).await.expect("journal");
    assert_eq!(before, after, "the journal is untouched");
    drop(host);

    // The code is fixed: retry resumes from the journal.
    let host = typed_kind(fx.builder().await, false).await.build();
    host.retry("t-1").await.expect("retry");
    let out: String = host.outcome("t-1").await.expect("outcome");
    assert_eq!(out, "seven now");
}

async fn removed_step_blocks_instead_of_silently_skipping(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("k", |p: Process, (): ()| async move {
            p.step("old step", || async { Ok::<_, StepError>(1) })
                .await?;
            p.wait::<()>("go").await;
            Ok::<_, StepFailed>(())
        })
        .build();
    host.spawn("k", "k-1", &()).await.expect("spawn");
    wait_for(&host, "k-1", |s| s == Status::Suspended).await;
    drop(host);
    let host = fx
        .builder()
        .await
        .register("k", |p: Process, (): ()| async move {
            p.step("new step", || async { Ok::<_, StepError>(1) })
                .await?;
            p.wait::<()>("go").await;
            Ok::<_, StepFailed>(())
        })
        .build();
    host.signal("k-1", "go", &()).await.expect("signal");
    let blocked = wait_for(&host, "k-1", |s| s == Status::Blocked).await;
    let reason = blocked.error.unwrap_or_default();
    assert!(
        reason.contains("\"old step\"") && reason.contains("\"new step\""),
        "{reason}"
    );
}

async fn retries_then_success_records_attempts(fx: Fixture) {
    let tries = counter();
    let t = Arc::clone(&tries);
    let host = fx
        .builder()
        .await
        .register("flaky", move |p: Process, (): ()| {
            let t = Arc::clone(&t);
            async move {
                p.step("call", || async {
                    if t.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(StepError::retryable("busy"))
                    } else {
                        Ok(42)
                    }
                })
                .retry(RetryPolicy::exponential(5).initial_delay(Duration::from_millis(1)))
                .await
            }
        })
        .build();
    host.spawn("flaky", "f-1", &()).await.expect("spawn");
    let out: i32 = host.outcome("f-1").await.expect("outcome");
    assert_eq!(out, 42);
    let journal = host
        .store()
        .journal(&"f-1".try_into().expect("id"))
        .await
        .expect("journal");
    assert_eq!(journal[0].attempts, 3);
    assert_eq!(journal[0].status, EntryStatus::Completed);
}

async fn permanent_failure_is_journaled_and_returned_for_compensation(fx: Fixture) {
    let tries = counter();
    let compensations = counter();
    let register = |b: HostBuilder, tries: Arc<AtomicUsize>, comp: Arc<AtomicUsize>| {
        b.register("saga", move |p: Process, (): ()| {
            let (tries, comp) = (Arc::clone(&tries), Arc::clone(&comp));
            async move {
                let charged = p
                    .step("charge", || async {
                        tries.fetch_add(1, Ordering::SeqCst);
                        Err::<(), _>(StepError::permanent("card declined"))
                    })
                    .await;
                let failure = charged.expect_err("declined");
                assert!(failure.permanent);
                assert_eq!(failure.attempts, 1);
                p.step("refund", || async {
                    comp.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, StepError>(())
                })
                .await?;
                p.wait::<()>("done").await;
                Ok::<_, StepFailed>(failure.message)
            }
        })
    };
    let host = register(
        fx.builder().await,
        Arc::clone(&tries),
        Arc::clone(&compensations),
    )
    .build();
    host.spawn("saga", "s-1", &()).await.expect("spawn");
    wait_for(&host, "s-1", |s| s == Status::Suspended).await;
    drop(host);
    let host = register(
        fx.builder().await,
        Arc::clone(&tries),
        Arc::clone(&compensations),
    )
    .build();
    host.signal("s-1", "done", &()).await.expect("signal");
    let out: String = host.outcome("s-1").await.expect("outcome");
    assert_eq!(out, "card declined");
    assert_eq!(
        tries.load(Ordering::SeqCst),
        1,
        "a journaled failure is not retried on replay"
    );
    assert_eq!(compensations.load(Ordering::SeqCst), 1);
    let journal = host
        .store()
        .journal(&"s-1".try_into().expect("id"))
        .await
        .expect("journal");
    assert_eq!(journal[0].status, EntryStatus::Failed);
}

async fn step_timeout_fails_the_attempt(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("slow", |p: Process, (): ()| async move {
            let r = p
                .step("slow call", || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, StepError>(())
                })
                .timeout(Duration::from_millis(20))
                .retry(RetryPolicy::exponential(2).initial_delay(Duration::from_millis(1)))
                .await;
            let failed = r.expect_err("timed out");
            Ok::<_, StepFailed>((failed.timed_out, failed.attempts))
        })
        .build();
    host.spawn("slow", "slow-1", &()).await.expect("spawn");
    let out: (bool, u32) = host.outcome("slow-1").await.expect("outcome");
    assert_eq!(out, (true, 2));
}

async fn signal_sent_before_the_wait_is_kept(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("late", |p: Process, (): ()| async move {
            p.sleep("nap", Duration::from_millis(100)).await;
            let v: u32 = p.wait("value").await;
            Ok::<_, StepFailed>(v)
        })
        .build();
    host.spawn("late", "l-1", &()).await.expect("spawn");
    host.signal("l-1", "value", &7u32).await.expect("signal");
    host.signal("l-1", "value", &8u32)
        .await
        .expect("second signal");
    let out: u32 = host.outcome("l-1").await.expect("outcome");
    assert_eq!(out, 7, "the oldest signal is consumed first");
    let pending = host
        .store()
        .pending_signals(&"l-1".try_into().expect("id"))
        .await;
    assert_eq!(
        pending.expect("pending").len(),
        1,
        "the second signal is kept"
    );
}

async fn wait_timeout_yields_none_and_a_late_signal_is_not_lost(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("patient", |p: Process, (): ()| async move {
            let first: Option<u32> = p
                .wait("v")
                .name("first try")
                .timeout(Duration::from_millis(50))
                .await;
            let second: Option<u32> = p
                .wait("v")
                .name("second try")
                .timeout(Duration::from_secs(3600))
                .await;
            Ok::<_, StepFailed>((first, second))
        })
        .build();
    host.spawn("patient", "p-1", &()).await.expect("spawn");
    wait_for(&host, "p-1", |s| s == Status::Suspended).await;
    let record = loop {
        let r = host.status("p-1").await.expect("status");
        if r.wake_at
            .is_some_and(|w| w > host.clock().now() + Duration::from_secs(60))
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(record.status, Status::Suspended);
    host.signal("p-1", "v", &5u32).await.expect("signal");
    let out: (Option<u32>, Option<u32>) = host.outcome("p-1").await.expect("outcome");
    assert_eq!(out, (None, Some(5)));
}

/// A sleeping process keeps its timer across a crash: half an hour in, the
/// host is killed and replaced; the timer fires at the original due time
/// (not an hour after the restart), and the replay does not re-run the step
/// before it.
async fn timer_survives_restart_without_restarting(fx: Fixture) {
    let before = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&before);
    let t = fx
        .test_host(move |b: HostBuilder| {
            let counter = Arc::clone(&counter);
            b.register("sleeper", move |p: Process, (): ()| {
                let counter = Arc::clone(&counter);
                async move {
                    p.step("before", move || {
                        let counter = Arc::clone(&counter);
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, StepError>(())
                        }
                    })
                    .await?;
                    p.sleep("an hour passed", Duration::from_secs(3600)).await;
                    Ok::<_, StepFailed>(())
                }
            })
        })
        .await;
    t.host().spawn("sleeper", "z-1", &()).await.expect("spawn");
    let first = t.settle("z-1").await;
    assert_eq!(first.status, Status::Suspended);
    let due = first.wake_at.expect("due time");
    assert_eq!(due, first.created_at + Duration::from_secs(3600));

    t.advance(Duration::from_secs(1800)).await;
    t.crash_and_restart().await;
    assert_eq!(
        t.status("z-1").await.wake_at,
        Some(due),
        "a restart does not restart the timer"
    );
    // At the original due time (half an hour after the restart) it fires.
    t.advance(Duration::from_secs(1800)).await;
    let finished = tokio::time::timeout(Duration::from_secs(30), t.host().outcome::<()>("z-1"))
        .await
        .expect("the timer fired at its original due time");
    finished.expect("outcome");
    assert_eq!(
        before.load(Ordering::SeqCst),
        1,
        "the replay returned the recorded step"
    );
    let timer = t
        .journal("z-1")
        .await
        .into_iter()
        .find(|e| e.name == "an hour passed")
        .expect("timer entry");
    assert_eq!(timer.due_at, Some(due));
    assert_eq!(timer.status, EntryStatus::Completed);
}

async fn spawn_is_idempotent_and_bad_input_is_refused(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("echo", |p: Process, n: u32| async move {
            p.wait::<()>("never").await;
            Ok::<_, StepFailed>(n)
        })
        .build();
    assert_eq!(
        host.spawn("echo", "e-1", &1u32).await.expect("spawn"),
        Spawned::Created
    );
    assert_eq!(
        host.spawn("echo", "e-1", &1u32).await.expect("again"),
        Spawned::Existing
    );
    let conflict = host
        .spawn("echo", "e-1", &2u32)
        .await
        .expect_err("conflict");
    assert!(
        matches!(conflict, Error::Store(StoreError::SpawnConflict { .. })),
        "{conflict}"
    );
    let unknown = host
        .spawn("nope", "e-2", &1u32)
        .await
        .expect_err("unknown kind");
    assert!(matches!(unknown, Error::UnknownKind { .. }), "{unknown}");
    let mistyped = host
        .spawn("echo", "e-3", "not a number")
        .await
        .expect_err("mistyped");
    assert!(mistyped.to_string().contains("u32"), "{mistyped}");
    let malformed = host
        .spawn_json("echo", "e-4", "{oops")
        .await
        .expect_err("malformed");
    assert!(
        malformed.to_string().contains("not valid JSON"),
        "{malformed}"
    );
    assert!(matches!(
        host.spawn("echo", "", &1u32).await,
        Err(Error::InvalidId(_))
    ));
    let missing = host
        .signal("ghost", "x", &())
        .await
        .expect_err("unknown id");
    assert!(
        matches!(missing, Error::Store(StoreError::NotFound(_))),
        "{missing}"
    );
    for id in ["e-3", "e-4"] {
        assert!(host.status(id).await.is_err(), "nothing stored for {id}");
    }
}

async fn cancel_stops_a_waiting_process(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("waiter", |p: Process, (): ()| async move {
            p.wait::<()>("never").await;
            Ok::<_, StepFailed>(())
        })
        .build();
    host.spawn("waiter", "w-1", &()).await.expect("spawn");
    wait_for(&host, "w-1", |s| s == Status::Suspended).await;
    assert_eq!(host.cancel("w-1").await.expect("cancel"), Status::Cancelled);
    let outcome = host.outcome::<()>("w-1").await.expect_err("cancelled");
    assert!(matches!(outcome, Error::Cancelled { .. }));
    assert!(
        host.signal("w-1", "never", &()).await.is_err(),
        "finished processes take no signals"
    );
}

async fn parallel_steps_and_first_of_several_waits(fx: Fixture) {
    let host = fx
        .builder()
        .await
        .register("par", |p: Process, (): ()| async move {
            let (a, b) = tokio::join!(
                p.step("a", || async { Ok::<_, StepError>(1) }),
                p.step("b", || async { Ok::<_, StepError>(2) }),
            );
            let mut timer = p.sleep("long timer", Duration::from_secs(3600));
            let mut left = p.wait::<String>("left").into_future();
            let mut right = p.wait::<String>("right").into_future();
            let winner = tokio::select! {
                () = &mut timer => "timer".to_owned(),
                l = &mut left => l,
                r = &mut right => r,
            };
            Ok::<_, StepFailed>((a? + b?, winner))
        })
        .build();
    host.spawn("par", "par-1", &()).await.expect("spawn");
    wait_for(&host, "par-1", |s| s == Status::Suspended).await;
    host.signal("par-1", "right", "right won")
        .await
        .expect("signal");
    let out: (i32, String) = host.outcome("par-1").await.expect("outcome");
    assert_eq!(out, (3, "right won".to_owned()));
}

async fn two_hosts_on_one_file_never_run_a_process_twice(fx: Fixture) {
    use std::collections::HashMap;
    use std::sync::Mutex;

    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let register = |b: HostBuilder, runs: Arc<Mutex<HashMap<String, usize>>>| {
        b.register("count", move |p: Process, (): ()| {
            let runs = Arc::clone(&runs);
            async move {
                for i in 0..3 {
                    let key = format!("{}/{i}", p.id());
                    p.step(format!("step {i}"), || async {
                        *runs.lock().expect("lock").entry(key.clone()).or_default() += 1;
                        Ok::<_, StepError>(i)
                    })
                    .await?;
                }
                Ok::<_, StepFailed>(())
            }
        })
    };
    let a = register(fx.builder().await, Arc::clone(&runs)).build();
    let b = register(fx.builder().await, Arc::clone(&runs)).build();
    for n in 0..200 {
        let host = if n % 2 == 0 { &a } else { &b };
        host.spawn("count", &format!("c-{n}"), &())
            .await
            .expect("spawn");
    }
    for n in 0..200 {
        let () = a.outcome(&format!("c-{n}")).await.expect("outcome");
    }
    let runs = runs.lock().expect("lock");
    assert_eq!(runs.len(), 600);
    assert!(
        runs.values().all(|&n| n == 1),
        "every closure ran exactly once"
    );
}

async fn rewind_reruns_from_a_step_and_purge_forgets_old_processes(fx: Fixture) {
    let runs = counter();
    let r = Arc::clone(&runs);
    let host = fx
        .builder()
        .await
        .register("again", move |p: Process, (): ()| {
            let r = Arc::clone(&r);
            async move {
                p.step("one", || async { Ok::<_, StepError>(1) }).await?;
                let n = p
                    .step("two", || async {
                        Ok::<_, StepError>(r.fetch_add(1, Ordering::SeqCst) + 1)
                    })
                    .await?;
                let word: String = p.wait("word").await;
                Ok::<_, StepFailed>(format!("{word} {n}"))
            }
        })
        .build();
    host.spawn("again", "a-1", &()).await.expect("spawn");
    host.signal("a-1", "word", "first").await.expect("signal");
    let out: String = host.outcome("a-1").await.expect("outcome");
    assert_eq!(out, "first 1");

    let dropped = host.rewind("a-1", "two").await.expect("rewind");
    assert_eq!(dropped, 2, "two and word");
    let out: String = host.outcome("a-1").await.expect("outcome");
    assert_eq!(
        out, "first 2",
        "step two ran again, the signal was handed back"
    );

    let missing = host.rewind("a-1", "nope").await.expect_err("unknown step");
    assert!(missing.to_string().contains("nope"), "{missing}");
    assert_eq!(
        host.purge(Duration::from_secs(3600)).await.expect("purge"),
        0
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(host.purge(Duration::ZERO).await.expect("purge"), 1);
    assert!(host.status("a-1").await.is_err(), "purged");
}

/// A transactional step on SQLite: its SQL and its journal entry commit
/// together, so a replay never runs it again and a failed body leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transaction_commits_effects_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("engine.db");
    let builder = || {
        let path = path.clone();
        async move {
            Host::builder(SqliteStore::open(path).await.expect("open store"))
                .poll_interval(Duration::from_millis(20))
        }
    };
    let register = |b: HostBuilder| {
        b.retry(RetryPolicy::exponential(3).initial_delay(Duration::from_millis(1)))
            .register(
                "ledger",
                |p: Process<SqliteStore>, amount: i64| async move {
                    let flaky = Arc::new(AtomicUsize::new(0));
                    let id = p.id().to_string();
                    let row = p
                        .transaction("booked", move |conn| {
                            conn.execute(
                                "CREATE TABLE IF NOT EXISTS ledger (process TEXT, amount INTEGER)",
                                [],
                            )
                            .map_err(StepError::retryable)?;
                            conn.execute("INSERT INTO ledger VALUES (?1, ?2)", (&id, amount))
                                .map_err(StepError::retryable)?;
                            // The first attempt fails after its insert: it must be rolled back.
                            if flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                                return Err(StepError::retryable("lock timeout"));
                            }
                            Ok(conn.last_insert_rowid())
                        })
                        .await?;
                    let refused = p
                        .transaction("refused", |conn| {
                            conn.execute("INSERT INTO ledger VALUES ('refused', 0)", [])
                                .map_err(StepError::retryable)?;
                            Err::<(), _>(StepError::permanent("over the limit"))
                        })
                        .await;
                    p.wait::<()>("go").await;
                    Ok::<_, StepFailed>((row, refused.is_err()))
                },
            )
    };
    let host = register(builder().await).build();
    host.spawn("ledger", "l-1", &250i64).await.expect("spawn");
    wait_for(&host, "l-1", |s| s == Status::Suspended).await;
    drop(host);

    let host = register(builder().await).build();
    host.signal("l-1", "go", &()).await.expect("signal");
    let (row, refused): (i64, bool) = host.outcome("l-1").await.expect("outcome");
    assert!(refused);
    assert!(row > 0);

    let conn = steadfast::rusqlite::Connection::open(&path).expect("open");
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT process, amount FROM ledger")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
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
    assert_eq!(journal[0].name, "booked");
    assert_eq!(journal[0].attempts, 2);
    assert_eq!(journal[1].status, EntryStatus::Failed);
}

/// `#[steadfast::process]` captures the function's source at compile time,
/// and a host saves it in its store, where tools find the lines its journal
/// entries point at.
#[steadfast::process]
async fn captured(p: Process, (): ()) -> Result<u32, StepFailed> {
    let n = p
        .step("counted", || async { Ok::<_, StepError>(7) })
        .await?;
    p.wait::<()>("go").await;
    Ok(n)
}

async fn process_sources_are_captured_and_saved(fx: Fixture) {
    let host = fx.builder().await.register("captured", captured).build();
    host.spawn("captured", "c-1", &()).await.expect("spawn");
    let record = wait_for(&host, "c-1", |s| s == Status::Suspended).await;
    let sources = host.store().sources().await.expect("sources");
    let source = sources
        .iter()
        .find(|s| s.name == "captured")
        .expect("the source was saved");
    assert!(source.file.ends_with("tests/engine.rs"), "{source:?}");
    assert!(
        source
            .text
            .contains("#[steadfast::process]\nasync fn captured("),
        "{source:?}"
    );
    let journal = host.store().journal(&record.id).await.expect("journal");
    let step_line = journal[0].location.as_ref().expect("location");
    assert!(
        source.contains(step_line),
        "the step's line is inside the source"
    );
    let lines: Vec<&str> = source.text.lines().collect();
    let at = (step_line.line - source.first_line) as usize;
    assert!(lines[at].contains(".step(\"counted\""), "{}", lines[at]);
    let parked = &record.parked_at[0];
    assert!(lines[(parked.line - source.first_line) as usize].contains("p.wait::<()>(\"go\")"));
}

async fn check_replays_journals_against_new_code_without_running_anything(fx: Fixture) {
    use steadfast::Verdict;
    let host = typed_kind(fx.builder().await, false).await.build();
    host.spawn("typed", "t-ok", &()).await.expect("spawn");
    wait_for(&host, "t-ok", |s| s == Status::Suspended).await;
    let before = host
        .store()
        .journal(&"t-ok".try_into().expect("id"))
        .await
        .expect("journal");
    drop(host);

    // The same code: the journal fits.
    let same = typed_kind(fx.builder().await, false).await.build_client();
    let reports = same.check().await.expect("check");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].verdict, Verdict::Fits);

    // Changed code: the step's type changed, the check names it.
    let changed = typed_kind(fx.builder().await, true).await.build_client();
    let reports = changed.check().await.expect("check");
    match &reports[0].verdict {
        Verdict::Blocks { step, reason } => {
            assert_eq!(step.as_deref(), Some("x"));
            assert!(reason.contains("no longer decodes into u64"), "{reason}");
        }
        other => panic!("expected a block, got {other:?}"),
    }
    // Nothing changed in the store.
    let record = changed.status("t-ok").await.expect("status");
    assert_eq!(record.status, Status::Suspended);
    let after = changed.store().journal(&record.id).await.expect("journal");
    assert_eq!(before, after);

    // A kind the checking host does not know.
    let unknown = fx.builder().await.build_client();
    let reports = unknown.check().await.expect("check");
    assert!(
        matches!(&reports[0].verdict, Verdict::Blocks { reason, .. } if reason.contains("not registered"))
    );
}

/// Several versions of a kind: running processes finish on the code they
/// started with, new ones start on the newest; a version that is gone
/// blocks its processes with a clear reason.
async fn processes_keep_the_version_they_started_with(fx: Fixture) {
    let v1 = |p: Process, (): ()| async move {
        p.wait::<()>("go").await;
        Ok::<_, StepFailed>("v1".to_owned())
    };
    let v2 = |p: Process, (): ()| async move {
        p.wait::<()>("go").await;
        Ok::<_, StepFailed>("v2".to_owned())
    };
    let host = fx.builder().await.register("flow", v1).build();
    host.spawn("flow", "old", &()).await.expect("spawn");
    assert_eq!(
        wait_for(&host, "old", |s| s == Status::Suspended)
            .await
            .version,
        1
    );
    drop(host);

    let host = fx
        .builder()
        .await
        .register_version("flow", 1, v1)
        .register_version("flow", 2, v2)
        .build();
    host.spawn("flow", "new", &()).await.expect("spawn");
    assert_eq!(
        wait_for(&host, "new", |s| s == Status::Suspended)
            .await
            .version,
        2
    );
    for id in ["old", "new"] {
        host.signal(id, "go", &()).await.expect("signal");
    }
    let old: String = host.outcome("old").await.expect("old");
    let new: String = host.outcome("new").await.expect("new");
    assert_eq!((old.as_str(), new.as_str()), ("v1", "v2"));

    host.spawn("flow", "older", &()).await.expect("spawn");
    wait_for(&host, "older", |s| s == Status::Suspended).await;
    drop(host);
    // A deploy that dropped version 2 too early: the process blocks, named.
    let host = fx.builder().await.register_version("flow", 3, v2).build();
    host.signal("older", "go", &()).await.expect("signal");
    let blocked = wait_for(&host, "older", |s| s == Status::Blocked).await;
    let reason = blocked.error.unwrap_or_default();
    assert!(
        reason.contains("version 2 of process kind \"flow\""),
        "{reason}"
    );
}

/// One `#[tokio::test]` per scenario and store.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fx) = super::Fixture::postgres().await {
                        super::$name(fx).await;
                    }
                }
            )*
        }
    };
}

scenarios!(
    replay_after_restart_does_not_rerun_steps,
    step_name_used_twice_blocks_the_process,
    journal_that_no_longer_fits_blocks_untouched_and_retry_resumes,
    removed_step_blocks_instead_of_silently_skipping,
    retries_then_success_records_attempts,
    permanent_failure_is_journaled_and_returned_for_compensation,
    step_timeout_fails_the_attempt,
    signal_sent_before_the_wait_is_kept,
    wait_timeout_yields_none_and_a_late_signal_is_not_lost,
    timer_survives_restart_without_restarting,
    spawn_is_idempotent_and_bad_input_is_refused,
    cancel_stops_a_waiting_process,
    parallel_steps_and_first_of_several_waits,
    two_hosts_on_one_file_never_run_a_process_twice,
    rewind_reruns_from_a_step_and_purge_forgets_old_processes,
    process_sources_are_captured_and_saved,
    check_replays_journals_against_new_code_without_running_anything,
    processes_keep_the_version_they_started_with,
);
