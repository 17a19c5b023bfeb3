//! A lease holder's writes to its process: journal appends, suspending,
//! finishing (and telling a waiting parent).

use rusqlite::{Connection, OptionalExtension, params};
use steadfast_core::rules::{self, Recorded};
use steadfast_core::{
    Finish, JournalEntry, Lease, ProcessId, RowError, Status, StoreError, SuspendOutcome,
    Suspension, Timestamp,
};

use super::events::{self, Row};
use super::signal::insert_signal;
use super::{fence, micros, pending_signals};
use crate::rows::{Db, first, locations_json, shown};

/// [`steadfast_core::Store::append`].
pub(crate) fn append(conn: &Connection, lease: &Lease, e: &JournalEntry) -> Result<(), StoreError> {
    if fence(conn, lease)? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    let id = lease.id.as_str();
    let (file, line) = match &e.location {
        Some(loc) => (Some(loc.file.as_str()), Some(loc.line)),
        None => (None, None),
    };
    // One statement: a new entry is inserted, a scheduled one (a timer or a
    // wait) is completed in place, and any other entry of that name is left
    // as it was (no row changed): a duplicate.
    let written = conn
        .prepare_cached(
            "INSERT INTO journal (process_id, name, seq, kind, status, outcome, attempts,
                 started_at, finished_at, due_at, file, line, consumed_signal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (process_id, name) DO UPDATE SET status = excluded.status,
                 outcome = excluded.outcome, attempts = excluded.attempts,
                 finished_at = excluded.finished_at,
                 due_at = coalesce(excluded.due_at, journal.due_at),
                 file = coalesce(excluded.file, journal.file),
                 line = coalesce(excluded.line, journal.line),
                 consumed_signal = excluded.consumed_signal, seq = excluded.seq
             WHERE journal.status = 'scheduled'",
        )
        .db()?
        .execute(params![
            id,
            e.name,
            e.seq,
            e.kind.as_str(),
            e.status.as_str(),
            e.outcome,
            e.attempts,
            micros(e.started_at),
            e.finished_at.map(micros),
            e.due_at.map(micros),
            file,
            line,
            e.consumed_signal,
        ])
        .db()?;
    if written == 0 {
        return Err(StoreError::DuplicateEntry {
            id: lease.id.clone(),
            name: e.name.clone(),
        });
    }
    if let Some(signal) = e.consumed_signal {
        let at = e.finished_at.unwrap_or(e.started_at);
        let n = conn
            .prepare_cached(
                "UPDATE signals SET consumed_at = ?3
                 WHERE id = ?1 AND process_id = ?2 AND consumed_at IS NULL",
            )
            .db()?
            .execute(params![signal, id, micros(at)])
            .db()?;
        if n == 0 {
            return Err(StoreError::InvalidInput(format!(
                "journal entry {:?} of process {id:?} consumes signal {signal}, \
                 which is not an unconsumed signal of that process",
                e.name
            )));
        }
    }
    Ok(())
}

/// [`steadfast_core::Store::suspend`].
pub(crate) fn suspend(
    conn: &Connection,
    lease: &Lease,
    s: &Suspension,
) -> Result<SuspendOutcome, StoreError> {
    if fence(conn, lease)? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    if !s.waiting_for.is_empty() {
        let mut pending = pending_signals(conn, lease.id.as_str())?;
        pending.retain(|sig| s.waiting_for.contains(&sig.name));
        if !pending.is_empty() {
            return Ok(SuspendOutcome::SignalsPending(pending));
        }
    }
    let waiting_for = serde_json::to_string(&s.waiting_for)
        .map_err(|e| StoreError::InvalidInput(format!("waiting_for: {e}")))?;
    conn.prepare_cached(
        "UPDATE processes SET status = 'suspended', owner = NULL, wake_at = ?2,
             waiting_for = ?3, updated_at = ?4, parked_at = ?5
         WHERE id = ?1",
    )
    .db()?
    .execute(params![
        lease.id.as_str(),
        s.wake_at.map(micros),
        waiting_for,
        micros(s.now),
        locations_json(&s.parked_at)?,
    ])
    .db()?;
    Ok(SuspendOutcome::Suspended)
}

/// [`steadfast_core::Store::finish`].
pub(crate) fn finish(
    conn: &Connection,
    lease: &Lease,
    f: &Finish,
    now: Timestamp,
) -> Result<(), StoreError> {
    fence(conn, lease)?;
    let row = rules::finished(f);
    let parked: Vec<_> = row.parked.into_iter().cloned().collect();
    conn.prepare_cached(
        "UPDATE processes SET status = ?2, output = ?3, error = ?4, blocked_step = ?5,
             wake_at = NULL, owner = NULL, cancel_requested = 0, waiting_for = '[]',
             updated_at = ?6, parked_at = ?7
         WHERE id = ?1",
    )
    .db()?
    .execute(params![
        lease.id.as_str(),
        row.status.as_str(),
        row.output,
        row.error,
        row.blocked_step,
        micros(now),
        locations_json(&parked)?,
    ])
    .db()?;
    events::record(
        conn,
        Row::Id(lease.id.as_str()),
        Recorded::Finish(f),
        Some(lease.owner.as_str()),
        now,
    )?;
    notify_parent(conn, &lease.id, f, now)
}

/// The stored parent of process `id`, if any.
fn parent_of(conn: &Connection, id: &ProcessId) -> Result<Option<ProcessId>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT parent FROM processes WHERE id = ?1")
        .db()?;
    let parent = first(&mut stmt, [id.as_str()], |r| {
        let parent: Option<String> = r.get(0).map_err(|_| {
            StoreError::CorruptRow(RowError::new(
                "processes",
                id.as_str(),
                "parent",
                format!("the value {} does not decode", shown(r, 0)),
            ))
        })?;
        parent
            .map(|p| {
                ProcessId::new(p).map_err(|e| {
                    StoreError::CorruptRow(RowError::new(
                        "processes",
                        id.as_str(),
                        "parent",
                        e.to_string(),
                    ))
                })
            })
            .transpose()
    })?;
    Ok(parent.flatten())
}

/// Stores the end signal of child `id` (ended with `f`) for its parent, if
/// it has one that is still unfinished; wakes a suspended parent.
pub(crate) fn notify_parent(
    conn: &Connection,
    id: &ProcessId,
    f: &Finish,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(parent) = parent_of(conn, id)? else {
        return Ok(());
    };
    let Some(notice) = steadfast_core::child::end_notice(&parent, id, f) else {
        return Ok(());
    };
    // `None`: no such parent; `Some(None)`: its status does not decode (it
    // is still signalled, it may be repaired).
    let status: Option<Option<Status>> = conn
        .prepare_cached("SELECT status FROM processes WHERE id = ?1")
        .db()?
        .query_row([parent.as_str()], |r| {
            Ok(r.get::<_, String>(0).ok().and_then(|s| s.parse().ok()))
        })
        .optional()
        .db()?;
    match status {
        None => return Ok(()),
        Some(Some(status)) if status.is_finished() => return Ok(()),
        Some(_) => {}
    }
    insert_signal(conn, &parent, &notice.signal, &notice.payload, now, None)?;
    Ok(())
}
