//! W3 sleepers: `count` processes that each sleep 60 s, run by a
//! bench worker child process so that its memory is measured alone.
//!
//! 1. The bench spawns all processes (256 concurrent tasks, no worker yet):
//!    `spawn_s`.
//! 2. The worker starts, claims them and each one journals its timer and is
//!    unloaded: `suspend_all_s`, then the worker's `VmRSS` while all sleep.
//! 3. The latest due time is read from the suspended processes; once every
//!    process has finished, `wake_all_s` is the time from that due time
//!    until the store shows them all finished.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use steadfast::{Durability, HostBuilder, Status, Timestamp};

use super::common::{Baseline, Left, Pages, poll_interval, spawn_all, wait_until_none_in};
use super::report::Report;
use super::workers::{Worker, WorkerSpec};
use super::{Ctx, sleeper, sys};

/// Processes of the standard workload (the design also runs 1,000,000).
const STANDARD: usize = 10_000;
/// Concurrent spawning tasks.
const SPAWN_TASKS: usize = 256;
/// The worker's `--concurrency` (its default).
const WORKER_CONCURRENCY: usize = 1000;
/// How long the counts may stand still (besides the sleep) before the run
/// is given up.
const STALL: Duration = Duration::from_secs(180);

/// Runs W3.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let count = ctx.count_or(STANDARD);
    let sleep_ms = u64::try_from(ctx.sleep.as_millis()).unwrap_or(u64::MAX);
    let fresh = ctx.target.fresh("w3", Durability::Full, ctx.keep).await?;
    let store = &fresh.store;
    let baseline = Baseline::take(store).await?;
    let client = sleeper::register(HostBuilder::from_arc(Arc::clone(store))).build_client();
    let poll = poll_interval(count);

    eprintln!("w3: spawning {count} sleepers…");
    let spawn = spawn_all(
        &client,
        sleeper::KIND,
        &fresh.prefix,
        count,
        SPAWN_TASKS,
        sleep_ms,
    )
    .await?;
    eprintln!(
        "w3: spawned in {:.1} s; starting the worker",
        spawn.as_secs_f64()
    );

    let services = fresh.work_dir.join("services");
    let mut worker = Worker::start(&WorkerSpec {
        launch: &ctx.launch,
        db: &fresh.db_arg,
        services: &services,
        concurrency: WORKER_CONCURRENCY,
        exit_when_idle: false,
    })?;
    let worker_started = Instant::now();
    // Every sleeper was spawned before the worker started: none running
    // means each is suspended or settled.
    let (asleep_at, asleep) = wait_until_none_in(
        store,
        &baseline,
        Left {
            prefix: &fresh.prefix,
            statuses: &[Status::Running],
        },
        poll,
        STALL,
        "every sleeper is suspended",
        |_| worker.check_alive(),
    )
    .await?;
    if asleep.other > 0 {
        bail!(
            "{} sleepers failed or were blocked in the worker (is the kind {:?} registered \
             in the bench worker?)",
            asleep.other,
            sleeper::KIND
        );
    }
    let suspend_all = asleep_at - worker_started;
    let rss = sys::memory_mib(Some(worker.pid()), "VmRSS");
    let hwm = sys::memory_mib(Some(worker.pid()), "VmHWM");
    eprintln!(
        "w3: all asleep after {:.1} s, worker RSS {:.1} MiB; waiting for the wake-ups",
        suspend_all.as_secs_f64(),
        rss.unwrap_or(0.0)
    );

    let scan_started = Instant::now();
    let latest_due = latest_due(store, &fresh.prefix).await?;
    let scan = scan_started.elapsed();
    let (_, done) = wait_until_none_in(
        store,
        &baseline,
        Left {
            prefix: &fresh.prefix,
            statuses: &[Status::Running, Status::Suspended],
        },
        poll,
        STALL + ctx.sleep,
        "every sleeper has finished",
        |_| worker.check_alive(),
    )
    .await?;
    let done_at = Timestamp::now_system();
    worker.sigkill()?;
    let total = worker_started.elapsed();

    let mut report = Report::new("w3", "sleepers (worker child process)");
    report
        .set("store", ctx.target.store_name())
        .set("durability", "full")
        .set("count", count)
        .set("sleep_ms", sleep_ms)
        .set("in_flight", WORKER_CONCURRENCY)
        .set("workers", 1)
        .set("worker", "child")
        .set("spawn_tasks", SPAWN_TASKS)
        .secs("spawn_s", spawn)
        .num("spawns_per_s", count as f64 / spawn.as_secs_f64(), 1)
        .secs("suspend_all_s", suspend_all)
        .set("suspended_at_sample", asleep.suspended)
        .num("worker_rss_mib", rss.unwrap_or(0.0), 1)
        .num("worker_hwm_mib", hwm.unwrap_or(0.0), 1);
    match latest_due {
        Some(due) => {
            let late = done_at.as_micros() - due.as_micros();
            report.num("wake_all_s", late as f64 / 1e6, 3);
        }
        None => {
            report.set("wake_all_s", serde_json::Value::Null);
            report.note(
                "no sleeper was still suspended when the due times were read (the sleep is \
                 shorter than the scan), so wake_all_s is unknown",
            );
        }
    }
    report
        .set("finished", done.completed)
        .set("not_completed", done.other)
        .secs("due_scan_s", scan)
        .secs("total_s", total)
        .set("poll_ms", u64::try_from(poll.as_millis()).unwrap_or(0));
    report.note(
        "spawn_s: the bench spawns all processes before the worker starts; suspend_all_s: from \
         the worker's start until the store shows every process suspended (timer journaled); \
         worker_rss_mib: VmRSS of the worker child then",
    );
    report.note(format!(
        "wake_all_s: from the latest due time stored for any sleeper until the store shows all \
         finished (polled every {} ms); the run itself takes the {} s sleep longer, which is \
         not part of wake_all_s",
        poll.as_millis(),
        ctx.sleep.as_secs_f64()
    ));
    Ok(report)
}

/// The latest due time among the run's suspended processes (`None` when
/// none is suspended any more).
async fn latest_due(
    store: &Arc<dyn steadfast::Backend>,
    prefix: &str,
) -> anyhow::Result<Option<Timestamp>> {
    let mut latest: Option<Timestamp> = None;
    let mut pages = Pages::new(prefix, Some(Status::Suspended));
    while let Some(page) = pages.next(store).await? {
        for due in page.iter().filter_map(|r| r.wake_at) {
            latest = Some(latest.map_or(due, |l| l.max(due)));
        }
    }
    Ok(latest)
}
