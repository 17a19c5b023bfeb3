//! `steadfast worker --subscribe ROUTES` on the real RabbitMQ broker
//! (127.0.0.1:5672, guest/guest): the route file of README's bus section
//! (`examples/bus/onboarding-routes.toml`) run by the real binary with the
//! example kinds, on a queue of this test's own; and bad route files, which
//! stop the command before anything starts.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lapin::options::QueueDeleteOptions;
use steadfast::{Client, SignalState, SqliteStore, Status};
use steadfast_bus::rabbitmq::{RabbitMqSink, RabbitMqSource, RabbitMqSourceOptions};
use steadfast_bus::{DEAD_LETTER_REASON, MessageSink, MessageSource, OutgoingMessage};

const BIN: &str = env!("CARGO_BIN_EXE_steadfast");
const RABBIT: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The route file README shows, as the repository holds it.
fn example_routes() -> String {
    std::fs::read_to_string(repo_file("examples/bus/onboarding-routes.toml")).unwrap()
}

/// The example route file with the queue `queue` instead of `signups`.
fn routes_on(queue: &str) -> String {
    let text = example_routes();
    let from = r#"queue = "signups""#;
    assert!(
        text.contains(from),
        "the example route file changed: {text}"
    );
    text.replace(from, &format!("queue = {queue:?}"))
}

fn worker(db: &Path, dir: &Path, routes: &[&Path], stderr: &Path) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("--examples")
        .arg("--db")
        .arg(db)
        .arg("worker")
        .arg("--services")
        .arg(dir.join("services"));
    for r in routes {
        cmd.arg("--subscribe").arg(r);
    }
    cmd.env_remove("STEADFAST_DB")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// Runs the worker with `routes`, expecting it to end by itself.
fn worker_output(db: &Path, dir: &Path, routes: &[&Path]) -> Output {
    let mut child = Command::new(BIN)
        .arg("--examples")
        .arg("--db")
        .arg(db)
        .arg("worker")
        .arg("--services")
        .arg(dir.join("services"))
        .args(routes.iter().flat_map(|r| [Path::new("--subscribe"), r]))
        .env_remove("STEADFAST_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the worker with {routes:?} did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Waits until `check` holds, failing after 60 s with `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn delete_queues(queue: &str) {
    let conn = lapin::Connection::connect(RABBIT, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in [queue.to_owned(), format!("{queue}.dead-letter")] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
}

#[test]
fn readme_shows_the_tested_route_file() {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let routes = example_routes();
    assert!(
        readme.contains(routes.trim()),
        "README's bus section must show examples/bus/onboarding-routes.toml as it is"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_runs_the_subscriptions_of_a_route_file() {
    const USERS: u32 = 5;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bus.db");
    let queue = format!(
        "steadfast-cli-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let routes = dir.path().join("routes.toml");
    std::fs::write(&routes, routes_on(&queue)).unwrap();
    let store = SqliteStore::open(&db).await.unwrap();
    let client = Client::new(store.clone());
    let sink = RabbitMqSink::new(RABBIT, "");
    sink.declare_queue(&queue).await.unwrap();

    let log = dir.path().join("worker.log");
    let mut child = worker(&db, dir.path(), &[&routes], &log);

    // Sign-ups start processes, keyed by the body's user id.
    for i in 0..USERS {
        let body = serde_json::json!({
            "type": "UserSignedUp",
            "user_id": i,
            "profile": {"email": format!("u{i}@example.com")},
        });
        sink.publish(&OutgoingMessage::json(&queue, format!("signup-{i}"), &body).unwrap())
            .await
            .unwrap();
    }
    let mut secrets = Vec::new();
    for i in 0..USERS {
        let id = format!("user-{i}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let secret = loop {
            let journal = client.journal(&id).await.unwrap_or_default();
            let secret = journal
                .iter()
                .find(|e| e.name == "secret generated")
                .and_then(|e| e.outcome.clone());
            let suspended = client
                .status(&id)
                .await
                .is_ok_and(|r| r.status == Status::Suspended);
            match secret {
                Some(secret) if suspended => break secret,
                _ => {
                    assert!(
                        Instant::now() < deadline,
                        "timed out waiting for {id} to wait for its verification"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let secret: uuid::Uuid = serde_json::from_str(&secret).unwrap();
        assert_eq!(client.status(&id).await.unwrap().kind, "onboarding");
        secrets.push(secret);
    }

    // Each verification is sent twice with the same message id (as a
    // broker re-delivers it): the process gets it once.
    for (i, secret) in secrets.iter().enumerate() {
        let body = serde_json::json!({
            "type": "EmailVerified",
            "user_id": i,
            "verification": {"secret": secret},
        });
        for _ in 0..2 {
            sink.publish(&OutgoingMessage::json(&queue, format!("verified-{i}"), &body).unwrap())
                .await
                .unwrap();
        }
    }
    // A message no route takes goes to the dead-letter queue.
    sink.publish(&OutgoingMessage::new(
        &queue,
        "poison",
        b"{\"type\": 1".to_vec(),
    ))
    .await
    .unwrap();

    for i in 0..USERS {
        let id = format!("user-{i}");
        eventually(&format!("{id} to complete"), || {
            let (client, id) = (&client, &id);
            async move {
                client
                    .status(id)
                    .await
                    .is_ok_and(|r| r.status == Status::Completed)
            }
        })
        .await;
    }
    let mut dead = RabbitMqSource::connect(RabbitMqSourceOptions {
        url: RABBIT.into(),
        ..RabbitMqSourceOptions::new(format!("{queue}.dead-letter"))
    })
    .await
    .unwrap();
    let poison = tokio::time::timeout(Duration::from_secs(60), dead.receive())
        .await
        .expect("the poison message is dead-lettered")
        .unwrap();
    assert_eq!(poison.message.id.as_deref(), Some("poison"));
    let reason = poison.message.headers.get(DEAD_LETTER_REASON).unwrap();
    assert!(reason.contains("JSON"), "{reason}");
    poison.ack().await.unwrap();

    // SIGTERM: the subscription stops, then the host; a clean exit.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("subscribed"), "{log}");
    assert!(log.contains("subscription stopped"), "{log}");

    // Each process received its verification once, though it was sent twice.
    for i in 0..USERS {
        let signals = client.signals(&format!("user-{i}")).await.unwrap();
        assert_eq!(signals.len(), 1, "user-{i}: {signals:?}");
        assert_eq!(signals[0].state, SignalState::Consumed);
    }
    delete_queues(&queue).await;
}

#[test]
fn a_bad_route_file_stops_the_worker_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "syntax.toml",
            "[[subscription]\nname = \"a\"\n",
            &["syntax.toml", "is not valid TOML"],
        ),
        (
            "broker.toml",
            "[[subscription]]\nname = \"a\"\nsource = { broker = \"kafka\", topic = \"t\" }\n\
             [[subscription.route]]\nspawn = { kind = \"onboarding\", id = { field = \"id\" } }\n",
            &["broker.toml", "kafka"],
        ),
        (
            "route.json",
            r#"{"subscription": [{"name": "a", "source": {"broker": "rabbitmq", "queue": "q"},
                "route": [{"signal": {"name": "s", "id": {"field": "a", "header": "b"}}}]}]}"#,
            &["route.json", "route 1", "both a field and a header"],
        ),
        ("empty.toml", "", &["empty.toml", "no `[[subscription]]`"]),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let db = dir.path().join(format!("{name}.db"));
        let out = worker_output(&db, dir.path(), &[&path]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        for e in *expected {
            assert!(err.contains(e), "{name}: expected {e:?} in {err}");
        }
        assert!(!db.exists(), "{name}: the worker created its database");
    }

    // A missing file, and two files with the same subscription name.
    let db = dir.path().join("missing.db");
    let out = worker_output(&db, dir.path(), &[&dir.path().join("nope.toml")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read the route file") && err.contains("nope.toml"));
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&a, routes_on("q-a")).unwrap();
    std::fs::write(&b, routes_on("q-b")).unwrap();
    let out = worker_output(&db, dir.path(), &[&a, &b]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("a.toml") && err.contains("b.toml") && err.contains("\"signups\""),
        "{err}"
    );
    assert!(!db.exists());
}

#[test]
fn an_unreachable_broker_fails_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let routes = dir.path().join("down.toml");
    std::fs::write(
        &routes,
        routes_on("unused").replace(
            "broker = \"rabbitmq\",",
            "broker = \"rabbitmq\", url = \"amqp://guest:secret@127.0.0.1:1/%2f\",",
        ),
    )
    .unwrap();
    let out = worker_output(&dir.path().join("down.db"), dir.path(), &[&routes]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot start the subscriptions of") && err.contains("down.toml"),
        "{err}"
    );
    assert!(err.contains("cannot reach the broker"), "{err}");
    assert!(!err.contains("secret"), "the password is shown: {err}");
}
