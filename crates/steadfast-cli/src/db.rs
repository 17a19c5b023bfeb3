//! Opening the store named by `--db`: a SQLite file path, `sqlite:PATH`,
//! `sqlite://PATH`, or a `postgres://…` URL (with an optional `schema=NAME`
//! query parameter choosing the schema, default `steadfast`). The parsing
//! and opening are the library's (`steadfast::open_with`); this module maps
//! the CLI's modes onto it and words a missing database for the CLI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use steadfast::{Backend, OpenError, OpenMode, SqliteStore};

pub use steadfast::Location;

/// How a command opens the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Only reads (`list`, `show`, `check`): the database must exist and
    /// be of this version; no file is created, migrated or changed.
    ReadOnly,
    /// Reads, and writes when asked to (the dashboard): opened like
    /// [`Open::ReadOnly`] until its first write.
    OnDemand,
    /// Changes existing processes: the database must exist.
    Existing,
    /// A missing database is created (workers, spawn, the demo).
    Create,
}

impl Open {
    fn mode(self) -> OpenMode {
        match self {
            Open::ReadOnly => OpenMode::ReadOnly,
            Open::OnDemand => OpenMode::WriteOnDemand,
            Open::Existing => OpenMode::Existing,
            Open::Create => OpenMode::Create,
        }
    }
}

/// Parses a `--db` value.
pub fn location(db: &str) -> anyhow::Result<Location> {
    Ok(Location::parse(db)?)
}

/// Opens the store named by a `--db` value.
pub async fn open(db: &str, mode: Open) -> anyhow::Result<(Arc<dyn Backend>, Location)> {
    let location = location(db)?;
    let store = location.open(mode.mode()).await.map_err(friendly)?;
    Ok((store, location))
}

/// Opens the SQLite store at `path`, with friendly errors.
pub async fn open_path(path: &Path, mode: Open) -> anyhow::Result<SqliteStore> {
    steadfast::open_sqlite(path, mode.mode())
        .await
        .map_err(friendly)
}

/// A missing database says how to make one.
fn friendly(err: OpenError) -> anyhow::Error {
    match err {
        OpenError::NoDatabase(path) => anyhow::anyhow!(
            "no database at {} (run `steadfast demo` or a worker first)",
            path.display()
        ),
        err => err.into(),
    }
}

/// Closes the store cleanly: for SQLite, queued writes are committed and
/// the WAL is checkpointed into the database file, so that the file alone
/// holds everything.
pub async fn close(store: &dyn Backend) -> anyhow::Result<()> {
    if let Err(err) = store.close().await {
        bail!("cannot close the store: {err}");
    }
    Ok(())
}

/// The default folder of the simulated services: `<db file stem>-services`
/// next to a SQLite database (`steadfast.db` → `steadfast-services`), or
/// `./steadfast-services` for PostgreSQL.
pub fn services_for(location: &Location) -> PathBuf {
    match location {
        Location::Sqlite(path) => services_dir(path),
        Location::Postgres(_) => PathBuf::from("steadfast-services"),
    }
}

/// The default services folder next to the SQLite database at `db_path`.
pub fn services_dir(db_path: &Path) -> PathBuf {
    let stem = db_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "steadfast".to_owned());
    let parent = db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(format!("{stem}-services"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() -> anyhow::Result<()> {
        let file = |p: &str| Location::Sqlite(PathBuf::from(p));
        assert_eq!(location("a.db")?, file("a.db"));
        assert_eq!(location("sqlite:a.db")?, file("a.db"));
        assert_eq!(location("sqlite:///tmp/a.db")?, file("/tmp/a.db"));
        assert_eq!(location("SQLITE://rel/a.db")?, file("rel/a.db"));
        let url = location("postgres://u:pw@h/db?schema=app&sslmode=disable")?;
        assert_eq!(url.schema().as_deref(), Some("app"));
        assert_eq!(
            url.to_string(),
            "postgres://u:***@h/db?schema=app&sslmode=disable"
        );
        assert_eq!(
            location("postgres://h/db")?.schema().as_deref(),
            Some("steadfast")
        );
        assert!(location("postgres://h/db?schem=app").is_err());
        assert!(location("sqlite:").is_err());
        // Not a store: refused, not taken for a file named `mysql:`.
        assert!(location("mysql://h/db").is_err());
        Ok(())
    }

    #[test]
    fn services_next_to_the_db() {
        assert_eq!(
            services_dir(Path::new("/x/steadfast.db")),
            PathBuf::from("/x/steadfast-services")
        );
        assert_eq!(
            services_dir(Path::new("app.db")),
            PathBuf::from("./app-services")
        );
    }
}
