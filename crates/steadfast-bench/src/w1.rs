//! W1 latency: one ten-step process at a time, `count` runs one after
//! another on a host in this process; the time from `spawn` to `outcome`.
//!
//! Between two processes the bench takes one sample of the store's floor
//! ([`crate::floor`]): on SQLite a 4 KiB write + fdatasync next to the
//! database, on PostgreSQL an autocommitted single-row INSERT on the same
//! server. A fully durable process cannot beat 12 such commits — one for
//! the spawn, one per step and one for the finish — so `floor_ms` is
//! 12 × the samples' median and `p50_over_floor` = p50 / `floor_ms`. The
//! engine makes as many: the spawn (which claims the process for the host
//! that runs it), ten step appends, the finish.
//!
//! The bench also records how long each of those writes took (the engine's
//! `steadfast_store_write_duration_seconds`, read through [`WriteTimes`],
//! and the spawn timed here): `writes_ms` is the sum of their medians for
//! one process, `writes_over_commits` that sum over 12 floor commits (what
//! each write costs against a bare commit), and `between_writes_ms` the rest
//! of the p50 (the engine's own work, waking the dispatcher, answering the
//! outcome).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use steadfast::{Host, HostBuilder};
use steadfast_examples::workload::{self, STEPS};

use super::common::process_id;
use super::floor::Floor;
use super::report::{Report, Stats};
use super::target::Target;
use super::writes::WriteTimes;
use super::{Ctx, DurabilityArg};

/// Runs of the standard workload.
const STANDARD: usize = 200;
/// Runs before the measured ones, not counted.
const WARM_UP: usize = 10;
/// Commits the engine makes per process: spawn (with the claim), 10
/// appends, finish.
const DURABLE_COMMITS: u32 = 12;
/// Commits a durable process needs at the least: spawn, 10 steps, finish.
pub const FLOOR_COMMITS: u32 = 12;

/// Runs W1.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let count = ctx.count_or(STANDARD);
    let fresh = ctx
        .target
        .fresh("w1", ctx.durability.level(), ctx.keep)
        .await?;
    let mut floor = match &ctx.target {
        Target::Sqlite { .. } => Floor::fsync(&fresh.work_dir).await?,
        Target::Postgres { .. } => Floor::insert(&fresh.db_arg).await?,
    };

    let write_times = WriteTimes::install();
    let host = workload::register(HostBuilder::from_arc(Arc::clone(&fresh.store)), None).build();
    for i in 0..WARM_UP {
        one_run(&host, &format!("{}warm-{i:03}", fresh.prefix)).await?;
        floor.sample().await?;
    }
    if let Some(times) = &write_times {
        times.take();
    }
    let mut samples = Vec::with_capacity(count);
    let mut spawns = Vec::with_capacity(count);
    let mut floor_samples = Vec::with_capacity(count);
    for i in 0..count {
        let run = one_run(&host, &process_id(&fresh.prefix, i)).await?;
        samples.push(run.total);
        spawns.push(run.spawn);
        floor_samples.push(floor.sample().await?);
    }
    host.shutdown().await;
    let writes = write_times.map(|times| times.take());
    let floor_kind = floor.describe();
    floor.finish().await?;
    let latency = Stats::of(&samples);
    let commit = Stats::of(&floor_samples);
    let floor_ms = commit.p50 * FLOOR_COMMITS;
    // The tail the commits alone give: sums of 12 consecutive floor samples
    // (each sliding window), the latency of a process that did nothing but
    // its 12 commits at this machine's commit latency of the moment.
    let window = FLOOR_COMMITS as usize;
    let floor_runs: Vec<Duration> = floor_samples
        .windows(window)
        .map(|w| w.iter().sum())
        .collect();
    let floor_run = Stats::of(&floor_runs);

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
        .num("p99_over_p50", ratio(latency.p99, latency.p50), 2)
        .set("floor_sample", floor_kind)
        .set("floor_samples", floor_samples.len())
        .ms("commit_p50_ms", commit.p50)
        .ms("commit_p99_ms", commit.p99)
        .set("durable_commits", DURABLE_COMMITS)
        .set("floor_commits", FLOOR_COMMITS)
        .ms("floor_ms", floor_ms)
        .num("p50_over_floor", ratio(latency.p50, floor_ms), 2)
        .num("floor_p99_over_p50", ratio(floor_run.p99, floor_run.p50), 2);
    if let Some(writes) = &writes {
        let median = |op: &str| writes.get(op).map_or(Duration::ZERO, |d| Stats::of(d).p50);
        let (claim, append, finish) = (median("claim"), median("append"), median("finish"));
        let spawn = Stats::of(&spawns).p50;
        let appends = writes.get("append").map_or(0, Vec::len);
        let claims = writes.get("claim").map_or(0, Vec::len);
        // The spawn claims the process: the dispatcher's claims (after a
        // run ends, it looks again) find nothing and are off its path.
        let in_path = spawn + append * STEPS as u32 + finish;
        report
            .ms("spawn_p50_ms", spawn)
            .ms("claim_p50_ms", claim)
            .num("claims_per_process", claims as f64 / count as f64, 2)
            .ms("append_p50_ms", append)
            .num("appends_per_process", appends as f64 / count as f64, 2)
            .ms("finish_p50_ms", finish)
            .ms("writes_ms", in_path)
            .num(
                "writes_over_commits",
                ratio(in_path, commit.p50 * DURABLE_COMMITS),
                2,
            )
            .ms("between_writes_ms", latency.p50.saturating_sub(in_path));
    }
    if matches!(ctx.target, Target::Sqlite { .. }) {
        // The names earlier versions reported: the floor's sample is the fsync.
        report
            .set("fsync_samples", floor_samples.len())
            .ms("fsync_p50_ms", commit.p50)
            .ms("fsync_p99_ms", commit.p99);
    }
    report.note(format!(
        "the floor is sampled between the processes (one sample after each): {floor_kind}; \
         floor_ms = {FLOOR_COMMITS} × commit_p50_ms, the commits a durable process needs \
         (spawn, 10 steps, finish); the engine makes {DURABLE_COMMITS} (the spawn, which \
         claims the process for the host that runs it, 10 appends, finish); floor_p99_over_p50: p99 / p50 of the sums of {FLOOR_COMMITS} \
         consecutive floor samples, the tail that many commits alone have at this moment, \
         to read p99_over_p50 against"
    ));
    if ctx.durability == DurabilityArg::ProcessCrash {
        report.note(
            "process-crash durability does not fsync at commit (only at checkpoints), \
             so floor_ms is not a bound here; it is reported for comparison only",
        );
    }
    Ok(report)
}

/// The times of one process.
struct OneRun {
    /// From the spawn to the outcome.
    total: Duration,
    /// The spawn call alone.
    spawn: Duration,
}

/// One process: spawn, wait for its outcome; the time between.
async fn one_run(host: &Host, id: &str) -> anyhow::Result<OneRun> {
    let started = Instant::now();
    host.spawn(workload::KIND, id, &())
        .await
        .with_context(|| format!("cannot spawn {id}"))?;
    let spawn = started.elapsed();
    let values: Vec<String> = host
        .outcome(id)
        .await
        .with_context(|| format!("{id} did not complete"))?;
    let elapsed = started.elapsed();
    if values.len() != STEPS {
        bail!("{id} returned {} values instead of {STEPS}", values.len());
    }
    Ok(OneRun {
        total: elapsed,
        spawn,
    })
}

/// `a / b`, 0 when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}
