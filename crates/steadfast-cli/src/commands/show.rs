//! `steadfast show ID`: one process and its journal.

use anyhow::Context;
use steadfast::{
    EntryKind, EntryStatus, JournalEntry, ProcessId, ProcessRecord, SignalRecord, SignalState,
    Status, Timestamp,
};

use crate::db::{self, Open};
use crate::{ShowArgs, render};

/// The longest outcome preview in the journal table.
const PREVIEW: usize = 60;

/// Runs `steadfast show`.
pub async fn run(db: &str, args: ShowArgs) -> anyhow::Result<()> {
    let id = ProcessId::new(args.id.as_str()).context("not a valid process id")?;
    let (store, _) = db::open(db, Open::ReadOnly).await?;
    let process = store.get(&id).await?;
    let journal = store.journal(&id).await?;
    let signals = store.signals(&id).await?;
    if args.json {
        let doc = ShowJson {
            process: crate::json::record(&process),
            journal: journal.iter().map(crate::json::entry).collect(),
            signals: signals.iter().map(crate::json::signal).collect(),
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    let now = Timestamp::now_system();
    out!("{}", header(&process, now))?;
    for line in retry_lines(&process, &journal, now) {
        outln!("{line}")?;
    }
    for line in state_lines(&journal) {
        outln!("{line}")?;
    }
    outln!()?;
    if journal.is_empty() {
        outln!("journal: empty (no step has run yet)")?;
    } else {
        outln!("{}", journal_table(&process, &journal))?;
    }
    print_signals(&signals, now)?;
    if let Some(note) = render::future_note(Some(process.updated_at), now) {
        outln!("{note}")?;
    }
    Ok(())
}

/// What `show --json` prints (see [`crate::json`]).
#[derive(serde::Serialize)]
struct ShowJson {
    /// The process record.
    process: serde_json::Value,
    /// Its journal in `seq` order.
    journal: Vec<serde_json::Value>,
    /// Its signals in send order, whatever became of them.
    signals: Vec<serde_json::Value>,
}

/// The signals not consumed by a wait (pending, rejected, discarded): the
/// consumed ones are in the journal already.
fn print_signals(signals: &[SignalRecord], now: Timestamp) -> std::io::Result<()> {
    let shown: Vec<SignalRecord> = signals
        .iter()
        .filter(|s| s.state != SignalState::Consumed)
        .cloned()
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    outln!()?;
    outln!("signals not consumed by a wait:")?;
    outln!("{}", super::signals::table(&shown, now))
}

/// The process's fields, one per line.
fn header(p: &ProcessRecord, now: Timestamp) -> String {
    let mut lines = vec![
        ("id", p.id.to_string()),
        ("kind", p.kind.clone()),
        ("status", p.status.to_string()),
        (
            "created",
            format!("{} ({})", p.created_at, render::relative(p.created_at, now)),
        ),
        (
            "updated",
            format!("{} ({})", p.updated_at, render::relative(p.updated_at, now)),
        ),
        ("input", p.input.clone()),
    ];
    if let Some(output) = &p.output {
        lines.push(("output", output.clone()));
    }
    if let Some(step) = &p.blocked_step {
        lines.push(("blocked at", step.clone()));
    }
    if let Some(error) = &p.error {
        let label = match p.status {
            Status::Blocked => "reason",
            Status::Cancelled => "cancelled",
            _ => "error",
        };
        lines.push((label, error.clone()));
    }
    let waits = render::waits(p, now);
    if !waits.is_empty() {
        lines.push(("waits for", waits));
    }
    if p.cancel_requested && !p.status.is_finished() {
        lines.push(("cancel", "requested".to_owned()));
    }
    let mut out = String::new();
    for (label, value) in lines {
        out.push_str(&format!("{label:<11}{value}\n"));
    }
    out
}

/// One line per step waiting durably for its next attempt: how many
/// attempts failed, with what, and when the next one runs.
fn retry_lines(p: &ProcessRecord, journal: &[JournalEntry], now: Timestamp) -> Vec<String> {
    if p.status.is_finished() {
        return Vec::new();
    }
    journal
        .iter()
        .filter(|e| e.kind == EntryKind::Step && e.status == EntryStatus::Scheduled)
        .filter_map(|e| {
            let due = e.due_at?;
            let error = e.outcome.as_deref().map(last_error).unwrap_or_default();
            Some(format!(
                "{:<11}step {:?}: {} attempt(s) failed (last: {error}); next retry at {due} ({}); \
                 `steadfast retry {}` tries now",
                "retrying",
                e.name,
                e.attempts,
                render::relative(due, now),
                p.id,
            ))
        })
        .collect()
}

/// The latest value of each state key the process published
/// (`publish_state`: journal entries of kind `state` named `"<key> #<n>"`).
fn state_lines(journal: &[JournalEntry]) -> Vec<String> {
    let mut latest = std::collections::BTreeMap::new();
    for e in journal.iter().filter(|e| e.kind == EntryKind::State) {
        let Some((key, _)) = e.name.rsplit_once(" #") else {
            continue;
        };
        latest.insert(key, e.outcome.as_deref().unwrap_or("null"));
    }
    latest
        .into_iter()
        .map(|(key, value)| format!("{:<11}{key} = {}", "state", render::preview(value, PREVIEW)))
        .collect()
}

/// The last error a step waiting for its next attempt recorded.
fn last_error(outcome: &str) -> String {
    serde_json::from_str::<serde_json::Value>(outcome)
        .ok()
        .and_then(|v| v.get("last_error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| outcome.to_owned())
}

/// The journal as a table.
fn journal_table(p: &ProcessRecord, journal: &[JournalEntry]) -> comfy_table::Table {
    let mut table = render::table([
        "#", "step", "kind", "status", "tries", "started", "took", "outcome", "source",
    ]);
    for e in journal {
        let took = e
            .finished_at
            .map(|f| render::duration(f.saturating_since(e.started_at)))
            .unwrap_or_default();
        let outcome = match (e.status, &e.outcome, e.due_at) {
            (EntryStatus::Scheduled, _, _) if p.status.is_finished() => {
                "never fired (the process ended first)".to_owned()
            }
            (EntryStatus::Scheduled, outcome, Some(due)) if e.kind == EntryKind::Step => {
                let error = outcome.as_deref().map(last_error).unwrap_or_default();
                format!(
                    "retry at {due}; last error: {}",
                    render::preview(&error, PREVIEW)
                )
            }
            (EntryStatus::Scheduled, _, Some(due)) => format!("due at {due}"),
            (_, Some(outcome), _) => render::preview(outcome, PREVIEW),
            _ => String::new(),
        };
        let source = e
            .location
            .as_ref()
            .map(|l| format!("{}:{}", l.file, l.line))
            .unwrap_or_default();
        table.add_row([
            e.seq.to_string(),
            e.name.clone(),
            e.kind.as_str().to_owned(),
            e.status.as_str().to_owned(),
            e.attempts.to_string(),
            format!(
                "+{}",
                render::duration(e.started_at.saturating_since(p.created_at))
            ),
            took,
            outcome,
            source,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use steadfast::{
        EntryKind, EntryStatus, JournalEntry, ProcessId, ProcessRecord, Status, Timestamp,
    };

    use super::{retry_lines, state_lines};

    #[test]
    fn a_step_waiting_to_retry_shows_its_attempts_and_next_retry() {
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let due = now + Duration::from_secs(300);
        let process = ProcessRecord {
            id: ProcessId::new("w-1").expect("id"),
            kind: "welcome".into(),
            version: 1,
            input: "null".into(),
            status: Status::Suspended,
            created_at: now,
            updated_at: now,
            wake_at: Some(due),
            waiting_for: Vec::new(),
            owner: None,
            epoch: 1,
            cancel_requested: false,
            output: None,
            error: None,
            blocked_step: None,
            generation: 0,
            parked_at: Vec::new(),
            parent: None,
            traceparent: None,
        };
        let entry = JournalEntry {
            seq: 1,
            name: "mail sent".into(),
            kind: EntryKind::Step,
            status: EntryStatus::Scheduled,
            outcome: Some(r#"{"last_error":"mail server unreachable"}"#.into()),
            attempts: 7,
            started_at: now,
            finished_at: None,
            due_at: Some(due),
            location: None,
            consumed_signal: None,
        };
        let lines = retry_lines(&process, std::slice::from_ref(&entry), now);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(line.contains("7 attempt(s) failed"), "{line}");
        assert!(line.contains("mail server unreachable"), "{line}");
        assert!(line.contains(&format!("next retry at {due}")), "{line}");
        assert!(line.contains("steadfast retry w-1"), "{line}");
    }

    #[test]
    fn published_state_shows_the_latest_value_per_key() {
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let entry = |seq: i64, name: &str, outcome: &str| JournalEntry {
            seq,
            name: name.into(),
            kind: EntryKind::State,
            status: EntryStatus::Completed,
            outcome: Some(outcome.into()),
            attempts: 1,
            started_at: now,
            finished_at: Some(now),
            due_at: None,
            location: None,
            consumed_signal: None,
        };
        let journal = [
            entry(1, "progress #1", "1"),
            entry(2, "phase #1", r#""importing""#),
            entry(3, "progress #2", "2"),
        ];
        let lines = state_lines(&journal);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains(r#"phase = "importing""#), "{lines:?}");
        assert!(lines[1].contains("progress = 2"), "{lines:?}");
    }
}
