//! Errors of the host API and of steps.

use std::fmt;

use serde::{Deserialize, Serialize};
use steadfast_core::{InvalidId, ProcessId, StoreError, shorten};

/// What a [`crate::Host`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed or refused the operation.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The process id is not valid.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// No process kind of this name is registered on the host.
    #[error(
        "no process kind {:?} is registered; known kinds: {known:?}",
        shorten(kind)
    )]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// The kinds the host knows.
        known: Vec<String>,
    },
    /// A spawn's input does not fit the kind's input type.
    #[error(
        "input for process kind {:?} does not fit its input type {expected}: {detail}",
        shorten(kind)
    )]
    InvalidInput {
        /// The kind.
        kind: String,
        /// The Rust type the kind expects.
        expected: &'static str,
        /// What serde said.
        detail: String,
    },
    /// A spawn input or signal payload is larger than the host's limit
    /// ([`crate::HostBuilder::max_payload_bytes`]); nothing was stored.
    #[error(
        "{what} is {size} bytes of JSON, more than the limit of {limit} bytes; nothing was stored"
    )]
    PayloadTooLarge {
        /// What was too large, e.g. `the input of process "order-1"`.
        what: String,
        /// Its size as JSON, in bytes.
        size: usize,
        /// The host's limit, in bytes.
        limit: usize,
    },
    /// A value could not be turned into JSON.
    #[error("could not encode {what} as JSON: {detail}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// What serde said.
        detail: String,
    },
    /// Stored JSON does not decode into the type asked for.
    #[error("{what} does not decode into {expected}: {detail}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// What serde said.
        detail: String,
    },
    /// The process function returned an error.
    #[error("process {id:?} failed: {error}")]
    Failed {
        /// The process.
        id: ProcessId,
        /// The error it returned.
        error: String,
    },
    /// The process was cancelled.
    #[error("process {id:?} was cancelled")]
    Cancelled {
        /// The process.
        id: ProcessId,
    },
    /// A typed handle was asked for a process of another kind.
    #[error("process {id:?} is of kind {found:?}, not {expected:?}")]
    WrongKind {
        /// The process.
        id: ProcessId,
        /// The kind the handle is typed for.
        expected: &'static str,
        /// The process's kind.
        found: String,
    },
    /// The host is shutting down.
    #[error("the host is shut down")]
    ShutDown,
}

impl Error {
    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_retryable())
    }
}

/// The error a step's closure returns: retryable (the default for any
/// `std::error::Error`) or permanent.
///
/// ```
/// use steadfast::StepError;
///
/// let e: StepError = std::io::Error::other("connection reset").into();
/// assert!(!e.is_permanent());
/// assert!(StepError::permanent("card declined").is_permanent());
/// ```
#[derive(Debug, Clone)]
pub struct StepError {
    message: String,
    permanent: bool,
    timed_out: bool,
}

impl StepError {
    /// A failure worth retrying (a timeout, a busy service).
    pub fn retryable(message: impl fmt::Display) -> Self {
        StepError {
            message: message.to_string(),
            permanent: false,
            timed_out: false,
        }
    }

    /// An attempt that ran out of time (retryable).
    pub(crate) fn timed_out(limit: std::time::Duration) -> Self {
        StepError {
            message: format!("timed out after {limit:?}"),
            permanent: false,
            timed_out: true,
        }
    }

    /// A failure that retrying cannot fix (invalid data, a refusal).
    pub fn permanent(message: impl fmt::Display) -> Self {
        StepError {
            message: message.to_string(),
            permanent: true,
            timed_out: false,
        }
    }

    /// Whether this failure is final.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Whether the attempt ran out of time.
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StepError {
    fn from(e: E) -> Self {
        StepError::retryable(e)
    }
}

/// A step that failed for good, as the process function sees it (and as
/// the journal records it, so a replay returns the same error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("step {step:?} failed after {attempts} attempt(s): {message}")]
pub struct StepFailed {
    /// The step's name.
    pub step: String,
    /// The last attempt's error.
    pub message: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// Whether the last error was permanent (not worth a retry).
    pub permanent: bool,
    /// Whether the last attempt ran out of time.
    pub timed_out: bool,
}
