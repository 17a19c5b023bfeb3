//! The state shared by every request.

use std::sync::Arc;
use std::time::Duration;

use steadfast::{Backend, Clock, Host, HostBuilder};

use crate::DashboardOptions;
use crate::auth::hosts::HostPolicy;
use crate::auth::sessions::{Sessions, random_hex};
use crate::auth::throttle::Throttle;

/// What handlers share: the store, a client host for actions, and the
/// access checks' configuration and state.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Backend>,
    pub(crate) host: Host,
    /// The state of the `/api/v1` routes (over `host`).
    pub(crate) api: steadfast_http::ApiState,
    /// The per-server CSRF token embedded in every form.
    pub(crate) csrf: String,
    /// The access token, if one is required.
    pub(crate) token: Option<String>,
    /// The names accepted as `Host`.
    pub(crate) hosts: HostPolicy,
    /// Logged-in browsers.
    pub(crate) sessions: Sessions,
    /// Failed logins per client.
    pub(crate) throttle: Throttle,
    /// Whether the session cookie is `Secure`.
    pub(crate) secure_cookie: bool,
    /// What sessions and the throttle read the time from.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) poll: Duration,
    pub(crate) page_size: usize,
    /// The process-wide recorder `/metrics` adds, if any.
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl AppState {
    /// State over `store` with a fresh CSRF token and a client host (one
    /// that never runs processes) for the actions.
    pub fn new(store: Arc<dyn Backend>, options: &DashboardOptions) -> Self {
        let host = HostBuilder::from_arc(Arc::clone(&store)).build_client();
        Self::with_host(store, host, options)
    }

    /// State over `store` whose actions and `/api/v1` routes act through
    /// `host` (e.g. a client host with the application's kinds registered,
    /// so `POST /api/v1/processes` can check inputs and spawn them).
    pub fn with_host(store: Arc<dyn Backend>, host: Host, options: &DashboardOptions) -> Self {
        AppState {
            inner: Arc::new(Inner {
                store,
                api: steadfast_http::ApiState::new(host.clone()),
                host,
                csrf: random_hex(),
                token: options.token.clone(),
                hosts: HostPolicy::new(options),
                sessions: Sessions::default(),
                throttle: Throttle::default(),
                secure_cookie: options.secure_cookie,
                clock: Arc::clone(&options.clock),
                poll: options.poll_interval,
                page_size: options.page_size,
                metrics: options.metrics.clone(),
            }),
        }
    }

    /// The frame of this dashboard's pages.
    pub(crate) fn frame(&self) -> crate::views::Frame<'_> {
        crate::views::Frame {
            csrf: &self.inner.csrf,
            poll: self.inner.poll,
            logout: self.inner.token.is_some(),
        }
    }

    /// The CSRF token forms must carry (for tests and embedding).
    pub fn csrf_token(&self) -> &str {
        &self.inner.csrf
    }
}

impl axum::extract::FromRef<AppState> for steadfast_http::ApiState {
    fn from_ref(app: &AppState) -> Self {
        app.inner.api.clone()
    }
}
