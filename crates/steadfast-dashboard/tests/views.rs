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
            async move { Ok(v) }
        })
        .await?;
    Ok(out)
}

/// Fails its first two attempts.
static FLAKY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Retries, a timer, a child, and one continue-as-new.
#[steadfast::process]
async fn saga(p: Process, round: u32) -> Result<String, String> {
    let _ = p.uuid("request id").await;
    if round == 0 {
        return p.continue_as_new(&1_u32).await;
    }
    let tries = p
        .step("flaky", || async {
            match FLAKY.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 | 1 => Err(std::io::Error::other("not yet").into()),
                n => Ok(n),
            }
        })
        .retry(steadfast::RetryPolicy::exponential(5).initial_delay(Duration::from_millis(1)))
        .await
        .map_err(|e| e.to_string())?;
    p.sleep("nap", Duration::from_millis(1)).await;
    let kid: serde_json::Value = p
        .child("kid", "echo", &"hi")
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{tries} {kid}"))
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Backend>,
    host: Host,
    app: axum::Router,
    csrf: String,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("race", race)
        .register("echo", echo)
        .register("saga", saga)
        .poll_interval(Duration::from_millis(20))
        .build();
    let state = AppState::new(
        Arc::clone(&store),
        &DashboardOptions::default().page_size(3),
    );
    let csrf = state.csrf_token().to_owned();
    World {
        _dir: dir,
        store,
        host,
        app: router(state),
        csrf,
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
    String::from_utf8(
        to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

async fn post(app: &axum::Router, uri: &str, form: &str) -> Response {
    let req = Request::post(uri)
        .header(header::HOST, "127.0.0.1:7777")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

/// The process ids of a list page, in order.
fn ids(html: &str) -> Vec<String> {
    html.split("<tr data-id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

/// The count shown for `status`.
fn count(html: &str, status: &str) -> String {
    let key = format!("data-status=\"{status}\">");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no count for {status}"))
        + key.len();
    html[at..at + html[at..].find('<').unwrap()].to_owned()
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
    assert!(
        l.contains("waits for “left”") && !l.contains("right"),
        "{l}"
    );
    let r = row(&html, right);
    assert!(
        r.contains("waits for “right”") && !r.contains("“left”"),
        "{r}"
    );
    let t = row(&html, timer);
    assert!(
        t.contains("timer “long timer” due") && !t.contains("left"),
        "{t}"
    );

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
    let small = serde_json::json!({ "order": 7, "items": ["a", "b"], "note": "long enough not to fit on one line of the page" });
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
    // A short value is inline, with its copy button.
    w.host.spawn("echo", "short", &"hi").await.unwrap();
    until_status(&w.host, "short", Status::Completed).await;
    let short = page(&w.app, "/process?id=short").await;
    assert!(
        short.contains(
            "<div class=\"json-inline\" data-key=\"v-input\"><code class=\"json\" id=\"v-input\""
        ),
        "{short}"
    );
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
    assert!(
        !live.contains("<details class=\"json\" open"),
        "long values start closed"
    );
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
        assert!(
            html.contains("id=\"live-state\""),
            "{uri}: the live state is shown"
        );
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

async fn idle(_p: Process, _input: String) -> Result<String, StepFailed> {
    Ok(String::new())
}

#[tokio::test]
async fn lists_sort_newest_first_search_count_by_filters_and_act_in_bulk() {
    let w = world().await;
    // Its host claims and blocks a kind it does not know: one blocked
    // process with a reason; then it stops.
    let client = HostBuilder::from_arc(Arc::clone(&w.store))
        .register("alpha", idle)
        .register("beta", idle)
        .register("gamma", idle)
        .build_client();
    client.spawn("gamma", "g-1", "x").await.unwrap();
    until_status(&w.host, "g-1", Status::Blocked).await;
    w.host.shutdown().await;
    for id in ["a-1", "a-2", "a-3", "b-1", "b-2"] {
        let kind = if id.starts_with('a') { "alpha" } else { "beta" };
        client.spawn(kind, id, "x").await.unwrap();
        // Distinct creation times, in spawn order.
        let created = client.status(id).await.unwrap().created_at;
        while steadfast::Timestamp::now_system() <= created {
            tokio::task::yield_now().await;
        }
    }
    client.cancel("b-2").await.unwrap();
    let app = &w.app;

    // Newest first by default (page size 3), then the next page.
    let html = page(app, "/").await;
    assert_eq!(ids(&html), ["b-2", "b-1", "a-3"]);
    assert!(html.contains("href=\"/?page=1\""), "next page link");
    assert_eq!(ids(&page(app, "/?page=1").await), ["a-2", "a-1", "g-1"]);
    // Sortable columns: oldest first, by id descending, by status.
    assert_eq!(
        ids(&page(app, "/?sort=created&order=asc").await),
        ["g-1", "a-1", "a-2"]
    );
    assert_eq!(
        ids(&page(app, "/?sort=id&order=desc").await),
        ["g-1", "b-2", "b-1"]
    );
    assert_eq!(
        ids(&page(app, "/?sort=status&order=asc").await)[..2],
        ["g-1", "b-2"]
    );
    assert!(
        html.contains("href=\"/?sort=created&amp;order=asc\""),
        "the sorted column flips"
    );
    // Times are relative, with the UTC time on hover.
    assert!(html.contains("data-rel") && html.contains(" UTC\""));

    // Counts follow the filters.
    let html = page(app, "/?kind=beta").await;
    assert_eq!(
        (count(&html, "running"), count(&html, "cancelled")),
        ("1".into(), "1".into())
    );
    let html = page(app, "/?search=-2").await;
    assert_eq!(ids(&html), ["b-2", "a-2"]);
    assert_eq!(
        (count(&html, "running"), count(&html, "cancelled")),
        ("1".into(), "1".into())
    );
    let html = page(app, "/?search=A-&status=running").await;
    assert_eq!(ids(&html), ["a-3", "a-2", "a-1"], "id search ignores case");
    assert_eq!(count(&html, "cancelled"), "0");
    // By the blocked or error reason, and by creation time.
    let reason = client.status("g-1").await.unwrap().error.unwrap();
    assert!(reason.contains("gamma"), "{reason}");
    assert_eq!(ids(&page(app, "/?reason=GAMMA").await), ["g-1"]);
    assert!(ids(&page(app, "/?from=2099-01-01T00:00").await).is_empty());
    assert_eq!(
        ids(&page(app, "/?to=2099-01-01T00:00&kind=alpha").await).len(),
        3
    );
    let html = page(app, "/?from=yesterday").await;
    assert!(html.contains("is not a time like"), "a bad time is named");

    // The kinds page counts per status.
    let html = page(app, "/kinds").await;
    let beta = &html[html.find("data-kind=\"beta\"").unwrap()..];
    assert!(beta.contains("data-status=\"cancelled\">1<"), "{beta}");
    assert!(html.contains("data-kind=\"alpha\""));

    // Bulk cancel of a filtered set: asked first, nothing changed ...
    let form = format!("kind=alpha&search=a-&action=cancel&csrf={}", w.csrf);
    let res = post(app, "/actions/bulk", &form).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ask = text(res).await;
    assert!(ask.contains("Cancel 3 processes?"), "{ask}");
    assert!(ask.contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(client.status("a-1").await.unwrap().status, Status::Running);
    // ... then done, for exactly the matching ones.
    let res = post(app, "/actions/bulk", &format!("{form}&confirm=yes")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(text(res).await.contains("cancel requested for 3 of 3"));
    for id in ["a-1", "a-2", "a-3"] {
        assert_eq!(
            client.status(id).await.unwrap().status,
            Status::Cancelled,
            "{id}"
        );
    }
    assert_eq!(client.status("b-1").await.unwrap().status, Status::Running);
    // An unknown action changes nothing.
    let res = post(
        app,
        "/actions/bulk",
        &format!("kind=beta&action=purge&confirm=yes&csrf={}", w.csrf),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(client.status("b-1").await.unwrap().status, Status::Running);
}

/// The `<li>` entries of the timeline.
fn entries(html: &str) -> Vec<&str> {
    let start = html.find("<ol class=\"timeline\">").expect("a timeline");
    let end = html[start..].find("</ol>").unwrap() + start;
    html[start..end].split("<li ").skip(1).collect()
}

fn entry<'a>(html: &'a str, class: &str, name: &str) -> &'a str {
    entries(html)
        .into_iter()
        .find(|li| li.contains(&format!("tl-{class}")) && li.contains(name))
        .unwrap_or_else(|| panic!("no {class} entry for {name} in {html}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_tells_the_whole_history() {
    let w = world().await;
    w.host.spawn("saga", "saga-1", &0_u32).await.unwrap();
    until_status(&w.host, "saga-1", Status::Completed).await;
    let html = page(&w.app, "/process?id=saga-1").await;
    // Spawned, the earlier generation, retries, the timer, the child, the end.
    assert!(entry(&html, "spawned", "saga").contains("generation 1"));
    assert!(
        entry(&html, "generation", "generation 0")
            .contains("continued as new after 1 journal entries")
    );
    let flaky = entry(&html, "step", "flaky");
    assert!(flaky.contains("3 attempts (2 retries)"), "{flaky}");
    assert!(
        flaky.contains("data-at=\"crates/steadfast-dashboard/tests/views.rs:"),
        "{flaky}"
    );
    assert!(flaky.contains("class=\"bar b-span\""), "{flaky}");
    assert!(entry(&html, "timer", "nap").contains("scheduled"));
    entry(&html, "fired", "nap");
    let child = entry(&html, "child", "kid: spawned");
    assert!(
        child.contains("href=\"/process?id=saga-1%2Fkid\""),
        "{child}"
    );
    entry(&html, "consumed", "kid");
    entry(&html, "completed", "epoch");
    // Every entry with a line says so, and the line counts its entries.
    let line = flaky.split("data-at=\"").nth(1).unwrap();
    let line = &line[..line.find('"').unwrap()];
    let line = line.rsplit(':').next().unwrap();
    let row = &html[html.find(&format!("id=\"L{line}\"")).unwrap()..];
    assert!(
        row[..row.find('>').unwrap()].contains("1 timeline entries at this line"),
        "{row}"
    );

    // A block with its reason, and a cancel.
    let client = HostBuilder::from_arc(Arc::clone(&w.store))
        .register("gamma", idle)
        .build_client();
    client.spawn("gamma", "g-1", "x").await.unwrap();
    until_status(&w.host, "g-1", Status::Blocked).await;
    let html = page(&w.app, "/process?id=g-1").await;
    let blocked = entry(&html, "blocked", "");
    assert!(
        blocked.contains("tl-reason") && blocked.contains("gamma"),
        "{blocked}"
    );
    w.host.spawn("race", "r1", "x").await.unwrap();
    until_status(&w.host, "r1", Status::Suspended).await;
    w.host.cancel("r1").await.unwrap();
    until_status(&w.host, "r1", Status::Cancelled).await;
    let html = page(&w.app, "/process?id=r1").await;
    entry(&html, "cancelled", "");
    // The timer select! was waiting on is abandoned now.
    entry(&html, "abandoned", "long timer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_lists_signals_pending_rejected_and_consumed() {
    let w = world().await;
    w.host.spawn("race", "r1", "x").await.unwrap();
    until_status(&w.host, "r1", Status::Suspended).await;
    let left = w.host.status("r1").await.unwrap().parked_at[1].clone();

    // A signal nobody waits for stays pending; one whose payload does not
    // fit the wait (a number for a String) is rejected with the reason.
    w.host.signal("r1", "later", &1_u32).await.unwrap();
    w.host.signal("r1", "left", &5_u32).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let html = loop {
        let html = page(&w.app, "/process?id=r1").await;
        if html.contains("tl-rejected") {
            break html;
        }
        assert!(Instant::now() < deadline, "the signal was never rejected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rejected = entry(&html, "rejected", "signal “left”");
    assert!(rejected.contains("tl-reason"), "{rejected}");
    assert!(
        rejected.contains("<code class=\"json\""),
        "the payload: {rejected}"
    );
    let pending = entry(&html, "pending", "signal “later”");
    assert!(pending.contains("no wait has taken it yet"), "{pending}");

    // The right payload is consumed by the wait at its line.
    w.host.signal("r1", "left", &"hello").await.unwrap();
    until_status(&w.host, "r1", Status::Completed).await;
    let html = page(&w.app, "/process?id=r1").await;
    let received = entry(&html, "received", "signal “left”");
    assert!(received.contains("taken by the wait “left”"), "{received}");
    assert!(
        received.contains(&format!("data-at=\"{}:{}\"", left.file, left.line)),
        "{received}"
    );
    entry(&html, "consumed", "left");
    entry(&html, "rejected", "signal “left”");
    entry(&html, "pending", "signal “later”");
}
