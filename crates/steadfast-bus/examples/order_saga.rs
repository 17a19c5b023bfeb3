//! An order saga driven by events on NATS JetStream (127.0.0.1:4222).
//!
//! `cargo run -p steadfast-bus --example order_saga`
//!
//! A shop publishes `OrderPlaced`; each starts an `order` process, which
//! reserves stock, asks the payment service to charge (a published
//! command), and waits for `PaymentSucceeded` or `PaymentFailed`. A paid
//! order schedules shipping and publishes `OrderConfirmed`; a failed
//! payment is compensated: the stock is released and `OrderCancelled` is
//! published. The payment service here refuses amounts over 1,000.
//!
//! Three programs in one: the shop (this `main`), the saga's worker (a host
//! and a subscription on the stream `ORDERS`) and the payment service (a
//! consumer of `PAYMENTS`). They talk only through the broker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

/// The stream names, each after `prefix` (empty when run from the README;
/// a test gives streams of its own).
#[derive(Debug, Clone)]
pub struct Streams {
    orders: String,
    payments: String,
    shop: String,
}

impl Streams {
    /// `ORDERS`, `PAYMENTS` and `SHOP` after `prefix`.
    pub fn new(prefix: &str) -> Self {
        Streams {
            orders: format!("{prefix}ORDERS"),
            payments: format!("{prefix}PAYMENTS"),
            shop: format!("{prefix}SHOP"),
        }
    }
}

/// The saga: reserve, charge, then confirm or compensate. What it prints
/// is printed inside steps, which run once (a replay does not print again).
async fn order(
    p: Process,
    placed: OrderPlaced,
    bus: Publisher,
    streams: Streams,
) -> Result<String, StepFailed> {
    let id = placed.order_id.clone();
    p.step("stock reserved", || async {
        println!(
            "saga      {id}: stock reserved; asking payments to charge {}",
            placed.amount
        );
        Ok::<_, StepError>(())
    })
    .await?;
    bus.publish_with_headers(
        &p,
        "payment requested",
        &format!("{}.charge", streams.payments),
        &[("type", "ChargePayment")],
        &placed,
    )
    .await?;
    let mut succeeded = p.wait::<PaymentResult>("payment succeeded");
    let mut failed = p.wait::<PaymentResult>("payment failed");
    let status = format!("{}.status", streams.shop);
    let outcome = tokio::select! {
        _ = &mut succeeded => {
            failed.abandon();
            p.step("shipping scheduled", || async {
                println!("saga      {id}: paid; shipping scheduled, confirming the order");
                Ok::<_, StepError>(())
            })
            .await?;
            bus.publish_with_headers(&p, "order confirmed", &status,
                &[("type", "OrderConfirmed")], &serde_json::json!({"order_id": id})).await?;
            "confirmed".to_owned()
        }
        result = &mut failed => {
            succeeded.abandon();
            let reason = result.reason.unwrap_or_default();
            // Compensation: give the stock back, tell the shop.
            p.step("stock released", || async {
                println!("saga      {id}: payment failed ({reason}); stock released, cancelling the order");
                Ok::<_, StepError>(())
            })
            .await?;
            bus.publish_with_headers(&p, "order cancelled", &status,
                &[("type", "OrderCancelled")],
                &serde_json::json!({"order_id": id, "reason": reason})).await?;
            format!("cancelled: {reason}")
        }
    };
    Ok(outcome)
}

/// The payment service: charges what it is asked to, up to 1,000.
async fn payment_service(
    mut commands: JetStreamSource,
    sink: JetStreamSink,
    streams: Streams,
) -> anyhow::Result<()> {
    loop {
        let d = commands.receive().await?;
        let placed: OrderPlaced = serde_json::from_slice(&d.message.body)?;
        let (kind, body) = if placed.amount <= 1_000 {
            println!("payments  {}: charged {}", placed.order_id, placed.amount);
            (
                "PaymentSucceeded",
                serde_json::json!({"order_id": placed.order_id}),
            )
        } else {
            println!(
                "payments  {}: {} refused, over the card limit",
                placed.order_id, placed.amount
            );
            (
                "PaymentFailed",
                serde_json::json!({"order_id": placed.order_id, "reason": "card limit exceeded"}),
            )
        };
        // The command's id makes the reply's id: a re-sent command is answered
        // with the same message, which the stream drops as a duplicate.
        let reply_id = format!("payments/{}", d.message.id.clone().unwrap_or_default());
        sink.publish(
            &OutgoingMessage::json(format!("{}.payments", streams.orders), reply_id, &body)?
                .header("type", kind),
        )
        .await?;
        d.ack().await?;
    }
}

/// Runs the shop, the saga's worker and the payment service on `streams`,
/// the journals in `dir`; places `orders` (id suffix, amount) and returns
/// each order's id and the outcome its process returned.
pub async fn run(
    streams: &Streams,
    dir: &Path,
    orders: &[(u32, u64)],
) -> anyhow::Result<Vec<(String, String)>> {
    let run = std::process::id();
    std::fs::create_dir_all(dir)?;
    let db = dir.join("steadfast.db");
    println!(
        "An order saga on NATS JetStream ({DEFAULT_URL}); journals in {}",
        db.display()
    );
    let sink = JetStreamSink::connect(DEFAULT_URL).await?;
    sink.ensure_stream(&streams.payments, vec![format!("{}.>", streams.payments)])
        .await?;
    sink.ensure_stream(&streams.shop, vec![format!("{}.>", streams.shop)])
        .await?;

    // The worker: a host, and a subscription on the ORDERS stream.
    let publisher = Publisher::new(JetStreamSink::connect(DEFAULT_URL).await?);
    let host = Host::builder(SqliteStore::open(&db).await?)
        .register("order", {
            let streams = streams.clone();
            move |p: Process, placed: OrderPlaced| {
                order(p, placed, publisher.clone(), streams.clone())
            }
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
    let orders_source = JetStreamSourceOptions::new(&streams.orders, "order-saga");
    let subscription = Subscription::new("orders", host.clone(), routes)
        .map_err(anyhow::Error::msg)?
        .start(JetStreamSource::connect(orders_source).await?);

    // The payment service, a consumer of its own stream.
    let payments = tokio::spawn(payment_service(
        JetStreamSource::connect(JetStreamSourceOptions::new(
            &streams.payments,
            "payment-service",
        ))
        .await?,
        JetStreamSink::connect(DEFAULT_URL).await?,
        streams.clone(),
    ));

    // The shop: the orders, and what becomes of them.
    let mut status =
        JetStreamSource::connect(JetStreamSourceOptions::new(&streams.shop, "shop")).await?;
    let mut waiting = BTreeSet::new();
    for (n, amount) in orders {
        let order_id = format!("order-{run}-{n}");
        let placed = OrderPlaced {
            order_id: order_id.clone(),
            amount: *amount,
        };
        sink.publish(
            &OutgoingMessage::json(
                format!("{}.placed", streams.orders),
                format!("shop/{order_id}"),
                &placed,
            )?
            .header("type", "OrderPlaced"),
        )
        .await?;
        println!("shop      {order_id}: placed for {amount} (OrderPlaced)");
        waiting.insert(order_id);
    }
    // A message seen before (same id: published again after a crash) is
    // skipped, as is news of orders placed by an earlier run.
    let mut seen = BTreeSet::new();
    while !waiting.is_empty() {
        let d = status.receive().await?;
        let id = d.message.id.clone().unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&d.message.body)?;
        let order_id = body["order_id"].as_str().unwrap_or_default().to_owned();
        if seen.insert(id) && waiting.remove(&order_id) {
            let kind = d.message.headers.get("type").cloned().unwrap_or_default();
            match body.get("reason").and_then(|r| r.as_str()) {
                Some(reason) => println!("shop      {order_id}: {kind} ({reason})"),
                None => println!("shop      {order_id}: {kind}"),
            }
        }
        d.ack().await?;
    }
    println!("What each process returned, read from the store:");
    let mut outcomes = Vec::new();
    for (n, _) in orders {
        let id = format!("order-{run}-{n}");
        let outcome: String = host.outcome(&id).await?;
        println!("  {id}: {outcome}");
        outcomes.push((id, outcome));
    }
    subscription.stop().await;
    payments.abort();
    host.shutdown().await;
    Ok(outcomes)
}

/// The example's folder.
fn example_dir() -> PathBuf {
    std::env::temp_dir().join("steadfast-example-order-saga")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(
        &Streams::new(""),
        &example_dir(),
        &[(1, 120), (2, 5_000), (3, 40)],
    )
    .await?;
    Ok(())
}
