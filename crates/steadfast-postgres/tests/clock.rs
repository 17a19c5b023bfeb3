//! Many machines, one clock: two workers on one PostgreSQL database, one
//! of them with its clock 5 s ahead (through the clock abstraction). The
//! database's clock decides lease expiry and due times, so the fast worker
//! neither takes over live leases (running steps twice) nor fires timers
//! early; and it measures its offset as about 5 s.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use steadfast::{HostBuilder, Process, StepFailed};
use steadfast_core::{OffsetClock, SystemClock};

/// How many processes the two workers share.
const PROCESSES: usize = 1_000;
/// The fast worker's clock offset.
const AHEAD: Duration = Duration::from_secs(5);
/// Shorter than the offset: a worker deciding by its own clock would see
/// the other's live leases as expired.
const LEASE: Duration = Duration::from_secs(3);
/// The timer each process sleeps on.
const NAP: Duration = Duration::from_secs(2);

type Runs = Arc<Mutex<HashMap<(String, &'static str), u32>>>;

fn lock(runs: &Runs) -> MutexGuard<'_, HashMap<(String, &'static str), u32>> {
    runs.lock().unwrap_or_else(|p| p.into_inner())
}

/// A step, a durable timer, a step; every closure run is counted.
async fn nap(p: Process, runs: Runs) -> Result<(), StepFailed> {
    let id = p.id().as_str().to_owned();
    for (name, when) in [("before", 0), ("after", 1)] {
        if when == 1 {
            p.sleep("nap", NAP).await;
        }
        let runs = Arc::clone(&runs);
        let id = id.clone();
        p.step(name, move || {
            *lock(&runs).entry((id.clone(), name)).or_default() += 1;
            async move {
                // Long enough that runs hold their leases across heartbeats.
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(())
            }
        })
        .await?;
    }
    Ok(())
}

fn worker(
    store: steadfast_postgres::PostgresStore,
    runs: &Runs,
    name: &str,
    clock: impl steadfast_core::Clock,
) -> steadfast::Host {
    let runs = Arc::clone(runs);
    recorder();
    HostBuilder::new(store)
        .host_id(name)
        .clock(clock)
        .lease(LEASE)
        .register("nap", move |p: Process, _: ()| nap(p, Arc::clone(&runs)))
        .build()
}

/// This test binary's `metrics` recorder (the Prometheus exporter).
fn recorder() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder in this test binary")
    })
}

/// The clock offset gauge of host `host` as exported.
fn offset_metric(host: &steadfast::Host) -> f64 {
    let metrics = recorder().render();
    let wanted = format!("steadfast_clock_offset_seconds{{host=\"{}\"}} ", host.id());
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no clock offset metric of {} in:\n{metrics}", host.id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_five_seconds_ahead_neither_steals_live_leases_nor_fires_timers_early() {
    if !common::reachable().await {
        return;
    }
    let guard = common::SchemaGuard::new();
    // Two stores with their own connections, like two machines.
    let (store_a, store_b) = (guard.store().await, guard.store().await);
    let runs: Runs = Arc::default();
    let on_time = worker(store_a, &runs, "on-time", SystemClock);
    let ahead = worker(store_b, &runs, "ahead", OffsetClock::ahead(AHEAD));

    let ids: Vec<String> = (0..PROCESSES).map(|i| format!("nap-{i:04}")).collect();
    let mut spawns = tokio::task::JoinSet::new();
    for (n, id) in ids.iter().enumerate() {
        let host = if n % 2 == 0 { &on_time } else { &ahead }.clone();
        let id = id.clone();
        spawns.spawn(async move { host.spawn("nap", &id, &()).await.map(|_| ()) });
    }
    while let Some(spawned) = spawns.join_next().await {
        spawned.expect("a spawn task").expect("spawn");
    }
    for id in &ids {
        on_time
            .outcome::<()>(id)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }

    // No crash aborted a run, so every step ran exactly once.
    let runs = lock(&runs).clone();
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "{} steps ran more than once (of {}), e.g. {:?}",
        twice.len(),
        runs.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(runs.len(), 2 * PROCESSES);

    // By the database's clock: every timer is due 2 s after it was set, and
    // none fired before it was due.
    let mut admin = common::admin().await;
    let journal = format!("\"{}\".journal", guard.schema);
    let (timers, early, off): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*),
             count(*) FILTER (WHERE db_finished_at < due_at),
             count(*) FILTER (WHERE abs(due_at - db_started_at - $1) > 1000000)
         FROM {journal} WHERE kind = 'timer' AND status = 'completed'"
    )))
    .bind(i64::try_from(NAP.as_micros()).expect("small"))
    .fetch_one(&mut admin)
    .await
    .expect("timers in the journal");
    assert_eq!(timers, PROCESSES as i64, "every process's timer fired");
    assert_eq!(
        early, 0,
        "timers fired before their due time by the database's clock"
    );
    assert_eq!(
        off, 0,
        "timers whose due time is not the database's time of setting plus 2 s"
    );

    let measured = offset_metric(&ahead);
    assert!(
        (measured - AHEAD.as_secs_f64()).abs() < 0.5,
        "the fast worker's measured offset is {measured} s"
    );
    assert_eq!(ahead.clock_offset(), Some(measured));
    let measured = offset_metric(&on_time);
    assert!(
        measured.abs() < 0.5,
        "the on-time worker's offset is {measured} s"
    );

    on_time.shutdown().await;
    ahead.shutdown().await;
}

/// A host on a scaled clock (demos, `--time-scale`) makes the store follow
/// its time: an hour's sleep passes in a second of real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_clock_drives_the_store() {
    if !common::reachable().await {
        return;
    }
    let guard = common::SchemaGuard::new();
    let store = guard.store().await;
    let clock = steadfast_core::ScaledClock::new(steadfast_core::Timestamp::now_system(), 3600.0);
    let host = HostBuilder::new(store.clone())
        .clock(clock)
        .register("hour", |p: Process, _: ()| async move {
            p.sleep("an hour", Duration::from_secs(3600)).await;
            Ok::<_, StepFailed>(())
        })
        .build();
    assert_eq!(
        steadfast_core::Store::store_time(&store)
            .await
            .expect("store time"),
        None,
        "the store follows the host's scaled clock"
    );
    host.spawn("hour", "sleeper", &()).await.expect("spawn");
    host.outcome::<()>("sleeper")
        .await
        .expect("the hour passed");
    assert_eq!(host.clock_offset(), None, "no offset from a followed clock");
    host.shutdown().await;
}
