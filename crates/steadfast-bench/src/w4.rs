//! W4 crash: W2's processes on a bench worker child process that is
//! killed with SIGKILL at a random moment, then restarted.
//!
//! The bench spawns every process and starts the worker. Once a random
//! number of processes (between 10 % and 60 % of them) has completed, it
//! waits a further random delay — up to the time 100 completions took so
//! far — and kills the worker. (The delay matters: the worker completes
//! processes in waves, and killing right when the count jumps would always
//! hit the gap between two waves, with almost nothing in flight.) Right
//! after the kill it notes the processes in flight (status
//! running with an owner) and their journal lengths, restarts the worker
//! with `--exit-when-idle` and waits for it to finish everything. Then it
//! checks every journal and counts closure re-runs in the worker's run log.
//!
//! `recover_s` is the time from the restart until every process that was
//! in flight at the kill has progressed: it has finished, or it was claimed
//! again and its journal grew. `first_recovered_s` is the same for the
//! first of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::Rng;
use steadfast::{Backend, ProcessId, Status};
use steadfast_examples::workload::STEPS;

use super::Ctx;
use super::common::{Pages, read_run_log, seeded_ten_steps, verify_ten_steps, wait_for};
use super::report::Report;
use super::w2::IN_FLIGHT;
use super::workers::{Worker, WorkerSpec};

/// Processes of the standard workload.
const STANDARD: usize = 2000;
/// How long the counts may stand still before the run is given up.
const STALL: Duration = Duration::from_secs(120);
/// How often the kill moment and the recovery are checked.
const FAST_POLL: Duration = Duration::from_millis(2);
/// How often the recovering processes are looked at.
const RECOVERY_POLL: Duration = Duration::from_millis(5);

/// A process that was being run when the worker was killed.
struct InFlight {
    id: ProcessId,
    epoch: i64,
    journal_len: usize,
}

/// Runs W4.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let count = ctx.count_or(STANDARD);
    let (fresh, baseline) = seeded_ten_steps(ctx, "w4", count).await?;
    let store = &fresh.store;

    let services = fresh.work_dir.join("services");
    let spec = WorkerSpec {
        launch: &ctx.launch,
        db: &fresh.db_arg,
        services: &services,
        concurrency: IN_FLIGHT,
        exit_when_idle: false,
    };
    let kill_after = {
        let low = (count / 10).max(1);
        let high = (count * 6 / 10).max(low);
        rand::rng().random_range(low..=high) as u64
    };
    let mut worker = Worker::start(&spec)?;
    let started = Instant::now();
    wait_for(
        store,
        &baseline,
        FAST_POLL,
        STALL,
        "enough processes completed to kill the worker",
        |t| {
            worker.check_alive()?;
            Ok(t.completed >= kill_after)
        },
    )
    .await?;
    let per_wave = started
        .elapsed()
        .mul_f64(IN_FLIGHT as f64 / kill_after as f64);
    let delay = per_wave.mul_f64(rand::rng().random_range(0.0..1.0));
    tokio::time::sleep(delay).await;
    worker.sigkill()?;
    let killed_after = started.elapsed();
    let at_kill = baseline.tally(store).await?;
    let in_flight = in_flight(store, &fresh.prefix).await?;
    let in_flight_at_kill = in_flight.len();

    let restarted = Instant::now();
    let mut worker = Worker::start(&WorkerSpec {
        exit_when_idle: true,
        ..spec
    })?;
    let (first_recovered, recovered) = watch_recovery(store, in_flight, restarted).await?;
    let limit = Duration::from_secs(600).max(Duration::from_millis(50) * count as u32);
    let status = worker.wait_exit(limit).await?;
    if !status.success() {
        bail!("the restarted worker failed: {status}");
    }
    let after_restart = restarted.elapsed();
    let verified = verify_ten_steps(store, &fresh.prefix).await?;
    let reruns = read_run_log(&services.join("step-runs.log"))?;

    let mut report = Report::new("w4", "crash (SIGKILL of the worker child, restart)");
    report
        .set("store", ctx.target.store_name())
        .set("durability", "full")
        .set("count", count)
        .set("in_flight", IN_FLIGHT)
        .set("workers", 1)
        .set("worker", "child")
        .set("kill_after_completed", kill_after)
        .ms("kill_delay_ms", delay)
        .secs("killed_after_s", killed_after)
        .set("completed_at_kill", at_kill.completed)
        .set("in_flight_at_kill", in_flight_at_kill);
    match (first_recovered, recovered) {
        (Some(first), Some(all)) => {
            report
                .secs("first_recovered_s", first)
                .secs("recover_s", all);
        }
        _ => {
            report
                .set("first_recovered_s", serde_json::Value::Null)
                .set("recover_s", serde_json::Value::Null);
            report.note("no process was in flight at the kill, so there was nothing to recover");
        }
    }
    report
        .secs("restart_to_done_s", after_restart)
        .set("finished", verified.completed)
        .set("processes", verified.processes)
        .set("lost", verified.lost)
        .set("extra_entries", verified.extra)
        .set("closure_runs", reruns.runs)
        .set("steps_ran", reruns.distinct)
        .set("expected_steps", count * STEPS)
        .set("reran", reruns.reran)
        .set("max_runs_of_one_step", reruns.max_runs);
    report.note(
        "the worker is killed kill_delay_ms after kill_after_completed processes completed; \
         in_flight_at_kill: processes in status running with an owner right after the kill; \
         recover_s: from the restart until each of them has finished or journaled a new entry \
         (polled every 5 ms); lost: expected journal entries (step i with its value) missing \
         from completed processes; reran: closure runs beyond the first, from the run log",
    );
    Ok(report)
}

/// The run's processes that a host was running (status running, owner set).
async fn in_flight(store: &Arc<dyn Backend>, prefix: &str) -> anyhow::Result<Vec<InFlight>> {
    let mut found = Vec::new();
    let mut pages = Pages::new(prefix, Some(Status::Running));
    while let Some(page) = pages.next(store).await? {
        for record in page.into_iter().filter(|r| r.owner.is_some()) {
            let journal_len = store.journal(&record.id).await?.len();
            found.push(InFlight {
                id: record.id,
                epoch: record.epoch,
                journal_len,
            });
        }
    }
    Ok(found)
}

/// Waits until every process in `pending` has progressed (see the module
/// docs); returns the time from `since` until the first and the last did,
/// `None` when there were none.
async fn watch_recovery(
    store: &Arc<dyn Backend>,
    mut pending: Vec<InFlight>,
    since: Instant,
) -> anyhow::Result<(Option<Duration>, Option<Duration>)> {
    if pending.is_empty() {
        return Ok((None, None));
    }
    let mut first = None;
    while !pending.is_empty() {
        let mut waiting = Vec::with_capacity(pending.len());
        for process in pending {
            if progressed(store, &process).await? {
                first.get_or_insert_with(|| since.elapsed());
            } else {
                waiting.push(process);
            }
        }
        pending = waiting;
        if pending.is_empty() {
            break;
        }
        if since.elapsed() > STALL {
            bail!(
                "{} processes in flight at the kill made no progress within {} s of the restart",
                pending.len(),
                STALL.as_secs()
            );
        }
        tokio::time::sleep(RECOVERY_POLL).await;
    }
    Ok((first, Some(since.elapsed())))
}

/// Whether `process` has finished, or was claimed again and journaled more.
async fn progressed(store: &Arc<dyn Backend>, process: &InFlight) -> anyhow::Result<bool> {
    let record = store.get(&process.id).await?;
    if record.status.is_finished() {
        return Ok(true);
    }
    if record.epoch == process.epoch {
        return Ok(false);
    }
    Ok(store.journal(&process.id).await?.len() > process.journal_len)
}
