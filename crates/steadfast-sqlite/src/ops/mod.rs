//! The write operations, each run on the writer thread inside its own
//! savepoint of the batch transaction, one file per area: `spawn`, `claim`,
//! `journal`, `signal`, `admin`. This file holds the checks they share.

pub(crate) mod admin;
pub(crate) mod claim;
pub(crate) mod events;
pub(crate) mod journal;
pub(crate) mod signal;
pub(crate) mod spawn;

use rusqlite::{Connection, OptionalExtension, params};
use steadfast_core::rules;
use steadfast_core::{Lease, PendingSignal, ProcessId, Status, StoreError, Timestamp};

use crate::rows::{Db, SELECT_PENDING, collect, first, signal_from_row};

fn micros(t: Timestamp) -> i64 {
    t.as_micros()
}

/// Loads a process's status, or `NotFound`.
fn status_of(
    conn: &Connection,
    id: &ProcessId,
) -> Result<(Status, Option<String>, Option<i64>), StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT status, owner, wake_at FROM processes WHERE id = ?1")
        .db()?;
    let row = first(&mut stmt, [id.as_str()], |r| {
        let status: String = r.get(0).db()?;
        let status = rules::parse_status(id.as_str(), &status)?;
        Ok((status, r.get(1).db()?, r.get(2).db()?))
    })?;
    row.ok_or_else(|| StoreError::NotFound(id.clone()))
}

/// Checks that `lease` still holds its process: it exists, is running, is
/// owned by the lease's host, at the lease's epoch. Returns whether a
/// cancellation is pending.
pub(crate) fn fence(conn: &Connection, lease: &Lease) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT cancel_requested FROM processes
             WHERE id = ?1 AND epoch = ?2 AND owner = ?3 AND status = 'running'",
        )
        .db()?;
    let cancel: Option<bool> = stmt
        .query_row(
            params![lease.id.as_str(), lease.epoch, lease.owner.as_str()],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    cancel.ok_or_else(|| StoreError::Fenced {
        id: lease.id.clone(),
        epoch: lease.epoch,
    })
}

fn pending_signals(conn: &Connection, id: &str) -> Result<Vec<PendingSignal>, StoreError> {
    let mut stmt = conn.prepare_cached(SELECT_PENDING).db()?;
    collect(&mut stmt, [id], |r| signal_from_row(r, id))
}
