//! `steadfast worker --subscribe ROUTES`: the subscriptions of route files
//! (TOML, or JSON for a name ending in `.json`) run on the worker's host.
//!
//! Every file is read and checked before the worker opens its store, so a
//! bad file stops the command with a message naming the file and what is
//! wrong, and nothing is started. The subscriptions start once the host is
//! built and stop (finishing the messages in hand) before it shuts down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use steadfast::{Host, HostBuilder};
use steadfast_bus::{RouteFile, RunningSubscription};

/// The route files of `--subscribe`, read and checked.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    files: Vec<(PathBuf, RouteFile)>,
}

impl Subscriptions {
    /// Reads and checks every file: each on its own (syntax, fields, routes)
    /// and together (subscription names unique across files, at most one
    /// `[publish]` table).
    pub(crate) fn load(paths: &[PathBuf]) -> anyhow::Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut names: BTreeMap<&str, &Path> = BTreeMap::new();
        let mut publish: Option<&Path> = None;
        for path in paths {
            files.push((path.clone(), RouteFile::load(path)?));
        }
        for (path, file) in &files {
            for s in &file.subscriptions {
                if let Some(first) = names.insert(&s.name, path) {
                    bail!(
                        "the route files {} and {} both have a subscription named {:?}; \
                         names must be unique across the files of one worker",
                        first.display(),
                        path.display(),
                        s.name
                    );
                }
            }
            if file.publish.is_some() {
                if let Some(first) = publish {
                    bail!(
                        "the route files {} and {} both have a [publish] table; \
                         a worker publishes to one broker",
                        first.display(),
                        path.display()
                    );
                }
                publish = Some(path);
            }
        }
        Ok(Subscriptions { files })
    }

    /// `builder` given a [`steadfast_bus::Publisher`] for the `[publish]`
    /// table, if a file has one (process functions that take a `Publisher`
    /// argument publish through it). A value the program provides itself
    /// in its registration wins, as it is provided after this one.
    pub(crate) async fn provide(&self, builder: HostBuilder) -> anyhow::Result<HostBuilder> {
        match self.files.iter().find(|(_, f)| f.publish.is_some()) {
            Some((path, file)) => {
                let publisher = file.publisher().await.with_context(|| {
                    format!("cannot connect the [publish] table of {}", path.display())
                })?;
                Ok(builder.provide(publisher))
            }
            None => Ok(builder),
        }
    }

    /// Connects and starts every subscription on `host`. When a broker
    /// cannot be reached, those already started are stopped and the error
    /// names the file.
    pub(crate) async fn start(&self, host: &Host) -> anyhow::Result<Running> {
        let mut running = Vec::new();
        for (path, file) in &self.files {
            match file.start(host).await {
                Ok(started) => running.extend(started),
                Err(err) => {
                    Running(running).stop().await;
                    return Err(err).with_context(|| {
                        format!("cannot start the subscriptions of {}", path.display())
                    });
                }
            }
        }
        for (path, file) in &self.files {
            for s in &file.subscriptions {
                tracing::info!(
                    subscription = %s.name,
                    source = %source(&s.source),
                    routes = s.routes.len(),
                    file = %path.display(),
                    "subscribed"
                );
            }
        }
        Ok(Running(running))
    }
}

/// Where a subscription's messages come from, for the log (no URL, so no
/// password).
fn source(config: &steadfast_bus::SourceConfig) -> String {
    match config {
        steadfast_bus::SourceConfig::Rabbitmq(o) => format!("rabbitmq queue {:?}", o.queue),
        steadfast_bus::SourceConfig::Jetstream(o) => {
            format!("jetstream stream {:?} consumer {:?}", o.stream, o.consumer)
        }
    }
}

/// The subscriptions a worker runs.
#[derive(Default)]
pub(crate) struct Running(Vec<RunningSubscription>);

impl Running {
    /// Stops receiving, lets the messages in hand finish, and logs each
    /// subscription's counts.
    pub(crate) async fn stop(self) {
        for r in self.0 {
            let name = r.name().to_owned();
            let stats = r.stats_handle();
            r.stop().await;
            let s = stats.snapshot();
            tracing::info!(
                subscription = %name,
                received = s.received,
                spawned = s.spawned,
                signalled = s.signalled,
                dead_lettered = s.dead_lettered,
                "subscription stopped"
            );
        }
    }
}
