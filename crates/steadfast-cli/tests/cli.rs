//! End-to-end tests of the `steadfast` binary.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steadfast");

/// The `steadfast` binary with its example kinds (`--examples`, through
/// the environment so every command line stays as it is).
fn steadfast() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("STEADFAST_EXAMPLES", "1");
    cmd
}

/// Runs the binary with `args` on the database `db`, failing the test after
/// `limit`.
fn run_with(db: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = steadfast()
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("STEADFAST_DB")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "steadfast {args:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(db: &Path, args: &[&str]) -> Output {
    run_with(db, args, Duration::from_secs(60))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and asserts success, returning stdout.
fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "steadfast {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs and asserts failure with exit code 1, returning stderr.
fn fails(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "steadfast {args:?} should fail with exit code 1\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn list_on_a_missing_db_fails_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.db");
    for args in [&["list"][..], &["show", "x"], &["signal", "x", "s", "null"]] {
        let err = fails(&db, args);
        assert!(err.contains("no database at"), "{err}");
        assert!(err.contains("steadfast demo"), "{err}");
    }
    assert!(!db.exists());
}

#[test]
fn a_foreign_file_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    let content = "these are my notes, not a database\n".repeat(10);
    std::fs::write(&db, &content).unwrap();
    for args in [
        &["list"][..],
        &["show", "x"],
        &["spawn", "ten steps", "t", "null"],
    ] {
        let err = fails(&db, args);
        assert!(err.contains("is not a Steadfast database"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&db).unwrap(), content);
}

#[test]
fn spawn_show_signal_list_and_worker_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let uri = format!("sqlite://{}", db.display());
    let db_uri = Path::new(&uri);

    let out = ok(
        &db,
        &[
            "spawn",
            "onboarding",
            "ada",
            r#"{"email":"ada@example.com"}"#,
        ],
    );
    assert!(out.contains("created"), "{out}");
    let out = ok(
        db_uri,
        &[
            "spawn",
            "onboarding",
            "ada",
            r#"{ "email": "ada@example.com" }"#,
        ],
    );
    assert!(out.contains("existing"), "{out}");
    // The input is checked against the kind's type.
    let err = fails(&db, &["spawn", "onboarding", "bob", r#"{"mail": 1}"#]);
    assert!(err.contains("Signup"), "{err}");
    let err = fails(&db, &["spawn", "no such kind", "bob", "null"]);
    assert!(err.contains("ten steps"), "{err}");

    let out = ok(&db, &["show", "ada"]);
    assert!(out.contains("onboarding"), "{out}");
    assert!(out.contains("ada@example.com"), "{out}");
    assert!(out.contains("running"), "{out}");

    let out = ok(
        &db,
        &[
            "signal",
            "ada",
            "email verified",
            r#"{"secret":"00000000-0000-0000-0000-000000000000"}"#,
        ],
    );
    assert!(out.contains("email verified"), "{out}");

    ok(&db, &["spawn", "ten steps", "ten", "null"]);
    let list: Value = serde_json::from_str(&ok(&db, &["list", "--json"])).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ada", "ten"]);
    assert_eq!(list[0]["kind"], "onboarding");
    assert_eq!(list[0]["status"], "running");

    let table = ok(&db, &["list", "--kind", "ten steps"]);
    assert!(table.contains("ten"), "{table}");
    assert!(!table.contains("ada"), "{table}");
    assert!(table.contains("running 2"), "{table}");
    let err = fails(&db, &["list", "--status", "sleeping"]);
    assert!(err.contains("running, suspended, blocked"), "{err}");

    // A worker runs both; onboarding then waits for a (right) secret.
    let out = run_with(
        &db,
        &["worker", "--exit-when-idle"],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("app-services").join("mail").is_dir());

    let shown: Value = serde_json::from_str(&ok(&db, &["show", "ten", "--json"])).unwrap();
    assert_eq!(shown["process"]["status"], "completed");
    let journal = shown["journal"].as_array().unwrap();
    assert_eq!(journal.len(), 10);
    assert!(journal.iter().all(|e| e["status"] == "completed"));

    let shown: Value = serde_json::from_str(&ok(&db, &["show", "ada", "--json"])).unwrap();
    assert_eq!(shown["process"]["status"], "suspended");
    assert_eq!(
        shown["process"]["waiting_for"],
        serde_json::json!(["email verified"])
    );
    let out = ok(&db, &["show", "ada"]);
    assert!(out.contains("1/email verified"), "{out}");
    assert!(out.contains("signal: email verified"), "{out}");
    let out = ok(&db, &["list", "--status", "suspended"]);
    assert!(out.contains("signal: email verified"), "{out}");

    let out = ok(&db, &["cancel", "ada"]);
    assert!(out.contains("cancelled"), "{out}");
    let err = fails(&db, &["retry", "ten"]);
    assert!(err.contains("completed"), "{err}");
}

#[test]
fn bad_json_and_unknown_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    ok(&db, &["spawn", "ten steps", "t1", "null"]);

    let err = fails(&db, &["signal", "t1", "go", r#"{"secret": }"#]);
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(err.contains("line 1 column"), "{err}");

    let err = fails(&db, &["show", "nobody"]);
    assert!(err.contains("no process with id"), "{err}");
    let err = fails(&db, &["signal", "nobody", "go", "null"]);
    assert!(err.contains("no process with id"), "{err}");
    let err = fails(&db, &["cancel", "nobody"]);
    assert!(err.contains("no process with id"), "{err}");
}

#[test]
fn the_demo_runs_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = steadfast()
        .args(["demo", "--dir"])
        .arg(dir.path())
        .env_remove("STEADFAST_DB")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "the demo failed\nstdout:\n{text}\nstderr:\n{}",
        stderr(&out)
    );
    assert!(text.contains("worker killed with SIGKILL"), "{text}");
    assert!(
        text.contains("Every process reached its expected end"),
        "{text}"
    );
    assert!(dir.path().join("steadfast.db").is_file());

    // The processes are there to inspect.
    let db = dir.path().join("steadfast.db");
    let list: Value = serde_json::from_str(&ok(&db, &["list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 5);
}

#[test]
fn rewind_purge_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("admin.db");
    let services = dir.path().join("services");
    let services = services.display().to_string();
    ok(&db, &["spawn", "ten steps", "job", "null"]);
    ok(
        &db,
        &[
            "spawn",
            "onboarding",
            "ada",
            r#"{"email":"ada@example.com"}"#,
        ],
    );
    ok(
        &db,
        &["worker", "--exit-when-idle", "--services", &services],
    );

    // check: the suspended onboarding's journal fits the built-in kinds.
    let checked = ok(&db, &["check"]);
    assert!(checked.contains("fits    ada (onboarding)"), "{checked}");

    // rewind needs a confirmation without a terminal, and names bad steps.
    let refused = fails(&db, &["rewind", "job", "step 5"]);
    assert!(refused.contains("--yes"), "{refused}");
    let unknown = fails(&db, &["rewind", "job", "step 99", "--yes"]);
    assert!(
        unknown.contains("no journal entry named \"step 99\""),
        "{unknown}"
    );
    let rewound = ok(&db, &["rewind", "job", "step 5", "--yes"]);
    assert!(rewound.contains("5 entries dropped"), "{rewound}");
    ok(
        &db,
        &["worker", "--exit-when-idle", "--services", &services],
    );
    let shown: Value = serde_json::from_str(&ok(&db, &["show", "job", "--json"])).unwrap();
    assert_eq!(shown["process"]["status"], "completed");
    assert_eq!(shown["journal"].as_array().map(Vec::len), Some(10));
    let log = std::fs::read_to_string(dir.path().join("services/step-runs.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| *l == "job 7").count(),
        2,
        "step 7 ran again"
    );
    assert_eq!(
        log.lines().filter(|l| *l == "job 2").count(),
        1,
        "step 2 did not"
    );

    // purge removes finished processes only.
    let purged = ok(&db, &["purge", "--older-than", "0", "--yes"]);
    assert!(purged.contains("1 finished processes purged"), "{purged}");
    let listed: Value = serde_json::from_str(&ok(&db, &["list", "--json"])).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ada"]);
}

#[test]
fn a_worker_serves_its_metrics() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("metrics.db");
    ok(&db, &["spawn", "ten steps", "m-1", "null"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let services = dir.path().join("services").display().to_string();
    let mut worker = steadfast()
        .arg("--db")
        .arg(&db)
        .args(["worker", "--services", &services, "--metrics", &addr])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut body = String::new();
    for _ in 0..200 {
        body.clear();
        if let Ok(mut conn) = std::net::TcpStream::connect(&addr) {
            conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .unwrap();
            conn.read_to_string(&mut body).unwrap();
            if body.contains("steadfast_steps_total{") && body.contains("} 10\n") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(body.contains("text/plain"), "{body}");
    let steps = body
        .lines()
        .find(|l| l.starts_with("steadfast_steps_total{"))
        .unwrap_or_default();
    assert!(steps.ends_with(" 10"), "{body}");
    assert!(
        steps.contains("kind=\"ten steps\""),
        "per-kind label: {body}"
    );
    // Through the exporter: help texts, a real histogram per kind with the
    // set buckets, store write latency per operation, group-commit sizes.
    for wanted in [
        "# HELP steadfast_steps_total ",
        "# TYPE steadfast_step_duration_seconds histogram",
        "le=\"0.005\"",
        "steadfast_store_write_duration_seconds_bucket{",
        "op=\"append\"",
        "steadfast_store_batch_size_bucket{store=\"sqlite\",le=\"1\"}",
        "steadfast_runs_total{",
    ] {
        assert!(body.contains(wanted), "{wanted} missing: {body}");
    }
    let durations = body
        .lines()
        .find(|l| l.starts_with("steadfast_step_duration_seconds_count{"))
        .unwrap_or_default();
    assert!(
        durations.contains("kind=\"ten steps\"") && durations.ends_with(" 10"),
        "{body}"
    );
}

/// One HTTP/1.0 request to `addr`; the whole answer (status line, headers,
/// body), or `None` while nothing listens.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn a_worker_serves_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("api.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let services = dir.path().join("services").display().to_string();
    let mut worker = steadfast()
        .arg("--db")
        .arg(&db)
        .args(["worker", "--services", &services, "--http", &addr])
        .env_remove("STEADFAST_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let spawn = r#"{"kind": "ten steps", "id": "h-1", "input": null}"#;
    let mut created = None;
    for _ in 0..400 {
        created = http(&addr, "POST", "/api/v1/processes", spawn);
        if created.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let outcome = http(&addr, "GET", "/api/v1/processes/h-1/outcome?wait=60s", "");
    let unknown = http(
        &addr,
        "POST",
        "/api/v1/processes",
        r#"{"kind": "nope", "id": "h-2"}"#,
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
    let created = created.expect("the API answered");
    assert!(created.starts_with("HTTP/1.0 201"), "{created}");
    let outcome = outcome.unwrap();
    assert!(outcome.starts_with("HTTP/1.0 200"), "{outcome}");
    assert!(outcome.contains(r#""status":"completed""#), "{outcome}");
    let unknown = unknown.unwrap();
    assert!(unknown.starts_with("HTTP/1.0 422"), "{unknown}");
    assert!(unknown.contains(r#""code":"unprocessable""#), "{unknown}");
}

#[test]
fn serve_needs_an_address_and_a_token_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db");
    let out = steadfast()
        .arg("--db")
        .arg(&db)
        .arg("serve")
        .env_remove("STEADFAST_API_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--http"), "{err}");
    let out = steadfast()
        .arg("--db")
        .arg(&db)
        .args(["serve", "--http", "0.0.0.0:0"])
        .env_remove("STEADFAST_API_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without an access token"), "{err}");
}

#[test]
fn schedules_are_added_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sched.db");
    let added = ok(
        &db,
        &[
            "schedule",
            "add",
            "tick",
            "--kind",
            "ten steps",
            "--every",
            "90s",
        ],
    );
    assert!(added.contains("added"), "{added}");
    let again = ok(
        &db,
        &[
            "schedule",
            "add",
            "tick",
            "--kind",
            "ten steps",
            "--every",
            "90s",
        ],
    );
    assert!(again.contains("already exists"), "{again}");
    let bad = fails(
        &db,
        &[
            "schedule",
            "add",
            "x",
            "--kind",
            "ten steps",
            "--cron",
            "61 * * * *",
        ],
    );
    assert!(bad.contains("not valid"), "{bad}");
    let unknown = fails(
        &db,
        &["schedule", "add", "y", "--kind", "nope", "--every", "1m"],
    );
    assert!(unknown.contains("nope"), "{unknown}");
    let services = dir.path().join("services").display().to_string();
    ok(
        &db,
        &["worker", "--exit-when-idle", "--services", &services],
    );
    let listed: Value = serde_json::from_str(&ok(&db, &["schedule", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "tick");
    assert_eq!(listed[0]["kind"], "ten steps");
    assert!(listed[0]["next_tick"].is_string(), "{listed}");
    ok(&db, &["schedule", "remove", "tick"]);
    let listed: Value = serde_json::from_str(&ok(&db, &["schedule", "list", "--json"])).unwrap();
    assert_eq!(listed, serde_json::json!([]));
}

#[test]
fn a_corrupt_row_is_listed_as_an_error_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    for id in ["t1", "t2", "t3"] {
        ok(&db, &["spawn", "ten steps", id, "null"]);
    }
    let conn = steadfast::rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE processes SET created_at = 'soon' WHERE id = 't2'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = ok(&db, &["list"]);
    for id in ["t1", "t2", "t3"] {
        assert!(out.contains(id), "{out}");
    }
    assert!(
        out.contains("unreadable") && out.contains("created_at"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&ok(&db, &["list", "--json"])).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["id"], "t2");
    assert!(
        rows[1]["unreadable"]
            .as_str()
            .unwrap()
            .contains("created_at")
    );
    let err = fails(&db, &["show", "t2"]);
    assert!(
        err.contains("t2") && err.contains("created_at") && err.contains("soon"),
        "{err}"
    );
    ok(&db, &["show", "t1"]);
}
