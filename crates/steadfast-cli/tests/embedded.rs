//! A program's own binary built on `steadfast_cli::run`: this test binary
//! is one (run with `EMBEDDED_CLI=1`, it is the command line of a program
//! with the kinds `greet` and `reserve`, the latter needing a value the
//! program provides); without it, it drives itself and the generic
//! `steadfast` binary as a user would.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use steadfast::{Process, StepFailed};

const CHILD: &str = "EMBEDDED_CLI";
const GENERIC: &str = env!("CARGO_BIN_EXE_steadfast");

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Seats {
    count: u32,
}

#[steadfast::process]
async fn greet(p: Process, name: String) -> Result<String, StepFailed> {
    p.step("greeted", || async { Ok(format!("Hello, {name}!")) })
        .await
}

/// A kind whose function needs a value the program provides.
#[steadfast::process]
async fn reserve(p: Process, seats: Seats, counter: Arc<AtomicU32>) -> Result<u32, StepFailed> {
    p.step("reserved", move || {
        let counter = Arc::clone(&counter);
        async move { Ok(counter.fetch_add(seats.count, Ordering::SeqCst) + seats.count) }
    })
    .await
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        return steadfast_cli::run(|hosts| {
            hosts
                .register_kind::<Greet>()
                .register_kind::<Reserve>()
                .provide(Arc::new(AtomicU32::new(0)))
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("own.db");
    own_kinds_get_every_command(&db);
    the_generic_binary_points_to_the_embedded_cli(&db);
    println!("embedded: 2 scenarios passed");
    ExitCode::SUCCESS
}

fn own(db: &Path, args: &[&str]) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .env_remove("STEADFAST_EXAMPLES")
        .env_remove("RUST_LOG")
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = own(db, args);
    assert!(
        out.status.success(),
        "{args:?} failed\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn own_kinds_get_every_command(db: &Path) {
    // Spawn checks the input against the kind's input type.
    let out = own(db, &["spawn", "greet", "g-1", "42"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("String"), "names the input type: {err}");
    assert!(
        !db.exists() || !ok(db, &["list"]).contains("g-1"),
        "nothing stored"
    );
    assert!(ok(db, &["spawn", "greet", "g-1", r#""Ada""#]).contains("created g-1"));
    ok(db, &["spawn", "reserve", "r-1", r#"{"count": 3}"#]);
    let out = own(db, &["spawn", "onboarding", "o-1", "null"]);
    assert_eq!(out.status.code(), Some(1), "only this program's kinds");
    // Check replays against this program's code.
    let checked = ok(db, &["check"]);
    assert!(
        checked.contains("2 unfinished processes checked"),
        "{checked}"
    );
    // The worker runs them (and says it started).
    let out = own(db, &["worker", "--exit-when-idle"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("steadfast worker started"));
    let shown = ok(db, &["show", "g-1"]);
    assert!(shown.contains("completed"), "{shown}");
    assert!(shown.contains("Hello, Ada!"), "{shown}");
    assert!(ok(db, &["show", "r-1"]).contains("completed"));
    // Schedules of its kinds, and the rest of the commands.
    ok(
        db,
        &[
            "schedule", "add", "hourly", "--kind", "greet", "--input", r#""B""#, "--every", "1h",
        ],
    );
    assert!(ok(db, &["schedule", "list"]).contains("every 1h"));
    let completions = ok(db, &["completions", "bash"]);
    assert!(completions.contains("embedded"), "named after the program");
}

fn the_generic_binary_points_to_the_embedded_cli(db: &Path) {
    let out = Command::new(GENERIC)
        .env_remove("STEADFAST_EXAMPLES")
        .arg("--db")
        .arg(db)
        .args(["spawn", "greet", "g-2", r#""Bo""#])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("steadfast_cli::run"), "{err}");
    // What needs no kind code works on the program's database.
    let out = Command::new(GENERIC)
        .env_remove("STEADFAST_EXAMPLES")
        .arg("--db")
        .arg(db)
        .args(["show", "g-1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("Hello, Ada!"));
}
