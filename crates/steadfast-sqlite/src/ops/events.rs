//! Each process's stored history besides its journal: one row per claim,
//! block, end, cancel, retry, rewind and continue-as-new, written by that
//! operation in its own savepoint ([`record`]), read back by [`list`].

use rusqlite::{Connection, params};
use steadfast_core::rules::{self, Recorded};
use steadfast_core::{EventKind, ProcessEvent, ProcessId, RowError, StoreError, Timestamp};

use super::micros;
use crate::rows::{Db, collect, shown};

/// Which process row an entry is for.
#[derive(Clone, Copy)]
pub(crate) enum Row<'a> {
    /// By id.
    Id(&'a str),
    /// By `rowid` (a row whose id may not even be text).
    Rowid(i64),
}

/// Writes the entry `op` records for a process (its epoch and generation as
/// stored now), done by `host` at `now`. Call it inside the operation's
/// savepoint, after the operation's own writes.
pub(crate) fn record(
    conn: &Connection,
    row: Row<'_>,
    op: Recorded<'_>,
    host: Option<&str>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (kind, detail) = rules::event(op);
    // A row whose epoch or generation does not decode (parked by a claim)
    // still gets its entry; the numbers then read as 0.
    let sql = match row {
        Row::Id(_) => {
            "INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
             SELECT id, ?2, ?3, ?4, ifnull(CAST(epoch AS INTEGER), 0),
                 ifnull(CAST(generation AS INTEGER), 0), ?5
             FROM processes WHERE id = ?1"
        }
        Row::Rowid(_) => {
            "INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
             SELECT id, ?2, ?3, ?4, ifnull(CAST(epoch AS INTEGER), 0),
                 ifnull(CAST(generation AS INTEGER), 0), ?5
             FROM processes WHERE rowid = ?1"
        }
    };
    let key: rusqlite::types::Value = match row {
        Row::Id(id) => id.to_owned().into(),
        Row::Rowid(rowid) => rowid.into(),
    };
    conn.prepare_cached(sql)
        .db()?
        .execute(params![key, micros(now), kind.as_str(), host, detail])
        .db()?;
    Ok(())
}

/// [`steadfast_core::StoreAdmin::events`].
pub(crate) fn list(conn: &Connection, id: &ProcessId) -> Result<Vec<ProcessEvent>, StoreError> {
    let known = conn
        .prepare_cached("SELECT 1 FROM processes WHERE id = ?1")
        .db()?
        .exists([id.as_str()])
        .db()?;
    if !known {
        return Err(StoreError::NotFound(id.clone()));
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, at, kind, host, epoch, generation, detail FROM events
             WHERE process_id = ?1 ORDER BY id",
        )
        .db()?;
    collect(&mut stmt, [id.as_str()], |r| {
        let row: i64 = r.get(0).db()?;
        let corrupt = |column: &str, index: usize| {
            StoreError::CorruptRow(RowError::new(
                "events",
                row.to_string(),
                column,
                format!("the value {} does not decode", shown(r, index)),
            ))
        };
        let kind: String = r.get(2).map_err(|_| corrupt("kind", 2))?;
        Ok(ProcessEvent {
            id: row,
            at: Timestamp::from_micros(r.get(1).map_err(|_| corrupt("at", 1))?),
            kind: EventKind::parse(&kind).ok_or_else(|| corrupt("kind", 2))?,
            host: r.get(3).map_err(|_| corrupt("host", 3))?,
            epoch: r.get(4).map_err(|_| corrupt("epoch", 4))?,
            generation: r.get(5).map_err(|_| corrupt("generation", 5))?,
            detail: r.get(6).map_err(|_| corrupt("detail", 6))?,
        })
    })
}
