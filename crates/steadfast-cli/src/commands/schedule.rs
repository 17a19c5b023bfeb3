//! `steadfast schedule add | list | remove`.

use std::time::Duration;

use anyhow::Context;
use steadfast::schedule::{CatchUp, Overlap, SCHEDULE_KIND, Schedule};
use steadfast::{ListFilter, Spawned, Status};

use crate::db::{self, Open};
use crate::kinds::Kinds;
use crate::{ScheduleAddArgs, ScheduleCommand};

/// The longest interval `--every` takes: 100 years.
const MAX_INTERVAL_DAYS: f64 = 36_500.0;

/// Parses `90s`, `15m`, `2h`, `1d` (a plain number is seconds), from more
/// than zero up to 100 years.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not an interval like 90s, 15m, 2h or 1d"))?;
    let secs = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => return Err(format!("unknown unit {other:?}: use s, m, h or d")),
    };
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{text:?} must be more than zero"));
    }
    let seconds = n * secs;
    if seconds > MAX_INTERVAL_DAYS * 86_400.0 {
        return Err(format!(
            "{text:?} is longer than the longest interval allowed, {MAX_INTERVAL_DAYS}d (100 years)"
        ));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Runs a `steadfast schedule` command.
pub async fn run(db: &str, cmd: ScheduleCommand, kinds: &Kinds) -> anyhow::Result<()> {
    match cmd {
        ScheduleCommand::Add(args) => add(db, args, kinds).await,
        ScheduleCommand::List { json } => list(db, json).await,
        ScheduleCommand::Remove { name } => {
            let (store, _) = db::open(db, Open::Existing).await?;
            let host = crate::commands::admin::plain_client(store);
            host.unschedule(&name)
                .await
                .with_context(|| format!("removing schedule {name:?} failed"))?;
            outln!("schedule {name:?} removed")?;
            Ok(())
        }
    }
}

async fn add(db: &str, args: ScheduleAddArgs, kinds: &Kinds) -> anyhow::Result<()> {
    // Without kinds, say so before anything is created.
    kinds.require("schedule add")?;
    let input: serde_json::Value =
        serde_json::from_str(&crate::input::json_arg(&args.input, "the input")?)?;
    let schedule = match (&args.every, &args.cron) {
        (Some(every), _) => Schedule::every(&args.name, *every),
        (None, Some(pattern)) => Schedule::cron(&args.name, pattern)?,
        (None, None) => anyhow::bail!("give --every or --cron"),
    };
    let schedule = schedule
        .kind(&args.kind, &input)?
        .overlap(match args.overlap.as_str() {
            "queue" => Overlap::Queue,
            "allow" => Overlap::Allow,
            _ => Overlap::Skip,
        })
        .catch_up(if args.catch_up == "all" {
            CatchUp::All
        } else {
            CatchUp::Once
        });
    let (store, location) = db::open(db, Open::Create).await?;
    let host = kinds.client(store, &db::services_for(&location), "schedule add")?;
    match host.schedule(schedule).await? {
        Spawned::Created => outln!("schedule {:?} added; a worker runs it", args.name)?,
        Spawned::Existing => outln!(
            "schedule {:?} already exists and was kept (remove it first to change it)",
            args.name
        )?,
    }
    Ok(())
}

async fn list(db: &str, json: bool) -> anyhow::Result<()> {
    let (store, _) = db::open(db, Open::ReadOnly).await?;
    let mut rows = Vec::new();
    let mut next_ticks = Vec::new();
    let mut filter = ListFilter {
        kind: Some(SCHEDULE_KIND.to_owned()),
        limit: 500,
        ..ListFilter::default()
    };
    loop {
        let page = store.list(&filter).await?;
        for record in page.iter().filter_map(steadfast::Listed::record) {
            if record.status.is_finished() {
                continue;
            }
            let state: serde_json::Value = serde_json::from_str(&record.input).unwrap_or_default();
            let schedule = &state["schedule"];
            let (cron, interval) = when(&schedule["every"]);
            let next_tick = record
                .wake_at
                .filter(|_| record.status == Status::Suspended);
            next_ticks.push(next_tick);
            rows.push(serde_json::json!({
                "name": record.id.as_str().trim_start_matches("schedule:"),
                "kind": schedule["kind"],
                "input": schedule["input"]
                    .as_str()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok()),
                "when": match (&cron, interval) {
                    (Some(pattern), _) => format!("cron {pattern}"),
                    (None, Some(every)) => format!("every {}", interval_text(every)),
                    (None, None) => "?".to_owned(),
                },
                "cron": cron,
                "interval_seconds": interval.map(|d| d.as_secs_f64()),
                "overlap": schedule["overlap"],
                "catch_up": schedule["catch_up"],
                "last_run": state["last_run"],
                "next_tick": next_tick.map(|t| t.to_string()),
                "status": record.status,
            }));
        }
        match page.last() {
            Some(last) if page.len() == filter.limit => {
                filter.after = Some(steadfast::ProcessId::new(last.id())?);
            }
            _ => break,
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    if rows.is_empty() {
        outln!("no schedules")?;
        return Ok(());
    }
    let now = steadfast::Timestamp::now_system();
    let mut table = crate::render::table([
        "name",
        "kind",
        "when",
        "overlap",
        "catch-up",
        "next tick",
        "last run",
    ]);
    for (row, next_tick) in rows.iter().zip(&next_ticks) {
        let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
        let next = match next_tick {
            Some(t) => format!("{t} ({})", crate::render::relative(*t, now)),
            None => "-".to_owned(),
        };
        table.add_row([
            text("name"),
            text("kind"),
            text("when"),
            text("overlap"),
            text("catch_up").replace('_', " "),
            next,
            text("last_run"),
        ]);
    }
    outln!("{table}")?;
    Ok(())
}

/// An interval in its largest whole unit (`15m`, `1d`, `90s`), or as
/// [`crate::render::duration`] writes it.
fn interval_text(every: Duration) -> String {
    let secs = every.as_secs();
    if every.subsec_nanos() != 0 || secs == 0 {
        return crate::render::duration(every);
    }
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A stored schedule's `every`: its cron pattern or its interval.
fn when(every: &serde_json::Value) -> (Option<String>, Option<Duration>) {
    if let Some(pattern) = every["cron"].as_str() {
        return (Some(pattern.to_owned()), None);
    }
    let interval = &every["interval"];
    let interval = interval["secs"]
        .as_u64()
        .map(|secs| Duration::new(secs, interval["nanos"].as_u64().unwrap_or(0) as u32));
    (None, interval)
}
