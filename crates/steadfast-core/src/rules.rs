//! The state machine every store applies, as plain functions: which
//! operations a process's status allows, what finishing stores, how a stored
//! status and the status counts decode, and how a failed batch answers its
//! callers. A store translates these into its SQL; it does not restate them.
//!
//! ```
//! use steadfast_core::rules::{self, Action};
//! use steadfast_core::{ProcessId, Status, StoreError};
//!
//! let id = ProcessId::new("order-1").unwrap();
//! assert!(rules::check(Action::Retry, &id, Status::Failed).is_ok());
//! let refused = rules::check(Action::Retry, &id, Status::Running).unwrap_err();
//! assert!(matches!(refused, StoreError::InvalidState { action: "retry", .. }));
//! ```

use crate::{
    Counts, EntryKind, EntryStatus, EventKind, Finish, ProcessId, RowError, SignalState,
    SourceLocation, Status, StatusCount, StoreError,
};

/// An operation whose allowed states are a rule of the store contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// [`crate::Store::signal`]: only unfinished processes take signals.
    Signal,
    /// [`crate::Store::cancel`]: only unfinished processes can be cancelled.
    Cancel,
    /// [`crate::Store::retry`]: only blocked or failed processes run again.
    Retry,
    /// [`crate::StoreAdmin::rewind`]: any process no live host holds.
    Rewind,
}

impl Action {
    /// The name [`StoreError::InvalidState`] reports as `action`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Signal => "signal",
            Action::Cancel => "cancel",
            Action::Retry => "retry",
            Action::Rewind => "rewind",
        }
    }

    /// The states [`StoreError::InvalidState`] reports as `expected`.
    pub fn expected(self) -> &'static str {
        match self {
            Action::Signal | Action::Cancel => "running, suspended or blocked",
            Action::Retry => "blocked or failed",
            Action::Rewind => {
                "not held by a live host (suspended, blocked, finished, or with an expired lease)"
            }
        }
    }

    /// The error refusing this action on process `id` in `status`.
    pub fn refused(self, id: &ProcessId, status: Status) -> StoreError {
        StoreError::InvalidState {
            id: id.clone(),
            status,
            action: self.name(),
            expected: self.expected(),
        }
    }
}

/// Whether a process is held by a live lease: it is running, has an owner,
/// and its lease (stored as its wake time) has not expired, i.e.
/// `lease_unexpired` is "wake time later than now".
pub fn leased(status: Status, has_owner: bool, lease_unexpired: bool) -> bool {
    status == Status::Running && has_owner && lease_unexpired
}

/// Checks that `action` applies to process `id` in `status`; for
/// [`Action::Rewind`] use [`check_rewind`], which also needs the lease.
pub fn check(action: Action, id: &ProcessId, status: Status) -> Result<(), StoreError> {
    let allowed = match action {
        Action::Signal | Action::Cancel => !status.is_finished(),
        Action::Retry => matches!(status, Status::Blocked | Status::Failed),
        Action::Rewind => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(action.refused(id, status))
    }
}

/// Checks that process `id` may be rewound: no live lease holds it
/// (see [`leased`] for the arguments).
pub fn check_rewind(
    id: &ProcessId,
    status: Status,
    has_owner: bool,
    lease_unexpired: bool,
) -> Result<(), StoreError> {
    if leased(status, has_owner, lease_unexpired) {
        Err(Action::Rewind.refused(id, status))
    } else {
        Ok(())
    }
}

/// What cancelling an unfinished process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelEffect {
    /// A live lease holds it: set `cancel_requested`; the holder stops at its
    /// next step. The process stays `running`.
    Request,
    /// Nobody runs it: it becomes `cancelled` at once (owner, wake time,
    /// waits and parked locations cleared) and its parent is told.
    CancelNow,
}

impl CancelEffect {
    /// The status the cancelled process has afterwards.
    pub fn status(self) -> Status {
        match self {
            CancelEffect::Request => Status::Running,
            CancelEffect::CancelNow => Status::Cancelled,
        }
    }
}

/// What [`crate::Store::cancel`] does to one unfinished process (see
/// [`leased`] for the arguments; call [`check`] with [`Action::Cancel`]
/// first).
pub fn cancel_effect(status: Status, has_owner: bool, lease_unexpired: bool) -> CancelEffect {
    if leased(status, has_owner, lease_unexpired) {
        CancelEffect::Request
    } else {
        CancelEffect::CancelNow
    }
}

/// The columns [`crate::Store::finish`] writes for a [`Finish`]: the process
/// also loses its owner, wake time, waits and cancel request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished<'a> {
    /// The final status.
    pub status: Status,
    /// `output`: the JSON output of a completed process.
    pub output: Option<&'a str>,
    /// `error`: a failed process's error, or why a process is blocked.
    pub error: Option<&'a str>,
    /// `blocked_step`: the step a blocked process stopped at.
    pub blocked_step: Option<&'a str>,
    /// The parked location of a blocked process, when known.
    pub parked: Option<&'a SourceLocation>,
}

/// Maps a [`Finish`] to the columns a store writes for it.
///
/// ```
/// use steadfast_core::{Finish, Status, rules};
///
/// let f = Finish::Failed { error: "boom".into() };
/// let row = rules::finished(&f);
/// assert_eq!((row.status, row.error, row.output), (Status::Failed, Some("boom"), None));
/// ```
pub fn finished(f: &Finish) -> Finished<'_> {
    let none = Finished {
        status: Status::Cancelled,
        output: None,
        error: None,
        blocked_step: None,
        parked: None,
    };
    match f {
        Finish::Completed { output } => Finished {
            status: Status::Completed,
            output: Some(output),
            ..none
        },
        Finish::Failed { error } => Finished {
            status: Status::Failed,
            error: Some(error),
            ..none
        },
        Finish::Blocked {
            step,
            reason,
            location,
        } => Finished {
            status: Status::Blocked,
            error: Some(reason),
            blocked_step: step.as_deref(),
            parked: location.as_ref(),
            ..none
        },
        Finish::Cancelled => none,
    }
}

/// Decodes the stored `status` of process row `row` (its id as text), or
/// [`StoreError::CorruptRow`] naming `processes`, the row and `status`.
///
/// ```
/// use steadfast_core::{Status, StoreError, rules};
///
/// assert_eq!(rules::parse_status("a", "suspended").unwrap(), Status::Suspended);
/// let e = rules::parse_status("a", "sleeping").unwrap_err();
/// assert!(matches!(e, StoreError::CorruptRow(r) if r.column == "status" && r.row == "a"));
/// ```
pub fn parse_status(row: &str, stored: &str) -> Result<Status, StoreError> {
    stored.parse::<Status>().map_err(|e| {
        StoreError::CorruptRow(RowError::new("processes", row, "status", e.to_string()))
    })
}

/// [`crate::StoreAdmin::counts`] from `SELECT status, count(*) … GROUP BY
/// status` rows: statuses in [`Status::ALL`] order, rows whose status is
/// missing or does not decode counted as unreadable, negative counts as 0.
///
/// ```
/// use steadfast_core::{Status, rules};
///
/// let c = rules::counts([(Some("failed"), 2), (Some("running"), 3), (Some("?"), 1), (None, 1)]);
/// assert_eq!(c.by_status[0].status, Status::Running);
/// assert_eq!((c.of(Status::Failed), c.unreadable, c.total()), (2, 2, 7));
/// ```
pub fn counts<'a>(groups: impl IntoIterator<Item = (Option<&'a str>, i64)>) -> Counts {
    let mut counts = Counts::default();
    for (status, count) in groups {
        let count = u64::try_from(count).unwrap_or(0);
        match status.and_then(|s| s.parse::<Status>().ok()) {
            Some(status) => counts.by_status.push(StatusCount { status, count }),
            None => counts.unreadable += count,
        }
    }
    counts
        .by_status
        .sort_by_key(|c| Status::ALL.iter().position(|s| *s == c.status));
    counts
}

/// Decodes a journal row's stored `kind`, or [`StoreError::CorruptRow`]
/// naming `journal`, the row `key` and `kind`.
pub fn entry_kind(key: &str, stored: &str) -> Result<EntryKind, StoreError> {
    EntryKind::parse(stored).ok_or_else(|| {
        StoreError::CorruptRow(RowError::new(
            "journal",
            key,
            "kind",
            format!("unknown entry kind {stored:?}"),
        ))
    })
}

/// Decodes a journal row's stored `status`, or [`StoreError::CorruptRow`]
/// naming `journal`, the row `key` and `status`.
///
/// ```
/// use steadfast_core::{EntryStatus, StoreError, rules};
///
/// assert_eq!(rules::entry_status("p/a (seq 0)", "failed").unwrap(), EntryStatus::Failed);
/// let e = rules::entry_status("p/a (seq 0)", "done").unwrap_err();
/// assert!(matches!(e, StoreError::CorruptRow(r) if r.table == "journal" && r.column == "status"));
/// ```
pub fn entry_status(key: &str, stored: &str) -> Result<EntryStatus, StoreError> {
    EntryStatus::parse(stored).ok_or_else(|| {
        StoreError::CorruptRow(RowError::new(
            "journal",
            key,
            "status",
            format!("unknown entry status {stored:?}"),
        ))
    })
}

/// Why a whole batch of group-committed writes failed: its `BEGIN`, a
/// savepoint or its `COMMIT` failed, or the connection broke so the
/// outcome of the `COMMIT` is unknown. Every caller of the batch gets this
/// error instead of its own result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchFailure {
    /// What failed, e.g. `"COMMIT: disk I/O error"`.
    pub message: String,
    /// Whether retrying the write may succeed.
    pub retryable: bool,
}

impl BatchFailure {
    /// The failure of `what` (a statement such as `COMMIT`) with the
    /// database's `error`.
    pub fn new(what: &str, error: impl std::fmt::Display, retryable: bool) -> Self {
        BatchFailure {
            message: format!("{what}: {error}"),
            retryable,
        }
    }

    /// The error each caller of the failed batch receives.
    pub fn error(&self) -> StoreError {
        StoreError::Backend {
            message: self.message.clone(),
            retryable: self.retryable,
            source: None,
        }
    }

    /// A caller's answer: its own `result`, unless the batch failed.
    pub fn answer<T>(
        failure: Option<&BatchFailure>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match failure {
            Some(f) => Err(f.error()),
            None => result,
        }
    }
}

/// A store operation that leaves an entry in the process's stored history
/// ([`crate::StoreAdmin::events`]); [`event`] says which.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Recorded<'a> {
    /// A claim gave a host a new run.
    Claim,
    /// A claim parked a row that does not decode, for `reason`.
    Park {
        /// Why (what does not decode).
        reason: &'a str,
    },
    /// A run ended ([`crate::Store::finish`]).
    Finish(&'a Finish),
    /// [`crate::Store::cancel`] reached this process with `effect`;
    /// `requested_on` is the process the cancel was asked for, when it is
    /// another one (an ancestor: the cancel cascaded).
    Cancel {
        /// What the cancel did to this process.
        effect: CancelEffect,
        /// The ancestor the cancel was asked for, if not this process.
        requested_on: Option<&'a ProcessId>,
    },
    /// [`crate::Store::retry`] of a process that was in `from`.
    Retry {
        /// The status before (blocked or failed).
        from: Status,
    },
    /// [`crate::StoreAdmin::rewind`] to `step`, dropping `dropped` entries.
    Rewind {
        /// The step rewound to.
        step: &'a str,
        /// How many journal entries were dropped.
        dropped: u64,
    },
    /// [`crate::Store::continue_as_new`] ended the current generation (the
    /// entry carries that generation's number).
    ContinueAsNew,
}

/// The history entry an operation records: its kind and detail. The store
/// adds the time, the host (the claiming host or the lease holder; none for
/// operators' actions), the epoch after the operation and the generation,
/// and writes it in the operation's own transaction, so a refused or
/// rolled-back operation records nothing.
///
/// ```
/// use steadfast_core::rules::{self, CancelEffect, Recorded};
/// use steadfast_core::{EventKind, Finish};
///
/// let blocked = Finish::Blocked { step: None, reason: "no fit".into(), location: None };
/// assert_eq!(rules::event(Recorded::Finish(&blocked)), (EventKind::Blocked, Some("no fit".into())));
/// let asked = Recorded::Cancel { effect: CancelEffect::Request, requested_on: None };
/// assert_eq!(rules::event(asked).0, EventKind::CancelRequested);
/// ```
pub fn event(op: Recorded<'_>) -> (EventKind, Option<String>) {
    match op {
        Recorded::Claim => (EventKind::Claimed, None),
        Recorded::Park { reason } => (EventKind::Blocked, Some(reason.to_owned())),
        Recorded::Finish(f) => match f {
            Finish::Completed { .. } => (EventKind::Completed, None),
            Finish::Failed { error } => (EventKind::Failed, Some(error.clone())),
            Finish::Blocked { reason, .. } => (EventKind::Blocked, Some(reason.clone())),
            Finish::Cancelled => (
                EventKind::Cancelled,
                Some("stopped by its run after a cancel request".to_owned()),
            ),
        },
        Recorded::Cancel {
            effect,
            requested_on,
        } => {
            let kind = match effect {
                CancelEffect::Request => EventKind::CancelRequested,
                CancelEffect::CancelNow => EventKind::Cancelled,
            };
            let detail = match (effect, requested_on) {
                (_, Some(root)) => format!("by an operator, with its ancestor {root:?}"),
                (CancelEffect::Request, None) => {
                    "by an operator; the host running it stops at its next write".to_owned()
                }
                (CancelEffect::CancelNow, None) => "by an operator".to_owned(),
            };
            (kind, Some(detail))
        }
        Recorded::Retry { from } => (
            EventKind::Retried,
            Some(format!("by an operator; it was {from}")),
        ),
        Recorded::Rewind { step, dropped } => (
            EventKind::Rewound,
            Some(format!(
                "by an operator, to {step:?}: {dropped} journal entr{} dropped",
                if dropped == 1 { "y" } else { "ies" }
            )),
        ),
        Recorded::ContinueAsNew => (
            EventKind::ContinuedAsNew,
            Some("the next generation starts with a new input and an empty journal".to_owned()),
        ),
    }
}

/// The error for a signal id process `id` does not have.
pub fn no_such_signal(id: &ProcessId, signal: i64) -> StoreError {
    StoreError::InvalidInput(format!(
        "process {:?} has no signal with id {signal}",
        id.as_str()
    ))
}

/// The error for rejecting signal `signal`, which is not one of process
/// `id`'s pending signals.
pub fn signal_not_pending(id: &ProcessId, signal: i64) -> StoreError {
    StoreError::InvalidInput(format!(
        "signal {signal} is not a pending signal of process {:?}",
        id.as_str()
    ))
}

/// The error for discarding signal `signal` of process `id`, which is
/// already `state` (only a pending signal can be discarded).
pub fn signal_already_settled(id: &ProcessId, signal: i64, state: SignalState) -> StoreError {
    StoreError::InvalidInput(format!(
        "signal {signal} of process {:?} is already {state}; only a pending signal can be \
         discarded",
        id.as_str()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn id() -> ProcessId {
        ProcessId::new("p").unwrap()
    }

    #[test]
    fn signal_and_cancel_need_an_unfinished_process() {
        for action in [Action::Signal, Action::Cancel] {
            for status in Status::ALL {
                let r = check(action, &id(), status);
                assert_eq!(r.is_ok(), !status.is_finished(), "{action:?} on {status}");
            }
        }
    }

    #[test]
    fn retry_needs_blocked_or_failed() {
        for status in Status::ALL {
            let ok = check(Action::Retry, &id(), status).is_ok();
            assert_eq!(
                ok,
                matches!(status, Status::Blocked | Status::Failed),
                "{status}"
            );
        }
    }

    #[test]
    fn refusals_name_the_action_and_what_it_expects() {
        let e = check(Action::Cancel, &id(), Status::Completed).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process \"p\" is completed; cancel needs it to be running, suspended or blocked"
        );
        let e = check(Action::Retry, &id(), Status::Running).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process \"p\" is running; retry needs it to be blocked or failed"
        );
    }

    #[test]
    fn rewind_is_refused_only_under_a_live_lease() {
        assert!(check_rewind(&id(), Status::Running, true, true).is_err());
        assert!(check_rewind(&id(), Status::Running, true, false).is_ok());
        assert!(check_rewind(&id(), Status::Running, false, true).is_ok());
        for status in Status::ALL {
            if status != Status::Running {
                assert!(check_rewind(&id(), status, true, true).is_ok(), "{status}");
            }
        }
        let e = check_rewind(&id(), Status::Running, true, true).unwrap_err();
        assert!(matches!(
            e,
            StoreError::InvalidState {
                action: "rewind",
                ..
            }
        ));
    }

    #[test]
    fn cancel_requests_under_a_live_lease_and_cancels_otherwise() {
        assert_eq!(
            cancel_effect(Status::Running, true, true),
            CancelEffect::Request
        );
        assert_eq!(
            cancel_effect(Status::Running, true, false),
            CancelEffect::CancelNow
        );
        assert_eq!(
            cancel_effect(Status::Suspended, true, true),
            CancelEffect::CancelNow
        );
        assert_eq!(
            cancel_effect(Status::Blocked, false, false),
            CancelEffect::CancelNow
        );
        assert_eq!(CancelEffect::Request.status(), Status::Running);
        assert_eq!(CancelEffect::CancelNow.status(), Status::Cancelled);
    }

    #[test]
    fn finish_maps_each_end_to_its_columns() {
        let completed = Finish::Completed { output: "1".into() };
        let c = finished(&completed);
        assert_eq!(
            (c.status, c.output, c.error),
            (Status::Completed, Some("1"), None)
        );
        let failed = Finish::Failed { error: "e".into() };
        let f = finished(&failed);
        assert_eq!(
            (f.status, f.output, f.error),
            (Status::Failed, None, Some("e"))
        );
        let at = SourceLocation {
            file: "src/a.rs".into(),
            line: 7,
        };
        let blocked = Finish::Blocked {
            step: Some("s".into()),
            reason: "r".into(),
            location: Some(at.clone()),
        };
        let b = finished(&blocked);
        assert_eq!(
            (b.status, b.error, b.blocked_step, b.parked),
            (Status::Blocked, Some("r"), Some("s"), Some(&at))
        );
        let x = finished(&Finish::Cancelled);
        assert_eq!(
            (x.status, x.output, x.error, x.blocked_step, x.parked),
            (Status::Cancelled, None, None, None, None)
        );
    }

    #[test]
    fn a_bad_status_is_a_corrupt_row_naming_the_column() {
        for status in Status::ALL {
            assert_eq!(parse_status("p", status.as_str()).unwrap(), status);
        }
        match parse_status("p", "zombie").unwrap_err() {
            StoreError::CorruptRow(r) => {
                assert_eq!((r.table.as_str(), r.row.as_str()), ("processes", "p"));
                assert_eq!(r.column, "status");
                assert!(r.detail.contains("zombie"), "{}", r.detail);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_order_by_status_and_count_unreadable_rows() {
        let c = counts([
            (Some("completed"), 4),
            (Some("running"), 1),
            (Some("bogus"), 2),
            (None, 3),
            (Some("failed"), -1),
        ]);
        let order: Vec<_> = c.by_status.iter().map(|s| s.status).collect();
        assert_eq!(order, [Status::Running, Status::Completed, Status::Failed]);
        assert_eq!((c.of(Status::Completed), c.of(Status::Failed)), (4, 0));
        assert_eq!(c.unreadable, 5);
    }

    #[test]
    fn journal_kind_and_status_decode_or_name_the_column() {
        assert_eq!(entry_kind("k", "timer").unwrap(), EntryKind::Timer);
        assert_eq!(
            entry_status("k", "scheduled").unwrap(),
            EntryStatus::Scheduled
        );
        for (e, column, value) in [
            (entry_kind("p/s (seq 3)", "nap").unwrap_err(), "kind", "nap"),
            (
                entry_status("p/s (seq 3)", "late").unwrap_err(),
                "status",
                "late",
            ),
        ] {
            match e {
                StoreError::CorruptRow(r) => {
                    assert_eq!(
                        (r.table.as_str(), r.row.as_str()),
                        ("journal", "p/s (seq 3)")
                    );
                    assert_eq!(r.column, column);
                    assert!(r.detail.contains(value), "{}", r.detail);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_failed_batch_answers_every_caller_with_its_error() {
        let f = BatchFailure::new("COMMIT", "disk I/O error", true);
        let own: Result<u32, StoreError> = Ok(1);
        match BatchFailure::answer(Some(&f), own) {
            Err(StoreError::Backend {
                message, retryable, ..
            }) => {
                assert_eq!(message, "COMMIT: disk I/O error");
                assert!(retryable);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            BatchFailure::answer(None, Ok::<_, StoreError>(2)).unwrap(),
            2
        );
    }
    #[test]
    fn each_operation_records_its_event() {
        let child = ProcessId::new("p/c").unwrap();
        let cases = [
            (Recorded::Claim, EventKind::Claimed),
            (Recorded::Park { reason: "x" }, EventKind::Blocked),
            (
                Recorded::Finish(&Finish::Completed { output: "1".into() }),
                EventKind::Completed,
            ),
            (
                Recorded::Finish(&Finish::Failed { error: "e".into() }),
                EventKind::Failed,
            ),
            (Recorded::Finish(&Finish::Cancelled), EventKind::Cancelled),
            (
                Recorded::Cancel {
                    effect: CancelEffect::Request,
                    requested_on: None,
                },
                EventKind::CancelRequested,
            ),
            (
                Recorded::Cancel {
                    effect: CancelEffect::CancelNow,
                    requested_on: Some(&child),
                },
                EventKind::Cancelled,
            ),
            (
                Recorded::Retry {
                    from: Status::Failed,
                },
                EventKind::Retried,
            ),
            (
                Recorded::Rewind {
                    step: "s",
                    dropped: 2,
                },
                EventKind::Rewound,
            ),
            (Recorded::ContinueAsNew, EventKind::ContinuedAsNew),
        ];
        for (op, kind) in cases {
            assert_eq!(event(op).0, kind, "{op:?}");
        }
        let (_, failed) = event(Recorded::Finish(&Finish::Failed {
            error: "boom".into(),
        }));
        assert_eq!(failed.as_deref(), Some("boom"));
        let (_, rewound) = event(Recorded::Rewind {
            step: "mail sent",
            dropped: 1,
        });
        assert_eq!(
            rewound.as_deref(),
            Some("by an operator, to \"mail sent\": 1 journal entry dropped")
        );
        let (_, cascaded) = event(Recorded::Cancel {
            effect: CancelEffect::CancelNow,
            requested_on: Some(&child),
        });
        assert!(cascaded.unwrap().contains("\"p/c\""));
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn signal_errors_name_the_signal_the_process_and_the_state() {
        let text = |e: StoreError| e.to_string();
        assert_eq!(
            text(no_such_signal(&id(), 7)),
            "invalid input: process \"p\" has no signal with id 7"
        );
        assert_eq!(
            text(signal_not_pending(&id(), 7)),
            "invalid input: signal 7 is not a pending signal of process \"p\""
        );
        assert_eq!(
            text(signal_already_settled(&id(), 7, SignalState::Rejected)),
            "invalid input: signal 7 of process \"p\" is already rejected; only a pending \
             signal can be discarded"
        );
    }
}
