//! `steadfast worker`: runs the example processes of a store, and with
//! `--subscribe` the subscriptions of route files.

use std::time::Duration;

use anyhow::{Context, bail};
use steadfast::{Backend, HostBuilder, ListFilter, ProcessId, ScaledClock, Status, Timestamp};

use crate::WorkerArgs;
use crate::bus::Subscriptions;
use crate::db::{self, Open};
use crate::kinds::Kinds;

/// How often `--exit-when-idle` looks at the store.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Runs `steadfast worker` until Ctrl-C, SIGTERM or (with
/// `--exit-when-idle`) until nothing is left to do.
pub async fn run(db: &str, args: WorkerArgs, kinds: &Kinds) -> anyhow::Result<()> {
    // Without kinds, say so before anything is created.
    kinds.require("worker")?;
    // Route files are checked before anything is opened or started.
    let subscriptions = Subscriptions::load(&args.subscribe)?;
    let (store, location) = db::open(db, Open::Create).await?;
    let services_dir = args
        .services
        .clone()
        .unwrap_or_else(|| db::services_for(&location));
    if let Some(addr) = args.metrics {
        serve_metrics(addr).await?;
    }
    let mut builder = HostBuilder::from_arc(store.clone())
        .max_concurrency(args.concurrency as usize)
        .clock_offset_warning(Duration::from_millis(args.max_clock_offset_ms));
    if let Some(ms) = args.lease_ms {
        builder = builder.lease(Duration::from_millis(ms));
    }
    if let Some(scale) = args.time_scale {
        if !(scale.is_finite() && scale > 0.0) {
            bail!("--time-scale must be a number greater than zero, not {scale}");
        }
        let origin = args
            .clock_origin
            .map(Timestamp::from_micros)
            .unwrap_or_else(Timestamp::now_system);
        builder = builder.clock(ScaledClock::new(origin, scale));
    }
    // The route files' publisher first: a value the program's own
    // registration provides replaces it.
    let builder = subscriptions.provide(builder).await?;
    let host = kinds.register(builder, &services_dir, "worker")?.build();
    args.api.spawn_server(host.clone()).await?;
    let running = match subscriptions.start(&host).await {
        Ok(running) => running,
        Err(err) => {
            host.shutdown().await;
            drop(host);
            db::close(&*store).await?;
            return Err(err);
        }
    };
    if kinds.are_examples() {
        tracing::info!(
            db = %db,
            services = %services_dir.display(),
            host = %host.id(),
            "steadfast worker started (example kinds)"
        );
    } else {
        tracing::info!(db = %db, host = %host.id(), "steadfast worker started");
    }

    let reason = tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r.context("cannot listen for Ctrl-C")?;
            "interrupted"
        }
        r = terminated() => {
            r?;
            "terminated"
        }
        r = idle(&*store), if args.exit_when_idle => {
            r?;
            "idle"
        }
    };
    tracing::info!(reason, "steadfast worker stopping");
    // No new message is taken; those in hand reach the store first.
    running.stop().await;
    host.shutdown().await;
    drop(host);
    // The database file alone holds everything after a clean stop.
    db::close(&*store).await
}

/// Completes on SIGTERM (never on platforms without it).
async fn terminated() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        term.recv().await;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::future::pending().await
    }
}

/// Completes once no process is running and no suspended process waits for
/// a timer (processes that wait only for signals do not count), seen on two
/// looks in a row, [`IDLE_POLL`] apart.
///
/// One look ([`is_idle`]) is two reads, running processes and then
/// suspended ones, not one snapshot: a process that a signal or a timer made
/// due can be claimed by this worker between them, going from suspended to
/// running, and be seen by neither. With one look the worker then stopped
/// and handed it back unfinished (seen once in the test suite: the process
/// stayed runnable, with nobody left to run it). Claimed, it stays running
/// until its run ends, so the next look sees it, or sees what it became.
async fn idle(store: &dyn Backend) -> anyhow::Result<()> {
    let mut idle_before = false;
    loop {
        let idle_now = is_idle(store).await?;
        if idle_now && idle_before {
            return Ok(());
        }
        idle_before = idle_now;
        tokio::time::sleep(IDLE_POLL).await;
    }
}

/// One look at the store for [`idle`].
pub async fn is_idle(store: &dyn Backend) -> anyhow::Result<bool> {
    let running = store
        .list(&ListFilter {
            status: Some(Status::Running),
            limit: 1,
            ..ListFilter::default()
        })
        .await?;
    if !running.is_empty() {
        return Ok(false);
    }
    let mut after: Option<ProcessId> = None;
    loop {
        let page = store
            .list(&ListFilter {
                status: Some(Status::Suspended),
                after: after.clone(),
                limit: 1000,
                ..ListFilter::default()
            })
            .await?;
        // A schedule always has a next tick: it does not keep the worker busy.
        if page
            .iter()
            .filter_map(steadfast::Listed::record)
            .any(|r| r.wake_at.is_some() && r.kind != steadfast::schedule::SCHEDULE_KIND)
        {
            return Ok(false);
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(ProcessId::new(last.id())?),
            _ => return Ok(true),
        }
    }
}

/// Installs the Prometheus exporter as the process's `metrics` recorder
/// (before the host is built, so it sees everything the host reports) and
/// serves `GET /metrics` from it in the background.
async fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let handle = steadfast_dashboard::metrics::exporter()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    steadfast::describe_metrics();
    // Histograms are drained into their buckets on upkeep (and on render).
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    tracing::info!(%addr, "serving metrics at /metrics");
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::warn!(error = %err, "the metrics endpoint stopped");
        }
    });
    Ok(())
}
