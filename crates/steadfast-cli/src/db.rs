//! Opening the store named by `--db`: a SQLite file path, `sqlite:PATH`,
//! `sqlite://PATH`, or a `postgres://…` URL (with an optional `schema=NAME`
//! query parameter choosing the schema, default `steadfast`; the URL is
//! checked by the same parser `PostgresStore::connect` uses).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use steadfast::{
    Access, Backend, PostgresOptions, PostgresStore, PostgresUrl, SqliteOptions, SqliteStore,
    StoreError, redact,
};

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

/// Where a `--db` value points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL's `schema` parameter names the schema).
    Postgres(PostgresUrl),
}

impl Location {
    /// The PostgreSQL schema, `steadfast` unless the URL names another.
    pub fn schema(url: &PostgresUrl) -> String {
        url.schema()
            .map(str::to_owned)
            .unwrap_or_else(|| PostgresOptions::default().schema)
    }
}

/// Parses a `--db` value.
pub fn location(db: &str) -> anyhow::Result<Location> {
    if strip_prefix_ci(db, "postgres://").is_some()
        || strip_prefix_ci(db, "postgresql://").is_some()
    {
        return Ok(Location::Postgres(PostgresUrl::parse(db)?));
    }
    let path = if let Some(rest) = strip_prefix_ci(db, "sqlite://") {
        rest
    } else if let Some(rest) = strip_prefix_ci(db, "sqlite:") {
        rest
    } else {
        db
    };
    if path.is_empty() {
        bail!("--db {:?} names no file", redact(db));
    }
    Ok(Location::Sqlite(PathBuf::from(path)))
}

/// `s` without `prefix` (ASCII case-insensitive), if it starts with it.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Opens the store named by a `--db` value.
pub async fn open(db: &str, mode: Open) -> anyhow::Result<(Arc<dyn Backend>, Location)> {
    let location = location(db)?;
    let store: Arc<dyn Backend> = match &location {
        Location::Sqlite(path) => Arc::new(open_path(path, mode).await?),
        Location::Postgres(url) => {
            // Reads never create or upgrade anything (the dashboard's
            // first action cannot upgrade a PostgreSQL schema either:
            // workers do).
            let reads_only = matches!(mode, Open::ReadOnly | Open::OnDemand);
            let options = PostgresOptions::default()
                .create_schema(mode == Open::Create)
                .upgrade_schema(!reads_only);
            match PostgresStore::connect_with(url.as_str(), options).await {
                Ok(store) => Arc::new(store),
                Err(
                    err @ (StoreError::NotSteadfast { .. }
                    | StoreError::NewerSchema { .. }
                    | StoreError::ReadOnly { .. }
                    | StoreError::InvalidInput(_)),
                ) => {
                    return Err(err.into());
                }
                Err(err) => {
                    return Err(anyhow::Error::new(err)).with_context(|| {
                        format!(
                            "cannot open the Steadfast schema {:?} at {url}",
                            Location::schema(url)
                        )
                    });
                }
            }
        }
    };
    Ok((store, location))
}

/// Opens the SQLite store at `path`, with friendly errors.
pub async fn open_path(path: &Path, mode: Open) -> anyhow::Result<SqliteStore> {
    if mode != Open::Create && !path.exists() {
        bail!(
            "no database at {} (run `steadfast demo` or a worker first)",
            path.display()
        );
    }
    let access = match mode {
        Open::ReadOnly => Access::ReadOnly,
        Open::OnDemand => Access::WriteOnDemand,
        Open::Existing | Open::Create => Access::ReadWrite,
    };
    let options = SqliteOptions::default()
        .create_if_missing(mode == Open::Create)
        .access(access);
    match SqliteStore::open_with(path, options).await {
        Ok(store) => Ok(store),
        // These already name the file and say what is wrong.
        Err(
            err @ (StoreError::NotSteadfast { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::Corrupt(_)),
        ) => Err(err.into()),
        Err(err) => Err(anyhow::Error::new(err))
            .with_context(|| format!("cannot open the Steadfast database {}", path.display())),
    }
}

/// Closes the store cleanly: for SQLite, queued writes are committed and
/// the WAL is checkpointed into the database file, so that the file alone
/// holds everything.
pub async fn close(store: &dyn Backend) -> anyhow::Result<()> {
    if let Some(sqlite) = store.as_any().downcast_ref::<SqliteStore>() {
        sqlite
            .close()
            .await
            .with_context(|| format!("cannot close {}", sqlite.path().display()))?;
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
        match location("postgres://u:pw@h/db?schema=app&sslmode=disable")? {
            Location::Postgres(url) => {
                assert_eq!(url.schema(), Some("app"));
                assert_eq!(
                    url.to_string(),
                    "postgres://u:***@h/db?schema=app&sslmode=disable"
                );
            }
            other => panic!("not postgres: {other:?}"),
        }
        match location("postgres://h/db")? {
            Location::Postgres(url) => assert_eq!(Location::schema(&url), "steadfast"),
            other => panic!("not postgres: {other:?}"),
        }
        assert!(location("postgres://h/db?schem=app").is_err());
        assert!(location("sqlite:").is_err());
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
