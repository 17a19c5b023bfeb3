//! RabbitMQ (AMQP 0-9-1, `lapin`): a queue as a [`MessageSource`], an
//! exchange as a [`MessageSink`] with publisher confirms.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::message::{DEAD_LETTER_REASON, Delivery, Message, MessageSink, MessageSource, Settle};
use crate::{Backoff, BusError, redact_url};

/// The default AMQP URL of the local broker.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Where and how a [`RabbitMqSource`] consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSourceOptions {
    /// The AMQP URL (`amqp://user:password@host:port/vhost`).
    #[serde(default = "default_url")]
    pub url: String,
    /// The queue to consume; declared durable if it does not exist.
    pub queue: String,
    /// The queue dead-lettered messages go to (through the default
    /// exchange), declared durable; default `<queue>.dead-letter`.
    #[serde(default)]
    pub dead_letter_queue: Option<String>,
    /// How many unacknowledged messages the broker hands this consumer at
    /// once (basic.qos); 1 to 65,535, default 64.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}

fn default_prefetch() -> u16 {
    64
}

impl RabbitMqSourceOptions {
    /// Options for `queue` on the local broker.
    pub fn new(queue: impl Into<String>) -> Self {
        RabbitMqSourceOptions {
            url: default_url(),
            queue: queue.into(),
            dead_letter_queue: None,
            prefetch: default_prefetch(),
        }
    }

    /// The dead-letter queue's name.
    pub fn dead_letter_queue(&self) -> String {
        self.dead_letter_queue
            .clone()
            .unwrap_or_else(|| format!("{}.dead-letter", self.queue))
    }
}

/// A durable queue consumed with manual acknowledgements and a bounded
/// prefetch. A dropped connection is reopened with backoff; what was not
/// acknowledged on it is delivered again by the broker.
///
/// A dead-lettered message is published to the dead-letter queue with its
/// headers, its message id and the reason in the
/// `steadfast-dead-letter-reason` header, confirmed by the broker, and only
/// then acknowledged.
///
/// ```no_run
/// use steadfast_bus::{MessageSource, rabbitmq::{RabbitMqSource, RabbitMqSourceOptions}};
///
/// # async fn f() -> Result<(), steadfast_bus::BusError> {
/// let mut source = RabbitMqSource::connect(RabbitMqSourceOptions::new("signups")).await?;
/// let delivery = source.receive().await?;
/// delivery.ack().await?;
/// # Ok(()) }
/// ```
pub struct RabbitMqSource {
    options: RabbitMqSourceOptions,
    name: String,
    live: Option<Live>,
    backoff: Backoff,
}

struct Live {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    publisher: Arc<Channel>,
}

impl RabbitMqSource {
    /// Connects, declares the queue and the dead-letter queue and starts
    /// consuming. Fails when the broker cannot be reached now.
    pub async fn connect(options: RabbitMqSourceOptions) -> Result<Self, BusError> {
        if options.prefetch == 0 {
            return Err(BusError::broker(
                "configuring the consumer",
                "prefetch must be at least 1",
            ));
        }
        let name = format!("rabbitmq queue {}", options.queue);
        let mut source = RabbitMqSource {
            options,
            name,
            live: None,
            backoff: Backoff::default(),
        };
        source.live = Some(source.open().await?);
        Ok(source)
    }

    async fn open(&self) -> Result<Live, BusError> {
        let o = &self.options;
        let connection = connect(&o.url).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| BusError::broker("opening a channel", e))?;
        declare_queue(&channel, &o.queue).await?;
        declare_queue(&channel, &o.dead_letter_queue()).await?;
        channel
            .basic_qos(o.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| BusError::broker("setting the prefetch (basic.qos)", e))?;
        let consumer = channel
            .basic_consume(
                o.queue.as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| BusError::broker(format!("consuming queue {:?}", o.queue), e))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| BusError::broker("opening a channel", e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| BusError::broker("enabling publisher confirms", e))?;
        Ok(Live {
            _connection: connection,
            channel,
            consumer,
            publisher: Arc::new(publisher),
        })
    }

    /// Closes the connection (unacknowledged messages go back to the queue).
    pub async fn close(mut self) {
        if let Some(live) = self.live.take() {
            let _ = live._connection.close(200, "closing".into()).await;
        }
    }

    /// Drops the current connection at once, as a network failure would
    /// (for tests of reconnection): the next `receive` reconnects.
    pub async fn drop_connection(&mut self) {
        if let Some(live) = self.live.take() {
            let _ = live
                ._connection
                .close(320, "dropped on purpose".into())
                .await;
        }
    }
}

#[async_trait]
impl MessageSource for RabbitMqSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&mut self) -> Result<Delivery, BusError> {
        loop {
            let live = match self.live.as_mut() {
                Some(live) => live,
                None => match self.open().await {
                    Ok(live) => {
                        tracing::info!(source = %self.name, "reconnected to RabbitMQ");
                        self.backoff.reset();
                        self.live.insert(live)
                    }
                    Err(err) => {
                        let wait = self.backoff.next_delay();
                        tracing::warn!(source = %self.name, error = %err, ?wait, "cannot reconnect to RabbitMQ; trying again");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                },
            };
            match live.consumer.next().await {
                Some(Ok(delivery)) => {
                    let message = to_message(&delivery);
                    let settle = RabbitMqSettle {
                        acker: delivery.acker,
                        publisher: Arc::clone(&live.publisher),
                        dead_letter_queue: self.options.dead_letter_queue(),
                    };
                    return Ok(Delivery::new(message, settle));
                }
                Some(Err(err)) => {
                    tracing::warn!(source = %self.name, error = %err, "the RabbitMQ consumer failed; reconnecting");
                }
                None => {
                    tracing::warn!(source = %self.name, "the RabbitMQ consumer was cancelled; reconnecting");
                }
            }
            self.live = None;
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    async fn lag(&mut self) -> Option<u64> {
        let live = self.live.as_ref()?;
        let queue = live
            .channel
            .queue_declare(
                self.options.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        Some(u64::from(queue.message_count()))
    }
}

struct RabbitMqSettle {
    acker: lapin::Acker,
    publisher: Arc<Channel>,
    dead_letter_queue: String,
}

#[async_trait]
impl Settle for RabbitMqSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|e| BusError::broker("acknowledging a message", e))
    }

    async fn nack(self: Box<Self>) -> Result<(), BusError> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .map(drop)
            .map_err(|e| BusError::broker("handing a message back (nack)", e))
    }

    async fn dead_letter(self: Box<Self>, message: &Message, reason: &str) -> Result<(), BusError> {
        let mut headers = message.headers.clone();
        headers.insert(DEAD_LETTER_REASON.to_owned(), reason.to_owned());
        publish_confirmed(
            &self.publisher,
            "",
            &self.dead_letter_queue,
            message.id.as_deref(),
            &headers,
            &message.body,
        )
        .await?;
        self.ack().await
    }
}

/// Publishes to an exchange with publisher confirms; the outgoing message's
/// destination is the routing key (with the default exchange `""`, the
/// queue's name). Messages are persistent and `mandatory`: one no queue
/// takes is an error, not a silent drop. The connection is reopened on the
/// next publish after it drops.
///
/// ```no_run
/// use steadfast_bus::{MessageSink, OutgoingMessage, rabbitmq::RabbitMqSink};
///
/// # async fn f() -> Result<(), steadfast_bus::BusError> {
/// let sink = RabbitMqSink::new(steadfast_bus::rabbitmq::DEFAULT_URL, "");
/// sink.publish(&OutgoingMessage::new("signups", "web/1", b"{}".to_vec())).await?;
/// # Ok(()) }
/// ```
pub struct RabbitMqSink {
    url: String,
    exchange: String,
    live: Mutex<Option<(Connection, Arc<Channel>)>>,
}

impl RabbitMqSink {
    /// A sink publishing to `exchange` on the broker at `url` (connected at
    /// the first publish).
    pub fn new(url: impl Into<String>, exchange: impl Into<String>) -> Self {
        RabbitMqSink {
            url: url.into(),
            exchange: exchange.into(),
            live: Mutex::new(None),
        }
    }

    /// Declares a durable queue (a convenience for examples and tests).
    pub async fn declare_queue(&self, queue: &str) -> Result<(), BusError> {
        let channel = self.channel().await?;
        declare_queue(&channel, queue).await
    }

    async fn channel(&self) -> Result<Arc<Channel>, BusError> {
        let mut live = self.live.lock().await;
        if let Some((connection, channel)) = live.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(Arc::clone(channel));
        }
        let connection = connect(&self.url).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| BusError::broker("opening a channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| BusError::broker("enabling publisher confirms", e))?;
        let channel = Arc::new(channel);
        *live = Some((connection, Arc::clone(&channel)));
        Ok(channel)
    }
}

#[async_trait]
impl MessageSink for RabbitMqSink {
    async fn publish(&self, message: &crate::OutgoingMessage) -> Result<(), BusError> {
        let channel = self.channel().await?;
        let result = publish_confirmed(
            &channel,
            &self.exchange,
            &message.destination,
            Some(&message.id),
            &message.headers,
            &message.body,
        )
        .await;
        if matches!(result, Err(BusError::Broker { .. })) {
            // The channel may be broken: open a new one next time.
            *self.live.lock().await = None;
        }
        result
    }
}

async fn connect(url: &str) -> Result<Connection, BusError> {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|e| BusError::Connect {
            url: redact_url(url),
            detail: e.to_string(),
        })
}

async fn declare_queue(channel: &Channel, queue: &str) -> Result<(), BusError> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .map(drop)
        .map_err(|e| BusError::broker(format!("declaring queue {queue:?}"), e))
}

async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    id: Option<&str>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<(), BusError> {
    let mut table = FieldTable::default();
    for (k, v) in headers {
        table.insert(
            k.as_str().into(),
            AMQPValue::LongString(LongString::from(v.as_str())),
        );
    }
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_headers(table);
    if let Some(id) = id {
        properties = properties.with_message_id(id.into());
    }
    let not_confirmed = |detail: String| BusError::NotConfirmed {
        id: id.unwrap_or("").to_owned(),
        destination: routing_key.to_owned(),
        detail,
    };
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|e| BusError::broker(format!("publishing to {routing_key:?}"), e))?
        .await
        .map_err(|e| BusError::broker(format!("waiting for the confirm of {routing_key:?}"), e))?;
    match confirm {
        lapin::Confirmation::Ack(None) => Ok(()),
        lapin::Confirmation::Ack(Some(returned)) => Err(not_confirmed(format!(
            "returned by the broker: no queue takes it ({})",
            returned.reply_text
        ))),
        lapin::Confirmation::Nack(_) => Err(not_confirmed("the broker refused it (nack)".into())),
        lapin::Confirmation::NotRequested => Err(not_confirmed(
            "publisher confirms are not enabled on the channel".into(),
        )),
    }
}

fn to_message(delivery: &lapin::message::Delivery) -> Message {
    let mut headers = BTreeMap::new();
    if let Some(table) = delivery.properties.headers() {
        for (k, v) in table.inner() {
            if let Some(text) = value_text(v) {
                headers.insert(k.to_string(), text);
            }
        }
    }
    if let Some(kind) = delivery.properties.kind() {
        headers.entry("type".to_owned()).or_insert(kind.to_string());
    }
    Message {
        id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string()),
        destination: delivery.routing_key.to_string(),
        headers,
        body: delivery.data.clone(),
        redelivered: delivery.redelivered,
    }
}

fn value_text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        _ => return None,
    })
}

/// How long a reconnecting source waits at most between attempts.
pub(crate) const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
