//! A worker SIGKILLed at random moments while it consumes and publishes, on
//! the real brokers, over 2,000 processes: none lost, no signal stored
//! twice for a process, every published message received at least once and
//! exactly once after dedupe by id, nothing dead-lettered.
//!
//! The worker is this test binary run again as a child process (the test
//! `crash_worker` does the work only when `STEADFAST_BUS_CRASH_WORKER` is
//! set), so a kill is a real `kill -9` of a real process.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use steadfast::{Host, Process, SqliteStore, Status, StepFailed};
use steadfast_bus::route::{Route, Selector};
use steadfast_bus::{OutgoingMessage, Publisher, Subscription};
use support::{Broker, Env};

const WORKER_ENV: &str = "STEADFAST_BUS_CRASH_WORKER";
const PROCESSES: u32 = 2_000;

#[derive(Debug, Serialize, Deserialize)]
struct Placed {
    order: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Paid {
    amount: u64,
}

/// Waits to be paid, then publishes that the order is done.
async fn order(
    p: Process,
    input: Placed,
    bus: Publisher,
    destination: String,
) -> Result<u64, StepFailed> {
    let paid: Paid = p.wait("paid").await;
    bus.publish(
        &p,
        "order done",
        &destination,
        &serde_json::json!({"order": input.order, "amount": paid.amount}),
    )
    .await?;
    Ok(paid.amount)
}

#[derive(Debug, Serialize, Deserialize)]
struct WorkerConfig {
    db: String,
    broker: String,
    input: String,
    output: String,
}

/// The worker: a host on the SQLite file, one subscription, one publisher.
/// Does nothing unless run as the child of the crash test.
#[test]
fn crash_worker() {
    let Ok(config) = std::env::var(WORKER_ENV) else {
        return;
    };
    let config: WorkerConfig = serde_json::from_str(&config).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let broker = if config.broker == "rabbitmq" {
            Broker::RabbitMq
        } else {
            Broker::JetStream
        };
        let input = Env::named(broker, &config.input);
        let output = Env::named(broker, &config.output);
        let store = SqliteStore::open(&config.db).await.unwrap();
        let bus = Publisher::from_arc(Arc::from(output.sink().await));
        let destination = output.destination();
        let host = Host::builder(store)
            .max_concurrency(500)
            .register("order", move |p: Process, input: Placed| {
                order(p, input, bus.clone(), destination.clone())
            })
            .build();
        let routes = vec![
            Route::spawn("order", Selector::field("order").prefix("order-"))
                .when(Selector::header("type"), "OrderPlaced"),
            Route::signal("paid", Selector::field("order").prefix("order-"))
                .when(Selector::header("type"), "Paid"),
        ];
        let _running = Subscription::new("orders", host, routes)
            .unwrap()
            .concurrency(32)
            .start(input.source().await);
        std::future::pending::<()>().await;
    });
}

/// Starts and SIGKILLs workers at random moments until told to stop.
async fn killer(config: String, stop: Arc<AtomicBool>, kills: Arc<AtomicU32>) {
    let exe = std::env::current_exe().unwrap();
    loop {
        let mut child = tokio::process::Command::new(&exe)
            .args(["--exact", "crash_worker", "--nocapture", "--test-threads=1"])
            .env(WORKER_ENV, &config)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let wait = rand::rng().random_range(200..1_500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.start_kill().unwrap(); // SIGKILL
        let _ = child.wait().await;
        kills.fetch_add(1, Ordering::SeqCst);
        if stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

async fn count(store: &SqliteStore, status: Status) -> u64 {
    use steadfast::StoreAdmin;
    store.counts().await.map(|c| c.of(status)).unwrap_or(0)
}

async fn killed_worker_loses_nothing_and_doubles_nothing(broker: Broker) {
    let input = Env::new(broker, "crashin").await;
    let output = Env::new(broker, "crashout").await;
    drop(input.source().await);
    drop(output.source().await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    // Create the file before the first worker so the test can read it.
    SqliteStore::open(&db).await.unwrap().close().await.unwrap();
    let config = serde_json::to_string(&WorkerConfig {
        db: db.display().to_string(),
        broker: match broker {
            Broker::RabbitMq => "rabbitmq".into(),
            Broker::JetStream => "jetstream".into(),
        },
        input: input.name.clone(),
        output: output.name.clone(),
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killing = tokio::spawn(killer(config, Arc::clone(&stop), Arc::clone(&kills)));

    let sink = input.sink().await;
    let send = |id: String, kind: &str, body: serde_json::Value| {
        OutgoingMessage::json(input.destination(), id, &body)
            .unwrap()
            .header("type", kind)
    };
    for i in 0..PROCESSES {
        let m = send(
            format!("placed-{i}"),
            "OrderPlaced",
            serde_json::json!({"order": i}),
        );
        sink.publish(&m).await.unwrap();
    }
    let reader = SqliteStore::open_read_only(&db).await.unwrap();
    support::eventually_for(Duration::from_secs(600), "every order spawned", || async {
        count(&reader, Status::Suspended).await == u64::from(PROCESSES)
    })
    .await;
    for i in 0..PROCESSES {
        let m = send(
            format!("paid-{i}"),
            "Paid",
            serde_json::json!({"order": i, "amount": i * 10}),
        );
        sink.publish(&m).await.unwrap();
    }
    support::eventually_for(Duration::from_secs(600), "every order done", || async {
        count(&reader, Status::Completed).await == u64::from(PROCESSES)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    killing.await.unwrap();
    drop(reader);
    let kills = kills.load(Ordering::SeqCst);
    assert!(kills >= 2, "the worker was killed {kills} times");

    // No signal stored twice for a process, none lost.
    let store = SqliteStore::open(&db).await.unwrap();
    let host = Host::builder(store).build_client();
    for i in 0..PROCESSES {
        let id = format!("order-{i}");
        let amount: u64 = host.outcome(&id).await.unwrap();
        assert_eq!(amount, u64::from(i) * 10);
        let signals = host.signals(&id).await.unwrap();
        assert_eq!(
            signals.len(),
            1,
            "{id} got {} signals: {signals:?}",
            signals.len()
        );
    }
    // Every published message at least once; exactly once by id.
    let ids = support::ids_before_sentinel(&output).await;
    let mut by_id: BTreeMap<String, u32> = BTreeMap::new();
    for id in &ids {
        *by_id.entry(id.clone()).or_default() += 1;
    }
    let expected: Vec<String> = (0..PROCESSES)
        .map(|i| format!("order-{i}/order done"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(by_id.keys().cloned().collect::<Vec<_>>(), expected);
    let duplicates = ids.len() - by_id.len();
    // Nothing was dead-lettered.
    assert_eq!(
        support::dead_letters_before_sentinel(&input).await,
        Vec::<String>::new()
    );
    eprintln!(
        "{broker:?}: {PROCESSES} processes, {kills} kills, {} messages published, {duplicates} re-published (deduped by id)",
        ids.len()
    );
    input.cleanup().await;
    output.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_killed_worker_loses_nothing_and_doubles_nothing() {
    killed_worker_loses_nothing_and_doubles_nothing(Broker::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_killed_worker_loses_nothing_and_doubles_nothing() {
    killed_worker_loses_nothing_and_doubles_nothing(Broker::JetStream).await;
}
