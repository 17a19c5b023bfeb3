//! Errors of the bus adapters and of route files.

/// What talking to a broker can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The connection to the broker could not be opened or was lost.
    #[error("cannot reach the broker at {url}: {detail}")]
    Connect {
        /// The broker's address (no password).
        url: String,
        /// What the client said.
        detail: String,
    },
    /// The broker refused or failed an operation.
    #[error("{operation} failed: {detail}")]
    Broker {
        /// What was being done.
        operation: String,
        /// What the client or broker said.
        detail: String,
    },
    /// The broker did not confirm a published message (a nack, or no queue
    /// or stream takes its destination).
    #[error("the broker did not confirm message {id:?} to {destination:?}: {detail}")]
    NotConfirmed {
        /// The message id.
        id: String,
        /// Where it was sent.
        destination: String,
        /// Why.
        detail: String,
    },
    /// A message could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(String),
    /// The source was closed.
    #[error("the message source {0:?} is closed")]
    Closed(String),
    /// No broker is configured to publish to.
    #[error("cannot publish: {0}")]
    Unconfigured(String),
}

impl BusError {
    pub(crate) fn broker(operation: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        BusError::Broker {
            operation: operation.into(),
            detail: detail.to_string(),
        }
    }
}

/// A route file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the route file {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        detail: String,
    },
    /// The file is not valid TOML or JSON of the route file's shape.
    #[error("the route file {path} is not valid {format}: {detail}")]
    Syntax {
        /// The file.
        path: String,
        /// TOML or JSON.
        format: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// The file parses but says something that cannot work.
    #[error("the route file {path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}
