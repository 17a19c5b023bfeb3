use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Finish, FunctionSource, Generation, HostId, JournalEntry, PendingSignal, ProcessEvent,
    ProcessId, ProcessRecord, SignalRecord, SourceLocation, Status, StoreError, SubscriptionReport,
    Timestamp,
};

/// A process to create with [`Store::spawn`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewProcess {
    /// The user's id.
    pub id: ProcessId,
    /// The registered kind.
    pub kind: String,
    /// The version of the kind's code that starts it (and keeps running it).
    pub version: u32,
    /// The input as JSON text.
    pub input: String,
    /// The time of the spawn; the process becomes runnable at once.
    pub now: Timestamp,
    /// The parent process, for a child spawned by `Process::child`: stored
    /// as [`ProcessRecord::parent`]; `None` otherwise.
    pub parent: Option<ProcessId>,
    /// The W3C `traceparent` of the span that spawned it, stored as
    /// [`ProcessRecord::traceparent`]; not compared by the idempotent spawn
    /// (a repeated spawn from another trace is still the same process).
    pub traceparent: Option<String>,
}

/// A signal to store with [`Store::send_signal`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewSignal {
    /// The signal name.
    pub name: String,
    /// The payload as JSON text.
    pub payload: String,
    /// The time it is sent.
    pub now: Timestamp,
    /// The id of the message that sent it, for a signal sent by a message
    /// (see [`Store::signal_message`]); `None` otherwise.
    pub message_id: Option<String>,
    /// The W3C `traceparent` of the span that sent it, stored as
    /// [`crate::PendingSignal::traceparent`].
    pub traceparent: Option<String>,
}

impl NewSignal {
    /// A signal with no message id and no trace context.
    ///
    /// ```
    /// use steadfast_core::{NewSignal, Timestamp};
    ///
    /// let signal = NewSignal::new("paid", "42", Timestamp::from_micros(0));
    /// assert_eq!(signal.message_id, None);
    /// assert_eq!(signal.traceparent, None);
    /// ```
    pub fn new(name: &str, payload: &str, now: Timestamp) -> Self {
        NewSignal {
            name: name.to_owned(),
            payload: payload.to_owned(),
            now,
            message_id: None,
            traceparent: None,
        }
    }
}

/// What [`Store::spawn`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum SpawnOutcome {
    /// A new process was stored.
    Created,
    /// The same id with the same kind and input existed; nothing changed.
    Existing(Box<ProcessRecord>),
}

/// What [`Store::spawn_and_claim`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum SpawnAndClaim {
    /// A new process was stored, already claimed by the spawning host: its
    /// run can start at once, with this lease.
    Claimed(Box<Claimed>),
    /// A new process was stored, runnable and unclaimed, as
    /// [`Store::spawn`] stores it (a store that does not claim on spawn).
    Created,
    /// The same id with the same kind and input existed; nothing changed
    /// and nothing was claimed.
    Existing(Box<ProcessRecord>),
}

/// A spawn that claimed nothing: `Created` unclaimed, or `Existing`.
impl From<SpawnOutcome> for SpawnAndClaim {
    fn from(outcome: SpawnOutcome) -> Self {
        match outcome {
            SpawnOutcome::Created => SpawnAndClaim::Created,
            SpawnOutcome::Existing(record) => SpawnAndClaim::Existing(record),
        }
    }
}

/// The right to write one process's journal, fenced by `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The process.
    pub id: ProcessId,
    /// The host holding the lease.
    pub owner: HostId,
    /// The epoch the host claimed; writes with an older epoch are rejected.
    pub epoch: i64,
}

/// A process claimed by a host, with everything needed to replay it.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The process row after the claim.
    pub record: ProcessRecord,
    /// The lease every write of this run must carry.
    pub lease: Lease,
    /// The journal in `seq` order.
    pub journal: Vec<JournalEntry>,
    /// Signals not yet consumed, in send order.
    pub signals: Vec<PendingSignal>,
}

impl Claimed {
    /// A process `owner` has just claimed at its spawn: its lease (the
    /// record's epoch), no journal and no signals yet.
    pub fn spawned(record: ProcessRecord, owner: &HostId) -> Self {
        Claimed {
            lease: Lease {
                id: record.id.clone(),
                owner: owner.clone(),
                epoch: record.epoch,
            },
            record,
            journal: Vec::new(),
            signals: Vec::new(),
        }
    }
}

/// Why a process unloads: the earliest due time and the signals it waits for.
#[derive(Clone, Debug, PartialEq)]
pub struct Suspension {
    /// When the earliest timer (or wait timeout) is due; `None` when the
    /// process waits only for signals.
    pub wake_at: Option<Timestamp>,
    /// The names of the signals it waits for.
    pub waiting_for: Vec<String>,
    /// The source lines of the timers and waits it waits on.
    pub parked_at: Vec<SourceLocation>,
    /// The time of the suspension.
    pub now: Timestamp,
}

/// What [`Store::suspend`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum SuspendOutcome {
    /// The process is unloaded and will be claimed again at `wake_at` or
    /// when one of the awaited signals arrives.
    Suspended,
    /// A signal the process waits for arrived meanwhile; the process stays
    /// claimed and should consume these.
    SignalsPending(Vec<PendingSignal>),
}

/// Which processes [`StoreAdmin::list`] returns and [`StoreAdmin::count`]
/// counts: every filter set must match. `list` returns them in `order`,
/// skipping `offset` rows and returning at most `limit`; `after` restricts
/// to ids greater than it (keyset paging by id).
///
/// ```
/// use steadfast_core::{ListFilter, ListOrder, SortKey, Status};
///
/// // The second page of 20 failed processes whose error mentions "timeout",
/// // newest first.
/// let filter = ListFilter {
///     status: Some(Status::Failed),
///     reason_contains: Some("timeout".into()),
///     order: ListOrder::newest_first(),
///     offset: 20,
///     limit: 20,
///     ..ListFilter::default()
/// };
/// assert_eq!(filter.order.by, SortKey::Created);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// Only processes in this status.
    pub status: Option<Status>,
    /// Only processes of this kind.
    pub kind: Option<String>,
    /// Only ids starting with this prefix.
    pub id_prefix: Option<String>,
    /// Only ids containing this text, ASCII letters matching either case.
    pub id_contains: Option<String>,
    /// Only processes whose error (a failure's error or a block's reason)
    /// contains this text, ASCII letters matching either case.
    pub reason_contains: Option<String>,
    /// Only processes created at or after this time.
    pub created_from: Option<Timestamp>,
    /// Only processes created before this time.
    pub created_before: Option<Timestamp>,
    /// Only ids greater than this one.
    pub after: Option<ProcessId>,
    /// Only the children of this process ([`ProcessRecord::parent`]).
    pub parent: Option<ProcessId>,
    /// The order of [`StoreAdmin::list`] (by id, ascending, by default).
    pub order: ListOrder,
    /// How many rows of that order [`StoreAdmin::list`] skips.
    pub offset: usize,
    /// At most this many (0 means the store's default of 100).
    pub limit: usize,
}

/// The order of [`StoreAdmin::list`]: a column, then the id (bytewise) in
/// the same direction for rows that tie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOrder {
    /// The column sorted on.
    pub by: SortKey,
    /// Largest (newest, last) first.
    pub descending: bool,
}

impl ListOrder {
    /// The most recently created first.
    pub fn newest_first() -> Self {
        ListOrder {
            by: SortKey::Created,
            descending: true,
        }
    }
}

/// A column [`StoreAdmin::list`] can sort on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SortKey {
    /// The id (bytewise).
    #[default]
    Id,
    /// `created_at`.
    Created,
    /// `updated_at`.
    Updated,
    /// The kind's name (bytewise).
    Kind,
    /// The status's name ([`Status::as_str`], bytewise).
    Status,
}

/// One row of [`StoreAdmin::list`]: a process, or a row that does not
/// decode (shown as an error row; the other rows are unaffected).
#[derive(Clone, Debug, PartialEq)]
pub enum Listed {
    /// A readable process.
    Process(Box<ProcessRecord>),
    /// A `processes` row that does not decode.
    Unreadable {
        /// The row's id as text (lossily decoded if it is not UTF-8).
        id: String,
        /// What does not decode.
        error: crate::RowError,
    },
}

impl Listed {
    /// The row's id as text.
    pub fn id(&self) -> &str {
        match self {
            Listed::Process(record) => record.id.as_str(),
            Listed::Unreadable { id, .. } => id,
        }
    }

    /// The process, if the row decodes.
    pub fn record(&self) -> Option<&ProcessRecord> {
        match self {
            Listed::Process(record) => Some(record),
            Listed::Unreadable { .. } => None,
        }
    }

    /// The process, if the row decodes.
    pub fn into_record(self) -> Option<ProcessRecord> {
        match self {
            Listed::Process(record) => Some(*record),
            Listed::Unreadable { .. } => None,
        }
    }
}

/// What [`StoreAdmin::counts`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// How many processes are in each status, in [`Status::ALL`] order
    /// (statuses with none omitted).
    pub by_status: Vec<StatusCount>,
    /// How many rows have a status that does not decode.
    pub unreadable: u64,
}

impl Counts {
    /// How many processes are in `status`.
    pub fn of(&self, status: Status) -> u64 {
        self.by_status
            .iter()
            .find(|c| c.status == status)
            .map_or(0, |c| c.count)
    }

    /// How many rows there are, readable or not.
    pub fn total(&self) -> u64 {
        self.by_status.iter().map(|c| c.count).sum::<u64>() + self.unreadable
    }
}

/// What [`StoreAdmin::parked_counts`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParkedCounts {
    /// The counts per source line and status.
    pub by_location: Vec<ParkedCount>,
    /// How many suspended or blocked processes of the kind have a status or
    /// `parked_at` that does not decode (counted in no location).
    pub unreadable: u64,
}

/// How many processes of a kind stand at one source line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedCount {
    /// The source line.
    pub location: SourceLocation,
    /// Suspended or blocked.
    pub status: Status,
    /// How many processes stand there.
    pub count: u64,
}

/// How many processes are in one status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCount {
    /// The status.
    pub status: Status,
    /// How many processes have it.
    pub count: u64,
}

/// The hot path of a store: everything a host needs to run processes.
///
/// Every write that carries a [`Lease`] is *fenced*: it succeeds only while
/// the process's stored epoch equals the lease's, and fails with
/// [`StoreError::Fenced`] otherwise, so a host that lost its lease cannot
/// write. Every acknowledged write is durable in the store's configured
/// durability. The `steadfast-conformance` crate checks all of this.
///
/// A store with a clock of its own ([`Store::store_time`]) decides with it
/// wherever a method takes a `now` to decide with (lease expiry, which
/// processes are due, the due time of work made runnable, a suspension's
/// `wake_at` relative to its `now`), unless told to
/// [`Store::follow_host_clock`]; the passed times are still recorded where
/// they are stored as the host's (journal times, `created_at`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new process, runnable at once (status running, `wake_at = now`).
    ///
    /// Idempotent: the same id with the same kind and input returns
    /// [`SpawnOutcome::Existing`] and changes nothing; the same id with a
    /// different kind or input fails with [`StoreError::SpawnConflict`].
    async fn spawn(&self, process: NewProcess) -> Result<SpawnOutcome, StoreError>;

    /// [`Store::spawn`], and when the process is new, [`Store::claim`] of
    /// it for `owner` in the same write: a host that spawns a process it
    /// will run saves the claim's round trip and commit.
    ///
    /// A new process is stored as a claim leaves it (status running,
    /// `owner`, `epoch` 1, `wake_at = now + lease` by the deciding clock,
    /// the claim recorded in its history) and returned as
    /// [`SpawnAndClaim::Claimed`] with an empty journal and no signals. An
    /// existing id is answered as [`Store::spawn`] answers it, and claimed
    /// by no one. The default implementation claims nothing: it stores the
    /// process with [`Store::spawn`] and answers
    /// [`SpawnAndClaim::Created`], leaving the claim to the dispatcher.
    async fn spawn_and_claim(
        &self,
        process: NewProcess,
        owner: &HostId,
        lease: Duration,
    ) -> Result<SpawnAndClaim, StoreError> {
        let _ = (owner, lease);
        Ok(self.spawn(process).await?.into())
    }

    /// Claims up to `limit` processes whose `wake_at <= now`, earliest first.
    ///
    /// Each claimed process gets `owner`, `epoch + 1`, status running and
    /// `wake_at = now + lease` (the moment another host may take it over
    /// unless the lease is renewed). Returned with its journal and its
    /// unconsumed signals.
    ///
    /// Rows are decoded one by one: a process whose row, journal or signals
    /// do not decode is not returned but parked as blocked, its error naming
    /// the row, the column and the value (when the row can still be
    /// written); the other processes are claimed as usual.
    async fn claim(
        &self,
        owner: &HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Writes a journal entry under the lease.
    ///
    /// A new name inserts a row; a name whose row is
    /// [`crate::EntryStatus::Scheduled`] is updated to the new status,
    /// outcome, `finished_at` and `seq` (the place of its outcome in the
    /// order of outcomes, which replay follows); any other existing row fails with
    /// [`StoreError::DuplicateEntry`]. When `entry.consumed_signal` is set,
    /// that signal is marked consumed in the same transaction. Fails with
    /// [`StoreError::CancelRequested`] if a cancellation is pending.
    async fn append(&self, lease: &Lease, entry: JournalEntry) -> Result<(), StoreError>;

    /// Unloads a claimed process until `wake_at` or one of `waiting_for`
    /// arrives, releasing the lease; unless an unconsumed signal named in
    /// `waiting_for` is already stored, in which case nothing changes and
    /// those signals are returned.
    async fn suspend(
        &self,
        lease: &Lease,
        suspension: Suspension,
    ) -> Result<SuspendOutcome, StoreError>;

    /// Ends a run: completed, failed, cancelled or blocked. Releases the lease
    /// and clears `wake_at`.
    ///
    /// When the process has a [`ProcessRecord::parent`] and did not block,
    /// the parent's end signal ([`crate::child::end_notice`]) is stored in
    /// the same transaction, under the same fence (a parent that is gone or
    /// finished is not signalled).
    async fn finish(&self, lease: &Lease, finish: Finish, now: Timestamp)
    -> Result<(), StoreError>;

    /// Restarts a claimed process with a new input and an empty journal,
    /// keeping its id: the current input and journal become a finished
    /// [`crate::Generation`] in its history, `generation` grows by one,
    /// unconsumed signals stay, and the process is runnable at `now` with its
    /// lease released.
    async fn continue_as_new(
        &self,
        lease: &Lease,
        input: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Extends exactly the listed leases to `now + lease`: each one whose
    /// process is still running, held by `owner` and at the lease's epoch.
    /// A lease not in the list, one of another owner, or one whose epoch has
    /// moved on (the process was taken over, handed back, suspended or
    /// finished) is left alone, so a host renews only the runs it is really
    /// running. Returns how many were renewed.
    async fn renew(
        &self,
        owner: &HostId,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<u64, StoreError>;

    /// Gives up every lease `owner` holds (graceful shutdown): those
    /// processes become runnable at `now` for any host.
    async fn release(&self, owner: &HostId, now: Timestamp) -> Result<u64, StoreError>;

    /// Stores a signal for a process (with its `traceparent`, kept as
    /// [`crate::PendingSignal::traceparent`] and
    /// [`crate::SignalRecord::traceparent`]). A suspended process becomes
    /// runnable at once. Fails with [`StoreError::NotFound`] for an unknown
    /// id and [`StoreError::InvalidState`] for a finished process.
    ///
    /// With a `message_id` (checked with [`crate::check_message_id`] first):
    /// when the process already has a signal from that message id —
    /// pending, consumed, rejected or discarded, and also once the process
    /// has finished — nothing is stored and that signal's id is returned as
    /// [`crate::SignalSent::Duplicate`]. A message id is unique per process
    /// (the same id may signal other processes).
    async fn send_signal(
        &self,
        id: &ProcessId,
        signal: NewSignal,
    ) -> Result<crate::SignalSent, StoreError>;

    /// [`Store::send_signal`] without a message id or trace context;
    /// returns the new signal's id.
    async fn signal(
        &self,
        id: &ProcessId,
        name: &str,
        payload: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        self.send_signal(id, NewSignal::new(name, payload, now))
            .await
            .map(crate::SignalSent::id)
    }

    /// [`Store::send_signal`] for a signal sent by a message whose id is
    /// `message_id`, without trace context: a message id already stored for
    /// the process gives [`crate::SignalSent::Duplicate`].
    async fn signal_message(
        &self,
        id: &ProcessId,
        name: &str,
        payload: &str,
        now: Timestamp,
        message_id: &str,
    ) -> Result<crate::SignalSent, StoreError> {
        let signal = NewSignal {
            message_id: Some(message_id.to_owned()),
            ..NewSignal::new(name, payload, now)
        };
        self.send_signal(id, signal).await
    }

    /// Rejects the pending signal `signal` of the leased process: the waits
    /// for its name saw it and none could decode its payload. It is kept
    /// with `reason` and `now` as rejected and never handed to a wait again.
    /// Fenced like [`Store::append`]; fails with [`StoreError::InvalidInput`]
    /// when `signal` is not a pending signal of that process.
    async fn reject_signal(
        &self,
        lease: &Lease,
        signal: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The unconsumed signals of a process, in send order.
    async fn pending_signals(&self, id: &ProcessId) -> Result<Vec<PendingSignal>, StoreError>;

    /// Cancels a process. One that no live host holds is cancelled at once;
    /// one a host holds gets `cancel_requested` and is cancelled by that host
    /// at its next write. Returns the status after the call. A finished
    /// process fails with [`StoreError::InvalidState`].
    ///
    /// The unfinished descendants of the process (by
    /// [`ProcessRecord::parent`], not by id) are cancelled the same way in the
    /// same transaction. Every process cancelled at once that has a parent
    /// sends the parent its end signal in that transaction too.
    async fn cancel(&self, id: &ProcessId, now: Timestamp) -> Result<Status, StoreError>;

    /// Makes a blocked or failed process runnable again, clearing its error;
    /// the journal is kept. Other states fail with [`StoreError::InvalidState`].
    async fn retry(&self, id: &ProcessId, now: Timestamp) -> Result<(), StoreError>;

    /// One process.
    async fn get(&self, id: &ProcessId) -> Result<ProcessRecord, StoreError>;

    /// The earliest `wake_at` of any process, if one is set.
    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError>;

    /// A counter the store bumps whenever it learns that work may have become
    /// due (a spawn, a signal, a released lease), also when another host or
    /// process caused it — e.g. through PostgreSQL's LISTEN/NOTIFY. Hosts
    /// wait on it besides polling. `None` (the default) when the store has no
    /// such notifications; hosts then rely on polling alone.
    fn work_events(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// The store's own clock, when it has one and decides with it when
    /// leases expire and when processes are due (PostgreSQL: the server's
    /// clock; SQLite: a monotonic clock on this machine), so hosts can
    /// measure how far their clock is off. `None` (the default) when the
    /// store uses the times hosts pass in, also after
    /// [`Store::follow_host_clock`].
    async fn store_time(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(None)
    }

    /// Makes the store use the times hosts pass in (`now` arguments and
    /// [`Suspension::wake_at`] as given) instead of its own clock: for hosts
    /// whose clock is not a real one (virtual or scaled clocks of tests and
    /// demos). Irreversible for this store value and its clones. The default
    /// does nothing (the store uses the passed times anyway).
    fn follow_host_clock(&self) {}

    /// Closes the store cleanly: writes already queued are committed and
    /// the store's files are left complete on their own (SQLite: the WAL is
    /// checkpointed into the database file). Later calls on this store or
    /// its clones may fail. The default does nothing (a store with nothing
    /// to flush, or one that closes its connections when dropped).
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Queries for tools (CLI, dashboard); not on the hot path.
#[async_trait]
pub trait StoreAdmin: Send + Sync + 'static {
    /// Processes matching `filter`, in its order. Each row is decoded on
    /// its own: one that does not decode is returned as
    /// [`Listed::Unreadable`] among the others.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Listed>, StoreError>;

    /// A process's journal in `seq` order; [`StoreError::NotFound`] for an
    /// unknown id.
    async fn journal(&self, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError>;

    /// How many processes are in each status (statuses with none omitted),
    /// and how many rows have a status that does not decode.
    async fn counts(&self) -> Result<Counts, StoreError>;

    /// How many processes match `filter` (its paging fields `order`,
    /// `offset`, `limit` and `after` are ignored), per status as in
    /// [`StoreAdmin::counts`]: the counts a filtered list shows.
    async fn count(&self, filter: &ListFilter) -> Result<Counts, StoreError>;

    /// For the suspended and blocked processes of `kind`, how many stand at
    /// each source line of their `parked_at` (a process waiting on several
    /// lines counts at each), ordered by location then status; rows whose
    /// place does not decode are counted apart.
    async fn parked_counts(&self, kind: &str) -> Result<ParkedCounts, StoreError>;

    /// Drops the journal entry named `step` and every later one (by `seq`),
    /// hands the signals those entries consumed back as unconsumed, and makes
    /// the process runnable at `now` (status running, error, output and
    /// blocked step cleared, `epoch + 1` so a stale writer is fenced).
    /// Returns how many entries were dropped. Fails with
    /// [`StoreError::NotFound`] for an unknown process,
    /// [`StoreError::InvalidInput`] when the journal has no such step, and
    /// [`StoreError::InvalidState`] while a host holds a live lease on it.
    async fn rewind(&self, id: &ProcessId, step: &str, now: Timestamp) -> Result<u64, StoreError>;

    /// Every signal of a process (pending, consumed, rejected, discarded),
    /// in send order; [`StoreError::NotFound`] for an unknown id.
    async fn signals(&self, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError>;

    /// Discards the pending signal `signal` of process `id`: it is kept as
    /// discarded (at `now`) and never handed to a wait; nothing else
    /// changes. Fails with [`StoreError::NotFound`] for an unknown process,
    /// and [`StoreError::InvalidInput`] when the process has no signal with
    /// that id or the signal is no longer pending (the message says which).
    async fn discard_signal(
        &self,
        id: &ProcessId,
        signal: i64,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Deletes finished (completed, failed, cancelled) processes last
    /// updated before `finished_before`, with their journals and signals;
    /// never touches unfinished ones. Returns how many were deleted.
    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError>;

    /// Stores the source of process functions (replacing an earlier text of
    /// the same file and function name), so tools can show it.
    async fn save_sources(&self, sources: &[FunctionSource]) -> Result<(), StoreError>;

    /// Every stored function source, ordered by file and first line.
    async fn sources(&self) -> Result<Vec<FunctionSource>, StoreError>;

    /// The earlier generations of a process that continued as new, oldest
    /// first; [`StoreError::NotFound`] for an unknown id.
    async fn history(&self, id: &ProcessId) -> Result<Vec<Generation>, StoreError>;

    /// The stored history of a process besides its journal, oldest first:
    /// each claim (host, epoch), block, end, cancel (requested or done),
    /// retry, rewind and continue-as-new, every one written in the same
    /// transaction as its operation (which entry each operation writes is
    /// [`crate::rules::event`]); [`StoreError::NotFound`] for an unknown id.
    /// Processes stored before the store kept this history have entries
    /// only from then on.
    async fn events(&self, id: &ProcessId) -> Result<Vec<ProcessEvent>, StoreError>;

    /// Saves what a running subscription has done (checked with
    /// [`crate::check_subscription_report`] first): one row per name and
    /// host, replaced by each save — unless the stored row has a later
    /// `updated_at`, in which case nothing changes (a late save never
    /// overwrites newer figures). Running subscriptions call it
    /// periodically, never per message.
    async fn save_subscription(&self, report: &SubscriptionReport) -> Result<(), StoreError>;

    /// Every saved subscription report, ordered by name, then host.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionReport>, StoreError>;
}

/// A complete store: the hot path and the admin queries.
pub trait Backend: Store + StoreAdmin {}

impl<T: Store + StoreAdmin> Backend for T {}
