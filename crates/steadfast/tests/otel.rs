//! OpenTelemetry export (feature `otel`): an OTLP/HTTP receiver on loopback
//! decodes the spans the engine exports and checks their names, attributes,
//! parents and links — the runs of a process are children of the span that
//! spawned it, also the run on a new host after a crash, and a wait taking
//! a signal links to the span that sent it.
#![cfg(feature = "otel")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use steadfast::otel::OtelConfig;
use steadfast::testing::TestHost;
use steadfast::trace::attributes;
use steadfast::{Process, Status, StepFailed};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The spans an OTLP/HTTP receiver got, with the service name of each.
#[derive(Clone)]
struct Received {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    count: tokio::sync::watch::Sender<usize>,
}

impl Received {
    fn all(&self) -> Vec<(String, Span)> {
        self.spans.lock().expect("spans").clone()
    }
}

/// `POST /v1/traces`: decodes an `ExportTraceServiceRequest` (protobuf).
async fn receive(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| text(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    let n = spans.len();
    received.spans.lock().expect("spans").extend(spans);
    received.count.send_modify(|count| *count += n);
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// Starts the receiver on a loopback port; returns its base URL.
async fn start_receiver() -> (String, Received) {
    let received = Received {
        spans: Arc::default(),
        count: tokio::sync::watch::channel(0).0,
    };
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), received)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key) {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// Takes a step, waits for the signal `go`, takes another step.
async fn traced(p: Process, _: ()) -> Result<u32, StepFailed> {
    p.step("first", || async { Ok(1u32) }).await?;
    let n: u32 = p.wait("go").await;
    p.step("second", || async move { Ok(n + 1) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_continue_the_spawning_trace_across_a_crash_and_link_signals() {
    let (url, received) = start_receiver().await;
    let (otel, guard) = steadfast::otel::layer(
        OtelConfig::from_env()
            .endpoint(url)
            .service_name("otel-test"),
    )
    .expect("the OTLP layer");
    tracing_subscriber::registry().with(otel).init();

    let t = TestHost::start(|b| b.register("traced", traced)).await;
    t.host()
        .spawn("traced", "order-1", &())
        .instrument(tracing::info_span!("client spawn"))
        .await
        .expect("spawn");
    assert_eq!(t.settle("order-1").await.status, Status::Suspended);
    // A new host on a new store handle of the same file: the trace context
    // of the next run comes from the store.
    t.crash_and_restart().await;
    t.host()
        .signal("order-1", "go", &41u32)
        .instrument(tracing::info_span!("client signal"))
        .await
        .expect("signal");
    let output: u32 = t.host().outcome("order-1").await.expect("outcome");
    assert_eq!(output, 42);
    t.host().shutdown().await;

    // Every span has ended; export them and wait for the receiver to have
    // the last one (the second run ends after the outcome is stored).
    let mut count = received.count.subscribe();
    let spans = loop {
        let flushing = guard_flush(&guard);
        flushing.await;
        let spans = received.all();
        let runs = spans.iter().filter(|(_, s)| s.name == "run").count();
        if runs >= 2 {
            break spans;
        }
        tokio::time::timeout(Duration::from_secs(10), count.changed())
            .await
            .expect("the receiver got no more spans within 10 s")
            .expect("receiver");
    };
    drop(guard);

    let named = |name: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(_, s)| s)
            .collect()
    };
    assert!(
        spans.iter().all(|(service, _)| service == "otel-test"),
        "service.name"
    );
    let spawner = named("client spawn");
    let [spawner] = spawner.as_slice() else {
        panic!("one spawning span, got {spawner:?}");
    };
    let signaller = named("client signal");
    let [signaller] = signaller.as_slice() else {
        panic!("one signalling span, got {signaller:?}");
    };

    let mut runs = named("run");
    runs.sort_by_key(|s| int(&s.attributes, attributes::EPOCH));
    let [first_run, second_run] = runs.as_slice() else {
        panic!("two runs (before and after the crash), got {runs:?}");
    };
    for (run, epoch) in [(first_run, 1), (second_run, 2)] {
        assert_eq!(
            text(&run.attributes, attributes::PROCESS_ID).as_deref(),
            Some("order-1")
        );
        assert_eq!(
            text(&run.attributes, attributes::KIND).as_deref(),
            Some("traced")
        );
        assert_eq!(int(&run.attributes, attributes::EPOCH), Some(epoch));
        assert_eq!(
            run.trace_id, spawner.trace_id,
            "run {epoch} is in the spawning span's trace"
        );
        assert_eq!(
            run.parent_span_id, spawner.span_id,
            "run {epoch} is a child of the spawning span"
        );
    }

    let steps = named("step");
    let step = |name: &str| -> &Span {
        let found: Vec<_> = steps
            .iter()
            .filter(|s| text(&s.attributes, attributes::STEP).as_deref() == Some(name))
            .collect();
        let [one] = found.as_slice() else {
            panic!("one attempt of step {name:?}, got {found:?}");
        };
        one
    };
    for (name, run) in [("first", first_run), ("second", second_run)] {
        let s = step(name);
        assert_eq!(s.parent_span_id, run.span_id, "step {name:?} is in its run");
        assert_eq!(s.trace_id, spawner.trace_id);
        assert_eq!(
            text(&s.attributes, attributes::PROCESS_ID).as_deref(),
            Some("order-1")
        );
        assert_eq!(
            text(&s.attributes, attributes::KIND).as_deref(),
            Some("traced")
        );
        assert_eq!(int(&s.attributes, attributes::ATTEMPT), Some(1));
    }

    let received_signals = named("signal");
    let [delivery] = received_signals.as_slice() else {
        panic!("one signal delivery, got {received_signals:?}");
    };
    assert_eq!(
        delivery.parent_span_id, second_run.span_id,
        "delivered in the second run"
    );
    assert_eq!(
        text(&delivery.attributes, attributes::SIGNAL).as_deref(),
        Some("go")
    );
    assert_eq!(
        text(&delivery.attributes, attributes::STEP).as_deref(),
        Some("go")
    );
    let links: Vec<_> = delivery
        .links
        .iter()
        .map(|l| (l.trace_id.clone(), l.span_id.clone()))
        .collect();
    assert_eq!(
        links,
        [(signaller.trace_id.clone(), signaller.span_id.clone())],
        "the delivery links to the signalling span"
    );
}

/// Flushes the exporter off the runtime's threads (the flush blocks until
/// the receiver, on this runtime, answered).
async fn guard_flush(guard: &steadfast::otel::OtelGuard) {
    tokio::task::block_in_place(|| guard.flush());
}
