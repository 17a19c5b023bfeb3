//! Opening the store named by `--db`: a SQLite file path, `sqlite:PATH`,
//! `sqlite://PATH`, or a `postgres://…` URL (with an optional `schema=NAME`
//! query parameter choosing the schema, default `steadfast`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use steadfast::{Backend, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, StoreError};

/// Whether opening may create a missing database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// The database must exist (commands that only read or change
    /// existing processes).
    Existing,
    /// A missing database is created (workers, spawn, the demo).
    Create,
}

/// Where a `--db` value points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database: the connection URL and the schema.
    Postgres {
        /// The URL without the `schema` parameter.
        url: String,
        /// The schema holding Steadfast's tables.
        schema: String,
    },
}

/// Parses a `--db` value.
pub fn location(db: &str) -> anyhow::Result<Location> {
    if strip_prefix_ci(db, "postgres://").is_some()
        || strip_prefix_ci(db, "postgresql://").is_some()
    {
        let (url, schema) = split_schema(db);
        return Ok(Location::Postgres {
            url,
            schema: schema.unwrap_or_else(|| PostgresOptions::default().schema),
        });
    }
    let path = if let Some(rest) = strip_prefix_ci(db, "sqlite://") {
        rest
    } else if let Some(rest) = strip_prefix_ci(db, "sqlite:") {
        rest
    } else {
        db
    };
    if path.is_empty() {
        bail!("--db {db:?} names no file");
    }
    Ok(Location::Sqlite(PathBuf::from(path)))
}

/// Takes a `schema=NAME` parameter out of a PostgreSQL URL's query.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("schema=") {
            Some(name) => {
                schema = Some(name.to_owned());
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
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
        Location::Postgres { url, schema } => {
            let options = PostgresOptions::default()
                .schema(schema.clone())
                .create_schema(mode == Open::Create);
            match PostgresStore::connect_with(url, options).await {
                Ok(store) => Arc::new(store),
                Err(err @ (StoreError::NotSteadfast { .. } | StoreError::NewerSchema { .. })) => {
                    return Err(err.into());
                }
                Err(err) => {
                    return Err(anyhow::Error::new(err)).with_context(|| {
                        format!(
                            "cannot open the Steadfast schema {schema:?} at {}",
                            redact(url)
                        )
                    });
                }
            }
        }
    };
    Ok((store, location))
}

/// A URL with its password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Opens the SQLite store at `path`, with friendly errors.
pub async fn open_path(path: &Path, mode: Open) -> anyhow::Result<SqliteStore> {
    if mode == Open::Existing && !path.exists() {
        bail!(
            "no database at {} (run `steadfast demo` or a worker first)",
            path.display()
        );
    }
    let options = SqliteOptions::default().create_if_missing(mode == Open::Create);
    match SqliteStore::open_with(path, options).await {
        Ok(store) => Ok(store),
        // These already name the file and say what is wrong.
        Err(err @ (StoreError::NotSteadfast { .. } | StoreError::NewerSchema { .. })) => {
            Err(err.into())
        }
        Err(err) => Err(anyhow::Error::new(err))
            .with_context(|| format!("cannot open the Steadfast database {}", path.display())),
    }
}

/// The default folder of the simulated services: `<db file stem>-services`
/// next to a SQLite database (`steadfast.db` → `steadfast-services`), or
/// `./steadfast-services` for PostgreSQL.
pub fn services_for(location: &Location) -> PathBuf {
    match location {
        Location::Sqlite(path) => services_dir(path),
        Location::Postgres { .. } => PathBuf::from("steadfast-services"),
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
        assert_eq!(
            location("postgres://u:pw@h/db?schema=app&sslmode=disable")?,
            Location::Postgres {
                url: "postgres://u:pw@h/db?sslmode=disable".to_owned(),
                schema: "app".to_owned()
            }
        );
        assert_eq!(
            location("postgres://h/db")?,
            Location::Postgres {
                url: "postgres://h/db".to_owned(),
                schema: "steadfast".to_owned()
            }
        );
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
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
