//! Subscriptions on the real brokers (RabbitMQ at 127.0.0.1:5672, NATS
//! JetStream at 127.0.0.1:4222): routing and correlation, poison messages,
//! a dropped connection. Each test body runs on both brokers, with queues
//! and streams of its own.

#![allow(clippy::unwrap_used)]

mod support;

use serde::{Deserialize, Serialize};
use steadfast::testing::TestHost;
use steadfast::{Process, Status, StepFailed};
use steadfast_bus::route::{Route, Selector};
use steadfast_bus::{DEAD_LETTER_REASON, MessageSink, OutgoingMessage, Subscription};
use support::{Broker, Env, eventually};

#[derive(Debug, Serialize, Deserialize)]
struct SignUp {
    email: String,
}

/// Waits for a greeting and returns it with the e-mail.
async fn greeter(p: Process, input: SignUp) -> Result<String, StepFailed> {
    let greeting: String = p.wait("greeting").await;
    Ok(format!("{greeting} {}", input.email))
}

fn routes() -> Vec<Route> {
    vec![
        Route::spawn("greeter", Selector::field("user_id").prefix("user-"))
            .when(Selector::field("type"), "UserSignedUp")
            .payload(Selector::field("profile")),
        Route::signal("greeting", Selector::header("user-id").prefix("user-"))
            .when(Selector::header("type"), "Greeting")
            .payload(Selector::field("text")),
    ]
}

async fn publish(sink: &dyn MessageSink, env: &Env, m: OutgoingMessage) {
    let m = OutgoingMessage {
        destination: env.destination(),
        ..m
    };
    sink.publish(&m).await.unwrap();
}

fn signed_up(i: u32) -> OutgoingMessage {
    OutgoingMessage::json(
        "",
        format!("signup-{i}"),
        &serde_json::json!({"type": "UserSignedUp", "user_id": i, "profile": {"email": format!("u{i}@example.com")}}),
    )
    .unwrap()
}

fn greeting(i: u32) -> OutgoingMessage {
    OutgoingMessage::json(
        "",
        format!("greeting-{i}"),
        &serde_json::json!({"text": format!("hello #{i}")}),
    )
    .unwrap()
    .header("type", "Greeting")
    .header("user-id", i.to_string())
}

async fn routes_spawns_and_correlates_signals(broker: Broker) {
    let env = Env::new(broker, "routing").await;
    let t = TestHost::start(|b| b.register("greeter", greeter)).await;
    let source = env.source().await;
    let sink = env.sink().await;
    let running = Subscription::new("users", t.host(), routes())
        .unwrap()
        .concurrency(8)
        .start(source);
    const N: u32 = 20;
    for i in 0..N {
        publish(&*sink, &env, signed_up(i)).await;
    }
    for i in 0..N {
        let id = format!("user-{i}");
        eventually("every process to wait", || async {
            t.host()
                .status(&id)
                .await
                .is_ok_and(|r| r.status == Status::Suspended)
        })
        .await;
    }
    for i in 0..N {
        publish(&*sink, &env, greeting(i)).await;
    }
    for i in 0..N {
        let out: String = t.host().outcome(&format!("user-{i}")).await.unwrap();
        assert_eq!(out, format!("hello #{i} u{i}@example.com"));
    }
    let stats = running.stats();
    assert_eq!(
        (stats.spawned, stats.signalled, stats.dead_lettered),
        (N as u64, N as u64, 0)
    );
    running.stop().await;
    env.cleanup().await;
}

async fn poison_messages_are_dead_lettered_with_the_reason(broker: Broker) {
    let env = Env::new(broker, "poison").await;
    let t = TestHost::start(|b| b.register("greeter", greeter)).await;
    let running = Subscription::new("users", t.host(), routes())
        .unwrap()
        .concurrency(4)
        .start(env.source().await);
    let sink = env.sink().await;
    let raw = |id: &str, body: &str| OutgoingMessage::new("", id, body.as_bytes().to_vec());
    let poison = [
        (raw("not-json", "{oops"), "the body is not valid JSON"),
        (
            raw("no-route", r#"{"type": "Unknown"}"#),
            "no route takes this message",
        ),
        (
            raw(
                "no-id",
                r#"{"type": "UserSignedUp", "profile": {"email": "x"}}"#,
            ),
            "the message has no body field \"user_id\"",
        ),
        (
            raw(
                "bad-input",
                r#"{"type": "UserSignedUp", "user_id": 1, "profile": {"email": 5}}"#,
            ),
            "does not fit its input type",
        ),
        (greeting(404), "no process with id \"user-404\""),
    ];
    for (m, _) in &poison {
        publish(&*sink, &env, m.clone()).await;
    }
    // A good message after the poison is routed: nothing stalls.
    publish(&*sink, &env, signed_up(7)).await;
    eventually("the good message", || async {
        t.host().status("user-7").await.is_ok()
    })
    .await;
    let mut dead = env.dead_letters(poison.len()).await;
    dead.sort_by_key(|m| {
        poison
            .iter()
            .position(|(p, _)| Some(&p.id) == m.id.as_ref())
    });
    for ((sent, reason), got) in poison.iter().zip(&dead) {
        assert_eq!(got.id.as_ref(), Some(&sent.id));
        assert_eq!(got.body, sent.body);
        let why = &got.headers[DEAD_LETTER_REASON];
        assert!(
            why.contains(reason),
            "{:?}: {why:?} should say {reason:?}",
            sent.id
        );
    }
    // Nothing of the poison reached the store.
    assert!(t.host().status("user-1").await.is_err());
    let stats = running.stats();
    assert_eq!(
        (stats.spawned, stats.dead_lettered),
        (1, poison.len() as u64)
    );
    running.stop().await;
    env.cleanup().await;
}

async fn a_dropped_connection_is_reopened(broker: Broker) {
    let env = Env::new(broker, "reconnect").await.with_proxy().await;
    let t = TestHost::start(|b| b.register("greeter", greeter)).await;
    let running = Subscription::new("users", t.host(), routes())
        .unwrap()
        .concurrency(4)
        .start(env.source_with(4).await);
    let sink = env.sink().await;
    const N: u32 = 40;
    for i in 0..N / 2 {
        publish(&*sink, &env, signed_up(i)).await;
    }
    eventually("a first message", || async { running.stats().spawned > 0 }).await;
    env.cut();
    for i in N / 2..N {
        publish(&*sink, &env, signed_up(i)).await;
    }
    for i in 0..N {
        let id = format!("user-{i}");
        eventually(&format!("process {id} after the cut"), || async {
            t.host().status(&id).await.is_ok()
        })
        .await;
    }
    // Re-deliveries of messages whose ack was lost find the process there.
    assert!(running.stats().spawned >= N as u64);
    assert_eq!(running.stats().dead_lettered, 0);
    running.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_routes_spawns_and_correlates_signals() {
    routes_spawns_and_correlates_signals(Broker::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_routes_spawns_and_correlates_signals() {
    routes_spawns_and_correlates_signals(Broker::JetStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_poison_messages_are_dead_lettered_with_the_reason() {
    poison_messages_are_dead_lettered_with_the_reason(Broker::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_poison_messages_are_dead_lettered_with_the_reason() {
    poison_messages_are_dead_lettered_with_the_reason(Broker::JetStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_dropped_connection_is_reopened() {
    a_dropped_connection_is_reopened(Broker::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_a_dropped_connection_is_reopened() {
    a_dropped_connection_is_reopened(Broker::JetStream).await;
}
