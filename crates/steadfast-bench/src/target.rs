//! Where the benchmark's stores go, and a fresh store per workload.
//!
//! * No `--db`: every store is `bench.db` in a new temporary directory,
//!   removed afterwards.
//! * `--db DIR` / `--db sqlite:DIR`: DIR is a directory (created when
//!   missing); every store is `DIR/steadfast-bench-<label>-<unix ms>/bench.db`,
//!   removed afterwards unless `--keep`. An existing regular file is refused,
//!   so no run continues on another run's data and runs stay comparable.
//! * `--db postgres://…`: every store is a fresh schema
//!   `steadfast_bench_<label>_<unix ms>` in that database (left in place:
//!   drop it with `DROP SCHEMA … CASCADE`). When the URL names a schema
//!   (`?schema=NAME`), that schema is shared by every workload instead:
//!   process ids carry a unique prefix and figures are count deltas.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use steadfast::{Backend, Durability, SqliteOptions, SqliteStore, redact};
use tempfile::TempDir;

use crate::store::{self, Location};

/// Where the stores of a benchmark run go.
#[derive(Debug)]
pub enum Target {
    /// SQLite files in fresh directories, under `dir` or the temp dir.
    Sqlite {
        /// The directory named by `--db`, if given.
        dir: Option<PathBuf>,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The `postgres://` URL.
        url: String,
    },
}

/// A store that no other run has written to (see the module docs).
pub struct Fresh {
    /// The store, for the bench process's own host or client.
    pub store: Arc<dyn Backend>,
    /// The `--db` value that points the bench's worker children at it.
    pub db_arg: String,
    /// A directory on the database's file system for the worker's
    /// services folder and the fsync probe.
    pub work_dir: PathBuf,
    /// Prepended to every process id of the run.
    pub prefix: String,
    /// PostgreSQL: the `application_name` of the store's connections (and
    /// the workers'), which finds the run's server backends.
    pub application_name: Option<String>,
    /// Removes what was created; declared last so it runs after the store
    /// is dropped.
    _cleanup: Cleanup,
}

/// What to remove once a [`Fresh`] store is dropped.
enum Cleanup {
    /// A temporary directory (removes itself).
    Temp(#[allow(dead_code)] TempDir),
    /// A directory created under `--db`.
    Remove(PathBuf),
    /// Nothing (`--keep`, PostgreSQL).
    Keep,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Remove(dir) = self
            && let Err(err) = std::fs::remove_dir_all(&*dir)
        {
            eprintln!("warning: could not remove {}: {err}", dir.display());
        }
    }
}

impl Target {
    /// The target named by `--db` (`None`: not given on the command line).
    pub fn parse(db: Option<&str>) -> anyhow::Result<Target> {
        let Some(db) = db else {
            return Ok(Target::Sqlite { dir: None });
        };
        let dir = match store::location(db)? {
            Location::Postgres(_) => {
                return Ok(Target::Postgres { url: db.to_owned() });
            }
            Location::Sqlite(dir) => dir,
        };
        if dir.exists() && !dir.is_dir() {
            bail!(
                "--db {} is a file; `steadfast bench` creates a fresh database per workload \
                 so runs stay comparable, so --db must name a directory to create them in",
                dir.display()
            );
        }
        Ok(Target::Sqlite { dir: Some(dir) })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn store_name(&self) -> &'static str {
        match self {
            Target::Sqlite { .. } => "sqlite",
            Target::Postgres { .. } => "postgres",
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite { dir: None } => {
                "sqlite, a fresh bench.db in a new temporary directory per workload".to_owned()
            }
            Target::Sqlite { dir: Some(dir) } => format!(
                "sqlite, a fresh database per workload under {}",
                dir.display()
            ),
            Target::Postgres { url } => format!(
                "postgres, a fresh schema per workload (unless the URL names one) in {}",
                redact(url)
            ),
        }
    }

    /// The directory whose file system the databases live on (created
    /// when `--db` names a missing one).
    pub fn probe_dir(&self) -> anyhow::Result<PathBuf> {
        match self {
            Target::Sqlite { dir: Some(dir) } => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                Ok(dir.clone())
            }
            _ => Ok(std::env::temp_dir()),
        }
    }

    /// A fresh store for the run `label` ("w1", "w5-2workers" …).
    /// `durability` applies to SQLite.
    pub async fn fresh(
        &self,
        label: &str,
        durability: Durability,
        keep: bool,
    ) -> anyhow::Result<Fresh> {
        match self {
            Target::Sqlite { dir } => {
                let (work_dir, cleanup) = match dir {
                    None => {
                        let temp = tempfile::Builder::new()
                            .prefix(&format!("steadfast-bench-{label}-"))
                            .tempdir()
                            .context("cannot create a temporary directory")?;
                        (temp.path().to_path_buf(), Cleanup::Temp(temp))
                    }
                    Some(dir) => {
                        let work = dir.join(format!("steadfast-bench-{label}-{}", unix_ms()));
                        std::fs::create_dir_all(&work)
                            .with_context(|| format!("cannot create {}", work.display()))?;
                        let cleanup = if keep {
                            Cleanup::Keep
                        } else {
                            Cleanup::Remove(work.clone())
                        };
                        (work, cleanup)
                    }
                };
                let path = work_dir.join("bench.db");
                let options = SqliteOptions::default().durability(durability);
                let store = SqliteStore::open_with(&path, options)
                    .await
                    .with_context(|| format!("cannot create {}", path.display()))?;
                Ok(Fresh {
                    store: Arc::new(store),
                    db_arg: format!("sqlite:{}", path.display()),
                    work_dir,
                    prefix: format!("{label}-"),
                    application_name: None,
                    _cleanup: cleanup,
                })
            }
            Target::Postgres { url } => {
                let (url, application_name) =
                    with_application_name(&fresh_schema(url, label), label);
                let store = store::open(&url).await?;
                let temp = tempfile::Builder::new()
                    .prefix(&format!("steadfast-bench-{label}-"))
                    .tempdir()
                    .context("cannot create a temporary directory")?;
                Ok(Fresh {
                    store,
                    db_arg: url,
                    work_dir: temp.path().to_path_buf(),
                    prefix: format!("{label}-{}-", unix_ms()),
                    application_name,
                    _cleanup: Cleanup::Temp(temp),
                })
            }
        }
    }
}

/// `url` with a fresh `schema=steadfast_bench_<label>_<unix ms>` parameter,
/// unless it names a schema already.
fn fresh_schema(url: &str, label: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.split('&').any(|pair| pair.starts_with("schema=")) {
        return url.to_owned();
    }
    let schema = format!("steadfast_bench_{}_{}", label.replace('-', "_"), unix_ms());
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}schema={schema}")
}

/// `url` with `application_name=steadfast-bench-<pid>-<label>` unless it
/// names one already; and the name its connections carry.
fn with_application_name(url: &str, label: &str) -> (String, Option<String>) {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    if let Some(given) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("application_name="))
    {
        return (url.to_owned(), Some(given.to_owned()));
    }
    let name = format!("steadfast-bench-{}-{label}", std::process::id());
    let separator = if url.contains('?') { '&' } else { '?' };
    (
        format!("{url}{separator}application_name={name}"),
        Some(name),
    )
}

/// Milliseconds since the Unix epoch (for unique names).
fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Whether `path` is a directory the bench created.
    fn is_bench_dir(path: &Path) -> bool {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("steadfast-bench-"))
    }

    #[test]
    fn parses_targets() -> anyhow::Result<()> {
        assert!(matches!(Target::parse(None)?, Target::Sqlite { dir: None }));
        let dir = tempfile::tempdir()?;
        let given = format!("sqlite:{}", dir.path().display());
        assert!(matches!(
            Target::parse(Some(&given))?,
            Target::Sqlite { dir: Some(_) }
        ));
        let file = dir.path().join("app.db");
        std::fs::write(&file, b"")?;
        let err = Target::parse(Some(&file.display().to_string()))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("must name a directory")));
        let pg = Target::parse(Some("postgres://u:secret@localhost/db"))?;
        assert_eq!(pg.store_name(), "postgres");
        assert!(!pg.describe().contains("secret"));
        let fresh = fresh_schema("postgres://h/db?sslmode=disable", "w5-2workers");
        assert!(
            fresh
                .starts_with("postgres://h/db?sslmode=disable&schema=steadfast_bench_w5_2workers_")
        );
        assert_eq!(
            fresh_schema("postgres://h/db?schema=mine", "w1"),
            "postgres://h/db?schema=mine"
        );
        let (named, name) = with_application_name("postgres://h/db?schema=s", "w2");
        let name = name.unwrap_or_default();
        assert!(name.starts_with("steadfast-bench-") && name.ends_with("-w2"));
        assert_eq!(
            named,
            format!("postgres://h/db?schema=s&application_name={name}")
        );
        assert_eq!(
            with_application_name("postgres://h/db?application_name=mine", "w2"),
            (
                "postgres://h/db?application_name=mine".to_owned(),
                Some("mine".to_owned())
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn fresh_directories_are_removed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = Target::Sqlite {
            dir: Some(dir.path().to_path_buf()),
        };
        let fresh = target.fresh("t1", Durability::Full, false).await?;
        assert!(is_bench_dir(&fresh.work_dir));
        assert!(fresh.work_dir.join("bench.db").exists());
        assert!(fresh.db_arg.starts_with("sqlite:"));
        let work = fresh.work_dir.clone();
        drop(fresh);
        assert!(!work.exists());
        Ok(())
    }
}
