//! `steadfast dashboard`: serves the web dashboard for the store.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use steadfast_dashboard::DashboardOptions;

use crate::db::{self, Open};

/// Arguments of `steadfast dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The address to listen on; anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub bind: SocketAddr,
    /// The access token every request must carry (open /login?token=… once
    /// in the browser, or send `Authorization: Bearer …`).
    #[arg(long, env = "STEADFAST_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How often open pages refresh themselves, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

/// Runs the dashboard until Ctrl-C.
pub async fn run(db: &str, args: DashboardArgs) -> anyhow::Result<()> {
    let options = DashboardOptions::default()
        .bind(args.bind)
        .token(args.token)
        .poll_interval(std::time::Duration::from_millis(args.poll_ms));
    options.check()?;
    let (store, _) = db::open(db, Open::Existing).await?;
    let login = if options.token.is_some() {
        "/login?token=…"
    } else {
        ""
    };
    eprintln!(
        "Steadfast dashboard on http://{}{login} (Ctrl-C to stop)",
        args.bind
    );
    tokio::select! {
        result = steadfast_dashboard::serve(store, options) => result.context("the dashboard stopped"),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
