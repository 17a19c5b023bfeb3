//! Writes made by operators and tools rather than lease holders: cancel,
//! retry, rewinding a process to a step, purging old finished processes,
//! saving function sources and subscription reports; and reading back the writer's pragmas. All run
//! on the writer thread.

use rusqlite::{Connection, OptionalExtension, params};
use steadfast_core::rules::{self, Action, CancelEffect, Recorded};
use steadfast_core::{
    Finish, FunctionSource, ProcessId, Status, StoreError, SubscriptionReport, Timestamp,
    check_subscription_report,
};

use super::events::{self, Row};
use super::journal::notify_parent;
use super::{micros, status_of};
use crate::rows::{Db, collect};

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
    let (status, owner, wake_at) = status_of(conn, id)?;
    let unexpired = wake_at.is_some_and(|w| w > now.as_micros());
    rules::check_rewind(id, status, owner.is_some(), unexpired)?;
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
    let dropped = dropped as u64;
    events::record(
        conn,
        Row::Id(id.as_str()),
        Recorded::Rewind { step, dropped },
        None,
        now,
    )?;
    Ok(dropped)
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
        "DELETE FROM events WHERE process_id IN (SELECT id FROM temp.purged)",
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

/// [`steadfast_core::StoreAdmin::save_subscription`]: one upsert by name
/// and host that keeps a stored row with a later `updated_at`.
pub(crate) fn save_subscription(
    conn: &Connection,
    report: &SubscriptionReport,
) -> Result<(), StoreError> {
    check_subscription_report(report)?;
    // The check keeps every counter within i64.
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO subscriptions (name, host, source, received, routed, dead_lettered, lag,
             lag_read_at, last_dead_letter_reason, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (name, host) DO UPDATE SET source = excluded.source,
             received = excluded.received, routed = excluded.routed,
             dead_lettered = excluded.dead_lettered, lag = excluded.lag,
             lag_read_at = excluded.lag_read_at,
             last_dead_letter_reason = excluded.last_dead_letter_reason,
             updated_at = excluded.updated_at
         WHERE subscriptions.updated_at <= excluded.updated_at",
    )
    .db()?
    .execute(params![
        report.name,
        report.host,
        report.source,
        int(report.received),
        int(report.routed),
        int(report.dead_lettered),
        report.lag.map(int),
        report.lag_read_at.map(|t| t.as_micros()),
        report.last_dead_letter_reason,
        report.updated_at.as_micros(),
    ])
    .db()?;
    Ok(())
}

/// [`steadfast_core::Store::cancel`]: the process, then its unfinished
/// descendants (by stored parent).
pub(crate) fn cancel(
    conn: &Connection,
    id: &ProcessId,
    now: Timestamp,
) -> Result<Status, StoreError> {
    let (status, owner, wake_at) = status_of(conn, id)?;
    rules::check(Action::Cancel, id, status)?;
    let after = cancel_one(conn, id, None, status, owner, wake_at, now)?;
    let descendants: Vec<String> = {
        let mut stmt = conn
            .prepare_cached(
                "WITH RECURSIVE tree(id) AS (
                     SELECT id FROM processes WHERE parent = ?1
                     UNION
                     SELECT p.id FROM processes p JOIN tree t ON p.parent = t.id
                 )
                 SELECT id FROM tree ORDER BY id",
            )
            .db()?;
        collect(&mut stmt, [id.as_str()], |r| Ok(r.get::<_, String>(0).ok()))?
            .into_iter()
            .flatten()
            .collect()
    };
    for child in descendants {
        let Ok(child) = ProcessId::new(child) else {
            continue;
        };
        // A descendant that does not decode is left as it is; the others
        // are cancelled.
        let Ok((status, owner, wake_at)) = status_of(conn, &child) else {
            continue;
        };
        if !status.is_finished() {
            cancel_one(conn, &child, Some(id), status, owner, wake_at, now)?;
        }
    }
    Ok(after)
}

/// Cancels one unfinished process: at once when no live lease holds it
/// (telling its parent), otherwise by requesting it. `requested_on` is the
/// ancestor the cancel was asked for, when it cascaded.
fn cancel_one(
    conn: &Connection,
    id: &ProcessId,
    requested_on: Option<&ProcessId>,
    status: Status,
    owner: Option<String>,
    wake_at: Option<i64>,
    now: Timestamp,
) -> Result<Status, StoreError> {
    let unexpired = wake_at.is_some_and(|w| w > micros(now));
    let effect = rules::cancel_effect(status, owner.is_some(), unexpired);
    let recorded = Recorded::Cancel {
        effect,
        requested_on,
    };
    if effect == CancelEffect::Request {
        conn.prepare_cached(
            "UPDATE processes SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
        )
        .db()?
        .execute(params![id.as_str(), micros(now)])
        .db()?;
        events::record(conn, Row::Id(id.as_str()), recorded, None, now)?;
        return Ok(Status::Running);
    }
    conn.prepare_cached(
        "UPDATE processes SET status = 'cancelled', wake_at = NULL, owner = NULL,
             cancel_requested = 0, waiting_for = '[]', parked_at = '[]', updated_at = ?2
         WHERE id = ?1",
    )
    .db()?
    .execute(params![id.as_str(), micros(now)])
    .db()?;
    events::record(conn, Row::Id(id.as_str()), recorded, None, now)?;
    notify_parent(conn, id, &Finish::Cancelled, now)?;
    Ok(Status::Cancelled)
}

/// [`steadfast_core::Store::retry`].
pub(crate) fn retry(conn: &Connection, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
    let (status, _, _) = status_of(conn, id)?;
    rules::check(Action::Retry, id, status)?;
    let recorded = Recorded::Retry { from: status };
    conn.prepare_cached(
        "UPDATE processes SET status = 'running', wake_at = ?2, error = NULL,
             blocked_step = NULL, output = NULL, owner = NULL, cancel_requested = 0,
             waiting_for = '[]', parked_at = '[]', updated_at = ?2
         WHERE id = ?1",
    )
    .db()?
    .execute(params![id.as_str(), micros(now)])
    .db()?;
    events::record(conn, Row::Id(id.as_str()), recorded, None, now)
}

/// Reads `journal_mode` and `synchronous` back from the writer connection.
pub(crate) fn pragmas(conn: &Connection) -> Result<(String, i64), StoreError> {
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .db()?;
    let sync: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .db()?;
    Ok((mode, sync))
}
