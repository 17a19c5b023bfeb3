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
//! Every request must name a host the dashboard is known by (no DNS
//! rebinding); mutating requests need the per-server CSRF token the pages
//! embed (and a matching `Origin` when the browser sends one); when an
//! access token is configured every request needs it too, as the session
//! cookie set by the login form at `/login` or an `Authorization: Bearer …`
//! header. [`route_list`] lists every route.
#![forbid(unsafe_code)]

mod auth;
mod error;
pub mod metrics;
mod options;
mod routes;
mod state;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use steadfast::Backend;

pub use auth::sessions::{MAX_SESSIONS, SESSION_TTL};
pub use auth::throttle::{FIRST_LOCK, FORGET_AFTER, FREE_FAILURES, MAX_LOCK};
pub use error::Error;
pub use options::{DashboardOptions, MIN_TOKEN_CHARS};
pub use routes::{Route, route_list};
pub use state::AppState;

/// The dashboard's routes over `state` (see [`AppState::new`]). Serve it
/// with `into_make_service_with_connect_info::<SocketAddr>()` (as
/// [`serve_on`] does) so failed logins are counted per client address;
/// without it all clients share one count.
pub fn router(state: AppState) -> axum::Router {
    routes::router(state)
}

/// Serves the dashboard for `store` until the task is dropped or the
/// listener fails. Refuses what [`DashboardOptions::check`] refuses.
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
/// Records each connection's peer address, which the failed-login
/// throttle counts by.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Backend>,
    mut options: DashboardOptions,
) -> Result<(), Error> {
    options.bind = listener.local_addr().map_err(Error::Serve)?;
    options.check()?;
    let app = router(AppState::new(store, &options));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .map_err(Error::Serve)
}
