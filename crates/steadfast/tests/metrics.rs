//! What a host reports through the `metrics` facade, read back from the
//! Prometheus exporter installed as this test binary's recorder: per-kind
//! counters, step latency per kind, wake-up lag of timers, store write
//! latency per operation and group-commit batch sizes.

#[path = "support/metrics.rs"]
mod metrics_support;

use std::time::Duration;

use steadfast::{Host, Process, SqliteStore, StepError, StepFailed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_reports_per_kind_steps_latency_wake_up_lag_and_store_writes() {
    metrics_support::install();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("metrics.db"))
        .await
        .expect("open store");
    let host = Host::builder(store)
        .poll_interval(Duration::from_millis(20))
        .register("napper", |p: Process, (): ()| async move {
            p.step("before", || async { Ok::<_, StepError>(1) }).await?;
            p.sleep("nap", Duration::from_millis(30)).await;
            p.step("after", || async { Ok::<_, StepError>(2) }).await?;
            Ok::<_, StepFailed>(())
        })
        .register("single", |p: Process, (): ()| async move {
            p.step("only", || async { Ok::<_, StepError>(()) }).await?;
            Ok::<_, StepFailed>(())
        })
        .build();
    host.spawn("napper", "n-1", &()).await.expect("spawn");
    host.spawn("single", "s-1", &()).await.expect("spawn");
    let () = host.outcome("n-1").await.expect("napper finishes");
    let () = host.outcome("s-1").await.expect("single finishes");
    let id = host.id().as_str().to_owned();
    let sum = |name: &str, with: &[(&str, &str)]| metrics_support::sum(&id, name, with);
    let text = metrics_support::text();

    assert_eq!(
        sum("steadfast_steps_total", &[("kind", "napper")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        sum("steadfast_steps_total", &[("kind", "single")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum(
            "steadfast_step_duration_seconds_count",
            &[("kind", "napper")]
        ),
        2.0,
        "{text}"
    );
    assert!(
        sum("steadfast_runs_total", &[("kind", "napper")]) >= 1.0,
        "{text}"
    );
    assert_eq!(
        sum("steadfast_finished_total", &[("kind", "single")]),
        1.0,
        "{text}"
    );
    // The one timer fired once, its lag observed for its kind only.
    assert_eq!(
        sum("steadfast_wakeup_lag_seconds_count", &[("kind", "napper")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        sum("steadfast_wakeup_lag_seconds_count", &[("kind", "single")]),
        0.0,
        "{text}"
    );
    // Journal appends: two steps and the timer's schedule and firing.
    assert!(
        sum(
            "steadfast_store_write_duration_seconds_count",
            &[("op", "append")]
        ) >= 5.0,
        "{text}"
    );
    assert!(
        sum(
            "steadfast_store_write_duration_seconds_count",
            &[("op", "finish")]
        ) >= 2.0,
        "{text}"
    );
    // Claims: the napper is claimed twice (at its spawn and when its timer
    // fired), and the single process may share its first claim.
    assert!(
        sum(
            "steadfast_store_write_duration_seconds_count",
            &[("op", "claim")]
        ) >= 2.0,
        "{text}"
    );
    assert_eq!(sum("steadfast_running_processes", &[]), 0.0, "{text}");
    // The SQLite writer's group commits (no host label: one per store).
    let batches: f64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("steadfast_store_batch_size_count{store=\"sqlite\"} "))
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    assert!(batches >= 1.0, "{text}");
    host.shutdown().await;
}
