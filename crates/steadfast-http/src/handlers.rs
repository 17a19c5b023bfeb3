//! The HTTP handlers of `/api/v1` (each documented for the OpenAPI
//! document with `#[utoipa::path]`).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::model::{
    CancelResponse, OutcomeQuery, OutcomeResponse, ProcessView, RetryResponse, SignalRequest,
    SignalResponse, SpawnRequest, SpawnResponse,
};
use crate::{ApiError, ApiState, ErrorBody, ops};

/// A JSON request body whose rejections are [`ApiError`]s (JSON bodies, not
/// axum's plain text).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::NotJson),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The request's W3C `traceparent` header, when it is a valid one (an
/// invalid one is ignored, as the W3C recommendation asks).
fn traceparent(headers: &HeaderMap) -> Option<steadfast::trace::Traceparent> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    match steadfast::trace::Traceparent::parse(value) {
        Ok(traceparent) => Some(traceparent),
        Err(err) => {
            tracing::debug!(error = %err, "ignoring the request's traceparent");
            None
        }
    }
}

/// Runs `future` with the request's trace context, if it has one.
async fn traced<F: Future>(headers: &HeaderMap, future: F) -> F::Output {
    match traceparent(headers) {
        Some(traceparent) => steadfast::trace::with_traceparent(traceparent, future).await,
        None => future.await,
    }
}

/// Start a process.
///
/// Idempotent by process id: the same id with the same kind and input
/// answers 200 with `created: false`; another kind or input is 409. A W3C
/// `traceparent` header is stored with a new process: its runs are spans in
/// the caller's trace.
#[utoipa::path(
    post,
    path = "/api/v1/processes",
    tag = "processes",
    params(("traceparent" = Option<String>, Header, description = "The caller's W3C trace context, stored with the process.")),
    request_body = SpawnRequest,
    responses(
        (status = 201, description = "The process was created.", body = SpawnResponse),
        (status = 200, description = "The process existed already with this kind and input.", body = SpawnResponse),
        (status = 400, description = "Malformed request or id.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 409, description = "The id exists with another kind or input.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 415, description = "The body is not JSON.", body = ErrorBody),
        (status = 422, description = "Unknown kind, or an input that does not fit it.", body = ErrorBody),
        (status = 503, description = "The store is busy; try again.", body = ErrorBody),
    )
)]
pub async fn spawn(
    State(api): State<ApiState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SpawnRequest>,
) -> Result<Response, ApiError> {
    let spawned = traced(&headers, ops::spawn(&api.host, &request)).await?;
    let status = if spawned.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/api/v1/processes/{}", encode_segment(&spawned.id));
    Ok((status, [(header::LOCATION, location)], Json(spawned)).into_response())
}

/// A process's stored state.
#[utoipa::path(
    get,
    path = "/api/v1/processes/{id}",
    tag = "processes",
    params(("id" = String, Path, description = "The process id (percent-encode `/` as `%2F`).")),
    responses(
        (status = 200, description = "The process.", body = ProcessView),
        (status = 400, description = "Not a valid process id.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No process with this id.", body = ErrorBody),
    )
)]
pub async fn status(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ProcessView>, ApiError> {
    Ok(Json(ops::status(&api.host, &id).await?))
}

/// Send a signal to a process.
///
/// Stored durably before the answer; kept until a wait for its name takes
/// it. Each request stores one signal. A W3C `traceparent` header is stored
/// with it: the wait that takes it links to the caller's span.
#[utoipa::path(
    post,
    path = "/api/v1/processes/{id}/signals",
    tag = "processes",
    params(
        ("id" = String, Path, description = "The process id (percent-encode `/` as `%2F`)."),
        ("traceparent" = Option<String>, Header, description = "The caller's W3C trace context, stored with the signal."),
    ),
    request_body = SignalRequest,
    responses(
        (status = 202, description = "The signal is stored.", body = SignalResponse),
        (status = 400, description = "Malformed request, id or name (names beginning with `steadfast:` are reserved).", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No process with this id.", body = ErrorBody),
        (status = 409, description = "The process has ended.", body = ErrorBody),
        (status = 413, description = "The body is too large.", body = ErrorBody),
        (status = 415, description = "The body is not JSON.", body = ErrorBody),
        (status = 422, description = "The payload is larger than the host's limit.", body = ErrorBody),
    )
)]
pub async fn signal(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SignalRequest>,
) -> Result<(StatusCode, Json<SignalResponse>), ApiError> {
    let payload = request.payload.to_string();
    let sent = traced(
        &headers,
        ops::signal(&api.host, &id, &request.name, &payload),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

/// How a process ended, waiting for the end up to `wait` (long poll).
///
/// 200 once the process has ended (completed with its output, failed with
/// its error, or cancelled); 202 with its current status when it has not
/// ended within `wait`: ask again.
#[utoipa::path(
    get,
    path = "/api/v1/processes/{id}/outcome",
    tag = "processes",
    params(("id" = String, Path, description = "The process id (percent-encode `/` as `%2F`)."), OutcomeQuery),
    responses(
        (status = 200, description = "The process has ended.", body = OutcomeResponse),
        (status = 202, description = "Not ended within the wait; ask again.", body = OutcomeResponse),
        (status = 400, description = "Not a valid id or wait.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No process with this id.", body = ErrorBody),
    )
)]
pub async fn outcome(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<OutcomeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<OutcomeResponse>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let wait = match query.wait.as_deref() {
        Some(text) => ops::parse_wait(text, api.max_wait)?,
        None => std::time::Duration::ZERO,
    };
    let outcome = ops::outcome(&api.host, &id, wait).await?;
    let status = if outcome.finished {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(outcome)))
}

/// Cancel a process (and its child processes).
#[utoipa::path(
    post,
    path = "/api/v1/processes/{id}/cancel",
    tag = "processes",
    params(("id" = String, Path, description = "The process id (percent-encode `/` as `%2F`).")),
    responses(
        (status = 200, description = "Cancelled, or requested from the host running it (`status: running`).", body = CancelResponse),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No process with this id.", body = ErrorBody),
        (status = 409, description = "The process has ended already.", body = ErrorBody),
        (status = 415, description = "The request is not sent as JSON.", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    Ok(Json(ops::cancel(&api.host, &id).await?))
}

/// Resume a blocked or failed process, or retry a waiting step now.
#[utoipa::path(
    post,
    path = "/api/v1/processes/{id}/retry",
    tag = "processes",
    params(("id" = String, Path, description = "The process id (percent-encode `/` as `%2F`).")),
    responses(
        (status = 200, description = "The process will run again.", body = RetryResponse),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No process with this id.", body = ErrorBody),
        (status = 409, description = "The process is not blocked, failed or waiting to retry a step.", body = ErrorBody),
        (status = 415, description = "The request is not sent as JSON.", body = ErrorBody),
    )
)]
pub async fn retry(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<RetryResponse>, ApiError> {
    Ok(Json(ops::retry(&api.host, &id).await?))
}

/// This API's OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json"))
)]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_json(),
    )
        .into_response()
}

/// Any other path under `/api/v1`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such API route: see /api/v1/openapi.json".to_owned())
}

/// Percent-encodes a path segment (for the `Location` of a new process).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
