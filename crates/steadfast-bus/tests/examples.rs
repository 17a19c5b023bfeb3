//! The bus examples README runs (`order_saga`, `onboarding_worker` with
//! `web_app`), run here by calling their code on streams and queues of
//! this test's own, so that they cannot rot.

#![allow(clippy::unwrap_used)]

mod support;

#[allow(dead_code)]
#[path = "../examples/order_saga.rs"]
mod order_saga;

#[allow(dead_code)]
#[path = "../examples/onboarding_worker.rs"]
mod onboarding_worker;

#[allow(dead_code)]
#[path = "../examples/web_app.rs"]
mod web_app;

use std::time::Duration;

use support::{Broker, Env};

/// The longest an example may take here.
const LIMIT: Duration = Duration::from_secs(30);

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_saga_confirms_paid_orders_and_compensates_a_refused_one() {
    let prefix = format!("STEADFAST_TEST_SAGA_{}_", unique().to_uppercase());
    let dir = tempfile::tempdir().unwrap();
    let outcomes = tokio::time::timeout(
        LIMIT,
        order_saga::run(
            &order_saga::Streams::new(&prefix),
            dir.path(),
            &[(1, 120), (2, 5_000), (3, 40)],
        ),
    )
    .await
    .expect("the order saga example did not finish")
    .unwrap();
    let outcomes: Vec<&str> = outcomes.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["confirmed", "cancelled: card limit exceeded", "confirmed"]
    );
    for stream in ["ORDERS", "PAYMENTS", "SHOP"] {
        Env::named(Broker::JetStream, &format!("{prefix}{stream}"))
            .cleanup()
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_signs_up_and_the_worker_activates_the_user() {
    let prefix = format!("steadfast-test-onboarding-{}-", unique());
    let dir = tempfile::tempdir().unwrap();
    let place = onboarding_worker::Place::new(&prefix, dir.path());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let place = place.clone();
        async move {
            onboarding_worker::run(&place, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let activated = tokio::time::timeout(
        LIMIT,
        web_app::run(
            &place.inbox,
            &place.activated,
            &dir.path().join("mail"),
            "ada@example.com",
        ),
    )
    .await
    .expect("the web app example did not see its user activated")
    .unwrap();
    assert_eq!(activated["email"], "ada@example.com");
    let user_id = activated["user_id"].as_str().unwrap();
    assert!(user_id.starts_with("user-ada-example-com-"), "{user_id}");

    stop.send(()).unwrap();
    let stats = worker.await.unwrap().unwrap();
    assert_eq!(
        (
            stats.received,
            stats.spawned,
            stats.signalled,
            stats.dead_lettered
        ),
        (2, 1, 1, 0)
    );
    for queue in [&place.inbox, &place.activated] {
        Env::named(Broker::RabbitMq, queue).cleanup().await;
    }
}
