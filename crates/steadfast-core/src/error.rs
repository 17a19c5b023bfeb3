use std::fmt;

use crate::{ProcessId, Status};

/// Which stored row could not be decoded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The table: `processes`, `journal` or `signals`.
    pub table: String,
    /// The row: a process id (as text, lossily decoded if it is not valid
    /// UTF-8), `<process id>/<step name>` or `<process id> seq N` for a
    /// journal entry, the signal id for a signal.
    pub row: String,
    /// The column whose value does not decode.
    pub column: String,
    /// What is wrong with the value.
    pub detail: String,
}

impl RowError {
    /// A row error for `table`, `row` and `column`.
    pub fn new(
        table: impl Into<String>,
        row: impl Into<String>,
        column: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        RowError {
            table: table.into(),
            row: row.into(),
            column: column.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} row {:?}, column {}: {}",
            self.table, self.row, self.column, self.detail
        )
    }
}

impl std::error::Error for RowError {}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No process has this id.
    #[error("no process with id {0:?}")]
    NotFound(ProcessId),
    /// `spawn` found the id taken by a different kind or input.
    #[error(
        "process {id:?} already exists with kind {existing_kind:?} and a different input or kind; \
         spawning it again needs the same kind and input"
    )]
    SpawnConflict {
        /// The id asked for.
        id: ProcessId,
        /// The kind of the existing process.
        existing_kind: String,
    },
    /// The writer no longer holds the process's lease: another host claimed it.
    #[error("lease on process {id:?} was lost (epoch {epoch} is stale); the write was rejected")]
    Fenced {
        /// The process.
        id: ProcessId,
        /// The stale epoch the writer held.
        epoch: i64,
    },
    /// A cancellation was requested; the write was rejected and the process
    /// should be finished as cancelled.
    #[error("process {0:?} was cancelled")]
    CancelRequested(ProcessId),
    /// The journal already holds an outcome under this step name.
    #[error("process {id:?} already has a journal entry named {name:?}")]
    DuplicateEntry {
        /// The process.
        id: ProcessId,
        /// The step name.
        name: String,
    },
    /// The operation does not apply to a process in this state.
    #[error("process {id:?} is {status}; {action} needs it to be {expected}")]
    InvalidState {
        /// The process.
        id: ProcessId,
        /// Its current status.
        status: Status,
        /// What was asked.
        action: &'static str,
        /// Which states allow it.
        expected: &'static str,
    },
    /// The file or database is not a Steadfast store.
    #[error("{location} is not a Steadfast database: {detail}")]
    NotSteadfast {
        /// The path or URL opened.
        location: String,
        /// What gave it away.
        detail: String,
    },
    /// The store was written by a newer Steadfast.
    #[error(
        "{location} has schema version {found}, newer than the {supported} this build knows; \
         upgrade Steadfast to open it"
    )]
    NewerSchema {
        /// The path or URL opened.
        location: String,
        /// Version found in the store.
        found: i64,
        /// Newest version this build supports.
        supported: i64,
    },
    /// The store cannot be written: it was opened read-only, the file or
    /// file system is read-only, or its schema needs an upgrade that only a
    /// store opened for writing may do. Nothing was changed.
    #[error("{location} cannot be written: {detail}")]
    ReadOnly {
        /// The path or URL opened.
        location: String,
        /// Why.
        detail: String,
    },
    /// Stored data cannot be read back (a corrupt row or file).
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// One stored row cannot be decoded: names the table, the row and the
    /// column, so the row can be found and repaired.
    #[error("corrupt store data: {0}")]
    CorruptRow(RowError),
    /// An argument was rejected before anything was written.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database or the I/O beneath it failed.
    #[error("storage backend failed: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// Whether trying again may succeed (busy database, lost connection).
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the same operation may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }
}
