//! `steadfast worker --otlp URL` exports the worker's spans over OTLP/HTTP:
//! an OTLP receiver on loopback inside the test decodes them (feature
//! `otel`, on by default).
#![cfg(feature = "otel")]
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;

type Spans = Arc<Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>;

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| text(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.lock().unwrap().push((service.clone(), span));
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn steadfast(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .env("STEADFAST_EXAMPLES", "1")
        .env_remove("STEADFAST_DB")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("OTEL_SERVICE_NAME", "cli-worker")
        .env("RUST_LOG", "warn")
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_exports_runs_and_steps_to_the_otlp_endpoint() {
    let spans: Spans = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(Arc::clone(&spans));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("otlp.db");
    let services = dir.path().join("services");
    let services = services.to_str().unwrap().to_owned();
    let out = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let spawned = steadfast(&db, &["spawn", "ten steps", "t-1", "null"]);
            assert!(spawned.status.success(), "{spawned:?}");
            // The worker exits once idle; its exporter flushes on the way out.
            steadfast(
                &db,
                &[
                    "worker",
                    "--exit-when-idle",
                    "--services",
                    &services,
                    "--otlp",
                    &url,
                ],
            )
        })
        .await
        .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let spans = spans.lock().unwrap().clone();
    let runs: Vec<_> = spans.iter().filter(|(_, s)| s.name == "run").collect();
    assert_eq!(runs.len(), 1, "{spans:?}");
    let (service, run) = runs[0];
    assert_eq!(service, "cli-worker");
    assert_eq!(
        text(&run.attributes, "steadfast.process.id").as_deref(),
        Some("t-1")
    );
    assert_eq!(
        text(&run.attributes, "steadfast.process.kind").as_deref(),
        Some("ten steps")
    );
    let steps = spans
        .iter()
        .filter(|(_, s)| s.name == "step" && s.parent_span_id == run.span_id)
        .count();
    assert_eq!(steps, 10, "one span per step attempt, inside the run");
}
