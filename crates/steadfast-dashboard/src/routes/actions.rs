//! Actions: signal, discard a pending signal, cancel, retry, rewind
//! (confirmed first), purge, bulk cancel or retry of a filtered set
//! (confirmed first).
//!
//! Each takes an urlencoded form (the guard has checked its CSRF token).
//! A request that accepts JSON (the pages' scripts) gets
//! `{"ok": true, "message": …}` or `{"ok": false, "error": …}`; a plain
//! form post gets a redirect back, or an error page.

use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::host_status;
use steadfast::{ProcessRecord, Status};

use super::lists::{scan, store_filter};
use super::pages::{error_page, load_process};
use crate::AppState;
use crate::views::list::ListQuery;
use crate::views::{self, process, process_url};

/// What an action did, or why it failed.
type Outcome = Result<String, (StatusCode, String)>;

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn respond(app: &AppState, headers: &HeaderMap, back: &str, outcome: Outcome) -> Response {
    match (outcome, wants_json(headers)) {
        (Ok(message), true) => Json(json!({ "ok": true, "message": message })).into_response(),
        (Err((status, error)), true) => {
            (status, Json(json!({ "ok": false, "error": error }))).into_response()
        }
        (Ok(_), false) => Redirect::to(back).into_response(),
        (Err((status, error)), false) => error_page(app, status, &error),
    }
}

fn failed(err: steadfast::Error) -> (StatusCode, String) {
    (host_status(&err), err.to_string())
}

/// The form of `/actions/signal`.
#[derive(Deserialize)]
pub struct SignalForm {
    id: String,
    name: String,
    #[serde(default)]
    payload: String,
}

/// `POST /actions/signal`: sends a signal; the payload must be JSON.
pub async fn signal(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignalForm>,
) -> Response {
    let outcome = async {
        let name = f.name.trim();
        if name.is_empty() {
            return Err((StatusCode::BAD_REQUEST, "enter a signal name".to_owned()));
        }
        let payload = if f.payload.trim().is_empty() { "null" } else { f.payload.as_str() };
        if let Err(e) = serde_json::from_str::<serde_json::Value>(payload) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("the payload is not valid JSON ({e}); e.g. null, \"text\" or {{\"secret\": \"…\"}}"),
            ));
        }
        app.inner
            .host
            .signal_json(&f.id, name, payload)
            .await
            .map_err(failed)?;
        Ok(format!("signal “{name}” sent"))
    }
    .await;
    respond(&app, &headers, &process_url(&f.id), outcome)
}

/// The form of `/actions/discard-signal`.
#[derive(Deserialize)]
pub struct DiscardForm {
    id: String,
    signal: i64,
}

/// `POST /actions/discard-signal`: discards a pending signal.
pub async fn discard_signal(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<DiscardForm>,
) -> Response {
    let outcome = match app.inner.host.discard_signal(&f.id, f.signal).await {
        Ok(()) => Ok(format!("signal {} discarded", f.signal)),
        Err(e) => Err(failed(e)),
    };
    respond(&app, &headers, &process_url(&f.id), outcome)
}

/// The form of actions that only name a process.
#[derive(Deserialize)]
pub struct IdForm {
    id: String,
}

/// `POST /actions/cancel`.
pub async fn cancel(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<IdForm>,
) -> Response {
    let outcome = match app.inner.host.cancel(&f.id).await {
        Ok(status) => Ok(format!("cancel requested; the process is {status}")),
        Err(e) => Err(failed(e)),
    };
    respond(&app, &headers, &process_url(&f.id), outcome)
}

/// `POST /actions/retry`.
pub async fn retry(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<IdForm>,
) -> Response {
    let outcome = match app.inner.host.retry(&f.id).await {
        Ok(()) => Ok("the process will run again".to_owned()),
        Err(e) => Err(failed(e)),
    };
    respond(&app, &headers, &process_url(&f.id), outcome)
}

/// The form of `/actions/rewind`.
#[derive(Deserialize)]
pub struct RewindForm {
    id: String,
    step: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /actions/rewind`: without `confirm=yes`, shows what would be
/// dropped and asks; with it, rewinds.
pub async fn rewind(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<RewindForm>,
) -> Response {
    if f.confirm != "yes" {
        return match load_process(&app, &f.id).await {
            Ok(data) => {
                let body =
                    process::confirm_rewind(&data.record, &data.journal, &f.step, &app.inner.csrf);
                Html(views::page("Rewind?", &app.frame(), body).into_string()).into_response()
            }
            Err(e) => error_page(&app, super::store_status(&e), &e.to_string()),
        };
    }
    let outcome = match app.inner.host.rewind(&f.id, &f.step).await {
        Ok(n) => Ok(format!("rewound: {n} journal entries dropped")),
        Err(e) => Err(failed(e)),
    };
    respond(&app, &headers, &process_url(&f.id), outcome)
}

/// The form of `/actions/purge`.
#[derive(Deserialize)]
pub struct PurgeForm {
    hours: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /actions/purge`: deletes finished processes older than `hours`.
pub async fn purge(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<PurgeForm>,
) -> Response {
    let outcome = async {
        if f.confirm != "yes" {
            return Err((
                StatusCode::BAD_REQUEST,
                "tick the confirmation box to purge".to_owned(),
            ));
        }
        let hours: u64 = f.hours.trim().parse().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("{:?} is not a whole number of hours", f.hours),
            )
        })?;
        let age = Duration::from_secs(hours.saturating_mul(3600));
        let n = app.inner.host.purge(age).await.map_err(failed)?;
        Ok(format!(
            "{n} finished processes older than {hours} h deleted"
        ))
    }
    .await;
    match (&outcome, wants_json(&headers)) {
        (Ok(message), false) => {
            views::message("Purged", &app.frame(), message, "/").into_response()
        }
        _ => respond(&app, &headers, "/", outcome),
    }
}

/// The form of `/actions/bulk`: the list's filters, the action, and
/// `confirm=yes` once confirmed.
#[derive(Deserialize)]
pub struct BulkForm {
    #[serde(flatten)]
    filters: ListQuery,
    action: String,
    #[serde(default)]
    confirm: String,
}

/// Whether `action` applies to a process in `status`.
fn bulk_applies(action: &str, status: Status) -> bool {
    match action {
        "cancel" => !status.is_finished(),
        "retry" => matches!(status, Status::Blocked | Status::Failed),
        _ => false,
    }
}

/// `POST /actions/bulk`: cancels or retries every process matching the
/// list's filters. Without `confirm=yes` it shows how many it would touch
/// (and which) and asks; with it, acts on each and reports.
pub async fn bulk(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<BulkForm>,
) -> Response {
    if f.action != "cancel" && f.action != "retry" {
        let outcome = Err((
            StatusCode::BAD_REQUEST,
            format!("unknown bulk action {:?}: cancel or retry", f.action),
        ));
        return respond(&app, &headers, "/", outcome);
    }
    let (filter, problems) = store_filter(&f.filters);
    if !problems.is_empty() {
        let outcome = Err((StatusCode::BAD_REQUEST, problems.join("; ")));
        return respond(&app, &headers, "/", outcome);
    }
    // Every matching process, by id (no cap: the store pages).
    let all = match scan(&app, &filter, usize::MAX).await {
        Ok(scanned) => scanned.records,
        Err(e) => {
            let outcome = Err((super::store_status(&e), e.to_string()));
            return respond(&app, &headers, "/", outcome);
        }
    };
    let targets: Vec<&ProcessRecord> = all
        .iter()
        .filter(|r| bulk_applies(&f.action, r.status))
        .collect();
    let back = views::url("/", &f.filters.filters());
    if f.confirm != "yes" {
        let body = views::bulk::confirm(
            &f.action,
            &f.filters,
            &targets,
            all.len(),
            &app.inner.csrf,
            &back,
        );
        return Html(views::page("Confirm", &app.frame(), body).into_string()).into_response();
    }
    let (mut done, mut failed_ids) = (0_usize, Vec::new());
    for r in &targets {
        let result = match f.action.as_str() {
            "cancel" => app.inner.host.cancel(r.id.as_str()).await.map(|_| ()),
            _ => app.inner.host.retry(r.id.as_str()).await,
        };
        match result {
            Ok(()) => done += 1,
            Err(e) => failed_ids.push(format!("{}: {e}", r.id)),
        }
    }
    let verb = if f.action == "cancel" {
        "cancel requested for"
    } else {
        "retried"
    };
    let mut message = format!("{verb} {done} of {} matching processes", all.len());
    if !failed_ids.is_empty() {
        message.push_str(&format!(
            "; {} failed ({})",
            failed_ids.len(),
            failed_ids.join("; ")
        ));
    }
    if wants_json(&headers) {
        return respond(&app, &headers, &back, Ok(message));
    }
    views::message("Done", &app.frame(), &message, &back).into_response()
}
