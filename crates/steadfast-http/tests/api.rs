//! The HTTP API served on a real socket and called with a real HTTP client
//! (hyper): spawn (idempotent by id), signal, status, outcome long poll,
//! cancel, retry; bearer auth, JSON-only requests, size limits, typed
//! errors that change nothing; the OpenAPI document parsed by `oas3` with
//! every route in it.
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use steadfast::{Host, Process, SqliteStore, StepError, StepFailed};
use steadfast_http::{ApiOptions, ApiState, ServeError};

const TOKEN: &str = "test-token-0123456789-0123456789-abcdef";

struct Server {
    addr: SocketAddr,
    host: Host,
    client: Client<HttpConnector, Full<Bytes>>,
    failures: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

/// A worker host with three kinds, and the API over it on a loopback port.
async fn server(options: ApiOptions) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("api.db")).await.unwrap();
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&failures);
    let host = Host::builder(store)
        .poll_interval(Duration::from_millis(20))
        .register("greet", |p: Process, name: String| async move {
            let n: u32 = p.wait("go").await;
            let text = p
                .step("greeted", || {
                    let text = format!("hello {name} {n}");
                    async move { Ok::<_, StepError>(text) }
                })
                .await?;
            Ok::<_, StepFailed>(text)
        })
        .register("fails", move |p: Process, (): ()| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                p.step("boom", || async {
                    Err::<(), _>(StepError::permanent("card declined"))
                })
                .await?;
                Ok::<_, StepFailed>(())
            }
        })
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = host.clone();
    tokio::spawn(async move { steadfast_http::serve_on(listener, served, options).await });
    Server {
        addr,
        host,
        client: Client::builder(TokioExecutor::new()).build_http(),
        failures,
        _dir: dir,
    }
}

impl Server {
    /// Sends a request; `body` as JSON unless `content_type` says otherwise.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let res = self.client.request(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// An authorised JSON request.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let auth = format!("Bearer {TOKEN}");
        self.send(
            method,
            path,
            body.map(|b| b.to_string()),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
        )
        .await
    }

    async fn count(&self) -> u64 {
        let counts = self.host.store().counts().await.unwrap();
        counts.by_status.iter().map(|c| c.count).sum()
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_signal_and_long_poll_the_outcome() {
    let s = server(ApiOptions::default().token(Some(TOKEN.into()))).await;
    let spawn = json!({"kind": "greet", "id": "g-1", "input": "ada"});

    let (status, body) = s
        .call(Method::POST, "/api/v1/processes", Some(spawn.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"id": "g-1", "kind": "greet", "created": true}));
    // Idempotent by process id.
    let (status, body) = s.call(Method::POST, "/api/v1/processes", Some(spawn)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], json!(false));

    let (status, body) = s.call(Method::GET, "/api/v1/processes/g-1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "greet");
    assert_eq!(body["input"], "ada");
    assert!(
        body["created_at"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );

    let (status, body) = s
        .call(Method::GET, "/api/v1/processes/g-1/outcome", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["finished"], json!(false));

    // A long poll that the signal ends.
    let poll = {
        let client = s.client.clone();
        let uri = format!("http://{}/api/v1/processes/g-1/outcome?wait=60s", s.addr);
        tokio::spawn(async move {
            let req = Request::builder()
                .uri(uri)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = client.request(req).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        })
    };
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/processes/g-1/signals",
            Some(json!({"name": "go", "payload": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"id": "g-1", "name": "go"}));
    let (status, body) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"id": "g-1", "status": "completed", "finished": true, "output": "hello ada 7", "error": null})
    );
    s.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_store_nothing() {
    let s = server(
        ApiOptions::default()
            .token(Some(TOKEN.into()))
            .max_body_bytes(2048),
    )
    .await;
    let spawn = json!({"kind": "greet", "id": "b-1", "input": "ada"});
    let (status, _) = s
        .call(Method::POST, "/api/v1/processes", Some(spawn.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = s.count().await;

    // No token, a wrong one.
    let json_only = [("content-type", "application/json")];
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/processes",
            Some(spawn.to_string()),
            &json_only,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{body}"
    );
    let (status, body) = s
        .send(
            Method::GET,
            "/api/v1/processes/b-1",
            None,
            &[("authorization", "Bearer wrong")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "{body}"
    );
    // Not sent as JSON (what a plain HTML form would send).
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/processes/b-1/cancel",
            Some("x=1".into()),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
        "{body}"
    );

    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        // The same id with another input.
        (
            "/api/v1/processes",
            json!({"kind": "greet", "id": "b-1", "input": "bob"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "/api/v1/processes",
            json!({"kind": "nope", "id": "b-2", "input": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            "/api/v1/processes",
            json!({"kind": "greet", "id": "b-2", "input": 12}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            "/api/v1/processes",
            json!({"kind": "greet", "id": "", "input": "x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/processes",
            json!({"kind": "greet", "id": "b-2", "input": "x", "typo": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/processes",
            json!({"kind": "greet", "id": "b-2", "input": "x".repeat(4096)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "/api/v1/processes/b-1/signals",
            json!({"name": "steadfast:x", "payload": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/processes/b-1/signals",
            json!({"name": " ", "payload": 1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/v1/processes/none/signals",
            json!({"name": "go", "payload": 1}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/processes/none/cancel",
            json!({}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (path, body, want, want_code) in cases {
        let (status, got) = s.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(
            (status, code(&got)),
            (want, want_code),
            "{path} {body}: {got}"
        );
        assert!(!got["error"]["message"].as_str().unwrap().is_empty());
    }
    // A body that is not JSON at all.
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/processes",
            Some("{not json".into()),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{body}"
    );
    for (path, want) in [
        ("/api/v1/processes/none", StatusCode::NOT_FOUND),
        (
            "/api/v1/processes/b-1/outcome?wait=soon",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/processes/b-1/outcome?wait=10m",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/processes/b-1/outcome?later=1",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/no-such-route", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = s.call(Method::GET, path, None).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    assert_eq!(s.count().await, before, "a refused request stored nothing");
    let signals = s.host.signals("b-1").await.unwrap();
    assert!(signals.is_empty(), "no signal was stored: {signals:?}");
    let (_, body) = s.call(Method::GET, "/api/v1/processes/b-1", None).await;
    assert_eq!(body["input"], "ada", "the first spawn's input is kept");
    s.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_retry() {
    let s = server(ApiOptions::default().token(Some(TOKEN.into()))).await;
    // An id with a slash, percent-encoded in the path.
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/processes",
            Some(json!({"kind": "greet", "id": "team/1", "input": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = s
        .call(Method::POST, "/api/v1/processes/team%2F1/cancel", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "team/1");
    let (status, body) = s
        .call(
            Method::GET,
            "/api/v1/processes/team%2F1/outcome?wait=30s",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");

    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/processes",
            Some(json!({"kind": "fails", "id": "f-1", "input": null})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = s
        .call(Method::GET, "/api/v1/processes/f-1/outcome?wait=30s", None)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("failed")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("card declined"),
        "{body}"
    );
    assert_eq!(s.failures.load(Ordering::SeqCst), 1);
    let (status, body) = s
        .call(Method::POST, "/api/v1/processes/f-1/retry", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The retried process runs its function again (and fails again).
    for _ in 0..3000 {
        if s.failures.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.failures.load(Ordering::SeqCst),
        2,
        "the retry ran the process again"
    );
    s.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_names_are_answered() {
    let s = server(ApiOptions::default()).await;
    let (status, body) = s
        .send(
            Method::GET,
            "/api/v1/processes/x",
            None,
            &[("host", "evil.example:80")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::MISDIRECTED_REQUEST, "misdirected"),
        "{body}"
    );
    let (status, body) = s
        .send(
            Method::GET,
            "/api/v1/processes/x",
            None,
            &[("host", "localhost")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    // Off loopback a token is required, and a long one.
    let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    assert!(matches!(
        ApiOptions::default().check(public),
        Err(ServeError::TokenRequired(_))
    ));
    assert!(matches!(
        ApiOptions::default()
            .token(Some("short".into()))
            .check(public),
        Err(ServeError::TokenTooShort { chars: 5, .. })
    ));
    assert!(
        ApiOptions::default()
            .token(Some(TOKEN.into()))
            .check(public)
            .is_ok()
    );
    s.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_parses_and_lists_every_route() {
    let s = server(ApiOptions::default().token(Some(TOKEN.into()))).await;
    // Served without the token.
    let (status, doc) = s.send(Method::GET, "/api/v1/openapi.json", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let spec = oas3::from_json(doc.to_string()).expect("a valid OpenAPI 3.1 document");
    let paths = spec.paths.as_ref().expect("paths");
    let routes = steadfast_http::routes::<ApiState>();
    assert_eq!(paths.len(), routes.len(), "one path per route");
    for (method, path, _) in routes {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the document"));
        let operation = match method {
            Method::GET => item.get.as_ref(),
            Method::POST => item.post.as_ref(),
            _ => None,
        }
        .unwrap_or_else(|| panic!("{method} {path} missing from the document"));
        let responses = operation.responses.as_ref().expect("responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{method} {path}"
        );
        if path.contains("{id}") {
            assert!(
                operation.parameters.iter().any(|p| match p {
                    oas3::spec::ObjectOrReference::Object(p) => p.name == "id",
                    _ => false,
                }),
                "{method} {path} documents its id"
            );
        }
    }
    // Request bodies refer to schemas the document defines.
    let schemas = &spec.components.as_ref().expect("components").schemas;
    for name in [
        "SpawnRequest",
        "SignalRequest",
        "ProcessView",
        "OutcomeResponse",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert!(
        spec.components
            .as_ref()
            .unwrap()
            .security_schemes
            .contains_key("bearer")
    );
    s.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_header_is_stored_with_the_spawn_and_the_signal() {
    const SPAWNER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const SIGNALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-53995c3f42cd8ad8-01";
    let s = server(ApiOptions::default().token(Some(TOKEN.into()))).await;
    let auth = format!("Bearer {TOKEN}");
    let post = |path: &'static str, body: Value, traceparent: &'static str| {
        let auth = auth.clone();
        let s = &s;
        async move {
            s.send(
                Method::POST,
                path,
                Some(body.to_string()),
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("traceparent", traceparent),
                ],
            )
            .await
        }
    };
    let (status, body) = post(
        "/api/v1/processes",
        json!({"kind": "greet", "id": "t-1", "input": "ada"}),
        SPAWNER,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // An invalid header is ignored, not refused.
    let (status, body) = post(
        "/api/v1/processes",
        json!({"kind": "greet", "id": "t-2", "input": "bob"}),
        "00-not-a-trace-01",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(
        "/api/v1/processes/t-1/signals",
        json!({"name": "go", "payload": 1}),
        SIGNALLER,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let stored = |id: &'static str| {
        let host = s.host.clone();
        async move { host.status(id).await.unwrap().traceparent }
    };
    assert_eq!(stored("t-1").await.as_deref(), Some(SPAWNER));
    assert_eq!(stored("t-2").await, None);
    let signals = s.host.signals("t-1").await.unwrap();
    assert_eq!(
        signals
            .iter()
            .map(|sig| sig.traceparent.as_deref())
            .collect::<Vec<_>>(),
        [Some(SIGNALLER)]
    );
    s.host.shutdown().await;
}
