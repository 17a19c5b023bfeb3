//! The process page: header, journal timeline, and the function's source
//! with the line where the process stands highlighted.

use maud::{Markup, html};
use steadfast::core::{
    FunctionSource, Generation, PendingSignal, ProcessEvent, SignalRecord, SignalState,
};
use steadfast::{EntryKind, EntryStatus, JournalEntry, ProcessRecord, SourceLocation, Status};

use super::source::{self, LineNote, Notes};
use super::timeline;
use super::{csrf_field, json_value, kind_url, preview, rel_time, status_badge, url};

/// Everything the process page shows.
pub struct ProcessView<'a> {
    /// The process.
    pub record: &'a ProcessRecord,
    /// Its journal in `seq` order.
    pub journal: &'a [JournalEntry],
    /// Every stored function source, or why they could not be read.
    pub sources: &'a Result<Vec<FunctionSource>, String>,
    /// Signals received and not yet consumed.
    pub pending: &'a [PendingSignal],
    /// Every signal, whatever became of it.
    pub signals: &'a [SignalRecord],
    /// Earlier generations (continued as new), oldest first.
    pub generations: &'a [Generation],
    /// The store's history of the process (claims, blocks, retries,
    /// rewinds, cancels, ends), oldest first.
    pub events: &'a [ProcessEvent],
    /// This dashboard's time.
    pub now: steadfast::Timestamp,
}

/// The whole page body: the live part and the actions.
pub fn body(view: &ProcessView<'_>, csrf: &str) -> Markup {
    let id = view.record.id.as_str();
    let live = url("/live/process", &[("id", id)]);
    html! {
        (super::live_box(&live, live_part(view, csrf)))
        (actions(view.record, csrf))
    }
}

/// The part that refreshes itself: header, timeline and source.
pub fn live_part(view: &ProcessView<'_>, csrf: &str) -> Markup {
    let r = view.record;
    let all: &[FunctionSource] = view.sources.as_deref().unwrap_or(&[]);
    let at = current(r, view.journal, all);
    let abandoned = abandoned_timers(r, view.journal);
    let open_waits: Vec<(SourceLocation, String)> = at
        .iter()
        .filter_map(|w| w.open_wait.clone().map(|s| (w.location.clone(), s)))
        .collect();
    let history = timeline::History {
        record: r,
        journal: view.journal,
        generations: view.generations,
        signals: view.signals,
        open_waits: &open_waits,
        abandoned: &abandoned,
        stored: view.events,
    };
    let events = timeline::events(&history);
    let mut notes = notes(view.journal, &at);
    timeline::count_lines(&events, &mut notes);
    html! {
        section.header data-status=(r.status.as_str()) data-updated=(r.updated_at.as_micros()) {
            h1 { span.muted { "Process " } code.pid { (r.id.as_str()) } " " (status_badge(r.status)) }
            dl.facts {
                div { dt { "Kind" } dd { a href=(kind_url(&r.kind)) { (r.kind) } } }
                div { dt { "Created" } dd { (rel_time(r.created_at)) } }
                div { dt { "Updated" } dd { (rel_time(r.updated_at)) } }
                @if let Some(wait) = waits_for(r) { div { dt { "Waits for" } dd.wait { (wait) } } }
                @if let Some(step) = &r.blocked_step { div { dt { "Blocked at" } dd { code { (step) } } } }
                div { dt { "Runs" } dd { "epoch " (r.epoch) @if let Some(owner) = &r.owner { ", held by " code { (owner) } } } }
                @if r.generation > 0 { div { dt { "Generation" } dd { (r.generation) } } }
                @if !view.pending.is_empty() {
                    div { dt { "Pending signals" }
                    dd { @for sig in view.pending {
                        span.signal title=(preview(&sig.payload, 500)) { "“" (sig.name) "” " (rel_time(sig.sent_at)) }
                        " "
                    } } }
                }
                @if r.cancel_requested { div { dt { "Cancel" } dd { "requested; the running host will stop it" } } }
            }
            (super::clock_note(Some(r.updated_at), view.now))
            div.values {
                div { h3 { "Input" } (json_value("v-input", "input", &r.input)) }
                @if let Some(out) = &r.output { div { h3 { "Output" } (json_value("v-output", "output", out)) } }
                @if let Some(err) = &r.error {
                    div { h3 { @if r.status == Status::Blocked { "Blocked reason" } @else { "Error" } }
                          pre.error { (preview(err, super::VALUE_PREVIEW)) } }
                }
            }
        }
        (signals(view.record, view.signals, csrf))
        (super::messages::render(
            &super::messages::received(view.signals),
            &super::messages::published(r.id.as_str(), view.journal),
        ))
        div.split {
            section.timeline {
                h2 { "Timeline " span.muted { "(" (events.len()) " entries, " (view.journal.len()) " journaled)" } }
                (timeline::render(&events, r.updated_at, r.id.as_str(), csrf))
            }
            section.sources {
                h2 { "Source" }
                (sources(view, &notes))
            }
        }
    }
}

fn sources(view: &ProcessView<'_>, notes: &Notes) -> Markup {
    let all = match view.sources {
        Ok(all) => all,
        Err(err) => {
            return source::missing(Some(&format!("The store could not list sources: {err}")));
        }
    };
    let picked = source::pick(
        all,
        notes.keys(),
        &source::names_for_kind(&view.record.kind),
    );
    if picked.is_empty() {
        return source::missing(None);
    }
    html! { @for s in picked { (source::render(s, notes)) } }
}

/// What the process waits for, in words (suspended processes).
fn waits_for(r: &ProcessRecord) -> Option<String> {
    if r.status != Status::Suspended {
        return None;
    }
    let mut parts = Vec::new();
    if !r.waiting_for.is_empty() {
        let names: Vec<String> = r.waiting_for.iter().map(|n| format!("“{n}”")).collect();
        parts.push(format!("signal {}", names.join(" or ")));
    }
    if let Some(at) = r.wake_at {
        parts.push(format!("timer due {at}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Per-line notes: finished entries, and where the process stands.
pub fn notes(journal: &[JournalEntry], at: &[Standing]) -> Notes {
    let mut notes = Notes::new();
    for e in journal {
        let Some(loc) = &e.location else { continue };
        let note = notes.entry(loc.clone()).or_default();
        match e.status {
            EntryStatus::Completed => note.done.push(e.name.clone()),
            EntryStatus::Failed => note.failed.push(e.name.clone()),
            _ => {}
        }
    }
    for s in at {
        let note: &mut LineNote = notes.entry(s.location.clone()).or_default();
        note.current = true;
        note.wait = Some(s.text.clone());
    }
    notes
}

/// A line where the process stands.
#[derive(Clone, Debug)]
pub struct Standing {
    /// The line.
    pub location: SourceLocation,
    /// What the process does there, in words.
    pub text: String,
    /// For a wait without a timeout (not journaled while it waits): the
    /// signal it awaits.
    pub open_wait: Option<String>,
}

/// The timers (journal entry names) the process no longer waits on: still
/// scheduled in the journal, but `select!` took another branch (or the
/// process ended), so they will never fire.
pub fn abandoned_timers(r: &ProcessRecord, journal: &[JournalEntry]) -> Vec<String> {
    let parked_here =
        |loc: &Option<SourceLocation>| loc.as_ref().is_some_and(|l| r.parked_at.contains(l));
    let live = |e: &JournalEntry| match r.status {
        // The latest scheduled timer at a line it waits on is live; older
        // ones at the same line (a loop) are not.
        Status::Suspended => {
            parked_here(&e.location)
                && !journal.iter().any(|later| {
                    later.seq > e.seq
                        && later.kind == EntryKind::Timer
                        && later.status == EntryStatus::Scheduled
                        && later.location == e.location
                })
        }
        // A running process may be about to fire it.
        Status::Running => true,
        _ => false,
    };
    journal
        .iter()
        .filter(|e| e.kind == EntryKind::Timer && e.status == EntryStatus::Scheduled && !live(e))
        .map(|e| e.name.clone())
        .collect()
}

/// The text of source line `loc`, if captured.
fn line_text<'a>(sources: &'a [FunctionSource], loc: &SourceLocation) -> Option<&'a str> {
    let s = sources.iter().find(|s| s.contains(loc))?;
    s.text
        .lines()
        .nth(loc.line.checked_sub(s.first_line)? as usize)
}

/// The lines where the process stands, each with what *that* line awaits.
pub fn current(
    r: &ProcessRecord,
    journal: &[JournalEntry],
    sources: &[FunctionSource],
) -> Vec<Standing> {
    match r.status {
        Status::Suspended => {
            // Signals awaited by journaled (timed) waits are named by them.
            let timed: Vec<&JournalEntry> = journal
                .iter()
                .filter(|e| e.kind == EntryKind::Wait && e.status == EntryStatus::Scheduled)
                .collect();
            let untimed: Vec<&SourceLocation> = r
                .parked_at
                .iter()
                .filter(|loc| {
                    !journal.iter().any(|e| {
                        e.status == EntryStatus::Scheduled && e.location.as_ref() == Some(*loc)
                    })
                })
                .collect();
            let mut unclaimed: Vec<&String> = r
                .waiting_for
                .iter()
                .filter(|s| !timed.iter().any(|e| &e.name == *s))
                .collect();
            // Each untimed wait's signal: the one its source line names, or
            // the only one left.
            let mut named: Vec<(&SourceLocation, Option<String>)> = untimed
                .iter()
                .map(|loc| {
                    let text = line_text(sources, loc).unwrap_or_default();
                    let hit = unclaimed
                        .iter()
                        .position(|s| text.contains(&format!("{:?}", s)));
                    (*loc, hit.map(|i| unclaimed.remove(i).clone()))
                })
                .collect();
            if let [(_, name @ None)] = named.as_mut_slice()
                && let [only] = unclaimed.as_slice()
            {
                *name = Some((*only).clone());
            }
            r.parked_at
                .iter()
                .map(|loc| {
                    let scheduled = journal.iter().rev().find(|e| {
                        e.status == EntryStatus::Scheduled && e.location.as_ref() == Some(loc)
                    });
                    let (text, open_wait) = match scheduled {
                        Some(e) if e.kind == EntryKind::Timer => (
                            match e.due_at {
                                Some(due) => format!("timer “{}” due {due}", e.name),
                                None => format!("timer “{}”", e.name),
                            },
                            None,
                        ),
                        Some(e) => (
                            match e.due_at {
                                Some(due) => format!("waits for “{}” (gives up {due})", e.name),
                                None => format!("waits for “{}”", e.name),
                            },
                            None,
                        ),
                        None => match named.iter().find(|(l, _)| *l == loc) {
                            Some((_, Some(signal))) => {
                                (format!("waits for “{signal}”"), Some(signal.clone()))
                            }
                            _ => (
                                waits_for(r).map_or_else(
                                    || "waiting".to_owned(),
                                    |w| format!("waits for one of: {w}"),
                                ),
                                None,
                            ),
                        },
                    };
                    Standing {
                        location: loc.clone(),
                        text,
                        open_wait,
                    }
                })
                .collect()
        }
        Status::Blocked => r
            .parked_at
            .iter()
            .map(|loc| {
                let reason = r.error.as_deref().unwrap_or("blocked");
                Standing {
                    location: loc.clone(),
                    text: format!("blocked: {}", preview(reason, 200)),
                    open_wait: None,
                }
            })
            .collect(),
        Status::Running => journal
            .iter()
            .rev()
            .find_map(|e| e.location.clone())
            .map(|loc| Standing {
                location: loc,
                text: "running from here".to_owned(),
                open_wait: None,
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The signals no wait consumed: pending ones (each with a discard
/// button), rejected ones with the reason, discarded ones. Consumed signals
/// are in the journal already.
fn signals(r: &ProcessRecord, signals: &[SignalRecord], csrf: &str) -> Markup {
    let shown: Vec<&SignalRecord> = signals
        .iter()
        .filter(|s| s.state != SignalState::Consumed)
        .collect();
    html! {
        @if !shown.is_empty() {
            section.signals {
                h2 { "Signals not consumed " span.muted { "(" (shown.len()) ")" } }
                table.signals {
                    thead { tr { th { "id" } th { "name" } th { "state" } th { "sent" } th { "payload" } th { "reason" } th {} } }
                    tbody {
                        @for s in &shown {
                            tr data-signal=(s.id) data-state=(s.state.as_str()) {
                                td { (s.id) }
                                td { code { (s.name) } }
                                td { (s.state.as_str()) @if let Some(at) = s.settled_at { " " (rel_time(at)) } }
                                td { (rel_time(s.sent_at)) }
                                td { (json_value(&format!("sig-{}", s.id), "payload", &s.payload)) }
                                td.reason { @if let Some(reason) = &s.reason { (reason) } }
                                td {
                                    @if s.state == SignalState::Pending {
                                        form method="post" action="/actions/discard-signal" data-fetch data-confirm="Discard this signal? No wait will take it." {
                                            (csrf_field(csrf))
                                            input type="hidden" name="id" value=(r.id.as_str());
                                            input type="hidden" name="signal" value=(s.id);
                                            button.danger type="submit" { "Discard" }
                                            output.result {}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn actions(r: &ProcessRecord, csrf: &str) -> Markup {
    let id = r.id.as_str();
    let first_wait = r
        .waiting_for
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    html! {
        section.actions {
            h2 { "Actions" }
            form.signal method="post" action="/actions/signal" data-fetch {
                (csrf_field(csrf))
                input type="hidden" name="id" value=(id);
                label { "Signal name " input name="name" required value=(first_wait) placeholder="e.g. email verified"; }
                label { "Payload (JSON) " textarea name="payload" rows="3" spellcheck="false" { "null" } }
                button type="submit" { "Send signal" }
                output.result {}
            }
            div.buttons {
                form method="post" action="/actions/cancel" data-fetch data-confirm="Cancel this process?" {
                    (csrf_field(csrf))
                    input type="hidden" name="id" value=(id);
                    button.danger type="submit" { "Cancel" }
                    output.result {}
                }
                form method="post" action="/actions/retry" data-fetch {
                    (csrf_field(csrf))
                    input type="hidden" name="id" value=(id);
                    button type="submit" title="resume a blocked or failed process; its journal is kept" { "Retry" }
                    output.result {}
                }
            }
            p.muted { "Rewind: use “rewind here…” on a journal entry; you will be asked to confirm." }
        }
    }
}

/// The confirmation page body of a rewind.
pub fn confirm_rewind(
    r: &ProcessRecord,
    journal: &[JournalEntry],
    step: &str,
    csrf: &str,
) -> Markup {
    let from = journal.iter().position(|e| e.name == step);
    html! {
        h1 { "Rewind " code { (r.id.as_str()) } " to “" (step) "”?" }
        @match from {
            None => p.notice { "The journal has no entry named “" (step) "”." },
            Some(i) => {
                p { "These " (journal.len() - i) " journal entries will be dropped; signals they consumed become pending again, and the process runs again from “" (step) "”. Side effects of dropped steps run again." }
                ul { @for e in &journal[i..] { li { code { (e.name) } " (" (e.kind.as_str()) ", " (e.status.as_str()) ")" } } }
                form method="post" action="/actions/rewind" {
                    (csrf_field(csrf))
                    input type="hidden" name="id" value=(r.id.as_str());
                    input type="hidden" name="step" value=(step);
                    input type="hidden" name="confirm" value="yes";
                    button.danger type="submit" { "Rewind" }
                    " "
                    a href=(super::process_url(r.id.as_str())) { "Keep it as it is" }
                }
            }
        }
    }
}

/// Used by the list view: what a process waits for, briefly.
pub fn brief_wait(r: &ProcessRecord) -> String {
    match r.status {
        Status::Suspended => waits_for(r).unwrap_or_default(),
        Status::Blocked => r
            .blocked_step
            .clone()
            .map(|s| format!("at “{s}”"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}
