use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ProcessId, Timestamp};

/// Where a process stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Runnable or being run by a host.
    Running,
    /// Unloaded, waiting for a timer or a signal.
    Suspended,
    /// The function returned `Ok`.
    Completed,
    /// The function returned `Err`.
    Failed,
    /// Cancelled on request.
    Cancelled,
    /// Stopped because its journal no longer fits the code (or the code
    /// panicked); resumed by `retry` once the code is fixed.
    Blocked,
}

impl Status {
    /// Every status, in display order.
    pub const ALL: [Status; 6] = [
        Status::Running,
        Status::Suspended,
        Status::Blocked,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The lowercase name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Blocked => "blocked",
        }
    }

    /// Whether the process has ended for good (completed, failed, cancelled).
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`Status::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status {0:?}; expected one of running, suspended, blocked, completed, failed, cancelled"
)]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// One process as a store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The user's id.
    pub id: ProcessId,
    /// The registered kind that runs it.
    pub kind: String,
    /// The version of the kind's code that started it; hosts run it with
    /// that version while they have it registered.
    pub version: u32,
    /// The input, as JSON text.
    pub input: String,
    /// Where it stands.
    pub status: Status,
    /// When it was spawned.
    pub created_at: Timestamp,
    /// When its row last changed.
    pub updated_at: Timestamp,
    /// When a host should next look at it: spawn or wake-up time, lease
    /// expiry while a host runs it, `None` when nothing is due (finished,
    /// blocked, or waiting only for signals).
    pub wake_at: Option<Timestamp>,
    /// Signals a suspended process waits for.
    pub waiting_for: Vec<String>,
    /// The host holding the lease, if any.
    pub owner: Option<String>,
    /// Fencing token: incremented each time a host claims the process.
    pub epoch: i64,
    /// Whether a cancellation was requested while a host held it.
    pub cancel_requested: bool,
    /// The function's `Ok` value as JSON text, once completed.
    pub output: Option<String>,
    /// The function's error, the blocking reason, or why it was cancelled.
    pub error: Option<String>,
    /// The step a blocked process stopped at.
    pub blocked_step: Option<String>,
    /// How many times the process continued as new (0 for the first run of
    /// its function); earlier generations' journals are kept as history.
    pub generation: u32,
    /// Where in the source the process stands while it is not running: the
    /// lines of the timers and waits a suspended process waits on, or the
    /// step a blocked process stopped at. Empty otherwise.
    pub parked_at: Vec<SourceLocation>,
    /// The process that spawned this one with `Process::child` and awaits
    /// its end; `None` for processes spawned otherwise (also detached ones).
    /// Cancelling the parent cancels this process, and its end is signalled
    /// to the parent.
    #[serde(default)]
    pub parent: Option<ProcessId>,
    /// The W3C trace context (`traceparent`) of the span that spawned the
    /// process, when the spawning program traces with OpenTelemetry: every
    /// run of the process, on any host, continues that trace.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// What a journal entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EntryKind {
    /// A side effect run by `step`.
    Step,
    /// A non-deterministic value recorded by `get` (also `now`, `uuid`, `random`).
    Value,
    /// A durable timer (`sleep`, `sleep_until`).
    Timer,
    /// A wait for a signal, possibly with a timeout.
    Wait,
    /// A value the process published for readers outside
    /// (`publish_state`), named `"<key> #<n>"`.
    State,
}

impl EntryKind {
    /// The lowercase name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Step => "step",
            EntryKind::Value => "value",
            EntryKind::Timer => "timer",
            EntryKind::Wait => "wait",
            EntryKind::State => "state",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            EntryKind::Step,
            EntryKind::Value,
            EntryKind::Timer,
            EntryKind::Wait,
            EntryKind::State,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Whether a journal entry has an outcome yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EntryStatus {
    /// A timer or wait whose due time is recorded and which has not fired.
    Scheduled,
    /// Finished with a value (`outcome` holds it).
    Completed,
    /// A step that failed for good (`outcome` holds the error).
    Failed,
}

impl EntryStatus {
    /// The lowercase name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Scheduled => "scheduled",
            EntryStatus::Completed => "completed",
            EntryStatus::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            EntryStatus::Scheduled,
            EntryStatus::Completed,
            EntryStatus::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The place in the source where a step was called.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceLocation {
    /// Source file, relative to the workspace root of the calling crate.
    pub file: String,
    /// 1-based line.
    pub line: u32,
}

/// One entry of a process's journal; its identity is `name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Order within the process (assigned by the engine): the order in which
    /// outcomes were journaled; a scheduled timer or wait sits where it was
    /// scheduled until its outcome moves it.
    pub seq: i64,
    /// The step name, unique within the process.
    pub name: String,
    /// What it records.
    pub kind: EntryKind,
    /// Whether it has an outcome yet.
    pub status: EntryStatus,
    /// JSON text: the value (completed) or the error (failed).
    pub outcome: Option<String>,
    /// How many times the closure ran before this outcome.
    pub attempts: u32,
    /// When the step started (timers and waits: when they were scheduled).
    pub started_at: Timestamp,
    /// When the outcome was recorded.
    pub finished_at: Option<Timestamp>,
    /// When a timer, or a wait's timeout, is due.
    pub due_at: Option<Timestamp>,
    /// Where in the source the step was called.
    pub location: Option<SourceLocation>,
    /// The signal a wait consumed (its store id), so the store can mark it
    /// consumed in the same transaction as the entry.
    pub consumed_signal: Option<i64>,
}

/// A signal stored for a process and not yet consumed by a wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingSignal {
    /// Store-assigned id, increasing in send order.
    pub id: i64,
    /// The signal name the process waits for.
    pub name: String,
    /// JSON text.
    pub payload: String,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// The W3C trace context (`traceparent`) of the span that sent it, when
    /// the sender traces with OpenTelemetry; the wait that takes it links
    /// to that span.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// What became of a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SignalState {
    /// Stored and not yet taken by a wait.
    Pending,
    /// Taken by a wait; the journal entry of that wait holds its payload.
    Consumed,
    /// Seen by the waits for its name, none of which could decode its
    /// payload; kept with the reason and never handed to a wait again.
    Rejected,
    /// Dropped by an operator before any wait took it.
    Discarded,
}

impl SignalState {
    /// The lowercase name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalState::Pending => "pending",
            SignalState::Consumed => "consumed",
            SignalState::Rejected => "rejected",
            SignalState::Discarded => "discarded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            SignalState::Pending,
            SignalState::Consumed,
            SignalState::Rejected,
            SignalState::Discarded,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    /// The state a stored signal row stands for, from its settle time being
    /// set and its `disposition` column: not settled is pending, settled
    /// without a disposition is consumed, and a disposition names a
    /// rejection or a discard. Any other disposition is corrupt; the error
    /// says why.
    ///
    /// ```
    /// use steadfast_core::SignalState;
    ///
    /// assert_eq!(SignalState::from_stored(false, None), Ok(SignalState::Pending));
    /// assert_eq!(SignalState::from_stored(true, None), Ok(SignalState::Consumed));
    /// assert_eq!(SignalState::from_stored(true, Some("rejected")), Ok(SignalState::Rejected));
    /// assert!(SignalState::from_stored(true, Some("consumed")).is_err());
    /// ```
    pub fn from_stored(settled: bool, disposition: Option<&str>) -> Result<Self, String> {
        match (settled, disposition) {
            (false, _) => Ok(SignalState::Pending),
            (true, None) => Ok(SignalState::Consumed),
            (true, Some(d)) => SignalState::parse(d)
                .filter(|s| matches!(s, SignalState::Rejected | SignalState::Discarded))
                .ok_or_else(|| format!("unknown value {d:?}")),
        }
    }
}

impl fmt::Display for SignalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signal of a process as tools see it, whatever became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// Store-assigned id, increasing in send order.
    pub id: i64,
    /// The signal name.
    pub name: String,
    /// JSON text.
    pub payload: String,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// What became of it.
    pub state: SignalState,
    /// When it was consumed, rejected or discarded.
    pub settled_at: Option<Timestamp>,
    /// Why it was rejected (which waits saw it, what the decoder said).
    pub reason: Option<String>,
    /// The W3C trace context (`traceparent`) of the span that sent it, if
    /// any.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// The id of the message that sent it ([`crate::Store::signal_message`]);
    /// `None` for a signal sent otherwise.
    #[serde(default)]
    pub message_id: Option<String>,
}

impl SignalRecord {
    /// The signal as a wait would take it.
    pub fn to_pending(&self) -> PendingSignal {
        PendingSignal {
            id: self.id,
            name: self.name.clone(),
            payload: self.payload.clone(),
            sent_at: self.sent_at,
            traceparent: self.traceparent.clone(),
        }
    }
}

/// How a run of a process ended, as written by [`crate::Store::finish`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Finish {
    /// The function returned `Ok(output)` (JSON text).
    Completed {
        /// JSON text of the output.
        output: String,
    },
    /// The function returned `Err(error)`.
    Failed {
        /// The error's display text.
        error: String,
    },
    /// The journal no longer fits the code, or the code panicked.
    Blocked {
        /// The step the process stopped at.
        step: Option<String>,
        /// What is wrong, naming the step and what was expected.
        reason: String,
        /// Where that step is in the source, when known.
        location: Option<SourceLocation>,
    },
    /// Cancelled on request.
    Cancelled,
}

/// The source text of one process function, captured at compile time by
/// `#[steadfast::process]` and saved in the store by every host that starts,
/// so tools can show it without the source tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSource {
    /// The function's name.
    pub name: String,
    /// The source file, as `#[track_caller]` locations name it.
    pub file: String,
    /// The line of `text`'s first line in `file` (1-based).
    pub first_line: u32,
    /// The function's source, from its first to its last line.
    pub text: String,
}

impl FunctionSource {
    /// Whether `location` falls inside this function.
    pub fn contains(&self, location: &SourceLocation) -> bool {
        let lines = self.text.lines().count() as u32;
        location.file == self.file
            && location.line >= self.first_line
            && location.line < self.first_line + lines.max(1)
    }
}

/// One finished generation of a process that continued as new: the input it
/// ran with and its journal, kept so the history stays viewable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// 0 for the first.
    pub generation: u32,
    /// The input this generation ran with (JSON text).
    pub input: String,
    /// When it continued as new.
    pub ended_at: Timestamp,
    /// Its journal, in `seq` order.
    pub journal: Vec<JournalEntry>,
}
