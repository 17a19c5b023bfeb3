//! Opening the store named by `--db`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use steadfast::{SqliteOptions, SqliteStore, StoreError};

/// Whether opening may create a missing database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// The database must exist (commands that only read or change
    /// existing processes).
    Existing,
    /// A missing database is created (workers, spawn, the demo).
    Create,
}

/// The file path named by a `--db` value: a path, `sqlite:PATH` or
/// `sqlite://PATH`. PostgreSQL URLs are recognised and refused.
pub fn path(db: &str) -> anyhow::Result<PathBuf> {
    let lower = db.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        bail!("the PostgreSQL store is not part of this build yet (use a SQLite file path)");
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
    Ok(PathBuf::from(path))
}

/// `s` without `prefix` (ASCII case-insensitive), if it starts with it.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Opens the store named by a `--db` value.
pub async fn open(db: &str, mode: Open) -> anyhow::Result<(SqliteStore, PathBuf)> {
    let path = path(db)?;
    let store = open_path(&path, mode).await?;
    Ok((store, path))
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
/// next to the database (`steadfast.db` → `steadfast-services`).
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
        assert_eq!(path("a.db")?, PathBuf::from("a.db"));
        assert_eq!(path("sqlite:a.db")?, PathBuf::from("a.db"));
        assert_eq!(path("sqlite:///tmp/a.db")?, PathBuf::from("/tmp/a.db"));
        assert_eq!(path("SQLITE://rel/a.db")?, PathBuf::from("rel/a.db"));
        let err = path("postgres://localhost/db").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("PostgreSQL store is not part of this build")));
        assert!(path("postgresql://x").is_err());
        assert!(path("sqlite:").is_err());
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
