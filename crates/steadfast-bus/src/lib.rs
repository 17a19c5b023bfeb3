//! Steadfast processes on a message bus.
//!
//! Two small traits stand between Steadfast and a broker:
//!
//! | trait | what it does | adapters |
//! | --- | --- | --- |
//! | [`MessageSource`] | yields [`Delivery`]s to [`Delivery::ack`], [`Delivery::nack`] or [`Delivery::dead_letter`] with a reason | [`rabbitmq::RabbitMqSource`], [`jetstream::JetStreamSource`] |
//! | [`MessageSink`] | publishes an [`OutgoingMessage`] with a stable id and returns once the broker confirmed it | [`rabbitmq::RabbitMqSink`], [`jetstream::JetStreamSink`] |
//!
//! Another broker (Kafka, MQTT, Redis streams) is one more pair of
//! implementations. On top of them, a [`Subscription`] turns messages into
//! spawns and signals by [`route::Route`]s, acknowledging each only once the
//! store holds it; a [`RouteFile`] (TOML or JSON) describes subscriptions
//! that a worker starts with [`RouteFile::start`].
//!
//! ```no_run
//! use steadfast_bus::{MessageSink, OutgoingMessage, Subscription};
//! use steadfast_bus::jetstream::{JetStreamSink, JetStreamSource, JetStreamSourceOptions};
//! use steadfast_bus::route::{Route, Selector};
//!
//! # async fn f(host: steadfast::Host) -> Result<(), Box<dyn std::error::Error>> {
//! // OrderPlaced events start `order` processes, keyed by the order id.
//! let routes = vec![Route::spawn("order", Selector::field("order_id").prefix("order-"))
//!     .when(Selector::field("type"), "OrderPlaced")];
//! let source = JetStreamSource::connect(JetStreamSourceOptions::new("ORDERS", "sagas")).await?;
//! let running = Subscription::new("orders", host, routes)?.start(source);
//!
//! let sink = JetStreamSink::connect(steadfast_bus::jetstream::DEFAULT_URL).await?;
//! sink.publish(&OutgoingMessage::json("ORDERS.placed", "shop/order-1",
//!     &serde_json::json!({"type": "OrderPlaced", "order_id": 1}))?).await?;
//! # running.stop().await;
//! # Ok(()) }
//! ```

mod config;
mod error;
pub mod jetstream;
mod message;
mod publish;
pub mod rabbitmq;
pub mod route;
mod subscription;

use std::time::Duration;

pub use config::{MAX_CONCURRENCY, RouteFile, SinkConfig, SourceConfig, SubscriptionConfig};
pub use error::{BusError, ConfigError};
pub use message::{
    DEAD_LETTER_REASON, Delivery, Message, MessageSink, MessageSource, OutgoingMessage, Settle,
};
pub use publish::Publisher;
pub use subscription::{
    REPORT_HEARTBEAT, REPORT_INTERVAL, RunningSubscription, StatsDetail, StatsSnapshot,
    Subscription, SubscriptionStats,
};

/// Capped exponential backoff with jitter: 50 ms doubling to 5 s.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(50),
        }
    }
}

impl Backoff {
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(rabbitmq::MAX_RECONNECT_DELAY);
        // Up to a quarter more, so that many waiters do not retry in step.
        let jitter = base.mul_f64(rand::random::<f64>() / 4.0);
        base + jitter
    }

    pub(crate) fn reset(&mut self) {
        *self = Backoff::default();
    }
}

/// `url` without a password, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_urls_shown() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(63));
        for _ in 0..20 {
            b.next_delay();
        }
        assert!(b.next_delay() <= rabbitmq::MAX_RECONNECT_DELAY.mul_f64(1.25));
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(63));
    }
}
