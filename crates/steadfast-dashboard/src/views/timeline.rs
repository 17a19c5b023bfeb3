//! A process's history as one timeline: spawned, earlier generations, each
//! journal entry (steps with attempts and durations as bars on a time axis,
//! values, timers scheduled / fired / abandoned, waits), signals, and the
//! store's history of the process (each claim with its host and epoch,
//! blocks, retries, rewinds, cancels, generations) and the end, each linked
//! to its source line where it has one.

use maud::{Markup, html};
use steadfast::core::{EventKind, Generation, ProcessEvent, SignalRecord, SignalState};
use steadfast::{
    EntryKind, EntryStatus, JournalEntry, ProcessRecord, SourceLocation, Status, Timestamp,
};

use super::source::Notes;
use super::{csrf_field, duration, json_value, process_url, rel_time};

/// One entry of the timeline.
#[derive(Debug)]
pub struct Event {
    /// When it happened (or started).
    pub at: Timestamp,
    /// When it ended, for entries with a duration.
    pub end: Option<Timestamp>,
    /// What happened, as a short lowercase word (also its CSS class).
    pub what: &'static str,
    /// The step, signal or host it is about.
    pub name: String,
    /// Facts shown under it (attempts, due times, …).
    pub facts: Vec<String>,
    /// Where in the source it happened.
    pub location: Option<SourceLocation>,
    /// A reason (blocked, rejected, failed).
    pub reason: Option<String>,
    /// A JSON value (outcome, payload, input) to show collapsed.
    pub value: Option<String>,
    /// A link (a child process).
    pub link: Option<(String, String)>,
    /// Order among entries at the same time.
    pub order: i64,
    /// The journal entry it shows (rewinding to it is offered).
    pub step: Option<String>,
}

impl Event {
    fn new(at: Timestamp, what: &'static str, name: impl Into<String>) -> Self {
        Event {
            at,
            end: None,
            what,
            name: name.into(),
            facts: Vec::new(),
            location: None,
            reason: None,
            value: None,
            link: None,
            order: 0,
            step: None,
        }
    }
}

/// What the timeline is built from.
pub struct History<'a> {
    /// The process.
    pub record: &'a ProcessRecord,
    /// Its journal in `seq` order.
    pub journal: &'a [JournalEntry],
    /// Its earlier generations (continued as new), oldest first.
    pub generations: &'a [Generation],
    /// Every signal, whatever became of it.
    pub signals: &'a [SignalRecord],
    /// The lines of waits without a timeout the process waits at, with the
    /// signal each awaits (these waits are journaled only once they end).
    pub open_waits: &'a [(SourceLocation, String)],
    /// The journal entries (by name) of timers `select!` abandoned.
    pub abandoned: &'a [String],
    /// The store's history of the process (claims, blocks, retries,
    /// rewinds, cancels, ends, generations), oldest first; empty for a
    /// process stored before stores kept it.
    pub stored: &'a [ProcessEvent],
}

/// The timeline's entries in time order.
pub fn events(h: &History<'_>) -> Vec<Event> {
    let r = h.record;
    let mut out = Vec::new();
    for g in h.generations {
        let mut e = Event::new(
            g.ended_at,
            "generation",
            format!("generation {}", g.generation),
        );
        e.facts.push(format!(
            "continued as new after {} journal entries",
            g.journal.len()
        ));
        let by = h
            .stored
            .iter()
            .find(|s| s.kind == EventKind::ContinuedAsNew && s.generation == g.generation);
        if let Some(by) = by {
            e.facts.extend(host_and_epoch(by));
        }
        e.value = Some(g.input.clone());
        e.order = -1;
        out.push(e);
    }
    let mut spawned = Event::new(r.created_at, "spawned", r.kind.clone());
    if r.generation > 0 {
        spawned.facts.push(format!("generation {}", r.generation));
    }
    spawned.order = i64::MIN;
    out.push(spawned);
    for j in h.journal {
        out.extend(entry_events(r, j, h.abandoned));
    }
    for (loc, signal) in h.open_waits {
        let mut e = Event::new(r.updated_at, "waiting", format!("“{signal}”"));
        e.facts
            .push("a wait without a timeout: journaled when the signal comes".to_owned());
        e.location = Some(loc.clone());
        e.order = i64::MAX - 2;
        out.push(e);
    }
    for s in h.signals {
        out.push(signal_event(s, h.journal));
    }
    let final_end = final_end(r, h.stored);
    for (i, s) in h.stored.iter().enumerate() {
        if Some(i) != final_end {
            out.extend(stored_event(s));
        }
    }
    let asked = h
        .stored
        .iter()
        .any(|s| s.kind == EventKind::CancelRequested);
    if r.cancel_requested && !asked {
        let mut e = Event::new(r.updated_at, "cancel", "cancel requested");
        e.facts
            .push("the host running it stops it at its next step".to_owned());
        e.order = i64::MAX - 1;
        out.push(e);
    }
    let claims = h.stored.iter().any(|s| s.kind == EventKind::Claimed);
    if let Some(owner) = &r.owner
        && r.status == Status::Running
        && !claims
    {
        let mut e = Event::new(r.updated_at, "claimed", owner.clone());
        e.facts.push(format!(
            "epoch {} (claimed {} times in all)",
            r.epoch, r.epoch
        ));
        e.order = i64::MAX - 3;
        out.push(e);
    }
    let end = match r.status {
        Status::Blocked => Some("blocked"),
        Status::Completed => Some("completed"),
        Status::Failed => Some("failed"),
        Status::Cancelled => Some("cancelled"),
        _ => None,
    };
    if let Some(what) = end {
        let name = match (&r.blocked_step, r.status) {
            (Some(step), Status::Blocked) => format!("at “{step}”"),
            _ => String::new(),
        };
        let mut e = Event::new(r.updated_at, what, name);
        if r.status == Status::Completed {
            e.value = r.output.clone();
        } else {
            e.reason = r.error.clone();
        }
        if r.status == Status::Blocked {
            e.location = r.parked_at.first().cloned();
        }
        match final_end.map(|i| &h.stored[i]) {
            Some(by) => e.facts.extend(host_and_epoch(by)),
            None => e.facts.push(format!("epoch {}", r.epoch)),
        }
        e.order = i64::MAX;
        out.push(e);
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then(a.order.cmp(&b.order)));
    out
}

/// The stored entry that recorded how the process ended, when it ended and
/// that entry is the last one (it is shown as the end, with its host).
fn final_end(r: &ProcessRecord, stored: &[ProcessEvent]) -> Option<usize> {
    let kind = match r.status {
        Status::Blocked => EventKind::Blocked,
        Status::Completed => EventKind::Completed,
        Status::Failed => EventKind::Failed,
        Status::Cancelled => EventKind::Cancelled,
        _ => return None,
    };
    let last = stored.len().checked_sub(1)?;
    (stored[last].kind == kind).then_some(last)
}

/// "by host `h`" (when a host did it) and "epoch `n`".
fn host_and_epoch(s: &ProcessEvent) -> Vec<String> {
    let mut facts = Vec::new();
    if let Some(host) = &s.host {
        facts.push(format!("by host {host}"));
    }
    facts.push(format!("epoch {}", s.epoch));
    facts
}

/// How many stored entries keep their order among entries at one instant.
const STORED_SPAN: i64 = 1 << 40;

/// One entry of the store's history: a claim (host, epoch), a block or an
/// end before the last, a cancel, a retry or a rewind. Continue-as-new is
/// shown on its generation's entry instead.
fn stored_event(s: &ProcessEvent) -> Option<Event> {
    let (what, name) = match s.kind {
        EventKind::Claimed => ("claimed", s.host.clone().unwrap_or_default()),
        EventKind::Retried => ("retried", "retry".to_owned()),
        EventKind::Rewound => ("rewound", "rewind".to_owned()),
        EventKind::CancelRequested => ("cancel", "cancel requested".to_owned()),
        EventKind::Cancelled => ("cancelled", String::new()),
        EventKind::Blocked => ("blocked", String::new()),
        EventKind::Failed => ("failed", "run failed".to_owned()),
        EventKind::Completed => ("completed", String::new()),
        _ => return None,
    };
    let mut e = Event::new(s.at, what, name);
    // At one instant a claim comes before the run's journal entries, and
    // everything else after them; stored entries keep their stored order.
    let place = s.id.clamp(0, STORED_SPAN - 1);
    e.order = if s.kind == EventKind::Claimed {
        -STORED_SPAN - 8 + place
    } else {
        i64::MAX - 8 - STORED_SPAN + place
    };
    if s.kind == EventKind::Claimed {
        e.facts.push(format!("epoch {}", s.epoch));
    } else {
        e.facts.extend(host_and_epoch(s));
    }
    if s.generation > 0 {
        e.facts.push(format!("generation {}", s.generation));
    }
    match s.kind {
        EventKind::Blocked | EventKind::Failed => e.reason = s.detail.clone(),
        _ => e.facts.extend(s.detail.clone()),
    }
    Some(e)
}

/// One signal: received (and consumed by a wait, at that wait's line),
/// pending, rejected with the reason, or discarded.
fn signal_event(s: &SignalRecord, journal: &[JournalEntry]) -> Event {
    let (what, at) = match s.state {
        SignalState::Consumed => ("received", s.sent_at),
        SignalState::Rejected => ("rejected", s.settled_at.unwrap_or(s.sent_at)),
        SignalState::Discarded => ("discarded", s.settled_at.unwrap_or(s.sent_at)),
        _ => ("pending", s.sent_at),
    };
    let mut e = Event::new(at, what, format!("signal “{}”", s.name));
    e.facts.push(format!("signal {}", s.id));
    match s.state {
        SignalState::Consumed => {
            let wait = journal.iter().find(|j| j.consumed_signal == Some(s.id));
            if let Some(wait) = wait {
                e.facts.push(format!("taken by the wait “{}”", wait.name));
                e.location = wait.location.clone();
            }
        }
        SignalState::Pending => e
            .facts
            .push("received; no wait has taken it yet".to_owned()),
        SignalState::Rejected => {
            e.facts
                .push("no wait for its name could read its payload".to_owned());
            e.reason = s.reason.clone();
        }
        _ => e.facts.push("discarded by an operator".to_owned()),
    }
    e.value = Some(s.payload.clone());
    e.order = -2;
    e
}

fn entry_events(r: &ProcessRecord, j: &JournalEntry, abandoned: &[String]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut e = Event::new(j.started_at, "step", j.name.clone());
    e.location = j.location.clone();
    e.order = j.seq;
    e.value = j.outcome.clone();
    e.step = Some(j.name.clone());
    match (j.kind, j.status) {
        (EntryKind::Step, EntryStatus::Scheduled) => {
            // A step waiting durably for its next attempt.
            e.what = "retrying";
            e.facts.push(format!("{} attempt(s) failed", j.attempts));
            if let Some(due) = j.due_at {
                e.facts.push(format!("next retry {due}"));
            }
            e.end = j.due_at;
        }
        (EntryKind::State, _) => {
            e.what = "state";
            if let Some((key, _)) = j.name.rsplit_once(" #") {
                e.name = format!("{key} published");
            }
        }
        (EntryKind::Step, status) => {
            e.what = if status == EntryStatus::Failed {
                "failed"
            } else {
                "step"
            };
            e.end = j.finished_at;
            if j.attempts > 1 {
                e.facts.push(format!(
                    "{} attempts ({} retries)",
                    j.attempts,
                    j.attempts - 1
                ));
            }
            if let Some(child) = j.name.strip_suffix(": spawned") {
                // A child spawned under a scope has `:` for the scope's `/`.
                let id = format!("{}/{}", r.id, child.replace('/', ":"));
                e.what = "child";
                e.link = Some((process_url(&id), id));
            }
        }
        (EntryKind::Value, _) => {
            e.what = "value";
        }
        (EntryKind::Timer, EntryStatus::Scheduled) => {
            e.what = if abandoned.contains(&j.name) {
                "abandoned"
            } else {
                "timer"
            };
            if let Some(due) = j.due_at {
                e.facts.push(format!("due {due}"));
            }
            if e.what == "abandoned" {
                e.facts
                    .push("select! went another way: this timer will never fire".to_owned());
            } else {
                e.facts.push("scheduled".to_owned());
            }
            e.end = j.due_at;
        }
        (EntryKind::Timer, _) => {
            e.what = "timer";
            e.facts.push("scheduled".to_owned());
            e.end = j.due_at;
            out.push(e);
            let mut fired = Event::new(
                j.finished_at.unwrap_or(j.started_at),
                "fired",
                j.name.clone(),
            );
            fired.location = j.location.clone();
            fired.order = j.seq;
            out.push(fired);
            return out;
        }
        (EntryKind::Wait, EntryStatus::Scheduled) => {
            e.what = "waiting";
            if let Some(due) = j.due_at {
                e.facts.push(format!("gives up {due}"));
            }
        }
        (EntryKind::Wait, status) => {
            e.what = if status == EntryStatus::Failed {
                "timed out"
            } else {
                "consumed"
            };
            if let Some(id) = j.consumed_signal {
                e.facts.push(format!("signal {id}"));
            }
            e.end = j.finished_at;
            if let Some(end) = j.finished_at {
                e.at = end;
                let waited = end.saturating_since(j.started_at);
                if waited >= std::time::Duration::from_millis(1) {
                    e.facts.push(format!("waited {}", duration(waited)));
                }
            }
        }
        _ => {}
    }
    if let Some(end) = e.end.filter(|_| j.kind == EntryKind::Step) {
        e.facts.push(duration(end.saturating_since(j.started_at)));
    }
    out.push(e);
    out
}

/// Counts the entries at each line into `notes` (the source shows them).
pub fn count_lines(events: &[Event], notes: &mut Notes) {
    for e in events {
        if let Some(loc) = &e.location {
            notes.entry(loc.clone()).or_default().entries += 1;
        }
    }
}

/// The timeline: one row per entry with a bar on the shared time axis;
/// entries of the journal offer a rewind (to process `id`, with `csrf`).
pub fn render(events: &[Event], now: Timestamp, id: &str, csrf: &str) -> Markup {
    let first = events.iter().map(|e| e.at).min().unwrap_or(now);
    let last = events
        .iter()
        .map(|e| e.end.unwrap_or(e.at).max(e.at))
        .max()
        .unwrap_or(now)
        .max(first);
    let span = (last.as_micros() - first.as_micros()).max(1) as f64;
    let pos = |t: Timestamp| {
        ((t.as_micros() - first.as_micros()) as f64 / span * 100.0).clamp(0.0, 100.0)
    };
    let indexed: Vec<(usize, &Event)> = events.iter().enumerate().collect();
    html! {
        p.muted { "From " (rel_time(first)) " to " (rel_time(last)) ". Click an entry to find its line; click a line to find its entries." }
        ol.timeline {
            @for group in indexed.chunk_by(|a, b| scope_of(&a.1.name) == scope_of(&b.1.name)) {
                @match scope_of(&group[0].1.name) {
                    Some(scope) => {
                        li.tl-scope data-scope=(scope) {
                            details open {
                                summary { "scope " code { (scope) } " · " (group.len()) @if group.len() == 1 { " entry" } @else { " entries" } }
                                ol.timeline {
                                    @for (i, e) in group { (item(*i, e, &pos, id, csrf)) }
                                }
                            }
                        }
                    }
                    None => { @for (i, e) in group { (item(*i, e, &pos, id, csrf)) } }
                }
            }
        }
    }
}

/// The scope of an operation named through `p.scope(..)`: what stands
/// before the last `/` of its name (`"3/email verified"` → `"3"`); `None`
/// for a name without one. Consecutive entries of one scope are grouped.
pub fn scope_of(name: &str) -> Option<&str> {
    name.rsplit_once('/')
        .map(|(scope, _)| scope)
        .filter(|scope| !scope.is_empty())
}

/// One entry of the timeline; `pos` places a time on the axis (0–100).
fn item(i: usize, e: &Event, pos: &dyn Fn(Timestamp) -> f64, id: &str, csrf: &str) -> Markup {
    let at = e
        .location
        .as_ref()
        .map(|l| format!("{}:{}", l.file, l.line));
    let left = pos(e.at);
    let width = e.end.map_or(0.0, |end| (pos(end) - left).max(0.0));
    let bar = match e.what {
        "failed" | "timed out" | "blocked" => "b-failed",
        "rejected" => "b-rejected",
        "waiting" | "pending" | "abandoned" => "b-pending",
        _ if e.end.is_some() => "b-span",
        _ => "b-mark",
    };
    html! {
        li class={ "tl-" (e.what.replace(' ', "-")) } data-at=[at] data-key={ "t" (e.at.as_micros()) "-" (e.order) "-" (e.what) } {
            div.tl-head {
                span.tl-what { (e.what) }
                span.tl-name { (e.name) }
                @if let Some((href, id)) = &e.link { a href=(href) { "open " code { (id) } } }
                span.tl-meta {
                    (rel_time(e.at))
                    @for f in &e.facts { span { (f) } }
                    @if let Some(l) = &e.location { span.tl-loc title=(l.file) { "line " (l.line) } }
                }
            }
            div.axis title="on the process's time axis" {
                span class={ "bar " (bar) } data-left=(format!("{left:.2}")) data-width=(format!("{width:.2}")) {}
            }
            @if let Some(reason) = &e.reason { div.tl-reason { (reason) } }
            @if let Some(v) = &e.value { (json_value(&format!("tv{i}"), "value", v)) }
            @if let Some(step) = &e.step {
                form.rewind method="post" action="/actions/rewind" {
                    (csrf_field(csrf))
                    input type="hidden" name="id" value=(id);
                    input type="hidden" name="step" value=(step);
                    button.small type="submit" title="drop this entry and every later one, run again from here" { "rewind here…" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use steadfast::{
        EntryKind, EntryStatus, JournalEntry, ProcessId, ProcessRecord, Status, Timestamp,
    };

    use super::entry_events;

    fn record(now: Timestamp) -> ProcessRecord {
        ProcessRecord {
            id: ProcessId::new("w-1").expect("id"),
            kind: "welcome".into(),
            version: 1,
            input: "null".into(),
            status: Status::Suspended,
            created_at: now,
            updated_at: now,
            wake_at: None,
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
        }
    }

    fn entry(now: Timestamp, name: &str, kind: EntryKind, status: EntryStatus) -> JournalEntry {
        JournalEntry {
            seq: 1,
            name: name.into(),
            kind,
            status,
            outcome: Some(r#"{"last_error":"mail server unreachable"}"#.into()),
            attempts: 4,
            started_at: now,
            finished_at: None,
            due_at: Some(now + std::time::Duration::from_secs(300)),
            location: None,
            consumed_signal: None,
        }
    }

    #[test]
    fn a_step_waiting_to_retry_shows_attempts_and_next_retry() {
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let j = entry(now, "mail sent", EntryKind::Step, EntryStatus::Scheduled);
        let events = entry_events(&record(now), &j, &[]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].what, "retrying");
        assert!(
            events[0].facts.contains(&"4 attempt(s) failed".to_owned()),
            "{events:?}"
        );
        assert!(
            events[0].facts.iter().any(|f| f.starts_with("next retry ")),
            "{events:?}"
        );
    }

    #[test]
    fn published_state_and_scoped_children() {
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let state = entry(now, "progress #2", EntryKind::State, EntryStatus::Completed);
        let events = entry_events(&record(now), &state, &[]);
        assert_eq!(
            (events[0].what, events[0].name.as_str()),
            ("state", "progress published")
        );
        let child = entry(
            now,
            "round 0/leaf: spawned",
            EntryKind::Step,
            EntryStatus::Completed,
        );
        let events = entry_events(&record(now), &child, &[]);
        let link = events[0].link.as_ref().expect("a link");
        assert_eq!(link.1, "w-1/round 0:leaf");
    }

    #[test]
    fn scoped_entries_are_grouped_by_scope() {
        use super::{Event, render, scope_of};
        assert_eq!(scope_of("1/email verified"), Some("1"));
        assert_eq!(scope_of("round 2/item 3/charged"), Some("round 2/item 3"));
        assert_eq!(scope_of("registered"), None);
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let names = [
            "registered",
            "1/email verified",
            "1/reminded",
            "2/email verified",
            "activated",
        ];
        let events: Vec<Event> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Event::new(
                    Timestamp::from_micros(now.as_micros() + i as i64),
                    "step",
                    *n,
                )
            })
            .collect();
        let html = render(&events, now, "p", "csrf").into_string();
        assert_eq!(html.matches("class=\"tl-scope\"").count(), 2, "{html}");
        assert!(html.contains("data-scope=\"1\""), "{html}");
        assert!(html.contains("data-scope=\"2\""), "{html}");
        assert!(
            html.contains("2 entries") && html.contains("1 entry"),
            "{html}"
        );
        // Every entry is still there, in order.
        let mut at = 0;
        for n in names {
            let found = html[at..]
                .find(n)
                .unwrap_or_else(|| panic!("{n} missing or out of order"));
            at += found;
        }
    }
}
