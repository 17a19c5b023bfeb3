//! The process list: filters and search, counts per status that follow
//! them, sortable columns (newest first by default), bulk actions.

use maud::{Markup, html};
use steadfast::{ProcessRecord, Status};

use super::process::brief_wait;
use super::{csrf_field, kind_url, process_url, rel_time, status_badge, url};

/// The filters, search, sort and page of the list, as in the query string.
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
    /// Only ids after this one (paging when sorted by id, ascending).
    #[serde(default)]
    pub after: String,
    /// Only ids containing this text (any case).
    #[serde(default)]
    pub search: String,
    /// Only processes whose error or blocked reason contains this text.
    #[serde(default)]
    pub reason: String,
    /// Only processes created at or after this UTC time
    /// (`YYYY-MM-DDTHH:MM`, as a `datetime-local` field sends it).
    #[serde(default)]
    pub from: String,
    /// Only processes created before this UTC time.
    #[serde(default)]
    pub to: String,
    /// The column sorted by: `created` (the default), `updated`, `id`,
    /// `kind` or `status`.
    #[serde(default)]
    pub sort: String,
    /// `desc` (the default) or `asc`.
    #[serde(default)]
    pub order: String,
    /// The page (from 0) when not sorted by id ascending.
    #[serde(default)]
    pub page: String,
}

/// At most this many processes are read to count the kinds page's
/// processes per kind and status (the store counts by filter, not by kind).
pub const KIND_COUNT_CAP: usize = 10_000;

/// The columns the list sorts by.
pub const SORTS: [&str; 5] = ["created", "updated", "id", "kind", "status"];

impl ListQuery {
    /// The column sorted by.
    pub fn sort(&self) -> &str {
        if SORTS.contains(&self.sort.as_str()) {
            &self.sort
        } else {
            "created"
        }
    }

    /// Whether the order is ascending (the default is newest first).
    pub fn ascending(&self) -> bool {
        self.order == "asc"
    }

    /// The page number (from 0).
    pub fn page(&self) -> usize {
        self.page.parse().unwrap_or(0)
    }

    /// The filters (everything but sort and paging) as query parameters.
    pub fn filters(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("kind", &self.kind),
            ("status", &self.status),
            ("prefix", &self.prefix),
            ("search", &self.search),
            ("reason", &self.reason),
            ("from", &self.from),
            ("to", &self.to),
        ]
    }

    /// The filters and sort, with `extra` (paging) added.
    fn params<'a>(&'a self, extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
        let mut p = self.filters();
        p.push(("sort", &self.sort));
        p.push(("order", &self.order));
        p.extend_from_slice(extra);
        p
    }
}

/// One page of the list.
pub struct ListView<'a> {
    /// The filters.
    pub query: &'a ListQuery,
    /// The processes of this page.
    pub rows: &'a [ProcessRecord],
    /// Rows among the matching ones that do not decode (id, error): shown
    /// as error rows above the others.
    pub unreadable: &'a [(String, String)],
    /// Whether there is a next page.
    pub more: bool,
    /// Counts per status of the processes matching the filters (all but
    /// the status filter).
    pub counts: &'a [(Status, usize)],
    /// How many processes match every filter.
    pub matching: usize,
    /// A filter that could not be used, if any.
    pub problem: Option<String>,
    /// The CSRF token of the bulk forms.
    pub csrf: &'a str,
    /// This dashboard's time.
    pub now: steadfast::Timestamp,
}

/// The page body: filter form, bulk actions and the live part.
pub fn body(view: &ListView<'_>) -> Markup {
    let q = view.query;
    let live = url(
        "/live/list",
        &q.params(&[("after", &q.after), ("page", &q.page)]),
    );
    html! {
        h1 { "Processes" }
        form.filters method="get" action="/" {
            label { "Id contains " input name="search" value=(q.search) placeholder="e.g. order-42"; }
            label { "Kind " input name="kind" value=(q.kind) placeholder="any"; }
            label { "Status "
                select name="status" {
                    option value="" selected[q.status.is_empty()] { "any" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[q.status == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Reason contains " input name="reason" value=(q.reason) placeholder="blocked or error text"; }
            label { "Created from (UTC) " input type="datetime-local" name="from" value=(q.from); }
            label { "to (UTC) " input type="datetime-local" name="to" value=(q.to); }
            @if !q.prefix.is_empty() { input type="hidden" name="prefix" value=(q.prefix); }
            input type="hidden" name="sort" value=(q.sort);
            input type="hidden" name="order" value=(q.order);
            button type="submit" { "Filter" }
            a href="/" { "Clear" }
        }
        (super::live_box(&live, live_part(view)))
        @if view.matching > 0 {
            form.bulk method="post" action="/actions/bulk" {
                (csrf_field(view.csrf))
                @for (k, v) in q.filters() { @if !v.is_empty() { input type="hidden" name=(k) value=(v); } }
                span.muted { "All " (view.matching) " matching processes: " }
                button.danger type="submit" name="action" value="cancel" { "Cancel…" }
                button type="submit" name="action" value="retry" { "Retry…" }
                span.muted { "(you confirm on the next page)" }
            }
        }
    }
}

fn sort_link(q: &ListQuery, column: &'static str, label: &str) -> Markup {
    let on = q.sort() == column;
    // Clicking the sorted column flips the order; another column starts
    // descending (newest, last, highest first).
    let order = if on && !q.ascending() { "asc" } else { "desc" };
    let mut p = q.filters();
    p.push(("sort", column));
    p.push(("order", order));
    let arrow = match (on, q.ascending()) {
        (false, _) => "",
        (true, true) => " ↑",
        (true, false) => " ↓",
    };
    html! {
        a.sort.on[on] href=(url("/", &p)) title="sort by this column" { (label) (arrow) }
    }
}

/// The filters with the status set to `status`.
fn with_status(q: &ListQuery, status: Status) -> Vec<(&'static str, &str)> {
    let mut p = q.filters();
    p.retain(|(k, _)| *k != "status");
    p.push(("status", status.as_str()));
    p
}

/// The part that refreshes itself: counts, table, paging.
pub fn live_part(view: &ListView<'_>) -> Markup {
    let q = view.query;
    html! {
        ul.counts {
            @for s in Status::ALL {
                @let n = view.counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
                @let p = with_status(q, s);
                li { a href=(url("/", &p)) {
                    (status_badge(s)) " " span.count data-status=(s.as_str()) { (n) }
                } }
            }
            @if !view.unreadable.is_empty() {
                li.unreadable { span.badge.unreadable { "unreadable" } " " span.count data-status="unreadable" { (view.unreadable.len()) } }
            }
        }
        @if let Some(p) = &view.problem { p.notice { (p) } }
        (super::clock_note(view.rows.iter().map(|r| r.updated_at).max(), view.now))
        table.list {
            thead { tr {
                th { (sort_link(q, "id", "Id")) }
                th { (sort_link(q, "kind", "Kind")) }
                th { (sort_link(q, "status", "Status")) }
                th { "Waits for" }
                th { (sort_link(q, "created", "Created")) }
                th { (sort_link(q, "updated", "Updated")) }
            } }
            tbody {
                @for (id, error) in view.unreadable {
                    tr.unreadable data-id=(id) {
                        td { code { (id) } }
                        td colspan="5" .error { "This row does not decode: " (error) }
                    }
                }
                @for r in view.rows {
                    tr data-id=(r.id.as_str()) {
                        td { a href=(process_url(r.id.as_str())) { code { (r.id.as_str()) } } }
                        td { a href=(kind_url(&r.kind)) { (r.kind) } }
                        td { (status_badge(r.status)) }
                        td.wait { (brief_wait(r)) }
                        td { (rel_time(r.created_at)) }
                        td { (rel_time(r.updated_at)) }
                    }
                }
                @if view.rows.is_empty() && view.unreadable.is_empty() { tr { td colspan="6" .muted { "No processes match." } } }
            }
        }
        nav.paging {
            @if q.sort() == "id" && q.order != "desc" {
                @if !q.after.is_empty() { a href=(url("/", &q.params(&[]))) { "first page" } }
                @if let (true, Some(last)) = (view.more, view.rows.last()) {
                    a.next rel="next" href=(url("/", &q.params(&[("after", last.id.as_str())]))) { "next page" }
                }
            } @else {
                @let page = q.page();
                @let prev = page.saturating_sub(1).to_string();
                @let next = (page + 1).to_string();
                @if page > 0 { a rel="prev" href=(url("/", &q.params(&[("page", &prev)]))) { "previous page" } }
                @if view.more { a.next rel="next" href=(url("/", &q.params(&[("page", &next)]))) { "next page" } }
            }
        }
    }
}

/// The kinds page: every kind with its processes per status.
pub fn kinds(kinds: &[(String, Vec<(Status, usize)>)], capped: bool) -> Markup {
    html! {
        h1 { "Kinds" }
        @if capped { p.notice { "Counted over the first " (KIND_COUNT_CAP) " processes by id." } }
        table.list.kinds {
            thead { tr { th { "Kind" } @for s in Status::ALL { th { (s.as_str()) } } th { "All" } } }
            tbody {
                @for (kind, counts) in kinds {
                    tr data-kind=(kind) {
                        td { a href=(kind_url(kind)) { (kind) } }
                        @for s in Status::ALL {
                            @let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
                            td { @if n > 0 { a href=(url("/", &[("kind", kind.as_str()), ("status", s.as_str())])) data-status=(s.as_str()) { (n) } } @else { span.muted { "0" } } }
                        }
                        td { a href=(url("/", &[("kind", kind.as_str())])) { (counts.iter().map(|(_, n)| n).sum::<usize>()) } }
                    }
                }
                @if kinds.is_empty() { tr { td colspan="8" .muted { "No processes stored yet." } } }
            }
        }
    }
}
