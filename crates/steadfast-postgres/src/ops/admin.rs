//! Writes made by tools rather than hosts: rewinding a process to a step
//! (run by the writer task, in a savepoint like every write) and purging
//! old finished processes (in chunks, each its own transaction on the pool).

use sqlx::{PgConnection, PgPool, Row};
use steadfast_core::{FunctionSource, Generation, Lease, ProcessId, Status, StoreError, Timestamp};

use crate::clock::{Now, db_now};
use super::notify;
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
    if status == Status::Running && owner.is_some() && live {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "rewind",
            expected: "not held by a live host (suspended, blocked, finished, or with an expired lease)",
        });
    }
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

/// [`steadfast_core::Store::continue_as_new`] (on the writer's connection,
/// inside its batch transaction).
pub(crate) async fn continue_as_new(
    conn: &mut PgConnection,
    channel: &str,
    lease: &Lease,
    input: &str,
    now: Now,
) -> Result<(), StoreError> {
    let (now, decide) = (now.host(), now.bind());
    if super::fence(conn, lease).await? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    let id = lease.id.as_str();
    sqlx::query(
        "INSERT INTO generations (process_id, generation, input, ended_at)
         SELECT id, generation, input, $2 FROM processes WHERE id = $1",
    )
    .bind(id)
    .bind(now.as_micros())
    .execute(&mut *conn)
    .await
    .db()?;
    sqlx::query(
        "INSERT INTO journal_history (process_id, seq, name, kind, status, outcome, attempts,
             started_at, finished_at, due_at, file, line, consumed_signal, generation)
         SELECT j.process_id, j.seq, j.name, j.kind, j.status, j.outcome, j.attempts,
             j.started_at, j.finished_at, j.due_at, j.file, j.line, j.consumed_signal,
             p.generation
         FROM journal j JOIN processes p ON p.id = j.process_id WHERE j.process_id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .db()?;
    sqlx::query("DELETE FROM journal WHERE process_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query(concat!(
        "UPDATE processes SET generation = generation + 1, input = $2, status = 'running',
             owner = NULL, wake_at = COALESCE($4::bigint, ",
        db_now!(),
        "), waiting_for = '{}', parked_files = '{}',
             parked_lines = '{}', output = NULL, error = NULL, blocked_step = NULL,
             updated_at = $3
         WHERE id = $1"
    ))
    .bind(id)
    .bind(input)
    .bind(now.as_micros())
    .bind(decide)
    .execute(&mut *conn)
    .await
    .db()?;
    super::notify(conn, channel).await
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
