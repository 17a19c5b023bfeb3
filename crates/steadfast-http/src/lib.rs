//! The HTTP/JSON API of Steadfast, for services in any language: spawn,
//! signal, status, outcome (long poll), cancel and retry under `/api/v1`,
//! described by an OpenAPI document generated from the handlers
//! ([`utoipa`]) and served at `/api/v1/openapi.json`.
//!
//! | route | does |
//! | --- | --- |
//! | `POST /api/v1/processes` | start a process (`{"kind", "id", "input"}`); idempotent by id |
//! | `GET /api/v1/processes/{id}` | the stored state |
//! | `POST /api/v1/processes/{id}/signals` | send a signal (`{"name", "payload"}`) |
//! | `GET /api/v1/processes/{id}/outcome?wait=30s` | how it ended, waiting up to `wait` |
//! | `POST /api/v1/processes/{id}/cancel` | cancel it |
//! | `POST /api/v1/processes/{id}/retry` | resume a blocked or failed process |
//! | `GET /api/v1/openapi.json` | the OpenAPI document (no token needed) |
//!
//! [`router`] serves it on its own (`steadfast serve --http ADDR`,
//! `steadfast worker --http ADDR`): with an access token every request but
//! the OpenAPI document needs `Authorization: Bearer TOKEN`; without one it
//! only listens on loopback and answers only to loopback host names (no DNS
//! rebinding). Requests other than GET must be sent as
//! `Content-Type: application/json` (so a web page cannot send them as a
//! plain form), and bodies are limited in size. The dashboard serves the
//! same routes ([`routes`]) behind its own access checks.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use steadfast::{Host, SqliteStore};
//! use steadfast_http::{ApiOptions, serve_on};
//!
//! let host = Host::builder(SqliteStore::open("steadfast.db").await?).build_client();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve_on(listener, host, ApiOptions::default()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
pub mod handlers;
pub mod model;
pub mod ops;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use steadfast::Host;
use subtle::ConstantTimeEq;
use utoipa::OpenApi;

pub use error::{ApiError, ErrorBody, ErrorDetail};

/// Where the API's routes start.
pub const PREFIX: &str = "/api/v1";
/// The path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// The default limit of a request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default longest `wait` of an outcome request.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// The shortest access token accepted when the API listens on an address
/// other than loopback.
pub const MIN_TOKEN_CHARS: usize = 32;

/// What the handlers share: the host they act through and the longest
/// outcome wait. A bigger application state holding one implements
/// [`FromRef`] for it to serve [`routes`].
#[derive(Clone)]
pub struct ApiState {
    /// The host spawns, signals, cancels and reads through (a client host,
    /// [`steadfast::HostBuilder::build_client`], is enough; its registered
    /// kinds check spawn inputs).
    pub host: Host,
    /// The longest `wait` an outcome request may ask for.
    pub max_wait: Duration,
}

impl ApiState {
    /// State over `host` with [`DEFAULT_MAX_WAIT`].
    pub fn new(host: Host) -> Self {
        ApiState {
            host,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// How the API is served on its own.
#[derive(Clone)]
#[non_exhaustive]
pub struct ApiOptions {
    /// The bearer token every request (but the OpenAPI document) must
    /// carry. Required off loopback, and then at least
    /// [`MIN_TOKEN_CHARS`] characters.
    pub token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The longest `wait` of an outcome request.
    pub max_wait: Duration,
}

impl std::fmt::Debug for ApiOptions {
    /// Everything but the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

impl ApiOptions {
    /// Sets (or clears) the access token; an empty token counts as none.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Sets the largest request body accepted (at least 1 KiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1024);
        self
    }

    /// Sets the longest outcome wait.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Refuses to serve on `addr` when it is not loopback and there is no
    /// token, or one shorter than [`MIN_TOKEN_CHARS`].
    pub fn check(&self, addr: SocketAddr) -> Result<(), ServeError> {
        if addr.ip().is_loopback() {
            return Ok(());
        }
        match &self.token {
            None => Err(ServeError::TokenRequired(addr)),
            Some(t) if t.chars().count() < MIN_TOKEN_CHARS => Err(ServeError::TokenTooShort {
                addr,
                chars: t.chars().count(),
            }),
            Some(_) => Ok(()),
        }
    }
}

/// Why the API cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Off loopback without a token.
    #[error(
        "the API would listen on {0}, which is not a loopback address, without an access token: \
         give one (at least {MIN_TOKEN_CHARS} characters) or listen on 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    /// Off loopback with a short token.
    #[error(
        "the access token has {chars} characters; listening on {addr} needs at least \
         {MIN_TOKEN_CHARS}"
    )]
    TokenTooShort {
        /// The address.
        addr: SocketAddr,
        /// The token's length.
        chars: usize,
    },
    /// The listener failed.
    #[error("serving the API failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The OpenAPI document of every route, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Steadfast API",
        description = "Spawn, signal, read, await, cancel and retry Steadfast processes."
    ),
    paths(
        handlers::spawn,
        handlers::status,
        handlers::signal,
        handlers::outcome,
        handlers::cancel,
        handlers::retry,
        handlers::openapi,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "processes", description = "Processes and their signals."),
        (name = "meta", description = "This document.")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document as JSON.
///
/// ```
/// let doc: serde_json::Value = serde_json::from_str(&steadfast_http::openapi_json()).unwrap();
/// assert!(doc["paths"]["/api/v1/processes/{id}/outcome"]["get"].is_object());
/// ```
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Every route with its method and handler, for a router over state `S`
/// (the dashboard adds these to its own table).
pub fn routes<S>() -> Vec<(Method, &'static str, MethodRouter<S>)>
where
    ApiState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    vec![
        (Method::POST, "/api/v1/processes", post(handlers::spawn)),
        (Method::GET, "/api/v1/processes/{id}", get(handlers::status)),
        (
            Method::POST,
            "/api/v1/processes/{id}/signals",
            post(handlers::signal),
        ),
        (
            Method::GET,
            "/api/v1/processes/{id}/outcome",
            get(handlers::outcome),
        ),
        (
            Method::POST,
            "/api/v1/processes/{id}/cancel",
            post(handlers::cancel),
        ),
        (
            Method::POST,
            "/api/v1/processes/{id}/retry",
            post(handlers::retry),
        ),
        (Method::GET, OPENAPI_PATH, get(handlers::openapi)),
    ]
}

/// The API on its own over `host`: [`routes`] behind the token, host-name,
/// JSON and size checks of `options` (see the crate docs). `bind` is the
/// address served on, accepted as `Host` besides the loopback names when
/// there is no token.
pub fn router(host: Host, options: &ApiOptions, bind: Option<SocketAddr>) -> Router {
    let state = ApiState {
        host,
        max_wait: options.max_wait,
    };
    let guard = Arc::new(Guard {
        token: options.token.clone(),
        bind: bind.map(|b| b.ip()),
        max_body_bytes: options.max_body_bytes,
    });
    routes::<ApiState>()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(guard, guard_request))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state)
}

/// Serves the API over `host` on `listener` until it fails. Refuses what
/// [`ApiOptions::check`] refuses.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    host: Host,
    options: ApiOptions,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    options.check(addr)?;
    let app = router(host, &options, Some(addr));
    axum::serve(listener, app).await?;
    Ok(())
}

/// The standalone API's checks.
struct Guard {
    token: Option<String>,
    bind: Option<IpAddr>,
    max_body_bytes: usize,
}

async fn guard_request(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match check(&guard, &request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn check(guard: &Guard, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    match &guard.token {
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| request.uri().authority().map(|a| a.as_str()))
                .unwrap_or_default();
            if !loopback_name(host, guard.bind) {
                return Err(ApiError::Misdirected(format!(
                    "this API has no access token and answers only to loopback names \
                     (localhost, 127.0.0.1, [::1]), not {host:?} (a defence against DNS \
                     rebinding): call it by one of those, or serve it with a token"
                )));
            }
        }
        Some(expected) if request.uri().path() != OPENAPI_PATH => {
            let sent = headers
                .get_all(header::AUTHORIZATION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .collect::<Vec<_>>();
            if sent.is_empty() {
                return Err(ApiError::Unauthorized(
                    "an access token is required: send Authorization: Bearer TOKEN".to_owned(),
                ));
            }
            if !sent
                .iter()
                .any(|t| bool::from(t.as_bytes().ct_eq(expected.as_bytes())))
            {
                return Err(ApiError::Unauthorized("wrong access token".to_owned()));
            }
        }
        Some(_) => {}
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) && !is_json(headers) {
        return Err(ApiError::NotJson);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > guard.max_body_bytes) {
        return Err(ApiError::TooLarge(format!(
            "the request body is larger than the limit of {} bytes",
            guard.max_body_bytes
        )));
    }
    Ok(())
}

/// Whether the request says its body is JSON.
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `authority` (a `Host` header) names loopback or `bind`.
fn loopback_name(authority: &str, bind: Option<IpAddr>) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || Some(ip) == bind,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_name;

    #[test]
    fn loopback_names() {
        for ok in [
            "localhost",
            "localhost:80",
            "127.0.0.1:8080",
            "[::1]:1",
            "LOCALHOST",
        ] {
            assert!(loopback_name(ok, None), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "",
            "localhost.evil",
        ] {
            assert!(!loopback_name(bad, None), "{bad}");
        }
        let bind = "10.0.0.1".parse().ok();
        assert!(loopback_name("10.0.0.1:80", bind));
    }
}
