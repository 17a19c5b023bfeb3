use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The longest process id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// The most characters of user-given text (an id, a name, a payload) an
/// error message repeats; see [`shorten`].
pub const MESSAGE_TEXT_LEN: usize = 80;

/// `text` for an error message: whole when short, otherwise its first
/// [`MESSAGE_TEXT_LEN`] characters and a marker saying how long it was, so
/// that a 10 KB id or name is never echoed back whole.
///
/// ```
/// use steadfast_core::shorten;
///
/// assert_eq!(shorten("order-42"), "order-42");
/// let long = "x".repeat(10_000);
/// let short = shorten(&long);
/// assert!(short.len() < 120);
/// assert!(short.ends_with("…(10000 bytes in all)"));
/// ```
pub fn shorten(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MESSAGE_TEXT_LEN) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => {
            std::borrow::Cow::Owned(format!("{}…({} bytes in all)", &text[..cut], text.len()))
        }
    }
}

/// Why a string is not a valid process id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidId {
    /// The id is empty.
    #[error("a process id must not be empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("process id is {0} bytes long; at most {MAX_ID_LEN} are allowed")]
    TooLong(usize),
    /// The id contains a control character (newline, tab, NUL, ...).
    #[error("process id {:?} contains a control character", shorten(.0))]
    ControlCharacter(String),
}

/// The user's id of one process: an order id, a user id, ...
///
/// Ids are chosen by the caller of `spawn`, which makes spawning idempotent.
///
/// ```
/// use steadfast_core::ProcessId;
///
/// let id = ProcessId::new("order-42").unwrap();
/// assert_eq!(id.as_str(), "order-42");
/// assert!(ProcessId::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProcessId(Arc<str>);

impl ProcessId {
    /// Validates and wraps an id.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidId> {
        let id: String = id.into();
        if id.is_empty() {
            return Err(InvalidId::Empty);
        }
        if id.len() > MAX_ID_LEN {
            return Err(InvalidId::TooLong(id.len()));
        }
        if id.chars().any(char::is_control) {
            return Err(InvalidId::ControlCharacter(id));
        }
        Ok(ProcessId(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProcessId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        ProcessId::new(s)
    }
}

impl TryFrom<&str> for ProcessId {
    type Error = InvalidId;
    fn try_from(s: &str) -> Result<Self, InvalidId> {
        ProcessId::new(s)
    }
}

impl From<ProcessId> for String {
    fn from(id: ProcessId) -> String {
        id.0.to_string()
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The identity of one running host (worker): it owns the leases it takes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct HostId(Arc<str>);

impl HostId {
    /// A fresh, unique host id.
    pub fn new(id: impl Into<String>) -> Self {
        HostId(id.into().into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
