//! Writes made by tools rather than hosts: rewinding a process to a step and
//! purging old finished processes. Both run on the writer thread.

use rusqlite::{Connection, OptionalExtension, params};
use steadfast_core::{FunctionSource, Lease, ProcessId, Status, StoreError, Timestamp};

use crate::rows::Db;

/// How many finished processes one purge statement deletes at most, so a
/// large purge does not hold the write lock for long.
pub(crate) const PURGE_CHUNK: i64 = 5_000;

/// [`steadfast_core::StoreAdmin::rewind`].
pub(crate) fn rewind(
    conn: &Connection,
    id: &ProcessId,
    step: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let row: Option<(String, Option<String>, Option<i64>)> = conn
        .prepare_cached("SELECT status, owner, wake_at FROM processes WHERE id = ?1")
        .db()?
        .query_row(params![id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .db()?;
    let Some((status, owner, wake_at)) = row else {
        return Err(StoreError::NotFound(id.clone()));
    };
    let status: Status = status
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("processes row {id:?}: {e}")))?;
    if status == Status::Running && owner.is_some() && wake_at.is_some_and(|w| w > now.as_micros())
    {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "rewind",
            expected: "not held by a live host (suspended, blocked, finished, or with an expired lease)",
        });
    }
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM journal WHERE process_id = ?1 AND name = ?2")
        .db()?
        .query_row(params![id.as_str(), step], |r| r.get(0))
        .optional()
        .db()?;
    let Some(seq) = seq else {
        return Err(StoreError::InvalidInput(format!(
            "process {id:?} has no journal entry named {step:?}"
        )));
    };
    conn.prepare_cached(
        "UPDATE signals SET consumed_at = NULL
         WHERE id IN (SELECT consumed_signal FROM journal
                      WHERE process_id = ?1 AND seq >= ?2 AND consumed_signal IS NOT NULL)",
    )
    .db()?
    .execute(params![id.as_str(), seq])
    .db()?;
    let dropped = conn
        .prepare_cached("DELETE FROM journal WHERE process_id = ?1 AND seq >= ?2")
        .db()?
        .execute(params![id.as_str(), seq])
        .db()?;
    conn.prepare_cached(
        "UPDATE processes SET status = 'running', wake_at = ?2, owner = NULL,
             epoch = epoch + 1, cancel_requested = 0, output = NULL, error = NULL,
             blocked_step = NULL, waiting_for = '[]', parked_at = '[]', updated_at = ?2
         WHERE id = ?1",
    )
    .db()?
    .execute(params![id.as_str(), now.as_micros()])
    .db()?;
    Ok(dropped as u64)
}

/// [`steadfast_core::StoreAdmin::purge`], one chunk: returns how many
/// processes it deleted (fewer than [`PURGE_CHUNK`] means done).
pub(crate) fn purge_chunk(
    conn: &Connection,
    finished_before: Timestamp,
) -> Result<u64, StoreError> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS purged (id TEXT PRIMARY KEY); DELETE FROM temp.purged;",
    )
    .db()?;
    conn.prepare_cached(
        "INSERT INTO temp.purged (id)
         SELECT id FROM processes
         WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < ?1
         LIMIT ?2",
    )
    .db()?
    .execute(params![finished_before.as_micros(), PURGE_CHUNK])
    .db()?;
    for table in [
        "DELETE FROM journal WHERE process_id IN (SELECT id FROM temp.purged)",
        "DELETE FROM signals WHERE process_id IN (SELECT id FROM temp.purged)",
        "DELETE FROM journal_history WHERE process_id IN (SELECT id FROM temp.purged)",
        "DELETE FROM generations WHERE process_id IN (SELECT id FROM temp.purged)",
    ] {
        conn.prepare_cached(table).db()?.execute([]).db()?;
    }
    let deleted = conn
        .prepare_cached("DELETE FROM processes WHERE id IN (SELECT id FROM temp.purged)")
        .db()?
        .execute([])
        .db()?;
    Ok(deleted as u64)
}

/// [`steadfast_core::StoreAdmin::save_sources`].
pub(crate) fn save_sources(
    conn: &Connection,
    sources: &[FunctionSource],
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO sources (file, name, first_line, text) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (file, name) DO UPDATE SET first_line = excluded.first_line,
                 text = excluded.text
             WHERE first_line <> excluded.first_line OR text <> excluded.text",
        )
        .db()?;
    for s in sources {
        stmt.execute(params![s.file, s.name, s.first_line, s.text])
            .db()?;
    }
    Ok(())
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
