//! `steadfast serve --http ADDR` (and `steadfast worker --http ADDR`): the
//! HTTP API of `steadfast-http` over the store.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use steadfast::HostBuilder;
use steadfast_http::ApiOptions;

use crate::db::{self, Open};
use crate::kinds::Kinds;

/// The environment variable holding the API's access token.
pub const TOKEN_ENV: &str = "STEADFAST_API_TOKEN";

/// The HTTP API's flags (of `serve` and `worker`).
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Serve the HTTP API (spawn, signal, status, outcome, cancel, retry as
    /// JSON under /api/v1, the OpenAPI document at /api/v1/openapi.json) on
    /// ADDR. Anything but loopback needs an access token of at least 32
    /// characters.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Read the API's bearer token from this file (surrounding whitespace is
    /// ignored); otherwise it is taken from STEADFAST_API_TOKEN, if set.
    #[arg(long, value_name = "PATH", requires = "http")]
    pub api_token_file: Option<PathBuf>,
    /// The largest request body the API accepts, in bytes (1,024 to
    /// 67,108,864).
    #[arg(long, value_name = "BYTES", default_value_t = steadfast_http::DEFAULT_MAX_BODY_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub api_max_body: u64,
}

impl ApiArgs {
    /// The API's options; refuses what the API would refuse at start-up.
    pub fn options(&self, addr: SocketAddr) -> anyhow::Result<ApiOptions> {
        let token = match &self.api_token_file {
            Some(path) => Some(super::dashboard::read_token(path)?),
            None => std::env::var(TOKEN_ENV).ok(),
        };
        let options = ApiOptions::default()
            .token(token)
            .max_body_bytes(usize::try_from(self.api_max_body).unwrap_or(usize::MAX));
        options.check(addr)?;
        Ok(options)
    }

    /// Binds the API's address and serves it over `host` in the background.
    pub async fn spawn_server(&self, host: steadfast::Host) -> anyhow::Result<()> {
        let Some(addr) = self.http else {
            return Ok(());
        };
        let options = self.options(addr)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve the HTTP API on {addr}"))?;
        let auth = if options.token.is_some() {
            "bearer token required"
        } else {
            "no token: loopback only"
        };
        tracing::info!(%addr, auth, "serving the HTTP API at /api/v1");
        eprintln!("Steadfast HTTP API on http://{addr}/api/v1 ({auth})");
        tokio::spawn(async move {
            if let Err(err) = steadfast_http::serve_on(listener, host, options).await {
                tracing::error!(error = %err, "the HTTP API stopped");
            }
        });
        Ok(())
    }
}

/// Arguments of `steadfast serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The API's flags (`--http` is required here).
    #[command(flatten)]
    pub api: ApiArgs,
    /// Where the example kinds' simulated services keep their files
    /// (default: next to the database, as for `worker`).
    #[arg(long)]
    pub services: Option<PathBuf>,
}

/// Serves the HTTP API until Ctrl-C. Processes are run by workers; this
/// host only spawns (checking inputs against the binary's kinds; without
/// kinds spawning answers 422), signals, reads, cancels and retries.
pub async fn run(db: &str, args: ServeArgs, kinds: &Kinds) -> anyhow::Result<()> {
    if args.api.http.is_none() {
        bail!("give the address to serve on: steadfast serve --http 127.0.0.1:8080");
    }
    let (store, location) = db::open(db, Open::Create).await?;
    let services_dir = args
        .services
        .clone()
        .unwrap_or_else(|| db::services_for(&location));
    let builder = HostBuilder::from_arc(store.clone());
    let builder = if kinds.require("serve").is_ok() {
        kinds.register(builder, &services_dir, "serve")?
    } else {
        builder
    };
    let host = builder.build_client();
    args.api.spawn_server(host.clone()).await?;
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    host.shutdown().await;
    drop(host);
    db::close(&*store).await
}
