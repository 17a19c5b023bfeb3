//! The list and kinds pages: the processes matching filters and search,
//! counted per status, sorted and paged.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use steadfast::{ListFilter, Listed, ProcessId, ProcessRecord, Status, Timestamp};

use super::kind::KIND_COUNT_CAP;
use super::pages::{PageResult, full, store_error};
use crate::AppState;
use crate::views::list;

/// At most this many processes are read for one list page (counts,
/// search and sorting other than by id work on them in memory; the store
/// lists by id only).
pub const LIST_SCAN_CAP: usize = 5_000;

/// One list page.
pub struct ListData {
    /// The processes shown.
    pub rows: Vec<ProcessRecord>,
    /// Whether a next page exists.
    pub more: bool,
    /// Counts per status of the processes matching every filter but the
    /// status.
    pub counts: Vec<(Status, usize)>,
    /// Whether the scan stopped at [`LIST_SCAN_CAP`].
    pub capped: bool,
    /// How many processes match every filter.
    pub matching: usize,
    /// A filter value that was ignored, and why.
    pub problem: Option<String>,
    /// Every process matching the filters (for bulk actions), in id order.
    pub all: Vec<ProcessRecord>,
    /// Rows among the scanned ones that do not decode: id and error.
    pub unreadable: Vec<(String, String)>,
}

/// What [`scan`] read.
pub struct Scanned {
    /// The rows that decode.
    pub records: Vec<ProcessRecord>,
    /// The rows that do not: id and error.
    pub unreadable: Vec<(String, String)>,
    /// Whether the scan stopped at its cap.
    pub capped: bool,
}

/// `YYYY-MM-DDTHH:MM[:SS]` (UTC) as a timestamp.
fn parse_time(text: &str) -> Result<Timestamp, String> {
    let t = text.trim();
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
        .map(|d| Timestamp::from_micros(d.and_utc().timestamp_micros()))
        .map_err(|_| format!("“{t}” is not a time like 2026-11-28T09:30 (UTC); ignored"))
}

/// Reads the processes matching the store-side filters (kind, id prefix)
/// by keyset pages, up to `cap` rows; rows that do not decode are kept
/// apart, so one corrupt row never hides the others.
pub async fn scan(
    app: &AppState,
    kind: Option<String>,
    prefix: Option<String>,
    cap: usize,
) -> Result<Scanned, steadfast::StoreError> {
    const PAGE: usize = 500;
    let mut scanned = Scanned {
        records: Vec::new(),
        unreadable: Vec::new(),
        capped: false,
    };
    let mut after: Option<ProcessId> = None;
    loop {
        let filter = ListFilter {
            kind: kind.clone(),
            id_prefix: prefix.clone(),
            after: after.clone(),
            limit: PAGE,
            ..ListFilter::default()
        };
        let rows = app.inner.store.list(&filter).await?;
        let last = rows.len() < PAGE;
        // Page on from the last row the store listed, readable or not (an
        // unreadable id that is not a valid id falls back to the last
        // readable one).
        if let Some(next) = rows
            .iter()
            .rev()
            .find_map(|row| ProcessId::new(row.id()).ok())
        {
            after = Some(next);
        }
        for row in rows {
            match row {
                Listed::Process(record) => scanned.records.push(*record),
                Listed::Unreadable { id, error } => {
                    scanned.unreadable.push((id, error.to_string()));
                }
            }
        }
        if last {
            return Ok(scanned);
        }
        if scanned.records.len() + scanned.unreadable.len() >= cap {
            scanned.records.truncate(cap);
            scanned.capped = true;
            return Ok(scanned);
        }
    }
}

/// Loads one list page for `q`: the matching processes (up to
/// [`LIST_SCAN_CAP`]), filtered, counted, sorted and cut to `limit`.
pub async fn load_list(
    app: &AppState,
    q: &list::ListQuery,
    limit: usize,
) -> Result<ListData, steadfast::StoreError> {
    let mut problems = Vec::new();
    let status = match q.status.as_str() {
        "" => None,
        s => match s.parse::<Status>() {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
    };
    let mut bound = |text: &str| match text {
        "" => None,
        t => parse_time(t).map_err(|e| problems.push(e)).ok(),
    };
    let (from, to) = (bound(&q.from), bound(&q.to));
    let Scanned {
        records: scanned,
        unreadable,
        capped,
    } = scan(
        app,
        (!q.kind.is_empty()).then(|| q.kind.clone()),
        (!q.prefix.is_empty()).then(|| q.prefix.clone()),
        LIST_SCAN_CAP,
    )
    .await?;
    let search = q.search.to_lowercase();
    let reason = q.reason.to_lowercase();
    let matches = |r: &ProcessRecord| {
        (search.is_empty() || r.id.as_str().to_lowercase().contains(&search))
            && (reason.is_empty()
                || r.error
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase().contains(&reason)))
            && from.is_none_or(|f| r.created_at >= f)
            && to.is_none_or(|t| r.created_at < t)
    };
    let filtered: Vec<ProcessRecord> = scanned.into_iter().filter(|r| matches(r)).collect();
    let counts: Vec<(Status, usize)> = Status::ALL
        .into_iter()
        .map(|s| (s, filtered.iter().filter(|r| r.status == s).count()))
        .collect();
    let all: Vec<ProcessRecord> = filtered
        .into_iter()
        .filter(|r| status.is_none_or(|s| r.status == s))
        .collect();
    let matching = all.len();
    let mut rows = all.clone();
    let (more, rows) = if q.sort() == "id" {
        // Keyset paging by id, as the store lists.
        let after = q.after.as_str();
        rows.retain(|r| after.is_empty() || r.id.as_str() > after);
        if q.order == "desc" {
            rows.reverse();
        }
        let more = rows.len() > limit;
        rows.truncate(limit);
        (more, rows)
    } else {
        let key = |r: &ProcessRecord| match q.sort() {
            "updated" => (r.updated_at.as_micros(), String::new()),
            "kind" => (0, r.kind.clone()),
            "status" => (0, r.status.as_str().to_owned()),
            _ => (r.created_at.as_micros(), String::new()),
        };
        rows.sort_by(|a, b| {
            let o = key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id));
            if q.ascending() { o } else { o.reverse() }
        });
        let start = q.page().saturating_mul(limit).min(rows.len());
        let more = rows.len() > start + limit;
        let page: Vec<ProcessRecord> = rows.drain(start..).take(limit).collect();
        (more, page)
    };
    Ok(ListData {
        rows,
        more,
        counts,
        capped,
        matching,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
        all,
        unreadable,
    })
}

async fn list_view(app: &AppState, q: &list::ListQuery, live: Option<&HeaderMap>) -> PageResult {
    let data = load_list(app, q, app.inner.page_size)
        .await
        .map_err(|e| store_error(app, &e))?;
    let view = list::ListView {
        query: q,
        rows: &data.rows,
        unreadable: &data.unreadable,
        more: data.more,
        counts: &data.counts,
        capped: data.capped,
        matching: data.matching,
        problem: data.problem.clone(),
        csrf: &app.inner.csrf,
        now: app.inner.clock.now(),
    };
    Ok(if let Some(headers) = live {
        super::pages::live(headers, list::live_part(&view))
    } else {
        full(app, "Processes", list::body(&view))
    })
}

/// `GET /`: the process list.
pub async fn list(State(app): State<AppState>, Query(q): Query<list::ListQuery>) -> PageResult {
    list_view(&app, &q, None).await
}

/// `GET /live/list`: the list's self-refreshing part.
pub async fn list_live(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<list::ListQuery>,
) -> PageResult {
    list_view(&app, &q, Some(&headers)).await
}

/// `GET /kinds`: every kind with its processes per status.
pub async fn kinds(State(app): State<AppState>) -> PageResult {
    let Scanned {
        records: all,
        capped,
        ..
    } = scan(&app, None, None, KIND_COUNT_CAP)
        .await
        .map_err(|e| store_error(&app, &e))?;
    let mut by_kind: std::collections::BTreeMap<String, Vec<(Status, usize)>> =
        std::collections::BTreeMap::new();
    for r in &all {
        let counts = by_kind.entry(r.kind.clone()).or_default();
        match counts.iter_mut().find(|(s, _)| *s == r.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.status, 1)),
        }
    }
    let kinds: Vec<(String, Vec<(Status, usize)>)> = by_kind.into_iter().collect();
    Ok(full(&app, "Kinds", list::kinds(&kinds, capped)))
}
