//! Helpers the workloads share: spawning many processes concurrently,
//! watching the store's status counts, paging through processes, checking
//! journals and counting closure re-runs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use steadfast::{
    Backend, Durability, EntryStatus, Host, HostBuilder, ListFilter, ProcessRecord, Status,
};
use steadfast_examples::workload::{self, STEPS, step_value};
use tokio::task::JoinSet;

use super::Ctx;
use super::target::Fresh;

/// How many concurrent tasks spawn W2/W4/W5's processes (enough that
/// spawning is not the bottleneck).
pub const SPAWN_TASKS: usize = 32;

/// Rows per page when paging through processes.
const PAGE: usize = 1000;

/// The id of process `i` of a run.
pub fn process_id(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:07}")
}

/// Spawns processes `0..n` of `kind` with `input` from `tasks` concurrent
/// A fresh store (`label`, full durability) holding `count` ten-step
/// processes spawned before any worker runs, and the status counts taken
/// before them: the start of the workloads whose workers are child
/// processes (W4, W5).
pub async fn seeded_ten_steps(
    ctx: &Ctx,
    label: &str,
    count: usize,
) -> anyhow::Result<(Fresh, Baseline)> {
    let fresh = ctx.target.fresh(label, Durability::Full, ctx.keep).await?;
    let baseline = Baseline::take(&fresh.store).await?;
    let client =
        workload::register(HostBuilder::from_arc(Arc::clone(&fresh.store)), None).build_client();
    spawn_all(
        &client,
        workload::KIND,
        &fresh.prefix,
        count,
        SPAWN_TASKS,
        (),
    )
    .await?;
    Ok((fresh, baseline))
}

/// tasks (task `t` spawns `t, t + tasks, …`); returns the time it took.
pub async fn spawn_all<I>(
    host: &Host,
    kind: &'static str,
    prefix: &str,
    n: usize,
    tasks: usize,
    input: I,
) -> anyhow::Result<Duration>
where
    I: Serialize + Clone + Send + Sync + 'static,
{
    let tasks = tasks.clamp(1, n.max(1));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for first in 0..tasks {
        let host = host.clone();
        let prefix = prefix.to_owned();
        let input = input.clone();
        set.spawn(async move {
            for i in (first..n).step_by(tasks) {
                let id = process_id(&prefix, i);
                host.spawn(kind, &id, &input)
                    .await
                    .with_context(|| format!("cannot spawn {id}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.context("a spawning task panicked")??;
    }
    Ok(started.elapsed())
}

/// How many processes are in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Runnable or being run.
    pub running: u64,
    /// Waiting for a timer or a signal.
    pub suspended: u64,
    /// Completed.
    pub completed: u64,
    /// Failed, cancelled or blocked.
    pub other: u64,
}

impl Tally {
    /// Completed, failed or cancelled (blocked processes are not finished,
    /// but they will not move on their own either).
    pub fn settled(&self) -> u64 {
        self.completed + self.other
    }
}

/// The status counts a run starts from, so that figures are deltas (a
/// shared PostgreSQL database may hold other processes).
pub struct Baseline(HashMap<Status, u64>);

impl Baseline {
    /// Reads the counts now.
    pub async fn take(store: &Arc<dyn Backend>) -> anyhow::Result<Baseline> {
        Ok(Baseline(raw_counts(store).await?))
    }

    /// The counts now, minus the baseline.
    pub async fn tally(&self, store: &Arc<dyn Backend>) -> anyhow::Result<Tally> {
        let now = raw_counts(store).await?;
        let delta = |status: Status| {
            now.get(&status)
                .copied()
                .unwrap_or(0)
                .saturating_sub(self.0.get(&status).copied().unwrap_or(0))
        };
        Ok(Tally {
            running: delta(Status::Running),
            suspended: delta(Status::Suspended),
            completed: delta(Status::Completed),
            other: delta(Status::Failed) + delta(Status::Cancelled) + delta(Status::Blocked),
        })
    }
}

/// The store's status counts.
async fn raw_counts(store: &Arc<dyn Backend>) -> anyhow::Result<HashMap<Status, u64>> {
    let counts = store.counts().await.context("cannot count processes")?;
    Ok(counts
        .by_status
        .into_iter()
        .map(|c| (c.status, c.count))
        .collect())
}

/// Polls the counts every `poll` until `done` holds (or fails); returns
/// when it was seen and the counts. Fails when the counts stop changing
/// for `stall`.
pub async fn wait_for(
    store: &Arc<dyn Backend>,
    baseline: &Baseline,
    poll: Duration,
    stall: Duration,
    what: &str,
    mut done: impl FnMut(&Tally) -> anyhow::Result<bool>,
) -> anyhow::Result<(Instant, Tally)> {
    let mut last = baseline.tally(store).await?;
    let mut last_change = Instant::now();
    loop {
        let tally = baseline.tally(store).await?;
        let seen = Instant::now();
        if done(&tally)? {
            return Ok((seen, tally));
        }
        if tally != last {
            last = tally;
            last_change = seen;
        } else if last_change.elapsed() > stall {
            bail!(
                "no progress for {} s while waiting until {what}: {tally:?}",
                stall.as_secs()
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// How often [`wait_until_none_in`] counts every status (for its stall
/// check and the final tally); between counts it only asks whether a row is
/// left.
const FULL_COUNT_EVERY: Duration = Duration::from_secs(10);

/// The first process of the run (ids starting with `prefix`) in one of
/// `statuses`, as its id: one keyset query per status (the status index,
/// one row each), however many processes the run holds.
async fn first_left(
    store: &Arc<dyn Backend>,
    prefix: &str,
    statuses: &[Status],
) -> anyhow::Result<Option<String>> {
    let mut first: Option<String> = None;
    for &status in statuses {
        let filter = ListFilter {
            status: Some(status),
            id_prefix: Some(prefix.to_owned()),
            limit: 1,
            ..ListFilter::default()
        };
        let page = store
            .list(&filter)
            .await
            .context("cannot look for a process left")?;
        if let Some(row) = page.first() {
            let id = row.id().to_owned();
            if first.as_ref().is_none_or(|f| id < *f) {
                first = Some(id);
            }
        }
    }
    Ok(first)
}

/// The processes a wait waits to be gone: those of the run (ids starting
/// with `prefix`) in one of `statuses`.
#[derive(Clone, Copy, Debug)]
pub struct Left<'a> {
    /// The run's id prefix.
    pub prefix: &'a str,
    /// The statuses no process of the run may be left in.
    pub statuses: &'a [Status],
}

/// Polls every `poll` until no process of [`Left`] is left; returns when that was seen and the
/// status counts then. Each poll is a keyset query per status (one row),
/// not a count: counting a million processes several times a second was
/// most of what the database did while W3 put them to sleep. The counts
/// are taken every 10 s (and once at the end); `check` runs at every poll
/// with the latest counts, and its error ends the wait. The wait fails when neither the counts nor the first process left changed
/// for `stall`.
pub async fn wait_until_none_in(
    store: &Arc<dyn Backend>,
    baseline: &Baseline,
    left: Left<'_>,
    poll: Duration,
    stall: Duration,
    what: &str,
    mut check: impl FnMut(&Tally) -> anyhow::Result<()>,
) -> anyhow::Result<(Instant, Tally)> {
    let mut tally = baseline.tally(store).await?;
    check(&tally)?;
    let mut counted = Instant::now();
    let mut first = first_left(store, left.prefix, left.statuses).await?;
    let mut last_change = Instant::now();
    loop {
        let Some(first_id) = &first else {
            let seen = Instant::now();
            let tally = baseline.tally(store).await?;
            check(&tally)?;
            return Ok((seen, tally));
        };
        if counted.elapsed() >= FULL_COUNT_EVERY {
            let now = baseline.tally(store).await?;
            counted = Instant::now();
            if now != tally {
                tally = now;
                last_change = counted;
            }
        }
        check(&tally)?;
        if last_change.elapsed() > stall {
            bail!(
                "no progress for {} s while waiting until {what}: {tally:?}, first left {first_id}",
                stall.as_secs()
            );
        }
        tokio::time::sleep(poll).await;
        let next = first_left(store, left.prefix, left.statuses).await?;
        if next != first {
            last_change = Instant::now();
            first = next;
        }
    }
}

/// Pages through the processes of one status and id prefix, by id.
pub struct Pages {
    filter: ListFilter,
    done: bool,
}

impl Pages {
    /// Processes with ids starting with `prefix`, in `status` if given.
    pub fn new(prefix: &str, status: Option<Status>) -> Pages {
        Pages {
            filter: ListFilter {
                status,
                id_prefix: Some(prefix.to_owned()),
                limit: PAGE,
                ..ListFilter::default()
            },
            done: false,
        }
    }

    /// The next page, `None` after the last.
    pub async fn next(
        &mut self,
        store: &Arc<dyn Backend>,
    ) -> anyhow::Result<Option<Vec<ProcessRecord>>> {
        if self.done {
            return Ok(None);
        }
        let page = store
            .list(&self.filter)
            .await
            .context("cannot list processes")?;
        self.done = page.len() < PAGE;
        match page.last() {
            Some(last) => self.filter.after = Some(steadfast::ProcessId::new(last.id())?),
            None => return Ok(None),
        }
        // Rows that do not decode are left out: the verification counts
        // the processes it sees and reports the shortfall.
        Ok(Some(
            page.into_iter()
                .filter_map(steadfast::Listed::into_record)
                .collect(),
        ))
    }
}

/// What [`verify_ten_steps`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Processes of the run.
    pub processes: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Journal entries missing from completed processes: of the ten
    /// `step i` entries each must hold, completed with its expected value,
    /// how many are absent, not completed or hold another value.
    pub lost: u64,
    /// Entries of completed processes beyond their ten steps.
    pub extra: u64,
}

/// Checks the journal of every completed ten-step process of the run.
pub async fn verify_ten_steps(store: &Arc<dyn Backend>, prefix: &str) -> anyhow::Result<Verified> {
    let mut verified = Verified::default();
    let mut pages = Pages::new(prefix, None);
    while let Some(page) = pages.next(store).await? {
        for record in page {
            verified.processes += 1;
            if record.status != Status::Completed {
                continue;
            }
            verified.completed += 1;
            let journal = store
                .journal(&record.id)
                .await
                .with_context(|| format!("cannot read the journal of {}", record.id))?;
            let mut matched = 0;
            for index in 0..STEPS {
                let name = format!("step {index}");
                let expected = step_value(record.id.as_str(), index);
                let good = journal.iter().any(|e| {
                    e.name == name
                        && e.status == EntryStatus::Completed
                        && e.outcome
                            .as_deref()
                            .and_then(|o| serde_json::from_str::<String>(o).ok())
                            .is_some_and(|v| v == expected)
                });
                if good {
                    matched += 1;
                }
            }
            verified.lost += (STEPS - matched) as u64;
            verified.extra += journal.len().saturating_sub(matched) as u64;
        }
    }
    Ok(verified)
}

/// What the workload's run log says about closure runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reruns {
    /// Closure runs logged.
    pub runs: u64,
    /// Distinct steps that ran.
    pub distinct: u64,
    /// Runs beyond the first of a step (closures that ran twice or more).
    pub reran: u64,
    /// The most runs of one step.
    pub max_runs: u64,
}

/// Reads the run log the worker writes (`<services>/step-runs.log`, one
/// `"<id> <step>"` line per closure run); a missing log means no runs.
pub fn read_run_log(path: &Path) -> anyhow::Result<Reruns> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let mut runs: HashMap<&str, u64> = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        *runs.entry(line).or_default() += 1;
    }
    Ok(Reruns {
        runs: runs.values().sum(),
        distinct: runs.len() as u64,
        reran: runs.values().map(|n| n - 1).sum(),
        max_runs: runs.values().copied().max().unwrap_or(0),
    })
}

/// The poll interval for watching a run of `n` processes: counting a
/// million rows is not free, so large runs are watched less often.
pub fn poll_interval(n: usize) -> Duration {
    if n > 100_000 {
        Duration::from_millis(250)
    } else {
        Duration::from_millis(20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reruns() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("step-runs.log");
        assert_eq!(read_run_log(&log)?, Reruns::default());
        std::fs::write(&log, "a 0\na 1\na 0\nb 0\na 0\n")?;
        let reruns = read_run_log(&log)?;
        assert_eq!(
            reruns,
            Reruns {
                runs: 5,
                distinct: 3,
                reran: 2,
                max_runs: 3
            }
        );
        Ok(())
    }

    #[test]
    fn ids_sort_by_number() {
        assert_eq!(process_id("w2-", 42), "w2-0000042");
        assert!(process_id("x", 9) < process_id("x", 10));
    }
}
