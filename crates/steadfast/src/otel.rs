//! OpenTelemetry export over OTLP/HTTP (feature `otel`).
//!
//! [`init`] installs a `tracing` subscriber that logs to stderr (filtered by
//! `RUST_LOG`, `info` by default) and exports spans through OTLP/HTTP
//! (protobuf) to a collector; [`layer`] gives the exporting layer alone, for
//! a program that builds its own subscriber. Both return an [`OtelGuard`]
//! that flushes the spans not yet exported when it is dropped.
//!
//! Configured the usual way: `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL,
//! `/v1/traces` is appended; default `http://localhost:4318`) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is), and
//! `OTEL_SERVICE_NAME` (default `steadfast`); [`OtelConfig::endpoint`] and
//! [`OtelConfig::service_name`] override them.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let _otel = steadfast::otel::init(steadfast::otel::OtelConfig::from_env())?;
//! // ... build hosts, spawn and signal inside your own spans ...
//! # Ok(()) }
//! ```
//!
//! What is exported: each run of a process is a span `run`, a child of the
//! span that spawned the process (its context is stored with the process,
//! so a run on another host, after a crash, continues the same trace); each
//! attempt of a step is a span `step` inside it; a wait taking a signal is a
//! span `signal` linked to the span that sent it. Their attributes are in
//! [`crate::trace::attributes`]. Step spans are `debug`-level `tracing`
//! spans: the exporting layer enables the engine's `debug` spans for itself,
//! so the log's filter does not hide them from the collector.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The service name when neither [`OtelConfig::service_name`] nor
/// `OTEL_SERVICE_NAME` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "steadfast";

/// Where and as what spans are exported.
#[derive(Clone, Debug, Default)]
pub struct OtelConfig {
    endpoint: Option<String>,
    service_name: Option<String>,
    timeout: Option<Duration>,
}

impl OtelConfig {
    /// The configuration from the environment (`OTEL_EXPORTER_OTLP_*`,
    /// `OTEL_SERVICE_NAME`), read when the exporter is built.
    pub fn from_env() -> Self {
        OtelConfig::default()
    }

    /// The collector's base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g.
    /// `http://collector:4318`): spans are posted to `<url>/v1/traces`.
    /// Overrides the environment.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The service name the spans are exported under (the resource's
    /// `service.name`). Overrides `OTEL_SERVICE_NAME`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// How long one export request may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The URL spans are posted to when an endpoint was given.
    fn traces_url(&self) -> Option<String> {
        self.endpoint
            .as_deref()
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }

    fn resolved_service_name(&self) -> String {
        self.service_name
            .clone()
            .or_else(|| {
                std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned())
    }
}

/// Why OpenTelemetry export could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// The exporter could not be built (an endpoint that is not a URL, a
    /// bad `OTEL_EXPORTER_OTLP_*` variable).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    /// The exporter's own runtime could not be started.
    #[error("cannot start the OTLP exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// A global `tracing` subscriber is already installed ([`init`] only;
    /// use [`layer`] with it instead).
    #[error("a global tracing subscriber is already installed: {0}")]
    Subscriber(String),
}

/// Keeps the exporter running; dropping it exports the spans still queued
/// and shuts the exporter down (blocking for at most the export timeout).
#[must_use = "dropping the guard shuts the exporter down"]
#[derive(Debug)]
pub struct OtelGuard {
    provider: SdkTracerProvider,
}

impl OtelGuard {
    /// Exports every span that ended so far, waiting for the collector's
    /// answer (blocking).
    pub fn flush(&self) {
        if let Err(err) = self.provider.force_flush() {
            tracing::warn!(error = %err, "exporting spans failed");
        }
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("steadfast: shutting the OTLP exporter down failed: {err}");
        }
    }
}

/// Installs the global `tracing` subscriber: a log to stderr filtered by
/// `RUST_LOG` (`info` when unset) and the OTLP exporter ([`layer`]). Also
/// sets the global OpenTelemetry tracer provider and the W3C trace context
/// propagator.
pub fn init(config: OtelConfig) -> Result<OtelGuard, OtelError> {
    let (otel, guard) = layer(config)?;
    let log_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(log_filter),
        )
        .with(otel)
        .try_init()
        .map_err(|e| OtelError::Subscriber(e.to_string()))?;
    Ok(guard)
}

/// The exporting layer for a subscriber the program builds itself, and the
/// guard that keeps the exporter running. The layer has its own filter: the
/// engine's spans down to `debug` (step attempts), everything else from
/// `info`. Also sets the global OpenTelemetry tracer provider and the W3C
/// trace context propagator.
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt as _;
/// use tracing_subscriber::util::SubscriberInitExt as _;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (otel, _guard) = steadfast::otel::layer(
///     steadfast::otel::OtelConfig::from_env().service_name("billing"),
/// )?;
/// tracing_subscriber::registry().with(otel).init();
/// # Ok(()) }
/// ```
pub fn layer<S>(config: OtelConfig) -> Result<(impl Layer<S>, OtelGuard), OtelError>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let client = ExportClient::start()?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(client);
    if let Some(url) = config.traces_url() {
        exporter = exporter.with_endpoint(url);
    }
    if let Some(timeout) = config.timeout {
        exporter = exporter.with_timeout(timeout);
    }
    let exporter = exporter
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.resolved_service_name())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("steadfast");
    let filter = Targets::new()
        .with_target("steadfast", LevelFilter::DEBUG)
        .with_default(LevelFilter::INFO);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter);
    Ok((layer, OtelGuard { provider }))
}

/// The HTTP client of the exporter: hyper on a small Tokio runtime of its
/// own, so exporting works from the exporter's background thread and when
/// the guard is dropped, whatever runtime (if any) the program uses.
#[derive(Debug)]
struct ExportClient {
    client: opentelemetry_http::hyper::HyperClient,
    runtime: OwnRuntime,
}

/// A runtime that shuts down without blocking when dropped (also inside
/// another runtime).
#[derive(Debug)]
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl ExportClient {
    fn start() -> Result<Self, OtelError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("steadfast-otlp")
            .enable_all()
            .build()?;
        // Hyper's client spawns its connection tasks: build it inside.
        let client = {
            let _inside = runtime.enter();
            opentelemetry_http::hyper::HyperClient::with_default_connector(
                Duration::from_secs(10),
                None,
            )
        };
        Ok(ExportClient {
            client,
            runtime: OwnRuntime(Some(runtime)),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let Some(runtime) = &self.runtime.0 else {
            return Err("the OTLP exporter's runtime is shut down".into());
        };
        let client = self.client.clone();
        runtime
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|e| -> HttpError { Box::new(e) })?
    }
}
