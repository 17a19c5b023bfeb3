//! A process function's source with per-line annotations: finished steps,
//! the line where a process stands, and how many processes wait there.

use std::collections::BTreeMap;

use maud::{Markup, html};
use steadfast::SourceLocation;
use steadfast::core::FunctionSource;

/// What to show beside one source line.
#[derive(Default, Debug)]
pub struct LineNote {
    /// Journal entries at this line that completed (names).
    pub done: Vec<String>,
    /// Journal entries at this line that failed (names).
    pub failed: Vec<String>,
    /// Whether the process stands here.
    pub current: bool,
    /// What the process waits for here (or why it is blocked).
    pub wait: Option<String>,
    /// Processes parked here: (status, count), on the kind page.
    pub parked: Vec<(String, u64)>,
    /// The line where most processes of the kind wait (the kind page
    /// scrolls to it).
    pub busiest: bool,
    /// How many timeline entries are at this line (the process page).
    pub entries: usize,
}

/// Annotations by source location.
pub type Notes = BTreeMap<SourceLocation, LineNote>;

/// The sources to show for these locations: every function that contains
/// one of them, else those named `fallback_names`.
pub fn pick<'a>(
    sources: &'a [FunctionSource],
    locations: impl IntoIterator<Item = &'a SourceLocation> + Clone,
    fallback_names: &[String],
) -> Vec<&'a FunctionSource> {
    let found: Vec<&FunctionSource> = sources
        .iter()
        .filter(|s| locations.clone().into_iter().any(|l| s.contains(l)))
        .collect();
    if !found.is_empty() {
        return found;
    }
    sources
        .iter()
        .filter(|s| fallback_names.contains(&s.name))
        .collect()
}

/// The names a kind's function probably has (`"mail flow"` → `mail_flow`).
pub fn names_for_kind(kind: &str) -> Vec<String> {
    let snake: String = kind
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    vec![kind.to_owned(), snake]
}

/// Shown instead of the source when none was captured.
pub fn missing(detail: Option<&str>) -> Markup {
    html! {
        div.source.missing {
            p { "Source not captured: mark the process function with "
                code { "#[steadfast::process]" } " and start a host with this store." }
            @if let Some(detail) = detail { p.muted { (detail) } }
        }
    }
}

/// One function's source as a table of lines with their notes.
pub fn render(source: &FunctionSource, notes: &Notes) -> Markup {
    html! {
        div.source data-file=(source.file) {
            div.source-head {
                code { "fn " (source.name) } " "
                span.muted { (source.file) ":" (source.first_line) }
            }
            table.code {
                tbody {
                    @for (i, text) in source.text.lines().enumerate() {
                        @let line = source.first_line + i as u32;
                        @let note = notes.get(&SourceLocation { file: source.file.clone(), line });
                        (row(line, text, note))
                    }
                }
            }
        }
    }
}

fn row(line: u32, text: &str, note: Option<&LineNote>) -> Markup {
    let current = note.is_some_and(|n| n.current);
    let parked = note.is_some_and(|n| !n.parked.is_empty());
    let busiest = note.is_some_and(|n| n.busiest);
    let entries = note.map_or(0, |n| n.entries);
    html! {
        tr.current[current].parked[parked].busiest[busiest] id={ "L" (line) } data-line=(line)
            title=[(entries > 0).then(|| format!("{entries} timeline entries at this line: click to mark them"))] {
            td.ln { (line) }
            td.mark {
                @if let Some(n) = note {
                    @if current { span.here title="the process stands here" { "▶" } }
                    @else if !n.failed.is_empty() { span.fail title=(n.failed.join(", ")) { "✗" } }
                    @else if !n.done.is_empty() {
                        span.ok title=(n.done.join(", ")) {
                            "✓" @if n.done.len() > 1 { small { "×" (n.done.len()) } }
                        }
                    }
                }
            }
            td.text {
                code { (text) }
                @if let Some(n) = note.filter(|n| n.wait.is_some() || !n.parked.is_empty()) {
                    div.callout {
                        @if let Some(wait) = &n.wait { span.wait { (wait) } }
                        @for (status, count) in &n.parked {
                            span class={ "parked st-" (status) } { (count) " " (status) " here" }
                        }
                    }
                }
            }
        }
    }
}
