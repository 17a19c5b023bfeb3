//! The process list: filters, counts per status, one keyset page.

use maud::{Markup, html};
use steadfast::{ProcessRecord, Status, StatusCount};

use super::process::brief_wait;
use super::{kind_url, process_url, status_badge, time, url};

/// The filters of the list, as in the query string.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    /// Only this kind.
    #[serde(default)]
    pub kind: String,
    /// Only this status.
    #[serde(default)]
    pub status: String,
    /// Only ids with this prefix.
    #[serde(default)]
    pub prefix: String,
    /// Only ids after this one.
    #[serde(default)]
    pub after: String,
}

impl ListQuery {
    fn params<'a>(&'a self, after: &'a str) -> [(&'a str, &'a str); 4] {
        [
            ("kind", &self.kind),
            ("status", &self.status),
            ("prefix", &self.prefix),
            ("after", after),
        ]
    }
}

/// One page of the list.
pub struct ListView<'a> {
    /// The filters.
    pub query: &'a ListQuery,
    /// The processes of this page.
    pub rows: &'a [ProcessRecord],
    /// Whether there is a next page.
    pub more: bool,
    /// Counts per status over the whole store.
    pub counts: &'a [StatusCount],
    /// A filter that could not be used, if any.
    pub problem: Option<String>,
}

/// The page body: filter form and the live part.
pub fn body(view: &ListView<'_>) -> Markup {
    let q = view.query;
    let live = url("/live/list", &q.params(&q.after));
    html! {
        h1 { "Processes" }
        form.filters method="get" action="/" {
            label { "Kind " input name="kind" value=(q.kind) placeholder="any"; }
            label { "Status "
                select name="status" {
                    option value="" selected[q.status.is_empty()] { "any" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[q.status == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Id prefix " input name="prefix" value=(q.prefix) placeholder="e.g. order-"; }
            button type="submit" { "Filter" }
            a href="/" { "Clear" }
        }
        (super::live_box(&live, live_part(view)))
    }
}

/// The part that refreshes itself: counts, table, paging.
pub fn live_part(view: &ListView<'_>) -> Markup {
    let q = view.query;
    html! {
        ul.counts {
            @for s in Status::ALL {
                @let n = view.counts.iter().find(|c| c.status == s).map_or(0, |c| c.count);
                li { a href=(url("/", &[("status", s.as_str()), ("kind", &q.kind), ("prefix", &q.prefix)])) {
                    (status_badge(s)) " " span.count data-status=(s.as_str()) { (n) }
                } }
            }
        }
        @if let Some(p) = &view.problem { p.notice { (p) } }
        table.list {
            thead { tr { th { "Id" } th { "Kind" } th { "Status" } th { "Waits for" } th { "Updated" } } }
            tbody {
                @for r in view.rows {
                    tr data-id=(r.id.as_str()) {
                        td { a href=(process_url(r.id.as_str())) { code { (r.id.as_str()) } } }
                        td { a href=(kind_url(&r.kind)) { (r.kind) } }
                        td { (status_badge(r.status)) }
                        td.wait { (brief_wait(r)) }
                        td { (time(r.updated_at)) }
                    }
                }
                @if view.rows.is_empty() { tr { td colspan="5" .muted { "No processes match." } } }
            }
        }
        nav.paging {
            @if !q.after.is_empty() { a href=(url("/", &q.params(""))) { "⇤ first page" } }
            @if let (true, Some(last)) = (view.more, view.rows.last()) {
                a.next rel="next" href=(url("/", &q.params(last.id.as_str()))) { "next page →" }
            }
        }
    }
}
