//! A process's stored history of what happened to it besides its journal:
//! each claim (host and epoch), blocks, retries, rewinds, cancels, ends and
//! continue-as-new generations. Stores write one [`ProcessEvent`] in the same
//! transaction as the operation it records ([`crate::rules::event`] says
//! which); [`crate::StoreAdmin::events`] reads them back.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// What one [`ProcessEvent`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A host claimed the process ([`crate::Store::claim`]): a new run with a
    /// new epoch.
    Claimed,
    /// A run blocked, or a claim parked a row that does not decode.
    Blocked,
    /// A run completed.
    Completed,
    /// A run failed.
    Failed,
    /// A cancel was requested while a host held the process.
    CancelRequested,
    /// The process was cancelled.
    Cancelled,
    /// An operator made a blocked or failed process runnable again.
    Retried,
    /// An operator rewound the process to a step.
    Rewound,
    /// The run continued as new: a generation ended, the next one starts.
    ContinuedAsNew,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 9] = [
        EventKind::Claimed,
        EventKind::Blocked,
        EventKind::Completed,
        EventKind::Failed,
        EventKind::CancelRequested,
        EventKind::Cancelled,
        EventKind::Retried,
        EventKind::Rewound,
        EventKind::ContinuedAsNew,
    ];

    /// The stored name (`"claimed"`, `"cancel_requested"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Claimed => "claimed",
            EventKind::Blocked => "blocked",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Cancelled => "cancelled",
            EventKind::Retried => "retried",
            EventKind::Rewound => "rewound",
            EventKind::ContinuedAsNew => "continued_as_new",
        }
    }

    /// The kind stored as `s`, if there is one.
    ///
    /// ```
    /// use steadfast_core::EventKind;
    ///
    /// assert_eq!(EventKind::parse("cancel_requested"), Some(EventKind::CancelRequested));
    /// assert_eq!(EventKind::parse("exploded"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a process's stored history ([`crate::StoreAdmin::events`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEvent {
    /// Its place in the store's order of events (increasing).
    pub id: i64,
    /// When it happened, by the time the operation was given.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The host that did it: the claiming host, or the lease holder whose
    /// run ended; `None` for operators' actions (cancel, retry, rewind).
    pub host: Option<String>,
    /// The process's epoch after the operation.
    pub epoch: i64,
    /// The generation it happened in (for continue-as-new: the one that
    /// ended).
    pub generation: u32,
    /// Why, or what exactly: a block's reason, a failure's error, the step
    /// rewound to, who cancelled.
    pub detail: Option<String>,
}
