//! What the pages show, over HTTP: live parts versioned by ETag, the kind
//! page's counts and its 404, each `select!` line's own callout, waits
//! without a timeout and abandoned timers in the timeline, collapsible and
//! cut JSON values, and the assets (favicon, dark mode, no emoji glyphs).
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use steadfast::{Backend, Host, HostBuilder, Process, SqliteStore, Status, StepFailed};
use steadfast_dashboard::{AppState, DashboardOptions, router};
use tower::ServiceExt;

/// Waits on a timer and two signals at once, each on its own line.
#[steadfast::process]
async fn race(p: Process, _input: String) -> Result<String, StepFailed> {
    let mut timer = p.sleep("long timer", Duration::from_secs(3600));
    let mut left = p.wait::<String>("left").into_future();
    let mut right = p.wait::<String>("right").into_future();
    let winner = tokio::select! {
        () = &mut timer => "timer".to_owned(),
        l = &mut left => l,
        r = &mut right => r,
    };
    Ok(winner)
}

/// Echoes its (large) input after one step.
#[steadfast::process]
async fn echo(p: Process, input: serde_json::Value) -> Result<serde_json::Value, StepFailed> {
    let v = input.clone();
    let out = p
        .step("echo", move || {
            let v = v.clone();
            async move { Ok::<_, std::io::Error>(v) }
        })
        .await?;
    Ok(out)
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Backend>,
    host: Host,
    app: axum::Router,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("race", race)
        .register("echo", echo)
        .poll_interval(Duration::from_millis(20))
        .build();
    let app = router(AppState::new(
        Arc::clone(&store),
        &DashboardOptions::default(),
    ));
    World {
        _dir: dir,
        store,
        host,
        app,
    }
}

async fn until_status(host: &Host, id: &str, status: Status) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while host.status(id).await.unwrap().status != status {
        assert!(Instant::now() < deadline, "{id} never became {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(app: &axum::Router, uri: &str, extra: &[(&str, &str)]) -> Response {
    let mut req = Request::get(uri).header(header::HOST, "127.0.0.1:7777");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(response: Response) -> String {
    String::from_utf8(to_bytes(response.into_body(), 1 << 24).await.unwrap().to_vec()).unwrap()
}

async fn page(app: &axum::Router, uri: &str) -> String {
    let res = get(app, uri, &[]).await;
    assert_eq!(res.status(), StatusCode::OK, "{uri}");
    text(res).await
}

/// The `<tr>` of source line `line` (up to its end).
fn row(html: &str, line: u32) -> &str {
    let start = html
        .find(&format!("id=\"L{line}\""))
        .unwrap_or_else(|| panic!("no row for line {line}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_parts_answer_304_until_something_changes() {
    let w = world().await;
    w.host.spawn("race", "r1", "x").await.unwrap();
    until_status(&w.host, "r1", Status::Suspended).await;

    let full = page(&w.app, "/process?id=r1").await;
    let res = get(&w.app, "/live/process?id=r1", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    // The page carries the same version, so its first poll is a 304.
    let version = etag.trim_matches('"');
    assert!(
        full.contains(&format!("data-version=\"{version}\"")),
        "the page's live part has version {version}"
    );
    let same = get(&w.app, "/live/process?id=r1", &[("if-none-match", &etag)]).await;
    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
    assert!(text(same).await.is_empty());

    // Something changes: a new version with the new content.
    w.host.signal("r1", "left", "left won").await.unwrap();
    until_status(&w.host, "r1", Status::Completed).await;
    let changed = get(&w.app, "/live/process?id=r1", &[("if-none-match", &etag)]).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()[header::ETAG].to_str().unwrap(), etag);
    assert!(text(changed).await.contains("data-status=\"completed\""));

    // The list and kind parts are versioned the same way.
    for uri in ["/live/list", "/live/kind?name=race"] {
        let res = get(&w.app, uri, &[]).await;
        let etag = res.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = get(&w.app, uri, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_page_counts_processes_and_each_line_names_its_own_wait() {
    let w = world().await;
    for id in ["r1", "r2"] {
        w.host.spawn("race", id, "x").await.unwrap();
        until_status(&w.host, id, Status::Suspended).await;
    }
    let record = w.host.status("r1").await.unwrap();
    assert_eq!(record.parked_at.len(), 3, "{:?}", record.parked_at);
    let [timer, left, right] = [0, 1, 2].map(|i| record.parked_at[i].line);

    // Two processes wait, each at three lines: two, not six.
    let kind = page(&w.app, "/kind?name=race").await;
    assert!(
        kind.contains("data-count=\"2\"") && kind.contains("2 waiting processes"),
        "{kind}"
    );
    // The page marks its busiest line to scroll to.
    assert!(kind.contains("busiest"), "{kind}");

    // Each line of the select! says what that line awaits, and only that.
    let html = page(&w.app, "/process?id=r1").await;
    let l = row(&html, left);
    assert!(l.contains("waits for “left”") && !l.contains("right"), "{l}");
    let r = row(&html, right);
    assert!(r.contains("waits for “right”") && !r.contains("“left”"), "{r}");
    let t = row(&html, timer);
    assert!(t.contains("timer “long timer” due") && !t.contains("left"), "{t}");

    // The waits without a timeout are in the timeline with name and line.
    for (signal, line) in [("left", left), ("right", right)] {
        let at = format!("{}:{line}", record.parked_at[0].file);
        let entry = html
            .split("<li ")
            .find(|li| li.contains(&format!("data-at=\"{at}\"")) && li.contains("tl-waiting"))
            .unwrap_or_else(|| panic!("no waiting entry at {at}"));
        assert!(entry.contains(&format!("“{signal}”")), "{entry}");
        assert!(entry.contains(&format!("line {line}")), "{entry}");
    }

    // When a signal wins, the timer select! dropped shows as abandoned.
    w.host.signal("r1", "right", "right won").await.unwrap();
    until_status(&w.host, "r1", Status::Completed).await;
    let html = page(&w.app, "/process?id=r1").await;
    let entry = html
        .split("<li ")
        .find(|li| li.contains("long timer") && li.contains("class=\"tl-"))
        .unwrap();
    assert!(entry.contains("tl-abandoned"), "{entry}");
    assert!(entry.contains("will never fire"), "{entry}");
    let kind = page(&w.app, "/kind?name=race").await;
    assert!(kind.contains("1 waiting process "), "{kind}");
}

#[tokio::test]
async fn an_unknown_kind_is_404() {
    let w = world().await;
    let res = get(&w.app, "/kind?name=no-such-kind", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body = text(res).await;
    assert!(body.contains("No such kind"), "{body}");
    assert!(!body.contains("Source not captured"), "{body}");
    assert_eq!(
        get(&w.app, "/live/kind?name=no-such-kind", &[])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_pretty_collapsible_copyable_and_cut_when_large() {
    let w = world().await;
    let small = serde_json::json!({ "order": 7, "items": ["a", "b"] });
    w.host.spawn("echo", "small", &small).await.unwrap();
    let big: Vec<String> = (0..2000).map(|i| format!("item number {i}")).collect();
    w.host.spawn("echo", "big", &big).await.unwrap();
    for id in ["small", "big"] {
        until_status(&w.host, id, Status::Completed).await;
    }
    let html = page(&w.app, "/process?id=small").await;
    // Pretty-printed (one key per line), in a details element, with a
    // copy button for it.
    assert!(html.contains("&quot;order&quot;: 7\n"), "{html}");
    assert!(html.contains("<details class=\"json\" open"), "{html}");
    assert!(html.contains("data-copy=\"v-input\"") && html.contains("id=\"v-input\""));

    let input_chars = serde_json::to_string_pretty(&big).unwrap().len();
    let res = get(&w.app, "/live/process?id=big", &[]).await;
    let live = text(res).await;
    assert!(
        live.contains("showing 4096 of"),
        "a large value is cut, saying so"
    );
    // Input, step outcome and output are each cut: the part stays small.
    assert!(
        live.len() < input_chars,
        "{} bytes for a {input_chars}-character value",
        live.len()
    );
    let details = live.matches("<details class=\"json\"").count();
    assert!(details >= 3, "input, step outcome and output: {details}");
    assert!(!live.contains("<details class=\"json\" open"), "long values start closed");
    // The whole value is in the JSON API.
    let api = text(get(&w.app, "/api/process?id=big", &[]).await).await;
    assert!(api.contains("item number 1999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn favicon_dark_mode_and_no_emoji_glyphs() {
    let w = world().await;
    w.host.spawn("race", "r1", "x").await.unwrap();
    until_status(&w.host, "r1", Status::Suspended).await;
    let res = get(&w.app, "/assets/favicon.svg", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "image/svg+xml");
    assert!(text(res).await.starts_with("<svg"));
    let css = text(get(&w.app, "/assets/dashboard.css", &[]).await).await;
    assert!(css.contains("@media (prefers-color-scheme: dark)"));
    assert!(css.contains("@media (max-width: 600px)"));

    let _ = &w.store;
    for uri in ["/", "/process?id=r1", "/kind?name=race", "/purge"] {
        let html = page(&w.app, uri).await;
        assert!(
            html.contains("rel=\"icon\" type=\"image/svg+xml\" href=\"/assets/favicon.svg\""),
            "{uri}"
        );
        assert!(html.contains("id=\"live-state\""), "{uri}: the live state is shown");
        // Symbols that only colour-emoji fonts draw (clocks, envelopes,
        // gears, no-entry signs, pictographs, the emoji selector).
        let emoji: Vec<char> = html
            .chars()
            .filter(|c| {
                matches!(*c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x26FF | 0x23E9..=0x23FA | 0x2709 | 0xFE0F)
            })
            .collect();
        assert!(emoji.is_empty(), "{uri}: {emoji:?}");
    }
}
