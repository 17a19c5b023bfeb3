//! `/metrics` in the Prometheus text format, written by
//! `metrics-exporter-prometheus`.
//!
//! What the store can answer cheaply:
//!
//! * `steadfast_processes{status}`: processes per status (one grouped
//!   count).
//! * `steadfast_unfinished_processes{kind,status}`: running, suspended and
//!   blocked processes per kind, read by keyset pages of at most
//!   [`KIND_SCAN_CAP`] rows per status (`steadfast_unfinished_processes_truncated`
//!   is 1 when the cap was hit; the store has no per-kind count yet).
//! * `steadfast_overdue_seconds`: how far the earliest due wake-up lies in
//!   the past (0 when none is due): a growing value means workers are not
//!   keeping up or none is running.
//! * `steadfast_function_sources`: captured process function sources.
//!
//! Step latency histograms, retries and wake-up lag per process are only
//! known inside the hosts that run the processes; they are not in the store.
//! A worker exports them (`steadfast worker --metrics ADDR`); a program
//! that runs a host and the dashboard in one process installs a recorder
//! built by [`exporter`] and passes its handle to
//! [`crate::DashboardOptions::metrics`], and `/metrics` then shows both.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{describe_gauge, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use steadfast::{ListFilter, ProcessId, Status, Timestamp};

use crate::AppState;

/// At most this many unfinished processes per status are read for the
/// per-kind gauges on each scrape.
pub const KIND_SCAN_CAP: usize = 10_000;

/// Bucket bounds (seconds) of the hosts' latency histograms.
pub const SECONDS_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Bucket bounds of the stores' group-commit batch sizes.
pub const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A Prometheus exporter set up for Steadfast's metrics: histograms (not
/// summaries) with [`SECONDS_BUCKETS`] for every `*_seconds` metric and
/// [`BATCH_BUCKETS`] for the batch sizes. Install it and keep its handle:
///
/// ```
/// let handle = steadfast_dashboard::metrics::exporter()
///     .install_recorder()
///     .expect("no other recorder installed");
/// steadfast::describe_metrics();
/// assert!(handle.render().is_empty() || handle.render().contains('#'));
/// ```
pub fn exporter() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(steadfast::metric_names::STORE_BATCH_SIZE.to_owned()),
                &BATCH_BUCKETS,
            )
        })
        .expect("bucket lists are not empty")
}

/// `GET /metrics`.
pub async fn handler(State(app): State<AppState>) -> Response {
    match render(&app).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("store error: {err}\n"),
        )
            .into_response(),
    }
}

/// The store's gauges (read now, into a recorder of this scrape only, so
/// a kind that has no unfinished process any more is gone), then whatever
/// the process-wide recorder given in the options holds.
async fn render(app: &AppState) -> Result<String, steadfast::StoreError> {
    let gauges = read(app).await?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || gauges.set());
    let mut out = handle.render();
    if let Some(global) = &app.inner.metrics {
        out.push_str(&global.render());
    }
    Ok(out)
}

/// What one scrape read from the store.
struct Gauges {
    counts: steadfast::Counts,
    by_kind: BTreeMap<(String, &'static str), u64>,
    truncated: bool,
    overdue: f64,
    sources: usize,
}

impl Gauges {
    /// Sets every gauge in the current recorder.
    fn set(&self) {
        describe_gauge!("steadfast_processes", "Processes by status.");
        for status in Status::ALL {
            gauge!("steadfast_processes", "status" => status.as_str())
                .set(self.counts.of(status) as f64);
        }
        describe_gauge!(
            "steadfast_unreadable_processes",
            "Process rows whose stored data does not decode (shown as error rows in the list)."
        );
        gauge!("steadfast_unreadable_processes").set(self.counts.unreadable as f64);
        describe_gauge!(
            "steadfast_unfinished_processes",
            "Running, suspended and blocked processes by kind."
        );
        for ((kind, status), n) in &self.by_kind {
            gauge!("steadfast_unfinished_processes", "kind" => kind.clone(), "status" => *status)
                .set(*n as f64);
        }
        describe_gauge!(
            "steadfast_unfinished_processes_truncated",
            "1 when the per-kind gauges stopped at the scan cap."
        );
        gauge!("steadfast_unfinished_processes_truncated").set(f64::from(u8::from(self.truncated)));
        describe_gauge!(
            "steadfast_overdue_seconds",
            "How far the earliest due wake-up lies in the past."
        );
        gauge!("steadfast_overdue_seconds").set(self.overdue);
        describe_gauge!(
            "steadfast_function_sources",
            "Process function sources captured in the store."
        );
        gauge!("steadfast_function_sources").set(self.sources as f64);
    }
}

async fn read(app: &AppState) -> Result<Gauges, steadfast::StoreError> {
    let store = &app.inner.store;
    let counts = store.counts().await?;
    let mut by_kind: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let mut truncated = false;
    for status in [Status::Running, Status::Suspended, Status::Blocked] {
        let mut after: Option<ProcessId> = None;
        let mut seen = 0;
        loop {
            let page = store
                .list(&ListFilter {
                    status: Some(status),
                    after: after.clone(),
                    limit: 1000,
                    ..ListFilter::default()
                })
                .await?;
            seen += page.len();
            let full = page.len() == 1000;
            after = match page.last() {
                Some(last) => ProcessId::new(last.id()).ok(),
                None => None,
            };
            // Rows that do not decode are counted by
            // `steadfast_unreadable_processes` (when their status does not
            // decode) or skipped here: their kind may be what is corrupt.
            for r in page.into_iter().filter_map(steadfast::Listed::into_record) {
                *by_kind.entry((r.kind, status.as_str())).or_default() += 1;
            }
            if !full || after.is_none() {
                break;
            }
            if seen >= KIND_SCAN_CAP {
                truncated = true;
                break;
            }
        }
    }
    let overdue = match store.next_wake().await? {
        Some(at) => Timestamp::now_system().saturating_since(at).as_secs_f64(),
        None => 0.0,
    };
    let sources = store.sources().await.map(|s| s.len()).unwrap_or(0);
    Ok(Gauges {
        counts,
        by_kind,
        truncated,
        overdue,
        sources,
    })
}
