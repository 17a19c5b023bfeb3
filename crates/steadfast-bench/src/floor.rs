//! The store's floor: the latency of one durable commit on the same
//! medium, sampled between W1's processes (interleaved, so the floor and
//! the processes see the same moment of a noisy machine).
//!
//! * SQLite: one 4 KiB write at offset 0 of a file next to the database,
//!   then `fdatasync` (`File::sync_data`).
//! * PostgreSQL: one autocommitted single-row `INSERT` into a scratch table
//!   in the run's schema, over a connection with the store's settings
//!   (same URL, `synchronous_commit = on`); the table is dropped at the end.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use steadfast::PostgresUrl;

/// The scratch table of the PostgreSQL floor.
const TABLE: &str = "steadfast_bench_floor";

/// A floor sampler; see the module docs.
pub enum Floor {
    /// fdatasync of a 4 KiB block.
    Fsync {
        /// The probe file.
        file: Arc<File>,
        /// Its path (removed at the end).
        path: PathBuf,
    },
    /// An autocommitted single-row INSERT.
    Insert {
        /// The connection.
        conn: Box<PgConnection>,
        /// The quoted, schema-qualified scratch table.
        table: String,
    },
}

impl Floor {
    /// A sampler writing a probe file in `dir` (the database's directory).
    pub async fn fsync(dir: &Path) -> anyhow::Result<Floor> {
        let path = dir.join(format!("floor-probe-{}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut floor = Floor::Fsync {
            file: Arc::new(file),
            path,
        };
        // One untimed round allocates the block.
        floor.sample().await?;
        Ok(floor)
    }

    /// A sampler inserting into a scratch table of the schema `url` names.
    pub async fn insert(url: &str) -> anyhow::Result<Floor> {
        let parsed = PostgresUrl::parse(url)?;
        let Some(schema) = parsed.schema() else {
            bail!("the floor's URL names no schema: {parsed}");
        };
        let options = PgConnectOptions::from_str(&without_schema(url))
            .with_context(|| format!("cannot read {parsed}"))?
            .application_name("steadfast-bench floor");
        let mut conn = PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot connect to {parsed}"))?;
        let table = format!("\"{}\".{TABLE}", schema.replace('"', "\"\""));
        sqlx::raw_sql(AssertSqlSafe(format!(
            "SET synchronous_commit = on; \
             CREATE TABLE IF NOT EXISTS {table} \
               (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text NOT NULL)"
        )))
        .execute(&mut conn)
        .await
        .context("cannot create the floor's scratch table")?;
        let mut floor = Floor::Insert {
            conn: Box::new(conn),
            table,
        };
        floor.sample().await?;
        Ok(floor)
    }

    /// What one sample is, for reports.
    pub fn describe(&self) -> &'static str {
        match self {
            Floor::Fsync { .. } => "4 KiB write + fdatasync next to the database",
            Floor::Insert { .. } => {
                "autocommitted single-row INSERT into a scratch table on the same server"
            }
        }
    }

    /// One durable commit; its latency.
    pub async fn sample(&mut self) -> anyhow::Result<Duration> {
        match self {
            Floor::Fsync { file, .. } => {
                let file = Arc::clone(file);
                tokio::task::spawn_blocking(move || {
                    let block = [0x5a_u8; 4096];
                    let started = Instant::now();
                    file.write_all_at(&block, 0)?;
                    file.sync_data()?;
                    Ok::<_, std::io::Error>(started.elapsed())
                })
                .await
                .context("the fsync probe panicked")?
                .context("cannot write and fdatasync the probe file")
            }
            Floor::Insert { conn, table } => {
                let started = Instant::now();
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} (note) VALUES ($1)"
                )))
                .bind("one durable commit, the floor of a durable write")
                .execute(&mut **conn)
                .await
                .context("cannot insert into the floor's scratch table")?;
                Ok(started.elapsed())
            }
        }
    }

    /// Removes the probe file or drops the scratch table.
    pub async fn finish(self) -> anyhow::Result<()> {
        match self {
            Floor::Fsync { path, file } => {
                drop(file);
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))
            }
            Floor::Insert { mut conn, table } => {
                sqlx::query(AssertSqlSafe(format!("DROP TABLE {table}")))
                    .execute(&mut *conn)
                    .await
                    .context("cannot drop the floor's scratch table")?;
                conn.close()
                    .await
                    .context("cannot close the floor's connection")
            }
        }
    }
}

/// `url` without its `schema` query parameter (the driver does not know it).
pub fn without_schema(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("schema=") && !pair.is_empty())
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_schema_parameter() {
        assert_eq!(without_schema("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            without_schema("postgres://h/db?schema=x"),
            "postgres://h/db"
        );
        assert_eq!(
            without_schema("postgres://h/db?sslmode=disable&schema=x&application_name=a"),
            "postgres://h/db?sslmode=disable&application_name=a"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn fsync_floor_samples_and_cleans_up() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut floor = Floor::fsync(dir.path()).await?;
        assert!(floor.describe().contains("fdatasync"));
        for _ in 0..3 {
            floor.sample().await?;
        }
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        floor.finish().await?;
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }
}
