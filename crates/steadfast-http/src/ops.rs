//! The operations behind the API, over a [`Host`]: the HTTP handlers and
//! the dashboard's actions both call these, so both check and answer the
//! same way.

use std::time::Duration;

use steadfast::{Host, Spawned};

use crate::ApiError;
use crate::model::{
    CancelResponse, OutcomeResponse, ProcessView, RetryResponse, SignalResponse, SpawnRequest,
    SpawnResponse,
};

/// Starts a process (idempotent by id: the same kind and input again is
/// `created: false`; another kind or input is [`ApiError::Conflict`]).
pub async fn spawn(host: &Host, request: &SpawnRequest) -> Result<SpawnResponse, ApiError> {
    let input = request.input.to_string();
    let spawned = host.spawn_json(&request.kind, &request.id, &input).await?;
    Ok(SpawnResponse {
        id: request.id.clone(),
        kind: request.kind.clone(),
        created: matches!(spawned, Spawned::Created),
    })
}

/// The stored state of process `id`.
pub async fn status(host: &Host, id: &str) -> Result<ProcessView, ApiError> {
    Ok(ProcessView::from(&host.status(id).await?))
}

/// Sends signal `name` with `payload` (JSON text) to process `id`.
pub async fn signal(
    host: &Host,
    id: &str,
    name: &str,
    payload: &str,
) -> Result<SignalResponse, ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "a signal needs a name (the one the process waits for)".to_owned(),
        ));
    }
    // A signal to a process that does not exist is refused by the store.
    host.signal_json(id, name, payload).await?;
    Ok(SignalResponse {
        id: id.to_owned(),
        name: name.to_owned(),
    })
}

/// Cancels process `id` (see [`Host::cancel`]).
pub async fn cancel(host: &Host, id: &str) -> Result<CancelResponse, ApiError> {
    let status = host.cancel(id).await?;
    Ok(CancelResponse {
        id: id.to_owned(),
        status: status.as_str().to_owned(),
    })
}

/// Resumes a blocked or failed process, or cuts a step's durable retry
/// wait short (see [`Host::retry`]).
pub async fn retry(host: &Host, id: &str) -> Result<RetryResponse, ApiError> {
    host.retry(id).await?;
    let status = host.status(id).await?.status;
    Ok(RetryResponse {
        id: id.to_owned(),
        status: status.as_str().to_owned(),
    })
}

/// How process `id` ended, waiting up to `wait` for it to end.
pub async fn outcome(host: &Host, id: &str, wait: Duration) -> Result<OutcomeResponse, ApiError> {
    let record = host.status(id).await?;
    if record.status.is_finished() || wait.is_zero() {
        return Ok(OutcomeResponse::from(&record));
    }
    // Whatever the end (output, error, cancel), the stored record says it;
    // a store error while waiting is the answer's error.
    if let Ok(Err(err)) = tokio::time::timeout(wait, host.outcome::<serde_json::Value>(id)).await
        && !matches!(
            err,
            steadfast::Error::Failed { .. } | steadfast::Error::Cancelled { .. }
        )
    {
        return Err(err.into());
    }
    Ok(OutcomeResponse::from(&host.status(id).await?))
}

/// Parses a wait such as `30s`, `500ms`, `2m` or `15` (seconds), at most
/// `max`.
///
/// ```
/// use std::time::Duration;
/// use steadfast_http::ops::parse_wait;
///
/// let max = Duration::from_secs(60);
/// assert_eq!(parse_wait("30s", max).unwrap(), Duration::from_secs(30));
/// assert_eq!(parse_wait("250ms", max).unwrap(), Duration::from_millis(250));
/// assert_eq!(parse_wait("5", max).unwrap(), Duration::from_secs(5));
/// assert_eq!(parse_wait("1m", max).unwrap(), max);
/// assert!(parse_wait("2m", max).is_err()); // longer than the limit
/// assert!(parse_wait("soon", max).is_err());
/// ```
pub fn parse_wait(text: &str, max: Duration) -> Result<Duration, ApiError> {
    let text = text.trim();
    let bad = || {
        ApiError::BadRequest(format!(
            "wait={text:?} is not a duration: use e.g. 30s, 500ms, 2m or a number of seconds"
        ))
    };
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    let wait = Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
    if wait > max {
        return Err(ApiError::BadRequest(format!(
            "wait={text:?} is longer than this server's limit of {} s; wait again after it answers",
            max.as_secs()
        )));
    }
    Ok(wait)
}
