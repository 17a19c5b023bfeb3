//! The list and kinds pages: the processes matching filters and search,
//! counted per status, sorted and paged.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use steadfast::core::{ListOrder, SortKey};
use steadfast::{ListFilter, Listed, ProcessId, ProcessRecord, Status, Timestamp};

use super::kind::KIND_COUNT_CAP;
use super::pages::{PageResult, full, store_error};
use crate::AppState;
use crate::views::list;

/// One list page.
pub struct ListData {
    /// The processes shown.
    pub rows: Vec<ProcessRecord>,
    /// Whether a next page exists.
    pub more: bool,
    /// Counts per status of the processes matching every filter but the
    /// status (counted by the store).
    pub counts: Vec<(Status, usize)>,
    /// How many processes match every filter.
    pub matching: usize,
    /// A filter value that was ignored, and why.
    pub problem: Option<String>,
    /// Rows of this page that do not decode: id and error.
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

/// Reads the processes matching `filter` by keyset pages of ids, up to
/// `cap` rows; rows that do not decode are kept apart, so one corrupt row
/// never hides the others.
pub async fn scan(
    app: &AppState,
    filter: &ListFilter,
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
            after: after.clone(),
            order: ListOrder::default(),
            offset: 0,
            limit: PAGE,
            ..filter.clone()
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

/// The store filter for `q`'s filters (the status among them), and the
/// problems of values that were ignored.
pub fn store_filter(q: &list::ListQuery) -> (ListFilter, Vec<String>) {
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
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let filter = ListFilter {
        status,
        kind: text(&q.kind),
        id_prefix: (!q.prefix.is_empty()).then(|| q.prefix.clone()),
        id_contains: text(&q.search),
        reason_contains: text(&q.reason),
        created_from: from,
        created_before: to,
        ..ListFilter::default()
    };
    (filter, problems)
}

/// Loads one list page for `q`, `limit` rows at most: the store filters,
/// counts, sorts and pages (newest first unless `q` says otherwise).
pub async fn load_list(
    app: &AppState,
    q: &list::ListQuery,
    limit: usize,
) -> Result<ListData, steadfast::StoreError> {
    let (filter, problems) = store_filter(q);
    let store = &app.inner.store;
    let all_statuses = ListFilter {
        status: None,
        ..filter.clone()
    };
    let counted = store.count(&all_statuses).await?;
    let matching = match filter.status {
        Some(s) => counted.of(s),
        None => counted.total(),
    };
    let counts: Vec<(Status, usize)> = Status::ALL
        .into_iter()
        .map(|s| (s, usize::try_from(counted.of(s)).unwrap_or(usize::MAX)))
        .collect();
    let by = match q.sort() {
        "id" => SortKey::Id,
        "updated" => SortKey::Updated,
        "kind" => SortKey::Kind,
        "status" => SortKey::Status,
        _ => SortKey::Created,
    };
    // Newest (largest) first, except by id: ascending unless asked.
    let descending = if by == SortKey::Id {
        q.order == "desc"
    } else {
        !q.ascending()
    };
    // By id, ascending: keyset paging (`after`); otherwise pages by offset.
    let keyset = by == SortKey::Id && !descending;
    let after = keyset
        .then(|| ProcessId::new(q.after.as_str()).ok())
        .flatten();
    let offset = if keyset {
        0
    } else {
        q.page().saturating_mul(limit)
    };
    let page = ListFilter {
        order: ListOrder { by, descending },
        after,
        offset,
        limit: limit.saturating_add(1),
        ..filter
    };
    let mut listed = store.list(&page).await?;
    let more = listed.len() > limit;
    listed.truncate(limit);
    let (mut rows, mut unreadable) = (Vec::new(), Vec::new());
    for row in listed {
        match row {
            Listed::Process(record) => rows.push(*record),
            Listed::Unreadable { id, error } => unreadable.push((id, error.to_string())),
        }
    }
    Ok(ListData {
        rows,
        more,
        counts,
        matching: usize::try_from(matching).unwrap_or(usize::MAX),
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
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
    } = scan(&app, &ListFilter::default(), KIND_COUNT_CAP)
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
