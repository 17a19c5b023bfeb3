//! Opening the store a `--db` value names: a SQLite file path,
//! `sqlite:PATH`, `sqlite://PATH`, or a `postgres://…` URL (checked by
//! the parser `PostgresStore::connect` uses). The bench always creates what
//! is missing: its stores are fresh.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use steadfast::{Backend, PostgresStore, PostgresUrl, SqliteStore, redact};

/// Where a `--db` value points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An embedded SQLite file (or, for the bench's `--db`, a directory).
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresUrl),
}

/// Parses a `--db` value.
pub fn location(db: &str) -> anyhow::Result<Location> {
    if strip_prefix_ci(db, "postgres://").is_some()
        || strip_prefix_ci(db, "postgresql://").is_some()
    {
        return Ok(Location::Postgres(PostgresUrl::parse(db)?));
    }
    let path = strip_prefix_ci(db, "sqlite://")
        .or_else(|| strip_prefix_ci(db, "sqlite:"))
        .unwrap_or(db);
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

/// Opens (creating it when missing) the store `db` names.
pub async fn open(db: &str) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match location(db)? {
        Location::Sqlite(path) => Arc::new(
            SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        Location::Postgres(url) => Arc::new(
            PostgresStore::connect(url.as_str())
                .await
                .with_context(|| format!("cannot open {url}"))?,
        ),
    })
}

/// Closes the store cleanly (SQLite: commits queued writes and
/// checkpoints the WAL into the database file).
pub async fn close(store: &dyn Backend) -> anyhow::Result<()> {
    if let Some(sqlite) = store.as_any().downcast_ref::<SqliteStore>() {
        sqlite
            .close()
            .await
            .with_context(|| format!("cannot close {}", sqlite.path().display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() -> anyhow::Result<()> {
        assert_eq!(location("a.db")?, Location::Sqlite("a.db".into()));
        assert_eq!(location("SQLite:b.db")?, Location::Sqlite("b.db".into()));
        assert_eq!(
            location("sqlite:///c.db")?,
            Location::Sqlite("/c.db".into())
        );
        assert!(matches!(
            location("postgres://u@h/db?schema=x")?,
            Location::Postgres(_)
        ));
        assert!(location("sqlite:").is_err());
        assert!(location("postgres://h/db?nope=1").is_err());
        Ok(())
    }
}
