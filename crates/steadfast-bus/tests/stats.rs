//! What a subscription saves in the store for tools in other programs (the
//! dashboard): its figures per name and host, saved periodically and when
//! it stops, never per message. On RabbitMQ at 127.0.0.1:5672.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use steadfast::core::SubscriptionReport;
use steadfast::testing::TestHost;
use steadfast::{Process, StepFailed};
use steadfast_bus::route::{Route, Selector};
use steadfast_bus::{OutgoingMessage, Subscription};
use support::{Broker, Env, eventually};

#[derive(Debug, Serialize, Deserialize)]
struct SignUp {
    email: String,
}

async fn greeter(p: Process, input: SignUp) -> Result<String, StepFailed> {
    let greeting: String = p.wait("greeting").await;
    Ok(format!("{greeting} {}", input.email))
}

fn routes() -> Vec<Route> {
    vec![
        Route::spawn("greeter", Selector::field("user_id").prefix("user-"))
            .when(Selector::field("type"), "UserSignedUp")
            .payload(Selector::field("profile")),
    ]
}

fn signed_up(env: &Env, i: u32) -> OutgoingMessage {
    OutgoingMessage::json(
        env.destination(),
        format!("signup-{i}"),
        &serde_json::json!({"type": "UserSignedUp", "user_id": i, "profile": {"email": format!("u{i}@example.com")}}),
    )
    .unwrap()
}

fn poison(env: &Env, i: u32) -> OutgoingMessage {
    OutgoingMessage::new(
        env.destination(),
        format!("poison-{i}"),
        br#"{"type": "Unknown"}"#.to_vec(),
    )
}

async fn stored(t: &TestHost) -> Vec<SubscriptionReport> {
    t.host().store().subscriptions().await.unwrap()
}

/// Routed and poison messages: the stored row counts them, with the lag
/// read from the queue (empty at the end), the last dead-letter reason, the
/// host and the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_figures_are_stored_per_subscription() {
    let env = Env::new(Broker::RabbitMq, "stats").await;
    let t = TestHost::start(|b| b.register("greeter", greeter)).await;
    // One message at a time, so the poison (sent last) is dead-lettered last.
    let running = Subscription::new("users", t.host(), routes())
        .unwrap()
        .concurrency(1)
        .report_interval(Duration::from_millis(50))
        .start(env.source().await);
    let sink = env.sink().await;
    const ROUTED: u32 = 12;
    const POISON: u32 = 3;
    for i in 0..ROUTED {
        sink.publish(&signed_up(&env, i)).await.unwrap();
    }
    for i in 0..POISON {
        sink.publish(&poison(&env, i)).await.unwrap();
    }
    let expected = (
        u64::from(ROUTED + POISON),
        u64::from(ROUTED),
        u64::from(POISON),
        Some(0),
    );
    eventually("the stored figures", || async {
        stored(&t)
            .await
            .first()
            .is_some_and(|r| (r.received, r.routed, r.dead_lettered, r.lag) == expected)
    })
    .await;
    let rows = stored(&t).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.name, "users");
    assert_eq!(row.host, t.host().id().as_str());
    assert_eq!(row.source, format!("rabbitmq queue {}", env.name));
    assert!(row.lag_read_at.is_some());
    let reason = row.last_dead_letter_reason.as_deref().unwrap();
    assert!(reason.contains("no route takes this message"), "{reason}");
    running.stop().await;
    let after = stored(&t).await;
    assert_eq!(
        (after[0].received, after[0].routed, after[0].dead_lettered),
        (expected.0, expected.1, expected.2),
        "the save at stop keeps the totals"
    );
    env.cleanup().await;
}

/// With an hour between saves, nothing is stored while messages flow (no
/// save per message), and stopping saves the totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_figures_are_saved_when_the_subscription_stops() {
    let env = Env::new(Broker::RabbitMq, "stats-stop").await;
    let t = TestHost::start(|b| b.register("greeter", greeter)).await;
    let running = Subscription::new("users", t.host(), routes())
        .unwrap()
        .concurrency(4)
        .report_interval(Duration::from_secs(3600))
        .start(env.source().await);
    let sink = env.sink().await;
    for i in 0..5 {
        sink.publish(&signed_up(&env, i)).await.unwrap();
    }
    sink.publish(&poison(&env, 0)).await.unwrap();
    eventually("every message handled", || async {
        let s = running.stats();
        s.spawned == 5 && s.dead_lettered == 1
    })
    .await;
    assert_eq!(stored(&t).await, [], "nothing saved per message");
    running.stop().await;
    let rows = stored(&t).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].received, rows[0].routed, rows[0].dead_lettered),
        (6, 5, 1)
    );
    assert!(rows[0].lag_read_at.is_some(), "the lag is read at start");
    env.cleanup().await;
}
