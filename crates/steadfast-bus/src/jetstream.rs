//! NATS JetStream (`async-nats`): a durable pull consumer as a
//! [`MessageSource`], a stream's subjects as a [`MessageSink`] whose
//! publishes carry `Nats-Msg-Id` and wait for the stream's ack.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::message::{DEAD_LETTER_REASON, Delivery, Message, MessageSink, MessageSource, Settle};
use crate::{Backoff, BusError, OutgoingMessage, redact_url};

/// The default URL of the local NATS server.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The header JetStream dedupes publishes by.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Where and how a [`JetStreamSource`] consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamSourceOptions {
    /// The NATS URL.
    #[serde(default = "default_url")]
    pub url: String,
    /// The stream; created with `subjects` if it does not exist.
    pub stream: String,
    /// The stream's subjects when it is created (default: `<stream>.>`).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The durable consumer's name; created if it does not exist.
    pub consumer: String,
    /// Only messages on this subject (wildcards allowed); default all.
    #[serde(default)]
    pub filter_subject: Option<String>,
    /// The subject dead-lettered messages are published to; a stream
    /// `<stream>_DEAD_LETTER` taking it is created. Default
    /// `<stream>.dead-letter` would be taken by the stream itself, so the
    /// default is `dead-letter.<stream>`.
    #[serde(default)]
    pub dead_letter_subject: Option<String>,
    /// How many unacknowledged messages the server hands this consumer at
    /// once (`max_ack_pending`), default 64.
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: u32,
    /// How long the server waits for an ack before delivering again, in
    /// seconds (default 30).
    #[serde(default = "default_ack_wait")]
    pub ack_wait_secs: u64,
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}

fn default_max_ack_pending() -> u32 {
    64
}

fn default_ack_wait() -> u64 {
    30
}

impl JetStreamSourceOptions {
    /// Options for the durable `consumer` of `stream` on the local server.
    pub fn new(stream: impl Into<String>, consumer: impl Into<String>) -> Self {
        JetStreamSourceOptions {
            url: default_url(),
            stream: stream.into(),
            subjects: Vec::new(),
            consumer: consumer.into(),
            filter_subject: None,
            dead_letter_subject: None,
            max_ack_pending: default_max_ack_pending(),
            ack_wait_secs: default_ack_wait(),
        }
    }

    /// The subjects of the stream.
    pub fn subjects(&self) -> Vec<String> {
        if self.subjects.is_empty() {
            vec![format!("{}.>", self.stream)]
        } else {
            self.subjects.clone()
        }
    }

    /// The dead-letter subject.
    pub fn dead_letter_subject(&self) -> String {
        self.dead_letter_subject
            .clone()
            .unwrap_or_else(|| format!("dead-letter.{}", self.stream))
    }
}

/// A durable pull consumer with explicit acks and a bounded number of
/// unacknowledged messages. Acks are confirmed by the server (`double_ack`)
/// before [`Delivery::ack`] returns. The client reconnects by itself; a
/// message stream that fails is reopened with backoff.
///
/// A message's id is its `Nats-Msg-Id` header, or `<stream>:<sequence>`.
///
/// ```no_run
/// use steadfast_bus::{MessageSource, jetstream::{JetStreamSource, JetStreamSourceOptions}};
///
/// # async fn f() -> Result<(), steadfast_bus::BusError> {
/// let mut source = JetStreamSource::connect(JetStreamSourceOptions::new("SIGNUPS", "steadfast")).await?;
/// let delivery = source.receive().await?;
/// delivery.ack().await?;
/// # Ok(()) }
/// ```
pub struct JetStreamSource {
    options: JetStreamSourceOptions,
    name: String,
    client: async_nats::Client,
    context: jetstream::Context,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    messages: Option<pull::Stream>,
    backoff: Backoff,
}

impl JetStreamSource {
    /// Connects and creates the stream, the dead-letter stream and the
    /// durable consumer where they do not exist.
    pub async fn connect(options: JetStreamSourceOptions) -> Result<Self, BusError> {
        if options.max_ack_pending == 0 {
            return Err(BusError::broker(
                "configuring the consumer",
                "max_ack_pending must be at least 1",
            ));
        }
        let client = connect(&options.url).await?;
        let context = jetstream::new(client.clone());
        let stream = ensure_stream(&context, &options.stream, options.subjects()).await?;
        ensure_stream(
            &context,
            &format!("{}_DEAD_LETTER", options.stream),
            vec![options.dead_letter_subject()],
        )
        .await?;
        let consumer = stream
            .get_or_create_consumer(
                &options.consumer,
                pull::Config {
                    durable_name: Some(options.consumer.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    max_ack_pending: i64::from(options.max_ack_pending),
                    ack_wait: Duration::from_secs(options.ack_wait_secs.max(1)),
                    filter_subject: options.filter_subject.clone().unwrap_or_default(),
                    ..pull::Config::default()
                },
            )
            .await
            .map_err(|e| {
                BusError::broker(format!("creating the consumer {:?}", options.consumer), e)
            })?;
        let name = format!(
            "jetstream stream {} consumer {}",
            options.stream, options.consumer
        );
        Ok(JetStreamSource {
            options,
            name,
            client,
            context,
            consumer,
            messages: None,
            backoff: Backoff::default(),
        })
    }

    /// Closes the connection to the server at once, as a network failure
    /// would (for tests of reconnection): the client reconnects by itself.
    pub async fn drop_connection(&mut self) {
        let _ = self.client.force_reconnect().await;
    }
}

#[async_trait]
impl MessageSource for JetStreamSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&mut self) -> Result<Delivery, BusError> {
        loop {
            let messages = match self.messages.as_mut() {
                Some(m) => m,
                None => match self.consumer.messages().await {
                    Ok(m) => self.messages.insert(m),
                    Err(err) => {
                        let wait = self.backoff.next_delay();
                        tracing::warn!(source = %self.name, error = %err, ?wait, "cannot pull from JetStream; trying again");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                },
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    self.backoff.reset();
                    let id = header(message.headers.as_ref(), MSG_ID).or_else(|| {
                        message
                            .info()
                            .ok()
                            .map(|i| format!("{}:{}", i.stream, i.stream_sequence))
                    });
                    let redelivered = message.info().map(|i| i.delivered > 1).unwrap_or(false);
                    let msg = Message {
                        id,
                        destination: message.subject.to_string(),
                        headers: headers(message.headers.as_ref()),
                        body: message.payload.to_vec(),
                        redelivered,
                    };
                    let settle = JetStreamSettle {
                        message,
                        context: self.context.clone(),
                        dead_letter_subject: self.options.dead_letter_subject(),
                    };
                    return Ok(Delivery::new(msg, settle));
                }
                Some(Err(err)) => {
                    tracing::warn!(source = %self.name, error = %err, "pulling from JetStream failed; pulling again");
                }
                None => {
                    tracing::warn!(source = %self.name, "the JetStream message stream ended; pulling again");
                }
            }
            self.messages = None;
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    async fn lag(&mut self) -> Option<u64> {
        self.consumer.info().await.ok().map(|i| i.num_pending)
    }
}

struct JetStreamSettle {
    message: jetstream::Message,
    context: jetstream::Context,
    dead_letter_subject: String,
}

#[async_trait]
impl Settle for JetStreamSettle {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.message
            .double_ack()
            .await
            .map_err(|e| BusError::broker("acknowledging a message", e))
    }

    async fn nack(self: Box<Self>) -> Result<(), BusError> {
        self.message
            .ack_with(AckKind::Nak(None))
            .await
            .map_err(|e| BusError::broker("handing a message back (nak)", e))
    }

    async fn dead_letter(self: Box<Self>, message: &Message, reason: &str) -> Result<(), BusError> {
        let mut headers = message.headers.clone();
        headers.insert(DEAD_LETTER_REASON.to_owned(), reason.to_owned());
        headers.insert(
            "steadfast-original-subject".into(),
            message.destination.clone(),
        );
        if let Some(id) = &message.id {
            headers.insert(MSG_ID.to_owned(), id.clone());
        }
        publish_acked(
            &self.context,
            &self.dead_letter_subject,
            message.id.as_deref().unwrap_or(""),
            &headers,
            message.body.clone(),
        )
        .await?;
        self.message
            .double_ack_with(AckKind::Term)
            .await
            .map_err(|e| BusError::broker("terminating a dead-lettered message", e))
    }
}

/// Publishes to JetStream subjects: each message carries its id as
/// `Nats-Msg-Id` (so the stream's duplicate window drops a re-publish) and
/// [`MessageSink::publish`] returns once the stream has acknowledged it.
///
/// ```no_run
/// use steadfast_bus::{MessageSink, OutgoingMessage, jetstream::JetStreamSink};
///
/// # async fn f() -> Result<(), steadfast_bus::BusError> {
/// let sink = JetStreamSink::connect(steadfast_bus::jetstream::DEFAULT_URL).await?;
/// sink.publish(&OutgoingMessage::new("SIGNUPS.new", "web/1", b"{}".to_vec())).await?;
/// # Ok(()) }
/// ```
pub struct JetStreamSink {
    context: jetstream::Context,
}

impl JetStreamSink {
    /// Connects to the server at `url`.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let client = connect(url).await?;
        Ok(JetStreamSink {
            context: jetstream::new(client),
        })
    }

    /// Creates the stream `name` taking `subjects` if it does not exist (a
    /// convenience for examples and tests).
    pub async fn ensure_stream(&self, name: &str, subjects: Vec<String>) -> Result<(), BusError> {
        ensure_stream(&self.context, name, subjects).await.map(drop)
    }
}

#[async_trait]
impl MessageSink for JetStreamSink {
    async fn publish(&self, message: &OutgoingMessage) -> Result<(), BusError> {
        let mut headers = message.headers.clone();
        headers.insert(MSG_ID.to_owned(), message.id.clone());
        publish_acked(
            &self.context,
            &message.destination,
            &message.id,
            &headers,
            message.body.clone(),
        )
        .await
    }
}

async fn publish_acked(
    context: &jetstream::Context,
    subject: &str,
    id: &str,
    headers: &BTreeMap<String, String>,
    body: Vec<u8>,
) -> Result<(), BusError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(k.as_str(), v.as_str());
    }
    let not_confirmed = |detail: String| BusError::NotConfirmed {
        id: id.to_owned(),
        destination: subject.to_owned(),
        detail,
    };
    context
        .publish_with_headers(subject.to_owned(), map, Bytes::from(body))
        .await
        .map_err(|e| not_confirmed(e.to_string()))?
        .await
        .map_err(|e| not_confirmed(e.to_string()))?;
    Ok(())
}

async fn connect(url: &str) -> Result<async_nats::Client, BusError> {
    async_nats::ConnectOptions::new()
        .connect(url)
        .await
        .map_err(|e| BusError::Connect {
            url: redact_url(url),
            detail: e.to_string(),
        })
}

async fn ensure_stream(
    context: &jetstream::Context,
    name: &str,
    subjects: Vec<String>,
) -> Result<stream::Stream, BusError> {
    context
        .get_or_create_stream(stream::Config {
            name: name.to_owned(),
            subjects,
            duplicate_window: Duration::from_secs(120),
            ..stream::Config::default()
        })
        .await
        .map_err(|e| BusError::broker(format!("creating the stream {name:?}"), e))
}

fn header(map: Option<&HeaderMap>, name: &str) -> Option<String> {
    map?.get(name).map(|v| v.as_str().to_owned())
}

fn headers(map: Option<&HeaderMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(map) = map {
        for (k, values) in map.iter() {
            if let Some(v) = values.last() {
                out.insert(k.to_string(), v.as_str().to_owned());
            }
        }
    }
    out
}
