//! The process and purge pages, and what every page handler shares: error
//! pages, whole pages, live parts with their version.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use steadfast::core::{FunctionSource, PendingSignal, SignalRecord};
use steadfast::{JournalEntry, ProcessId, ProcessRecord};

use super::store_status;
use crate::AppState;
use crate::views::{self, csrf_field, process};

/// A page or fragment, or an error page.
pub type PageResult = Result<Response, Response>;

/// An error as a page with `status`.
pub fn error_page(app: &AppState, status: StatusCode, text: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (status, views::message(title, &app.frame(), text, "/")).into_response()
}

pub(crate) fn store_error(app: &AppState, err: &steadfast::StoreError) -> Response {
    error_page(app, store_status(err), &err.to_string())
}

pub(crate) fn full(app: &AppState, title: &str, body: Markup) -> Response {
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
    /// The store's history of the process (claims, blocks, retries,
    /// rewinds, cancels, ends), oldest first.
    pub events: Vec<steadfast::core::ProcessEvent>,
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
    let events = store.events(&id).await?;
    Ok(ProcessData {
        record,
        journal,
        sources,
        pending,
        signals,
        generations,
        events,
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
        events: &data.events,
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
