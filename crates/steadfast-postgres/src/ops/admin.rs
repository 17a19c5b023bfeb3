//! Writes made by operators and tools rather than lease holders: cancel,
//! retry and rewinding a process to a step (run by the writer task, in a
//! savepoint like every write), purging old finished processes (in chunks,
//! each its own transaction on the pool), function sources, subscription
//! reports and generation history; and `SHOW` for settings.

use sqlx::{PgConnection, PgPool, Row};
use steadfast_core::rules::{self, Action, CancelEffect, Recorded};
use steadfast_core::{
    Finish, FunctionSource, Generation, ProcessId, Status, StoreError, SubscriptionReport,
    Timestamp, check_subscription_report,
};

use super::events::record;
use super::journal::notify_parent;
use super::{lock_status, micros, notify};
use crate::clock::{Now, db_now};
use crate::rows::Db;

/// How many finished processes one purge transaction deletes at most, so a
/// large purge never holds many locks for long.
pub(crate) const PURGE_CHUNK: i64 = 5_000;

/// [`steadfast_core::StoreAdmin::rewind`].
pub(crate) async fn rewind(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    step: &str,
    now: Now,
) -> Result<u64, StoreError> {
    let (status, owner, live) = super::lock_status(conn, id, now).await?;
    rules::check_rewind(id, status, owner.is_some(), live)?;
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM journal WHERE process_id = $1 AND name = $2")
            .bind(id.as_str())
            .bind(step)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    let Some(seq) = seq else {
        return Err(StoreError::InvalidInput(format!(
            "process {id:?} has no journal entry named {step:?}"
        )));
    };
    sqlx::query(
        "UPDATE signals SET consumed_at = NULL
         WHERE process_id = $1 AND id IN (
             SELECT consumed_signal FROM journal
             WHERE process_id = $1 AND seq >= $2 AND consumed_signal IS NOT NULL)",
    )
    .bind(id.as_str())
    .bind(seq)
    .execute(&mut *conn)
    .await
    .db()?;
    let dropped = sqlx::query("DELETE FROM journal WHERE process_id = $1 AND seq >= $2")
        .bind(id.as_str())
        .bind(seq)
        .execute(&mut *conn)
        .await
        .db()?
        .rows_affected();
    sqlx::query(concat!(
        "UPDATE processes SET status = 'running', wake_at = COALESCE($3::bigint, ",
        db_now!(),
        "), owner = NULL,
             epoch = epoch + 1, cancel_requested = false, output = NULL, error = NULL,
             blocked_step = NULL, waiting_for = '{}', parked_files = '{}',
             parked_lines = '{}', updated_at = $2
         WHERE id = $1"
    ))
    .bind(id.as_str())
    .bind(now.host().as_micros())
    .bind(now.bind())
    .execute(&mut *conn)
    .await
    .db()?;
    record(
        conn,
        id.as_str(),
        Recorded::Rewind { step, dropped },
        None,
        now,
    )
    .await?;
    notify(conn, channel).await?;
    Ok(dropped)
}

/// One chunk of [`steadfast_core::StoreAdmin::purge`]: deletes up to
/// [`PURGE_CHUNK`] finished processes with their journals and signals in
/// one transaction and returns how many (fewer than the chunk means done).
/// The rows are locked first, so a process rewound or signalled meanwhile
/// is re-checked and kept if it is no longer finished.
pub(crate) async fn purge_chunk(
    pool: &PgPool,
    finished_before: Timestamp,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await.db()?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM processes
         WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < $1
         ORDER BY id LIMIT $2
         FOR UPDATE",
    )
    .bind(finished_before.as_micros())
    .bind(PURGE_CHUNK)
    .fetch_all(&mut *tx)
    .await
    .db()?;
    if ids.is_empty() {
        tx.commit().await.db()?;
        return Ok(0);
    }
    for sql in [
        "DELETE FROM journal WHERE process_id = ANY($1)",
        "DELETE FROM signals WHERE process_id = ANY($1)",
        "DELETE FROM journal_history WHERE process_id = ANY($1)",
        "DELETE FROM generations WHERE process_id = ANY($1)",
        "DELETE FROM events WHERE process_id = ANY($1)",
    ] {
        sqlx::query(sql).bind(&ids).execute(&mut *tx).await.db()?;
    }
    sqlx::query("DELETE FROM processes WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .db()?;
    tx.commit().await.db()?;
    // Report the chunk as selected, so a short chunk (the last) ends the loop.
    Ok(ids.len() as u64)
}

/// [`steadfast_core::StoreAdmin::save_sources`], in one transaction.
pub(crate) async fn save_sources(
    pool: &PgPool,
    sources: &[FunctionSource],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.db()?;
    for s in sources {
        sqlx::query(
            "INSERT INTO sources (file, name, first_line, text) VALUES ($1, $2, $3, $4)
             ON CONFLICT (file, name) DO UPDATE SET first_line = excluded.first_line,
                 text = excluded.text
             WHERE sources.first_line <> excluded.first_line OR sources.text <> excluded.text",
        )
        .bind(&s.file)
        .bind(&s.name)
        .bind(i64::from(s.first_line))
        .bind(&s.text)
        .execute(&mut *tx)
        .await
        .db()?;
    }
    tx.commit().await.db()
}

/// [`steadfast_core::StoreAdmin::save_subscription`]: one autocommitted
/// upsert by name and host that keeps a stored row with a later
/// `updated_at`.
pub(crate) async fn save_subscription(
    pool: &PgPool,
    report: &SubscriptionReport,
) -> Result<(), StoreError> {
    check_subscription_report(report)?;
    // The check keeps every counter within i64.
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO subscriptions (name, host, source, received, routed, dead_lettered, lag,
             lag_read_at, last_dead_letter_reason, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (name, host) DO UPDATE SET source = excluded.source,
             received = excluded.received, routed = excluded.routed,
             dead_lettered = excluded.dead_lettered, lag = excluded.lag,
             lag_read_at = excluded.lag_read_at,
             last_dead_letter_reason = excluded.last_dead_letter_reason,
             updated_at = excluded.updated_at
         WHERE subscriptions.updated_at <= excluded.updated_at",
    )
    .bind(&report.name)
    .bind(&report.host)
    .bind(&report.source)
    .bind(int(report.received))
    .bind(int(report.routed))
    .bind(int(report.dead_lettered))
    .bind(report.lag.map(int))
    .bind(report.lag_read_at.map(|t| t.as_micros()))
    .bind(&report.last_dead_letter_reason)
    .bind(report.updated_at.as_micros())
    .execute(pool)
    .await
    .db()?;
    Ok(())
}

/// [`steadfast_core::StoreAdmin::subscriptions`].
pub(crate) async fn subscriptions(pool: &PgPool) -> Result<Vec<SubscriptionReport>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, host, source, received, routed, dead_lettered, lag, lag_read_at,
             last_dead_letter_reason, updated_at
         FROM subscriptions ORDER BY name COLLATE \"C\", host COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .db()?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get("name").db()?;
            let count = |column: &str| -> Result<Option<u64>, StoreError> {
                let v: Option<i64> = r.try_get(column).db()?;
                v.map(|v| {
                    u64::try_from(v).map_err(|_| {
                        StoreError::Corrupt(format!(
                            "subscriptions.{column} of {name:?} is negative ({v})"
                        ))
                    })
                })
                .transpose()
            };
            Ok(SubscriptionReport {
                host: r.try_get("host").db()?,
                source: r.try_get("source").db()?,
                received: count("received")?.unwrap_or(0),
                routed: count("routed")?.unwrap_or(0),
                dead_lettered: count("dead_lettered")?.unwrap_or(0),
                lag: count("lag")?,
                lag_read_at: r
                    .try_get::<Option<i64>, _>("lag_read_at")
                    .db()?
                    .map(Timestamp::from_micros),
                last_dead_letter_reason: r.try_get("last_dead_letter_reason").db()?,
                updated_at: Timestamp::from_micros(r.try_get("updated_at").db()?),
                name,
            })
        })
        .collect()
}

/// [`steadfast_core::StoreAdmin::sources`].
pub(crate) async fn sources(pool: &PgPool) -> Result<Vec<FunctionSource>, StoreError> {
    let rows =
        sqlx::query("SELECT file, name, first_line, text FROM sources ORDER BY file, first_line")
            .fetch_all(pool)
            .await
            .db()?;
    rows.iter()
        .map(|r| {
            let first_line: i64 = r.try_get("first_line").db()?;
            Ok(FunctionSource {
                file: r.try_get("file").db()?,
                name: r.try_get("name").db()?,
                first_line: u32::try_from(first_line).map_err(|_| {
                    StoreError::Corrupt(format!("sources.first_line {first_line} is out of range"))
                })?,
                text: r.try_get("text").db()?,
            })
        })
        .collect()
}

/// [`steadfast_core::StoreAdmin::history`].
pub(crate) async fn history(pool: &PgPool, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
    crate::reader::get(pool, id).await?;
    let rows = sqlx::query(
        "SELECT generation, input, ended_at FROM generations WHERE process_id = $1
         ORDER BY generation",
    )
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .db()?;
    let mut generations = Vec::with_capacity(rows.len());
    for r in &rows {
        let generation: i64 = r.try_get(0).db()?;
        let entries = sqlx::query(concat!(
            "SELECT ",
            crate::rows::journal_columns!(),
            " FROM journal_history WHERE process_id = $1 AND generation = $2 ORDER BY seq, name"
        ))
        .bind(id.as_str())
        .bind(generation)
        .fetch_all(pool)
        .await
        .db()?;
        generations.push(Generation {
            generation: crate::rows::small(generation, "generations", id.as_str(), "generation")?,
            input: r.try_get(1).db()?,
            ended_at: Timestamp::from_micros(r.try_get(2).db()?),
            journal: entries
                .iter()
                .map(|row| crate::rows::journal_from_row(row).map(|(_, e)| e))
                .collect::<Result<_, _>>()?,
        });
    }
    Ok(generations)
}

/// [`steadfast_core::Store::cancel`]: the process, then its unfinished
/// descendants (by stored parent).
pub(crate) async fn cancel(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    now: Now,
) -> Result<Status, StoreError> {
    let (status, owner, live) = lock_status(conn, id, now).await?;
    rules::check(Action::Cancel, id, status)?;
    let after = cancel_one(conn, channel, (id, None), status, owner, live, now).await?;
    let descendants: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE tree(id) AS (
             SELECT id FROM processes WHERE parent = $1
             UNION
             SELECT p.id FROM processes p JOIN tree t ON p.parent = t.id
         )
         SELECT id FROM tree ORDER BY id",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await
    .db()?;
    for child in descendants {
        let Ok(child) = ProcessId::new(child) else {
            continue;
        };
        // A descendant whose status does not decode is left as it is.
        let (status, owner, live) = match lock_status(conn, &child, now).await {
            Ok(found) => found,
            Err(StoreError::CorruptRow(_) | StoreError::NotFound(_)) => continue,
            Err(other) => return Err(other),
        };
        if !status.is_finished() {
            cancel_one(conn, channel, (&child, Some(id)), status, owner, live, now).await?;
        }
    }
    Ok(after)
}

/// Cancels one unfinished (locked) process: at once when no live lease
/// holds it (telling its parent), otherwise by requesting it. The target is
/// the process and, when the cancel cascaded, the ancestor it was asked for.
async fn cancel_one(
    conn: &mut PgConnection,
    channel: &str,
    (id, requested_on): (&ProcessId, Option<&ProcessId>),
    status: Status,
    owner: Option<String>,
    live: bool,
    now: Now,
) -> Result<Status, StoreError> {
    let effect = rules::cancel_effect(status, owner.is_some(), live);
    let recorded = Recorded::Cancel {
        effect,
        requested_on,
    };
    if effect == CancelEffect::Request {
        sqlx::query("UPDATE processes SET cancel_requested = true, updated_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(micros(now.host()))
            .execute(&mut *conn)
            .await
            .db()?;
        record(conn, id.as_str(), recorded, None, now).await?;
        return Ok(Status::Running);
    }
    sqlx::query(
        "UPDATE processes SET status = 'cancelled', wake_at = NULL, owner = NULL,
             cancel_requested = false, waiting_for = '{}', parked_files = '{}',
             parked_lines = '{}', updated_at = $2
         WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(micros(now.host()))
    .execute(&mut *conn)
    .await
    .db()?;
    record(conn, id.as_str(), recorded, None, now).await?;
    notify_parent(conn, channel, id, &Finish::Cancelled, now).await?;
    Ok(Status::Cancelled)
}

/// [`steadfast_core::Store::retry`].
pub(crate) async fn retry(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    now: Now,
) -> Result<(), StoreError> {
    let (status, _, _) = lock_status(conn, id, now).await?;
    rules::check(Action::Retry, id, status)?;
    sqlx::query(concat!(
        "UPDATE processes SET status = 'running', wake_at = COALESCE($3::bigint, ",
        db_now!(),
        "), error = NULL,
             blocked_step = NULL, output = NULL, owner = NULL, cancel_requested = false,
             waiting_for = '{}', parked_files = '{}', parked_lines = '{}', updated_at = $2
         WHERE id = $1"
    ))
    .bind(id.as_str())
    .bind(micros(now.host()))
    .bind(now.bind())
    .execute(&mut *conn)
    .await
    .db()?;
    record(
        conn,
        id.as_str(),
        Recorded::Retry { from: status },
        None,
        now,
    )
    .await?;
    notify(conn, channel).await
}

/// Reads a setting of this connection's session.
pub(crate) async fn show(conn: &mut PgConnection, setting: &str) -> Result<String, StoreError> {
    sqlx::query_scalar("SELECT current_setting($1)")
        .bind(setting)
        .fetch_one(conn)
        .await
        .db()
}
