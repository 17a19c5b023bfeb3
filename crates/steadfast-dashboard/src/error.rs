//! Errors of starting and serving the dashboard.

use std::net::SocketAddr;

/// Why the dashboard could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A non-loopback address without an access token.
    #[error(
        "refusing to serve the dashboard on {0} without an access token: anyone who can reach \
         it could signal, cancel and purge processes; set a token (--token or \
         STEADFAST_DASHBOARD_TOKEN) or bind to 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
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
