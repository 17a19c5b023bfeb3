//! Starting processes: spawning one, and continuing one as a new generation
//! under the same id.

use std::time::Duration;

use sqlx::{PgConnection, Row};
use steadfast_core::rules::{self, Recorded};
use steadfast_core::{
    Claimed, HostId, Lease, NewProcess, ProcessId, SpawnAndClaim, SpawnOutcome, StoreError,
};

use super::micros;
use crate::clock::{Now, db_now};
use crate::rows::{Db, process_columns, process_from_row};

/// [`steadfast_core::Store::spawn`].
pub(crate) async fn spawn(
    conn: &mut PgConnection,
    channel: &str,
    p: &NewProcess,
    now: Now,
) -> Result<SpawnOutcome, StoreError> {
    // Insert and notify in one round trip; the notification is sent only
    // when the row is new.
    // Runnable at once by the deciding clock (`$7`); created at the host's
    // time.
    let inserted: i64 = sqlx::query_scalar(concat!(
        "WITH ins AS (
             INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at,
                 waiting_for, epoch, cancel_requested, version, parent, traceparent)
             VALUES ($1, $2, $3, 'running', $4, $4, COALESCE($8::bigint, ",
        db_now!(),
        "), '{}', 0, false, $5, $7, $9)
             ON CONFLICT (id) DO NOTHING
             RETURNING 1
         ), told AS (
             SELECT pg_notify($6, '') FROM ins
         )
         SELECT (SELECT count(*) FROM ins) + 0 * (SELECT count(*) FROM told)"
    ))
    .bind(p.id.as_str())
    .bind(&p.kind)
    .bind(&p.input)
    .bind(micros(p.now))
    .bind(i64::from(p.version))
    .bind(channel)
    .bind(p.parent.as_ref().map(ProcessId::as_str))
    .bind(now.bind())
    .bind(p.traceparent.as_deref())
    .fetch_one(&mut *conn)
    .await
    .db()?;
    if inserted == 1 {
        return Ok(SpawnOutcome::Created);
    }
    existing(conn, p).await
}

// A spawn that is a claim too: stored as the claim's statement leaves a
// process (owner `$7`, epoch 1, its lease until the deciding clock's now
// (`$8`) plus `$10` microseconds), the claim recorded in its history
// (`$11`, `$12`: what `rules::event` says a claim records) by the same
// statement. No notification: no other host is to run it.
const SPAWN_AND_CLAIM: &str = concat!(
    "WITH t AS (SELECT COALESCE($8::bigint, ",
    db_now!(),
    ") AS now),
     ins AS (
         INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at,
             waiting_for, owner, epoch, cancel_requested, version, parent, traceparent)
         SELECT $1, $2, $3, 'running', $4, $4, t.now + $10, '{}', $7, 1, false, $5, $6, $9
         FROM t
         ON CONFLICT (id) DO NOTHING
         RETURNING ",
    process_columns!(),
    "
     ),
     logged AS (
         INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
         SELECT id, $4, $11, $7, epoch, generation, $12 FROM ins
     )
     SELECT * FROM ins"
);

/// [`steadfast_core::Store::spawn_and_claim`]: one autocommitted statement
/// on a pooled connection, like a claim.
pub(crate) async fn spawn_and_claim(
    conn: &mut PgConnection,
    p: &NewProcess,
    now: Now,
    owner: &HostId,
    lease: Duration,
) -> Result<SpawnAndClaim, StoreError> {
    let (kind, detail) = rules::event(Recorded::Claim);
    let row = sqlx::query(SPAWN_AND_CLAIM)
        .bind(p.id.as_str())
        .bind(&p.kind)
        .bind(&p.input)
        .bind(micros(p.now))
        .bind(i64::from(p.version))
        .bind(p.parent.as_ref().map(ProcessId::as_str))
        .bind(owner.as_str())
        .bind(now.bind())
        .bind(p.traceparent.as_deref())
        .bind(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
        .bind(kind.as_str())
        .bind(detail)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    let Some(row) = row else {
        return Ok(existing(conn, p).await?.into());
    };
    let record = process_from_row(&row)?;
    Ok(SpawnAndClaim::Claimed(Box::new(Claimed::spawned(
        record, owner,
    ))))
}

/// Many spawns in one statement: the result of each, in order. With
/// `notify` (the channel) the statement itself sends the one notification
/// when any process was created, so it can run autocommitted; without, it
/// runs inside the caller's transaction, which sends the notification of
/// its batch. Every spawn must pass [`spawn_is_checked`]. A spawn of an id
/// already stored (or spawned earlier in `spawns`) is answered like
/// [`spawn`] answers it.
pub(crate) async fn spawn_many(
    conn: &mut PgConnection,
    spawns: &[(&NewProcess, Now)],
    notify: Option<&str>,
) -> Result<Vec<Result<SpawnOutcome, StoreError>>, StoreError> {
    let n = spawns.len();
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut inputs = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut parents = Vec::with_capacity(n);
    let mut wakes = Vec::with_capacity(n);
    let mut traces = Vec::with_capacity(n);
    for (p, now) in spawns {
        ids.push(p.id.as_str());
        kinds.push(p.kind.as_str());
        inputs.push(p.input.as_str());
        created.push(micros(p.now));
        versions.push(i64::from(p.version));
        parents.push(p.parent.as_ref().map(ProcessId::as_str));
        wakes.push(now.bind());
        traces.push(p.traceparent.as_deref());
    }
    let rows = sqlx::query(concat!(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                 $5::bigint[], $6::text[], $7::bigint[], $8::text[])
             WITH ORDINALITY AS t(id, kind, input, created_at, version, parent, wake_at,
                 traceparent, ord)
         ), ins AS (
             INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at,
                 waiting_for, epoch, cancel_requested, version, parent, traceparent)
             SELECT id, kind, input, 'running', created_at, created_at, COALESCE(wake_at, ",
        db_now!(),
        "), '{}', 0, false, version, parent, traceparent
             FROM input ORDER BY ord
             ON CONFLICT (id) DO NOTHING
             RETURNING id
         ), told AS (
             SELECT pg_notify($9, '') FROM (SELECT 1 FROM ins LIMIT 1) AS created
             WHERE $9::text IS NOT NULL
         )
         SELECT i.ord, ins.id IS NOT NULL, (SELECT count(*) FROM told)
         FROM input i LEFT JOIN ins ON ins.id = i.id
         ORDER BY i.ord"
    ))
    .bind(&ids)
    .bind(&kinds)
    .bind(&inputs)
    .bind(&created)
    .bind(&versions)
    .bind(&parents)
    .bind(&wakes)
    .bind(&traces)
    .bind(notify)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    if rows.len() != n {
        return Err(StoreError::Corrupt(format!(
            "a batch of {n} spawns returned {} results",
            rows.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    for (row, (p, _)) in rows.iter().zip(spawns) {
        let inserted: bool = row.try_get(1).db()?;
        // An id spawned twice in one batch was inserted once, by the first.
        if inserted && seen.insert(p.id.as_str()) {
            results.push(Ok(SpawnOutcome::Created));
        } else {
            results.push(existing(conn, p).await);
        }
    }
    Ok(results)
}

/// The answer to a spawn of an id already stored: the stored process if it
/// has the same kind and input, a conflict otherwise.
async fn existing(conn: &mut PgConnection, p: &NewProcess) -> Result<SpawnOutcome, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        process_columns!(),
        " FROM processes WHERE id = $1"
    ))
    .bind(p.id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .db()?
    .ok_or_else(|| StoreError::Backend {
        message: format!("process {:?} both exists and does not; try again", p.id),
        retryable: true,
        source: None,
    })?;
    let record = process_from_row(&row)?;
    if record.kind == p.kind && record.input == p.input {
        return Ok(SpawnOutcome::Existing(Box::new(record)));
    }
    Err(StoreError::SpawnConflict {
        id: p.id.clone(),
        existing_kind: record.kind,
    })
}

/// Whether a spawn can be run without a savepoint: its statement fails only
/// when the connection or the server does.
pub(crate) fn spawn_is_checked(p: &NewProcess) -> bool {
    !p.kind.contains('\0') && !p.input.contains('\0')
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
    if super::fence(conn, lease).await? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    let id = lease.id.as_str();
    let host = Some(lease.owner.as_str());
    super::events::record(conn, id, Recorded::ContinueAsNew, host, now).await?;
    let (now, decide) = (now.host(), now.bind());
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
