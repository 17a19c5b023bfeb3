//! The bench's worker child (W3–W5): runs the bench's kinds — the
//! ten-step workload and the W3 sleeper — on one store until it is killed
//! or, with `--exit-when-idle`, until every process of the store has
//! finished. Started by [`crate::workers::Worker`], never by people.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use steadfast::{Backend, HostBuilder, Status};
use steadfast_examples::{Services, workload};

use crate::{sleeper, store};

/// How often `--exit-when-idle` looks at the store.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Arguments of the hidden `worker` subcommand.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The store (a path, `sqlite:PATH` or a `postgres://` URL).
    #[arg(long)]
    pub store: String,
    /// The folder of the simulated services (the run log
    /// `step-runs.log` goes there).
    #[arg(long)]
    pub services: PathBuf,
    /// Processes run at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,
    /// Exit once no process of the store is running or suspended.
    #[arg(long)]
    pub exit_when_idle: bool,
}

/// Runs the worker until killed, Ctrl-C, or (with `--exit-when-idle`) idle.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let store = store::open(&args.store).await?;
    let services = Services::open(&args.services).with_context(|| {
        format!(
            "cannot open the services folder {}",
            args.services.display()
        )
    })?;
    let builder = HostBuilder::from_arc(Arc::clone(&store))
        .max_concurrency(usize::try_from(args.concurrency).unwrap_or(usize::MAX));
    let builder = sleeper::register(workload::register(builder, services.run_log()));
    let host = builder.build();
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
        r = idle(&*store), if args.exit_when_idle => r?,
    }
    host.shutdown().await;
    drop(host);
    store::close(&*store).await
}

/// Completes once the store holds no running and no suspended process
/// (the bench's kinds never wait for a signal, so a suspended process
/// always has a timer that will wake it).
async fn idle(store: &dyn Backend) -> anyhow::Result<()> {
    loop {
        let counts = store.counts().await.context("cannot count processes")?;
        let busy = counts
            .by_status
            .iter()
            .any(|c| matches!(c.status, Status::Running | Status::Suspended) && c.count > 0);
        if !busy {
            return Ok(());
        }
        tokio::time::sleep(IDLE_POLL).await;
    }
}
