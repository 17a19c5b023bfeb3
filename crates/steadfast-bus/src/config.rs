//! The route file: subscriptions, their sources and routes, in TOML or JSON.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use steadfast::Host;

use crate::jetstream::{JetStreamSource, JetStreamSourceOptions};
use crate::rabbitmq::{RabbitMqSource, RabbitMqSourceOptions};
use crate::route::Route;
use crate::{BusError, ConfigError, RunningSubscription, Subscription};

/// The most messages one subscription handles at once.
pub const MAX_CONCURRENCY: usize = 10_000;

/// A route file: subscriptions and where processes publish, read by
/// [`RouteFile::load`] and started with [`RouteFile::start`].
///
/// ```
/// use steadfast_bus::RouteFile;
///
/// let file = RouteFile::parse_toml("routes.toml", r#"
///     [[subscription]]
///     name = "verifications"
///     concurrency = 8
///     source = { broker = "rabbitmq", queue = "email-verified" }
///
///     [[subscription.route]]
///     when = { header = "type", equals = "EmailVerified" }
///     signal = { name = "email verified", id = { field = "user_id", prefix = "user-" } }
/// "#).unwrap();
/// assert_eq!(file.subscriptions[0].routes.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// The subscriptions.
    #[serde(rename = "subscription", default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    /// Where processes publish to ([`crate::Publisher`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<SinkConfig>,
}

/// The broker processes publish to (the `[publish]` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "broker", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// RabbitMQ: messages go to `exchange` (default `""`, the default
    /// exchange, where a destination is a queue's name).
    Rabbitmq {
        /// The AMQP URL.
        #[serde(default = "rabbit_url")]
        url: String,
        /// The exchange.
        #[serde(default)]
        exchange: String,
    },
    /// NATS JetStream: a destination is a subject some stream takes.
    Jetstream {
        /// The NATS URL.
        #[serde(default = "nats_url")]
        url: String,
    },
}

fn rabbit_url() -> String {
    crate::rabbitmq::DEFAULT_URL.to_owned()
}

fn nats_url() -> String {
    crate::jetstream::DEFAULT_URL.to_owned()
}

/// One subscription of a route file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Its name (logs, metrics), unique in the file.
    pub name: String,
    /// Where its messages come from.
    pub source: SourceConfig,
    /// How many messages it handles at once (1 to 10,000; default 16).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Its routes, tried in order.
    #[serde(rename = "route")]
    pub routes: Vec<Route>,
}

fn default_concurrency() -> usize {
    16
}

/// A subscription's broker and where on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "broker", rename_all = "lowercase")]
pub enum SourceConfig {
    /// A RabbitMQ queue.
    Rabbitmq(RabbitMqSourceOptions),
    /// A NATS JetStream durable consumer.
    Jetstream(JetStreamSourceOptions),
}

impl RouteFile {
    /// Reads `path`: JSON if it ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::parse_json(&shown, &text)
        } else {
            Self::parse_toml(&shown, &text)
        }
    }

    /// Parses TOML text (`path` is only for messages).
    pub fn parse_toml(path: &str, text: &str) -> Result<Self, ConfigError> {
        let file: RouteFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            format: "TOML",
            detail: e.to_string().trim().to_owned(),
        })?;
        file.check(path)?;
        Ok(file)
    }

    /// Parses JSON text (`path` is only for messages).
    pub fn parse_json(path: &str, text: &str) -> Result<Self, ConfigError> {
        let file: RouteFile = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            format: "JSON",
            detail: e.to_string(),
        })?;
        file.check(path)?;
        Ok(file)
    }

    fn check(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: path.to_owned(),
            detail,
        };
        if self.subscriptions.is_empty() && self.publish.is_none() {
            return Err(invalid(
                "no `[[subscription]]` and no `[publish]` in the file".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for s in &self.subscriptions {
            if s.name.is_empty() {
                return Err(invalid("a subscription has an empty `name`".into()));
            }
            if !names.insert(&s.name) {
                return Err(invalid(format!(
                    "two subscriptions are named {:?}; names must be unique",
                    s.name
                )));
            }
            if !(1..=MAX_CONCURRENCY).contains(&s.concurrency) {
                return Err(invalid(format!(
                    "subscription {:?}: `concurrency` must be 1 to {MAX_CONCURRENCY}, not {}",
                    s.name, s.concurrency
                )));
            }
            match &s.source {
                SourceConfig::Rabbitmq(o) => {
                    if o.queue.is_empty() {
                        return Err(invalid(format!(
                            "subscription {:?}: `source.queue` must not be empty",
                            s.name
                        )));
                    }
                    if o.prefetch == 0 {
                        return Err(invalid(format!(
                            "subscription {:?}: `source.prefetch` must be at least 1",
                            s.name
                        )));
                    }
                }
                SourceConfig::Jetstream(o) => {
                    if o.stream.is_empty() || o.consumer.is_empty() {
                        return Err(invalid(format!(
                            "subscription {:?}: `source.stream` and `source.consumer` must not be empty",
                            s.name
                        )));
                    }
                    if o.max_ack_pending == 0 {
                        return Err(invalid(format!(
                            "subscription {:?}: `source.max_ack_pending` must be at least 1",
                            s.name
                        )));
                    }
                }
            }
            if s.routes.is_empty() {
                return Err(invalid(format!(
                    "subscription {:?} has no `[[subscription.route]]`",
                    s.name
                )));
            }
            for (i, route) in s.routes.iter().enumerate() {
                route.check().map_err(|e| {
                    invalid(format!("subscription {:?}, route {}: {e}", s.name, i + 1))
                })?;
            }
        }
        Ok(())
    }

    /// The publisher of the `[publish]` table (one whose publishes fail for
    /// good, saying so, when the file has none).
    pub async fn publisher(&self) -> Result<crate::Publisher, BusError> {
        Ok(match &self.publish {
            None => crate::Publisher::unconfigured("the route file has no [publish] table"),
            Some(SinkConfig::Rabbitmq { url, exchange }) => {
                crate::Publisher::new(crate::rabbitmq::RabbitMqSink::new(url, exchange))
            }
            Some(SinkConfig::Jetstream { url }) => {
                crate::Publisher::new(crate::jetstream::JetStreamSink::connect(url).await?)
            }
        })
    }

    /// Connects every subscription's source and starts it on `host`.
    /// Fails (stopping those already started) when a broker cannot be
    /// reached.
    pub async fn start(&self, host: &Host) -> Result<Vec<RunningSubscription>, BusError> {
        let mut running = Vec::new();
        for s in &self.subscriptions {
            let sub = match Subscription::new(s.name.clone(), host.clone(), s.routes.clone()) {
                Ok(sub) => sub.concurrency(s.concurrency),
                Err(detail) => {
                    return Err(BusError::broker("starting a subscription", detail));
                }
            };
            let started = match &s.source {
                SourceConfig::Rabbitmq(o) => RabbitMqSource::connect(o.clone())
                    .await
                    .map(|src| sub.start(src)),
                SourceConfig::Jetstream(o) => JetStreamSource::connect(o.clone())
                    .await
                    .map(|src| sub.start(src)),
            };
            match started {
                Ok(r) => running.push(r),
                Err(err) => {
                    for r in running {
                        r.stop().await;
                    }
                    return Err(err);
                }
            }
        }
        Ok(running)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_say_the_same() {
        let toml = RouteFile::parse_toml(
            "a.toml",
            r#"
            [[subscription]]
            name = "orders"
            source = { broker = "jetstream", stream = "ORDERS", consumer = "saga" }
            [[subscription.route]]
            when = { field = "type", equals = "OrderPlaced" }
            spawn = { kind = "order", id = { field = "order_id" } }
            "#,
        )
        .unwrap();
        let json = RouteFile::parse_json(
            "a.json",
            r#"{"subscription": [{"name": "orders",
                "source": {"broker": "jetstream", "stream": "ORDERS", "consumer": "saga"},
                "route": [{"when": {"field": "type", "equals": "OrderPlaced"},
                           "spawn": {"kind": "order", "id": {"field": "order_id"}}}]}]}"#,
        )
        .unwrap();
        assert_eq!(toml, json);
        assert_eq!(toml.subscriptions[0].concurrency, 16);
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let err = |text: &str| {
            RouteFile::parse_toml("r.toml", text)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("").contains("no `[[subscription]]` and no `[publish]`"),
            "{}",
            err("")
        );
        let unknown = err(r#"
            [[subscription]]
            name = "a"
            source = { broker = "kafka", topic = "x" }
            route = []
            "#);
        assert!(unknown.contains("kafka"), "{unknown}");
        let typo = err(r#"
            [[subscription]]
            name = "a"
            source = { broker = "rabbitmq", queue = "q", prefetchh = 3 }
            route = []
            "#);
        assert!(typo.contains("prefetchh"), "{typo}");
        let no_route = err(r#"
            [[subscription]]
            name = "a"
            source = { broker = "rabbitmq", queue = "q" }
            route = []
            "#);
        assert!(no_route.contains("has no"), "{no_route}");
        let both = err(r#"
            [[subscription]]
            name = "a"
            source = { broker = "rabbitmq", queue = "q" }
            [[subscription.route]]
            signal = { name = "s", id = { field = "a", header = "b" } }
            "#);
        assert!(
            both.contains("route 1") && both.contains("both a field and a header"),
            "{both}"
        );
        let zero = err(r#"
            [[subscription]]
            name = "a"
            concurrency = 0
            source = { broker = "rabbitmq", queue = "q" }
            [[subscription.route]]
            signal = { name = "s", id = { field = "a" } }
            "#);
        assert!(
            zero.contains("`concurrency` must be 1 to 10000, not 0"),
            "{zero}"
        );
    }
}
