//! Schedules: spawn a process kind once per tick of a fixed interval or a
//! cron pattern, with an overlap policy and catch-up after downtime.
//!
//! A schedule is itself a durable process (kind [`SCHEDULE_KIND`], id
//! `schedule:<name>`): it sleeps until the next tick (a journaled timer, so
//! downtime does not lose it), spawns the tick's run under the id
//! `<name>@<tick>`, the tick in RFC 3339 UTC (`report@2026-11-28T18:43:14Z`;
//! spawning is idempotent, so a tick fires exactly once even if the
//! schedule's own run is repeated), and continues as new, which keeps its
//! journal at a few entries however long it runs.
//!
//! Schedules added by earlier versions named their runs `<name>@<tick in
//! µs since 1970>`; their current generation keeps those ids (its journal
//! names them), the next generation uses the readable ones.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steadfast_core::{Backend, ProcessId, Timestamp};

use crate::{Process, StepError};

/// The kind of the processes that run schedules.
pub const SCHEDULE_KIND: &str = "steadfast schedule";

/// The most missed ticks one wake-up catches up on.
const MAX_CATCH_UP: usize = 1000;

/// The most cron matches one wake-up steps through to find the latest
/// missed tick under [`CatchUp::Once`].
const MAX_ONCE_STEPS: usize = 1_000_000;

/// When a schedule ticks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Every {
    /// Every fixed interval, counted from when the schedule was added.
    Interval(Duration),
    /// At each match of a cron pattern (UTC; 5 fields, or 6 with seconds).
    Cron(String),
}

/// What happens at a tick while the previous tick's run has not finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Skip this tick.
    #[default]
    Skip,
    /// Wait for the previous run to finish, then start this one.
    Queue,
    /// Start this one anyway.
    Allow,
}

/// What happens to ticks missed while no host ran the schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run the latest missed tick once.
    #[default]
    Once,
    /// Run every missed tick (at most 1,000 per wake-up).
    All,
}

/// A schedule: which kind to spawn with which input, and when.
///
/// ```
/// use std::time::Duration;
/// use steadfast::schedule::{Overlap, Schedule};
///
/// let nightly = Schedule::cron("nightly report", "0 3 * * *")
///     .unwrap()
///     .kind("report", &serde_json::json!({"scope": "all"}))
///     .unwrap()
///     .overlap(Overlap::Skip);
/// let heartbeat = Schedule::every("heartbeat", Duration::from_secs(60));
/// assert_eq!(heartbeat.name(), "heartbeat");
/// # let _ = nightly;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    name: String,
    kind: String,
    input: String,
    every: Every,
    overlap: Overlap,
    catch_up: CatchUp,
}

impl Schedule {
    /// A schedule ticking every `interval` (at least one second).
    pub fn every(name: impl Into<String>, interval: Duration) -> Self {
        Self::new(
            name.into(),
            Every::Interval(interval.max(Duration::from_secs(1))),
        )
    }

    /// A schedule ticking at each match of a cron `pattern` (UTC).
    pub fn cron(name: impl Into<String>, pattern: &str) -> Result<Self, crate::Error> {
        croner::Cron::from_str(pattern).map_err(|e| {
            crate::StoreError::InvalidInput(format!("cron pattern {pattern:?} is not valid: {e}"))
        })?;
        Ok(Self::new(name.into(), Every::Cron(pattern.to_owned())))
    }

    fn new(name: String, every: Every) -> Self {
        Schedule {
            name,
            kind: String::new(),
            input: "null".to_owned(),
            every,
            overlap: Overlap::default(),
            catch_up: CatchUp::default(),
        }
    }

    /// The kind each tick spawns, with its input.
    pub fn kind<I: Serialize + ?Sized>(
        mut self,
        kind: impl Into<String>,
        input: &I,
    ) -> Result<Self, crate::Error> {
        self.kind = kind.into();
        self.input = serde_json::to_value(input)
            .map(|v| v.to_string())
            .map_err(|e| crate::Error::Encode {
                what: format!("the input of schedule {:?}", self.name),
                detail: e.to_string(),
            })?;
        Ok(self)
    }

    /// The overlap policy (default: skip).
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// The catch-up policy after downtime (default: the latest tick once).
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind it spawns.
    pub fn spawns(&self) -> &str {
        &self.kind
    }

    /// The process id of the schedule itself.
    pub fn process_id(name: &str) -> String {
        format!("schedule:{name}")
    }

    /// The id of the run spawned for the tick at `tick`: `<name>@<tick>`,
    /// the tick in RFC 3339 UTC, with a fraction of a second only when the
    /// tick has one.
    ///
    /// ```
    /// use steadfast::{Timestamp, schedule::Schedule};
    ///
    /// let tick = Timestamp::from_micros(1_795_891_394_000_000);
    /// assert_eq!(Schedule::run_id("tick2", tick), "tick2@2026-11-28T18:43:14Z");
    /// let half = Timestamp::from_micros(1_795_891_394_500_000);
    /// assert_eq!(Schedule::run_id("tick2", half), "tick2@2026-11-28T18:43:14.5Z");
    /// ```
    pub fn run_id(name: &str, tick: Timestamp) -> String {
        let text = tick.to_string();
        // `…:14.000000Z` → `…:14Z`, `…:14.500000Z` → `…:14.5Z`.
        let readable = match text.strip_suffix('Z').and_then(|t| t.split_once('.')) {
            Some((seconds, fraction)) => match fraction.trim_end_matches('0') {
                "" => format!("{seconds}Z"),
                fraction => format!("{seconds}.{fraction}Z"),
            },
            None => text,
        };
        format!("{name}@{readable}")
    }

    /// The id earlier versions gave the run of the tick at `tick`:
    /// `<name>@<µs since 1970>`.
    pub(crate) fn legacy_run_id(name: &str, tick: Timestamp) -> String {
        format!("{name}@{}", tick.as_micros())
    }

    /// The first tick strictly after `after`.
    pub(crate) fn next_tick(&self, after: Timestamp, origin: Timestamp) -> Option<Timestamp> {
        match &self.every {
            Every::Interval(interval) => {
                let step = i64::try_from(interval.as_micros()).ok()?.max(1);
                let since = after.as_micros() - origin.as_micros();
                let n = since.div_euclid(step) + 1;
                Some(Timestamp::from_micros(origin.as_micros() + n * step))
            }
            Every::Cron(pattern) => {
                let cron = croner::Cron::from_str(pattern).ok()?;
                let secs = after.as_micros().div_euclid(1_000_000);
                let micros = after.as_micros().rem_euclid(1_000_000);
                let start = chrono::DateTime::from_timestamp(secs, (micros * 1000) as u32)?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(Timestamp::from_micros(next.timestamp_micros()))
            }
        }
    }
}

impl Schedule {
    /// The ticks to act on at a wake-up at `now` for the tick due at `next`:
    /// every missed tick from `next` on (at most [`MAX_CATCH_UP`]), or only
    /// the latest tick at or before `now` under [`CatchUp::Once`].
    fn due_ticks(&self, next: Timestamp, now: Timestamp, origin: Timestamp) -> Vec<Timestamp> {
        if self.catch_up == CatchUp::Once {
            return vec![self.latest_tick(next, now, origin)];
        }
        let mut ticks = vec![next];
        while ticks.len() < MAX_CATCH_UP {
            match self.next_tick(*ticks.last().unwrap_or(&next), origin) {
                Some(t) if t <= now => ticks.push(t),
                _ => break,
            }
        }
        ticks
    }

    /// The latest tick at or before `now`, from `next` on (`next` itself
    /// when no later tick is due), however many ticks were missed: counted
    /// for intervals, and for cron patterns found by stepping through at
    /// most [`MAX_ONCE_STEPS`] matches.
    fn latest_tick(&self, next: Timestamp, now: Timestamp, origin: Timestamp) -> Timestamp {
        if let Every::Interval(interval) = &self.every
            && let Ok(step) = i64::try_from(interval.as_micros())
            && step > 0
        {
            let n = (now.as_micros() - origin.as_micros()).div_euclid(step);
            return Timestamp::from_micros(origin.as_micros() + n * step).max(next);
        }
        let mut latest = next;
        for _ in 0..MAX_ONCE_STEPS {
            match self.next_tick(latest, origin) {
                Some(t) if t <= now => latest = t,
                _ => break,
            }
        }
        latest
    }
}

/// The input of a schedule's process: the schedule and where it stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ScheduleState {
    pub(crate) schedule: Schedule,
    /// When the schedule was added (intervals count from here).
    pub(crate) origin: Timestamp,
    /// The last tick handled.
    pub(crate) last_tick: Option<Timestamp>,
    /// The run spawned for the last tick that spawned one.
    pub(crate) last_run: Option<String>,
    /// Whether runs get readable ids ([`Schedule::run_id`]); states written
    /// by earlier versions lack it and keep their µs ids until the next
    /// generation.
    #[serde(default)]
    pub(crate) readable_ids: bool,
}

/// The process function of [`SCHEDULE_KIND`].
pub(crate) async fn run(
    p: Process,
    mut state: ScheduleState,
    store: Arc<dyn Backend>,
) -> Result<(), String> {
    let s = state.schedule.clone();
    let after = state.last_tick.unwrap_or(state.origin);
    let Some(next) = s.next_tick(after, state.origin) else {
        return Err(format!("schedule {:?} has no next tick", s.name));
    };
    p.sleep_until("next tick", next).await;
    let now = p.now("woke").await;
    for tick in s.due_ticks(next, now, state.origin) {
        let run_id = if state.readable_ids {
            Schedule::run_id(&s.name, tick)
        } else {
            Schedule::legacy_run_id(&s.name, tick)
        };
        if let Some(previous) = state.last_run.clone() {
            match s.overlap {
                Overlap::Allow => {}
                Overlap::Skip => {
                    let busy = still_running(
                        &p,
                        &store,
                        &previous,
                        &format!("{run_id}: previous running?"),
                    )
                    .await;
                    if busy {
                        continue;
                    }
                }
                Overlap::Queue => {
                    let mut round = 0;
                    while still_running(
                        &p,
                        &store,
                        &previous,
                        &format!("{run_id}: previous running? {round}"),
                    )
                    .await
                    {
                        p.sleep(format!("{run_id}: waited {round}"), Duration::from_secs(1))
                            .await;
                        round += 1;
                    }
                }
            }
        }
        let input: serde_json::Value =
            serde_json::from_str(&s.input).unwrap_or(serde_json::Value::Null);
        p.spawn_step(
            format!("{run_id}: spawned"),
            run_id.clone(),
            None,
            &s.kind,
            &input,
        )
        .await
        .map_err(|e| e.to_string())?;
        state.last_run = Some(run_id);
        state.last_tick = Some(tick);
    }
    state.last_tick = Some(state.last_tick.map_or(next, |t| t.max(next)));
    // The next generation's journal is empty: it may name runs readably.
    state.readable_ids = true;
    p.continue_as_new(&state).await
}

/// Whether process `id` exists and has not finished (journaled as a step).
async fn still_running(p: &Process, store: &Arc<dyn Backend>, id: &str, step: &str) -> bool {
    let store = Arc::clone(store);
    let id = id.to_owned();
    p.step(step.to_owned(), move || {
        let (store, id) = (Arc::clone(&store), id.clone());
        async move {
            let id = ProcessId::new(id).map_err(StepError::permanent)?;
            match store.get(&id).await {
                Ok(record) => Ok(!record.status.is_finished()),
                Err(crate::StoreError::NotFound(_)) => Ok(false),
                Err(e) => Err(StepError::retryable(e)),
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn intervals_count_from_the_origin() {
        let s = Schedule::every("x", Duration::from_secs(60));
        let origin = Timestamp::from_micros(1_000_000_000);
        let next = s.next_tick(origin, origin).unwrap();
        assert_eq!(next, origin + Duration::from_secs(60));
        let later = s
            .next_tick(origin + Duration::from_secs(150), origin)
            .unwrap();
        assert_eq!(later, origin + Duration::from_secs(180));
    }

    #[test]
    fn catch_up_stops_at_max_catch_up_per_wake_up() {
        let second = Duration::from_secs(1);
        let origin = Timestamp::from_micros(1_000_000_000);
        let next = origin + second;
        // 1,005 ticks were missed: one wake-up acts on the first 1,000.
        let now = origin + 1005 * second;
        let all = Schedule::every("x", second).catch_up(CatchUp::All);
        let ticks = all.due_ticks(next, now, origin);
        assert_eq!(ticks.len(), MAX_CATCH_UP);
        let expected: Vec<_> = (1..=1000u32).map(|k| origin + k * second).collect();
        assert_eq!(ticks, expected);
        // The next wake-up (after the last handled tick) takes the rest.
        let rest = all.due_ticks(origin + 1001 * second, now, origin);
        assert_eq!(
            rest,
            [1001u32, 1002, 1003, 1004, 1005].map(|k| origin + k * second)
        );
        // Below the cap every missed tick is taken, and no tick after `now`.
        let few = all.due_ticks(next, origin + 3 * second + second / 2, origin);
        assert_eq!(few, [1u32, 2, 3].map(|k| origin + k * second));
        // Once: only the latest missed tick.
        let once = Schedule::every("x", second);
        let latest = once.due_ticks(next, origin + 3 * second, origin);
        assert_eq!(latest, [origin + 3 * second]);
        assert_eq!(once.due_ticks(next, next, origin), [next]);
    }

    #[test]
    fn catch_up_once_takes_the_latest_tick_beyond_max_catch_up() {
        // 1,005 missed ticks: once means the 1,005th, not the 1,000th (and
        // then the 1,005th again at the next wake-up).
        let second = Duration::from_secs(1);
        let origin = Timestamp::from_micros(1_000_000_000);
        let now = origin + 1005 * second + second / 2;
        let once = Schedule::every("x", second);
        assert_eq!(
            once.due_ticks(origin + second, now, origin),
            [origin + 1005 * second]
        );
        // The same for a cron pattern ticking every second.
        let cron = Schedule::cron("x", "* * * * * *").unwrap();
        assert_eq!(
            cron.due_ticks(origin + second, now, origin),
            [origin + 1005 * second]
        );
    }

    #[test]
    fn cron_ticks_and_bad_patterns() {
        let s = Schedule::cron("x", "0 3 * * *").unwrap();
        // 2030-01-01T00:00:00Z → 03:00 the same day.
        let t = Timestamp::from_micros(1_893_456_000_000_000);
        let next = s.next_tick(t, t).unwrap();
        assert_eq!(next.to_string(), "2030-01-01T03:00:00.000000Z");
        assert!(Schedule::cron("x", "61 * * * *").is_err());
    }
}
