//! `/metrics` in the Prometheus text format.
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
//! known inside the hosts that run the processes; they are not in the store
//! and so not here. Export them from the worker process.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use steadfast::{ListFilter, ProcessId, Status, Timestamp};

use crate::AppState;

/// At most this many unfinished processes per status are read for the
/// per-kind gauges on each scrape.
pub const KIND_SCAN_CAP: usize = 10_000;

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

async fn render(app: &AppState) -> Result<String, steadfast::StoreError> {
    let store = &app.inner.store;
    let mut out = String::new();
    let counts = store.counts().await?;
    gauge_head(&mut out, "steadfast_processes", "Processes by status.");
    for status in Status::ALL {
        let n = counts.of(status);
        let _ = writeln!(out, "steadfast_processes{{status=\"{status}\"}} {n}");
    }
    gauge_head(
        &mut out,
        "steadfast_unreadable_processes",
        "Process rows whose stored data does not decode (shown as error rows in the list).",
    );
    let _ = writeln!(out, "steadfast_unreadable_processes {}", counts.unreadable);

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
    gauge_head(
        &mut out,
        "steadfast_unfinished_processes",
        "Running, suspended and blocked processes by kind.",
    );
    for ((kind, status), n) in &by_kind {
        let _ = writeln!(
            out,
            "steadfast_unfinished_processes{{kind=\"{}\",status=\"{status}\"}} {n}",
            label(kind)
        );
    }
    gauge_head(
        &mut out,
        "steadfast_unfinished_processes_truncated",
        "1 when the per-kind gauges stopped at the scan cap.",
    );
    let _ = writeln!(
        out,
        "steadfast_unfinished_processes_truncated {}",
        u8::from(truncated)
    );

    let overdue = match store.next_wake().await? {
        Some(at) => Timestamp::now_system().saturating_since(at).as_secs_f64(),
        None => 0.0,
    };
    gauge_head(
        &mut out,
        "steadfast_overdue_seconds",
        "How far the earliest due wake-up lies in the past.",
    );
    let _ = writeln!(out, "steadfast_overdue_seconds {overdue}");

    let sources = store.sources().await.map(|s| s.len()).unwrap_or(0);
    gauge_head(
        &mut out,
        "steadfast_function_sources",
        "Process function sources captured in the store.",
    );
    let _ = writeln!(out, "steadfast_function_sources {sources}");
    Ok(out)
}

fn gauge_head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A label value escaped as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
