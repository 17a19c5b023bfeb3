#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod check;
mod child;
mod client;
mod context;
mod dispatcher;
mod error;
mod handle;
mod host;
mod kind;
mod leases;
mod metrics;
mod offset;
mod open;
mod ops;
#[cfg(feature = "otel")]
pub mod otel;
mod persist;
mod process;
mod provided;
mod retry;
mod run;
pub mod schedule;
mod shared;
mod signal;
mod sources;
mod stores;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
mod typed;

pub use check::CheckReport;
pub use child::ChildError;
pub use client::Client;
pub use error::{Error, StepError, StepFailed, StepResultExt};
pub use handle::Handle;
pub use host::{DEFAULT_MAX_PAYLOAD_BYTES, Host, HostBuilder, Spawned};
pub use metrics::{describe_metrics, names as metric_names};
#[cfg(feature = "sqlite")]
pub use open::open_sqlite;
pub use open::{Location, OpenError, OpenMode, open, open_with};
pub use ops::step::Step;
pub use process::{Durable, Process, Wait, WaitTimeout};
pub use provided::{NotProvided, Provided};
pub use retry::RetryPolicy;
pub use run::Verdict;
pub use signal::{RESERVED_PREFIX, Signal, SignalName, is_reserved};
pub use sources::process_sources;
pub use steadfast_macros::process;
pub use stores::{AnyStore, ProcessStore};
pub use typed::{KindFn, ProcessKind};

/// Used by the code `#[steadfast::process]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::ops::transaction::{AfterBodyHook, set_after_body_hook};
    pub use crate::sources::ProcessSource;
    pub use crate::typed::ProcessParam;
    pub use crate::typed::{KindFuture, ProcessResult};
    pub use inventory;
}
pub use steadfast_core::{
    Backend, Clock, Counts, EntryKind, EntryStatus, FunctionSource, JournalEntry, ListFilter,
    Listed, ParkedCount, ParkedCounts, ProcessId, ProcessRecord, RowError, ScaledClock,
    SignalRecord, SignalSent, SignalState, SourceLocation, Status, StatusCount, Store, StoreAdmin,
    StoreError, SystemClock, Timestamp, TransactionalStore, shorten,
};
#[cfg(feature = "postgres")]
pub use steadfast_postgres::{PostgresOptions, PostgresStore, PostgresUrl, redact, sqlx};
#[cfg(feature = "sqlite")]
pub use steadfast_sqlite::{
    Access, Durability, SqliteOptions, SqliteStore, WriteConnection, rusqlite,
};

/// The storage traits and records, for store implementers.
pub mod core {
    pub use steadfast_core::*;
}
