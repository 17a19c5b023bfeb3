//! HTTP-level tests: escaping, CSRF and token refusal, paging and filters,
//! signal validation, rewind confirmation, metrics.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use steadfast::{Backend, HostBuilder, Process, SqliteStore, StepFailed};
use steadfast_dashboard::{AppState, DashboardOptions, router};
use tower::ServiceExt;

const EVIL: &str = "<script>window.__xss=1</script>";

#[steadfast::process]
async fn evil(p: Process, input: String) -> Result<String, StepFailed> {
    let echoed: String = p
        .step("<script>window.__xss=1</script>", move || {
            let input = input.clone();
            async move { Ok::<_, std::io::Error>(input) }
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
    let state = AppState::new(Arc::clone(store), &options);
    let csrf = state.csrf_token().to_owned();
    (router(state), csrf)
}

async fn get(app: &axum::Router, uri: &str) -> Response {
    app.clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn post(app: &axum::Router, uri: &str, form: &str, extra: &[(&str, &str)]) -> Response {
    let mut req =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    app.clone()
        .oneshot(req.body(Body::from(form.to_owned())).unwrap())
        .await
        .unwrap()
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

#[tokio::test]
async fn a_configured_token_is_required_everywhere() {
    let f = fixture().await;
    let options = DashboardOptions::default().token(Some("s3cret".to_owned()));
    let (app, csrf) = app(&f.store, options);

    for uri in ["/", "/metrics", "/api/counts", "/process?id=x"] {
        assert_eq!(
            get(&app, uri).await.status(),
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    let res = post(
        &app,
        "/actions/purge",
        &format!("hours=1&confirm=yes&csrf={csrf}"),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Assets and login need no token.
    assert_eq!(
        get(&app, "/assets/dashboard.js").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/login?token=nope").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let res = get(&app, "/login?token=s3cret").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_owned();

    let with_cookie = |uri: &str| {
        Request::get(uri)
            .header(header::COOKIE, &pair)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.clone()
            .oneshot(with_cookie("/"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let bearer = Request::get("/api/counts")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(bearer).await.unwrap().status(),
        StatusCode::OK
    );

    // Token but no CSRF: 403; both: done.
    let res = post(
        &app,
        "/actions/purge",
        "hours=1&confirm=yes",
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(
        &app,
        "/actions/purge",
        &format!("hours=1&confirm=yes&csrf={csrf}"),
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(text(res).await.contains("0 finished processes"));
}

#[test]
fn non_loopback_without_token_is_refused() {
    let options = DashboardOptions::default().bind("0.0.0.0:7777".parse().unwrap());
    let err = options.check().unwrap_err().to_string();
    assert!(err.contains("without an access token"), "{err}");
    assert!(options.token(Some("t".into())).check().is_ok());
    assert!(DashboardOptions::default().check().is_ok());
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

    let body = text(get(&app, "/").await).await;
    assert_eq!(ids_in(&body), ["a-1", "a-2", "a-3"]);
    assert!(body.contains("href=\"/?after=a-3\""), "next link");
    assert!(body.contains("data-status=\"running\">9<"), "counts");
    assert!(body.contains("data-status=\"cancelled\">1<"), "counts");
    let body = text(get(&app, "/?after=a-3").await).await;
    assert_eq!(ids_in(&body), ["a-4", "a-5", "a-6"]);
    let body = text(get(&app, "/?after=a-6").await).await;
    assert_eq!(ids_in(&body), ["a-7", "b-1", "b-2"]);
    let body = text(get(&app, "/?after=b-2").await).await;
    assert_eq!(ids_in(&body), ["b-3"]);
    assert!(!body.contains("rel=\"next\""));

    let body = text(get(&app, "/?kind=beta").await).await;
    assert_eq!(ids_in(&body), ["b-1", "b-2", "b-3"]);
    assert!(!body.contains("rel=\"next\""), "exactly one page");
    let body = text(get(&app, "/?kind=beta&status=running").await).await;
    assert_eq!(ids_in(&body), ["b-1", "b-3"]);
    let body = text(get(&app, "/?prefix=a-&after=a-5").await).await;
    assert_eq!(ids_in(&body), ["a-6", "a-7"]);
    let body = text(get(&app, "/?status=bogus").await).await;
    assert!(body.contains("unknown status"));
    // The live fragment is the same list without the page around it.
    let body = text(get(&app, "/live/list?kind=beta").await).await;
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
