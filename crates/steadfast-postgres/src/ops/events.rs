//! Each process's stored history besides its journal: one row per claim,
//! block, end, cancel, retry, rewind and continue-as-new, written by that
//! operation in its own transaction ([`record`]; claims write theirs in the
//! claim statement itself), read back by [`list`].

use sqlx::{PgConnection, PgPool, Row};
use steadfast_core::rules::{self, Recorded};
use steadfast_core::{EventKind, ProcessEvent, ProcessId, RowError, StoreError, Timestamp};

use super::micros;
use crate::clock::Now;
use crate::rows::{Db, small};

/// Writes the entry `op` records for process `id` (its epoch and generation
/// as stored now; 0 where a corrupt row has none), done by `host` at the
/// host's `now`. Call it inside the
/// operation's transaction, after the operation's own writes.
pub(crate) async fn record(
    conn: &mut PgConnection,
    id: &str,
    op: Recorded<'_>,
    host: Option<&str>,
    now: Now,
) -> Result<(), StoreError> {
    let (kind, detail) = rules::event(op);
    sqlx::query(
        "INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
         SELECT id, $2, $3, $4, COALESCE(epoch, 0), COALESCE(generation, 0), $5
         FROM processes WHERE id = $1",
    )
    .bind(id)
    .bind(micros(now.host()))
    .bind(kind.as_str())
    .bind(host)
    .bind(detail)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

/// [`steadfast_core::StoreAdmin::events`].
pub(crate) async fn list(pool: &PgPool, id: &ProcessId) -> Result<Vec<ProcessEvent>, StoreError> {
    let known: Option<i32> = sqlx::query_scalar("SELECT 1 FROM processes WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .db()?;
    if known.is_none() {
        return Err(StoreError::NotFound(id.clone()));
    }
    let rows = sqlx::query(
        "SELECT id, at, kind, host, epoch, generation, detail FROM events
         WHERE process_id = $1 ORDER BY id",
    )
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .db()?;
    rows.iter()
        .map(|r| {
            let row: i64 = r.try_get(0).db()?;
            let kind: String = r.try_get(2).db()?;
            let generation: i64 = r.try_get(5).db()?;
            Ok(ProcessEvent {
                id: row,
                at: Timestamp::from_micros(r.try_get(1).db()?),
                kind: EventKind::parse(&kind).ok_or_else(|| {
                    StoreError::CorruptRow(RowError::new(
                        "events",
                        row.to_string(),
                        "kind",
                        format!("{kind:?} is not a kind of event"),
                    ))
                })?,
                host: r.try_get(3).db()?,
                epoch: r.try_get(4).db()?,
                generation: small(generation, "events", &row.to_string(), "generation")?,
                detail: r.try_get(6).db()?,
            })
        })
        .collect()
}
