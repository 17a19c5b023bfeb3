//! HTTP-level tests: escaping, paging and filters, signal validation,
//! rewind confirmation, metrics; and the access checks, table-driven over
//! every route of [`route_list`]: the host check (DNS rebinding), the
//! access token and the login form, the failed-login throttle, CSRF and
//! origin on every POST route, each refusal leaving the store unchanged.
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use steadfast::testing::VirtualClock;
use steadfast::{
    Backend, HostBuilder, ListFilter, Process, SqliteStore, StepError, StepFailed, Timestamp,
};
use steadfast_dashboard::{
    AppState, DashboardOptions, FIRST_LOCK, FREE_FAILURES, MIN_TOKEN_CHARS, Route, SESSION_TTL,
    route_list, router,
};
use tower::ServiceExt;

const EVIL: &str = "<script>window.__xss=1</script>";

#[steadfast::process]
async fn evil(p: Process, input: String) -> Result<String, StepFailed> {
    let echoed: String = p
        .step("<script>window.__xss=1</script>", move || {
            let input = input.clone();
            async move { Ok(input) }
        })
        .await?;
    Ok(echoed)
}

async fn idle(_p: Process, _input: String) -> Result<String, StepFailed> {
    Ok(String::new())
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Backend>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    Fixture { _dir: dir, store }
}

fn app(store: &Arc<dyn Backend>, options: DashboardOptions) -> (axum::Router, String) {
    // The kind `idle` is known, so `POST /api/v1/processes` can spawn it.
    let host = HostBuilder::from_arc(Arc::clone(store))
        .register("idle", idle)
        .build_client();
    let state = AppState::with_host(Arc::clone(store), host, &options);
    let csrf = state.csrf_token().to_owned();
    (router(state), csrf)
}

/// The `Host` the tests' requests carry unless they set one.
const HOST: &str = "127.0.0.1:7777";
/// Their `Origin` when they claim to come from the dashboard's pages.
const ORIGIN: &str = "http://127.0.0.1:7777";

/// A request with `Host: HOST` unless `extra` names a host; a POST body is
/// an urlencoded form, or JSON for the HTTP API's routes (`/api/v1/…`,
/// whose `{id}` is filled in by [`uri_for`]) unless `extra` sets the
/// content type.
fn request(method: Method, uri: &str, form: Option<&str>, extra: &[(&str, &str)]) -> Request<Body> {
    let uri = uri_for(uri);
    let mut req = Request::builder().method(method).uri(&uri);
    if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header(header::HOST, HOST);
    }
    let typed = extra
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if form.is_some() && !typed {
        let content_type = if is_api(&uri) {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        req = req.header(header::CONTENT_TYPE, content_type);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.body(Body::from(form.unwrap_or_default().to_owned()))
        .unwrap()
}

async fn send(app: &axum::Router, req: Request<Body>) -> Response {
    app.clone().oneshot(req).await.unwrap()
}

async fn get(app: &axum::Router, uri: &str) -> Response {
    send(app, request(Method::GET, uri, None, &[])).await
}

async fn post(app: &axum::Router, uri: &str, form: &str, extra: &[(&str, &str)]) -> Response {
    send(app, request(Method::POST, uri, Some(form), extra)).await
}

async fn text(response: Response) -> String {
    String::from_utf8(
        to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_owned()
}

#[tokio::test]
async fn user_data_is_escaped_everywhere() {
    let f = fixture().await;
    let host = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("<b>evil</b>", evil)
        .build();
    let id = "x<script>alert(1)</script>";
    host.spawn("<b>evil</b>", id, EVIL).await.unwrap();
    let out: String = host.outcome(id).await.unwrap();
    assert_eq!(out, EVIL);
    let (app, _) = app(&f.store, DashboardOptions::default());

    for uri in [
        format!("/process?id={}", enc(id)),
        format!("/live/process?id={}", enc(id)),
        "/".to_owned(),
        format!("/kind?name={}", enc("<b>evil</b>")),
    ] {
        let res = get(&app, &uri).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert!(
            res.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = text(res).await;
        assert!(
            !body.contains("<script>window"),
            "{uri}: raw script in {body}"
        );
        assert!(!body.contains("<script>alert"), "{uri}: raw script");
        assert!(!body.contains("<b>evil"), "{uri}: raw tag");
        assert!(
            body.contains("&lt;script&gt;") || body.contains("&lt;b&gt;evil"),
            "{uri}"
        );
    }
    let body = text(get(&app, &format!("/process?id={}", enc(id))).await).await;
    // The step name, and the payload (input and outcome), shown escaped.
    assert!(body.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"));
    // The JSON API is JSON.
    let res = get(&app, &format!("/api/process?id={}", enc(id))).await;
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    host.shutdown().await;
}

#[tokio::test]
async fn mutations_need_the_csrf_token_and_same_origin() {
    let f = fixture().await;
    let host = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("idle", idle)
        .build_client();
    host.spawn("idle", "p1", "x").await.unwrap();
    let (app, csrf) = app(&f.store, DashboardOptions::default());

    let res = post(&app, "/actions/cancel", "id=p1", &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(&app, "/actions/cancel", "id=p1&csrf=wrong", &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let form = format!("id=p1&csrf={csrf}");
    let res = post(
        &app,
        "/actions/cancel",
        &form,
        &[
            ("host", "127.0.0.1:7777"),
            ("origin", "http://evil.example"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        host.status("p1").await.unwrap().status,
        steadfast::Status::Running
    );

    let res = post(
        &app,
        "/actions/cancel",
        &form,
        &[
            ("host", "127.0.0.1:7777"),
            ("origin", "http://127.0.0.1:7777"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        host.status("p1").await.unwrap().status,
        steadfast::Status::Cancelled
    );
    // The header works as well as the form field (used by the scripts).
    let res = post(
        &app,
        "/actions/retry",
        "id=p1",
        &[("x-csrf-token", &csrf), ("accept", "application/json")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    assert!(text(res).await.contains("\"ok\":false"));
}

// ---- Access checks -------------------------------------------------------

/// An access token long enough for any address.
const TOKEN: &str = "0123456789abcdef0123456789abcdef-right";
/// A host name a rebinding page would send.
const REBOUND: &str = "rebind.attacker.example:7777";

async fn done(p: Process, _input: String) -> Result<String, StepFailed> {
    p.step("s", || async { Ok(1_u32) }).await?;
    Ok("done".to_owned())
}

async fn doomed(p: Process, _input: String) -> Result<String, StepFailed> {
    p.step("doom", || async {
        Err::<u32, _>(StepError::permanent("fails for the retry button"))
    })
    .await?;
    Ok(String::new())
}

/// A store with a process for each action to change: `p1` running (signal,
/// cancel), `f1` failed (retry), `d1` completed with its step `s` (rewind,
/// purge).
async fn world() -> Fixture {
    let f = fixture().await;
    let host = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("done", done)
        .register("doomed", doomed)
        .build();
    host.spawn("done", "d1", "x").await.unwrap();
    host.spawn("doomed", "f1", "x").await.unwrap();
    let _: String = host.outcome("d1").await.unwrap();
    assert!(host.outcome::<String>("f1").await.is_err());
    host.shutdown().await;
    let client = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("idle", idle)
        .build_client();
    client.spawn("idle", "p1", "x").await.unwrap();
    // A pending signal for the discard action to drop.
    client.signal("p1", "held", &1_u32).await.unwrap();
    let pending = f.store.pending_signals(&"p1".parse_id()).await.unwrap();
    assert_eq!(
        pending.first().map(|s| s.id),
        Some(1),
        "form_for discards signal 1"
    );
    f
}

/// Everything an action can change: every process, its journal and its
/// pending signals.
async fn snapshot(store: &Arc<dyn Backend>) -> String {
    let filter = ListFilter {
        limit: 1000,
        ..ListFilter::default()
    };
    let mut out = String::new();
    for row in store.list(&filter).await.unwrap() {
        let record = row.into_record().expect("every row decodes");
        let journal = store.journal(&record.id).await.unwrap();
        let pending = store.pending_signals(&record.id).await.unwrap();
        for part in [
            serde_json::to_string(&record).unwrap(),
            serde_json::to_string(&journal).unwrap(),
            serde_json::to_string(&pending).unwrap(),
        ] {
            out.push_str(&part);
            out.push('\n');
        }
    }
    assert!(out.contains("\"p1\""), "the snapshot sees the processes");
    out
}

/// Whether `uri` is a route of the HTTP API.
fn is_api(uri: &str) -> bool {
    uri.starts_with("/api/v1/")
}

/// `path` with the HTTP API's `{id}` filled in: the process its action
/// changes in the [`world`] (`f1` for retry, `p1` otherwise).
fn uri_for(path: &str) -> String {
    let id = if path.ends_with("/retry") { "f1" } else { "p1" };
    path.replace("{id}", id)
}

/// A form for `route` that changes the [`world`] when it gets through (a
/// JSON body for the HTTP API's routes).
fn form_for(path: &str) -> &'static str {
    match path {
        "/api/v1/processes" => r#"{"kind": "idle", "id": "new-1", "input": "x"}"#,
        "/api/v1/processes/{id}/signals" => r#"{"name": "go", "payload": 1}"#,
        "/api/v1/processes/{id}/cancel" | "/api/v1/processes/{id}/retry" => "{}",
        "/actions/signal" => "id=p1&name=go&payload=1",
        "/actions/cancel" => "id=p1",
        "/actions/retry" => "id=f1",
        "/actions/rewind" => "id=d1&step=s&confirm=yes",
        "/actions/purge" => "hours=0&confirm=yes",
        "/actions/bulk" => "kind=idle&action=cancel&confirm=yes",
        "/actions/discard-signal" => "id=p1&signal=1",
        "/login" => "token=not-the-token",
        "/logout" => "",
        other => panic!(
            "no form for POST {other}: add one to form_for so the access tests cover the route"
        ),
    }
}

/// The form for `path` with the CSRF token (the HTTP API's JSON bodies
/// carry none: its routes need `Content-Type: application/json` instead).
fn with_csrf(path: &str, csrf: &str) -> String {
    if is_api(path) {
        form_for(path).to_owned()
    } else {
        format!("{}&csrf={csrf}", form_for(path))
    }
}

/// The routes that change the store: all POST routes but the login form
/// and logging out (which change sessions: see their own tests).
fn action_routes() -> Vec<Route> {
    let routes: Vec<Route> = route_list()
        .into_iter()
        .filter(|r| r.method == Method::POST && r.path != "/login" && r.path != "/logout")
        .collect();
    for known in [
        "/actions/signal",
        "/actions/cancel",
        "/actions/retry",
        "/actions/rewind",
        "/actions/purge",
        "/actions/bulk",
        "/actions/discard-signal",
    ] {
        assert!(routes.iter().any(|r| r.path == known), "{known} is listed");
    }
    routes
}

/// `req` as if it came from `ip` (the failed-login throttle counts by it).
fn from_ip(mut req: Request<Body>, ip: [u8; 4]) -> Request<Body> {
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    req
}

/// A fresh client address per call, so throttling does not mix into
/// tests of other refusals.
fn fresh_ip() -> [u8; 4] {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    [10, (n >> 16) as u8, (n >> 8) as u8, n as u8]
}

/// Logs in through the form and returns the `Cookie` header to send.
async fn login(app: &axum::Router) -> String {
    let res = send(
        app,
        from_ip(
            request(
                Method::POST,
                "/login",
                Some(&format!("token={}", enc(TOKEN))),
                &[("origin", ORIGIN)],
            ),
            fresh_ip(),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

fn token_options() -> DashboardOptions {
    DashboardOptions::default().token(Some(TOKEN.to_owned()))
}

#[tokio::test]
async fn foreign_hosts_are_refused_on_every_route() {
    let f = world().await;
    let (app, csrf) = app(&f.store, DashboardOptions::default());
    let before = snapshot(&f.store).await;
    let mut routes: Vec<(Method, &str)> = route_list()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    routes.push((Method::GET, "/no-such-page"));
    routes.push((Method::HEAD, "/"));
    for (method, path) in routes {
        for host in [
            REBOUND,
            "localhost.attacker.example",
            "127.0.0.1.nip.io:7777",
        ] {
            // Everything a rebinding page could send: its own Host and
            // Origin, and the CSRF token had it read one.
            let origin = format!("http://{host}");
            let form = (method == Method::POST).then(|| with_csrf(path, &csrf));
            let req = request(
                method.clone(),
                path,
                form.as_deref(),
                &[("host", host), ("origin", &origin)],
            );
            let res = send(&app, req).await;
            let what = format!("{method} {path} with Host {host}");
            assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST, "{what}");
            let body = text(res).await;
            assert!(!body.contains(&csrf), "{what}: the CSRF token leaked");
            if method != Method::HEAD {
                assert!(body.contains("DNS rebinding"), "{what}: {body}");
            }
        }
    }
    assert_eq!(snapshot(&f.store).await, before, "nothing changed");

    // The names the dashboard is known by are answered, with any port.
    for host in [
        "127.0.0.1:7777",
        "127.0.0.1",
        "localhost",
        "localhost:7777",
        "LocalHost.:8080",
        "[::1]:7777",
        "[::1]",
    ] {
        let res = send(&app, request(Method::GET, "/", None, &[("host", host)])).await;
        assert_eq!(res.status(), StatusCode::OK, "Host {host}");
    }
    // No host at all, or a foreign one in an absolute request target.
    let res = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
    let absolute = request(Method::GET, "http://evil.example/", None, &[]);
    assert_eq!(
        send(&app, absolute).await.status(),
        StatusCode::MISDIRECTED_REQUEST
    );
}

#[tokio::test]
async fn allowed_names_and_the_bound_address_are_answered() {
    let f = fixture().await;
    let options = DashboardOptions::default()
        .bind("127.0.0.2:9000".parse().unwrap())
        .allow_host("Dash.Example.com");
    let (app, _) = app(&f.store, options);
    for (host, status) in [
        ("127.0.0.2:9000", StatusCode::OK),
        ("dash.example.com", StatusCode::OK),
        ("dash.example.com:443", StatusCode::OK),
        ("localhost:9000", StatusCode::OK),
        ("other.example.com", StatusCode::MISDIRECTED_REQUEST),
        (
            "dash.example.com.evil.example",
            StatusCode::MISDIRECTED_REQUEST,
        ),
    ] {
        for uri in ["/api/counts", "/metrics"] {
            let res = send(&app, request(Method::GET, uri, None, &[("host", host)])).await;
            assert_eq!(res.status(), status, "{uri} with Host {host}");
        }
    }
}

#[tokio::test]
async fn with_a_token_the_host_is_checked_only_when_names_are_allowed() {
    let f = fixture().await;
    let bearer = format!("Bearer {TOKEN}");
    // A token alone: any Host (a rebinding page has no session and no
    // token; a proxy or the machine's own name needs no --allow-host).
    let (open, _) = app(&f.store, token_options());
    let req = request(
        Method::GET,
        "/api/counts",
        None,
        &[("host", REBOUND), ("authorization", &bearer)],
    );
    assert_eq!(send(&open, req).await.status(), StatusCode::OK);
    let req = request(Method::GET, "/api/counts", None, &[("host", REBOUND)]);
    assert_eq!(send(&open, req).await.status(), StatusCode::UNAUTHORIZED);
    // A token and allowed names: the host check applies, before the token.
    let (checked, _) = app(&f.store, token_options().allow_host("dash.example.com"));
    for (host, status) in [
        (REBOUND, StatusCode::MISDIRECTED_REQUEST),
        ("dash.example.com", StatusCode::OK),
        ("localhost", StatusCode::OK),
    ] {
        let req = request(
            Method::GET,
            "/api/counts",
            None,
            &[("host", host), ("authorization", &bearer)],
        );
        assert_eq!(send(&checked, req).await.status(), status, "Host {host}");
    }
}

#[tokio::test]
async fn a_real_server_refuses_a_rebound_host() {
    let f = world().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(steadfast_dashboard::serve_on(
        listener,
        Arc::clone(&f.store),
        DashboardOptions::default(),
    ));
    // What `curl -H 'Host: …' http://127.0.0.1:PORT/` sends.
    let raw = |host: String| {
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            stream.write_all(req.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
    };
    let answer = raw(format!("rebind.attacker.example:{}", addr.port()))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    assert!(!answer.contains("csrf-token"), "{answer}");
    let answer = raw(addr.to_string()).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("csrf-token"), "{answer}");
    server.abort();
}

/// How a request may fail to prove it comes from the dashboard's pages.
struct CsrfRow {
    what: &'static str,
    /// The CSRF token sent: none, a wrong one, or the right one; in the
    /// form or in the `X-CSRF-Token` header.
    csrf: Csrf,
    headers: &'static [(&'static str, &'static str)],
}

#[derive(Clone, Copy)]
enum Csrf {
    Missing,
    WrongField,
    WrongHeader,
    RightField,
    RightHeader,
}

const CROSS_SITE: &[CsrfRow] = &[
    CsrfRow {
        what: "no CSRF token",
        csrf: Csrf::Missing,
        headers: &[("origin", ORIGIN)],
    },
    CsrfRow {
        what: "a wrong CSRF token",
        csrf: Csrf::WrongField,
        headers: &[("origin", ORIGIN)],
    },
    CsrfRow {
        what: "a wrong CSRF header",
        csrf: Csrf::WrongHeader,
        headers: &[("origin", ORIGIN)],
    },
    CsrfRow {
        what: "a cross-origin Origin",
        csrf: Csrf::RightField,
        headers: &[("origin", "http://evil.example")],
    },
    CsrfRow {
        what: "a look-alike Origin",
        csrf: Csrf::RightField,
        headers: &[("origin", "http://127.0.0.1:7777.evil.example")],
    },
    CsrfRow {
        what: "a cross-origin Origin and the CSRF header",
        csrf: Csrf::RightHeader,
        headers: &[("origin", "http://evil.example")],
    },
    CsrfRow {
        what: "Origin: null",
        csrf: Csrf::RightField,
        headers: &[("origin", "null")],
    },
    CsrfRow {
        what: "a foreign Referer only",
        csrf: Csrf::RightField,
        headers: &[("referer", "http://evil.example/page.html")],
    },
    CsrfRow {
        what: "Sec-Fetch-Site: cross-site",
        csrf: Csrf::RightField,
        headers: &[("origin", ORIGIN), ("sec-fetch-site", "cross-site")],
    },
];

/// The request of `row` to `route`, with the session `cookie` if any.
///
/// The HTTP API's routes need `Content-Type: application/json` instead of
/// the CSRF token (another site's page cannot send that without a CORS
/// preflight): a row that only lacks the right token is sent to them as
/// the urlencoded form such a page could send.
fn csrf_request(route: &Route, row: &CsrfRow, csrf: &str, cookie: Option<&str>) -> Request<Body> {
    let mut form = form_for(route.path).to_owned();
    let mut headers: Vec<(&str, &str)> = row.headers.to_vec();
    let api = is_api(route.path);
    match row.csrf {
        Csrf::Missing | Csrf::WrongField | Csrf::WrongHeader if api => {
            form = "id=p1&name=go&payload=1".to_owned();
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        Csrf::RightField | Csrf::RightHeader if api => {}
        Csrf::Missing => {}
        Csrf::WrongField => form.push_str("&csrf=0123456789abcdef"),
        Csrf::WrongHeader => headers.push(("x-csrf-token", "0123456789abcdef")),
        Csrf::RightField => form.push_str(&format!("&csrf={csrf}")),
        Csrf::RightHeader => headers.push(("x-csrf-token", csrf)),
    }
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    request(Method::POST, route.path, Some(&form), &headers)
}

#[tokio::test]
async fn every_action_refuses_cross_site_requests_and_changes_nothing() {
    for with_token in [false, true] {
        for route in action_routes() {
            let f = world().await;
            let options = if with_token {
                token_options()
            } else {
                DashboardOptions::default()
            };
            let (app, csrf) = app(&f.store, options);
            let cookie = if with_token {
                Some(login(&app).await)
            } else {
                None
            };
            let before = snapshot(&f.store).await;
            for row in CROSS_SITE {
                let what = format!(
                    "POST {} with {} (token: {with_token})",
                    route.path, row.what
                );
                let res = send(&app, csrf_request(&route, row, &csrf, cookie.as_deref())).await;
                let refused = if is_api(route.path)
                    && matches!(
                        row.csrf,
                        Csrf::Missing | Csrf::WrongField | Csrf::WrongHeader
                    ) {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(res.status(), refused, "{what}");
                assert_eq!(snapshot(&f.store).await, before, "{what} changed the store");
            }
            // From the dashboard's own page the same form goes through and
            // changes the store: the refusals were the checks' doing.
            let ok = CsrfRow {
                what: "same origin",
                csrf: Csrf::RightField,
                headers: &[("origin", ORIGIN), ("sec-fetch-site", "same-origin")],
            };
            let res = send(&app, csrf_request(&route, &ok, &csrf, cookie.as_deref())).await;
            let what = format!("POST {} from the page (token: {with_token})", route.path);
            assert!(
                res.status().is_success() || res.status().is_redirection(),
                "{what}: {}",
                res.status()
            );
            assert_ne!(snapshot(&f.store).await, before, "{what} changed nothing");
        }
    }
}

#[tokio::test]
async fn the_login_form_refuses_cross_site_posts() {
    let f = fixture().await;
    let (app, _) = app(&f.store, token_options());
    let form = format!("token={}", enc(TOKEN));
    for (what, headers) in [
        ("a cross-origin Origin", [("origin", "http://evil.example")]),
        ("Origin: null", [("origin", "null")]),
        ("a foreign Referer", [("referer", "http://evil.example/")]),
        (
            "Sec-Fetch-Site: cross-site",
            [("sec-fetch-site", "cross-site")],
        ),
    ] {
        let req = from_ip(
            request(Method::POST, "/login", Some(&form), &headers),
            fresh_ip(),
        );
        let res = send(&app, req).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(!res.headers().contains_key(header::SET_COOKIE), "{what}");
    }
    // The login form needs no CSRF token (it carries the access token).
    let cookie = login(&app).await;
    assert!(cookie.starts_with("steadfast_session="));
}

#[tokio::test]
async fn logging_out_ends_the_session_and_needs_the_csrf_token() {
    let f = fixture().await;
    let (app, csrf) = app(&f.store, token_options());
    let cookie = login(&app).await;
    let logout = route_list()
        .into_iter()
        .find(|r| r.path == "/logout" && r.method == Method::POST)
        .unwrap();
    let page = |cookie: &str| request(Method::GET, "/", None, &[("cookie", cookie)]);
    let body = text(send(&app, page(&cookie)).await).await;
    assert!(
        body.contains("action=\"/logout\""),
        "the pages have the button"
    );
    for row in CROSS_SITE {
        let res = send(&app, csrf_request(&logout, row, &csrf, Some(&cookie))).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{}", row.what);
        let still = send(&app, page(&cookie)).await.status();
        assert_eq!(still, StatusCode::OK, "{} logged out", row.what);
    }
    let ok = CsrfRow {
        what: "same origin",
        csrf: Csrf::RightField,
        headers: &[("origin", ORIGIN)],
    };
    let res = send(&app, csrf_request(&logout, &ok, &csrf, Some(&cookie))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/login");
    let clear = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        clear.starts_with("steadfast_session=;") && clear.contains("Max-Age=0"),
        "{clear}"
    );
    let res = send(&app, page(&cookie)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the session ended");
    // Without a token there is nothing to log out of.
    let (open, _) = app_without_token(&f.store);
    assert!(!text(get(&open, "/").await).await.contains("/logout"));
}

fn app_without_token(store: &Arc<dyn Backend>) -> (axum::Router, String) {
    app(store, DashboardOptions::default())
}

#[tokio::test]
async fn every_route_but_login_and_assets_needs_the_token() {
    let f = world().await;
    let clock = VirtualClock::new(Timestamp::now_system());
    let options = token_options().clock(Arc::new(clock.clone()));
    let (app, csrf) = app(&f.store, options);
    let expired = login(&app).await;
    clock.advance(SESSION_TTL);
    let before = snapshot(&f.store).await;

    let wrong_bearer = "Bearer 0123456789abcdef0123456789abcdef-wrong".to_owned();
    let token_as_cookie = format!("steadfast_session={TOKEN}");
    let token_as_secure_cookie = format!("__Host-steadfast_session={TOKEN}");
    // Before sessions, the cookie held the token itself.
    let token_as_old_cookie = format!("steadfast_token={TOKEN}");
    let basic = format!("Basic {TOKEN}");
    // What is wrong, the token sent in the query string, the headers sent.
    type Row<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let rows: Vec<Row> = vec![
        ("no token", "", vec![]),
        (
            "a wrong bearer token",
            "",
            vec![("authorization", &wrong_bearer)],
        ),
        (
            "the token as Basic auth",
            "",
            vec![("authorization", &basic)],
        ),
        (
            "a made-up session",
            "",
            vec![("cookie", "steadfast_session=00112233")],
        ),
        (
            "the token as the cookie",
            "",
            vec![("cookie", &token_as_cookie)],
        ),
        (
            "the token as the secure cookie",
            "",
            vec![("cookie", &token_as_secure_cookie)],
        ),
        (
            "the token as the old cookie",
            "",
            vec![("cookie", &token_as_old_cookie)],
        ),
        ("an expired session", "", vec![("cookie", &expired)]),
        ("the token in the query string", TOKEN, vec![]),
    ];
    let mut checked = 0;
    for route in route_list() {
        if route.public {
            assert!(
                route.path == "/login"
                    || route.path.starts_with("/assets/")
                    || route.path == "/api/v1/openapi.json",
                "{} must not be public",
                route.path
            );
            continue;
        }
        for (what, query_token, headers) in &rows {
            let uri = if query_token.is_empty() {
                route.path.to_owned()
            } else {
                format!("{}?token={query_token}", route.path)
            };
            let form = (route.method == Method::POST).then(|| with_csrf(route.path, &csrf));
            let mut headers = headers.clone();
            headers.push(("origin", ORIGIN));
            let req = from_ip(
                request(route.method.clone(), &uri, form.as_deref(), &headers),
                fresh_ip(),
            );
            let res = send(&app, req).await;
            let what = format!("{} {} with {what}", route.method, route.path);
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
            assert!(
                !text(res).await.contains(&csrf),
                "{what}: the CSRF token leaked"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15 * rows.len(), "{checked}");
    assert_eq!(snapshot(&f.store).await, before, "nothing changed");

    // With the token every page answers (some ask for parameters).
    let bearer = format!("Bearer {TOKEN}");
    for route in route_list().iter().filter(|r| r.method == Method::GET) {
        let req = request(Method::GET, route.path, None, &[("authorization", &bearer)]);
        let status = send(&app, req).await.status();
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::MISDIRECTED_REQUEST,
            "GET {}: {status}",
            route.path
        );
    }
    // The public ones need no token.
    assert_eq!(
        get(&app, "/assets/dashboard.js").await.status(),
        StatusCode::OK
    );
    assert_eq!(get(&app, "/login").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_is_a_post_form_and_the_address_carries_no_token() {
    let f = world().await;
    let clock = VirtualClock::new(Timestamp::now_system());
    let options = token_options().clock(Arc::new(clock.clone()));
    let (app, csrf) = app(&f.store, options);

    // The old way, the token in the address, is refused and sets nothing.
    let res = get(&app, &format!("/login?token={TOKEN}")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(!res.headers().contains_key(header::SET_COOKIE));
    let body = text(res).await;
    assert!(!body.contains(TOKEN), "the token is not echoed");
    assert!(body.contains("not accepted"), "{body}");

    // A browser opening a page gets the login form, which posts the token
    // and comes back; it embeds no CSRF token.
    let res = send(
        &app,
        request(
            Method::GET,
            "/process?id=p1",
            None,
            &[("accept", "text/html,application/xhtml+xml")],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = text(res).await;
    assert!(body.contains("method=\"post\" action=\"/login\""), "{body}");
    assert!(body.contains("type=\"password\" name=\"token\""), "{body}");
    assert!(body.contains("value=\"/process?id=p1\""), "{body}");
    assert!(!body.contains(&csrf));
    let res = get(&app, "/login").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!text(res).await.contains(&csrf));
    // Scripts get a plain 401 with WWW-Authenticate.
    let res = get(&app, "/api/counts").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"steadfast\""
    );

    // A wrong token: the form again, no cookie.
    let res = post(&app, "/login", "token=wrong", &[("origin", ORIGIN)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(!res.headers().contains_key(header::SET_COOKIE));
    assert!(text(res).await.contains("Wrong token"));

    // The right one: a session cookie (not the token), back to `next`.
    let form = format!("token={}&next={}", enc(TOKEN), enc("/process?id=p1"));
    let res = post(&app, "/login", &form, &[("origin", ORIGIN)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/process?id=p1");
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.starts_with("steadfast_session="), "{set}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "no Secure without --secure-cookie");
    assert!(!set.contains(TOKEN), "the cookie is not the token: {set}");
    assert!(
        !set.contains("Max-Age") && !set.contains("Expires"),
        "a session cookie"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let with_cookie = |uri: &str| request(Method::GET, uri, None, &[("cookie", &cookie)]);
    assert_eq!(send(&app, with_cookie("/")).await.status(), StatusCode::OK);
    let res = post(
        &app,
        "/actions/signal",
        &format!("id=p1&name=go&payload=1&csrf={csrf}"),
        &[("cookie", &cookie), ("origin", ORIGIN)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // A `next` elsewhere is not followed.
    let form = format!("token={}&next={}", enc(TOKEN), enc("//evil.example/"));
    let res = post(&app, "/login", &form, &[("origin", ORIGIN)]).await;
    assert_eq!(res.headers()[header::LOCATION], "/");

    // Sessions end.
    clock.advance(SESSION_TTL);
    assert_eq!(
        send(&app, with_cookie("/")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn behind_tls_the_session_cookie_is_secure() {
    let f = fixture().await;
    let (app, _) = app(&f.store, token_options().secure_cookie(true));
    let form = format!("token={}", enc(TOKEN));
    let res = post(
        &app,
        "/login",
        &form,
        &[("origin", "https://127.0.0.1:7777")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.starts_with("__Host-steadfast_session="), "{set}");
    assert!(set.contains("; Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let req = request(Method::GET, "/", None, &[("cookie", &cookie)]);
    assert_eq!(send(&app, req).await.status(), StatusCode::OK);
    // The same id under the plain name is not the session.
    let plain = cookie.replacen("__Host-", "", 1);
    let req = request(Method::GET, "/", None, &[("cookie", &plain)]);
    assert_eq!(send(&app, req).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_client() {
    let f = fixture().await;
    let clock = VirtualClock::new(Timestamp::now_system());
    let (app, _) = app(&f.store, token_options().clock(Arc::new(clock.clone())));
    let attempt = |ip: [u8; 4], token: &str| {
        let req = request(
            Method::POST,
            "/login",
            Some(&format!("token={}", enc(token))),
            &[("origin", ORIGIN)],
        );
        send(&app, from_ip(req, ip))
    };
    let attacker = [192, 0, 2, 1];
    for n in 1..=FREE_FAILURES {
        let res = attempt(attacker, "guess").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "failure {n}");
    }
    // Locked out: even the right token is refused, before it is looked at.
    let res = attempt(attacker, TOKEN).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    assert!(!res.headers().contains_key(header::SET_COOKIE));
    // So is a bearer token from there.
    let bearer = format!("Bearer {TOKEN}");
    let req = request(
        Method::GET,
        "/api/counts",
        None,
        &[("authorization", &bearer)],
    );
    let res = send(&app, from_ip(req, attacker)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client is not affected.
    assert_eq!(
        attempt([192, 0, 2, 2], TOKEN).await.status(),
        StatusCode::SEE_OTHER
    );
    // After the wait the attacker may try again; the next failure locks
    // for twice as long.
    clock.advance(FIRST_LOCK);
    assert_eq!(
        attempt(attacker, "guess").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = attempt(attacker, TOKEN).await;
    assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    clock.advance(FIRST_LOCK * 2);
    assert_eq!(
        attempt(attacker, TOKEN).await.status(),
        StatusCode::SEE_OTHER
    );

    // Wrong bearer tokens count as failed logins too.
    let prober = [192, 0, 2, 3];
    let wrong = "Bearer wrong".to_owned();
    for n in 1..=FREE_FAILURES {
        let req = request(
            Method::GET,
            "/api/counts",
            None,
            &[("authorization", &wrong)],
        );
        let res = send(&app, from_ip(req, prober)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "failure {n}");
    }
    let req = request(
        Method::GET,
        "/api/counts",
        None,
        &[("authorization", &bearer)],
    );
    let res = send(&app, from_ip(req, prober)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn off_loopback_the_token_is_required_and_long() {
    let options = DashboardOptions::default().bind("0.0.0.0:7777".parse().unwrap());
    let err = options.check().unwrap_err().to_string();
    assert!(err.contains("without an access token"), "{err}");
    let short = "t".repeat(MIN_TOKEN_CHARS - 1);
    let err = options
        .clone()
        .token(Some(short.clone()))
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 32"), "{err}");
    assert!(options.clone().token(Some(TOKEN.into())).check().is_ok());
    // On loopback a short token is the user's business.
    assert!(
        DashboardOptions::default()
            .token(Some(short))
            .check()
            .is_ok()
    );
    assert!(DashboardOptions::default().check().is_ok());
    // A token is not printed by Debug.
    let debug = format!("{:?}", token_options());
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[test]
fn bind_accepts_localhost() {
    let options = DashboardOptions::default()
        .bind_to("localhost:7788")
        .unwrap();
    assert_eq!(options.bind, "127.0.0.1:7788".parse().unwrap());
    assert_eq!(options.url(), "http://localhost:7788");
    let options = DashboardOptions::default().bind_to("[::1]:7788").unwrap();
    assert!(options.bind.ip().is_loopback());
    for bad in ["localhost", "localhost:99999", "a b:1", ":7777"] {
        assert!(DashboardOptions::default().bind_to(bad).is_err(), "{bad}");
    }
    let err = DashboardOptions::default()
        .allow_host("http://x/")
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a host name"), "{err}");
}

fn ids_in(body: &str) -> Vec<String> {
    body.split("data-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_pages_by_keyset_and_filters() {
    let f = fixture().await;
    let host = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("alpha", idle)
        .register("beta", idle)
        .build_client();
    for i in 1..=7 {
        host.spawn("alpha", &format!("a-{i}"), "x").await.unwrap();
    }
    for i in 1..=3 {
        host.spawn("beta", &format!("b-{i}"), "x").await.unwrap();
    }
    host.cancel("b-2").await.unwrap();
    let (app, _) = app(&f.store, DashboardOptions::default().page_size(3));

    let body = text(get(&app, "/?sort=id&order=asc").await).await;
    assert_eq!(ids_in(&body), ["a-1", "a-2", "a-3"]);
    assert!(
        body.contains("href=\"/?sort=id&amp;order=asc&amp;after=a-3\""),
        "next link"
    );
    assert!(body.contains("data-status=\"running\">9<"), "counts");
    assert!(body.contains("data-status=\"cancelled\">1<"), "counts");
    let body = text(get(&app, "/?sort=id&after=a-3").await).await;
    assert_eq!(ids_in(&body), ["a-4", "a-5", "a-6"]);
    let body = text(get(&app, "/?sort=id&after=a-6").await).await;
    assert_eq!(ids_in(&body), ["a-7", "b-1", "b-2"]);
    let body = text(get(&app, "/?sort=id&after=b-2").await).await;
    assert_eq!(ids_in(&body), ["b-3"]);
    assert!(!body.contains("rel=\"next\""));

    let body = text(get(&app, "/?sort=id&kind=beta").await).await;
    assert_eq!(ids_in(&body), ["b-1", "b-2", "b-3"]);
    assert!(!body.contains("rel=\"next\""), "exactly one page");
    let body = text(get(&app, "/?sort=id&kind=beta&status=running").await).await;
    assert_eq!(ids_in(&body), ["b-1", "b-3"]);
    let body = text(get(&app, "/?sort=id&prefix=a-&after=a-5").await).await;
    assert_eq!(ids_in(&body), ["a-6", "a-7"]);
    let body = text(get(&app, "/?status=bogus").await).await;
    assert!(body.contains("unknown status"));
    // The live fragment is the same list without the page around it.
    let body = text(get(&app, "/live/list?sort=id&kind=beta").await).await;
    assert!(!body.contains("<html"));
    assert_eq!(ids_in(&body), ["b-1", "b-2", "b-3"]);

    let res = get(&app, "/api/processes?kind=alpha").await;
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let json: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(json["next_after"], "a-3");
    assert_eq!(json["processes"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn signal_payload_must_be_json_and_rewind_asks_first() {
    let f = fixture().await;
    let host = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("evil", evil)
        .build();
    host.spawn("evil", "e1", "hi").await.unwrap();
    let _: String = host.outcome("e1").await.unwrap();
    // Stop the running host: it does not know "idle" and would claim (and
    // block) i1 at its next poll.
    host.shutdown().await;
    let host2 = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("idle", idle)
        .build_client();
    host2.spawn("idle", "i1", "x").await.unwrap();
    let (app, csrf) = app(&f.store, DashboardOptions::default());

    let json = [("accept", "application/json")];
    let res = post(
        &app,
        "/actions/signal",
        &format!("id=i1&name=go&payload=%7Bbad&csrf={csrf}"),
        &json,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = text(res).await;
    assert!(body.contains("not valid JSON"), "{body}");
    let res = post(
        &app,
        "/actions/signal",
        &format!("id=i1&name=go&payload=%7B%7D&csrf={csrf}"),
        &json,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        f.store
            .pending_signals(&"i1".parse_id())
            .await
            .unwrap()
            .len(),
        1
    );
    let res = post(
        &app,
        "/actions/signal",
        &format!("id=nope&name=go&payload=1&csrf={csrf}"),
        &json,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let step = enc("<script>window.__xss=1</script>");
    let res = post(
        &app,
        "/actions/rewind",
        &format!("id=e1&step={step}&csrf={csrf}"),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = text(res).await;
    assert!(
        body.contains("name=\"confirm\" value=\"yes\""),
        "asks first"
    );
    assert_eq!(
        f.store.journal(&"e1".parse_id()).await.unwrap().len(),
        1,
        "nothing dropped yet"
    );

    let res = get(&app, "/metrics").await;
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let body = text(res).await;
    assert!(
        body.contains("steadfast_processes{status=\"completed\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("steadfast_unfinished_processes{kind=\"idle\",status=\"running\"} 1"),
        "{body}"
    );
}

trait ParseId {
    fn parse_id(&self) -> steadfast::ProcessId;
}

impl ParseId for str {
    fn parse_id(&self) -> steadfast::ProcessId {
        steadfast::ProcessId::new(self).unwrap()
    }
}

/// A row that does not decode is an error row in the list (page, live part
/// and API); the list, the counts and `/metrics` still answer.
#[tokio::test]
async fn a_corrupt_row_is_an_error_row_and_nothing_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store: Arc<dyn Backend> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("alpha", idle)
        .build_client();
    for i in 1..=3 {
        host.spawn("alpha", &format!("a-{i}"), "x").await.unwrap();
    }
    let conn = steadfast::rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE processes SET version = -1 WHERE id = 'a-2'", [])
        .unwrap();
    conn.execute("UPDATE processes SET status = 'bogus' WHERE id = 'a-3'", [])
        .unwrap();
    let (app, _) = app(&store, DashboardOptions::default());

    for uri in ["/", "/live/list"] {
        let res = get(&app, uri).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        let body = text(res).await;
        // The rows that do not decode come first, as error rows (in the
        // list's order, newest first).
        assert_eq!(ids_in(&body), ["a-3", "a-2", "a-1"], "{uri}");
        assert!(
            body.contains("does not decode") && body.contains("column version"),
            "{uri}: {body}"
        );
        assert!(body.contains("data-status=\"unreadable\">2<"), "{uri}");
    }
    let res = get(&app, "/api/processes").await;
    assert_eq!(res.status(), StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    let rows = json["processes"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "running");
    assert_eq!(rows[1]["id"], "a-2");
    assert!(
        rows[1]["unreadable"].as_str().unwrap().contains("version"),
        "{json}"
    );
    let res = get(&app, "/api/counts").await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = get(&app, "/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = text(res).await;
    assert!(body.contains("steadfast_unreadable_processes 1"), "{body}");
    assert!(
        body.contains("steadfast_processes{status=\"running\"} 2"),
        "{body}"
    );
    let res = get(&app, "/kind?name=alpha").await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// The timeline entries of a process page, in page order: each `li` of the
/// timeline as (its `tl-` class, its text without tags).
fn timeline_entries(body: &str) -> Vec<(String, String)> {
    body.split("<li class=\"tl-")
        .skip(1)
        .map(|part| {
            let (class, rest) = part.split_once('"').unwrap();
            let item = rest.split("</li>").next().unwrap();
            let mut plain = String::new();
            let mut in_tag = false;
            for c in item.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => {
                        in_tag = false;
                        plain.push(' ');
                    }
                    c if !in_tag => plain.push(c),
                    _ => {}
                }
            }
            (class.to_owned(), plain)
        })
        .collect()
}

/// The timeline lists the store's history: each claim with its host and
/// epoch, a failure before the end, a rewind and a cancel done through the
/// dashboard's own actions, and the end with the host that ran it.
#[tokio::test]
async fn the_timeline_lists_claims_with_host_and_epoch_rewinds_and_cancels() {
    use std::time::Duration;
    use steadfast::core::{EntryKind, EntryStatus, Finish, HostId, JournalEntry, NewProcess};

    let f = fixture().await;
    let store = &f.store;
    let id = "order-17".parse_id();
    // Every write is given the store's time at that moment, so the entries'
    // times follow the order of the writes.
    let t0 = store.store_time().await.unwrap().unwrap();
    let lease = Duration::from_secs(300);
    store
        .spawn(NewProcess {
            id: id.clone(),
            kind: "order".into(),
            version: 1,
            input: "{}".into(),
            now: t0,
            parent: None,
            traceparent: None,
        })
        .await
        .unwrap();
    let first = HostId::new("worker-7");
    let claimed = store.claim(&first, t0, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let run = claimed[0].lease.clone();
    let t1 = store.store_time().await.unwrap().unwrap();
    for (seq, name) in [(0, "charged"), (1, "mailed")] {
        let entry = JournalEntry {
            seq,
            name: name.into(),
            kind: EntryKind::Step,
            status: EntryStatus::Completed,
            outcome: Some("1".into()),
            attempts: 1,
            started_at: t1,
            finished_at: Some(t1),
            due_at: None,
            location: None,
            consumed_signal: None,
        };
        store.append(&run, entry).await.unwrap();
    }
    let failed = Finish::Failed {
        error: "mail server down".into(),
    };
    let now = store.store_time().await.unwrap().unwrap();
    store.finish(&run, failed, now).await.unwrap();

    let (app, csrf) = app(store, DashboardOptions::default());
    let origin = [("origin", ORIGIN)];
    let res = post(
        &app,
        "/actions/rewind",
        &format!("id=order-17&step=mailed&confirm=yes&csrf={csrf}"),
        &origin,
    )
    .await;
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "rewind: {}",
        res.status()
    );
    assert_eq!(store.journal(&id).await.unwrap().len(), 1, "rewound");

    let second = HostId::new("worker-9");
    let now = store.store_time().await.unwrap().unwrap();
    let claimed = store.claim(&second, now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "runnable again after the rewind");
    let run = claimed[0].lease.clone();
    assert_eq!(run.epoch, 3, "claim, rewind and claim again");
    let res = post(
        &app,
        "/actions/cancel",
        &format!("id=order-17&csrf={csrf}"),
        &origin,
    )
    .await;
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "cancel: {}",
        res.status()
    );
    let now = store.store_time().await.unwrap().unwrap();
    store.finish(&run, Finish::Cancelled, now).await.unwrap();

    let body = text(get(&app, "/process?id=order-17").await).await;
    let entries = timeline_entries(&body);
    let find = |class: &str, needles: &[&str]| {
        entries
            .iter()
            .position(|(c, text)| c == class && needles.iter().all(|n| text.contains(n)))
            .unwrap_or_else(|| panic!("no {class} entry with {needles:?} in {entries:#?}"))
    };
    let claim_7 = find("claimed", &["worker-7", "epoch 1"]);
    let failure = find("failed", &["mail server down", "by host worker-7"]);
    let rewind = find("rewound", &["mailed", "epoch 2"]);
    let claim_9 = find("claimed", &["worker-9", "epoch 3"]);
    let cancel = find("cancel", &["cancel requested", "by an operator"]);
    let end = find("cancelled", &["by host worker-9", "epoch 3"]);
    assert!(
        claim_7 < failure && failure < rewind && rewind < claim_9 && claim_9 < cancel,
        "in the order they happened: {entries:#?}"
    );
    assert!(cancel < end, "the end comes last: {entries:#?}");
    assert_eq!(
        entries.iter().filter(|(c, _)| c == "cancelled").count(),
        1,
        "the end is shown once: {entries:#?}"
    );

    let api = text(get(&app, "/api/process?id=order-17").await).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let kinds: Vec<&str> = api["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "claimed",
            "failed",
            "rewound",
            "claimed",
            "cancel_requested",
            "cancelled"
        ]
    );
}

/// The store filters, counts, sorts and pages the list: with a page size
/// of 3, every page of a filtered, sorted list comes in order, the pages
/// cover the matching processes once, and the counts per status and the
/// number matching follow the filters (not the page).
#[tokio::test]
async fn list_counts_follow_the_filters_and_pages_cover_them() {
    let f = fixture().await;
    let host = HostBuilder::from_arc(Arc::clone(&f.store))
        .register("alpha", idle)
        .register("beta", idle)
        .build_client();
    for i in 1..=8 {
        host.spawn("alpha", &format!("A-0{i}"), "x").await.unwrap();
    }
    for i in 1..=4 {
        host.spawn("beta", &format!("b-0{i}"), "x").await.unwrap();
    }
    host.cancel("A-03").await.unwrap();
    host.cancel("b-02").await.unwrap();
    let (app, _) = app(&f.store, DashboardOptions::default().page_size(3));

    // Search is by substring, ASCII letters in either case.
    let mut seen = Vec::new();
    for page in 0.. {
        let uri = format!("/?search=a-0&sort=id&order=desc&page={page}");
        let body = text(get(&app, &uri).await).await;
        assert!(
            body.contains("data-status=\"running\">7<")
                && body.contains("data-status=\"cancelled\">1<"),
            "the counts of the search on every page: {body}"
        );
        assert!(body.contains("All 8 matching"), "{body}");
        let ids = ids_in(&body);
        assert!(ids.len() <= 3, "one page: {ids:?}");
        seen.extend(ids);
        if !body.contains("rel=\"next\"") {
            break;
        }
    }
    let expected: Vec<String> = (1..=8).rev().map(|i| format!("A-0{i}")).collect();
    assert_eq!(seen, expected, "every match once, by id descending");

    // A status narrows the rows and the number matching, not the counts.
    let body = text(get(&app, "/?search=-0&status=cancelled&sort=id").await).await;
    assert_eq!(ids_in(&body), ["A-03", "b-02"]);
    assert!(body.contains("All 2 matching"), "{body}");
    assert!(body.contains("data-status=\"running\">10<"), "{body}");
    // By kind, descending, second page.
    let body = text(get(&app, "/?sort=kind&order=desc&page=1").await).await;
    assert_eq!(ids_in(&body), ["b-01", "A-08", "A-07"]);
    let body = text(get(&app, "/?kind=beta&search=B-0&sort=status&order=asc").await).await;
    assert_eq!(ids_in(&body), ["b-02", "b-01", "b-03"]);
    assert!(body.contains("rel=\"next\""), "a fourth beta process");
    assert!(body.contains("All 4 matching"), "{body}");
}
