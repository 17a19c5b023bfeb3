//! `steadfast signal` with a mistyped payload, `steadfast signals`,
//! `steadfast signal discard`, and reserved names, end to end.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steadfast");

/// The `steadfast` binary with its example kinds (`--examples`, through
/// the environment so every command line stays as it is).
fn steadfast() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("STEADFAST_EXAMPLES", "1");
    cmd
}

fn run(db: &Path, args: &[&str]) -> Output {
    steadfast()
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("STEADFAST_DB")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "steadfast {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "steadfast {args:?} should fail with exit code 1\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn signals_json(db: &Path, id: &str) -> Vec<Value> {
    let listed: Value = serde_json::from_str(&ok(db, &["signals", id, "--json"])).unwrap();
    listed.as_array().unwrap().clone()
}

#[test]
fn a_mistyped_signal_is_rejected_listed_and_a_pending_one_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let services = dir.path().join("services").display().to_string();
    let worker = [
        "worker",
        "--exit-when-idle",
        "--services",
        services.as_str(),
    ];
    ok(
        &db,
        &[
            "spawn",
            "onboarding",
            "ada",
            r#"{"email":"ada@example.com"}"#,
        ],
    );
    ok(&db, &worker);

    // The dashboard's default form and a hasty operator both send `null`.
    ok(&db, &["signal", "ada", "email verified", "null"]);
    ok(&db, &worker);

    let shown: Value = serde_json::from_str(&ok(&db, &["show", "ada", "--json"])).unwrap();
    assert_eq!(
        shown["process"]["status"], "suspended",
        "a mistyped signal does not block the process: {shown}"
    );
    assert_eq!(
        shown["process"]["waiting_for"],
        serde_json::json!(["email verified"])
    );
    let signals = shown["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1, "{shown}");
    assert_eq!(signals[0]["state"], "rejected");
    assert_eq!(signals[0]["payload"], Value::Null);
    let reason = signals[0]["reason"].as_str().unwrap();
    assert!(reason.contains("Verification"), "{reason}");
    let text = ok(&db, &["show", "ada"]);
    assert!(text.contains("rejected"), "{text}");
    assert!(text.contains("invalid type: null"), "{text}");

    // A signal nothing waits for yet stays pending and can be discarded.
    ok(&db, &["signal", "ada", "unsubscribe", r#"{"why":"test"}"#]);
    let listed = signals_json(&db, "ada");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["state"], "pending");
    let pending_id = listed[1]["id"].as_i64().unwrap().to_string();
    let table = ok(&db, &["signals", "ada", "--pending"]);
    assert!(table.contains("unsubscribe"), "{table}");
    assert!(!table.contains("rejected"), "{table}");
    let out = ok(&db, &["signal", "discard", "ada", &pending_id]);
    assert!(out.contains("discarded"), "{out}");
    let listed = signals_json(&db, "ada");
    assert_eq!(listed[1]["state"], "discarded");
    let out = ok(&db, &["signals", "ada", "--pending"]);
    assert!(out.contains("no pending signals"), "{out}");

    let err = fails(&db, &["signal", "discard", "ada", &pending_id]);
    assert!(err.contains("already discarded"), "{err}");
    let rejected_id = listed[0]["id"].as_i64().unwrap().to_string();
    let err = fails(&db, &["signal", "discard", "ada", &rejected_id]);
    assert!(err.contains("already rejected"), "{err}");
    let err = fails(&db, &["signal", "discard", "ada", "9999"]);
    assert!(err.contains("no signal with id 9999"), "{err}");
    let err = fails(&db, &["signal", "discard", "nobody", "1"]);
    assert!(err.contains("no process with id"), "{err}");
    let err = fails(&db, &["signals", "nobody"]);
    assert!(err.contains("no process with id"), "{err}");

    // Names of the engine's own signals are refused, and nothing is stored.
    let err = fails(
        &db,
        &["signal", "ada", "steadfast: child \"x\" ended", "null"],
    );
    assert!(err.contains("reserved"), "{err}");
    assert_eq!(signals_json(&db, "ada").len(), 2);

    // Sending still works as before.
    ok(
        &db,
        &[
            "signal",
            "ada",
            "email verified",
            r#"{"secret":"00000000-0000-0000-0000-000000000000"}"#,
        ],
    );
    ok(&db, &worker);
    let listed = signals_json(&db, "ada");
    assert_eq!(listed[2]["state"], "consumed", "{listed:?}");
}
