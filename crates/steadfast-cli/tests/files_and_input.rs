//! The `steadfast` binary and the files it touches (read commands change
//! nothing, a clean stop leaves the database file complete, damaged files get
//! their own messages) and the input it takes (ranged flags, payloads from
//! files and standard input, size limits, long ids, closed pipes).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steadfast");

/// The `steadfast` binary with its example kinds (`--examples`, through
/// the environment so every command line stays as it is).
fn steadfast() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("STEADFAST_EXAMPLES", "1");
    cmd
}

fn command(db: &Path, args: &[&str]) -> Command {
    let mut cmd = steadfast();
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .env_remove("STEADFAST_DB")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(db: &Path, args: &[&str]) -> Output {
    command(db, args).output().unwrap()
}

/// Runs with `input` on standard input.
fn run_with_stdin(db: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = command(db, args).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The command may refuse before reading it all.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "steadfast {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs, expects exit code 1 without a panic, returns stderr.
fn fails(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    check_failure(&out, args, 1)
}

fn check_failure(out: &Output, args: &[&str], code: i32) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "steadfast {:?} should exit with {code}\nstdout:\n{}\nstderr:\n{err}",
        &args[..args.len().min(4)],
        text(&out.stdout),
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn side(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// A file's bytes and mtime, and which side files exist beside it.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    len: usize,
    /// A hash of the bytes (equal bytes, equal hash).
    hash: u64,
    modified: SystemTime,
    wal: bool,
    shm: bool,
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn snapshot(path: &Path) -> Snapshot {
    Snapshot {
        len: std::fs::read(path).unwrap().len(),
        hash: hash(&std::fs::read(path).unwrap()),
        modified: std::fs::metadata(path).unwrap().modified().unwrap(),
        wal: side(path, "-wal").exists(),
        shm: side(path, "-shm").exists(),
    }
}

/// The `-wal` beside `db` is absent or empty.
fn assert_wal_checkpointed(db: &Path) {
    let wal = side(db, "-wal");
    let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(len, 0, "{} still holds {len} bytes", wal.display());
}

/// A database with one onboarding process (suspended, waiting for mail
/// verification) and one finished ten-step job, the worker stopped.
fn small_db(dir: &Path) -> PathBuf {
    let db = dir.join("app.db");
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
    let services = dir.join("services");
    ok(
        &db,
        &[
            "worker",
            "--exit-when-idle",
            "--services",
            services.to_str().unwrap(),
        ],
    );
    db
}

#[test]
fn read_commands_refuse_an_empty_file_and_leave_it_empty() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    std::fs::write(&db, b"").unwrap();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["show", "x"],
        &["check"],
        &["schedule", "list"],
    ] {
        let err = fails(&db, args);
        assert!(err.contains("empty file"), "{args:?}: {err}");
        assert!(err.contains("not a Steadfast database"), "{args:?}: {err}");
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "{args:?}");
        assert!(!side(&db, "-wal").exists() && !side(&db, "-shm").exists());
    }
    // Nothing else appeared beside it (no services folder from `check`).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("empty.db")]);
}

#[test]
fn read_commands_change_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let before = snapshot(&db);
    assert!(!before.wal && !before.shm, "the worker left side files");
    let listing = |dir: &Path| -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files = listing(dir.path());
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["show", "ada"],
        &["show", "job", "--json"],
        &["check"],
        &["schedule", "list"],
    ] {
        ok(&db, args);
        assert_eq!(snapshot(&db), before, "{args:?} changed the database");
        assert_eq!(listing(dir.path()), files, "{args:?} created files");
    }
}

#[test]
fn foreign_and_truncated_files_get_their_own_messages_and_no_side_files() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.db");
    std::fs::write(&notes, "my notes\n".repeat(100)).unwrap();
    for args in [&["list"][..], &["spawn", "ten steps", "t", "null"]] {
        let err = fails(&notes, args);
        assert!(err.contains("is not a Steadfast database"), "{err}");
        assert!(!side(&notes, "-wal").exists() && !side(&notes, "-shm").exists());
    }

    let db = small_db(dir.path());
    let bytes = std::fs::read(&db).unwrap();
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let before = snapshot(&cut);
    for args in [
        &["list"][..],
        &["show", "ada"],
        &["spawn", "ten steps", "t", "null"],
    ] {
        let err = fails(&cut, args);
        assert!(err.contains("truncated"), "{args:?}: {err}");
        assert!(!err.contains("not a Steadfast database"), "{args:?}: {err}");
        assert_eq!(snapshot(&cut), before, "{args:?}");
    }
}

/// Mounts `dir` read-only at `at`; `None` when not allowed (not root).
fn read_only_mount(dir: &Path, at: &Path) -> Option<Unmount> {
    let mount = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let (d, a) = (dir.to_str()?, at.to_str()?);
    if !mount(&["--bind", d, a]) {
        return None;
    }
    let guard = Unmount(at.to_path_buf());
    mount(&["-o", "remount,ro,bind", a]).then_some(guard)
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_database_is_read_and_writes_say_why_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    small_db(&data);
    let Some(_mount) = read_only_mount(&data, &ro) else {
        eprintln!("skipped: cannot make a read-only bind mount here (needs root)");
        return;
    };
    let db = ro.join("app.db");
    let listed = ok(&db, &["list"]);
    assert!(listed.contains("ada"), "{listed}");
    for args in [&["spawn", "ten steps", "t", "null"][..], &["cancel", "ada"]] {
        let err = fails(&db, args);
        assert!(err.contains("read-only"), "{args:?}: {err}");
        assert!(!err.contains("not a Steadfast database"), "{args:?}: {err}");
    }
}

#[test]
fn a_workers_clean_stop_leaves_the_database_file_complete() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    assert_wal_checkpointed(&db);
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let shown: Value = serde_json::from_str(&ok(&copy, &["show", "job", "--json"])).unwrap();
    assert_eq!(shown["process"]["status"], "completed");
    assert_eq!(shown["journal"].as_array().unwrap().len(), 10);
}

#[test]
fn the_demo_honours_db_and_its_file_alone_holds_the_data() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("custom.db");
    let out = steadfast()
        .arg("--db")
        .arg(&db)
        .args(["demo", "--dir"])
        .arg(dir.path().join("unused"))
        .current_dir(cwd.path())
        .env_remove("STEADFAST_DB")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the demo failed\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(db.is_file(), "--db was not used");
    assert!(!cwd.path().join("steadfast.db").exists());
    assert!(!dir.path().join("unused").join("steadfast.db").exists());
    assert!(dir.path().join("nested").join("custom-services").is_dir());
    assert_wal_checkpointed(&db);

    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let list: Value = serde_json::from_str(&ok(&copy, &["list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 5);
}

#[test]
fn out_of_range_numbers_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    for (args, flag) in [
        (
            &["purge", "--older-than", "1e300", "--yes"][..],
            "--older-than",
        ),
        (
            &[
                "schedule",
                "add",
                "s",
                "--kind",
                "onboarding",
                "--every",
                "99999999999999999999d",
            ],
            "--every",
        ),
        (
            &[
                "worker",
                "--concurrency",
                "18446744073709551615",
                "--exit-when-idle",
            ],
            "--concurrency",
        ),
        (&["demo", "--speed", "1e-300", "--dir", "x"], "--speed"),
        (
            &["worker", "--time-scale", "1e300", "--exit-when-idle"],
            "--time-scale",
        ),
        (
            &["worker", "--lease-ms", "18446744073709551615"],
            "--lease-ms",
        ),
        (
            &[
                "worker",
                "--time-scale",
                "1",
                "--clock-origin",
                "9223372036854775807",
            ],
            "--clock-origin",
        ),
        (
            &["dashboard", "--poll-ms", "18446744073709551615"],
            "--poll-ms",
        ),
    ] {
        let mut cmd = command(&db, args);
        cmd.current_dir(dir.path());
        let out = cmd.output().unwrap();
        let err = check_failure(&out, args, 2);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    assert!(!db.exists(), "a refused command created the database");
}

/// Reads one line of the command's output, closes the pipe, and returns
/// the command's exit status and stderr.
fn read_one_line_then_close(db: &Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = command(db, args).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    // An input big enough that the output cannot fit in the pipe's buffer
    // (64 KiB), small enough for one command-line argument (128 KiB).
    let email = format!("{}@example.com", "a".repeat(100_000));
    let input = serde_json::json!({ "email": email }).to_string();
    ok(&db, &["spawn", "onboarding", "big", &input]);
    for args in [&["list", "--json"][..], &["show", "big"]] {
        let (status, err) = read_one_line_then_close(&db, args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
        assert!(status.success(), "{args:?}: {status:?}");
    }
}

#[test]
fn payloads_come_from_files_and_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let file = dir.path().join("input.json");
    std::fs::write(&file, r#"{"email": "file@example.com"}"#).unwrap();
    let at_file = format!("@{}", file.display());
    ok(&db, &["spawn", "onboarding", "from-file", &at_file]);
    let out = run_with_stdin(
        &db,
        &["spawn", "onboarding", "from-stdin", "-"],
        br#"{"email": "stdin@example.com"}"#,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (id, email) in [
        ("from-file", "file@example.com"),
        ("from-stdin", "stdin@example.com"),
    ] {
        let shown: Value = serde_json::from_str(&ok(&db, &["show", id, "--json"])).unwrap();
        // The input is embedded as a JSON value, not as JSON text.
        assert_eq!(shown["process"]["input"]["email"], email);
    }

    std::fs::write(&file, r#"{"secret": "s"}"#).unwrap();
    let sent = ok(&db, &["signal", "from-file", "email verified", &at_file]);
    assert!(sent.contains("sent"), "{sent}");
    let out = run_with_stdin(
        &db,
        &["signal", "from-stdin", "email verified", "-"],
        br#"{"secret": "t"}"#,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A missing file and invalid JSON say so, without echoing it all.
    let err = fails(&db, &["signal", "from-file", "x", "@/no/such/file.json"]);
    assert!(err.contains("/no/such/file.json"), "{err}");
    std::fs::write(&file, format!("{{{}", "x".repeat(10_000))).unwrap();
    let err = fails(&db, &["spawn", "onboarding", "bad", &at_file]);
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(err.len() < 1000, "{err}");
}

#[test]
fn payloads_over_the_limit_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    ok(
        &db,
        &[
            "spawn",
            "onboarding",
            "ada",
            r#"{"email":"ada@example.com"}"#,
        ],
    );
    let huge = format!(
        "{{\"email\": \"{}@example.com\"}}",
        "a".repeat(10 * 1024 * 1024)
    );
    let args = ["spawn", "onboarding", "huge", "-"];
    let out = run_with_stdin(&db, &args, huge.as_bytes());
    let err = check_failure(&out, &args, 1);
    assert!(
        err.contains("more than the limit of 1048576 bytes"),
        "{err}"
    );
    assert!(err.len() < 1000, "{err}");
    let args = ["signal", "ada", "email verified", "-"];
    let out = run_with_stdin(&db, &args, huge.as_bytes());
    let err = check_failure(&out, &args, 1);
    assert!(
        err.contains("more than the limit of 1048576 bytes"),
        "{err}"
    );

    let list: Value = serde_json::from_str(&ok(&db, &["list", "--json"])).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["ada"]);
}

#[test]
fn a_long_id_is_not_echoed_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    let long = "q".repeat(10 * 1024);
    for args in [
        &["show", &long][..],
        &["signal", &long, "go", "null"],
        &["signal", "ada", &long, "{nope"],
        &["cancel", &long],
        &["retry", &long],
        &["rewind", "job", &long, "--yes"],
        &["spawn", "ten steps", &long, "null"],
        &["spawn", &long, "id", "null"],
    ] {
        let err = fails(&db, args);
        assert!(err.len() < 1000, "{} bytes: {}", err.len(), &err[..300]);
        assert!(!err.contains(&long[..200]), "{err}");
    }
}

/// One HTTP GET on the loopback port; the response's text.
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn the_dashboards_pages_change_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path());
    // Whatever the worker left, start from a database file without side
    // files (a checkpointing connection that closes last removes them).
    rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let before = snapshot(&db);
    assert!(!before.wal && !before.shm);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = command(&db, &["dashboard", "--bind", &bind])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it serves (the observable event), then read its pages.
    let mut page = Err(std::io::Error::other("not tried"));
    for _ in 0..500 {
        page = http_get(port, "/");
        if page.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let page = page.unwrap();
    assert!(page.contains("ada"), "{page}");
    let process = http_get(port, "/process?id=ada").unwrap();
    assert!(process.starts_with("HTTP/1.1 200"), "{process}");
    http_get(port, "/metrics").unwrap();
    // Stop it as Ctrl-C does.
    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(child.wait().unwrap().success());
    assert_eq!(snapshot(&db), before, "the dashboard changed the database");
}

#[test]
fn postgres_urls_are_checked_and_passwords_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hunter2-secret";
    // Nothing listens on port 1.
    let refused = format!("postgres://someone:{secret}@127.0.0.1:1/db");
    let err = fails(Path::new(&refused), &["list"]);
    assert!(!err.contains(secret), "{err}");
    assert!(err.contains("someone:***@127.0.0.1"), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    let typo = format!("postgres://someone:{secret}@127.0.0.1:1/db?shema=x");
    let err = fails(Path::new(&typo), &["list"]);
    assert!(err.contains("unknown parameter \"shema\""), "{err}");
    assert!(!err.contains(secret), "{err}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
