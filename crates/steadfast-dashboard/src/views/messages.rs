//! Messages on the process page: those it received (signals sent by a
//! message, with the message's id) and those it published (the outbox
//! entries of its journal).

use maud::{Markup, html};
use serde::Serialize;
use steadfast::core::SignalRecord;
use steadfast::{EntryKind, EntryStatus, JournalEntry, Timestamp};

use super::rel_time;

/// The suffix of the step that publishes a journaled message: a publish
/// named `X` journals the message as the value `X`, then runs the step
/// `X: published`, which returns once the broker confirmed it.
pub const PUBLISHED_SUFFIX: &str = ": published";

/// A message the process received: a signal stored from a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    /// The signal's id.
    pub signal: i64,
    /// The signal's name.
    pub name: String,
    /// The message's id.
    pub message_id: String,
    /// When the signal was stored.
    pub at: Timestamp,
}

/// What became of a message the process publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishState {
    /// The broker confirmed it.
    Published,
    /// Journaled; the broker has not confirmed it yet (a retry may be due).
    Pending,
    /// The publishing step failed for good.
    Failed,
}

impl PublishState {
    /// The state in words.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishState::Published => "published",
            PublishState::Pending => "not confirmed yet",
            PublishState::Failed => "failed",
        }
    }
}

/// A message the process published (or is publishing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The publish's name in the journal.
    pub name: String,
    /// The routing key or subject.
    pub destination: String,
    /// The message's stable id.
    pub message_id: String,
    /// Whether the broker confirmed it.
    pub state: PublishState,
    /// When the broker confirmed it (or the step failed); when it was
    /// journaled while it is pending.
    pub at: Timestamp,
}

/// The signals that came from a message, in send order.
pub fn received(signals: &[SignalRecord]) -> Vec<Received> {
    signals
        .iter()
        .filter_map(|s| {
            s.message_id.as_ref().map(|message_id| Received {
                signal: s.id,
                name: s.name.clone(),
                message_id: message_id.clone(),
                at: s.sent_at,
            })
        })
        .collect()
}

/// The journaled outgoing messages of process `id`, in journal order:
/// each completed value entry `X` holding a message (an object with a text
/// `destination` and the id `"<id>/X"`, the publish's idempotency key),
/// with the state of its publishing step `X: published` (none yet when the
/// run stopped between the two entries).
pub fn published(id: &str, journal: &[JournalEntry]) -> Vec<Published> {
    #[derive(serde::Deserialize)]
    struct Outgoing {
        destination: String,
        id: String,
    }
    journal
        .iter()
        .filter(|e| e.kind == EntryKind::Value && e.status == EntryStatus::Completed)
        .filter_map(|value| {
            let message: Outgoing = serde_json::from_str(value.outcome.as_deref()?).ok()?;
            if message.id != format!("{id}/{}", value.name) {
                return None;
            }
            let step_name = format!("{}{PUBLISHED_SUFFIX}", value.name);
            let step = journal
                .iter()
                .find(|e| e.kind == EntryKind::Step && e.name == step_name);
            let journaled = value.finished_at.unwrap_or(value.started_at);
            let (state, at) = match step.map(|s| (s.status, s.finished_at)) {
                Some((EntryStatus::Completed, Some(at))) => (PublishState::Published, at),
                Some((EntryStatus::Failed, Some(at))) => (PublishState::Failed, at),
                _ => (PublishState::Pending, journaled),
            };
            Some(Published {
                name: value.name.clone(),
                destination: message.destination,
                message_id: message.id,
                state,
                at,
            })
        })
        .collect()
}

/// The "Messages" section: received and published messages, or nothing
/// when the process has neither.
pub fn render(received: &[Received], published: &[Published]) -> Markup {
    html! {
        @if !received.is_empty() || !published.is_empty() {
            section.messages {
                h2 { "Messages" }
                @if !received.is_empty() {
                    h3 { "Received " span.muted { "(" (received.len()) ")" } }
                    table.received {
                        thead { tr { th { "signal" } th { "message id" } th { "received" } } }
                        tbody {
                            @for r in received {
                                tr data-signal=(r.signal) {
                                    td { code { (r.name) } }
                                    td { code.message-id { (r.message_id) } }
                                    td { (rel_time(r.at)) }
                                }
                            }
                        }
                    }
                }
                @if !published.is_empty() {
                    h3 { "Published " span.muted { "(" (published.len()) ")" } }
                    table.published {
                        thead { tr { th { "name" } th { "destination" } th { "message id" } th { "state" } th { "when" } } }
                        tbody {
                            @for p in published {
                                tr data-publish-state=(p.state.as_str()) {
                                    td { code { (p.name) } }
                                    td { code { (p.destination) } }
                                    td { code.message-id { (p.message_id) } }
                                    td { (p.state.as_str()) }
                                    td { (rel_time(p.at)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
