//! Child processes: a process spawns another under a derived id
//! (`<parent id>/<name>`) with its parent stored
//! ([`steadfast_core::ProcessRecord::parent`]), and awaits its outcome
//! durably. When a child ends, the store writes its outcome to the parent as
//! an internal signal in the same transaction as the child's end, fenced by
//! the child's lease (`steadfast_core::child`), so it is neither lost nor
//! sent early.

use steadfast_core::ProcessId;
pub(crate) use steadfast_core::child::{ChildEnd, end_signal};

/// How a child process ended, as its parent sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    /// The child's function returned an error.
    #[error("child process {id:?} failed: {error}")]
    Failed {
        /// The child's id.
        id: String,
        /// The error it returned.
        error: String,
    },
    /// The child was cancelled.
    #[error("child process {id:?} was cancelled")]
    Cancelled {
        /// The child's id.
        id: String,
    },
    /// The child's output does not decode into the type the parent asked for.
    #[error("the output of child process {id:?} does not decode into {expected}: {detail}")]
    Decode {
        /// The child's id.
        id: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// What serde said.
        detail: String,
    },
    /// The child could not be spawned.
    #[error("child process {id:?} could not be spawned: {error}")]
    Spawn {
        /// The child's id.
        id: String,
        /// Why.
        error: String,
    },
}

/// The id of the child `name` of process `parent`.
pub(crate) fn child_id(parent: &ProcessId, name: &str) -> String {
    format!("{parent}/{name}")
}

/// Decodes the end a parent received.
pub(crate) fn outcome<O: serde::de::DeserializeOwned>(
    id: String,
    end: ChildEnd,
) -> Result<O, ChildError> {
    match end {
        ChildEnd::Completed { output } => {
            serde_json::from_value(output).map_err(|e| ChildError::Decode {
                id,
                expected: std::any::type_name::<O>(),
                detail: e.to_string(),
            })
        }
        ChildEnd::Failed { error } => Err(ChildError::Failed { id, error }),
        ChildEnd::Cancelled => Err(ChildError::Cancelled { id }),
        other => Err(ChildError::Decode {
            id,
            expected: std::any::type_name::<O>(),
            detail: format!("an end this version does not know: {other:?}"),
        }),
    }
}
