//! What the dashboard shows of the message bus: the subscriptions page
//! (the figures running subscriptions saved, stale rows marked, and its
//! JSON), and on the process page the messages a process received and
//! published — escaped like every other value.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use steadfast::core::SubscriptionReport;
use steadfast::{Backend, HostBuilder, Process, SqliteStore, StepFailed, Timestamp};
use steadfast_bus::{BusError, MessageSink, OutgoingMessage, Publisher};
use steadfast_dashboard::{AppState, DashboardOptions, router};
use tower::ServiceExt;

const EVIL: &str = "<script>window.__xss=1</script>";

async fn store(dir: &tempfile::TempDir) -> Arc<dyn Backend> {
    Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap())
}

fn app(store: &Arc<dyn Backend>) -> axum::Router {
    let host = HostBuilder::from_arc(Arc::clone(store)).build_client();
    router(AppState::with_host(
        Arc::clone(store),
        host,
        &DashboardOptions::default(),
    ))
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .uri(uri)
        .header(header::HOST, "127.0.0.1:7777")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn report(name: &str, host: &str, updated_at: Timestamp) -> SubscriptionReport {
    SubscriptionReport {
        name: name.to_owned(),
        host: host.to_owned(),
        source: "rabbitmq queue orders".to_owned(),
        received: 1234,
        routed: 1200,
        dead_lettered: 34,
        lag: Some(56),
        lag_read_at: Some(updated_at),
        last_dead_letter_reason: Some(format!("no route takes this message {EVIL}")),
        updated_at,
    }
}

/// The row of `name` in the page's table.
fn row<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!("data-subscription=\"{name}\""))
        .unwrap_or_else(|| panic!("no row for {name:?} in {page}"));
    let rest = &page[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

#[tokio::test]
async fn the_subscriptions_page_shows_the_saved_figures_and_marks_stale_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let app = app(&store);
    let (status, page) = get(&app, "/subscriptions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No subscription has saved"), "{page}");
    assert!(page.contains(r#"<a href="/subscriptions">Subscriptions</a>"#));

    let now = Timestamp::now_system();
    store
        .save_subscription(&report("orders", "worker-1", now))
        .await
        .unwrap();
    let an_hour_ago = Timestamp::from_micros(now.as_micros() - 3_600_000_000);
    let old = SubscriptionReport {
        lag: None,
        lag_read_at: None,
        last_dead_letter_reason: None,
        ..report("payments", "worker-0", an_hour_ago)
    };
    store.save_subscription(&old).await.unwrap();

    for uri in ["/subscriptions", "/live/subscriptions"] {
        let (status, page) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(!page.contains(EVIL), "{uri}: the reason is escaped");
        let live = row(&page, "orders");
        for figure in [
            "1234",
            "1200",
            "34",
            "56",
            "worker-1",
            "rabbitmq queue orders",
            "no route takes this message &lt;script&gt;",
        ] {
            assert!(live.contains(figure), "{uri}: {figure:?} in {live}");
        }
        assert!(live.contains("data-stale=\"false\""), "{live}");
        let stale = row(&page, "payments");
        assert!(stale.contains("data-stale=\"true\""), "{stale}");
        assert!(stale.contains(">stale<"), "{stale}");
        assert!(stale.contains("unknown"), "an unknown lag: {stale}");
    }

    let (status, json) = get(&app, "/api/subscriptions").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = json["subscriptions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "orders");
    assert_eq!(rows[0]["received"], 1234);
    assert_eq!(rows[0]["routed"], 1200);
    assert_eq!(rows[0]["dead_lettered"], 34);
    assert_eq!(rows[0]["lag"], 56);
    assert_eq!(rows[0]["stale"], false);
    assert_eq!(rows[1]["name"], "payments");
    assert_eq!(rows[1]["lag"], serde_json::Value::Null);
    assert_eq!(rows[1]["stale"], true);
}

/// A sink that keeps what it is given (the broker's side is not under test
/// here: the journal entries the real `Publisher` writes are).
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<OutgoingMessage>>>);

#[async_trait::async_trait]
impl MessageSink for Kept {
    async fn publish(&self, message: &OutgoingMessage) -> Result<(), BusError> {
        self.0.lock().unwrap().push(message.clone());
        Ok(())
    }
}

/// Waits for a payment (a signal sent by a message), then publishes a
/// receipt to a destination named by its input.
async fn shop(p: Process, destination: String, bus: Publisher) -> Result<(), StepFailed> {
    let _amount: u64 = p.wait("paid").await;
    bus.publish(
        &p,
        "receipt sent",
        &destination,
        &serde_json::json!({"ok": true}),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_process_page_lists_the_messages_received_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let sink = Kept::default();
    let bus = Publisher::new(sink.clone());
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register("shop", move |p: Process, destination: String| {
            shop(p, destination, bus.clone())
        })
        .build();
    let id = "order-1";
    host.spawn("shop", id, EVIL).await.unwrap();
    let message_id = format!("payments/{EVIL}");
    host.signal_message_json(id, "paid", "42", &message_id)
        .await
        .unwrap();
    // A signal sent otherwise is no message.
    host.signal(id, "noise", &0).await.unwrap();
    let (): () = tokio::time::timeout(Duration::from_secs(60), host.outcome(id))
        .await
        .unwrap()
        .unwrap();
    let sent = sink.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, "order-1/receipt sent");
    let app = app(&store);

    for uri in ["/process?id=order-1", "/live/process?id=order-1"] {
        let (status, page) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(
            !page.contains(EVIL),
            "{uri}: message ids and destinations are escaped"
        );
        let section = &page[page.find("<section class=\"messages\">").unwrap()..];
        let section = &section[..section.find("</section>").unwrap()];
        let received = &section[section.find("<table class=\"received\">").unwrap()..];
        let received = &received[..received.find("</table>").unwrap()];
        assert!(received.contains("paid"), "{received}");
        assert!(
            received.contains("payments/&lt;script&gt;window.__xss=1&lt;/script&gt;"),
            "{received}"
        );
        assert!(!received.contains("noise"), "{received}");
        let published = &section[section.find("<table class=\"published\">").unwrap()..];
        assert!(published.contains("receipt sent"), "{published}");
        assert!(published.contains("order-1/receipt sent"), "{published}");
        assert!(
            published.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
            "the destination: {published}"
        );
        assert!(
            published.contains("data-publish-state=\"published\""),
            "{published}"
        );
    }

    let (status, json) = get(&app, "/api/process?id=order-1").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let received = json["messages"]["received"].as_array().unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["name"], "paid");
    assert_eq!(received[0]["message_id"], message_id);
    let published = json["messages"]["published"].as_array().unwrap();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["destination"], EVIL);
    assert_eq!(published[0]["message_id"], "order-1/receipt sent");
    assert_eq!(published[0]["state"], "published");
    host.shutdown().await;
}
