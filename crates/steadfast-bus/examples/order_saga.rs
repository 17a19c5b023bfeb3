//! An order saga driven by events on NATS JetStream (127.0.0.1:4222).
//!
//! `cargo run -p steadfast-bus --example order_saga`
//!
//! A shop publishes `OrderPlaced`; each starts an `order` process, which
//! reserves stock, asks the payment service to charge (a published
//! command), and waits for `PaymentSucceeded` or `PaymentFailed`. A failed
//! payment is compensated: the stock is released and `OrderCancelled` is
//! published; a paid order publishes `OrderConfirmed`. The payment service
//! here refuses amounts over 1,000.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use steadfast::{Host, Process, SqliteStore, StepError, StepFailed};
use steadfast_bus::jetstream::{
    DEFAULT_URL, JetStreamSink, JetStreamSource, JetStreamSourceOptions,
};
use steadfast_bus::route::{Route, Selector};
use steadfast_bus::{MessageSink, MessageSource, OutgoingMessage, Publisher, Subscription};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    amount: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PaymentResult {
    order_id: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The saga: reserve, charge, then confirm or compensate.
async fn order(p: Process, placed: OrderPlaced, bus: Publisher) -> Result<String, StepFailed> {
    let id = placed.order_id.clone();
    p.step("stock reserved", || async { Ok::<_, StepError>(()) })
        .await?;
    bus.publish_with_headers(
        &p,
        "payment requested",
        "PAYMENTS.charge",
        &[("type", "ChargePayment")],
        &placed,
    )
    .await?;
    let mut succeeded = p.wait::<PaymentResult>("payment succeeded");
    let mut failed = p.wait::<PaymentResult>("payment failed");
    let outcome = tokio::select! {
        _ = &mut succeeded => {
            failed.abandon();
            bus.publish_with_headers(&p, "order confirmed", "SHOP.status",
                &[("type", "OrderConfirmed")], &serde_json::json!({"order_id": id})).await?;
            "confirmed".to_owned()
        }
        result = &mut failed => {
            succeeded.abandon();
            // Compensation: give the stock back, tell the shop.
            p.step("stock released", || async { Ok::<_, StepError>(()) }).await?;
            let reason = result.reason.unwrap_or_default();
            bus.publish_with_headers(&p, "order cancelled", "SHOP.status",
                &[("type", "OrderCancelled")],
                &serde_json::json!({"order_id": id, "reason": reason})).await?;
            format!("cancelled: {reason}")
        }
    };
    Ok(outcome)
}

/// The payment service: charges what it is asked to, up to 1,000.
async fn payment_service(mut commands: JetStreamSource, sink: JetStreamSink) -> anyhow::Result<()> {
    loop {
        let d = commands.receive().await?;
        let placed: OrderPlaced = serde_json::from_slice(&d.message.body)?;
        let (kind, body) = if placed.amount <= 1_000 {
            (
                "PaymentSucceeded",
                serde_json::json!({"order_id": placed.order_id}),
            )
        } else {
            (
                "PaymentFailed",
                serde_json::json!({"order_id": placed.order_id, "reason": "card limit exceeded"}),
            )
        };
        // The command's id makes the reply's id: a re-sent command is answered
        // with the same message, which the stream drops as a duplicate.
        let reply_id = format!("payments/{}", d.message.id.clone().unwrap_or_default());
        sink.publish(
            &OutgoingMessage::json("ORDERS.payments", reply_id, &body)?.header("type", kind),
        )
        .await?;
        d.ack().await?;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let run = std::process::id();
    let dir = std::env::temp_dir().join("steadfast-example-order-saga");
    std::fs::create_dir_all(&dir)?;
    let sink = JetStreamSink::connect(DEFAULT_URL).await?;
    sink.ensure_stream("PAYMENTS", vec!["PAYMENTS.>".into()])
        .await?;
    sink.ensure_stream("SHOP", vec!["SHOP.>".into()]).await?;

    // The worker: a host, and a subscription on the ORDERS stream.
    let publisher = Publisher::new(JetStreamSink::connect(DEFAULT_URL).await?);
    let store = SqliteStore::open(dir.join("steadfast.db")).await?;
    let host = Host::builder(store)
        .register("order", move |p: Process, placed: OrderPlaced| {
            order(p, placed, publisher.clone())
        })
        .build();
    let routes = vec![
        Route::spawn("order", Selector::field("order_id"))
            .when(Selector::header("type"), "OrderPlaced"),
        Route::signal("payment succeeded", Selector::field("order_id"))
            .when(Selector::header("type"), "PaymentSucceeded"),
        Route::signal("payment failed", Selector::field("order_id"))
            .when(Selector::header("type"), "PaymentFailed"),
    ];
    let mut orders = JetStreamSourceOptions::new("ORDERS", "order-saga");
    orders.subjects = vec!["ORDERS.>".into()];
    let subscription = Subscription::new("orders", host.clone(), routes)
        .map_err(anyhow::Error::msg)?
        .start(JetStreamSource::connect(orders).await?);

    // The payment service, another consumer of its own stream.
    let mut commands = JetStreamSourceOptions::new("PAYMENTS", "payment-service");
    commands.subjects = vec!["PAYMENTS.>".into()];
    let payments = tokio::spawn(payment_service(
        JetStreamSource::connect(commands).await?,
        JetStreamSink::connect(DEFAULT_URL).await?,
    ));

    // The shop: three orders, one over the card limit.
    let mut status = JetStreamSourceOptions::new("SHOP", format!("shop-{run}"));
    status.subjects = vec!["SHOP.>".into()];
    let mut status = JetStreamSource::connect(status).await?;
    let mut waiting = BTreeSet::new();
    for (n, amount) in [(1, 120), (2, 5_000), (3, 40)] {
        let order_id = format!("order-{run}-{n}");
        let placed = OrderPlaced {
            order_id: order_id.clone(),
            amount,
        };
        sink.publish(
            &OutgoingMessage::json("ORDERS.placed", format!("shop/{order_id}"), &placed)?
                .header("type", "OrderPlaced"),
        )
        .await?;
        println!("placed {order_id} for {amount}");
        waiting.insert(order_id);
    }
    // Read the outcomes; a message seen before (same id) is skipped.
    let mut seen = BTreeSet::new();
    while !waiting.is_empty() {
        let d = status.receive().await?;
        let id = d.message.id.clone().unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&d.message.body)?;
        let order_id = body["order_id"].as_str().unwrap_or_default().to_owned();
        if seen.insert(id) && waiting.remove(&order_id) {
            let kind = d.message.headers.get("type").cloned().unwrap_or_default();
            println!(
                "{order_id}: {kind} {}",
                body.get("reason")
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            );
        }
        d.ack().await?;
    }
    for n in 1..=3 {
        let outcome: String = host.outcome(&format!("order-{run}-{n}")).await?;
        println!("process order-{run}-{n}: {outcome}");
    }
    println!("journals are in {}", dir.join("steadfast.db").display());
    subscription.stop().await;
    payments.abort();
    host.shutdown().await;
    Ok(())
}
