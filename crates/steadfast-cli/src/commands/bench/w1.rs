//! W1 latency: one ten-step process at a time, `count` runs one after
//! another on a host in this process; the time from `spawn` to `outcome`.
//!
//! Measured beside it, on the database's file system: the disk's
//! fdatasync latency, and from it the floor a fully durable process cannot
//! beat — one fsynced commit for the spawn, one per step and one for the
//! finish (12). The engine makes 13 commits per process: spawn, claim, ten
//! step appends, finish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use steadfast::{Host, HostBuilder};
use steadfast_examples::workload::{self, STEPS};

use super::common::process_id;
use super::report::{Report, Stats};
use super::{Ctx, DurabilityArg, sys};

/// Runs of the standard workload.
const STANDARD: usize = 200;
/// Runs before the measured ones, not counted.
const WARM_UP: usize = 10;
/// fdatasync samples.
const FSYNC_SAMPLES: usize = 200;
/// Commits the engine makes per process: spawn, claim, 10 appends, finish.
const DURABLE_COMMITS: u32 = 13;
/// Commits a durable process needs at the least: spawn, 10 steps, finish.
const FLOOR_COMMITS: u32 = 12;

/// Runs W1.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let count = ctx.count_or(STANDARD);
    let fresh = ctx
        .target
        .fresh("w1", ctx.durability.level(), ctx.keep)
        .await?;
    let probe_dir = fresh.work_dir.clone();
    let fsync =
        tokio::task::spawn_blocking(move || sys::fdatasync_latency(&probe_dir, FSYNC_SAMPLES))
            .await
            .context("the fsync probe panicked")?
            .context("cannot measure fdatasync")?;
    let fsync = Stats::of(&fsync);

    let host = workload::register(HostBuilder::from_arc(Arc::clone(&fresh.store)), None).build();
    for i in 0..WARM_UP {
        one_run(&host, &format!("{}warm-{i:03}", fresh.prefix)).await?;
    }
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        samples.push(one_run(&host, &process_id(&fresh.prefix, i)).await?);
    }
    host.shutdown().await;
    let latency = Stats::of(&samples);
    let floor = fsync.p50 * FLOOR_COMMITS;

    let mut report = Report::new("w1", "latency (spawn to completion, sequential)");
    report
        .set("store", ctx.target.store_name())
        .set("durability", ctx.durability.name())
        .set("count", count)
        .set("warm_up", WARM_UP)
        .set("in_flight", 1)
        .set("workers", 1)
        .set("worker", "in-process")
        .ms("p50_ms", latency.p50)
        .ms("p99_ms", latency.p99)
        .ms("mean_ms", latency.mean)
        .ms("max_ms", latency.max)
        .set("fsync_samples", FSYNC_SAMPLES)
        .ms("fsync_p50_ms", fsync.p50)
        .ms("fsync_p99_ms", fsync.p99)
        .set("durable_commits", DURABLE_COMMITS)
        .set("floor_commits", FLOOR_COMMITS)
        .ms("floor_ms", floor)
        .num("p50_over_floor", ratio(latency.p50, floor), 2);
    report.note(
        "durable_commits: the engine commits spawn, claim, 10 step appends and finish (13); \
         the floor counts the 12 a durable process needs (spawn, 10 steps, finish) at the \
         measured fsync_p50_ms (4 KiB write + fdatasync next to the database)",
    );
    if ctx.durability == DurabilityArg::ProcessCrash {
        report.note(
            "process-crash durability does not fsync at commit (only at checkpoints), \
             so floor_ms is not a bound here; it is reported for comparison only",
        );
    }
    if ctx.target.store_name() == "postgres" {
        report.note(
            "fsync was measured on the local temporary directory, not on the PostgreSQL server",
        );
    }
    Ok(report)
}

/// One process: spawn, wait for its outcome; the time between.
async fn one_run(host: &Host, id: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    host.spawn(workload::KIND, id, &())
        .await
        .with_context(|| format!("cannot spawn {id}"))?;
    let values: Vec<String> = host
        .outcome(id)
        .await
        .with_context(|| format!("{id} did not complete"))?;
    let elapsed = started.elapsed();
    if values.len() != STEPS {
        bail!("{id} returned {} values instead of {STEPS}", values.len());
    }
    Ok(elapsed)
}

/// `a / b`, 0 when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}
