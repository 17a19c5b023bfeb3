//! Access token and CSRF checks.
//!
//! * With an access token configured, every request except `/login` and
//!   the static assets must carry it: the `steadfast_token` cookie (set by
//!   `/login?token=…`) or `Authorization: Bearer …`. Otherwise: 401.
//! * Every request that is not GET/HEAD must carry the per-server CSRF
//!   token (form field `csrf` or header `X-CSRF-Token`), and its `Origin`
//!   (or else `Referer`), when sent, must name the same host it was sent
//!   to. Otherwise: 403.

use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;

/// The cookie holding the access token.
pub const COOKIE: &str = "steadfast_token";
/// The largest form body accepted (signal payloads included).
const MAX_BODY: usize = 256 * 1024;

/// Checks the access token, then (for mutating requests) the CSRF token
/// and the origin.
pub async fn guard(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let public = path == "/login" || path.starts_with("/assets/");
    if let Some(expected) = &app.inner.token
        && !public
        && !has_access_token(request.headers(), expected)
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "an access token is required: open /login?token=… once, or send Authorization: Bearer …",
        );
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    if !same_origin(request.headers()) {
        return refuse(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| form_field(&bytes, "csrf"));
    match sent {
        Some(sent) if constant_time_eq(sent.as_bytes(), app.inner.csrf.as_bytes()) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => refuse(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page and try again",
        ),
    }
}

/// The `?token=` of `/login`.
#[derive(Deserialize)]
pub struct Login {
    token: Option<String>,
}

/// `/login?token=…`: checks the token, stores it in an HttpOnly,
/// SameSite=Strict cookie and redirects to the list.
pub async fn login(State(app): State<AppState>, Query(login): Query<Login>) -> Response {
    let Some(expected) = &app.inner.token else {
        return Redirect::to("/").into_response();
    };
    match login.token {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            match header::HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    let mut response = Redirect::to("/").into_response();
                    response.headers_mut().insert(header::SET_COOKIE, value);
                    response
                }
                Err(_) => refuse(StatusCode::BAD_REQUEST, "this token cannot be a cookie"),
            }
        }
        _ => refuse(StatusCode::UNAUTHORIZED, "wrong or missing token"),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}: {message}\n", status.as_u16()),
    )
        .into_response()
}

/// Whether the request carries `expected` as bearer token or cookie.
fn has_access_token(headers: &HeaderMap, expected: &str) -> bool {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .any(|t| constant_time_eq(t.trim().as_bytes(), expected.as_bytes()));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()));
    bearer || cookie
}

/// Whether `Origin` (or, without it, `Referer`) names the `Host` the
/// request was sent to. Requests with neither (curl, tests) pass: they
/// still need the CSRF token, which another site cannot read.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match (claimed, host) {
        (None, _) => true,
        (Some(claimed), Some(host)) => {
            let rest = claimed
                .strip_prefix("http://")
                .or_else(|| claimed.strip_prefix("https://"));
            rest.map(|r| r.split('/').next().unwrap_or_default()) == Some(host)
        }
        (Some(_), None) => false,
    }
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            header::HeaderValue::from_static("127.0.0.1:7777"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            header::HeaderValue::from_static("http://127.0.0.1:7777"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            header::HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            header::HeaderValue::from_static("http://127.0.0.1:7777.evil"),
        );
        assert!(!same_origin(&h));
    }

    #[test]
    fn tokens_from_cookie_or_bearer() {
        let mut h = HeaderMap::new();
        assert!(!has_access_token(&h, "t"));
        h.insert(
            header::COOKIE,
            header::HeaderValue::from_static("a=b; steadfast_token=t"),
        );
        assert!(has_access_token(&h, "t"));
        assert!(!has_access_token(&h, "u"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Bearer t"),
        );
        assert!(has_access_token(&h, "t"));
        assert_eq!(
            form_field(b"a=1&csrf=x%20y", "csrf").as_deref(),
            Some("x y")
        );
    }
}
