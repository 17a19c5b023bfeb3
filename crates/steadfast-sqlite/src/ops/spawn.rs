//! Starting processes: spawning one, and continuing one as a new generation
//! under the same id.

use rusqlite::{Connection, params};
use steadfast_core::rules::Recorded;
use steadfast_core::{Lease, NewProcess, ProcessId, SpawnOutcome, StoreError, Timestamp};

use super::events::{self, Row};
use super::micros;
use crate::rows::{Db, SELECT_PROCESS, first, process_from_row};

/// [`steadfast_core::Store::spawn`].
pub(crate) fn spawn(conn: &Connection, p: &NewProcess) -> Result<SpawnOutcome, StoreError> {
    let existing = {
        let mut stmt = conn.prepare_cached(SELECT_PROCESS).db()?;
        first(&mut stmt, [p.id.as_str()], process_from_row)?
    };
    if let Some(record) = existing {
        if record.kind == p.kind && record.input == p.input {
            return Ok(SpawnOutcome::Existing(Box::new(record)));
        }
        return Err(StoreError::SpawnConflict {
            id: p.id.clone(),
            existing_kind: record.kind,
        });
    }
    conn.prepare_cached(
        "INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at,
             waiting_for, epoch, cancel_requested, version, parent, traceparent)
         VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?4, '[]', 0, 0, ?5, ?6, ?7)",
    )
    .db()?
    .execute(params![
        p.id.as_str(),
        p.kind,
        p.input,
        micros(p.now),
        p.version,
        p.parent.as_ref().map(ProcessId::as_str),
        p.traceparent,
    ])
    .db()?;
    Ok(SpawnOutcome::Created)
}

/// [`steadfast_core::Store::continue_as_new`].
pub(crate) fn continue_as_new(
    conn: &Connection,
    lease: &Lease,
    input: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    if super::fence(conn, lease)? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    let id = lease.id.as_str();
    events::record(
        conn,
        Row::Id(id),
        Recorded::ContinueAsNew,
        Some(lease.owner.as_str()),
        now,
    )?;
    conn.prepare_cached(
        "INSERT INTO generations (process_id, generation, input, ended_at)
         SELECT id, generation, input, ?2 FROM processes WHERE id = ?1",
    )
    .db()?
    .execute(params![id, now.as_micros()])
    .db()?;
    for sql in [
        "INSERT INTO journal_history (process_id, generation, name, seq, kind, status, outcome,
             attempts, started_at, finished_at, due_at, file, line, consumed_signal)
         SELECT j.process_id, p.generation, j.name, j.seq, j.kind, j.status, j.outcome,
             j.attempts, j.started_at, j.finished_at, j.due_at, j.file, j.line, j.consumed_signal
         FROM journal j JOIN processes p ON p.id = j.process_id WHERE j.process_id = ?1",
        "DELETE FROM journal WHERE process_id = ?1",
    ] {
        conn.prepare_cached(sql).db()?.execute(params![id]).db()?;
    }
    conn.prepare_cached(
        "UPDATE processes SET generation = generation + 1, input = ?2, status = 'running',
             owner = NULL, wake_at = ?3, waiting_for = '[]', parked_at = '[]', output = NULL,
             error = NULL, blocked_step = NULL, updated_at = ?3
         WHERE id = ?1",
    )
    .db()?
    .execute(params![id, input, now.as_micros()])
    .db()?;
    Ok(())
}
