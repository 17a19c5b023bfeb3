//! W6 bus: messages through subscription → signal → one step → publish,
//! on RabbitMQ (127.0.0.1:5672 unless `STEADFAST_BENCH_AMQP` says
//! otherwise), alternating with W2 in the same invocation.
//!
//! One round: `count` processes are spawned and left waiting for the
//! signal `ping` (not timed). Then 8 tasks publish one `Ping` message per
//! process to a queue of the round's own, each stamped with the time it
//! was published; a subscription (concurrency 100, prefetch 200) turns each
//! into the signal `ping` of its process; the process runs one step and
//! publishes a `Pong` carrying the stamp through the journal-as-outbox
//! [`Publisher`] (publisher confirms); a consumer in this process reads the
//! pongs. Figures: messages/s from the first ping published to the last
//! pong received, and the latency of each message from its ping's publish
//! to its pong's receipt (p50, p99). Each round is followed by a W2 round
//! of the same count, and the report gives the medians of the rounds and
//! the ratio of the W6 median over the W2 median.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use steadfast::{HostBuilder, Process, StepError, StepFailed};
use steadfast_bus::rabbitmq::{RabbitMqSink, RabbitMqSource, RabbitMqSourceOptions};
use steadfast_bus::route::{Route, Selector};
use steadfast_bus::{MessageSink, MessageSource, OutgoingMessage, Publisher, Subscription};
use tokio::task::JoinSet;

use super::common::{Baseline, SPAWN_TASKS, poll_interval, process_id, spawn_all, wait_for};
use super::report::{Report, Stats, round};
use super::{Ctx, w2};

/// Messages of the standard workload (per round).
const STANDARD: usize = 1000;
/// Processes the host runs at once (as W2).
const IN_FLIGHT: usize = w2::IN_FLIGHT;
/// Messages the subscription handles at once.
const SUBSCRIPTION_CONCURRENCY: usize = 100;
/// Unacknowledged messages the broker hands the subscription.
const PREFETCH: u16 = 200;
/// Tasks publishing the pings.
const PUBLISHERS: usize = 8;
/// The kind W6 runs.
const KIND: &str = "w6 echo";
/// The signal a ping becomes.
const PING: &str = "ping";
/// How long the pongs may stop coming before the round is given up.
const STALL: Duration = Duration::from_secs(60);

/// The broker's URL.
fn amqp_url() -> String {
    std::env::var("STEADFAST_BENCH_AMQP")
        .unwrap_or_else(|_| steadfast_bus::rabbitmq::DEFAULT_URL.to_owned())
}

/// A ping: which process, and when it was published (µs since the round's
/// start).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ping {
    id: String,
    sent_us: u64,
}

/// The process's answer, carrying the ping's stamp.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pong {
    sent_us: u64,
}

/// One W6 round's figures.
struct Round {
    messages_per_s: f64,
    latency: Stats,
}

/// Runs W6: `--rounds` rounds of W6, each followed by a W2 round of the
/// same count.
pub async fn run(ctx: &Ctx, rounds: usize) -> anyhow::Result<Report> {
    let count = ctx.count_or(STANDARD);
    let rounds = rounds.max(1);
    let mut w6 = Vec::with_capacity(rounds);
    let mut w2_rates = Vec::with_capacity(rounds);
    for r in 0..rounds {
        w6.push(
            one_round(ctx, count, r)
                .await
                .with_context(|| format!("W6 round {}", r + 1))?,
        );
        let report = w2::run_count(ctx, count).await?;
        let rate = report
            .get("processes_per_s")
            .and_then(serde_json::Value::as_f64)
            .context("W2 reported no processes_per_s")?;
        w2_rates.push(rate);
    }
    let rates: Vec<f64> = w6.iter().map(|r| r.messages_per_s).collect();
    let p50s: Vec<f64> = w6.iter().map(|r| ms(r.latency.p50)).collect();
    let p99s: Vec<f64> = w6.iter().map(|r| ms(r.latency.p99)).collect();
    let w6_median = median(&rates);
    let w2_median = median(&w2_rates);

    let mut report = Report::new("w6", "bus: subscription → signal → step → publish");
    report
        .set("store", ctx.target.store_name())
        .set("durability", ctx.durability.name())
        .set("broker", "rabbitmq")
        .set("count", count)
        .set("rounds", rounds)
        .set("in_flight", IN_FLIGHT)
        .set("workers", 1)
        .set("worker", "in-process")
        .set("subscription_concurrency", SUBSCRIPTION_CONCURRENCY)
        .set("prefetch", PREFETCH)
        .num("messages_per_s", w6_median, 1)
        .num("latency_p50_ms", median(&p50s), 3)
        .num("latency_p99_ms", median(&p99s), 3)
        .num("w2_processes_per_s", w2_median, 1)
        .num("ratio_w6_over_w2", w6_median / w2_median, 3)
        .set("messages_per_s_rounds", rounded(&rates, 1))
        .set("latency_p50_ms_rounds", rounded(&p50s, 3))
        .set("latency_p99_ms_rounds", rounded(&p99s, 3))
        .set("w2_processes_per_s_rounds", rounded(&w2_rates, 1));
    report.note(
        "rounds alternate W6 then W2 (same count, each on a fresh store); figures are medians \
         of the rounds; messages_per_s runs from the first ping published to the last pong \
         received; latency is per message, from its ping's publish (confirmed) to its pong's \
         receipt; ratio_w6_over_w2 = median W6 messages/s over median W2 processes/s (a W2 \
         process is ten steps, a W6 message one signal, one step and one confirmed publish)",
    );
    Ok(report)
}

/// One W6 round on a fresh store and queues of its own.
async fn one_round(ctx: &Ctx, count: usize, r: usize) -> anyhow::Result<Round> {
    let fresh = ctx
        .target
        .fresh(&format!("w6-{r}"), ctx.durability.level(), ctx.keep)
        .await?;
    let url = amqp_url();
    let queue = format!(
        "steadfast-bench-w6-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let out = format!("{queue}.out");
    let sink = Arc::new(RabbitMqSink::new(&url, ""));
    sink.declare_queue(&queue)
        .await
        .context("cannot reach RabbitMQ (W6 needs it)")?;
    sink.declare_queue(&out).await?;
    let result = measure(&fresh, &url, &queue, &out, &sink, count).await;
    delete_queues(&url, &[&queue, &format!("{queue}.dead-letter"), &out]).await;
    result
}

async fn measure(
    fresh: &super::target::Fresh,
    url: &str,
    queue: &str,
    out: &str,
    sink: &Arc<RabbitMqSink>,
    count: usize,
) -> anyhow::Result<Round> {
    let bus = Publisher::new(RabbitMqSink::new(url, ""));
    let destination: Arc<str> = Arc::from(out);
    let host = HostBuilder::from_arc(Arc::clone(&fresh.store))
        .register(KIND, move |p: Process, (): ()| {
            let bus = bus.clone();
            let destination = Arc::clone(&destination);
            async move {
                let ping: Ping = p.wait(PING).await;
                let sent_us = p
                    .step("handled", || async { Ok::<_, StepError>(ping.sent_us) })
                    .await?;
                bus.publish(&p, "pong", &destination, &Pong { sent_us })
                    .await?;
                Ok::<_, StepFailed>(())
            }
        })
        .max_concurrency(IN_FLIGHT)
        .build();

    // Not timed: every process spawned and waiting for its ping.
    let baseline = Baseline::take(&fresh.store).await?;
    spawn_all(&host, KIND, &fresh.prefix, count, SPAWN_TASKS, ()).await?;
    let target = count as u64;
    wait_for(
        &fresh.store,
        &baseline,
        poll_interval(count),
        STALL,
        "every W6 process waits for its ping",
        |t| {
            if t.other > 0 {
                bail!("{} W6 processes failed or blocked: {t:?}", t.other);
            }
            Ok(t.suspended >= target)
        },
    )
    .await?;

    let mut source_options = RabbitMqSourceOptions::new(queue);
    source_options.url = url.to_owned();
    source_options.prefetch = PREFETCH;
    let routes = vec![Route::signal(PING, Selector::field("id"))];
    let subscription = Subscription::new("w6", host.clone(), routes)
        .map_err(anyhow::Error::msg)?
        .concurrency(SUBSCRIPTION_CONCURRENCY)
        .start(RabbitMqSource::connect(source_options).await?);
    let mut pong_options = RabbitMqSourceOptions::new(out);
    pong_options.url = url.to_owned();
    pong_options.prefetch = 1000;
    let mut pongs = RabbitMqSource::connect(pong_options).await?;

    // Timed: pings published, pongs received.
    let start = Instant::now();
    let mut publishers = JoinSet::new();
    for first in 0..PUBLISHERS.min(count) {
        let sink = Arc::clone(sink);
        let prefix = fresh.prefix.clone();
        let queue = queue.to_owned();
        publishers.spawn(async move {
            for i in (first..count).step_by(PUBLISHERS) {
                let id = process_id(&prefix, i);
                let ping = Ping {
                    sent_us: micros(start.elapsed()),
                    id: id.clone(),
                };
                let message = OutgoingMessage::json(&queue, format!("ping/{id}"), &ping)?;
                sink.publish(&message).await?;
            }
            anyhow::Ok(())
        });
    }
    let mut seen = HashSet::with_capacity(count);
    let mut latencies = Vec::with_capacity(count);
    while seen.len() < count {
        let delivery = match tokio::time::timeout(STALL, pongs.receive()).await {
            Ok(d) => d?,
            Err(_) => bail!(
                "no pong for {} s after {} of {count}",
                STALL.as_secs(),
                seen.len()
            ),
        };
        let now = micros(start.elapsed());
        let id = delivery.message.id.clone().unwrap_or_default();
        let pong: Pong = serde_json::from_slice(&delivery.message.body)
            .context("a pong that is not a W6 pong")?;
        delivery.ack().await?;
        // At least once: a pong published twice counts once.
        if seen.insert(id) {
            latencies.push(Duration::from_micros(now.saturating_sub(pong.sent_us)));
        }
    }
    let total = start.elapsed();
    while let Some(joined) = publishers.join_next().await {
        joined.context("a W6 publishing task panicked")??;
    }
    subscription.stop().await;
    host.shutdown().await;
    Ok(Round {
        messages_per_s: count as f64 / total.as_secs_f64(),
        latency: Stats::of(&latencies),
    })
}

/// Deletes the round's queues (errors are ignored: they only leave a queue
/// behind).
async fn delete_queues(url: &str, queues: &[&str]) {
    use lapin::options::QueueDeleteOptions;
    let Ok(conn) = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        for q in queues {
            let _ = ch
                .queue_delete((*q).into(), QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = conn.close(200, "done".into()).await;
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median (the mean of the two middle values for an even count).
fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn rounded(xs: &[f64], digits: i32) -> Vec<f64> {
    xs.iter().map(|x| round(*x, digits)).collect()
}
