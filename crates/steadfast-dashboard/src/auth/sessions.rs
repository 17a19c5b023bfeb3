//! Login sessions: random ids handed out as an HttpOnly, SameSite=Strict
//! cookie after a successful login, so the access token itself is never
//! stored by the browser.
//!
//! Sessions live in memory: a restart logs everyone out. Each lasts
//! [`SESSION_TTL`]; at most [`MAX_SESSIONS`] exist (the oldest goes first).

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use steadfast::Timestamp;

use super::secret_eq;

/// How long a session lasts after the login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How many sessions are kept at most.
pub const MAX_SESSIONS: usize = 1024;

/// 32 random bytes as hex.
pub(crate) fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Session id and when it expires.
    live: Mutex<Vec<(String, Timestamp)>>,
}

impl Sessions {
    /// Starts a session at `now` and returns its id (64 hex characters).
    pub fn start(&self, now: Timestamp) -> String {
        let id = random_hex();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|(_, expires)| *expires > now);
        if live.len() >= MAX_SESSIONS {
            // Sessions are pushed in login order: the first is the oldest.
            live.remove(0);
        }
        live.push((id.clone(), now + SESSION_TTL));
        id
    }

    /// Ends the session `id`, if it exists.
    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|(s, _)| !secret_eq(s, id));
    }

    /// Whether `id` names a session alive at `now`. Compares with every
    /// session in constant time per comparison.
    pub fn valid(&self, id: &str, now: Timestamp) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter().fold(false, |found, (s, expires)| {
            found | (secret_eq(s, id) && *expires > now)
        })
    }
}

/// The name of the session cookie: with `Secure`, the `__Host-` prefix
/// makes browsers refuse it unless it came over HTTPS for this exact host
/// and path `/`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-steadfast_session"
    } else {
        "steadfast_session"
    }
}

/// The `Set-Cookie` value for session `id`: a session cookie (no expiry:
/// gone when the browser closes), HttpOnly, SameSite=Strict, `Secure` when
/// asked for.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={id}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// The values of the cookies named `name` in `headers`.
pub fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::default();
        let t0 = Timestamp::from_micros(1_000_000);
        let a = sessions.start(t0);
        let b = sessions.start(t0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(sessions.valid(&a, t0));
        assert!(!sessions.valid("nope", t0));
        assert!(!sessions.valid(&a[..63], t0));
        assert!(sessions.valid(&a, t0 + SESSION_TTL - Duration::from_secs(1)));
        assert!(!sessions.valid(&a, t0 + SESSION_TTL));
        assert!(sessions.valid(&b, t0));
        sessions.end(&b);
        assert!(!sessions.valid(&b, t0));
        assert!(sessions.valid(&a, t0));
    }

    #[test]
    fn the_oldest_session_goes_first() {
        let sessions = Sessions::default();
        let t0 = Timestamp::from_micros(1_000_000);
        let first = sessions.start(t0);
        let second = sessions.start(t0);
        for _ in 2..MAX_SESSIONS {
            sessions.start(t0);
        }
        assert!(sessions.valid(&first, t0));
        sessions.start(t0);
        assert!(!sessions.valid(&first, t0));
        assert!(sessions.valid(&second, t0));
    }

    #[test]
    fn cookies_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; steadfast_session=x; xsteadfast_session=y"),
        );
        assert_eq!(cookies(&h, "steadfast_session").collect::<Vec<_>>(), ["x"]);
        assert_eq!(
            set_cookie("x", true),
            "__Host-steadfast_session=x; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
    }
}
