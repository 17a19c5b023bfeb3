//! Worker child processes: this very binary started with the bench's hidden
//! `worker` subcommand ([`crate::Launch`]), killed with SIGKILL, reaped.

use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Launch;

/// A running bench worker child. Dropping it kills and reaps
/// the child if it still runs, so no worker outlives a failed benchmark.
pub struct Worker {
    child: Child,
    reaped: bool,
}

/// How a worker child is started.
pub struct WorkerSpec<'a> {
    /// How the binary is started.
    pub launch: &'a Launch,
    /// The store (a `--db` value).
    pub db: &'a str,
    /// The services folder (the run log is `step-runs.log` in it).
    pub services: &'a Path,
    /// `--concurrency`: processes run at once.
    pub concurrency: usize,
    /// `--exit-when-idle`.
    pub exit_when_idle: bool,
}

impl Worker {
    /// Starts a worker child of this binary.
    pub fn start(spec: &WorkerSpec<'_>) -> anyhow::Result<Worker> {
        let mut cmd = spec.launch.command();
        cmd.arg("worker")
            .arg("--store")
            .arg(spec.db)
            .arg("--services")
            .arg(spec.services)
            .arg("--concurrency")
            .arg(spec.concurrency.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if spec.exit_when_idle {
            cmd.arg("--exit-when-idle");
        }
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start a bench worker child ({})",
                spec.launch.exe.display()
            )
        })?;
        Ok(Worker {
            child,
            reaped: false,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn sigkill(&mut self) -> anyhow::Result<()> {
        if self.reaped {
            return Ok(());
        }
        self.child.kill().context("cannot SIGKILL the worker")?;
        self.child.wait().context("cannot reap the worker")?;
        self.reaped = true;
        Ok(())
    }

    /// Fails if the child has exited (a worker that died early would make
    /// every figure meaningless).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("cannot poll the worker")? {
            self.reaped = true;
            bail!("the worker child exited early: {status}");
        }
        Ok(())
    }

    /// Waits until the child exits by itself; kills it and fails after
    /// `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().context("cannot poll the worker")? {
                self.reaped = true;
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.sigkill()?;
                bail!("the worker child did not exit within {} s", limit.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.reaped {
            // Best effort: the child may have exited already.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
