//! `steadfast schedule add | list | remove`.

use std::time::Duration;

use anyhow::Context;
use steadfast::schedule::{CatchUp, Overlap, SCHEDULE_KIND, Schedule};
use steadfast::{ListFilter, Spawned, Status};

use crate::commands::admin::example_client;
use crate::db::{self, Open};
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
pub async fn run(db: &str, cmd: ScheduleCommand) -> anyhow::Result<()> {
    match cmd {
        ScheduleCommand::Add(args) => add(db, args).await,
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

async fn add(db: &str, args: ScheduleAddArgs) -> anyhow::Result<()> {
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
    let host = example_client(store, &db::services_for(&location))?;
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
            rows.push(serde_json::json!({
                "name": record.id.as_str().trim_start_matches("schedule:"),
                "kind": state["schedule"]["kind"],
                "every": state["schedule"]["every"],
                "overlap": state["schedule"]["overlap"],
                "catch_up": state["schedule"]["catch_up"],
                "last_run": state["last_run"],
                "next_tick": if record.status == Status::Suspended {
                    record.wake_at.map(|t| t.to_string())
                } else {
                    None
                },
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
    }
    for row in &rows {
        outln!(
            "{}  kind {}  every {}  overlap {}  catch-up {}  next tick {}",
            row["name"].as_str().unwrap_or_default(),
            row["kind"],
            row["every"],
            row["overlap"],
            row["catch_up"],
            row["next_tick"].as_str().unwrap_or("-"),
        )?;
    }
    Ok(())
}
