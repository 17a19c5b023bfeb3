//! The JSON bodies of requests and responses (their schemas are in the
//! OpenAPI document).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use steadfast::{ProcessRecord, Timestamp};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/processes`: start a process.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpawnRequest {
    /// The registered process kind.
    #[schema(example = "onboarding")]
    pub kind: String,
    /// The caller's id for the process (an order id, a user id). Spawning
    /// the same id with the same kind and input again changes nothing.
    #[schema(example = "user-42")]
    pub id: String,
    /// The process's input; must decode into the kind's input type.
    #[serde(default)]
    #[schema(example = json!("ada@example.com"))]
    pub input: Value,
}

/// What a spawn did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SpawnResponse {
    /// The process id.
    pub id: String,
    /// The kind.
    pub kind: String,
    /// `true` when this request created the process, `false` when it
    /// existed already with the same kind and input.
    pub created: bool,
}

/// `POST /api/v1/processes/{id}/signals`: send a signal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// The signal's name, as the process waits for it.
    #[schema(example = "verified")]
    pub name: String,
    /// The payload (JSON; `null` when left out).
    #[serde(default)]
    #[schema(example = json!({"secret": "1234"}))]
    pub payload: Value,
}

/// A signal stored for a process.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignalResponse {
    /// The process id.
    pub id: String,
    /// The signal's name.
    pub name: String,
}

/// What a cancel did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    /// The process id.
    pub id: String,
    /// The status after the request: `cancelled`, or `running` when the
    /// host running it stops it at its next write.
    pub status: String,
}

/// What a retry did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetryResponse {
    /// The process id.
    pub id: String,
    /// The status after the request.
    pub status: String,
}

/// A process as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessView {
    /// The process id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// The version of the kind's code that started it.
    pub version: u32,
    /// `running`, `suspended`, `blocked`, `completed`, `failed` or
    /// `cancelled`.
    #[schema(example = "suspended")]
    pub status: String,
    /// Its input.
    pub input: Value,
    /// The function's output, once completed.
    pub output: Option<Value>,
    /// The function's error, the blocking reason, or why it was cancelled.
    pub error: Option<String>,
    /// The step a blocked process stopped at.
    pub blocked_step: Option<String>,
    /// The signals a suspended process waits for.
    pub waiting_for: Vec<String>,
    /// When a host next looks at it (RFC 3339).
    pub wake_at: Option<String>,
    /// When it was spawned (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// Whether a cancellation waits for the running host's next write.
    pub cancel_requested: bool,
    /// How many times it continued as new.
    pub generation: u32,
    /// The process that spawned it as a child, if any.
    pub parent: Option<String>,
}

impl From<&ProcessRecord> for ProcessView {
    fn from(r: &ProcessRecord) -> Self {
        ProcessView {
            id: r.id.as_str().to_owned(),
            kind: r.kind.clone(),
            version: r.version,
            status: r.status.as_str().to_owned(),
            input: json_value(&r.input),
            output: r.output.as_deref().map(json_value),
            error: r.error.clone(),
            blocked_step: r.blocked_step.clone(),
            waiting_for: r.waiting_for.clone(),
            wake_at: r.wake_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            cancel_requested: r.cancel_requested,
            generation: r.generation,
            parent: r.parent.as_ref().map(|p| p.as_str().to_owned()),
        }
    }
}

/// `GET /api/v1/processes/{id}/outcome`: how a process ended, or that it
/// has not ended yet.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutcomeResponse {
    /// The process id.
    pub id: String,
    /// Its status now.
    #[schema(example = "completed")]
    pub status: String,
    /// Whether it has ended (completed, failed or cancelled).
    pub finished: bool,
    /// The output of a completed process.
    pub output: Option<Value>,
    /// The error of a failed process, or why it was cancelled or blocked.
    pub error: Option<String>,
}

impl From<&ProcessRecord> for OutcomeResponse {
    fn from(r: &ProcessRecord) -> Self {
        OutcomeResponse {
            id: r.id.as_str().to_owned(),
            status: r.status.as_str().to_owned(),
            finished: r.status.is_finished(),
            output: r.output.as_deref().map(json_value),
            error: r.error.clone(),
        }
    }
}

/// The query of `GET /api/v1/processes/{id}/outcome`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutcomeQuery {
    /// How long to wait for the end: `30s`, `500ms`, `2m` or plain seconds
    /// (`0`, the default, answers at once). At most the server's limit
    /// (60 s unless configured).
    #[param(example = "30s")]
    pub wait: Option<String>,
}

/// Stored JSON text as a value (text that is not JSON, which the engine
/// never stores, comes back as a string).
fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A timestamp as RFC 3339 in UTC with microseconds.
pub fn rfc3339(t: Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(t.as_micros()).map_or_else(
        || t.as_micros().to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}
