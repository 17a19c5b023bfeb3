//! `steadfast worker` child processes: started from this very binary,
//! killed with SIGKILL, reaped.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `steadfast --db … worker` child. Dropping it kills and reaps
/// the child if it still runs, so no worker outlives a failed benchmark.
pub struct Worker {
    child: Child,
    reaped: bool,
}

/// How a worker child is started.
pub struct WorkerSpec<'a> {
    /// The `--db` value.
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
        let exe = std::env::current_exe().context("cannot find the steadfast binary")?;
        let mut cmd = Command::new(exe);
        // The workloads' kinds are among the examples built into this binary.
        cmd.arg("--examples")
            .arg("--db")
            .arg(spec.db)
            .arg("worker")
            .arg("--services")
            .arg(spec.services)
            .arg("--concurrency")
            .arg(spec.concurrency.to_string())
            .env_remove("STEADFAST_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if spec.exit_when_idle {
            cmd.arg("--exit-when-idle");
        }
        let child = cmd
            .spawn()
            .context("cannot start a `steadfast worker` child")?;
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
