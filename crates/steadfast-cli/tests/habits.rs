//! Command-line habits, end to end: shell completions, `watch`, `--json`
//! with embedded values and RFC 3339 times, plain `schedule list`, the
//! generic binary's refusal of commands that need kind code, the worker's
//! default log level, and progress output kept off pipes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steadfast");

/// The generic binary, without the example kinds, on `db`.
fn generic(db: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--db")
        .arg(db)
        .env_remove("STEADFAST_DB")
        .env_remove("STEADFAST_EXAMPLES")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// The binary with its example kinds, on `db`.
fn examples(db: &Path) -> Command {
    let mut cmd = generic(db);
    cmd.arg("--examples");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` with `args` and asserts success, returning stdout.
fn ok(mut cmd: Command, args: &[&str]) -> String {
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "steadfast {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().unwrap()
}

/// Whether `s` is an RFC 3339 time in UTC as the CLI writes them.
fn is_rfc3339(s: &Value) -> bool {
    s.as_str().is_some_and(|s| {
        s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
    })
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let bash = ok(generic(&db), &["completions", "bash"]);
    assert!(bash.contains("complete -F"), "{bash}");
    let zsh = ok(generic(&db), &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef steadfast"), "{zsh}");
    let fish = ok(generic(&db), &["completions", "fish"]);
    assert!(fish.contains("complete -c steadfast"), "{fish}");
    for script in [&bash, &zsh, &fish] {
        for command in ["watch", "schedule", "completions", "list"] {
            assert!(script.contains(command), "{command} missing");
        }
    }
    let out = run(generic(&db), &["completions", "powershell-7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!db.exists(), "completions open no database");
}

#[test]
fn json_output_embeds_values_and_writes_times_as_rfc3339() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("json.db");
    ok(
        examples(&db),
        &[
            "spawn",
            "onboarding",
            "o-1",
            r#"{"email": "ada@example.com"}"#,
        ],
    );
    ok(examples(&db), &["worker", "--exit-when-idle"]);
    ok(generic(&db), &["signal", "o-1", "unrelated", r#"{"n": 1}"#]);

    let listed: Value = serde_json::from_str(&ok(generic(&db), &["list", "--json"])).unwrap();
    let row = &listed[0];
    assert_eq!(row["input"]["email"], "ada@example.com", "{row}");
    assert!(is_rfc3339(&row["created_at"]), "{row}");
    assert!(is_rfc3339(&row["updated_at"]), "{row}");

    let shown: Value = serde_json::from_str(&ok(generic(&db), &["show", "o-1", "--json"])).unwrap();
    assert_eq!(shown["process"]["input"]["email"], "ada@example.com");
    let journal = shown["journal"].as_array().unwrap();
    let saved = journal.iter().find(|e| e["name"] == "email saved").unwrap();
    assert_eq!(saved["outcome"], "ada@example.com", "{saved}");
    assert!(is_rfc3339(&saved["started_at"]), "{saved}");
    let registered = journal.iter().find(|e| e["name"] == "registered").unwrap();
    assert!(registered["outcome"].is_number(), "{registered}");
    assert_eq!(shown["signals"][0]["payload"]["n"], 1);
    assert!(is_rfc3339(&shown["signals"][0]["sent_at"]));

    let signals: Value =
        serde_json::from_str(&ok(generic(&db), &["signals", "o-1", "--json"])).unwrap();
    assert_eq!(signals[0]["payload"]["n"], 1, "{signals}");

    // Commands that change something say what they did as JSON too.
    let spawned: Value = serde_json::from_str(&ok(
        examples(&db),
        &["spawn", "ten steps", "t-9", "null", "--json"],
    ))
    .unwrap();
    assert_eq!(spawned["spawned"], "created", "{spawned}");
    let again: Value = serde_json::from_str(&ok(
        examples(&db),
        &["spawn", "ten steps", "t-9", "null", "--json"],
    ))
    .unwrap();
    assert_eq!(again["spawned"], "existing");
    let cancelled: Value =
        serde_json::from_str(&ok(generic(&db), &["cancel", "t-9", "--json"])).unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let purged: Value = serde_json::from_str(&ok(
        generic(&db),
        &["purge", "--older-than", "0", "--yes", "--json"],
    ))
    .unwrap();
    assert_eq!(purged["purged"], 1, "{purged}");
}

#[test]
fn schedule_list_reads_plainly_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("schedules.db");
    ok(
        examples(&db),
        &[
            "schedule",
            "add",
            "tick2",
            "--kind",
            "ten steps",
            "--cron",
            "*/2 * * * * *",
        ],
    );
    ok(
        examples(&db),
        &[
            "schedule",
            "add",
            "quarterly",
            "--kind",
            "ten steps",
            "--every",
            "15m",
        ],
    );
    let plain = ok(generic(&db), &["schedule", "list"]);
    assert!(plain.contains("cron */2 * * * * *"), "{plain}");
    assert!(plain.contains("every 15m"), "{plain}");
    assert!(
        !plain.contains('{'),
        "no JSON in the plain listing: {plain}"
    );
    let rows: Value =
        serde_json::from_str(&ok(generic(&db), &["schedule", "list", "--json"])).unwrap();
    let tick2 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "tick2")
        .unwrap();
    assert_eq!(tick2["when"], "cron */2 * * * * *");
    assert_eq!(tick2["cron"], "*/2 * * * * *");
    let quarterly = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "quarterly")
        .unwrap();
    assert_eq!(quarterly["interval_seconds"], 900.0);
    assert_eq!(quarterly["when"], "every 15m");
}

#[test]
fn the_generic_binary_says_how_to_get_a_cli_with_your_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("generic.db");
    for args in [
        &["worker", "--exit-when-idle"][..],
        &["spawn", "ten steps", "t-1", "null"],
        &[
            "schedule",
            "add",
            "s",
            "--kind",
            "ten steps",
            "--every",
            "1h",
        ],
    ] {
        let out = run(generic(&db), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("steadfast_cli::run"), "{args:?}: {err}");
        assert!(err.contains("--examples"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created the database");
    }
    // Commands that need no kind code work on a database the examples made.
    ok(examples(&db), &["spawn", "ten steps", "t-1", "null"]);
    let out = run(generic(&db), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("steadfast_cli::run"));
    ok(generic(&db), &["list"]);
    ok(generic(&db), &["show", "t-1"]);
    ok(generic(&db), &["cancel", "t-1"]);
}

#[test]
fn the_worker_logs_at_info_by_default_and_progress_stays_off_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("worker.db");
    ok(examples(&db), &["spawn", "ten steps", "w-1", "null"]);
    let out = run(examples(&db), &["worker", "--exit-when-idle"]);
    assert!(out.status.success());
    let log = text(&out.stderr);
    assert!(log.contains("steadfast worker started"), "{log}");
    assert!(log.contains("INFO"), "{log}");
    // RUST_LOG still decides when it is set.
    let mut quiet = examples(&db);
    quiet.env("RUST_LOG", "warn");
    let out = run(quiet, &["worker", "--exit-when-idle"]);
    assert!(!text(&out.stderr).contains("steadfast worker started"));
    // Purge and check draw no progress on a pipe.
    let out = run(generic(&db), &["purge", "--older-than", "0", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains('\r'), "{:?}", text(&out.stderr));
    let out = run(examples(&db), &["check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

/// Reads `child`'s stdout lines until one satisfies `until` (or 60 s pass).
fn lines_until(
    lines: &mut impl Iterator<Item = String>,
    seen: &mut Vec<String>,
    until: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match lines.next() {
            Some(line) => {
                let done = until(&line);
                seen.push(line);
                if done {
                    return;
                }
            }
            None => break,
        }
    }
    panic!("no such line; saw:\n{}", seen.join("\n"));
}

#[test]
fn watch_follows_a_process_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    ok(
        examples(&db),
        &[
            "spawn",
            "onboarding",
            "o-1",
            r#"{"email": "ada@example.com"}"#,
        ],
    );
    let mut watch = generic(&db)
        .args(["watch", "o-1", "--interval-ms", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut seen = Vec::new();
    lines_until(&mut lines, &mut seen, |l| l.starts_with("running"));
    // A worker runs it until it waits for the mail's secret.
    ok(examples(&db), &["worker", "--exit-when-idle"]);
    lines_until(&mut lines, &mut seen, |l| {
        l.starts_with("suspended") && l.contains("email verified")
    });
    let waiting = seen.last().unwrap().clone();
    assert!(
        waiting.contains("at examples/src/onboarding.rs:"),
        "the line it waits at: {waiting}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("step \"registered\" completed")),
        "{seen:?}"
    );
    // The secret is in the journal; the signal lets it finish.
    let shown: Value = serde_json::from_str(&ok(generic(&db), &["show", "o-1", "--json"])).unwrap();
    let secret = shown["journal"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "secret generated")
        .unwrap()["outcome"]
        .clone();
    let payload = serde_json::json!({ "secret": secret }).to_string();
    ok(generic(&db), &["signal", "o-1", "email verified", &payload]);
    ok(examples(&db), &["worker", "--exit-when-idle"]);
    lines_until(&mut lines, &mut seen, |l| l.starts_with("completed"));
    let status = watch.wait().unwrap();
    assert!(status.success(), "watch ends with the process: {seen:?}");
    assert!(
        seen.iter().any(|l| l.contains("\"activated\" completed")),
        "{seen:?}"
    );
}

#[test]
fn watch_json_prints_one_object_per_line_and_fails_with_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch-json.db");
    ok(examples(&db), &["spawn", "ten steps", "t-1", "null"]);
    ok(examples(&db), &["worker", "--exit-when-idle"]);
    let out = run(generic(&db), &["watch", "t-1", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let entries = events.iter().filter(|e| e["event"] == "entry").count();
    assert_eq!(entries, 10, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "status");
    assert_eq!(last["status"], "completed");
    assert!(is_rfc3339(&last["updated_at"]));
    // A cancelled process: watch ends with exit code 1, saying so.
    ok(examples(&db), &["spawn", "ten steps", "t-2", "null"]);
    ok(generic(&db), &["cancel", "t-2"]);
    let out = run(generic(&db), &["watch", "t-2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("was cancelled"));
    // An unknown process is an error naming it.
    let out = run(generic(&db), &["watch", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nobody"),
        "{}",
        text(&out.stderr)
    );
}
