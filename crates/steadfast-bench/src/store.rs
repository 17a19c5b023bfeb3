//! Opening the store a `--db` value names, through `steadfast::open`: a
//! SQLite file path, `sqlite:PATH`, `sqlite://PATH`, or a `postgres://…`
//! URL. The bench always creates what is missing: its stores are fresh.

use std::sync::Arc;

use anyhow::Context;
use steadfast::{Backend, redact};

pub use steadfast::Location;

/// Parses a `--db` value.
pub fn location(db: &str) -> anyhow::Result<Location> {
    Ok(Location::parse(db)?)
}

/// Opens (creating it when missing) the store `db` names.
pub async fn open(db: &str) -> anyhow::Result<Arc<dyn Backend>> {
    steadfast::open(db)
        .await
        .with_context(|| format!("cannot open {}", redact(db)))
}

/// Closes the store cleanly (SQLite: commits queued writes and
/// checkpoints the WAL into the database file).
pub async fn close(store: &dyn Backend) -> anyhow::Result<()> {
    store.close().await.context("cannot close the store")
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
