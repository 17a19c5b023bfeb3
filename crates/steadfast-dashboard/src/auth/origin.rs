//! Whether a mutating request comes from the dashboard's own pages.

use axum::http::{HeaderMap, Uri, header};

/// Whether the request's `Origin` (or, without it, `Referer`) names the
/// host the request was sent to, and a `Sec-Fetch-Site` (sent by current
/// browsers) does not say another site made it. `Origin: null` (sandboxed
/// frames, `data:` pages, some redirects) is refused. Requests with
/// neither header (curl, scripts) pass: they still need the CSRF token,
/// which another site cannot read.
pub fn same_origin(uri: &Uri, headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| v.to_str().ok());
    match (claimed, host) {
        (None, _) => true,
        (Some(Some(claimed)), Some(host)) => {
            let rest = claimed
                .strip_prefix("http://")
                .or_else(|| claimed.strip_prefix("https://"));
            rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default())
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_match_host() {
        let uri = Uri::from_static("/actions/cancel");
        let host = ("host", "127.0.0.1:7777");
        for (headers, ok) in [
            (vec![host], true),
            (vec![host, ("origin", "http://127.0.0.1:7777")], true),
            (vec![host, ("origin", "https://127.0.0.1:7777")], true),
            (
                vec![host, ("referer", "http://127.0.0.1:7777/process?id=a")],
                true,
            ),
            (vec![host, ("referer", "http://127.0.0.1:7777?x")], true),
            (vec![host, ("sec-fetch-site", "same-origin")], true),
            (vec![host, ("origin", "http://evil.example")], false),
            (vec![host, ("origin", "http://127.0.0.1:7777.evil")], false),
            (vec![host, ("origin", "null")], false),
            (vec![host, ("referer", "http://evil.example/x")], false),
            (vec![host, ("sec-fetch-site", "cross-site")], false),
            (vec![host, ("sec-fetch-site", "same-site")], false),
            (vec![("origin", "http://127.0.0.1:7777")], false),
        ] {
            assert_eq!(same_origin(&uri, &with(&headers)), ok, "{headers:?}");
        }
    }
}
