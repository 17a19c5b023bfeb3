//! Routes: what a message becomes — a spawn or a signal — and how its
//! process id, input or payload are taken from its body or headers.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Message;

/// Where a value comes from: a field of the JSON body (a dotted path such
/// as `user.id`) or a header, optionally with a prefix put before it (to
/// turn `42` into `user-42`).
///
/// ```
/// use steadfast_bus::route::Selector;
///
/// let id = Selector::field("user_id").prefix("user-");
/// assert_eq!(id.to_string(), "body field \"user_id\"");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// A field of the JSON body (dots go into objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Text put before the value (ids only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl Selector {
    /// A field of the JSON body.
    pub fn field(path: impl Into<String>) -> Self {
        Selector {
            field: Some(path.into()),
            ..Selector::default()
        }
    }

    /// A header.
    pub fn header(name: impl Into<String>) -> Self {
        Selector {
            header: Some(name.into()),
            ..Selector::default()
        }
    }

    /// Puts `prefix` before the value.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    fn check(&self, what: &str) -> Result<(), String> {
        match (&self.field, &self.header) {
            (Some(f), None) if !f.is_empty() => Ok(()),
            (None, Some(h)) if !h.is_empty() => Ok(()),
            (Some(_), Some(_)) => Err(format!("{what} names both a field and a header; pick one")),
            _ => Err(format!("{what} needs a non-empty `field` or `header`")),
        }
    }

    /// The value as JSON (a header's value is a JSON string).
    fn json(&self, message: &Message, body: &Body) -> Result<Value, Unroutable> {
        if let Some(name) = &self.header {
            return message
                .headers
                .get(name)
                .or_else(|| {
                    message
                        .headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                })
                .map(|v| Value::String(v.clone()))
                .ok_or_else(|| Unroutable::Missing(self.to_string()));
        }
        let path = self.field.as_deref().unwrap_or("");
        let mut value = body.json()?;
        for part in path.split('.') {
            value = value
                .get(part)
                .ok_or_else(|| Unroutable::Missing(self.to_string()))?;
        }
        Ok(value.clone())
    }

    /// The value as text, with the prefix (for ids).
    fn text(&self, message: &Message, body: &Body) -> Result<String, Unroutable> {
        let text = match self.json(message, body)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(Unroutable::NotText {
                    what: self.to_string(),
                    found: kind_of(&other),
                });
            }
        };
        Ok(format!("{}{text}", self.prefix.as_deref().unwrap_or("")))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.field, &self.header) {
            (Some(field), _) => write!(f, "body field {field:?}"),
            (None, Some(header)) => write!(f, "header {header:?}"),
            (None, None) => f.write_str("nothing"),
        }
    }
}

/// Which messages a route takes: those whose selected value equals
/// `equals` (as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The value compared.
    #[serde(flatten)]
    pub value: Selector,
    /// What it must be.
    pub equals: String,
}

/// A message that starts a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnRoute {
    /// The process kind.
    pub kind: String,
    /// Where the process id comes from.
    pub id: Selector,
    /// Where the input comes from; the whole body if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Selector>,
}

/// A message that signals a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRoute {
    /// The signal's name.
    pub name: String,
    /// Where the id of the process it goes to comes from (correlation).
    pub id: Selector,
    /// Where the payload comes from; the whole body if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Selector>,
}

/// One route: an optional condition and what a message that meets it
/// becomes. A subscription tries its routes in order; the first whose
/// condition holds takes the message.
///
/// ```
/// use steadfast_bus::route::{Action, Route, Selector};
/// use steadfast_bus::Message;
///
/// let route = Route::signal("email verified", Selector::field("user_id").prefix("user-"))
///     .when(Selector::header("type"), "EmailVerified")
///     .payload(Selector::field("token"));
/// let message = Message {
///     id: Some("m-1".into()),
///     destination: "web".into(),
///     headers: [("type".to_owned(), "EmailVerified".to_owned())].into(),
///     body: br#"{"user_id": 42, "token": "abc"}"#.to_vec(),
///     redelivered: false,
/// };
/// let action = steadfast_bus::route::resolve(&[route], &message).unwrap();
/// assert_eq!(action, Action::Signal {
///     id: "user-42".into(),
///     name: "email verified".into(),
///     payload: "\"abc\"".into(),
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Only messages meeting this condition (all if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// The message starts a process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn: Option<SpawnRoute>,
    /// The message signals a process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalRoute>,
}

impl Route {
    /// A route spawning `kind` under the id `id`, the whole body as input.
    pub fn spawn(kind: impl Into<String>, id: Selector) -> Self {
        Route {
            when: None,
            spawn: Some(SpawnRoute {
                kind: kind.into(),
                id,
                input: None,
            }),
            signal: None,
        }
    }

    /// A route sending the signal `name` to the process `id`, the whole body
    /// as payload.
    pub fn signal(name: impl Into<String>, id: Selector) -> Self {
        Route {
            when: None,
            spawn: None,
            signal: Some(SignalRoute {
                name: name.into(),
                id,
                payload: None,
            }),
        }
    }

    /// Takes only messages whose `value` equals `equals`.
    pub fn when(mut self, value: Selector, equals: impl Into<String>) -> Self {
        self.when = Some(Condition {
            value,
            equals: equals.into(),
        });
        self
    }

    /// The input (spawn) or payload (signal) is `selector`'s value.
    pub fn payload(mut self, selector: Selector) -> Self {
        if let Some(s) = &mut self.spawn {
            s.input = Some(selector.clone());
        }
        if let Some(s) = &mut self.signal {
            s.payload = Some(selector);
        }
        self
    }

    /// Checks the route makes sense; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if let Some(when) = &self.when {
            when.value.check("`when`")?;
        }
        match (&self.spawn, &self.signal) {
            (Some(s), None) => {
                if s.kind.is_empty() {
                    return Err("`spawn.kind` must not be empty".into());
                }
                s.id.check("`spawn.id`")?;
                if let Some(input) = &s.input {
                    input.check("`spawn.input`")?;
                }
                Ok(())
            }
            (None, Some(s)) => {
                if s.name.is_empty() {
                    return Err("`signal.name` must not be empty".into());
                }
                if steadfast::is_reserved(&s.name) {
                    return Err(format!(
                        "`signal.name` {:?}: names beginning with {:?} are reserved for the engine",
                        s.name,
                        steadfast::RESERVED_PREFIX
                    ));
                }
                s.id.check("`signal.id`")?;
                if let Some(payload) = &s.payload {
                    payload.check("`signal.payload`")?;
                }
                Ok(())
            }
            (Some(_), Some(_)) => Err("a route has both `spawn` and `signal`; pick one".into()),
            (None, None) => Err("a route needs `spawn` or `signal`".into()),
        }
    }

    fn matches(&self, message: &Message, body: &Body) -> Result<bool, Unroutable> {
        let Some(when) = &self.when else {
            return Ok(true);
        };
        match when.value.json(message, body) {
            Ok(Value::String(s)) => Ok(s == when.equals),
            Ok(Value::Number(n)) => Ok(n.to_string() == when.equals),
            Ok(_) | Err(Unroutable::Missing(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn action(&self, message: &Message, body: &Body) -> Result<Action, Unroutable> {
        let value = |selector: &Option<Selector>| -> Result<String, Unroutable> {
            match selector {
                Some(s) => Ok(s.json(message, body)?.to_string()),
                None => Ok(body.json()?.to_string()),
            }
        };
        if let Some(s) = &self.spawn {
            return Ok(Action::Spawn {
                kind: s.kind.clone(),
                id: s.id.text(message, body)?,
                input: value(&s.input)?,
            });
        }
        if let Some(s) = &self.signal {
            return Ok(Action::Signal {
                id: s.id.text(message, body)?,
                name: s.name.clone(),
                payload: value(&s.payload)?,
            });
        }
        Err(Unroutable::NoRoute)
    }
}

/// What a routed message becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a process.
    Spawn {
        /// Its kind.
        kind: String,
        /// Its id.
        id: String,
        /// Its input, as JSON.
        input: String,
    },
    /// Signal a process.
    Signal {
        /// The process's id.
        id: String,
        /// The signal's name.
        name: String,
        /// The payload, as JSON.
        payload: String,
    },
}

/// Why a message cannot be routed; the text is the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unroutable {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// No route's condition holds.
    #[error("no route takes this message")]
    NoRoute,
    /// A field or header the route needs is missing.
    #[error("the message has no {0}")]
    Missing(String),
    /// An id is not text or a number.
    #[error("{what} is {found}, not text or a number")]
    NotText {
        /// The selector.
        what: String,
        /// What the value is.
        found: &'static str,
    },
}

/// The message body, parsed once, at most.
struct Body<'a> {
    raw: &'a [u8],
    parsed: std::sync::OnceLock<Result<Value, String>>,
}

impl Body<'_> {
    fn json(&self) -> Result<&Value, Unroutable> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(self.raw).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Unroutable::NotJson(e.clone()))
    }
}

/// What `message` becomes under `routes` (the first that takes it).
pub fn resolve(routes: &[Route], message: &Message) -> Result<Action, Unroutable> {
    let body = Body {
        raw: &message.body,
        parsed: std::sync::OnceLock::new(),
    };
    for route in routes {
        if route.matches(message, &body)? {
            return route.action(message, &body);
        }
    }
    Err(Unroutable::NoRoute)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn msg(headers: &[(&str, &str)], body: &str) -> Message {
        Message {
            id: Some("m".into()),
            destination: "d".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            redelivered: false,
        }
    }

    fn routes() -> Vec<Route> {
        vec![
            Route::spawn("onboarding", Selector::field("user.id").prefix("user-"))
                .when(Selector::field("type"), "UserSignedUp")
                .payload(Selector::field("user.email")),
            Route::signal("email verified", Selector::header("user-id"))
                .when(Selector::header("type"), "EmailVerified"),
        ]
    }

    #[test]
    fn spawns_from_nested_fields_and_signals_by_header() {
        let spawn = resolve(
            &routes(),
            &msg(
                &[],
                r#"{"type":"UserSignedUp","user":{"id":7,"email":"a@b"}}"#,
            ),
        );
        assert_eq!(
            spawn,
            Ok(Action::Spawn {
                kind: "onboarding".into(),
                id: "user-7".into(),
                input: "\"a@b\"".into()
            })
        );
        let signal = resolve(
            &routes(),
            &msg(
                &[("Type", "EmailVerified"), ("user-id", "u-1")],
                r#"{"x":1}"#,
            ),
        );
        assert_eq!(
            signal,
            Ok(Action::Signal {
                id: "u-1".into(),
                name: "email verified".into(),
                payload: r#"{"x":1}"#.into()
            })
        );
    }

    #[test]
    fn unroutable_messages_say_why() {
        assert_eq!(
            resolve(&routes(), &msg(&[], "not json")),
            Err(Unroutable::NotJson(
                "expected ident at line 1 column 2".into()
            ))
        );
        assert_eq!(
            resolve(&routes(), &msg(&[], r#"{"type":"Other"}"#)),
            Err(Unroutable::NoRoute)
        );
        assert_eq!(
            resolve(&routes(), &msg(&[], r#"{"type":"UserSignedUp","user":{}}"#)),
            Err(Unroutable::Missing("body field \"user.id\"".into()))
        );
        assert_eq!(
            resolve(
                &routes(),
                &msg(&[], r#"{"type":"UserSignedUp","user":{"id":null}}"#)
            ),
            Err(Unroutable::NotText {
                what: "body field \"user.id\"".into(),
                found: "null"
            })
        );
    }

    #[test]
    fn routes_are_checked() {
        assert!(Route::spawn("", Selector::field("a")).check().is_err());
        assert!(Route::signal("s", Selector::default()).check().is_err());
        assert!(
            Route::signal("steadfast: x", Selector::field("a"))
                .check()
                .is_err()
        );
        let mut both = Route::signal("s", Selector::field("a"));
        both.spawn = Route::spawn("k", Selector::field("a")).spawn;
        assert!(both.check().is_err());
        assert!(Route::signal("s", Selector::field("a")).check().is_ok());
    }
}
