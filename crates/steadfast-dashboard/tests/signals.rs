//! The dashboard shows rejected and pending signals (page and JSON API) and
//! discards a pending one through a CSRF-checked action.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use steadfast::{
    Backend, HostBuilder, Process, ProcessId, SignalRecord, SignalState, SqliteStore, Status,
    StepFailed,
};
use steadfast_dashboard::{AppState, DashboardOptions, router};
use tower::ServiceExt;

#[derive(Deserialize)]
struct Verification {
    secret: String,
}

async fn verify(p: Process, (): ()) -> Result<String, StepFailed> {
    let v: Verification = p.wait("email verified").await;
    Ok(v.secret)
}

async fn get(app: &axum::Router, uri: &str) -> Response {
    app.clone()
        .oneshot(
            Request::get(uri)
                .header(header::HOST, "127.0.0.1:7777")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn post(app: &axum::Router, uri: &str, form: &str) -> Response {
    let req = Request::post(uri)
        .header(header::HOST, "127.0.0.1:7777")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    app.clone()
        .oneshot(req.body(Body::from(form.to_owned())).unwrap())
        .await
        .unwrap()
}

async fn text(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Polls the store until `probe` finds something, failing after 20 s.
async fn until<T>(
    store: &Arc<dyn Backend>,
    what: &str,
    probe: impl Fn(Vec<SignalRecord>, Status) -> Option<T>,
) -> T {
    let id = ProcessId::new("w1").unwrap();
    for _ in 0..2000 {
        let record = store.get(&id).await.unwrap();
        let signals = store.signals(&id).await.unwrap();
        if let Some(found) = probe(signals, record.status) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_and_pending_signals_are_shown_and_one_can_be_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("verify", verify)
        .poll_interval(Duration::from_millis(20))
        .build();
    host.spawn("verify", "w1", &()).await.unwrap();
    until(&store, "suspended", |_, s| {
        (s == Status::Suspended).then_some(())
    })
    .await;
    let state = AppState::new(Arc::clone(&store), &DashboardOptions::default());
    let csrf = state.csrf_token().to_owned();
    let app = router(state);

    // The default form: the awaited name and `null`.
    let res = post(
        &app,
        "/actions/signal",
        &format!("id=w1&name=email+verified&payload=null&csrf={csrf}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(res).await);
    until(&store, "rejected and suspended", |signals, status| {
        (status == Status::Suspended
            && signals
                .first()
                .is_some_and(|s| s.state == SignalState::Rejected))
        .then_some(())
    })
    .await;

    let page = text(get(&app, "/process?id=w1").await).await;
    assert!(page.contains("data-state=\"rejected\""), "{page}");
    assert!(page.contains("invalid type: null"), "{page}");
    let api: serde_json::Value =
        serde_json::from_str(&text(get(&app, "/api/process?id=w1").await).await).unwrap();
    assert_eq!(api["process"]["status"], "suspended");
    assert_eq!(api["signals"][0]["state"], "rejected");
    assert!(
        api["signals"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Verification")
    );

    // Reserved names are refused.
    let res = post(
        &app,
        "/actions/signal",
        &format!("id=w1&name=steadfast%3A+x&payload=null&csrf={csrf}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(text(res).await.contains("reserved"));

    // A pending signal gets a discard button; discarding needs the token.
    host.signal("w1", "unrelated", &1).await.unwrap();
    let pending = until(&store, "a pending signal", |signals, _| {
        signals
            .iter()
            .find(|s| s.state == SignalState::Pending)
            .map(|s| s.id)
    })
    .await;
    let page = text(get(&app, "/process?id=w1").await).await;
    assert!(page.contains("/actions/discard-signal"), "{page}");
    let res = post(
        &app,
        "/actions/discard-signal",
        &format!("id=w1&signal={pending}&csrf=wrong"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(
        &app,
        "/actions/discard-signal",
        &format!("id=w1&signal={pending}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let api: serde_json::Value =
        serde_json::from_str(&text(get(&app, "/api/signals?id=w1").await).await).unwrap();
    assert_eq!(api["signals"][1]["state"], "pending", "{api}");

    let res = post(
        &app,
        "/actions/discard-signal",
        &format!("id=w1&signal={pending}&csrf={csrf}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(res).await);
    let api: serde_json::Value =
        serde_json::from_str(&text(get(&app, "/api/signals?id=w1").await).await).unwrap();
    assert_eq!(api["signals"][1]["state"], "discarded", "{api}");
    let res = post(
        &app,
        "/actions/discard-signal",
        &format!("id=w1&signal={pending}&csrf={csrf}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(text(res).await.contains("already discarded"));

    // A fitting signal still completes the process.
    host.signal("w1", "email verified", &serde_json::json!({"secret": "s"}))
        .await
        .unwrap();
    let out: String = host.outcome("w1").await.unwrap();
    assert_eq!(out, "s");
    host.shutdown().await;
}
