//! `steadfast worker --subscribe` in a binary built without the `bus`
//! feature: the flag is refused, saying how to get it.

use std::path::PathBuf;

use anyhow::bail;
use steadfast::{Host, HostBuilder};

/// No subscriptions: this binary has no broker clients.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions;

impl Subscriptions {
    /// Refuses any route file.
    pub(crate) fn load(paths: &[PathBuf]) -> anyhow::Result<Self> {
        if let Some(path) = paths.first() {
            bail!(
                "cannot subscribe to {}: this binary was built without the `bus` feature \
                 of steadfast-cli (on by default), which brings the RabbitMQ and JetStream clients",
                path.display()
            );
        }
        Ok(Subscriptions)
    }

    /// `builder` unchanged.
    pub(crate) async fn provide(&self, builder: HostBuilder) -> anyhow::Result<HostBuilder> {
        Ok(builder)
    }

    /// Starts nothing.
    pub(crate) async fn start(&self, _host: &Host) -> anyhow::Result<Running> {
        Ok(Running)
    }
}

/// No running subscriptions.
#[derive(Default)]
pub(crate) struct Running;

impl Running {
    /// Nothing to stop.
    pub(crate) async fn stop(self) {}
}
