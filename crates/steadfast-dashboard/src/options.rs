//! How the dashboard is served: address, access token, accepted host
//! names, cookies, refresh and paging.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use steadfast::{Clock, SystemClock};

use crate::Error;
use crate::auth::hosts;

/// The shortest access token accepted when the dashboard listens on an
/// address other than loopback.
pub const MIN_TOKEN_CHARS: usize = 32;

/// How the dashboard is served.
#[derive(Clone)]
#[non_exhaustive]
pub struct DashboardOptions {
    /// Where to listen (default `127.0.0.1:7777`).
    pub bind: SocketAddr,
    /// The host name `bind` was given as (see [`DashboardOptions::bind_to`]),
    /// accepted as `Host` like the loopback names.
    pub bind_name: Option<String>,
    /// The access token every request must carry, if any. Required when
    /// `bind` is not a loopback address, and then at least
    /// [`MIN_TOKEN_CHARS`] characters long.
    pub token: Option<String>,
    /// Host names accepted in the `Host` header besides `localhost`,
    /// `127.0.0.1`, `[::1]` and the bound address. Without a token the
    /// `Host` is always checked; with a token only when this list is not
    /// empty.
    pub allowed_hosts: Vec<String>,
    /// Whether the session cookie is marked `Secure` (and named with the
    /// `__Host-` prefix): set it when the dashboard is served over HTTPS,
    /// e.g. behind a TLS-terminating proxy.
    pub secure_cookie: bool,
    /// How often open pages poll for changes (default 1 s).
    pub poll_interval: Duration,
    /// How many processes a list page shows (default 50).
    pub page_size: usize,
    /// The clock sessions and the failed-login throttle read (the wall
    /// clock by default; a virtual one in tests).
    pub clock: Arc<dyn Clock>,
    /// The process-wide Prometheus recorder's handle, when the program
    /// installed one (see [`crate::metrics::exporter`]): `/metrics` shows
    /// what it holds (e.g. a host's step latencies) after the store's
    /// gauges.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl fmt::Debug for DashboardOptions {
    /// Everything but the token, which is shown as `Some("…")` at most.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardOptions")
            .field("bind", &self.bind)
            .field("bind_name", &self.bind_name)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("secure_cookie", &self.secure_cookie)
            .field("poll_interval", &self.poll_interval)
            .field("page_size", &self.page_size)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 7777)),
            bind_name: None,
            token: None,
            allowed_hosts: Vec::new(),
            secure_cookie: false,
            poll_interval: Duration::from_secs(1),
            page_size: 50,
            clock: Arc::new(SystemClock),
            metrics: None,
        }
    }
}

impl DashboardOptions {
    /// Sets the listening address.
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self.bind_name = None;
        self
    }

    /// Sets the listening address from `ADDR:PORT`, `[V6]:PORT` or
    /// `NAME:PORT`. `localhost` is always `127.0.0.1` (whatever the
    /// resolver says); another name is resolved by the system resolver
    /// (blocking; an IPv4 address is preferred) and is then also accepted
    /// as `Host`.
    pub fn bind_to(mut self, spec: &str) -> Result<Self, Error> {
        let spec = spec.trim();
        if let Ok(addr) = spec.parse::<SocketAddr>() {
            return Ok(self.bind(addr));
        }
        let invalid = |reason: String| Error::InvalidBind {
            spec: spec.to_owned(),
            reason,
        };
        let (name, port) = spec
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected ADDRESS:PORT, e.g. 127.0.0.1:7777".into()))?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(format!("{port:?} is not a port number")))?;
        let name = hosts::normalise_name(name)
            .ok_or_else(|| invalid(format!("{name:?} is not a host name")))?;
        let ip = if name == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            let found: Vec<SocketAddr> = (name.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| invalid(format!("cannot resolve {name}: {e}")))?
                .collect();
            found
                .iter()
                .find(|a| a.is_ipv4())
                .or(found.first())
                .map(SocketAddr::ip)
                .ok_or_else(|| invalid(format!("{name} has no address")))?
        };
        self.bind = SocketAddr::new(ip, port);
        self.bind_name = Some(name);
        Ok(self)
    }

    /// Sets (or clears) the access token; an empty token counts as none.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Accepts `name` (a host name or address, with or without a port) as
    /// `Host` too, e.g. the name a reverse proxy forwards.
    pub fn allow_host(mut self, name: impl Into<String>) -> Self {
        self.allowed_hosts.push(name.into());
        self
    }

    /// Marks the session cookie `Secure` (for HTTPS).
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
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

    /// Sets the clock of sessions and of the failed-login throttle.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds the process-wide recorder's handle to `/metrics` (see
    /// [`DashboardOptions::metrics`]).
    pub fn metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Refuses a non-loopback address without an access token or with one
    /// shorter than [`MIN_TOKEN_CHARS`], and allowed host names that are
    /// not host names.
    pub fn check(&self) -> Result<(), Error> {
        if let Some(bad) = self
            .allowed_hosts
            .iter()
            .find(|h| hosts::normalise_authority(h).is_none())
        {
            return Err(Error::InvalidAllowedHost(bad.clone()));
        }
        if self.bind.ip().is_loopback() {
            return Ok(());
        }
        match &self.token {
            None => Err(Error::TokenRequired(self.bind)),
            Some(token) if token.chars().count() < MIN_TOKEN_CHARS => Err(Error::TokenTooShort {
                addr: self.bind,
                chars: token.chars().count(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// The address people open, e.g. `http://localhost:7777`.
    pub fn url(&self) -> String {
        match &self.bind_name {
            Some(name) => format!("http://{name}:{}", self.bind.port()),
            None => format!("http://{}", self.bind),
        }
    }
}
