//! What `--json` prints: records as JSON objects whose inputs, outputs,
//! outcomes and payloads are JSON values (not JSON text in a string) and
//! whose times are RFC 3339 strings in UTC (not microseconds).

use serde::Serialize;
use serde_json::Value;
use steadfast::{JournalEntry, ProcessRecord, SignalRecord, Timestamp};

/// Fields holding JSON text, embedded as values.
const JSON_FIELDS: [&str; 4] = ["input", "output", "outcome", "payload"];

/// Fields holding times (µs since 1970), written as RFC 3339.
const TIME_FIELDS: [&str; 7] = [
    "created_at",
    "updated_at",
    "wake_at",
    "started_at",
    "finished_at",
    "due_at",
    "sent_at",
];

/// The other time field of signals.
const SETTLED_AT: &str = "settled_at";

/// `value` serialized, with [`JSON_FIELDS`] embedded and times as RFC 3339
/// (in this object; nested objects are left as they are).
pub fn object<T: Serialize>(value: &T) -> Value {
    let mut value = serde_json::to_value(value).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for key in JSON_FIELDS {
            if let Some(field) = map.get_mut(key)
                && let Value::String(text) = field
                // Text that is not JSON (a corrupt row) stays text.
                && let Ok(parsed) = serde_json::from_str::<Value>(text)
            {
                *field = parsed;
            }
        }
        for key in TIME_FIELDS.iter().copied().chain([SETTLED_AT]) {
            if let Some(field) = map.get_mut(key)
                && let Some(micros) = field.as_i64()
            {
                *field = Value::String(Timestamp::from_micros(micros).to_string());
            }
        }
    }
    value
}

/// A process record.
pub fn record(record: &ProcessRecord) -> Value {
    object(record)
}

/// A journal entry.
pub fn entry(entry: &JournalEntry) -> Value {
    object(entry)
}

/// A signal.
pub fn signal(signal: &SignalRecord) -> Value {
    object(signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_values_and_times_rfc3339() {
        let signal = SignalRecord {
            id: 7,
            name: "email verified".to_owned(),
            payload: r#"{"secret":"s3"}"#.to_owned(),
            sent_at: Timestamp::from_micros(1_000_000),
            state: steadfast::SignalState::Pending,
            settled_at: None,
            reason: None,
            traceparent: None,
            message_id: None,
        };
        let v = super::signal(&signal);
        assert_eq!(v["payload"]["secret"], "s3");
        assert_eq!(v["sent_at"], "1970-01-01T00:00:01.000000Z");
        assert_eq!(v["settled_at"], Value::Null);
    }
}
