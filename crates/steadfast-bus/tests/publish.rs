//! Publishing from processes on the real brokers: the journal is the
//! outbox. A crash after the message was journaled and before it was sent
//! publishes it on recovery; a replay past its confirmation never publishes.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use steadfast::testing::TestHost;
use steadfast::{Process, StepFailed};
use steadfast_bus::{BusError, MessageSink, OutgoingMessage, Publisher};
use support::{Broker, Env};

/// Publishes `UserActivated` to `destination`, then waits for `done`.
async fn activator(
    p: Process,
    user_id: u64,
    bus: Publisher,
    destination: String,
) -> Result<String, StepFailed> {
    let id = bus
        .publish_with_headers(
            &p,
            "user activated",
            &destination,
            &[("type", "UserActivated")],
            &serde_json::json!({"user_id": user_id}),
        )
        .await?;
    let () = p.wait("done").await;
    Ok(id)
}

/// A sink that, while `hang` is set, never returns from a publish: the
/// process stands between its journaled message and the broker, where a
/// crash leaves it.
struct Gate {
    inner: Box<dyn MessageSink>,
    hang: Arc<AtomicBool>,
}

#[async_trait]
impl MessageSink for Gate {
    async fn publish(&self, message: &OutgoingMessage) -> Result<(), BusError> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.publish(message).await
    }
}

async fn crash_before_publish_publishes_on_recovery_and_replay_never_does(broker: Broker) {
    // The process publishes to the queue (or stream) of `out`.
    let out = Env::new(broker, "outbox").await;
    drop(out.source().await); // declares the queue / creates the stream
    let hang = Arc::new(AtomicBool::new(true));
    let sink: Arc<dyn MessageSink> = Arc::new(Gate {
        inner: out.sink().await,
        hang: Arc::clone(&hang),
    });
    let destination = out.destination();
    let t = TestHost::start(move |b| {
        let bus = Publisher::from_arc(Arc::clone(&sink));
        let destination = destination.clone();
        b.register("activator", move |p: Process, user_id: u64| {
            activator(p, user_id, bus.clone(), destination.clone())
        })
    })
    .await;
    t.host().spawn("activator", "user-1", &1u64).await.unwrap();
    // The message is journaled (committed) and the publish hangs: crash.
    support::eventually("the journaled message", || async {
        t.steps("user-1")
            .await
            .contains(&"user activated".to_owned())
    })
    .await;
    assert!(
        !t.steps("user-1")
            .await
            .contains(&"user activated: published".to_owned())
    );
    hang.store(false, Ordering::SeqCst);
    t.crash_and_restart().await;
    // Recovery publishes it and records that it did.
    t.settle("user-1").await;
    assert!(
        t.steps("user-1")
            .await
            .contains(&"user activated: published".to_owned())
    );
    // Another crash and a replay past the confirmation: nothing is sent.
    t.crash_and_restart().await;
    t.host().signal("user-1", "done", &()).await.unwrap();
    let id: String = t.host().outcome("user-1").await.unwrap();
    assert_eq!(id, "user-1/user activated");
    // Exactly one message left, with the stable id.
    assert_eq!(support::ids_before_sentinel(&out).await, vec![id]);
    out.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_crash_before_publish_publishes_on_recovery_and_replay_never_does() {
    crash_before_publish_publishes_on_recovery_and_replay_never_does(Broker::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_crash_before_publish_publishes_on_recovery_and_replay_never_does() {
    crash_before_publish_publishes_on_recovery_and_replay_never_does(Broker::JetStream).await;
}
