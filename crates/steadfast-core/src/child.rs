//! The end notification a child process sends its parent.
//!
//! A process spawned by `Process::child` stores its parent
//! ([`crate::ProcessRecord::parent`]). When it ends (completed, failed or
//! cancelled) the store writes an internal signal to the parent in the same
//! transaction as the end, fenced by the child's lease
//! ([`crate::Store::finish`], [`crate::Store::cancel`]), so the notification
//! is neither lost nor sent before the end is recorded. Its name and payload
//! are defined here so every store writes the same one.

use serde::{Deserialize, Serialize};

use crate::{Finish, ProcessId};

/// How a child ended, as the payload of its end signal (JSON, tagged by
/// `status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChildEnd {
    /// The child's function returned `Ok(output)`.
    Completed {
        /// The output (`null` if the stored text is not JSON).
        output: serde_json::Value,
    },
    /// The child's function returned an error.
    Failed {
        /// The error text.
        error: String,
    },
    /// The child was cancelled.
    Cancelled,
}

/// The internal signal one child's end is sent under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildNotice {
    /// The parent to signal.
    pub parent: ProcessId,
    /// The signal's name: [`end_signal`] of the child's name.
    pub signal: String,
    /// The signal's payload: a [`ChildEnd`] as JSON text.
    pub payload: String,
}

/// The name of the signal a child named `name` sends its parent when it ends.
pub fn end_signal(name: &str) -> String {
    format!("steadfast: child {name:?} ended")
}

/// The child's name under its parent: the id with the `<parent>/` prefix
/// removed (children spawned by `Process::child` have such ids), or the
/// whole id otherwise.
pub fn child_name<'a>(parent: &ProcessId, child: &'a ProcessId) -> &'a str {
    child
        .as_str()
        .strip_prefix(parent.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(child.as_str())
}

/// The end signal `child` sends `parent` when its run ends with `finish`;
/// `None` for a blocked child (it has not ended: it resumes after a fix).
pub fn end_notice(parent: &ProcessId, child: &ProcessId, finish: &Finish) -> Option<ChildNotice> {
    let end = match finish {
        Finish::Completed { output } => ChildEnd::Completed {
            output: serde_json::from_str(output).unwrap_or(serde_json::Value::Null),
        },
        Finish::Failed { error } => ChildEnd::Failed {
            error: error.clone(),
        },
        Finish::Cancelled => ChildEnd::Cancelled,
        Finish::Blocked { .. } => return None,
    };
    let payload = serde_json::to_string(&end).unwrap_or_else(|_| "null".to_owned());
    Some(ChildNotice {
        parent: parent.clone(),
        signal: end_signal(child_name(parent, child)),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ProcessId {
        ProcessId::new(s).expect("id")
    }

    #[test]
    fn notices_name_the_child_under_its_parent() {
        let n = end_notice(&id("o-1"), &id("o-1/payment"), &Finish::Cancelled).expect("notice");
        assert_eq!(n.signal, r#"steadfast: child "payment" ended"#);
        assert_eq!(n.payload, r#"{"status":"cancelled"}"#);
        let n = end_notice(
            &id("o-1"),
            &id("o-1/pay"),
            &Finish::Completed { output: "7".into() },
        )
        .expect("notice");
        assert_eq!(n.payload, r#"{"status":"completed","output":7}"#);
        assert_eq!(child_name(&id("a"), &id("ab/c")), "ab/c");
        let blocked = Finish::Blocked {
            step: None,
            reason: "x".into(),
            location: None,
        };
        assert_eq!(end_notice(&id("a"), &id("a/b"), &blocked), None);
    }
}
