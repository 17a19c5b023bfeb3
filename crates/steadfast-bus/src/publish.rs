//! Publishing from a process: the process's journal is the outbox.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use steadfast::{Process, StepError, StepFailed};

use crate::{BusError, MessageSink, OutgoingMessage};

/// What [`Publisher::publish`] journals before anything is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Journaled {
    destination: String,
    id: String,
    headers: std::collections::BTreeMap<String, String>,
    body: serde_json::Value,
}

/// Publishes messages from processes through a [`MessageSink`]; give it to
/// the host with `HostBuilder::provide` and take it as an argument of the
/// process function.
///
/// [`Publisher::publish`] is a durable operation in two journal entries:
///
/// 1. `<name>` journals the message with its stable id (the step's
///    idempotency key, `"<process id>/<name>"`), committed before anything
///    is sent — this entry is the outbox;
/// 2. `<name>: published` is a step that publishes it and waits for the
///    broker's confirmation (a publisher confirm, a JetStream ack), then
///    journals that it was published.
///
/// A crash between the two publishes on recovery (the replay finds the
/// first entry without the second); a crash after the broker confirmed but
/// before the second entry was written publishes again with the same id,
/// which JetStream's duplicate window drops and consumers dedupe by. A replay
/// past the second entry never publishes. While the broker is down the step
/// retries under the host's retry policy (durably: the process is unloaded
/// between attempts).
///
/// ```no_run
/// use steadfast::{Process, StepFailed};
/// use steadfast_bus::Publisher;
///
/// async fn activate(p: Process, user_id: u64, bus: Publisher) -> Result<(), StepFailed> {
///     bus.publish(&p, "user activated", "user.activated",
///         &serde_json::json!({"type": "UserActivated", "user_id": user_id})).await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Publisher {
    sink: Arc<dyn MessageSink>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// Publishes through `sink`.
    pub fn new(sink: impl MessageSink + 'static) -> Self {
        Publisher {
            sink: Arc::new(sink),
        }
    }

    /// Publishes through a shared sink.
    pub fn from_arc(sink: Arc<dyn MessageSink>) -> Self {
        Publisher { sink }
    }

    /// A publisher whose every publish fails for good with `why` (for a
    /// worker that has no broker to publish to).
    pub fn unconfigured(why: impl Into<String>) -> Self {
        Publisher::new(Unconfigured(why.into()))
    }

    /// Journals `message` (as JSON) under `name` with a stable id, then
    /// publishes it to `destination` and journals that the broker confirmed
    /// it; returns the message id. See the type's documentation for what a
    /// crash does.
    #[track_caller]
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        p: &Process,
        name: &str,
        destination: &str,
        message: &T,
    ) -> impl Future<Output = Result<String, StepFailed>> + Send + 'static {
        self.publish_with_headers(p, name, destination, &[], message)
    }

    /// [`Publisher::publish`] with headers (such as `type`).
    #[track_caller]
    pub fn publish_with_headers<T: Serialize + ?Sized>(
        &self,
        p: &Process,
        name: &str,
        destination: &str,
        headers: &[(&str, &str)],
        message: &T,
    ) -> impl Future<Output = Result<String, StepFailed>> + Send + 'static {
        let body = serde_json::to_value(message);
        let fresh = Journaled {
            destination: destination.to_owned(),
            id: p.idempotency_key(name),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_ref().cloned().unwrap_or(serde_json::Value::Null),
        };
        let journaled = p.get(name.to_owned(), move || fresh);
        let sent: Arc<Mutex<Option<Journaled>>> = Arc::default();
        let to_send = Arc::clone(&sent);
        let sink = Arc::clone(&self.sink);
        let encode_error = body.err().map(|e| e.to_string());
        let step = p.step(format!("{name}: published"), move || {
            let sink = Arc::clone(&sink);
            let message = to_send.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let encode_error = encode_error.clone();
            async move {
                if let Some(e) = encode_error {
                    return Err(StepError::permanent(format!(
                        "the message cannot be encoded as JSON: {e}"
                    )));
                }
                let Some(m) = message else {
                    return Err(StepError::permanent("the journaled message is missing"));
                };
                let body = serde_json::to_vec(&m.body).map_err(StepError::permanent)?;
                let out = OutgoingMessage {
                    destination: m.destination,
                    id: m.id.clone(),
                    headers: m.headers,
                    body,
                };
                sink.publish(&out).await.map_err(|e| match e {
                    BusError::Unconfigured(_) => StepError::permanent(e),
                    e => StepError::from(e),
                })?;
                Ok::<_, StepError>(m.id)
            }
        });
        async move {
            let message = journaled.await;
            *sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
            step.await
        }
    }
}

struct Unconfigured(String);

#[async_trait::async_trait]
impl MessageSink for Unconfigured {
    async fn publish(&self, message: &OutgoingMessage) -> Result<(), BusError> {
        Err(BusError::Unconfigured(format!(
            "message {:?} to {:?}: {}",
            message.id, message.destination, self.0
        )))
    }
}
