//! HTML pages and the fragments their scripts poll.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use steadfast::core::{FunctionSource, ParkedCount, PendingSignal, SignalRecord};
use steadfast::{
    JournalEntry, ListFilter, ProcessId, ProcessRecord, SourceLocation, Status, Timestamp,
};

use super::store_status;
use crate::AppState;
use crate::views::{self, csrf_field, kind, list, process};

/// A page or fragment, or an error page.
pub type PageResult = Result<Response, Response>;

/// An error as a page with `status`.
pub fn error_page(app: &AppState, status: StatusCode, text: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (status, views::message(title, &app.frame(), text, "/")).into_response()
}

fn store_error(app: &AppState, err: &steadfast::StoreError) -> Response {
    error_page(app, store_status(err), &err.to_string())
}

fn full(app: &AppState, title: &str, body: Markup) -> Response {
    Html(views::page(title, &app.frame(), body).into_string()).into_response()
}

/// A live part with its version as `ETag`, or `304 Not Modified` when the
/// request's `If-None-Match` names that version already.
pub fn live(headers: &HeaderMap, part: Markup) -> Response {
    let part = part.into_string();
    let etag = format!("\"{}\"", views::version_of(&part));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    ([(header::ETAG, etag)], Html(part)).into_response()
}

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
/// by keyset pages, up to `cap`; `(rows, capped)`.
pub async fn scan(
    app: &AppState,
    kind: Option<String>,
    prefix: Option<String>,
    cap: usize,
) -> Result<(Vec<ProcessRecord>, bool), steadfast::StoreError> {
    const PAGE: usize = 500;
    let mut out: Vec<ProcessRecord> = Vec::new();
    loop {
        let filter = ListFilter {
            kind: kind.clone(),
            id_prefix: prefix.clone(),
            after: out.last().map(|r| r.id.clone()),
            limit: PAGE,
            ..ListFilter::default()
        };
        let rows = app.inner.store.list(&filter).await?;
        let last = rows.len() < PAGE;
        out.extend(rows);
        if last {
            return Ok((out, false));
        }
        if out.len() >= cap {
            out.truncate(cap);
            return Ok((out, true));
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
    let (scanned, capped) = scan(
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
    })
}

async fn list_view(app: &AppState, q: &list::ListQuery, live: Option<&HeaderMap>) -> PageResult {
    let data = load_list(app, q, app.inner.page_size)
        .await
        .map_err(|e| store_error(app, &e))?;
    let view = list::ListView {
        query: q,
        rows: &data.rows,
        more: data.more,
        counts: &data.counts,
        capped: data.capped,
        matching: data.matching,
        problem: data.problem.clone(),
        csrf: &app.inner.csrf,
        now: app.inner.clock.now(),
    };
    Ok(if let Some(headers) = live {
        self::live(headers, list::live_part(&view))
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
    let (all, capped) = scan(&app, None, None, KIND_COUNT_CAP)
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

/// `?id=` of the process routes.
#[derive(Deserialize)]
pub struct IdQuery {
    /// The process id.
    pub id: String,
}

/// A process with its journal and the stored sources.
pub struct ProcessData {
    /// The process.
    pub record: ProcessRecord,
    /// Its journal.
    pub journal: Vec<JournalEntry>,
    /// The stored sources, or why they could not be read.
    pub sources: Result<Vec<FunctionSource>, String>,
    /// Signals not yet consumed.
    pub pending: Vec<PendingSignal>,
    /// Every signal, whatever became of it (pending, consumed, rejected,
    /// discarded).
    pub signals: Vec<SignalRecord>,
    /// Earlier generations (continued as new), oldest first.
    pub generations: Vec<steadfast::core::Generation>,
}

/// Loads a process, its journal and the sources.
pub async fn load_process(app: &AppState, id: &str) -> Result<ProcessData, steadfast::StoreError> {
    let id = ProcessId::new(id).map_err(|e| steadfast::StoreError::InvalidInput(e.to_string()))?;
    let store = &app.inner.store;
    let record = store.get(&id).await?;
    let journal = store.journal(&id).await?;
    let sources = store.sources().await.map_err(|e| e.to_string());
    let pending = store.pending_signals(&id).await?;
    let signals = store.signals(&id).await?;
    let generations = store.history(&id).await?;
    Ok(ProcessData {
        record,
        journal,
        sources,
        pending,
        signals,
        generations,
    })
}

async fn process_view(app: &AppState, id: &str, live: Option<&HeaderMap>) -> PageResult {
    let data = load_process(app, id)
        .await
        .map_err(|e| store_error(app, &e))?;
    let view = process::ProcessView {
        record: &data.record,
        journal: &data.journal,
        sources: &data.sources,
        pending: &data.pending,
        signals: &data.signals,
        generations: &data.generations,
        now: app.inner.clock.now(),
    };
    Ok(if let Some(headers) = live {
        self::live(headers, process::live_part(&view, &app.inner.csrf))
    } else {
        full(app, id, process::body(&view, &app.inner.csrf))
    })
}

/// `GET /process?id=`: one process.
pub async fn process(State(app): State<AppState>, Query(q): Query<IdQuery>) -> PageResult {
    process_view(&app, &q.id, None).await
}

/// `GET /live/process?id=`: the process page's self-refreshing part.
pub async fn process_live(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<IdQuery>,
) -> PageResult {
    process_view(&app, &q.id, Some(&headers)).await
}

/// `?name=` of the kind routes.
#[derive(Deserialize)]
pub struct KindQuery {
    /// The kind.
    pub name: String,
}

/// At most this many waiting processes are counted one by one on a kind
/// page (the store has no filtered count); more shows as "more than".
pub const KIND_COUNT_CAP: usize = 10_000;

/// How many processes of `kind` are in `status`, counted by keyset pages
/// up to [`KIND_COUNT_CAP`]; `(count, capped)`.
async fn count_in(
    app: &AppState,
    kind: &str,
    status: Status,
) -> Result<(usize, bool), steadfast::StoreError> {
    const PAGE: usize = 500;
    let mut count = 0;
    let mut after = None;
    loop {
        let filter = ListFilter {
            status: Some(status),
            kind: Some(kind.to_owned()),
            after: after.take(),
            limit: PAGE,
            ..ListFilter::default()
        };
        let rows = app.inner.store.list(&filter).await?;
        count += rows.len();
        if rows.len() < PAGE {
            return Ok((count, false));
        }
        if count >= KIND_COUNT_CAP {
            return Ok((count, true));
        }
        after = rows.last().map(|r| r.id.clone());
    }
}

async fn kind_view(app: &AppState, name: &str, live: Option<&HeaderMap>) -> PageResult {
    let store = &app.inner.store;
    let parked: Vec<ParkedCount> = store
        .parked_counts(name)
        .await
        .map_err(|e| store_error(app, &e))?;
    let sources = store.sources().await.map_err(|e| e.to_string());
    // One process's journal tells where the kind's function is even when
    // nothing waits now (one indexed query of at most one row).
    let filter = ListFilter {
        kind: Some(name.to_owned()),
        limit: 1,
        ..ListFilter::default()
    };
    let first = store
        .list(&filter)
        .await
        .map_err(|e| store_error(app, &e))?
        .into_iter()
        .next();
    let named = sources.as_ref().is_ok_and(|all| {
        let names = views::source::names_for_kind(name);
        all.iter().any(|s| names.contains(&s.name))
    });
    if first.is_none() && parked.is_empty() && !named {
        return Err(error_page(
            app,
            StatusCode::NOT_FOUND,
            &format!(
                "No such kind: no process of kind “{name}” is stored, and no captured function has that name."
            ),
        ));
    }
    let mut sample: Vec<SourceLocation> = Vec::new();
    if parked.is_empty()
        && let Some(first) = first
        && let Ok(journal) = store.journal(&first.id).await
    {
        sample = journal.into_iter().filter_map(|e| e.location).collect();
    }
    let mut waiting = kind::Waiting::default();
    for status in [Status::Suspended, Status::Blocked] {
        let (n, capped) = count_in(app, name, status)
            .await
            .map_err(|e| store_error(app, &e))?;
        waiting.processes += n;
        waiting.capped |= capped;
    }
    let view = kind::KindView {
        kind: name,
        parked: &parked,
        sources: &sources,
        sample: &sample,
        waiting,
    };
    Ok(if let Some(headers) = live {
        self::live(headers, kind::live_part(&view))
    } else {
        full(app, name, kind::body(&view))
    })
}

/// `GET /kind?name=`: a kind's function with where its processes wait.
pub async fn kind(State(app): State<AppState>, Query(q): Query<KindQuery>) -> PageResult {
    kind_view(&app, &q.name, None).await
}

/// `GET /live/kind?name=`: the kind page's self-refreshing part.
pub async fn kind_live(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<KindQuery>,
) -> PageResult {
    kind_view(&app, &q.name, Some(&headers)).await
}

/// `GET /purge`: the purge form (the form itself is the confirmation step).
pub async fn purge(State(app): State<AppState>) -> Response {
    full(
        &app,
        "Purge",
        html! {
            h1 { "Purge finished processes" }
            p { "Deletes completed, failed and cancelled processes that ended more than the given number of hours ago, with their journals and signals. Unfinished processes are never touched. This cannot be undone." }
            form.purge method="post" action="/actions/purge" {
                (csrf_field(&app.inner.csrf))
                label { "Older than (hours) " input type="number" name="hours" min="0" step="1" value="168" required; }
                label { input type="checkbox" name="confirm" value="yes" required; " I understand this deletes them for good" }
                button.danger type="submit" { "Purge" }
            }
        },
    )
}
