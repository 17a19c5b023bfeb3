//! W2 throughput: `count` ten-step processes on a host in this process
//! that runs at most 100 at once. 32 tasks spawn them all, then each awaits
//! the outcomes of the processes it spawned; the figures cover the time
//! from the first spawn to the last completion.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use steadfast::HostBuilder;
use steadfast_examples::workload::{self, STEPS};
use tokio::task::JoinSet;

use super::common::{SPAWN_TASKS, process_id};
use super::report::Report;
use super::{Ctx, sys};

/// Processes of the standard workload.
const STANDARD: usize = 2000;
/// At most this many processes run at once.
pub const IN_FLIGHT: usize = 100;

/// Runs W2.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let count = ctx.count_or(STANDARD);
    let fresh = ctx
        .target
        .fresh("w2", ctx.durability.level(), ctx.keep)
        .await?;
    let peak_reset = sys::reset_peak_rss();
    let host = workload::register(HostBuilder::from_arc(Arc::clone(&fresh.store)), None)
        .max_concurrency(IN_FLIGHT)
        .build();

    let tasks = SPAWN_TASKS.min(count);
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
    let peak_rss = sys::memory_mib(None, "VmHWM");
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
        .num("peak_rss_mib", peak_rss.unwrap_or(0.0), 1);
    report.note(
        "total_s runs from the first spawn to the last outcome; peak_rss_mib is VmHWM of the \
         bench process (host, store and spawning tasks)",
    );
    if !peak_reset {
        report.note("could not reset VmHWM before the run: the peak may include earlier work");
    }
    Ok(report)
}
