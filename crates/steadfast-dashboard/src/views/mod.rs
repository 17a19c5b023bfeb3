//! HTML views, rendered with maud (which escapes every interpolated value;
//! nothing here wraps user data in `PreEscaped`: only markup maud rendered
//! itself is embedded again, by [`live_box`]).

pub mod bulk;
pub mod kind;
pub mod list;
pub mod messages;
pub mod process;
pub mod source;
pub mod subscriptions;
pub mod timeline;

use std::time::Duration;

use std::hash::{Hash, Hasher};

use maud::{DOCTYPE, Markup, PreEscaped, html};
use steadfast::{Status, Timestamp};

/// What the frame around every page needs.
pub struct Frame<'a> {
    /// The CSRF token the page's forms and scripts send.
    pub csrf: &'a str,
    /// How often the page polls for changes.
    pub poll: Duration,
    /// Whether the top bar has a "Log out" button (an access token is
    /// configured and the page is not the login form).
    pub logout: bool,
}

/// A whole page: head with the CSRF token and the poll interval, the top
/// bar, and `body`.
pub fn page(title: &str, frame: &Frame<'_>, body: Markup) -> Markup {
    let Frame { csrf, poll, logout } = *frame;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(csrf);
                meta name="poll-ms" content=(poll.as_millis());
                title { (title) " · Steadfast" }
                link rel="icon" type="image/svg+xml" href="/assets/favicon.svg";
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Steadfast" }
                    nav {
                        a href="/" { "Processes" }
                        a href="/kinds" { "Kinds" }
                        a href="/subscriptions" { "Subscriptions" }
                        a href="/purge" { "Purge" }
                        a href="/metrics" { "Metrics" }
                    }
                    @if logout {
                        form.logout method="post" action="/logout" {
                            (csrf_field(csrf))
                            button type="submit" { "Log out" }
                        }
                    }
                    span.live-state { span.live-dot {} " " span #live-state { "static" } }
                }
                main { (body) }
            }
        }
    }
}

/// A page with only a message (errors, confirmations done).
pub fn message(title: &str, frame: &Frame<'_>, text: &str, back: &str) -> Markup {
    page(
        title,
        frame,
        html! {
            h1 { (title) }
            p.notice { (text) }
            p { a href=(back) { "Back" } }
        },
    )
}

/// `path?k=v&…` with the values URL-encoded; empty values are left out.
pub fn url(path: &str, params: &[(&str, &str)]) -> String {
    let params: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    match serde_urlencoded::to_string(&params) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

/// The link to a process page.
pub fn process_url(id: &str) -> String {
    url("/process", &[("id", id)])
}

/// The link to a kind page.
pub fn kind_url(kind: &str) -> String {
    url("/kind", &[("name", kind)])
}

/// A status as a coloured badge.
pub fn status_badge(status: Status) -> Markup {
    html! { span class={ "badge st-" (status.as_str()) } { (status.as_str()) } }
}

/// A timestamp shown relative to now by the page's script ("3 min ago",
/// "in 20 s"), the absolute UTC time as text until then and as tooltip.
pub fn rel_time(t: Timestamp) -> Markup {
    let full = t.to_string();
    let short = full.get(..19).unwrap_or(&full).replace('T', " ");
    html! { time datetime=(full) title={ (short) " UTC" } data-rel { (short) " UTC" } }
}

/// How far ahead of this machine a host's clock runs before the pages say
/// so (demos run on a fast clock).
pub const CLOCK_NOTE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// A note when `latest` (the newest time a host wrote) is ahead of `now`
/// (this dashboard's clock) by more than [`CLOCK_NOTE_AFTER`].
pub fn clock_note(latest: Option<Timestamp>, now: Timestamp) -> Markup {
    let ahead = latest.map(|t| t.saturating_since(now));
    html! {
        @if let Some(ahead) = ahead.filter(|a| *a > CLOCK_NOTE_AFTER) {
            p.clock-note data-ahead-ms=(ahead.as_millis()) {
                "A host's clock runs " (duration(ahead)) " ahead of this dashboard's (a demo on a fast clock?): "
                "its times show as in the future."
            }
        }
    }
}

/// The version of a rendered live part: its ETag (quotes left out), the
/// same whether the part was rendered into the page or served alone, so the
/// page's script asks for it with `If-None-Match` and gets `304` until
/// something shown changes.
pub fn version_of(html: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    html.hash(&mut hasher);
    format!("{:016x}-{:x}", hasher.finish(), html.len())
}

/// The self-refreshing box around `part`: polled at `live_url`, with the
/// part's version.
pub fn live_box(live_url: &str, part: Markup) -> Markup {
    let part = part.into_string();
    html! {
        div #live data-live=(live_url) data-version=(version_of(&part)) { (PreEscaped(part)) }
    }
}

/// A duration for people: `850 µs`, `12 ms`, `3.2 s`, `4 min`, `2.5 h`, `3 d`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.001 {
        format!("{} µs", d.as_micros())
    } else if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn preview(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// JSON text pretty-printed when it parses, as is otherwise.
pub fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.to_owned())
}

/// At most this many characters of a value go into a page (and into every
/// refresh of it); the JSON API has the whole value.
pub const VALUE_PREVIEW: usize = 4096;

/// Values at most this long (on one line) are shown inline.
const INLINE_VALUE: usize = 80;

/// A JSON value: short ones inline, longer ones pretty-printed in a
/// collapsible block (open when short); both with a copy button. Values
/// longer than [`VALUE_PREVIEW`] are cut, saying so. `id` must be unique on
/// the page.
pub fn json_value(id: &str, label: &str, text: &str) -> Markup {
    let compact = serde_json::from_str::<serde_json::Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| text.to_owned());
    if compact.len() <= INLINE_VALUE && !compact.contains('\n') {
        return html! {
            div.json-inline data-key=(id) {
                code.json id=(id) title=(label) { (compact) }
                " " button.small.copy type="button" data-copy=(id) title="copy the value" { "copy" }
            }
        };
    }
    let pretty = pretty_json(text);
    let total = pretty.chars().count();
    let shown = preview(&pretty, VALUE_PREVIEW);
    let lines = shown.lines().count();
    let summary = preview(&text.split_whitespace().collect::<Vec<_>>().join(" "), 100);
    html! {
        details.json open[lines <= 12] data-key=(id) {
            summary title=(label) { (summary) }
            div.json-tools {
                button.small.copy type="button" data-copy=(id) { "copy" }
                @if total > VALUE_PREVIEW {
                    span.truncated { "showing " (VALUE_PREVIEW) " of " (total) " characters; the JSON API has the whole value" }
                }
            }
            pre.json id=(id) { (shown) }
        }
    }
}

/// The hidden CSRF field of every form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(url("/p", &[("id", "a b&c"), ("x", "")]), "/p?id=a+b%26c");
        assert_eq!(preview("héllo", 2), "hé…");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5 s");
        let t = rel_time(Timestamp::from_micros(1_000_000)).into_string();
        assert!(t.contains("1970-01-01 00:00:01 UTC"), "{t}");
        assert!(t.contains("data-rel"), "{t}");
    }
}
