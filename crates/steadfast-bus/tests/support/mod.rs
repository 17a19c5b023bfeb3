//! One test body for both brokers: names of their own per test, a TCP proxy
//! that can cut every connection (a network failure), and cleanup.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use lapin::options::QueueDeleteOptions;
use steadfast_bus::jetstream::{JetStreamSink, JetStreamSource, JetStreamSourceOptions};
use steadfast_bus::rabbitmq::{RabbitMqSink, RabbitMqSource, RabbitMqSourceOptions};
use steadfast_bus::{Message, MessageSink, MessageSource};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const RABBIT: &str = "127.0.0.1:5672";
pub const NATS: &str = "127.0.0.1:4222";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    RabbitMq,
    JetStream,
}

/// A broker reachable directly, or through a proxy that can cut connections.
pub struct Env {
    pub broker: Broker,
    /// Unique per test: the queue, or the stream (upper case).
    pub name: String,
    proxy: Option<Proxy>,
}

impl Env {
    pub async fn new(broker: Broker, test: &str) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = match broker {
            Broker::RabbitMq => format!("steadfast-test-{test}-{}", &suffix[..12]),
            Broker::JetStream => {
                format!("STEADFAST_TEST_{}_{}", test.to_uppercase(), &suffix[..12])
            }
        };
        Env {
            broker,
            name,
            proxy: None,
        }
    }

    /// The environment of queues or streams named `name` (another process's).
    pub fn named(broker: Broker, name: &str) -> Self {
        Env {
            broker,
            name: name.to_owned(),
            proxy: None,
        }
    }

    /// Routes the source's connection through a proxy [`Env::cut`] can break.
    pub async fn with_proxy(mut self) -> Self {
        let target = match self.broker {
            Broker::RabbitMq => RABBIT,
            Broker::JetStream => NATS,
        };
        self.proxy = Some(Proxy::start(target).await);
        self
    }

    /// Cuts every connection through the proxy (new ones go through again).
    pub fn cut(&self) {
        self.proxy.as_ref().expect("no proxy").cut();
    }

    fn source_addr(&self) -> String {
        match (&self.proxy, self.broker) {
            (Some(p), _) => p.addr.clone(),
            (None, Broker::RabbitMq) => RABBIT.to_owned(),
            (None, Broker::JetStream) => NATS.to_owned(),
        }
    }

    pub async fn source(&self) -> Box<dyn MessageSource> {
        self.source_with(64).await
    }

    pub async fn source_with(&self, prefetch: u16) -> Box<dyn MessageSource> {
        let addr = self.source_addr();
        match self.broker {
            Broker::RabbitMq => {
                let mut o = RabbitMqSourceOptions::new(&self.name);
                o.url = format!("amqp://guest:guest@{addr}/%2f");
                o.prefetch = prefetch;
                Box::new(RabbitMqSource::connect(o).await.unwrap())
            }
            Broker::JetStream => {
                let mut o = JetStreamSourceOptions::new(&self.name, "steadfast");
                o.url = format!("nats://{addr}");
                o.max_ack_pending = u32::from(prefetch);
                // A killed consumer's messages come back after this.
                o.ack_wait_secs = 5;
                Box::new(JetStreamSource::connect(o).await.unwrap())
            }
        }
    }

    /// Where a message for the source is published to.
    pub fn destination(&self) -> String {
        match self.broker {
            Broker::RabbitMq => self.name.clone(),
            Broker::JetStream => format!("{}.in", self.name),
        }
    }

    pub async fn sink(&self) -> Box<dyn MessageSink> {
        match self.broker {
            Broker::RabbitMq => Box::new(RabbitMqSink::new(
                format!("amqp://guest:guest@{RABBIT}/%2f"),
                "",
            )),
            Broker::JetStream => Box::new(
                JetStreamSink::connect(&format!("nats://{NATS}"))
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Reads `n` dead-lettered messages (acknowledging them).
    pub async fn dead_letters(&self, n: usize) -> Vec<Message> {
        let mut source: Box<dyn MessageSource> = match self.broker {
            Broker::RabbitMq => {
                let mut o = RabbitMqSourceOptions::new(format!("{}.dead-letter", self.name));
                o.url = format!("amqp://guest:guest@{RABBIT}/%2f");
                Box::new(RabbitMqSource::connect(o).await.unwrap())
            }
            Broker::JetStream => {
                let mut o =
                    JetStreamSourceOptions::new(format!("{}_DEAD_LETTER", self.name), "check");
                o.url = format!("nats://{NATS}");
                o.subjects = vec![format!("dead-letter.{}", self.name)];
                Box::new(JetStreamSource::connect(o).await.unwrap())
            }
        };
        let mut out = Vec::new();
        while out.len() < n {
            let d = tokio::time::timeout(Duration::from_secs(30), source.receive())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} dead letters arrived", out.len()))
                .unwrap();
            out.push(d.message.clone());
            d.ack().await.unwrap();
        }
        out
    }

    /// Deletes the test's queues or streams.
    pub async fn cleanup(&self) {
        match self.broker {
            Broker::RabbitMq => {
                let conn = lapin::Connection::connect(
                    &format!("amqp://guest:guest@{RABBIT}/%2f"),
                    lapin::ConnectionProperties::default(),
                )
                .await
                .unwrap();
                let ch = conn.create_channel().await.unwrap();
                for q in [
                    self.name.clone(),
                    format!("{}.dead-letter", self.name),
                    format!("{}.dead-letter.dead-letter", self.name),
                ] {
                    let _ = ch
                        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let _ = conn.close(200, "done".into()).await;
            }
            Broker::JetStream => {
                let client = async_nats::connect(NATS).await.unwrap();
                let js = jetstream::new(client);
                for s in [
                    self.name.clone(),
                    format!("{}_DEAD_LETTER", self.name),
                    format!("{}_DEAD_LETTER_DEAD_LETTER", self.name),
                ] {
                    let _ = js.delete_stream(&s).await;
                }
            }
        }
    }
}

/// A TCP proxy to a broker whose connections can all be cut at once.
pub struct Proxy {
    pub addr: String,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(handle);
            }
        });
        Proxy {
            addr,
            conns,
            accept,
        }
    }

    /// Closes every connection now open (both sides see it drop).
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Waits until `check` holds, failing after 60 s with `what`.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_for(Duration::from_secs(60), what, check).await;
}

/// Waits until `check` holds, failing after `limit` with `what`.
pub async fn eventually_for<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes a sentinel to `env`'s queue or stream, reads up to it and
/// returns the ids of the messages before it (acknowledged).
pub async fn ids_before_sentinel(env: &Env) -> Vec<String> {
    let sentinel = format!("sentinel-{}", uuid::Uuid::new_v4());
    env.sink()
        .await
        .publish(&steadfast_bus::OutgoingMessage::new(
            env.destination(),
            sentinel.clone(),
            b"{}".to_vec(),
        ))
        .await
        .unwrap();
    let mut source = env.source().await;
    let mut ids = Vec::new();
    loop {
        let d = source.receive().await.unwrap();
        let id = d.message.id.clone().unwrap_or_default();
        d.ack().await.unwrap();
        if id == sentinel {
            return ids;
        }
        ids.push(id);
    }
}

/// The ids of the messages in `env`'s dead-letter destination, read up to a
/// sentinel published there.
pub async fn dead_letters_before_sentinel(env: &Env) -> Vec<String> {
    let dead = match env.broker {
        Broker::RabbitMq => Env::named(env.broker, &format!("{}.dead-letter", env.name)),
        Broker::JetStream => Env::named(env.broker, &format!("{}_DEAD_LETTER", env.name)),
    };
    let sentinel = format!("sentinel-{}", uuid::Uuid::new_v4());
    let destination = match env.broker {
        Broker::RabbitMq => dead.name.clone(),
        Broker::JetStream => format!("dead-letter.{}", env.name),
    };
    env.sink()
        .await
        .publish(&steadfast_bus::OutgoingMessage::new(
            destination,
            sentinel.clone(),
            b"{}".to_vec(),
        ))
        .await
        .unwrap();
    let mut source: Box<dyn MessageSource> = match env.broker {
        Broker::RabbitMq => {
            let mut o = RabbitMqSourceOptions::new(&dead.name);
            o.url = format!("amqp://guest:guest@{RABBIT}/%2f");
            Box::new(RabbitMqSource::connect(o).await.unwrap())
        }
        Broker::JetStream => {
            let mut o = JetStreamSourceOptions::new(&dead.name, "sentinel-check");
            o.url = format!("nats://{NATS}");
            o.subjects = vec![format!("dead-letter.{}", env.name)];
            Box::new(JetStreamSource::connect(o).await.unwrap())
        }
    };
    let mut ids = Vec::new();
    loop {
        let d = source.receive().await.unwrap();
        let id = d.message.id.clone().unwrap_or_default();
        d.ack().await.unwrap();
        if id == sentinel {
            return ids;
        }
        ids.push(id);
    }
}
