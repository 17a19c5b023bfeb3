//! Signals from messages: the id a re-delivered message is recognised by.

use crate::StoreError;

/// The longest message id a signal may carry, in bytes.
pub const MAX_MESSAGE_ID_LEN: usize = 512;

/// What [`crate::Store::signal_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalSent {
    /// A new signal was stored, with this id.
    Stored(i64),
    /// The process already had a signal from this message (pending,
    /// consumed, rejected or discarded): nothing was stored; this is the
    /// earlier signal's id.
    Duplicate(i64),
}

impl SignalSent {
    /// The id of the signal stored now or before.
    pub fn id(self) -> i64 {
        match self {
            SignalSent::Stored(id) | SignalSent::Duplicate(id) => id,
        }
    }
}

/// The rule every store applies to a message id before it stores anything:
/// not empty, at most [`MAX_MESSAGE_ID_LEN`] bytes, no control characters.
///
/// ```
/// use steadfast_core::check_message_id;
///
/// assert!(check_message_id("orders/42/paid").is_ok());
/// assert!(check_message_id("").is_err());
/// assert!(check_message_id("a\nb").is_err());
/// ```
pub fn check_message_id(message_id: &str) -> Result<(), StoreError> {
    if message_id.is_empty() {
        return Err(StoreError::InvalidInput(
            "a message id must not be empty".to_owned(),
        ));
    }
    if message_id.len() > MAX_MESSAGE_ID_LEN {
        return Err(StoreError::InvalidInput(format!(
            "message id {:?} is {} bytes, more than the {MAX_MESSAGE_ID_LEN} allowed",
            crate::shorten(message_id),
            message_id.len()
        )));
    }
    if message_id.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(format!(
            "message id {:?} has a control character",
            crate::shorten(message_id)
        )));
    }
    Ok(())
}
