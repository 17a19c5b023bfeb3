//! A process's signals: sending one (and storing a child's end signal for
//! its parent), a wait rejecting one it cannot decode (fenced by the lease),
//! an operator discarding a pending one, and tools listing them all.

use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use steadfast_core::rules::{self, Action};
use steadfast_core::{
    Lease, NewSignal, ProcessId, SignalRecord, SignalSent, SignalState, StoreError, Timestamp,
    check_message_id,
};

use super::{fence, lock_status, micros, notify};
use crate::clock::{Now, db_now};
use crate::reader::exists;
use crate::rows::{Db, SIGNAL_RECORD_COLUMNS, signal_record_from_row};

/// Settles a pending signal as `disposition` with `reason`; whether a
/// pending signal of that process was found.
async fn settle(
    conn: &mut PgConnection,
    id: &ProcessId,
    signal: i64,
    disposition: SignalState,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE signals SET consumed_at = $3, disposition = $4, reason = $5
         WHERE id = $1 AND process_id = $2 AND consumed_at IS NULL",
    )
    .bind(signal)
    .bind(id.as_str())
    .bind(now.as_micros())
    .bind(disposition.as_str())
    .bind(reason)
    .execute(conn)
    .await
    .db()?
    .rows_affected();
    Ok(n > 0)
}

/// [`steadfast_core::Store::reject_signal`].
pub(crate) async fn reject(
    conn: &mut PgConnection,
    lease: &Lease,
    signal: i64,
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    fence(conn, lease).await?;
    if settle(
        conn,
        &lease.id,
        signal,
        SignalState::Rejected,
        Some(reason),
        now,
    )
    .await?
    {
        Ok(())
    } else {
        Err(rules::signal_not_pending(&lease.id, signal))
    }
}

/// [`steadfast_core::StoreAdmin::discard_signal`].
pub(crate) async fn discard(
    conn: &mut PgConnection,
    id: &ProcessId,
    signal: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    // Locking the process row orders the discard with the appends (which
    // lock it too) that could consume the signal.
    lock_status(conn, id, crate::clock::Now::new(now, false)).await?;
    if settle(conn, id, signal, SignalState::Discarded, None, now).await? {
        return Ok(());
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {SIGNAL_RECORD_COLUMNS} FROM signals WHERE id = $1 AND process_id = $2"
    )))
    .bind(signal)
    .bind(id.as_str())
    .fetch_optional(conn)
    .await
    .db()?;
    match row {
        None => Err(rules::no_such_signal(id, signal)),
        Some(row) => {
            let record = signal_record_from_row(&row)?;
            Err(rules::signal_already_settled(id, signal, record.state))
        }
    }
}

/// [`steadfast_core::StoreAdmin::signals`].
pub(crate) async fn list(pool: &PgPool, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {SIGNAL_RECORD_COLUMNS} FROM signals WHERE process_id = $1 ORDER BY id"
    )))
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .db()?;
    if rows.is_empty() {
        // An empty result needs telling apart from an unknown id.
        exists(pool, id).await?;
    }
    rows.iter().map(signal_record_from_row).collect()
}

/// Inserts a signal and wakes the process if it is suspended.
pub(crate) async fn insert_signal(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    name: &str,
    payload: &str,
    now: Now,
    traceparent: Option<&str>,
) -> Result<i64, StoreError> {
    let signal_id: i64 = sqlx::query_scalar(
        "INSERT INTO signals (process_id, name, payload, sent_at, traceparent)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(payload)
    .bind(micros(now.host()))
    .bind(traceparent)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    let woken = sqlx::query(concat!(
        "UPDATE processes SET wake_at = t.now, updated_at = $2
         FROM (SELECT COALESCE($3::bigint, ",
        db_now!(),
        ") AS now) AS t
         WHERE id = $1 AND status = 'suspended' AND (wake_at IS NULL OR wake_at > t.now)"
    ))
    .bind(id.as_str())
    .bind(micros(now.host()))
    .bind(now.bind())
    .execute(&mut *conn)
    .await
    .db()?
    .rows_affected();
    if woken > 0 {
        notify(conn, channel).await?;
    }
    Ok(signal_id)
}

/// [`steadfast_core::Store::send_signal`]: a signal from a message
/// ([`signal_message`]) or not ([`signal`]).
pub(crate) async fn send(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    sent: &NewSignal,
    now: Now,
) -> Result<SignalSent, StoreError> {
    match &sent.message_id {
        None => signal(conn, channel, id, sent, now)
            .await
            .map(SignalSent::Stored),
        Some(message_id) => signal_message(conn, channel, id, sent, now, message_id).await,
    }
}

/// [`steadfast_core::Store::signal`].
pub(crate) async fn signal(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    sent: &NewSignal,
    now: Now,
) -> Result<i64, StoreError> {
    let (status, _, _) = lock_status(conn, id, now).await?;
    rules::check(Action::Signal, id, status)?;
    insert_signal(
        conn,
        channel,
        id,
        &sent.name,
        &sent.payload,
        now,
        sent.traceparent.as_deref(),
    )
    .await
}

/// [`steadfast_core::Store::signal_message`]: a signal that remembers the
/// message it came from, so a re-delivery is not stored twice. Runs in the
/// writer's savepoint. The process row is locked first, so two stores
/// sending the same message to one process are serialized and the second
/// finds the first's signal (the unique index `signals_message_id` backs
/// it).
pub(crate) async fn signal_message(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    sent: &NewSignal,
    now: Now,
    message_id: &str,
) -> Result<SignalSent, StoreError> {
    check_message_id(message_id)?;
    lock_status(conn, id, now).await?;
    let earlier: Option<i64> =
        sqlx::query_scalar("SELECT id FROM signals WHERE process_id = $1 AND message_id = $2")
            .bind(id.as_str())
            .bind(message_id)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    if let Some(earlier) = earlier {
        return Ok(SignalSent::Duplicate(earlier));
    }
    let stored = signal(conn, channel, id, sent, now).await?;
    sqlx::query("UPDATE signals SET message_id = $2 WHERE id = $1")
        .bind(stored)
        .bind(message_id)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(SignalSent::Stored(stored))
}
