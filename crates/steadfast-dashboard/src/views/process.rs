//! The process page: header, journal timeline, and the function's source
//! with the line where the process stands highlighted.

use maud::{Markup, html};
use steadfast::core::{FunctionSource, PendingSignal, SignalRecord, SignalState};
use steadfast::{EntryKind, EntryStatus, JournalEntry, ProcessRecord, SourceLocation, Status};

use super::source::{self, LineNote, Notes};
use super::{csrf_field, duration, kind_url, pretty_json, preview, status_badge, time, url};

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
    html! {
        section.header data-status=(r.status.as_str()) data-updated=(r.updated_at.as_micros()) {
            h1 { span.muted { "Process " } code.pid { (r.id.as_str()) } " " (status_badge(r.status)) }
            dl.facts {
                div { dt { "Kind" } dd { a href=(kind_url(&r.kind)) { (r.kind) } } }
                div { dt { "Created" } dd { (time(r.created_at)) } }
                div { dt { "Updated" } dd { (time(r.updated_at)) } }
                @if let Some(wait) = waits_for(r) { div { dt { "Waits for" } dd.wait { (wait) } } }
                @if let Some(step) = &r.blocked_step { div { dt { "Blocked at" } dd { code { (step) } } } }
                @if !view.pending.is_empty() {
                    div { dt { "Pending signals" }
                    dd { @for sig in view.pending {
                        span.signal title=(preview(&sig.payload, 500)) { "“" (sig.name) "” " (time(sig.sent_at)) }
                        " "
                    } } }
                }
                @if r.cancel_requested { div { dt { "Cancel" } dd { "requested; the running host will stop it" } } }
            }
            div.values {
                div { h3 { "Input" } pre.json { (pretty_json(&r.input)) } }
                @if let Some(out) = &r.output { div { h3 { "Output" } pre.json { (pretty_json(out)) } } }
                @if let Some(err) = &r.error {
                    div { h3 { @if r.status == Status::Blocked { "Blocked reason" } @else { "Error" } }
                          pre.error { (err) } }
                }
            }
        }
        (signals(view.record, view.signals, csrf))
        div.split {
            section.timeline {
                h2 { "Journal " span.muted { "(" (view.journal.len()) " entries)" } }
                @if view.journal.is_empty() { p.muted { "Nothing journaled yet." } }
                ol.entries {
                    @for e in view.journal { (entry(r, e, csrf)) }
                }
            }
            section.sources {
                h2 { "Source" }
                (sources(view))
            }
        }
    }
}

fn entry(r: &ProcessRecord, e: &JournalEntry, csrf: &str) -> Markup {
    let took = e.finished_at.map(|f| f.saturating_since(e.started_at));
    html! {
        li class={ "entry es-" (e.status.as_str()) } data-name=(e.name) {
            div.entry-head {
                span.ename { (e.name) }
                span.ekind { (e.kind.as_str()) }
                span class={ "badge es-" (e.status.as_str()) } { (e.status.as_str()) }
            }
            div.entry-meta {
                @if e.attempts > 1 { span { (e.attempts) " attempts" } }
                @if let Some(d) = took { span { (duration(d)) } }
                @if let Some(due) = e.due_at { span { "due " (time(due)) } }
                @if let Some(loc) = &e.location {
                    a.loc href={ "#L" (loc.line) } title=(loc.file) { "line " (loc.line) }
                }
            }
            @if let Some(outcome) = &e.outcome {
                @let class = if e.status == EntryStatus::Failed { "outcome error" } else { "outcome" };
                pre class=(class) title=(preview(outcome, 2000)) { (preview(outcome, 160)) }
            }
            form.rewind method="post" action="/actions/rewind" {
                (csrf_field(csrf))
                input type="hidden" name="id" value=(r.id.as_str());
                input type="hidden" name="step" value=(e.name);
                button.small type="submit" title="drop this entry and every later one, run again from here" { "rewind here…" }
            }
        }
    }
}

fn sources(view: &ProcessView<'_>) -> Markup {
    let all = match view.sources {
        Ok(all) => all,
        Err(err) => {
            return source::missing(Some(&format!("The store could not list sources: {err}")));
        }
    };
    let notes = notes(view.record, view.journal);
    let picked = source::pick(
        all,
        notes.keys(),
        &source::names_for_kind(&view.record.kind),
    );
    if picked.is_empty() {
        return source::missing(None);
    }
    html! { @for s in picked { (source::render(s, &notes)) } }
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
pub fn notes(r: &ProcessRecord, journal: &[JournalEntry]) -> Notes {
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
    for (loc, wait) in current(r, journal) {
        let note: &mut LineNote = notes.entry(loc).or_default();
        note.current = true;
        note.wait = Some(wait);
    }
    notes
}

/// The lines where the process stands, with what it does there.
pub fn current(r: &ProcessRecord, journal: &[JournalEntry]) -> Vec<(SourceLocation, String)> {
    match r.status {
        Status::Suspended => r
            .parked_at
            .iter()
            .map(|loc| {
                let scheduled = journal.iter().rev().find(|e| {
                    e.status == EntryStatus::Scheduled && e.location.as_ref() == Some(loc)
                });
                let text = match scheduled {
                    Some(e) if e.kind == EntryKind::Timer => match e.due_at {
                        Some(due) => format!("⏰ timer “{}” due {due}", e.name),
                        None => format!("⏰ timer “{}”", e.name),
                    },
                    Some(e) => match e.due_at {
                        Some(due) => format!("✉ waits for “{}” (gives up {due})", e.name),
                        None => format!("✉ waits for “{}”", e.name),
                    },
                    None => waits_for(r)
                        .map_or_else(|| "waiting".to_owned(), |w| format!("✉ waits for {w}")),
                };
                (loc.clone(), text)
            })
            .collect(),
        Status::Blocked => r
            .parked_at
            .iter()
            .map(|loc| {
                let reason = r.error.as_deref().unwrap_or("blocked");
                (loc.clone(), format!("⛔ {}", preview(reason, 200)))
            })
            .collect(),
        Status::Running => journal
            .iter()
            .rev()
            .find_map(|e| e.location.clone())
            .map(|loc| (loc, "⚙ running from here".to_owned()))
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
                                td { (s.state.as_str()) @if let Some(at) = s.settled_at { " " (time(at)) } }
                                td { (time(s.sent_at)) }
                                td { code.json { (preview(&s.payload, 200)) } }
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
