//! What the API answers when a request fails: an HTTP status and a JSON body
//! `{"error": {"code": …, "message": …}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use steadfast::StoreError;
use utoipa::ToSchema;

/// Why a request failed. Every variant maps to one HTTP status and one
/// stable `code` (see [`ApiError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed: a bad id, a payload that is not JSON, an
    /// unknown query parameter value (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or a wrong bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// No process with this id (404).
    #[error("{0}")]
    NotFound(String),
    /// The process exists with another kind or input, or is in a state the
    /// operation does not apply to (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// A request with a body (or a POST) that is not `application/json` (415).
    #[error("send the request as JSON: Content-Type: application/json")]
    NotJson,
    /// The input does not fit the kind, or the kind is not known to this
    /// server (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The `Host` header names a host this server does not answer to (421).
    #[error("{0}")]
    Misdirected(String),
    /// The store is busy or unreachable for now; try again (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of an error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: `bad_request`, `unauthorized`,
    /// `not_found`, `conflict`, `too_large`, `not_json`, `unprocessable`,
    /// `misdirected`, `unavailable`, `internal`.
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the response body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "too_large",
            ApiError::NotJson => "not_json",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Misdirected(_) => "misdirected",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The response body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        }
    }
}

impl From<steadfast::Error> for ApiError {
    fn from(err: steadfast::Error) -> Self {
        let message = err.to_string();
        match err {
            steadfast::Error::Store(e) => store(e, message),
            steadfast::Error::InvalidId(_) => ApiError::BadRequest(message),
            steadfast::Error::UnknownKind { .. } | steadfast::Error::InvalidInput { .. } => {
                ApiError::Unprocessable(message)
            }
            steadfast::Error::PayloadTooLarge { .. } => ApiError::Unprocessable(message),
            steadfast::Error::Encode { .. } => ApiError::BadRequest(message),
            steadfast::Error::ShutDown => ApiError::Unavailable(message),
            _ => ApiError::Internal(message),
        }
    }
}

fn store(err: StoreError, message: String) -> ApiError {
    match err {
        StoreError::NotFound(_) => ApiError::NotFound(message),
        StoreError::InvalidInput(_) => ApiError::BadRequest(message),
        StoreError::SpawnConflict { .. } | StoreError::InvalidState { .. } => {
            ApiError::Conflict(message)
        }
        e if e.is_retryable() => ApiError::Unavailable(message),
        _ => ApiError::Internal(message),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        match self {
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"steadfast\""),
                );
            }
            ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
