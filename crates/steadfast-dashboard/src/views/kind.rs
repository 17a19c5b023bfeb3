//! The kind page: the function's source with, at each line, how many
//! processes wait there now.

use maud::{Markup, html};
use steadfast::core::{FunctionSource, ParkedCount};

use super::source::{self, Notes};
use super::url;

/// Everything the kind page shows.
pub struct KindView<'a> {
    /// The kind.
    pub kind: &'a str,
    /// Processes parked per line.
    pub parked: &'a [ParkedCount],
    /// Parked processes whose place does not decode (counted at no line).
    pub unreadable: u64,
    /// Every stored source, or why they could not be read.
    pub sources: &'a Result<Vec<FunctionSource>, String>,
    /// Locations known to be in the kind's function (from a sample journal).
    pub sample: &'a [steadfast::SourceLocation],
    /// How many processes wait (a process in `select!` stands at several
    /// lines but is counted once).
    pub waiting: Waiting,
}

/// How many processes of a kind are suspended or blocked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Waiting {
    /// Suspended plus blocked processes.
    pub processes: usize,
    /// Whether counting stopped at the cap (there are more).
    pub capped: bool,
}

/// The page body.
pub fn body(view: &KindView<'_>) -> Markup {
    let live = url("/live/kind", &[("name", view.kind)]);
    html! {
        h1 { span.muted { "Kind " } (view.kind) }
        p { a href=(url("/", &[("kind", view.kind)])) { "List its processes" } }
        (super::live_box(&live, live_part(view)))
    }
}

/// The part that refreshes itself.
pub fn live_part(view: &KindView<'_>) -> Markup {
    let mut notes = Notes::new();
    for p in view.parked {
        notes
            .entry(p.location.clone())
            .or_default()
            .parked
            .push((p.status.as_str().to_owned(), p.count));
    }
    // The busiest line is where the page scrolls to.
    let busiest = view
        .parked
        .iter()
        .fold(Notes::new(), |mut acc, p| {
            acc.entry(p.location.clone())
                .or_default()
                .parked
                .push((String::new(), p.count));
            acc
        })
        .into_iter()
        .max_by_key(|(_, n)| n.parked.iter().map(|(_, c)| *c).sum::<u64>())
        .map(|(loc, _)| loc);
    if let Some(loc) = &busiest
        && let Some(note) = notes.get_mut(loc)
    {
        note.busiest = true;
    }
    let w = view.waiting;
    html! {
        p.waiting data-count=(w.processes) {
            @if w.capped { "More than " }
            (w.processes) @if w.processes == 1 { " waiting process" } @else { " waiting processes" }
            " (suspended or blocked) in this kind's function."
        }
        @if view.unreadable > 0 {
            p.notice { (view.unreadable) " more whose stored place does not decode (see the list's error rows)." }
        }
        @match view.sources {
            Err(err) => (source::missing(Some(&format!("The store could not list sources: {err}")))),
            Ok(all) => {
                @let locations: Vec<&steadfast::SourceLocation> = notes.keys().chain(view.sample).collect();
                @let picked = source::pick(all, locations.iter().copied(), &source::names_for_kind(view.kind));
                @if picked.is_empty() { (source::missing(None)) }
                @for s in picked { (source::render(s, &notes)) }
            }
        }
        @if !view.parked.is_empty() {
            table.list {
                thead { tr { th { "Line" } th { "Status" } th { "Processes" } } }
                tbody { @for p in view.parked {
                    tr { td { (p.location.file) ":" (p.location.line) } td { (p.status.as_str()) }
                         td { a href=(url("/", &[("kind", view.kind), ("status", p.status.as_str())])) { (p.count) } } }
                } }
            }
        }
    }
}
