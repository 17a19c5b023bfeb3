//! Child processes: a process spawns another under a derived id
//! (`<parent id>/<name>`) and awaits its outcome durably. When a child ends,
//! its outcome reaches the parent as an internal signal, sent before the
//! child's end is recorded, so it cannot be lost (a crash in between only
//! sends it twice; the parent consumes one).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use steadfast_core::{Backend, Finish, ProcessId, StoreError, Timestamp};

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

/// The payload of the internal signal a child sends its parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum ChildEnd {
    Completed { output: serde_json::Value },
    Failed { error: String },
    Cancelled,
}

/// The id of the child `name` of process `parent`.
pub(crate) fn child_id(parent: &ProcessId, name: &str) -> String {
    format!("{parent}/{name}")
}

/// The signal a child named `name` sends its parent when it ends.
pub(crate) fn end_signal(name: &str) -> String {
    format!("steadfast: child {name:?} ended")
}

/// The parent and the child's name, for an id `<parent>/<name>`.
fn parent_of(id: &ProcessId) -> Option<(ProcessId, &str)> {
    let (parent, name) = id.as_str().rsplit_once('/')?;
    Some((ProcessId::new(parent).ok()?, name))
}

/// Tells the parent of `id` (if it has one) how `id` ended. Sent before the
/// end is recorded; errors other than a missing or finished parent are
/// returned so the caller does not record the end without telling.
pub(crate) async fn notify_parent(
    store: &Arc<dyn Backend>,
    id: &ProcessId,
    finish: &Finish,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some((parent, name)) = parent_of(id) else {
        return Ok(());
    };
    let end = match finish {
        Finish::Completed { output } => ChildEnd::Completed {
            output: serde_json::from_str(output).unwrap_or(serde_json::Value::Null),
        },
        Finish::Failed { error } => ChildEnd::Failed {
            error: error.clone(),
        },
        Finish::Cancelled => ChildEnd::Cancelled,
        // A blocked child has not ended: it resumes after a fix.
        _ => return Ok(()),
    };
    let payload = serde_json::to_string(&end).unwrap_or_else(|_| "null".to_owned());
    match store
        .signal(&parent, &end_signal(name), &payload, now)
        .await
    {
        Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::InvalidState { .. }) => Ok(()),
        Err(err) => Err(err),
    }
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
    }
}
