//! Messages in and out, and the two traits every broker adapter implements.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::BusError;

/// The header that carries the reason a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "steadfast-dead-letter-reason";

/// A message received from a broker.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's stable id: the publisher's message id (RabbitMQ's
    /// `message_id` property, JetStream's `Nats-Msg-Id` header), or one the
    /// broker gives it for good (`<stream>:<sequence>` on JetStream). A
    /// re-delivery carries the same id.
    pub id: Option<String>,
    /// Where it was published to: the routing key or the subject.
    pub destination: String,
    /// Its headers, as text.
    pub headers: BTreeMap<String, String>,
    /// Its body.
    pub body: Vec<u8>,
    /// Whether the broker delivered it before (and it was not acknowledged).
    pub redelivered: bool,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("destination", &self.destination)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

/// A message to publish: a body, a stable id and headers, sent to a
/// destination (a routing key or a subject).
///
/// ```
/// use steadfast_bus::OutgoingMessage;
///
/// let m = OutgoingMessage::json("user.activated", "user-42/activated", &serde_json::json!({"user_id": 42}))
///     .unwrap()
///     .header("type", "UserActivated");
/// assert_eq!(m.id, "user-42/activated");
/// assert_eq!(m.headers["type"], "UserActivated");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The routing key (RabbitMQ) or subject (JetStream).
    pub destination: String,
    /// The stable message id consumers and brokers dedupe by.
    pub id: String,
    /// Headers to send.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl OutgoingMessage {
    /// A message with a raw body.
    pub fn new(destination: impl Into<String>, id: impl Into<String>, body: Vec<u8>) -> Self {
        OutgoingMessage {
            destination: destination.into(),
            id: id.into(),
            headers: BTreeMap::new(),
            body,
        }
    }

    /// A message whose body is `value` as JSON.
    pub fn json<T: serde::Serialize + ?Sized>(
        destination: impl Into<String>,
        id: impl Into<String>,
        value: &T,
    ) -> Result<Self, BusError> {
        let body = serde_json::to_vec(value).map_err(|e| BusError::Encode(e.to_string()))?;
        Ok(Self::new(destination, id, body))
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// How a received message is settled with its broker; an adapter implements
/// it for its deliveries.
#[async_trait]
pub trait Settle: Send + Sync {
    /// The message is handled: the broker forgets it.
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// The message could not be handled now: the broker delivers it again.
    async fn nack(self: Box<Self>) -> Result<(), BusError>;
    /// The message can never be handled: it goes to the dead-letter
    /// destination with `reason` in the [`DEAD_LETTER_REASON`] header, and
    /// is acknowledged once the broker has confirmed that copy.
    async fn dead_letter(self: Box<Self>, message: &Message, reason: &str) -> Result<(), BusError>;
}

/// A received message and the means to settle it. Dropping it unsettled
/// leaves it to the broker, which delivers it again once the connection or
/// its acknowledgement deadline is gone.
pub struct Delivery {
    /// The message.
    pub message: Message,
    settle: Box<dyn Settle>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery of `message`, settled through `settle`.
    pub fn new(message: Message, settle: impl Settle + 'static) -> Self {
        Delivery {
            message,
            settle: Box::new(settle),
        }
    }

    /// Acknowledges the message.
    pub async fn ack(self) -> Result<(), BusError> {
        self.settle.ack().await
    }

    /// Hands the message back for another delivery.
    pub async fn nack(self) -> Result<(), BusError> {
        self.settle.nack().await
    }

    /// Sends the message to the dead-letter destination with `reason`.
    pub async fn dead_letter(self, reason: &str) -> Result<(), BusError> {
        let Delivery { message, settle } = self;
        settle.dead_letter(&message, reason).await
    }
}

/// Where messages come from: a queue, a durable consumer, a topic partition.
///
/// `receive` waits for the next message. An adapter reconnects by itself
/// when its connection drops (messages not acknowledged then are delivered
/// again by the broker), and bounds how many unacknowledged messages the
/// broker hands it (prefetch, max ack pending), which is what makes a slow
/// consumer push back on the broker instead of buffering.
#[async_trait]
pub trait MessageSource: Send {
    /// A name for logs and metrics (the queue or the stream and consumer).
    fn name(&self) -> &str;
    /// The next message.
    async fn receive(&mut self) -> Result<Delivery, BusError>;
    /// How many messages wait at the broker for this consumer, if known.
    async fn lag(&mut self) -> Option<u64> {
        None
    }
}

/// Where messages go: [`MessageSink::publish`] returns once the broker has
/// confirmed the message stored (a publisher confirm, a JetStream ack).
///
/// The message id travels with it (the `message_id` property, the
/// `Nats-Msg-Id` header) so that a re-publish after a crash can be dropped by
/// the broker's dedupe window or by the consumer.
#[async_trait]
pub trait MessageSink: Send + Sync {
    /// Publishes `message` and waits for the broker's confirmation.
    async fn publish(&self, message: &OutgoingMessage) -> Result<(), BusError>;
}

#[async_trait]
impl<S: MessageSource + ?Sized> MessageSource for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn receive(&mut self) -> Result<Delivery, BusError> {
        (**self).receive().await
    }

    async fn lag(&mut self) -> Option<u64> {
        (**self).lag().await
    }
}
