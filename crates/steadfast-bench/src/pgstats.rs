//! What a PostgreSQL run cost the server, read beside the store through a
//! connection of its own: commits of the database (`pg_stat_database`)
//! and the CPU time of the store's backends (`/proc/PID/stat` of the
//! backends whose `application_name` is the run's; only when the server
//! runs on this machine).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use steadfast::PostgresUrl;

use crate::cpu;
use crate::floor::without_schema;

/// A connection reading the server's statistics.
pub struct PgStats {
    conn: PgConnection,
    application_name: String,
}

/// One reading.
#[derive(Clone, Debug, Default)]
pub struct PgSnapshot {
    /// `pg_stat_database.xact_commit` of the database.
    pub xact_commit: i64,
    /// CPU time of each backend of the run, by pid (`None` when its
    /// `/proc` entry is not visible: the server runs elsewhere).
    pub backends: HashMap<i32, Option<Duration>>,
}

impl PgStats {
    /// Connects to the server of `url` (its schema is not used); the run's
    /// backends are those named `application_name`.
    pub async fn connect(url: &str, application_name: &str) -> anyhow::Result<PgStats> {
        let parsed = PostgresUrl::parse(url)?;
        let options = PgConnectOptions::from_str(&without_schema(url))
            .with_context(|| format!("cannot read {parsed}"))?
            .application_name("steadfast-bench statistics");
        let conn = PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot connect to {parsed}"))?;
        Ok(PgStats {
            conn,
            application_name: application_name.to_owned(),
        })
    }

    /// Reads the counters now.
    pub async fn snapshot(&mut self) -> anyhow::Result<PgSnapshot> {
        let xact_commit: i64 = sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut self.conn)
        .await
        .context("cannot read pg_stat_database")?;
        let pids: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
                .bind(&self.application_name)
                .fetch_all(&mut self.conn)
                .await
                .context("cannot read pg_stat_activity")?;
        let backends = pids
            .into_iter()
            .map(|pid| (pid, u32::try_from(pid).ok().and_then(cpu::pid_cpu)))
            .collect();
        Ok(PgSnapshot {
            xact_commit,
            backends,
        })
    }

    /// Closes the connection.
    pub async fn close(self) {
        // Best effort: the server drops the session anyway.
        let _ = self.conn.close().await;
    }
}

impl PgSnapshot {
    /// Commits since `before`.
    pub fn commits_since(&self, before: &PgSnapshot) -> i64 {
        self.xact_commit - before.xact_commit
    }

    /// CPU time the run's backends used since `before` (a backend that was
    /// not there before counts from its start); `None` when a backend's
    /// CPU time cannot be read.
    pub fn backend_cpu_since(&self, before: &PgSnapshot) -> Option<Duration> {
        let mut total = Duration::ZERO;
        for (pid, now) in &self.backends {
            let now = (*now)?;
            let then = before
                .backends
                .get(pid)
                .copied()
                .flatten()
                .unwrap_or_default();
            total += now.saturating_sub(then);
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(commits: i64, backends: &[(i32, Option<u64>)]) -> PgSnapshot {
        PgSnapshot {
            xact_commit: commits,
            backends: backends
                .iter()
                .map(|(pid, ms)| (*pid, ms.map(Duration::from_millis)))
                .collect(),
        }
    }

    #[test]
    fn deltas() {
        let before = snapshot(100, &[(1, Some(500)), (2, Some(100))]);
        // Backend 2 is gone, 3 is new.
        let after = snapshot(160, &[(1, Some(800)), (3, Some(50))]);
        assert_eq!(after.commits_since(&before), 60);
        assert_eq!(
            after.backend_cpu_since(&before),
            Some(Duration::from_millis(350))
        );
        let remote = snapshot(160, &[(1, None)]);
        assert_eq!(remote.backend_cpu_since(&before), None);
    }
}
