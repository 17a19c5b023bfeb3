//! `steadfast-bench` with small counts, on SQLite (and on PostgreSQL when
//! `STEADFAST_TEST_PG` points at a server, default the local one): every
//! workload prints one JSON object with the expected keys and sane values.
//! Nothing here asserts on time — only that figures exist, are numbers and
//! are not negative.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steadfast-bench");

/// Runs `steadfast-bench --json` with `args` and returns its one JSON line.
fn bench(args: &[&str]) -> Value {
    let mut lines = bench_lines(args);
    assert_eq!(lines.len(), 1, "one JSON line per workload: {lines:?}");
    lines.remove(0)
}

/// Runs `steadfast-bench --json` with `args` and returns its JSON lines.
fn bench_lines(args: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(BIN);
    cmd.arg("--json")
        .args(args)
        .env_remove("STEADFAST_DB")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("steadfast-bench {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench {args:?} failed: {stderr}\n{stdout}"
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Asserts that `report` has the common keys with the given values.
fn common(report: &Value, workload: &str, count: u64) {
    assert_eq!(report["workload"], workload);
    assert!(report["store"] == "sqlite" || report["store"] == "postgres");
    assert_eq!(report["count"], count);
    assert!(report["durability"].is_string(), "{report}");
    assert!(
        report["in_flight"].as_u64().is_some_and(|n| n >= 1),
        "{report}"
    );
    assert!(!report["workers"].is_null(), "{report}");
    assert!(report["notes"].is_array(), "{report}");
    let machine = &report["machine"];
    assert!(
        machine["cores"].as_u64().is_some_and(|n| n >= 1),
        "{report}"
    );
    assert!(machine["mem_total_mib"].as_u64().is_some(), "{report}");
    assert!(machine["kernel"].is_string(), "{report}");
    assert!(machine["release_build"].is_boolean(), "{report}");
}

/// Asserts that every key is a non-negative number.
fn figures(report: &Value, keys: &[&str]) {
    for key in keys {
        let value = report[*key].as_f64();
        assert!(
            value.is_some_and(|v| v.is_finite() && v >= 0.0),
            "{key} is not a non-negative number: {report}"
        );
    }
}

#[test]
fn w1_latency() {
    let report = bench(&["--workload", "w1", "--count", "5"]);
    common(&report, "w1", 5);
    assert_eq!(report["durability"], "full");
    figures(
        &report,
        &[
            "p50_ms",
            "p99_ms",
            "mean_ms",
            "max_ms",
            "fsync_p50_ms",
            "fsync_p99_ms",
            "commit_p50_ms",
            "commit_p99_ms",
            "floor_ms",
            "p50_over_floor",
            "p99_over_p50",
        ],
    );
    assert_eq!(report["store"], "sqlite");
    // The spawn claims the process: spawn, 10 appends, finish.
    assert_eq!(report["durable_commits"], 12);
    // Where the time went: the writes' medians from the engine's metrics.
    figures(
        &report,
        &[
            "spawn_p50_ms",
            "append_p50_ms",
            "finish_p50_ms",
            "writes_ms",
            "writes_over_commits",
        ],
    );
    assert_eq!(report["appends_per_process"], 10.0);
    // One floor sample after each measured process: interleaved.
    assert_eq!(report["floor_samples"], 5);
    assert!(
        report["floor_sample"]
            .as_str()
            .unwrap()
            .contains("fdatasync")
    );
    // floor_ms is 12 commits at the samples' median (rounded to µs).
    let floor = report["floor_ms"].as_f64().unwrap();
    let commit = report["commit_p50_ms"].as_f64().unwrap();
    assert!((floor - 12.0 * commit).abs() < 0.02, "{report}");
    assert!(report["p50_ms"].as_f64() <= report["p99_ms"].as_f64());
    assert!(report["p99_ms"].as_f64() <= report["max_ms"].as_f64());
}

#[test]
fn w1_process_crash_durability() {
    let report = bench(&[
        "--workload",
        "w1",
        "--count",
        "3",
        "--durability",
        "process-crash",
    ]);
    common(&report, "w1", 3);
    assert_eq!(report["durability"], "process-crash");
    figures(&report, &["p50_ms", "floor_ms"]);
}

#[test]
fn w2_throughput() {
    let report = bench(&["--workload", "w2", "--count", "50"]);
    common(&report, "w2", 50);
    assert_eq!(report["in_flight"], 100);
    figures(
        &report,
        &[
            "processes_per_s",
            "steps_per_s",
            "total_s",
            "peak_rss_mib",
            "cpu_s",
            "cpu_cores_used",
        ],
    );
    assert!(report["peak_rss_mib"].as_f64().unwrap() > 0.0);
    // Running 500 steps takes CPU time; a figure stuck at 0 is a bug.
    assert!(report["cpu_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["pg_commits_per_step"].is_null(), "{report}");
}

#[test]
fn w3_sleepers() {
    let report = bench(&["--workload", "w3", "--count", "200", "--sleep-ms", "500"]);
    common(&report, "w3", 200);
    assert_eq!(report["sleep_ms"], 500);
    assert_eq!(report["finished"], 200);
    assert_eq!(report["not_completed"], 0);
    figures(
        &report,
        &[
            "spawn_s",
            "suspend_all_s",
            "worker_rss_mib",
            "worker_hwm_mib",
        ],
    );
    assert!(report["worker_rss_mib"].as_f64().unwrap() > 0.0);
    // Null only when the sleep ended before the due times were read.
    assert!(report["wake_all_s"].is_number() || report["wake_all_s"].is_null());
}

#[test]
fn w4_crash() {
    let report = bench(&["--workload", "w4", "--count", "300"]);
    common(&report, "w4", 300);
    assert_eq!(report["finished"], 300);
    assert_eq!(report["processes"], 300);
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["extra_entries"], 0, "{report}");
    assert_eq!(report["steps_ran"], 3000, "{report}");
    figures(&report, &["reran", "in_flight_at_kill", "killed_after_s"]);
    // At-least-once: re-runs come only from processes in flight at the kill.
    let reran = report["reran"].as_u64().unwrap();
    let in_flight = report["in_flight_at_kill"].as_u64().unwrap();
    assert!(reran <= in_flight, "{report}");
    if in_flight > 0 {
        figures(&report, &["first_recovered_s", "recover_s"]);
    }
}

#[test]
fn w5_scale_out() {
    let report = bench(&["--workload", "w5", "--count", "100", "--workers", "2"]);
    common(&report, "w5", 100);
    assert_eq!(report["workers"], serde_json::json!([2]));
    assert_eq!(report["finished"], serde_json::json!([100]));
    assert_eq!(report["lost"], serde_json::json!([0]));
    let steps = report["steps_per_s"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert!(steps[0].as_f64().is_some_and(|v| v > 0.0), "{report}");
}

/// W6 on RabbitMQ (127.0.0.1:5672), one round of each.
#[test]
fn w6_bus() {
    let report = bench(&["--workload", "w6", "--count", "30", "--rounds", "1"]);
    common(&report, "w6", 30);
    assert_eq!(report["broker"], "rabbitmq");
    assert_eq!(report["rounds"], 1);
    figures(
        &report,
        &[
            "messages_per_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "w2_processes_per_s",
            "ratio_w6_over_w2",
        ],
    );
    assert_eq!(report["messages_per_s_rounds"].as_array().unwrap().len(), 1);
}

#[test]
fn refuses_an_existing_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.db");
    std::fs::write(&file, b"not empty").unwrap();
    let output = Command::new(BIN)
        .arg("--db")
        .arg(&file)
        .args(["--workload", "w1", "--count", "1"])
        .env_remove("STEADFAST_DB")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must name a directory"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not empty");
}

#[test]
fn uses_a_given_directory_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("--db")
        .arg(format!("sqlite:{}", dir.path().display()))
        .args(["--workload", "w2", "--count", "20", "--json"])
        .env_remove("STEADFAST_DB")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["count"], 20);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn baseline_runs_both_binaries_and_prints_ratios() {
    // The "old" binary is a copy of this one under the name of an old
    // `steadfast-bench` build: the comparison itself is what is tested.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("steadfast-bench-old");
    std::fs::copy(BIN, &old).unwrap();
    let lines = bench_lines(&[
        "--workload",
        "w1",
        "--count",
        "3",
        "--rounds",
        "2",
        "--baseline",
        old.to_str().unwrap(),
    ]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["workload"], "w1");
    assert_eq!(line["rounds"], 2);
    let p50 = &line["figures"]["p50_ms"];
    assert_eq!(p50["new"].as_array().unwrap().len(), 2, "{line}");
    assert_eq!(p50["old"].as_array().unwrap().len(), 2, "{line}");
    assert!(p50["ratio"].as_f64().is_some_and(|r| r > 0.0), "{line}");
    assert!(
        line["figures"]["p50_over_floor"]["ratio"].is_number(),
        "{line}"
    );
    // Settings are not compared.
    assert!(line["figures"].get("count").is_none(), "{line}");
}

#[test]
fn baseline_refuses_a_missing_binary() {
    let output = Command::new(BIN)
        .args(["--workload", "w1", "--baseline", "/nonexistent/steadfast"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--baseline /nonexistent/steadfast: no such file"),
        "{stderr}"
    );
}

/// The PostgreSQL URL of the tests, with a schema of this test's own.
fn pg_url(schema: &str) -> String {
    let base = std::env::var("STEADFAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}schema={schema}")
}

/// Drops `schema` on the test server.
fn drop_schema(schema: &str) {
    let base = std::env::var("STEADFAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let status = Command::new("psql")
        .arg(&base)
        .args(["-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "cannot drop {schema}");
}

#[test]
fn postgres_w1_floor_and_w2_server_figures() {
    let schema = format!(
        "bench_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let url = pg_url(&schema);
    let w1 = bench(&["--db", &url, "--workload", "w1", "--count", "4"]);
    let w2 = bench(&["--db", &url, "--workload", "w2", "--count", "30"]);
    drop_schema(&schema);

    common(&w1, "w1", 4);
    assert_eq!(w1["store"], "postgres");
    assert_eq!(w1["floor_samples"], 4);
    assert!(
        w1["floor_sample"].as_str().unwrap().contains("INSERT"),
        "{w1}"
    );
    figures(&w1, &["commit_p50_ms", "floor_ms", "p50_over_floor"]);
    assert!(w1["commit_p50_ms"].as_f64().unwrap() > 0.0, "{w1}");

    common(&w2, "w2", 30);
    assert_eq!(w2["store"], "postgres");
    figures(
        &w2,
        &[
            "cpu_cores_used",
            "pg_commits_per_step",
            "pg_statements_per_step",
        ],
    );
    // 300 steps cannot be made durable without commits and statements.
    assert!(w2["pg_commits_per_step"].as_f64().unwrap() > 0.0, "{w2}");
    assert!(w2["pg_statements_per_step"].as_f64().unwrap() > 0.0, "{w2}");
    // The server runs on this machine in the test setup: its CPU is seen.
    figures(&w2, &["pg_cpu_s", "pg_cores_used", "pg_cpu_share"]);
    assert!(w2["pg_cpu_s"].as_f64().unwrap() > 0.0, "{w2}");
}
