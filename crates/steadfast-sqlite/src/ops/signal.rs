//! A process's signals: sending one (and storing a child's end signal for
//! its parent), a wait rejecting one it cannot decode (fenced by the lease),
//! an operator discarding a pending one, and tools listing them all.

use rusqlite::{Connection, OptionalExtension, params};
use steadfast_core::rules::{self, Action};
use steadfast_core::{
    Lease, NewSignal, ProcessId, SignalRecord, SignalSent, SignalState, StoreError, Timestamp,
    check_message_id,
};

use super::{fence, micros, status_of};
use crate::reader::{exists, snapshot};
use crate::rows::{Db, SIGNAL_RECORD_COLUMNS, collect, signal_record_from_row};

/// Settles a pending signal as `disposition` with `reason`; whether a
/// pending signal of that process was found.
fn settle(
    conn: &Connection,
    id: &ProcessId,
    signal: i64,
    disposition: SignalState,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE signals SET consumed_at = ?3, disposition = ?4, reason = ?5
             WHERE id = ?1 AND process_id = ?2 AND consumed_at IS NULL",
        )
        .db()?
        .execute(params![
            signal,
            id.as_str(),
            now.as_micros(),
            disposition.as_str(),
            reason
        ])
        .db()?;
    Ok(n > 0)
}

/// [`steadfast_core::Store::reject_signal`].
pub(crate) fn reject(
    conn: &Connection,
    lease: &Lease,
    signal: i64,
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    fence(conn, lease)?;
    if settle(
        conn,
        &lease.id,
        signal,
        SignalState::Rejected,
        Some(reason),
        now,
    )? {
        Ok(())
    } else {
        Err(rules::signal_not_pending(&lease.id, signal))
    }
}

/// [`steadfast_core::StoreAdmin::discard_signal`].
pub(crate) fn discard(
    conn: &Connection,
    id: &ProcessId,
    signal: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    exists(conn, id)?;
    let found = conn
        .prepare_cached(&format!(
            "SELECT {SIGNAL_RECORD_COLUMNS} FROM signals WHERE id = ?1 AND process_id = ?2"
        ))
        .db()?
        .query_row(params![signal, id.as_str()], |row| {
            Ok(signal_record_from_row(row))
        })
        .optional()
        .db()?
        .transpose()?;
    match found {
        None => Err(rules::no_such_signal(id, signal)),
        Some(record) if record.state != SignalState::Pending => {
            Err(rules::signal_already_settled(id, record.id, record.state))
        }
        Some(_) => {
            settle(conn, id, signal, SignalState::Discarded, None, now)?;
            Ok(())
        }
    }
}

/// [`steadfast_core::StoreAdmin::signals`].
pub(crate) fn list(conn: &Connection, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError> {
    snapshot(conn, |conn| {
        exists(conn, id)?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {SIGNAL_RECORD_COLUMNS} FROM signals WHERE process_id = ?1 ORDER BY id"
            ))
            .db()?;
        collect(&mut stmt, [id.as_str()], signal_record_from_row)
    })
}

/// Inserts a signal and wakes the process if it is suspended.
pub(crate) fn insert_signal(
    conn: &Connection,
    id: &ProcessId,
    name: &str,
    payload: &str,
    now: Timestamp,
    traceparent: Option<&str>,
) -> Result<i64, StoreError> {
    let signal_id: i64 = conn
        .prepare_cached(
            "INSERT INTO signals (process_id, name, payload, sent_at, traceparent)
             VALUES (?1, ?2, ?3, ?4, ?5)
             RETURNING id",
        )
        .db()?
        .query_row(
            params![id.as_str(), name, payload, micros(now), traceparent],
            |r| r.get(0),
        )
        .db()?;
    conn.prepare_cached(
        "UPDATE processes SET wake_at = ?2, updated_at = ?2
         WHERE id = ?1 AND status = 'suspended' AND (wake_at IS NULL OR wake_at > ?2)",
    )
    .db()?
    .execute(params![id.as_str(), micros(now)])
    .db()?;
    Ok(signal_id)
}

/// [`steadfast_core::Store::send_signal`]: a signal from a message
/// ([`signal_message`]) or not ([`signal`]).
pub(crate) fn send(
    conn: &Connection,
    id: &ProcessId,
    sent: &NewSignal,
) -> Result<SignalSent, StoreError> {
    match &sent.message_id {
        None => signal(conn, id, sent).map(SignalSent::Stored),
        Some(message_id) => signal_message(conn, id, sent, message_id),
    }
}

/// [`steadfast_core::Store::signal`].
pub(crate) fn signal(
    conn: &Connection,
    id: &ProcessId,
    sent: &NewSignal,
) -> Result<i64, StoreError> {
    let (status, _, _) = status_of(conn, id)?;
    rules::check(Action::Signal, id, status)?;
    insert_signal(
        conn,
        id,
        &sent.name,
        &sent.payload,
        sent.now,
        sent.traceparent.as_deref(),
    )
}

/// [`steadfast_core::Store::signal_message`]: a signal that remembers the
/// message it came from, so a re-delivery is not stored twice. Runs on the
/// writer thread, in the batch's savepoint: the look-up, the insert and the
/// id are one atomic step (the unique index `signals_message_id` backs it).
pub(crate) fn signal_message(
    conn: &Connection,
    id: &ProcessId,
    sent: &NewSignal,
    message_id: &str,
) -> Result<SignalSent, StoreError> {
    check_message_id(message_id)?;
    let earlier: Option<i64> = conn
        .prepare_cached("SELECT id FROM signals WHERE process_id = ?1 AND message_id = ?2")
        .db()?
        .query_row(params![id.as_str(), message_id], |r| r.get(0))
        .optional()
        .db()?;
    if let Some(earlier) = earlier {
        return Ok(SignalSent::Duplicate(earlier));
    }
    let stored = signal(conn, id, sent)?;
    conn.prepare_cached("UPDATE signals SET message_id = ?2 WHERE id = ?1")
        .db()?
        .execute(params![stored, message_id])
        .db()?;
    Ok(SignalSent::Stored(stored))
}
