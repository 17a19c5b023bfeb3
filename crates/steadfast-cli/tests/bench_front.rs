//! `steadfast bench` is a thin front over the `steadfast-bench` crate: the
//! same arguments and JSON fields, and its worker children (W3–W5) are the
//! `steadfast` binary itself through the hidden `bench worker` subcommand,
//! while the production `steadfast worker` does not know the bench's kinds.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steadfast");

/// Runs `steadfast bench --json ARGS`; its one JSON line.
fn bench(args: &[&str]) -> Value {
    let output = Command::new(BIN)
        .args(["bench", "--json"])
        .args(args)
        .env_remove("STEADFAST_DB")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn w1_through_the_front() {
    let report = bench(&["--workload", "w1", "--count", "3"]);
    assert_eq!(report["workload"], "w1");
    assert_eq!(report["count"], 3);
    for key in [
        "p50_ms",
        "p99_ms",
        "floor_ms",
        "p50_over_floor",
        "fsync_p50_ms",
    ] {
        assert!(report[key].is_number(), "{key}: {report}");
    }
}

#[test]
fn w3_worker_children_through_the_front() {
    // The sleepers are run by a child `steadfast bench worker`: they all
    // finish only if that child knows the sleeper kind.
    let report = bench(&["--workload", "w3", "--count", "20", "--sleep-ms", "300"]);
    assert_eq!(report["finished"], 20, "{report}");
    assert_eq!(report["not_completed"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_production_worker_does_not_run_the_bench_sleeper() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    {
        let store = steadfast::SqliteStore::open(&db).await.unwrap();
        let client = steadfast_bench::sleeper::register(steadfast::HostBuilder::new(store.clone()))
            .build_client();
        client
            .spawn(steadfast_bench::sleeper::KIND, "s1", &10u64)
            .await
            .unwrap();
        drop(client);
        store.close().await.unwrap();
    }
    // The generic binary's worker with the example kinds: what a user runs
    // without kinds of their own. The bench's sleeper is not among them.
    let worker = Command::new(BIN)
        .arg("--examples")
        .arg("--db")
        .arg(&db)
        .args(["worker", "--exit-when-idle"])
        .arg("--services")
        .arg(dir.path().join("services"))
        .env_remove("STEADFAST_DB")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        worker.status.success(),
        "{}",
        String::from_utf8_lossy(&worker.stderr)
    );
    let show = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["show", "s1", "--json"])
        .env_remove("STEADFAST_DB")
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    let process = &shown["process"];
    assert_eq!(process["status"], "blocked", "{shown}");
    assert!(
        process["error"]
            .as_str()
            .unwrap_or("")
            .contains("not registered"),
        "{shown}"
    );
}
