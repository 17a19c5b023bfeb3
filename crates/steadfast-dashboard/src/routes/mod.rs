//! The routes: pages, live fragments, the JSON API, actions, metrics.

mod actions;
mod api;
mod pages;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use steadfast::StoreError;

use crate::{AppState, auth, metrics};

/// Every route, behind the access/CSRF guard and security headers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::list))
        .route("/live/list", get(pages::list_live))
        .route("/process", get(pages::process))
        .route("/live/process", get(pages::process_live))
        .route("/kind", get(pages::kind))
        .route("/live/kind", get(pages::kind_live))
        .route("/purge", get(pages::purge))
        .route("/api/processes", get(api::list))
        .route("/api/process", get(api::process))
        .route("/api/counts", get(api::counts))
        .route("/actions/signal", post(actions::signal))
        .route("/actions/cancel", post(actions::cancel))
        .route("/actions/retry", post(actions::retry))
        .route("/actions/rewind", post(actions::rewind))
        .route("/actions/purge", post(actions::purge))
        .route("/metrics", get(metrics::handler))
        .route("/login", get(auth::login))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Forbids inline scripts and foreign resources (a second line of defence
/// behind escaping), framing and MIME sniffing.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The HTTP status for a store error.
pub fn store_status(err: &StoreError) -> StatusCode {
    match err {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::InvalidInput(_) => StatusCode::BAD_REQUEST,
        StoreError::InvalidState { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP status for a host error.
pub fn host_status(err: &steadfast::Error) -> StatusCode {
    match err {
        steadfast::Error::Store(e) => store_status(e),
        steadfast::Error::InvalidId(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
