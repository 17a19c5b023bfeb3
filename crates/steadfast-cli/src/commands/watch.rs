//! `steadfast watch ID`: follows one process live, printing each change of
//! its status (with what it waits for and the source line it stands at)
//! and each new or changed journal entry, until it ends.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use steadfast::{EntryStatus, JournalEntry, ProcessId, ProcessRecord, Status, Timestamp};

use crate::db::{self, Open};
use crate::{WatchArgs, json, render};

/// The longest outcome preview on an entry's line.
const PREVIEW: usize = 60;

/// What identifies one state of a journal entry: an entry updated in place
/// (a step's durable retry wait, a timer that fired) shows again.
type EntryKey = (i64, String, EntryStatus, u32, Option<Timestamp>);

/// Runs `steadfast watch`: exits 0 when the process completes, 1 when it
/// fails or is cancelled.
pub async fn run(db: &str, args: WatchArgs) -> anyhow::Result<()> {
    let id = ProcessId::new(args.id.as_str()).context("not a valid process id")?;
    let (store, _) = db::open(db, Open::ReadOnly).await?;
    let interval = Duration::from_millis(args.interval_ms);
    let mut seen: HashSet<EntryKey> = HashSet::new();
    let mut last_line = String::new();
    let mut generation = None;
    loop {
        let record = store.get(&id).await?;
        // Read the journal after the record: an end seen in the record has
        // all its entries in the journal.
        let journal = store.journal(&id).await?;
        if generation.is_some_and(|g| g != record.generation) {
            // Continued as new: a fresh journal.
            seen.clear();
            emit_note(
                args.json,
                &format!("continued as new (generation {})", record.generation),
            )?;
        }
        generation = Some(record.generation);
        for entry in &journal {
            let key = (
                entry.seq,
                entry.name.clone(),
                entry.status,
                entry.attempts,
                entry.due_at,
            );
            if seen.insert(key) {
                if args.json {
                    let mut v = json::entry(entry);
                    v["event"] = "entry".into();
                    outln!("{}", serde_json::to_string(&v)?)?;
                } else {
                    outln!("  {}", entry_line(entry))?;
                }
            }
        }
        let now = Timestamp::now_system();
        let line = status_line(&record, &journal, now);
        // The relative time in a timer's wait changes every second: only a
        // change of what the line says otherwise is printed again.
        let key = status_key(&record);
        if key != last_line {
            last_line = key;
            if args.json {
                let mut v = json::record(&record);
                v["event"] = "status".into();
                outln!("{}", serde_json::to_string(&v)?)?;
            } else {
                outln!("{line}")?;
            }
        }
        std::io::Write::flush(&mut std::io::stdout())?;
        match record.status {
            Status::Completed => return Ok(()),
            Status::Failed => anyhow::bail!(
                "process {} failed: {}",
                record.id,
                record.error.as_deref().unwrap_or("")
            ),
            Status::Cancelled => anyhow::bail!("process {} was cancelled", record.id),
            _ => tokio::time::sleep(interval).await,
        }
    }
}

/// A note between entries (`--json`: an object with `event: "note"`).
fn emit_note(as_json: bool, text: &str) -> std::io::Result<()> {
    if as_json {
        outln!("{}", serde_json::json!({ "event": "note", "note": text }))
    } else {
        outln!("-- {text}")
    }
}

/// What makes the status line worth printing again.
fn status_key(p: &ProcessRecord) -> String {
    format!(
        "{}|{:?}|{}|{:?}|{:?}|{:?}|{}",
        p.status,
        p.waiting_for,
        p.wake_at.map_or(0, Timestamp::as_micros),
        p.parked_at,
        p.blocked_step,
        p.owner,
        p.cancel_requested
    )
}

/// `suspended · waits for signal: email verified · at examples/src/onboarding.rs:42`.
fn status_line(p: &ProcessRecord, journal: &[JournalEntry], now: Timestamp) -> String {
    let mut parts = vec![format!("{} ({})", p.status, p.kind)];
    let waits = render::waits(p, now);
    if !waits.is_empty() {
        parts.push(format!("waits for {waits}"));
    }
    match p.status {
        Status::Completed => {
            parts.push(format!(
                "output {}",
                render::preview(p.output.as_deref().unwrap_or("null"), PREVIEW)
            ));
        }
        Status::Failed | Status::Blocked | Status::Cancelled => {
            if let Some(error) = &p.error {
                parts.push(render::preview(error, 2 * PREVIEW));
            }
        }
        _ => {}
    }
    let lines: Vec<String> = if p.parked_at.is_empty() {
        // A running process stands after its latest entry.
        journal
            .iter()
            .max_by_key(|e| e.seq)
            .and_then(|e| e.location.as_ref())
            .filter(|_| p.status == Status::Running)
            .map(|l| vec![format!("after {}:{}", l.file, l.line)])
            .unwrap_or_default()
    } else {
        p.parked_at
            .iter()
            .map(|l| format!("{}:{}", l.file, l.line))
            .collect()
    };
    if !lines.is_empty() {
        parts.push(format!("at {}", lines.join(", ")));
    }
    parts.join(" · ")
}

/// `+ step "registered" completed (1 attempt) → 42   examples/src/onboarding.rs:30`.
fn entry_line(e: &JournalEntry) -> String {
    let mut line = format!("+ {} {:?} {}", e.kind.as_str(), e.name, e.status.as_str());
    if e.attempts > 1 {
        line.push_str(&format!(" ({} attempts)", e.attempts));
    }
    if let Some(due) = e.due_at
        && e.status == EntryStatus::Scheduled
    {
        line.push_str(&format!(" until {due}"));
    }
    if let Some(outcome) = &e.outcome {
        line.push_str(&format!(" → {}", render::preview(outcome, PREVIEW)));
    }
    if let Some(l) = &e.location {
        line.push_str(&format!("   {}:{}", l.file, l.line));
    }
    line
}
