//! The checks in front of every route, in this order:
//!
//! 1. **Host** ([`hosts`]): without an access token (or with names
//!    allowed explicitly) the `Host` must be a name the dashboard is known
//!    by; otherwise 421 Misdirected Request. This stops DNS rebinding.
//! 2. **Access token**: when one is configured, every route but `/login`
//!    and the static assets needs a session cookie (set by logging in with
//!    the form at `/login`, see [`sessions`]) or `Authorization: Bearer
//!    TOKEN`; otherwise 401 (a browser gets the login form). Wrong bearer
//!    tokens count as failed logins ([`throttle`]): 429 while locked out.
//! 3. **Origin** ([`origin`]): a request other than GET/HEAD must come
//!    from the dashboard's own pages when the browser says where it comes
//!    from; otherwise 403.
//! 4. **CSRF**: a request other than GET/HEAD (except the login form,
//!    which carries the access token instead) must carry the per-server
//!    CSRF token (form field `csrf` or header `X-CSRF-Token`); otherwise
//!    403. Requests to the HTTP API (`/api/v1/…`) must instead be sent as
//!    `Content-Type: application/json` (otherwise 415): a web page of
//!    another origin cannot send that without a CORS preflight, which the
//!    dashboard never allows.

pub mod form;
pub mod hosts;
mod origin;
pub mod sessions;
pub mod throttle;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::AppState;
use throttle::ClientKey;

/// The path of the login form.
pub const LOGIN: &str = "/login";
/// The largest form body accepted (signal payloads included).
const MAX_BODY: usize = 256 * 1024;

/// Whether `path` is served without the access token: the login form and
/// the static assets (never without the host check).
pub fn is_public(path: &str) -> bool {
    path == LOGIN || path.starts_with("/assets/") || path == steadfast_http::OPENAPI_PATH
}

/// Whether `path` is a route of the HTTP API.
fn is_api(path: &str) -> bool {
    path.starts_with(steadfast_http::PREFIX)
        && path[steadfast_http::PREFIX.len()..].starts_with('/')
}

/// Runs the checks above, then the route.
pub async fn guard(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(refusal) = app.inner.hosts.check(request.uri(), request.headers()) {
        return misdirected(&refusal);
    }
    let path = request.uri().path();
    if let Some(expected) = &app.inner.token
        && !is_public(path)
        && let Some(refused) = unauthenticated(&app, &request, expected)
    {
        return refused;
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    if !origin::same_origin(request.uri(), request.headers()) {
        return refuse(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    if path == LOGIN {
        return next.run(request).await;
    }
    let api = is_api(path);
    if api && !steadfast_http::is_json(request.headers()) {
        return steadfast_http::ApiError::NotJson.into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) if api => {
            return steadfast_http::ApiError::TooLarge(format!(
                "the request body is larger than the limit of {MAX_BODY} bytes"
            ))
            .into_response();
        }
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    if api {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| form_field(&bytes, "csrf"));
    match sent {
        Some(sent) if secret_eq(&sent, &app.inner.csrf) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => refuse(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page and try again",
        ),
    }
}

/// `None` for a request with a live session cookie or the right bearer
/// token, the refusal for the others.
fn unauthenticated(app: &AppState, request: &Request, expected: &str) -> Option<Response> {
    let inner = &app.inner;
    let now = inner.clock.now();
    let headers = request.headers();
    let cookie = sessions::cookie_name(inner.secure_cookie);
    if sessions::cookies(headers, cookie).any(|id| inner.sessions.valid(id, now)) {
        return None;
    }
    let bearers: Vec<&str> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .collect();
    if bearers.is_empty() {
        return Some(unauthorized(request));
    }
    let client = client_key(request.extensions());
    if let Err(wait) = inner.throttle.check(client, now) {
        return Some(too_many_attempts(wait));
    }
    if bearers.iter().any(|t| secret_eq(t, expected)) {
        return None;
    }
    inner.throttle.failed(client, now);
    Some(refuse(StatusCode::UNAUTHORIZED, "wrong access token"))
}

/// 401: the login form for a browser opening a page, a short text with
/// `WWW-Authenticate` for anything else.
fn unauthorized(request: &Request) -> Response {
    let wants_page = request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if wants_page {
        let here = request.uri().path_and_query().map_or("/", |p| p.as_str());
        return form::page(StatusCode::UNAUTHORIZED, None, here);
    }
    let mut response = refuse(
        StatusCode::UNAUTHORIZED,
        "an access token is required: log in with the form at /login, or send Authorization: Bearer …",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"steadfast\""),
    );
    response
}

/// 429 with `Retry-After` for a client locked out for `wait`.
pub fn too_many_attempts(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many failed attempts from this address: try again in {secs} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// 421 for a request to a host the dashboard is not known by.
fn misdirected(refusal: &hosts::Refusal) -> Response {
    let message = match refusal {
        hosts::Refusal::Missing => "the request names no host".to_owned(),
        hosts::Refusal::Unknown(host) => format!(
            "this dashboard does not answer to the host {host:?} (a defence against DNS \
             rebinding): open it as localhost or 127.0.0.1, or start it with \
             --allow-host NAME for a name of your own"
        ),
    };
    refuse(StatusCode::MISDIRECTED_REQUEST, &message)
}

/// A refusal as plain text.
pub fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}: {message}\n", status.as_u16()),
    )
        .into_response()
}

/// Whose failed attempts a request counts to: its peer address when the
/// server recorded it (see [`crate::serve_on`]).
pub fn client_key(extensions: &Extensions) -> ClientKey {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(ClientKey::Shared, |c| ClientKey::of(c.0.ip()))
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Compares secrets in constant time (for equal lengths; the length of
/// a secret is not hidden).
pub fn secret_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_form_fields() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
        assert!(!secret_eq("", "a"));
        assert_eq!(
            form_field(b"a=1&csrf=x%20y", "csrf").as_deref(),
            Some("x y")
        );
        assert!(is_public("/login") && is_public("/assets/dashboard.js"));
        assert!(!is_public("/login/x") && !is_public("/") && !is_public("/api/counts"));
    }
}
