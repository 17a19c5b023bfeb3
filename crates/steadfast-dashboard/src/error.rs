//! Errors of starting and serving the dashboard.

use std::net::SocketAddr;

/// Why the dashboard could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A non-loopback address without an access token.
    #[error(
        "refusing to serve the dashboard on {0} without an access token: anyone who can reach \
         it could signal, cancel and purge processes; set a token of at least 32 characters \
         (--token-file PATH or STEADFAST_DASHBOARD_TOKEN) or bind to 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    /// A non-loopback address with a token shorter than
    /// [`crate::MIN_TOKEN_CHARS`].
    #[error(
        "refusing to serve the dashboard on {addr} with an access token of {chars} characters: \
         off loopback it must have at least {min} (e.g. `openssl rand -hex 32`)",
        min = crate::MIN_TOKEN_CHARS
    )]
    TokenTooShort {
        /// The address.
        addr: SocketAddr,
        /// The token's length in characters.
        chars: usize,
    },
    /// An address to listen on that cannot be used.
    #[error("cannot listen on {spec:?}: {reason}")]
    InvalidBind {
        /// As given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A name to accept as `Host` that is not a host name.
    #[error("{0:?} is not a host name (expected e.g. dash.example.com or dash.example.com:443)")]
    InvalidAllowedHost(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the dashboard server failed: {0}")]
    Serve(std::io::Error),
}
