//! The writes the writer thread runs: one [`Write`] per store operation
//! that changes the database (and the few reads that must see the writer's
//! own connection). The `writer` module runs them; the store's methods
//! and the `transaction` module queue them.

use std::time::Duration;

use steadfast_core::{
    Finish, FunctionSource, HostId, JournalEntry, Lease, NewProcess, NewSignal, ProcessId,
    SubscriptionReport, Suspension, Timestamp, TransactionBody,
};

/// One write (or writer-side read) for the writer thread; its caller
/// waits in the queue beside it ([`group_commit::Queue::call`]).
pub(crate) enum Write {
    Spawn(NewProcess),
    /// [`steadfast_core::Store::spawn_and_claim`], the process's `now` on
    /// the store's clock.
    SpawnAndClaim(NewProcess, HostId, Duration),
    Claim {
        owner: HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    },
    Append(Lease, JournalEntry),
    Suspend(Lease, Suspension),
    Finish(Lease, Finish, Timestamp),
    Renew(HostId, Vec<Lease>, Timestamp, Duration),
    Release(HostId, Timestamp),
    /// [`steadfast_core::Store::send_signal`], its `now` on the store's
    /// clock.
    Signal(ProcessId, NewSignal),
    Cancel(ProcessId, Timestamp),
    Retry(ProcessId, Timestamp),
    /// [`steadfast_core::Store::reject_signal`].
    RejectSignal(Lease, i64, String, Timestamp),
    /// [`steadfast_core::StoreAdmin::discard_signal`].
    DiscardSignal(ProcessId, i64, Timestamp),
    Rewind(ProcessId, String, Timestamp),
    /// [`steadfast_core::TransactionalStore::transaction`] (the body runs
    /// once: it is taken when the write runs).
    Transaction(
        Lease,
        JournalEntry,
        Option<TransactionBody<crate::SqliteStore>>,
    ),
    SaveSources(Vec<FunctionSource>),
    /// [`steadfast_core::StoreAdmin::save_subscription`].
    SaveSubscription(Box<SubscriptionReport>),
    ContinueAsNew(Lease, String, Timestamp),
    PurgeChunk(Timestamp),
    Pragmas,
}

impl Write {
    /// Whether running this write again, after its batch was rolled back,
    /// does what running it once would have: every write but a
    /// transactional step, whose body runs once.
    pub(crate) fn repeatable(&self) -> bool {
        !matches!(self, Write::Transaction(..))
    }
}
