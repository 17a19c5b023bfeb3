//! The routes: pages, live fragments, the JSON API, actions, metrics.

mod actions;
mod api;
mod kind;
mod lists;
pub mod login;
mod pages;
mod subscriptions;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use steadfast::StoreError;

use crate::{AppState, auth, metrics};

/// One route of the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// GET or POST.
    pub method: Method,
    /// The path.
    pub path: &'static str,
    /// Whether it is served without the access token (the login form and
    /// the static assets; never without the host check).
    pub public: bool,
}

/// Every route with its handler: the router is built from this table, and
/// [`route_list`] reads it, so tests that walk every route see a new one.
fn table() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/", get(lists::list)),
        (Method::GET, "/kinds", get(lists::kinds)),
        (Method::GET, "/live/list", get(lists::list_live)),
        (Method::GET, "/process", get(pages::process)),
        (Method::GET, "/live/process", get(pages::process_live)),
        (Method::GET, "/kind", get(kind::kind)),
        (Method::GET, "/live/kind", get(kind::kind_live)),
        (Method::GET, "/subscriptions", get(subscriptions::page)),
        (
            Method::GET,
            "/live/subscriptions",
            get(subscriptions::page_live),
        ),
        (Method::GET, "/purge", get(pages::purge)),
        (Method::GET, "/api/processes", get(api::list)),
        (Method::GET, "/api/process", get(api::process)),
        (Method::GET, "/api/counts", get(api::counts)),
        (Method::GET, "/api/signals", get(api::signals)),
        (Method::GET, "/api/subscriptions", get(api::subscriptions)),
        (Method::POST, "/actions/signal", post(actions::signal)),
        (Method::POST, "/actions/cancel", post(actions::cancel)),
        (Method::POST, "/actions/retry", post(actions::retry)),
        (Method::POST, "/actions/rewind", post(actions::rewind)),
        (Method::POST, "/actions/purge", post(actions::purge)),
        (
            Method::POST,
            "/actions/discard-signal",
            post(actions::discard_signal),
        ),
        (Method::POST, "/actions/bulk", post(actions::bulk)),
        (Method::GET, "/metrics", get(metrics::handler)),
        (Method::GET, auth::LOGIN, get(login::form)),
        (Method::POST, auth::LOGIN, post(login::login)),
        (Method::POST, "/logout", post(login::logout)),
        (Method::GET, "/assets/dashboard.css", get(css)),
        (Method::GET, "/assets/dashboard.js", get(js)),
        (Method::GET, "/assets/favicon.svg", get(favicon)),
    ]
    .into_iter()
    // The HTTP API for services, the same handlers `steadfast serve` uses.
    .chain(steadfast_http::routes::<AppState>())
    .collect()
}

/// Every route the dashboard serves (HEAD is served wherever GET is).
pub fn route_list() -> Vec<Route> {
    table()
        .into_iter()
        .map(|(method, path, _)| Route {
            method,
            path,
            public: auth::is_public(path),
        })
        .collect()
}

/// Every route, behind the host/access/CSRF guard and security headers.
pub fn router(state: AppState) -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
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

async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("../../assets/favicon.svg"))
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
