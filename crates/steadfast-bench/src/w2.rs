//! W2 throughput: `count` ten-step processes on a host in this process
//! that runs at most 100 at once. 32 tasks spawn them all, then each awaits
//! the outcomes of the processes it spawned; the figures cover the time
//! from the first spawn to the last completion.
//!
//! Beside the rate: `cpu_cores_used`, the bench process's CPU time (user +
//! system, every thread) over the wall time — below the machine's cores
//! means the engine waits rather than computes. On PostgreSQL also
//! `pg_commits_per_step` (`pg_stat_database.xact_commit` delta),
//! `pg_statements_per_step` (statements the driver sent, counted from its
//! `sqlx::query` events) and, when the server runs on this machine, the
//! CPU its backends of the run used (`pg_cores_used`, `pg_cpu_share` of
//! bench + server).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use steadfast::HostBuilder;
use steadfast_examples::workload::{self, STEPS};
use tokio::task::JoinSet;

use super::common::{SPAWN_TASKS, process_id};
use super::cpu::{Usage, cores};
use super::pgstats::PgStats;
use super::report::Report;
use super::{Ctx, stats, sys};

/// Processes of the standard workload.
const STANDARD: usize = 2000;
/// At most this many processes run at once.
pub const IN_FLIGHT: usize = 100;

/// Runs W2.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    run_count(ctx, ctx.count_or(STANDARD)).await
}

/// Runs W2 with `count` processes (W6 alternates with it).
pub async fn run_count(ctx: &Ctx, count: usize) -> anyhow::Result<Report> {
    let fresh = ctx
        .target
        .fresh("w2", ctx.durability.level(), ctx.keep)
        .await?;
    let peak_reset = sys::reset_peak_rss();
    let host = workload::register(HostBuilder::from_arc(Arc::clone(&fresh.store)), None)
        .max_concurrency(IN_FLIGHT)
        .build();
    let mut pg = match &fresh.application_name {
        Some(name) => Some(PgStats::connect(&fresh.db_arg, name).await?),
        None => None,
    };
    let pg_before = match &mut pg {
        Some(pg) => Some(pg.snapshot().await?),
        None => None,
    };
    let statements_before = stats::statements();

    let tasks = SPAWN_TASKS.min(count);
    let usage = Usage::now();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for first in 0..tasks {
        let host = host.clone();
        let prefix = fresh.prefix.clone();
        set.spawn(async move {
            let ids: Vec<String> = (first..count)
                .step_by(tasks)
                .map(|i| process_id(&prefix, i))
                .collect();
            for id in &ids {
                host.spawn(workload::KIND, id, &())
                    .await
                    .with_context(|| format!("cannot spawn {id}"))?;
            }
            for id in &ids {
                let values: Vec<String> = host
                    .outcome(id)
                    .await
                    .with_context(|| format!("{id} did not complete"))?;
                if values.len() != STEPS {
                    bail!("{id} returned {} values instead of {STEPS}", values.len());
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.context("a W2 task panicked")??;
    }
    let total = started.elapsed();
    let (cpu, cores_used) = usage.since();
    let statements = stats::statements() - statements_before;
    let peak_rss = sys::memory_mib(None, "VmHWM");
    let pg_after = match &mut pg {
        Some(pg) => Some(pg.snapshot().await?),
        None => None,
    };
    host.shutdown().await;

    let secs = total.as_secs_f64();
    let mut report = Report::new("w2", "throughput (in-process host)");
    report
        .set("store", ctx.target.store_name())
        .set("durability", ctx.durability.name())
        .set("count", count)
        .set("in_flight", IN_FLIGHT)
        .set("workers", 1)
        .set("worker", "in-process")
        .set("spawn_tasks", tasks)
        .secs("total_s", total)
        .num("processes_per_s", count as f64 / secs, 1)
        .num("steps_per_s", (count * STEPS) as f64 / secs, 1)
        .num("peak_rss_mib", peak_rss.unwrap_or(0.0), 1)
        .num("cpu_s", cpu.as_secs_f64(), 3)
        .num("cpu_cores_used", cores_used, 2);
    let steps = (count * STEPS) as f64;
    if let (Some(mut pg), Some(before), Some(after)) = (pg, pg_before, pg_after) {
        // Backends report their commits to the statistics at most once a
        // second while busy, and a second after going idle.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let commits = pg.snapshot().await?.commits_since(&before);
        pg.close().await;
        report.num("pg_commits_per_step", commits as f64 / steps, 3);
        if stats::counting() {
            report.num("pg_statements_per_step", statements as f64 / steps, 3);
        } else {
            report.set("pg_statements_per_step", serde_json::Value::Null);
        }
        match after.backend_cpu_since(&before) {
            Some(pg_cpu) => {
                let both = pg_cpu + cpu;
                report
                    .num("pg_cpu_s", pg_cpu.as_secs_f64(), 3)
                    .num("pg_cores_used", cores(pg_cpu, total), 2)
                    .num("pg_cpu_share", cores(pg_cpu, both), 3);
            }
            None => {
                report.set("pg_cores_used", serde_json::Value::Null);
                report.note("the PostgreSQL server's processes are not visible here (another machine?), so its CPU is not measured");
            }
        }
        report.note(
            "pg_commits_per_step counts every commit of the database during the run, other \
             sessions' too: use a database of its own for a clean figure; pg_cpu_s is the CPU \
             of the server backends named by the run's application_name (clock ticks of \
             /proc/PID/stat)",
        );
    }
    report.note(
        "total_s runs from the first spawn to the last outcome; peak_rss_mib is VmHWM of the \
         bench process (host, store and spawning tasks); cpu_cores_used is its CPU time \
         (user + system, all threads) over total_s",
    );
    if !peak_reset {
        report.note("could not reset VmHWM before the run: the peak may include earlier work");
    }
    Ok(report)
}
