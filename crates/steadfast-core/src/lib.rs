//! Core vocabulary of Steadfast: process and journal records, the storage
//! traits every store implements, typed store errors and the clock.
//!
//! Users normally depend on the `steadfast` crate, which re-exports what they
//! need from here. Store authors implement [`Store`] and [`StoreAdmin`] and
//! run the `steadfast-conformance` suite against their implementation.
#![forbid(unsafe_code)]

pub mod child;
mod clock;
mod error;
mod events;
pub mod group_commit;
mod id;
mod message_id;
mod record;
pub mod rules;
mod store;
mod subscription;
mod time;
mod transaction;

pub use clock::{Clock, OffsetClock, ScaledClock, SystemClock};
pub use error::{RowError, StoreError};
pub use events::{EventKind, ProcessEvent};
pub use id::{HostId, InvalidId, MAX_ID_LEN, MESSAGE_TEXT_LEN, ProcessId, shorten};
pub use message_id::{MAX_MESSAGE_ID_LEN, SignalSent, check_message_id};
pub use record::{
    EntryKind, EntryStatus, Finish, FunctionSource, Generation, JournalEntry, PendingSignal,
    ProcessRecord, SignalRecord, SignalState, SourceLocation, Status,
};
pub use store::{
    Backend, Claimed, Counts, Lease, ListFilter, ListOrder, Listed, NewProcess, NewSignal,
    ParkedCount, ParkedCounts, SortKey, SpawnAndClaim, SpawnOutcome, StatusCount, Store,
    StoreAdmin, SuspendOutcome, Suspension,
};
pub use subscription::{
    MAX_DEAD_LETTER_REASON_LEN, MAX_SUBSCRIPTION_NAME_LEN, SubscriptionReport,
    check_subscription_report,
};
pub use time::Timestamp;
pub use transaction::{TransactionBody, TransactionalStore};
