//! The web dashboard of Steadfast.
//!
//! Server-rendered pages (no external assets, everything is served by the
//! binary) that list processes, show one process's journal as a timeline
//! **beside the source of its process function** with the line where it
//! stands highlighted, show per kind how many processes wait at each line,
//! and let an operator signal, cancel, retry, rewind and purge.
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn steadfast::Backend>) -> Result<(), steadfast_dashboard::Error> {
//! use steadfast_dashboard::{DashboardOptions, serve};
//! serve(store, DashboardOptions::default().token(Some("s3cret".into()))).await
//! # }
//! ```
//!
//! Mutating requests need the per-server CSRF token the pages embed (and a
//! matching `Origin` when the browser sends one); when an access token is
//! configured every request needs it too, as the cookie set by
//! `/login?token=…` or an `Authorization: Bearer …` header.
#![forbid(unsafe_code)]

mod auth;
mod error;
pub mod metrics;
mod routes;
mod state;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use steadfast::Backend;

pub use error::Error;
pub use state::AppState;

/// How the dashboard is served.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DashboardOptions {
    /// Where to listen (default `127.0.0.1:7777`).
    pub bind: SocketAddr,
    /// The access token every request must carry, if any. Required when
    /// `bind` is not a loopback address.
    pub token: Option<String>,
    /// How often open pages poll for changes (default 1 s).
    pub poll_interval: Duration,
    /// How many processes a list page shows (default 50).
    pub page_size: usize,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 7777)),
            token: None,
            poll_interval: Duration::from_secs(1),
            page_size: 50,
        }
    }
}

impl DashboardOptions {
    /// Sets the listening address.
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets (or clears) the access token; an empty token counts as none.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Sets how often pages poll for changes (at least 100 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Sets how many processes a list page shows (1 to 1,000).
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 1000);
        self
    }

    /// Refuses a non-loopback address without an access token.
    pub fn check(&self) -> Result<(), Error> {
        if !self.bind.ip().is_loopback() && self.token.is_none() {
            return Err(Error::TokenRequired(self.bind));
        }
        Ok(())
    }
}

/// The dashboard's routes over `state` (see [`AppState::new`]).
pub fn router(state: AppState) -> axum::Router {
    routes::router(state)
}

/// Serves the dashboard for `store` until the task is dropped or the
/// listener fails. Refuses a non-loopback `bind` without a token.
pub async fn serve(store: Arc<dyn Backend>, options: DashboardOptions) -> Result<(), Error> {
    options.check()?;
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: options.bind,
            source,
        })?;
    serve_on(listener, store, options).await
}

/// Like [`serve`] on a listener already bound (e.g. to port 0 in tests);
/// `options.bind` is ignored, the token rule uses the listener's address.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Backend>,
    mut options: DashboardOptions,
) -> Result<(), Error> {
    options.bind = listener.local_addr().map_err(Error::Serve)?;
    options.check()?;
    let app = router(AppState::new(store, &options));
    axum::serve(listener, app).await.map_err(Error::Serve)
}
