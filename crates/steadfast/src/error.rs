//! Errors of the host API and of steps.

use std::fmt;

use serde::{Deserialize, Serialize};
use steadfast_core::{
    Backend, EntryKind, EntryStatus, InvalidId, JournalEntry, ProcessId, ProcessRecord, StoreError,
    shorten,
};

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
    ///
    /// When that error was a step's [`StepFailed`] (returned with `?`), it
    /// is here with its typed error: [`Error::error`] decodes it.
    #[error("process {id:?} failed: {error}")]
    Failed {
        /// The process.
        id: ProcessId,
        /// The error it returned, as text.
        error: String,
        /// The step failure the process returned, when it returned one
        /// (found in its journal): its typed error, attempts and step.
        step: Option<Box<StepFailed>>,
    },
    /// [`crate::Host::outcome_timeout`] (or the client's) waited this long
    /// and the process had not finished; nothing changed.
    #[error("process {id:?} did not finish within {waited:?}; it is {status}")]
    Timeout {
        /// The process.
        id: ProcessId,
        /// How long the call waited.
        waited: std::time::Duration,
        /// The process's status when the wait ended.
        status: steadfast_core::Status,
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
        match self {
            Error::Store(e) => e.is_retryable(),
            Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The typed error of a failed process: for [`Error::Failed`] whose
    /// process returned a step's [`StepFailed`], that step's error decoded
    /// into `E` (see [`StepFailed::error`]); `None` otherwise.
    ///
    /// ```
    /// # use steadfast::{Error, StepFailed, StepResultExt as _};
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct Declined { code: u32 }
    /// # impl std::fmt::Display for Declined {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "declined ({})", self.code) }
    /// # }
    /// let error = Err::<(), _>(Declined { code: 51 }).permanent().unwrap_err();
    /// let failed = StepFailed::new("charged", &error, 1);
    /// let e = Error::Failed {
    ///     id: steadfast::ProcessId::new("order-1")?,
    ///     error: failed.to_string(),
    ///     step: Some(Box::new(failed)),
    /// };
    /// assert_eq!(e.error::<Declined>(), Some(Declined { code: 51 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn error<E: serde::de::DeserializeOwned>(&self) -> Option<E> {
        match self {
            Error::Failed {
                step: Some(step), ..
            } => step.error(),
            _ => None,
        }
    }

    /// The step failure a failed process returned (see [`Error::Failed`]).
    pub fn step_failed(&self) -> Option<&StepFailed> {
        match self {
            Error::Failed {
                step: Some(step), ..
            } => Some(step),
            _ => None,
        }
    }
}

/// The error a step's closure returns: retryable (the default for any
/// `std::error::Error`) or permanent.
///
/// An error made from a serializable error type (by
/// [`StepResultExt::permanent`], [`StepResultExt::retryable`] or
/// [`StepError::typed`]) keeps its serialized form and type name: the
/// [`StepFailed`] the step returns (and the journal records) gives it back
/// with [`StepFailed::error`].
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
    typed: Option<(String, serde_json::Value)>,
}

impl StepError {
    /// A failure worth retrying (a timeout, a busy service).
    pub fn retryable(message: impl fmt::Display) -> Self {
        StepError {
            message: message.to_string(),
            permanent: false,
            timed_out: false,
            typed: None,
        }
    }

    /// An attempt that ran out of time (retryable).
    pub(crate) fn timed_out(limit: std::time::Duration) -> Self {
        StepError {
            timed_out: true,
            ..StepError::retryable(format_args!("timed out after {limit:?}"))
        }
    }

    /// A failure that retrying cannot fix (invalid data, a refusal).
    pub fn permanent(message: impl fmt::Display) -> Self {
        StepError {
            permanent: true,
            ..StepError::retryable(message)
        }
    }

    /// A retryable failure that keeps `error` itself (serialized, with its
    /// type name) besides its message, so that the [`StepFailed`] of the
    /// step gives it back ([`StepFailed::error`]). Chain
    /// [`StepError::into_permanent`] to make it final.
    ///
    /// ```
    /// use steadfast::StepError;
    ///
    /// #[derive(Debug, serde::Serialize, serde::Deserialize, thiserror::Error)]
    /// #[error("card declined: {reason}")]
    /// struct Declined { reason: String }
    ///
    /// let e = StepError::typed(&Declined { reason: "expired".into() }).into_permanent();
    /// assert!(e.is_permanent());
    /// assert_eq!(e.message(), "card declined: expired");
    /// assert!(e.type_name().unwrap().ends_with("Declined"));
    /// ```
    pub fn typed<E: fmt::Display + Serialize + ?Sized>(error: &E) -> Self {
        let mut e = StepError::retryable(error);
        // An error whose serialization fails keeps its message only.
        if let Ok(value) = serde_json::to_value(error) {
            e.typed = Some((std::any::type_name::<E>().to_owned(), value));
        }
        e
    }

    /// The same error, made permanent.
    pub fn into_permanent(mut self) -> Self {
        self.permanent = true;
        self
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

    /// The Rust type of the error kept by [`StepError::typed`], if any.
    pub fn type_name(&self) -> Option<&str> {
        self.typed.as_ref().map(|(name, _)| name.as_str())
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

/// `.permanent()` and `.retryable()` on a step's `Result`: its error becomes
/// a [`StepError`] that keeps the error itself (serialized, with its type),
/// so compensation code can match on it through [`StepFailed::error`].
///
/// ```
/// use steadfast::{Process, StepFailed, StepResultExt as _};
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize, thiserror::Error)]
/// enum PaymentError {
///     #[error("card declined")]
///     Declined,
///     #[error("bank unreachable")]
///     Unreachable,
/// }
///
/// async fn charge(cents: u64) -> Result<u64, PaymentError> {
///     if cents > 1000 { Err(PaymentError::Declined) } else { Ok(cents) }
/// }
///
/// async fn order(p: Process, cents: u64) -> Result<String, StepFailed> {
///     match p.step("charged", || async move { charge(cents).await.permanent() }).await {
///         Ok(paid) => Ok(format!("paid {paid}")),
///         Err(failed) => match failed.error::<PaymentError>() {
///             Some(PaymentError::Declined) => Ok("declined".to_owned()),
///             _ => Err(failed),
///         },
///     }
/// }
/// ```
pub trait StepResultExt<T> {
    /// The error, kept typed, as a failure retrying cannot fix.
    fn permanent(self) -> Result<T, StepError>;
    /// The error, kept typed, as a failure worth retrying.
    fn retryable(self) -> Result<T, StepError>;
}

impl<T, E: fmt::Display + Serialize> StepResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, StepError> {
        self.map_err(|e| StepError::typed(&e).into_permanent())
    }

    fn retryable(self) -> Result<T, StepError> {
        self.map_err(|e| StepError::typed(&e))
    }
}

/// A step that failed for good, as the process function sees it (and as
/// the journal records it, so a replay returns the same error).
///
/// Journal entries written before the typed error was kept decode with
/// `error_type` and `error_value` empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
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
    /// The Rust type of the last attempt's error, when it was kept typed
    /// ([`StepResultExt`], [`StepError::typed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The last attempt's error as JSON, when it was kept typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_value: Option<serde_json::Value>,
}

impl StepFailed {
    /// The failure of step `step` after `attempts` attempts, the last of
    /// which failed with `error`.
    pub fn new(step: impl Into<String>, error: &StepError, attempts: u32) -> Self {
        let (error_type, error_value) = match &error.typed {
            Some((name, value)) => (Some(name.clone()), Some(value.clone())),
            None => (None, None),
        };
        StepFailed {
            step: step.into(),
            message: error.message.clone(),
            attempts,
            permanent: error.permanent,
            timed_out: error.timed_out,
            error_type,
            error_value,
        }
    }

    /// The last attempt's error decoded into `E`, if it was kept typed and
    /// decodes into `E` (whatever `E` is called now: a renamed type whose
    /// serialized form is unchanged still decodes).
    ///
    /// ```
    /// use steadfast::{StepError, StepFailed};
    ///
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// enum Refusal { Expired, Blocked }
    /// # impl std::fmt::Display for Refusal {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
    /// # }
    ///
    /// let failed = StepFailed::new("charged", &StepError::typed(&Refusal::Expired), 3);
    /// assert_eq!(failed.error::<Refusal>(), Some(Refusal::Expired));
    /// assert_eq!(failed.error::<u32>(), None);
    /// assert_eq!(StepFailed::new("x", &StepError::permanent("no"), 1).error::<Refusal>(), None);
    /// ```
    pub fn error<E: serde::de::DeserializeOwned>(&self) -> Option<E> {
        serde_json::from_value(self.error_value.clone()?).ok()
    }
}

/// The error of failed process `id`: its text, and the step failure it
/// returned when its journal has a failed step whose failure reads the same.
pub(crate) async fn failed(store: &dyn Backend, id: ProcessId, record: ProcessRecord) -> Error {
    let error = record.error.unwrap_or_default();
    let step = match store.journal(&id).await {
        Ok(journal) => step_failure(&journal, &error).map(Box::new),
        // The text alone still says what failed.
        Err(err) => {
            tracing::debug!(process = %id, error = %err, "could not read the journal of a failed process");
            None
        }
    };
    Error::Failed { id, error, step }
}

/// The latest failed step of `journal` whose failure displays as `error`.
fn step_failure(journal: &[JournalEntry], error: &str) -> Option<StepFailed> {
    journal
        .iter()
        .rev()
        .filter(|e| e.kind == EntryKind::Step && e.status == EntryStatus::Failed)
        .filter_map(|e| serde_json::from_str::<StepFailed>(e.outcome.as_deref()?).ok())
        .find(|failed| failed.to_string() == error)
}
