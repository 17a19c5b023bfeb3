//! `/login`: the access token is entered in a form and sent in the body
//! of a POST, never in the address (where it would stay in the browser's
//! history, in proxy logs and in `Referer` headers). A right token starts a
//! session (see [`crate::auth::sessions`]); a wrong one counts towards the
//! client's lockout (see [`crate::auth::throttle`]). `/logout` ends the
//! session.

use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::form::{local_path, page};
use crate::auth::{self, secret_eq, sessions, too_many_attempts};
use crate::views;

/// The query of `GET /login`.
#[derive(Deserialize)]
pub struct LoginQuery {
    /// Refused: tokens in the address were the old way to log in.
    token: Option<String>,
    /// Where to go after logging in.
    #[serde(default)]
    next: String,
}

/// `GET /login`: the login form. A `?token=` is refused (and not used).
pub async fn form(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if app.inner.token.is_none() {
        return Redirect::to("/").into_response();
    }
    if q.token.is_some() {
        return page(
            StatusCode::BAD_REQUEST,
            Some(
                "A token in the address is not accepted: it would stay in the browser's history \
                 and in logs. Enter it below instead (it is sent in the body of the request), \
                 or send it as an Authorization: Bearer header.",
            ),
            &q.next,
        );
    }
    page(StatusCode::OK, None, &q.next)
}

/// The form of `POST /login`.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`: a right token gets a session cookie and a redirect to
/// `next`; a wrong one gets the form again. While the client is locked out
/// the token is not looked at: 429.
pub async fn login(
    State(app): State<AppState>,
    extensions: Extensions,
    Form(f): Form<LoginForm>,
) -> Response {
    let inner = &app.inner;
    let Some(expected) = &inner.token else {
        return Redirect::to("/").into_response();
    };
    let now = inner.clock.now();
    let client = auth::client_key(&extensions);
    if let Err(wait) = inner.throttle.check(client, now) {
        return too_many_attempts(wait);
    }
    if !secret_eq(&f.token, expected) {
        let message = match inner.throttle.failed(client, now) {
            Some(wait) => format!(
                "Wrong token. Too many failed attempts from this address: wait {} before the next.",
                views::duration(wait.max(Duration::from_secs(1)))
            ),
            None => "Wrong token.".to_owned(),
        };
        return page(StatusCode::UNAUTHORIZED, Some(&message), &f.next);
    }
    let id = inner.sessions.start(now);
    let mut response = Redirect::to(&local_path(&f.next)).into_response();
    match HeaderValue::from_str(&sessions::set_cookie(&id, inner.secure_cookie)) {
        Ok(cookie) => {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(_) => auth::refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot set the cookie"),
    }
}

/// `POST /logout` (behind the token and CSRF checks): ends the session
/// of the request's cookie and clears the cookie.
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let inner = &app.inner;
    for id in sessions::cookies(&headers, sessions::cookie_name(inner.secure_cookie)) {
        inner.sessions.end(id);
    }
    let mut response = Redirect::to(auth::LOGIN).into_response();
    if let Ok(clear) = HeaderValue::from_str(&sessions::clear_cookie(inner.secure_cookie)) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    response
}
