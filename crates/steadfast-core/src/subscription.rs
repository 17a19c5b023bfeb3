//! The figures a running subscription keeps in the store, so that tools in
//! other programs (the dashboard) can show them.

use serde::{Deserialize, Serialize};

use crate::{StoreError, Timestamp};

/// The longest subscription name, host id or source description, in bytes.
pub const MAX_SUBSCRIPTION_NAME_LEN: usize = 512;

/// The longest dead-letter reason a report keeps, in bytes; a subscription
/// shortens longer ones before it saves them.
pub const MAX_DEAD_LETTER_REASON_LEN: usize = 4096;

/// What one running subscription on one host has done, as it last saved it
/// with [`crate::StoreAdmin::save_subscription`]. The counters are the
/// running subscription's totals since it started on that host (a restarted
/// worker is a new host and starts a new row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionReport {
    /// The subscription's name.
    pub name: String,
    /// The host (worker) running it.
    pub host: String,
    /// Where its messages come from: the broker and the queue, or the
    /// stream and consumer (`rabbitmq queue orders`).
    pub source: String,
    /// Messages received from the broker (re-deliveries count again).
    pub received: u64,
    /// Messages made durable as a spawn or a signal.
    pub routed: u64,
    /// Messages sent to the dead-letter destination.
    pub dead_lettered: u64,
    /// Messages waiting at the broker for this subscription, as last read
    /// (`None`: never read, or the source cannot tell).
    pub lag: Option<u64>,
    /// When `lag` was read.
    pub lag_read_at: Option<Timestamp>,
    /// Why the last dead-lettered message was dead-lettered.
    pub last_dead_letter_reason: Option<String>,
    /// When the running subscription saved these figures.
    pub updated_at: Timestamp,
}

/// The rule every store applies to a report before it stores it: a name,
/// host and source that are not empty, at most
/// [`MAX_SUBSCRIPTION_NAME_LEN`] bytes and without control characters;
/// counters that fit a signed 64-bit column; a reason of at most
/// [`MAX_DEAD_LETTER_REASON_LEN`] bytes.
///
/// ```
/// use steadfast_core::{SubscriptionReport, Timestamp, check_subscription_report};
///
/// let mut report = SubscriptionReport {
///     name: "orders".into(),
///     host: "worker-1".into(),
///     source: "rabbitmq queue orders".into(),
///     received: 3,
///     routed: 2,
///     dead_lettered: 1,
///     lag: Some(0),
///     lag_read_at: Some(Timestamp::from_micros(1)),
///     last_dead_letter_reason: Some("no route takes the message".into()),
///     updated_at: Timestamp::from_micros(2),
/// };
/// assert!(check_subscription_report(&report).is_ok());
/// report.name.clear();
/// assert!(check_subscription_report(&report).is_err());
/// ```
pub fn check_subscription_report(report: &SubscriptionReport) -> Result<(), StoreError> {
    for (what, text) in [
        ("name", &report.name),
        ("host", &report.host),
        ("source", &report.source),
    ] {
        if text.is_empty() {
            return Err(StoreError::InvalidInput(format!(
                "a subscription's {what} must not be empty"
            )));
        }
        if text.len() > MAX_SUBSCRIPTION_NAME_LEN {
            return Err(StoreError::InvalidInput(format!(
                "subscription {what} {:?} is {} bytes, more than the {MAX_SUBSCRIPTION_NAME_LEN} allowed",
                crate::shorten(text),
                text.len()
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(StoreError::InvalidInput(format!(
                "subscription {what} {:?} has a control character",
                crate::shorten(text)
            )));
        }
    }
    let limit = i64::MAX as u64;
    for (what, value) in [
        ("received", Some(report.received)),
        ("routed", Some(report.routed)),
        ("dead_lettered", Some(report.dead_lettered)),
        ("lag", report.lag),
    ] {
        if value.is_some_and(|v| v > limit) {
            return Err(StoreError::InvalidInput(format!(
                "subscription {:?}: {what} is over {limit}",
                crate::shorten(&report.name)
            )));
        }
    }
    if let Some(reason) = &report.last_dead_letter_reason
        && reason.len() > MAX_DEAD_LETTER_REASON_LEN
    {
        return Err(StoreError::InvalidInput(format!(
            "subscription {:?}: the dead-letter reason is {} bytes, more than the {MAX_DEAD_LETTER_REASON_LEN} allowed",
            crate::shorten(&report.name),
            reason.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SubscriptionReport {
        SubscriptionReport {
            name: "orders".into(),
            host: "h".into(),
            source: "rabbitmq queue orders".into(),
            received: 0,
            routed: 0,
            dead_lettered: 0,
            lag: None,
            lag_read_at: None,
            last_dead_letter_reason: None,
            updated_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn reports_are_checked_field_by_field() {
        assert!(check_subscription_report(&report()).is_ok());
        let bad = [
            SubscriptionReport {
                host: String::new(),
                ..report()
            },
            SubscriptionReport {
                source: "a\nb".into(),
                ..report()
            },
            SubscriptionReport {
                name: "n".repeat(MAX_SUBSCRIPTION_NAME_LEN + 1),
                ..report()
            },
            SubscriptionReport {
                received: u64::MAX,
                ..report()
            },
            SubscriptionReport {
                lag: Some(u64::MAX),
                ..report()
            },
            SubscriptionReport {
                last_dead_letter_reason: Some("r".repeat(MAX_DEAD_LETTER_REASON_LEN + 1)),
                ..report()
            },
        ];
        for report in bad {
            assert!(
                matches!(
                    check_subscription_report(&report),
                    Err(StoreError::InvalidInput(_))
                ),
                "{report:?}"
            );
        }
        let longest = SubscriptionReport {
            name: "n".repeat(MAX_SUBSCRIPTION_NAME_LEN),
            received: i64::MAX as u64,
            last_dead_letter_reason: Some("r".repeat(MAX_DEAD_LETTER_REASON_LEN)),
            ..report()
        };
        assert!(check_subscription_report(&longest).is_ok());
    }
}
