//! The login form: shown by `GET /login`, after a wrong token, and in place
//! of any page asked for without a session. It only ever leads back to a
//! path on this server.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use crate::auth;
use crate::views;

/// The login form with `status` and an optional message; `next` is where
/// a successful login leads. The page embeds no CSRF token (it is served
/// to anyone who reaches the dashboard).
pub fn page(status: StatusCode, message: Option<&str>, next: &str) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if let Some(message) = message {
            p.notice { (message) }
        }
        form.login method="post" action=(auth::LOGIN) {
            input type="hidden" name="next" value=(local_path(next));
            label {
                "Access token "
                input type="password" name="token" autocomplete="current-password" required autofocus;
            }
            button type="submit" { "Log in" }
        }
        p {
            "The token the dashboard was started with (--token-file, STEADFAST_DASHBOARD_TOKEN or --token). "
            "Scripts send it as an Authorization: Bearer header instead."
        }
    };
    let frame = views::Frame {
        csrf: "",
        poll: Duration::from_secs(1),
        logout: false,
    };
    let page = views::page("Log in", &frame, body);
    (status, Html(page.into_string())).into_response()
}

/// `next` when it is a path on this server (not `//host…`, not a URL, not
/// the login form itself), else `/`: the form must not redirect elsewhere.
pub(crate) fn local_path(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.starts_with(auth::LOGIN)
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed() {
        for (next, to) in [
            ("/process?id=a", "/process?id=a"),
            ("/", "/"),
            ("", "/"),
            ("//evil.example/", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example/", "/"),
            ("/login?next=/", "/"),
            ("/x\ny", "/"),
        ] {
            assert_eq!(local_path(next), to, "{next:?}");
        }
    }
}
