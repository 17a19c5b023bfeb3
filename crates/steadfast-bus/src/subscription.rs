//! A subscription: messages from a [`MessageSource`] routed into spawns
//! and signals, acknowledged only once the store has them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::core::{MAX_DEAD_LETTER_REASON_LEN, SubscriptionReport};
use steadfast::{Error, Host, StoreError, Timestamp};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use crate::route::{self, Action, Route};
use crate::{Backoff, Delivery, MessageSource};

/// How often a running subscription saves its figures in the store (when
/// they changed) and asks its source for the consumer lag, by default.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A running subscription saves its figures at least this many report
/// intervals apart even when nothing changed, so tools can tell a live one
/// from one that stopped without saying so.
pub const REPORT_HEARTBEAT: u32 = 10;

/// Counters of a subscription.
#[derive(Debug)]
pub struct SubscriptionStats {
    received: AtomicU64,
    spawned: AtomicU64,
    signalled: AtomicU64,
    dead_lettered: AtomicU64,
    store_retries: AtomicU64,
    settle_failures: AtomicU64,
    lag: AtomicI64,
    /// When `lag` was read (µs), -1 before.
    lag_read_at: AtomicI64,
    last_dead_letter_reason: Mutex<Option<String>>,
}

/// A copy of a subscription's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Messages received from the broker (re-deliveries count again).
    pub received: u64,
    /// Messages turned into a spawn that the store holds (an existing
    /// process included: spawns are idempotent).
    pub spawned: u64,
    /// Messages turned into a signal that the store holds.
    pub signalled: u64,
    /// Messages sent to the dead-letter destination.
    pub dead_lettered: u64,
    /// Store writes tried again after an error that may pass.
    pub store_retries: u64,
    /// Acks, nacks or dead-letterings the broker did not take (the message
    /// comes back).
    pub settle_failures: u64,
    /// Messages waiting at the broker, as last measured (`None`: unknown).
    pub lag: Option<u64>,
}

/// The last consumer lag a subscription read, and why it last
/// dead-lettered a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsDetail {
    /// When the lag in [`StatsSnapshot::lag`] was read.
    pub lag_read_at: Option<Timestamp>,
    /// Why the last dead-lettered message was dead-lettered.
    pub last_dead_letter_reason: Option<String>,
}

impl StatsSnapshot {
    /// Messages routed: spawned plus signalled.
    pub fn routed(&self) -> u64 {
        self.spawned + self.signalled
    }
}

impl Default for SubscriptionStats {
    fn default() -> Self {
        SubscriptionStats {
            received: AtomicU64::new(0),
            spawned: AtomicU64::new(0),
            signalled: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            store_retries: AtomicU64::new(0),
            settle_failures: AtomicU64::new(0),
            lag: AtomicI64::new(-1),
            lag_read_at: AtomicI64::new(-1),
            last_dead_letter_reason: Mutex::new(None),
        }
    }
}

impl SubscriptionStats {
    /// The counters in Prometheus' text format, labelled
    /// `subscription="<name>"` (HELP and TYPE lines included).
    ///
    /// ```
    /// let stats = steadfast_bus::SubscriptionStats::default();
    /// let text = stats.prometheus("orders");
    /// assert!(text.contains("steadfast_bus_messages_received_total{subscription=\"orders\"} 0"));
    /// ```
    pub fn prometheus(&self, name: &str) -> String {
        use std::fmt::Write;
        let label = name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let s = self.snapshot();
        let mut out = String::new();
        let mut metric = |metric: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            let _ = writeln!(out, "{metric}{{subscription=\"{label}\"}} {value}");
        };
        metric(
            "steadfast_bus_messages_received_total",
            "counter",
            "Messages received from the broker (re-deliveries included).",
            s.received,
        );
        metric(
            "steadfast_bus_messages_routed_total",
            "counter",
            "Messages made durable as a spawn or a signal.",
            s.routed(),
        );
        metric(
            "steadfast_bus_messages_dead_lettered_total",
            "counter",
            "Messages sent to the dead-letter destination.",
            s.dead_lettered,
        );
        metric(
            "steadfast_bus_store_retries_total",
            "counter",
            "Routed messages whose store write was tried again.",
            s.store_retries,
        );
        metric(
            "steadfast_bus_settle_failures_total",
            "counter",
            "Acks, nacks and dead-letterings the broker did not take.",
            s.settle_failures,
        );
        if let Some(lag) = s.lag {
            metric(
                "steadfast_bus_consumer_lag",
                "gauge",
                "Messages waiting at the broker for this subscription.",
                lag,
            );
        }
        out
    }

    /// When the lag was last read and the last dead-letter reason.
    pub fn detail(&self) -> StatsDetail {
        let read_at = self.lag_read_at.load(Ordering::Relaxed);
        StatsDetail {
            lag_read_at: (read_at >= 0).then(|| Timestamp::from_micros(read_at)),
            last_dead_letter_reason: self
                .last_dead_letter_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn set_lag(&self, lag: Option<u64>, now: Timestamp) {
        let lag = lag.and_then(|l| i64::try_from(l).ok()).unwrap_or(-1);
        self.lag.store(lag, Ordering::Relaxed);
        self.lag_read_at.store(now.as_micros(), Ordering::Relaxed);
    }

    fn record_dead_letter(&self, reason: &str) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        let mut cut = reason.len().min(MAX_DEAD_LETTER_REASON_LEN);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        *self
            .last_dead_letter_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason[..cut].to_owned());
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let lag = self.lag.load(Ordering::Relaxed);
        StatsSnapshot {
            received: self.received.load(Ordering::Relaxed),
            spawned: self.spawned.load(Ordering::Relaxed),
            signalled: self.signalled.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            store_retries: self.store_retries.load(Ordering::Relaxed),
            settle_failures: self.settle_failures.load(Ordering::Relaxed),
            lag: u64::try_from(lag).ok(),
        }
    }
}

/// Routes messages into a host: each message becomes a spawn or a signal by
/// the first [`Route`] that takes it, and is acknowledged to the broker only
/// once the store has made it durable — so a crash in between delivers it
/// again, and spawns (idempotent per id) and signals (recognised by the
/// message id) are not doubled.
///
/// A message that cannot be routed — not JSON, no route takes it, a field
/// missing, an unknown kind or process id, an input that does not fit the
/// kind's input type, a payload over the host's limit — is dead-lettered
/// with the reason and the subscription goes on. A store error that may
/// pass (busy, a lost connection) is retried with backoff while the message
/// holds one of the `concurrency` slots: a slow store takes slots longer,
/// the subscription receives less, and the broker's prefetch keeps the rest.
///
/// ```no_run
/// use steadfast_bus::{Subscription, route::{Route, Selector}};
/// use steadfast_bus::rabbitmq::{RabbitMqSource, RabbitMqSourceOptions};
///
/// # async fn f(host: steadfast::Host) -> Result<(), Box<dyn std::error::Error>> {
/// let routes = vec![Route::signal("email verified", Selector::field("user_id").prefix("user-"))];
/// let source = RabbitMqSource::connect(RabbitMqSourceOptions::new("email-verified")).await?;
/// let running = Subscription::new("verifications", host, routes)?.concurrency(16).start(source);
/// // ...
/// running.stop().await;
/// # Ok(()) }
/// ```
pub struct Subscription {
    name: String,
    host: Host,
    routes: Arc<Vec<Route>>,
    concurrency: usize,
    report_interval: Duration,
}

impl Subscription {
    /// A subscription named `name` routing into `host`; fails naming the
    /// first route that cannot work.
    pub fn new(name: impl Into<String>, host: Host, routes: Vec<Route>) -> Result<Self, String> {
        let name = name.into();
        if routes.is_empty() {
            return Err(format!("subscription {name:?} has no route"));
        }
        for (i, route) in routes.iter().enumerate() {
            route
                .check()
                .map_err(|e| format!("subscription {name:?}, route {}: {e}", i + 1))?;
        }
        Ok(Subscription {
            name,
            host,
            routes: Arc::new(routes),
            concurrency: 16,
            report_interval: REPORT_INTERVAL,
        })
    }

    /// How many messages are handled at once (default 16, at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How often the running subscription reads the consumer lag and saves
    /// its figures in the store ([`steadfast::StoreAdmin::save_subscription`],
    /// one row per name and host: received, routed, dead-lettered, the lag
    /// and when it was read, the last dead-letter reason) when they changed,
    /// and at least every [`REPORT_HEARTBEAT`] intervals; also once when it
    /// stops. Default [`REPORT_INTERVAL`] (1 s); at least 10 ms.
    pub fn report_interval(mut self, every: Duration) -> Self {
        self.report_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Starts receiving from `source` in the background.
    pub fn start(self, source: impl MessageSource + 'static) -> RunningSubscription {
        let stats = Arc::new(SubscriptionStats::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let name = self.name.clone();
        let task = tokio::spawn(run(self, Box::new(source), Arc::clone(&stats), stop_rx));
        RunningSubscription {
            name,
            stats,
            stop: stop_tx,
            task,
        }
    }
}

/// A subscription receiving in the background.
pub struct RunningSubscription {
    name: String,
    stats: Arc<SubscriptionStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningSubscription {
    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The shared counters (for a metrics endpoint).
    pub fn stats_handle(&self) -> Arc<SubscriptionStats> {
        Arc::clone(&self.stats)
    }

    /// Stops receiving, lets the messages in hand finish (a store retry in
    /// progress hands its message back instead) and returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How long reading the source's lag may take before the loop gives up on
/// it until the next report tick.
const LAG_READ_LIMIT: Duration = Duration::from_secs(5);

async fn run(
    sub: Subscription,
    mut source: Box<dyn MessageSource>,
    stats: Arc<SubscriptionStats>,
    mut stop: watch::Receiver<bool>,
) {
    let (reported_tx, reported_rx) = oneshot::channel();
    let reporter = tokio::spawn(report(
        Reporter {
            name: sub.name.clone(),
            source: source.name().to_owned(),
            host: sub.host.clone(),
            every: sub.report_interval,
        },
        Arc::clone(&stats),
        reported_rx,
    ));
    let slots = Arc::new(Semaphore::new(sub.concurrency));
    let mut lag_tick = tokio::time::interval(sub.report_interval);
    lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::default();
    'receive: loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let delivery = loop {
            tokio::select! {
                d = source.receive() => break d,
                _ = lag_tick.tick() => {
                    // Bounded: a connection that stopped answering must not
                    // hold the loop (and with it `stop`) in this read.
                    if let Ok(lag) = tokio::time::timeout(LAG_READ_LIMIT, source.lag()).await {
                        stats.set_lag(lag, sub.host.clock().now());
                    }
                }
                _ = stop.changed() => break 'receive,
            }
        };
        let delivery = match delivery {
            Ok(d) => {
                backoff.reset();
                d
            }
            Err(err) => {
                let wait = backoff.next_delay();
                tracing::warn!(subscription = %sub.name, error = %err, ?wait, "receiving failed");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let host = sub.host.clone();
        let routes = Arc::clone(&sub.routes);
        let stats = Arc::clone(&stats);
        let stop = stop.clone();
        let name = sub.name.clone();
        tokio::spawn(async move {
            handle(&name, &host, &routes, delivery, &stats, stop).await;
            drop(slot);
        });
    }
    // Wait for the messages in hand, then save the figures a last time.
    let all = u32::try_from(sub.concurrency).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    let _ = reported_tx.send(());
    let _ = reporter.await;
}

/// What the reporting task of a subscription needs.
struct Reporter {
    name: String,
    source: String,
    host: Host,
    every: Duration,
}

impl Reporter {
    /// The figures now, as the store keeps them.
    fn report(&self, stats: &SubscriptionStats) -> SubscriptionReport {
        let s = stats.snapshot();
        let detail = stats.detail();
        SubscriptionReport {
            name: self.name.clone(),
            host: self.host.id().as_str().to_owned(),
            source: self.source.clone(),
            received: s.received,
            routed: s.routed(),
            dead_lettered: s.dead_lettered,
            lag: s.lag,
            lag_read_at: detail.lag_read_at,
            last_dead_letter_reason: detail.last_dead_letter_reason,
            updated_at: self.host.clock().now(),
        }
    }

    async fn save(&self, report: &SubscriptionReport) -> bool {
        match self.host.store().save_subscription(report).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(subscription = %self.name, error = %err, "saving the subscription's figures failed");
                false
            }
        }
    }
}

/// Saves the subscription's figures every `every` when they changed (the
/// lag's read time aside), at least every [`REPORT_HEARTBEAT`] intervals,
/// and once more when `done` fires — never per message.
async fn report(
    reporter: Reporter,
    stats: Arc<SubscriptionStats>,
    mut done: oneshot::Receiver<()>,
) {
    let start = tokio::time::Instant::now() + reporter.every;
    let mut tick = tokio::time::interval_at(start, reporter.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let same = |a: &SubscriptionReport, b: &SubscriptionReport| {
        (
            a.received,
            a.routed,
            a.dead_lettered,
            a.lag,
            &a.last_dead_letter_reason,
        ) == (
            b.received,
            b.routed,
            b.dead_lettered,
            b.lag,
            &b.last_dead_letter_reason,
        )
    };
    let mut saved: Option<SubscriptionReport> = None;
    let mut quiet = 0u32;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut done => true,
        };
        let now = reporter.report(&stats);
        let unchanged = saved.as_ref().is_some_and(|s| same(s, &now));
        quiet = if unchanged { quiet + 1 } else { 0 };
        if (last || !unchanged || quiet >= REPORT_HEARTBEAT) && reporter.save(&now).await {
            saved = Some(now);
            quiet = 0;
        }
        if last {
            return;
        }
    }
}

/// What became of one message.
async fn handle(
    name: &str,
    host: &Host,
    routes: &[Route],
    delivery: Delivery,
    stats: &SubscriptionStats,
    stop: watch::Receiver<bool>,
) {
    let action = match route::resolve(routes, &delivery.message) {
        Ok(action) => action,
        Err(why) => {
            dead_letter(name, delivery, &why.to_string(), stats).await;
            return;
        }
    };
    let mut backoff = Backoff::default();
    loop {
        match deliver(host, &action, delivery.message.id.as_deref()).await {
            Ok(()) => {
                match &action {
                    Action::Spawn { .. } => stats.spawned.fetch_add(1, Ordering::Relaxed),
                    Action::Signal { .. } => stats.signalled.fetch_add(1, Ordering::Relaxed),
                };
                if let Err(err) = delivery.ack().await {
                    stats.settle_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(subscription = name, error = %err, "ack failed; the broker delivers the message again");
                }
                return;
            }
            Err(err) if is_message_fault(&err) => {
                dead_letter(name, delivery, &err.to_string(), stats).await;
                return;
            }
            Err(err) => {
                if *stop.borrow() {
                    if let Err(err) = delivery.nack().await {
                        tracing::warn!(subscription = name, error = %err, "nack failed");
                    }
                    return;
                }
                stats.store_retries.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next_delay();
                tracing::warn!(subscription = name, error = %err, ?wait, "the store did not take a routed message; trying again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn dead_letter(name: &str, delivery: Delivery, reason: &str, stats: &SubscriptionStats) {
    tracing::info!(subscription = name, message = ?delivery.message.id, reason, "dead-lettering a message");
    match delivery.dead_letter(reason).await {
        Ok(()) => stats.record_dead_letter(reason),
        Err(err) => {
            stats.settle_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subscription = name, error = %err, "dead-lettering failed; the broker delivers the message again");
        }
    }
}

/// Makes `action` durable in the store. A signal carries the message id
/// (when the message has one), so a re-delivery is not stored twice.
async fn deliver(host: &Host, action: &Action, message_id: Option<&str>) -> Result<(), Error> {
    match action {
        Action::Spawn { kind, id, input } => host.spawn_json(kind, id, input).await.map(drop),
        Action::Signal { id, name, payload } => match message_id {
            Some(message_id) => host
                .signal_message_json(id, name, payload, message_id)
                .await
                .map(drop),
            None => host.signal_json(id, name, payload).await,
        },
    }
}

/// Whether an error is about the message (dead-letter it) rather than the
/// store (try again).
fn is_message_fault(err: &Error) -> bool {
    match err {
        Error::UnknownKind { .. }
        | Error::InvalidInput { .. }
        | Error::PayloadTooLarge { .. }
        | Error::InvalidId(_)
        | Error::Encode { .. } => true,
        Error::Store(store) => matches!(
            store,
            StoreError::NotFound(_)
                | StoreError::InvalidState { .. }
                | StoreError::SpawnConflict { .. }
                | StoreError::InvalidInput(_)
        ),
        _ => false,
    }
}
