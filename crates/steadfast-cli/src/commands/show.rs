//! `steadfast show ID`: one process and its journal.

use anyhow::Context;
use steadfast::{
    EntryStatus, JournalEntry, ProcessId, ProcessRecord, SignalRecord, SignalState, Status,
    Timestamp,
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
            process: &process,
            journal: &journal,
            signals: &signals,
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    let now = Timestamp::now_system();
    out!("{}", header(&process, now))?;
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

/// What `show --json` prints.
#[derive(serde::Serialize)]
struct ShowJson<'a> {
    /// The process record.
    process: &'a ProcessRecord,
    /// Its journal in `seq` order.
    journal: &'a [JournalEntry],
    /// Its signals in send order, whatever became of them.
    signals: &'a [SignalRecord],
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
