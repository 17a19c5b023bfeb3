//! The JSON API the pages' scripts (and scripts of operators) can poll.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::lists::load_list;
use super::pages::{IdQuery, load_process};
use super::store_status;
use crate::AppState;
use crate::views::list::ListQuery;
use crate::views::messages;
use crate::views::subscriptions::is_stale;

fn error(err: &steadfast::StoreError) -> Response {
    (store_status(err), Json(json!({ "error": err.to_string() }))).into_response()
}

/// `GET /api/processes?kind=&status=&prefix=&after=`: one keyset page by
/// id (the other filters of the list page apply too).
pub async fn list(State(app): State<AppState>, Query(mut q): Query<ListQuery>) -> Response {
    q.sort = "id".to_owned();
    q.order = String::new();
    match load_list(&app, &q, app.inner.page_size).await {
        Ok(data) => {
            let next_after = data
                .more
                .then(|| data.rows.last().map(|r| r.id.as_str().to_owned()))
                .flatten();
            // A row that does not decode is an object with its id and the
            // error instead of the process's fields.
            // In id order, as the page's keyset says.
            let mut processes: Vec<(&str, serde_json::Value)> = data
                .unreadable
                .iter()
                .map(|(id, error)| (id.as_str(), json!({ "id": id, "unreadable": error })))
                .chain(data.rows.iter().map(|r| (r.id.as_str(), json!(r))))
                .collect();
            processes.sort_by(|a, b| a.0.cmp(b.0));
            let processes: Vec<serde_json::Value> =
                processes.into_iter().map(|(_, value)| value).collect();
            Json(json!({ "processes": processes, "next_after": next_after })).into_response()
        }
        Err(e) => error(&e),
    }
}

/// `GET /api/process?id=`: a process, its journal, its signals, the
/// store's history of it (`events`: claims with host and epoch, blocks,
/// retries, rewinds, cancels, ends) and its `messages`: `received` (signals
/// sent by a message: signal, name, message id, when) and `published` (the
/// outbox entries of its journal: name, destination, message id, state,
/// when).
pub async fn process(State(app): State<AppState>, Query(q): Query<IdQuery>) -> Response {
    match load_process(&app, &q.id).await {
        Ok(data) => Json(json!({
            "process": data.record,
            "journal": data.journal,
            "signals": data.signals,
            "events": data.events,
            "messages": {
                "received": messages::received(&data.signals),
                "published": messages::published(data.record.id.as_str(), &data.journal),
            },
        }))
        .into_response(),
        Err(e) => error(&e),
    }
}

/// `GET /api/signals?id=`: a process's signals in send order, whatever
/// became of them (pending, consumed, rejected with the reason, discarded).
pub async fn signals(State(app): State<AppState>, Query(q): Query<IdQuery>) -> Response {
    let listed = match steadfast::ProcessId::new(q.id.as_str()) {
        Ok(id) => app.inner.store.signals(&id).await,
        Err(e) => Err(steadfast::StoreError::InvalidInput(e.to_string())),
    };
    match listed {
        Ok(signals) => Json(json!({ "signals": signals })).into_response(),
        Err(e) => error(&e),
    }
}

/// `GET /api/subscriptions`: every subscription's saved figures (per name
/// and host: received, routed, dead-lettered, the lag and when it was read,
/// the last dead-letter reason, when they were saved), each with `stale`
/// when it was not saved recently.
pub async fn subscriptions(State(app): State<AppState>) -> Response {
    match app.inner.store.subscriptions().await {
        Ok(reports) => {
            let now = app.inner.clock.now();
            let rows: Vec<serde_json::Value> = reports
                .iter()
                .map(|r| {
                    let mut row = json!(r);
                    if let Some(map) = row.as_object_mut() {
                        map.insert("stale".to_owned(), is_stale(r, now).into());
                    }
                    row
                })
                .collect();
            Json(json!({ "subscriptions": rows })).into_response()
        }
        Err(e) => error(&e),
    }
}

/// `GET /api/counts`: how many processes are in each status.
pub async fn counts(State(app): State<AppState>) -> Response {
    match app.inner.store.counts().await {
        Ok(counts) => {
            let mut map: serde_json::Map<String, serde_json::Value> = counts
                .by_status
                .iter()
                .map(|c| (c.status.as_str().to_owned(), c.count.into()))
                .collect();
            if counts.unreadable > 0 {
                map.insert("unreadable".to_owned(), counts.unreadable.into());
            }
            Json(serde_json::Value::Object(map)).into_response()
        }
        Err(e) => error(&e),
    }
}
