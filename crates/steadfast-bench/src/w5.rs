//! W5 scale-out: W2's processes on 1, 2 and 3 bench worker child
//! processes sharing one store (each run on a fresh store).
//!
//! The bench spawns every process first, then starts the workers (each
//! with `--concurrency 100 --exit-when-idle`); the time runs from starting
//! the first worker until the store shows every process finished.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;
use steadfast_examples::workload::STEPS;

use super::Ctx;
use super::common::{read_run_log, seeded_ten_steps, verify_ten_steps, wait_for};
use super::report::{Report, round};
use super::w2::IN_FLIGHT;
use super::workers::{Worker, WorkerSpec};

/// Processes of the standard workload.
const STANDARD: usize = 2000;
/// How long the counts may stand still before a run is given up.
const STALL: Duration = Duration::from_secs(120);
/// How often the counts are read.
const POLL: Duration = Duration::from_millis(10);

/// One worker count's figures.
struct Run {
    workers: usize,
    total: Duration,
    finished: u64,
    lost: u64,
    reran: u64,
}

/// Runs W5 for each worker count of `ctx`.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let count = ctx.count_or(STANDARD);
    let mut runs = Vec::with_capacity(ctx.workers.len());
    for &workers in &ctx.workers {
        eprintln!("w5: {count} processes on {workers} worker(s)…");
        runs.push(one(ctx, count, workers).await?);
    }
    let list = |f: &dyn Fn(&Run) -> Value| Value::from(runs.iter().map(f).collect::<Vec<_>>());
    let per_s = |r: &Run, n: usize| round(n as f64 / r.total.as_secs_f64(), 1);

    let mut report = Report::new("w5", "scale-out (worker child processes)");
    report
        .set("store", ctx.target.store_name())
        .set("durability", "full")
        .set("count", count)
        .set("in_flight", IN_FLIGHT)
        .set("workers", list(&|r| r.workers.into()))
        .set("worker", "child")
        .set("steps_per_s", list(&|r| per_s(r, count * STEPS).into()))
        .set("processes_per_s", list(&|r| per_s(r, count).into()))
        .set("total_s", list(&|r| round(r.total.as_secs_f64(), 3).into()))
        .set("finished", list(&|r| r.finished.into()))
        .set("lost", list(&|r| r.lost.into()))
        .set("reran", list(&|r| r.reran.into()));
    report.note(
        "each worker count runs on a fresh store; in_flight is per worker (--concurrency 100); \
         the bench spawns all processes first, the time runs from starting the first worker \
         until the store shows all finished (polled every 10 ms); workers log every closure \
         run to the services' step-runs.log (W2's in-process host does not)",
    );
    Ok(report)
}

/// One run on `workers` worker children.
async fn one(ctx: &Ctx, count: usize, workers: usize) -> anyhow::Result<Run> {
    let label = format!("w5-{workers}workers");
    let (fresh, baseline) = seeded_ten_steps(ctx, &label, count).await?;
    let store = &fresh.store;

    let services = fresh.work_dir.join("services");
    let spec = WorkerSpec {
        launch: &ctx.launch,
        db: &fresh.db_arg,
        services: &services,
        concurrency: IN_FLIGHT,
        exit_when_idle: true,
    };
    let started = Instant::now();
    let mut children = (0..workers)
        .map(|_| Worker::start(&spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let target = count as u64;
    let (done_at, done) = wait_for(
        store,
        &baseline,
        POLL,
        STALL,
        "every process has finished",
        |t| Ok(t.settled() >= target),
    )
    .await?;
    let total = done_at - started;
    for child in &mut children {
        let status = child.wait_exit(STALL).await?;
        if !status.success() {
            bail!("a worker failed: {status}");
        }
    }
    let verified = verify_ten_steps(store, &fresh.prefix).await?;
    let reruns = read_run_log(&services.join("step-runs.log"))?;
    Ok(Run {
        workers,
        total,
        finished: done.completed.min(verified.completed),
        lost: verified.lost,
        reran: reruns.reran,
    })
}
