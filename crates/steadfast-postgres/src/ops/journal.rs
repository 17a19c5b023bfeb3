//! A lease holder's writes to its process: journal appends, suspending,
//! finishing (and telling a waiting parent).

use sqlx::{PgConnection, Row, SqlSafeStr};
use steadfast_core::rules::{self, Recorded};
use steadfast_core::{
    Finish, JournalEntry, Lease, PendingSignal, ProcessId, Status, StoreError, SuspendOutcome,
    Suspension,
};

use super::append_many::PgQuery;
use super::signal::insert_signal;
use super::{fence, micros};
use crate::clock::{Now, db_now};
use crate::rows::{Db, signal_columns, signal_from_row, split_locations};

/// Whether an append can be run without a savepoint: its one statement
/// fails only when the connection or the server does (text PostgreSQL cannot
/// store is refused before anything is sent).
pub(crate) fn append_is_checked(e: &JournalEntry) -> bool {
    let texts = [
        Some(e.name.as_str()),
        e.outcome.as_deref(),
        e.location.as_ref().map(|l| l.file.as_str()),
    ];
    !texts.into_iter().flatten().any(|t| t.contains('\0'))
}

/// [`steadfast_core::Store::append`]: one statement (see
/// [`append_many`]) that locks and fences the process row and writes
/// the entry only when the fence, the cancel flag and the consumed signal
/// allow it.
pub(crate) async fn append(
    conn: &mut PgConnection,
    lease: &Lease,
    e: &JournalEntry,
) -> Result<(), StoreError> {
    if !append_is_checked(e) {
        return Err(StoreError::InvalidInput(format!(
            "journal entry {:?} contains a NUL character, which PostgreSQL cannot store",
            e.name
        )));
    }
    super::append_many::append_many(conn, &[(lease, e)])
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "an append returned no result".to_owned(),
            ))
        })
}

/// Whether a suspension can be run without a savepoint: its statements
/// either refuse cleanly (fenced, cancel requested, signals pending: plain
/// answers, nothing written) or fail only when the connection or the
/// server does (no text PostgreSQL cannot store).
pub(crate) fn suspend_is_checked(s: &Suspension) -> bool {
    !s.waiting_for
        .iter()
        .chain(s.parked_at.iter().map(|l| &l.file))
        .any(|t| t.contains('\0'))
}

/// [`steadfast_core::Store::suspend`].
pub(crate) async fn suspend(
    conn: &mut PgConnection,
    lease: &Lease,
    s: &Suspension,
    now: Now,
) -> Result<SuspendOutcome, StoreError> {
    if fence(conn, lease).await? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    if !s.waiting_for.is_empty() {
        let rows = sqlx::query(concat!(
            "SELECT ",
            signal_columns!(),
            " FROM signals WHERE process_id = $1 AND consumed_at IS NULL AND name = ANY($2)
              ORDER BY id"
        ))
        .bind(lease.id.as_str())
        .bind(&s.waiting_for)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        if !rows.is_empty() {
            let pending = rows
                .iter()
                .map(|r| signal_from_row(r).map(|(_, s)| s))
                .collect::<Result<Vec<PendingSignal>, _>>()?;
            return Ok(SuspendOutcome::SignalsPending(pending));
        }
    }
    let (files, lines) = split_locations(&s.parked_at);
    // When the database's clock decides (`$7` NULL) and the suspension's
    // now is more than a second off it (a host that has not measured its
    // offset), the due time is the database's now plus what was left of the
    // wait; hosts that measured send due times in the database's time,
    // kept as they are.
    sqlx::query(concat!(
        "UPDATE processes SET status = 'suspended', owner = NULL,
             wake_at = CASE WHEN $7::bigint IS NULL AND abs(",
        db_now!(),
        " - $4::bigint) > 1000000 THEN ",
        db_now!(),
        " + ($2::bigint - $4::bigint) ELSE $2::bigint END,
             waiting_for = $3, updated_at = $4, parked_files = $5, parked_lines = $6
         WHERE id = $1"
    ))
    .bind(lease.id.as_str())
    .bind(s.wake_at.map(micros))
    .bind(&s.waiting_for)
    .bind(micros(s.now))
    .bind(&files)
    .bind(&lines)
    .bind(now.bind())
    .execute(conn)
    .await
    .db()?;
    Ok(SuspendOutcome::Suspended)
}

/// The statement of [`suspend_many`]: `$1`…`$6` one element per
/// suspension (id, epoch, owner, due time, the suspension's now, the
/// deciding now or NULL for the database's clock), `$7`…`$9` the signal
/// names waited for (suspension index, name, order), `$10`…`$13` the
/// parked locations (suspension index, file, line, order). Each row is
/// fenced by primary key (lateral), and written only when no cancellation
/// is requested and no signal it waits for is pending.
pub(crate) const SUSPEND_MANY: &str = concat!(
    "WITH input AS (
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
             $6::bigint[])
         WITH ORDINALITY AS t(id, epoch, owner, wake_at, now, decide, ord)
     ), waits AS (
         SELECT * FROM unnest($7::bigint[], $8::text[], $9::bigint[]) AS w(ord, name, k)
     ), parked AS (
         SELECT * FROM unnest($10::bigint[], $11::text[], $12::bigint[], $13::bigint[])
             AS p(ord, file, line, k)
     ), fenced AS (
         SELECT i.*, pr.cancel_requested,
             EXISTS (SELECT 1 FROM waits w JOIN signals s ON s.name = w.name
                 WHERE w.ord = i.ord AND s.process_id = i.id AND s.consumed_at IS NULL)
                 AS pending
         FROM input i CROSS JOIN LATERAL (
             SELECT pr.cancel_requested FROM processes pr
             -- By key, never through processes_owner (see append_many.rs).
             WHERE pr.id = i.id AND pr.epoch = i.epoch
                 AND pr.owner IS NOT DISTINCT FROM i.owner
                 AND pr.status = 'running'
             FOR NO KEY UPDATE
         ) pr
     ), done AS (
         UPDATE processes p SET status = 'suspended', owner = NULL,
             wake_at = CASE WHEN f.decide IS NULL AND abs(",
    db_now!(),
    " - f.now) > 1000000 THEN ",
    db_now!(),
    " + (f.wake_at - f.now) ELSE f.wake_at END,
             waiting_for = COALESCE((SELECT array_agg(w.name ORDER BY w.k) FROM waits w
                 WHERE w.ord = f.ord), '{}'),
             updated_at = f.now,
             parked_files = COALESCE((SELECT array_agg(pk.file ORDER BY pk.k) FROM parked pk
                 WHERE pk.ord = f.ord), '{}'),
             parked_lines = COALESCE((SELECT array_agg(pk.line ORDER BY pk.k) FROM parked pk
                 WHERE pk.ord = f.ord), '{}')
         FROM fenced f
         WHERE p.id = f.id AND p.id = ANY (ARRAY (SELECT id FROM fenced))
             AND NOT f.cancel_requested AND NOT f.pending
         RETURNING p.id
     )
     SELECT i.ord, f.cancel_requested, f.pending, (SELECT count(*) FROM done)
     FROM input i LEFT JOIN fenced f ON f.ord = i.ord
     ORDER BY i.ord"
);

/// [`steadfast_core::Store::suspend`] for many runs in one statement (see
/// [`SUSPEND_MANY`]): the result of each, in order. A run whose process has
/// a pending signal it waits for is not suspended; its pending signals are
/// read and returned. Every suspension must pass [`suspend_is_checked`].
/// Needs no transaction: the statement writes only what it fenced.
pub(crate) async fn suspend_many(
    conn: &mut PgConnection,
    suspensions: &[(&Lease, &Suspension, Now)],
) -> Result<Vec<Result<SuspendOutcome, StoreError>>, StoreError> {
    let n = suspensions.len();
    let mut ids = Vec::with_capacity(n);
    let mut epochs = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut wakes = Vec::with_capacity(n);
    let mut nows = Vec::with_capacity(n);
    let mut decides = Vec::with_capacity(n);
    let (mut wait_of, mut wait_names, mut wait_order) = (Vec::new(), Vec::new(), Vec::new());
    let (mut park_of, mut park_files, mut park_lines, mut park_order) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (lease, s, now)) in suspensions.iter().enumerate() {
        let ord = i64::try_from(i + 1).unwrap_or(i64::MAX);
        ids.push(lease.id.as_str());
        epochs.push(lease.epoch);
        owners.push(lease.owner.as_str());
        wakes.push(s.wake_at.map(micros));
        nows.push(micros(s.now));
        decides.push(now.bind());
        for (k, name) in s.waiting_for.iter().enumerate() {
            wait_of.push(ord);
            wait_names.push(name.as_str());
            wait_order.push(i64::try_from(k).unwrap_or(i64::MAX));
        }
        for (k, at) in s.parked_at.iter().enumerate() {
            park_of.push(ord);
            park_files.push(at.file.as_str());
            park_lines.push(i64::from(at.line));
            park_order.push(i64::try_from(k).unwrap_or(i64::MAX));
        }
    }
    let rows = sqlx::query(SUSPEND_MANY)
        .bind(ids)
        .bind(epochs)
        .bind(owners)
        .bind(wakes)
        .bind(nows)
        .bind(decides)
        .bind(wait_of)
        .bind(wait_names)
        .bind(wait_order)
        .bind(park_of)
        .bind(park_files)
        .bind(park_lines)
        .bind(park_order)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    if rows.len() != n {
        return Err(StoreError::Corrupt(format!(
            "a batch of {n} suspensions returned {} results",
            rows.len()
        )));
    }
    let mut results = Vec::with_capacity(n);
    for (row, (lease, s, _)) in rows.iter().zip(suspensions) {
        let cancel: Option<bool> = row.try_get(1).db()?;
        let pending: Option<bool> = row.try_get(2).db()?;
        results.push(match (cancel, pending) {
            (None, _) => Err(StoreError::Fenced {
                id: lease.id.clone(),
                epoch: lease.epoch,
            }),
            (Some(true), _) => Err(StoreError::CancelRequested(lease.id.clone())),
            (Some(false), Some(true)) => {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    signal_columns!(),
                    " FROM signals WHERE process_id = $1 AND consumed_at IS NULL
                         AND name = ANY($2)
                      ORDER BY id"
                ))
                .bind(lease.id.as_str())
                .bind(&s.waiting_for)
                .fetch_all(&mut *conn)
                .await
                .db()?;
                rows.iter()
                    .map(|r| signal_from_row(r).map(|(_, s)| s))
                    .collect::<Result<Vec<PendingSignal>, _>>()
                    .map(SuspendOutcome::SignalsPending)
            }
            (Some(false), _) => Ok(SuspendOutcome::Suspended),
        });
    }
    Ok(results)
}

/// Whether a finish can be run without a savepoint: its statements fail
/// only when the connection or the server does (no text PostgreSQL cannot
/// store, a finish this store knows).
pub(crate) fn finish_is_checked(f: &Finish) -> bool {
    let row = rules::finished(f);
    ![
        row.output,
        row.error,
        row.blocked_step,
        row.parked.map(|at| at.file.as_str()),
    ]
    .into_iter()
    .flatten()
    .any(|t| t.contains('\0'))
}

/// The statement of [`finish_many`] and [`finish_alone`]: each row is
/// fenced (its lateral subquery locks the process by primary key and checks
/// epoch, owner and status) and written on its own, all in one round trip;
/// with `$11`, processes that have a parent are fenced but not written.
/// Each written row's history entry (`$12`, `$13`: what `rules::event`
/// says the finish records) is inserted by the same statement.
pub(crate) const FINISH_MANY: &str = "WITH input AS (
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $12::text[],
             $13::text[])
         WITH ORDINALITY AS t(id, epoch, owner, status, output, error, step, file, line,
             updated_at, event_kind, event_detail, ord)
     ), fenced AS (
         SELECT i.*, pr.parent FROM input i CROSS JOIN LATERAL (
             SELECT pr.parent FROM processes pr
             -- By key, never through processes_owner (see append_many.rs).
             WHERE pr.id = i.id AND pr.epoch = i.epoch
                 AND pr.owner IS NOT DISTINCT FROM i.owner
                 AND pr.status = 'running'
             FOR NO KEY UPDATE
         ) pr
     ), done AS (
         UPDATE processes p SET status = f.status, output = f.output, error = f.error,
             blocked_step = f.step, wake_at = NULL, owner = NULL, cancel_requested = false,
             waiting_for = '{}', updated_at = f.updated_at,
             parked_files = CASE WHEN f.file IS NULL THEN '{}' ELSE ARRAY[f.file] END,
             parked_lines = CASE WHEN f.file IS NULL THEN '{}' ELSE ARRAY[f.line] END
         FROM fenced f
         WHERE p.id = f.id AND p.id = ANY (ARRAY (SELECT id FROM fenced))
             AND (NOT $11::bool OR f.parent IS NULL)
         RETURNING p.id, p.epoch, p.generation
     ), logged AS (
         INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
         SELECT d.id, f.updated_at, f.event_kind, f.owner, COALESCE(d.epoch, 0),
             COALESCE(d.generation, 0), f.event_detail
         FROM done d JOIN fenced f ON f.id = d.id
     )
     SELECT i.ord, f.ord IS NOT NULL, f.parent, (SELECT count(*) FROM done)
     FROM input i LEFT JOIN fenced f ON f.ord = i.ord
     ORDER BY i.ord";

/// [`FINISH_MANY`] (or a statement with its parameters, such as its
/// `EXPLAIN`) with the columns of `finishes` bound.
pub(crate) fn finish_query<'q>(
    sql: impl SqlSafeStr,
    finishes: &[(&'q Lease, &'q Finish, Now)],
    orphans_only: bool,
) -> PgQuery<'q> {
    let n = finishes.len();
    let mut ids = Vec::with_capacity(n);
    let mut epochs = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut steps = Vec::with_capacity(n);
    let mut files: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut lines: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    let mut event_kinds = Vec::with_capacity(n);
    let mut event_details = Vec::with_capacity(n);
    for (lease, f, now) in finishes {
        let (kind, detail) = rules::event(Recorded::Finish(f));
        event_kinds.push(kind.as_str());
        event_details.push(detail);
        let row = rules::finished(f);
        ids.push(lease.id.as_str());
        epochs.push(lease.epoch);
        owners.push(lease.owner.as_str());
        statuses.push(row.status.as_str());
        outputs.push(row.output);
        errors.push(row.error);
        steps.push(row.blocked_step);
        files.push(row.parked.map(|l| l.file.as_str()));
        lines.push(row.parked.map(|l| i64::from(l.line)));
        updated.push(micros(now.host()));
    }
    sqlx::query(sql)
        .bind(ids)
        .bind(epochs)
        .bind(owners)
        .bind(statuses)
        .bind(outputs)
        .bind(errors)
        .bind(steps)
        .bind(files)
        .bind(lines)
        .bind(updated)
        .bind(orphans_only)
        .bind(event_kinds)
        .bind(event_details)
}

/// What the finish statement found for one run.
#[derive(Debug)]
enum Finished {
    /// The lease no longer holds the process: nothing was written.
    Fenced,
    /// Written; the process's stored parent, if it has one.
    Written(Option<String>),
    /// Not written because the process has this parent (only when asked to
    /// write processes without a parent only).
    HasParent(String),
}

/// The finish statement: each row is fenced (locked, epoch, owner and
/// status checked) and updated on its own, all in one round trip; with
/// `orphans_only`, processes that have a parent are fenced but not written
/// (their end signal needs a second statement in the same transaction).
async fn finish_rows(
    conn: &mut PgConnection,
    finishes: &[(&Lease, &Finish, Now)],
    orphans_only: bool,
) -> Result<Vec<Finished>, StoreError> {
    let n = finishes.len();
    let rows = finish_query(FINISH_MANY, finishes, orphans_only)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    if rows.len() != n {
        return Err(StoreError::Corrupt(format!(
            "a batch of {n} finishes returned {} results",
            rows.len()
        )));
    }
    rows.iter()
        .map(|row| {
            let fenced: bool = row.try_get(1).db()?;
            let parent: Option<String> = row.try_get(2).db()?;
            Ok(match (fenced, parent) {
                (false, _) => Finished::Fenced,
                (true, Some(parent)) if orphans_only => Finished::HasParent(parent),
                (true, parent) => Finished::Written(parent),
            })
        })
        .collect()
}

/// [`steadfast_core::Store::finish`] for many runs in one statement (inside
/// the caller's transaction): each is fenced and written on its own, then
/// each finished child's parent gets its end signal. The result of each, in
/// order. Every finish must pass [`finish_is_checked`].
pub(crate) async fn finish_many(
    conn: &mut PgConnection,
    channel: &str,
    finishes: &[(&Lease, &Finish, Now)],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let found = finish_rows(conn, finishes, false).await?;
    let mut results = Vec::with_capacity(finishes.len());
    for (found, (lease, f, now)) in found.into_iter().zip(finishes) {
        results.push(match found {
            Finished::Fenced => Err(StoreError::Fenced {
                id: lease.id.clone(),
                epoch: lease.epoch,
            }),
            Finished::Written(Some(parent)) | Finished::HasParent(parent) => {
                notify_parent_of(conn, channel, &lease.id, parent, f, *now).await?;
                Ok(())
            }
            Finished::Written(None) => Ok(()),
        });
    }
    Ok(results)
}

/// A finish that passes [`finish_is_checked`] as one autocommitted
/// statement: `None` when the process has a parent (nothing was written:
/// its end signal must be written in the same transaction, so the caller
/// runs [`finish_many`] in one).
pub(crate) async fn finish_alone(
    conn: &mut PgConnection,
    lease: &Lease,
    f: &Finish,
    now: Now,
) -> Result<Option<Result<(), StoreError>>, StoreError> {
    let found = finish_rows(conn, &[(lease, f, now)], true).await?;
    Ok(match found.into_iter().next() {
        Some(Finished::Fenced) => Some(Err(StoreError::Fenced {
            id: lease.id.clone(),
            epoch: lease.epoch,
        })),
        Some(Finished::Written(_)) => Some(Ok(())),
        Some(Finished::HasParent(_)) => None,
        None => Some(Err(StoreError::Corrupt(
            "a finish returned no result".to_owned(),
        ))),
    })
}

/// [`steadfast_core::Store::finish`]: one statement (see [`finish_many`])
/// when the finish passes [`finish_is_checked`].
pub(crate) async fn finish(
    conn: &mut PgConnection,
    channel: &str,
    lease: &Lease,
    f: &Finish,
    now: Now,
) -> Result<(), StoreError> {
    finish_many(conn, channel, &[(lease, f, now)])
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "a finish returned no result".to_owned(),
            ))
        })
}

/// Stores the end signal of child `id` (ended with `f`) for its stored
/// parent, if it has one that is still unfinished; wakes a suspended parent.
pub(crate) async fn notify_parent(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    f: &Finish,
    now: Now,
) -> Result<(), StoreError> {
    let parent: Option<String> = sqlx::query_scalar("SELECT parent FROM processes WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .db()?
        .flatten();
    let Some(parent) = parent else {
        return Ok(());
    };
    notify_parent_of(conn, channel, id, parent, f, now).await
}

/// Stores the end signal of child `id` (ended with `f`) for `parent` if
/// that is still unfinished; wakes it if it is suspended.
async fn notify_parent_of(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    parent: String,
    f: &Finish,
    now: Now,
) -> Result<(), StoreError> {
    let parent = ProcessId::new(parent).map_err(|e| {
        StoreError::CorruptRow(steadfast_core::RowError::new(
            "processes",
            id.as_str(),
            "parent",
            e.to_string(),
        ))
    })?;
    let Some(notice) = steadfast_core::child::end_notice(&parent, id, f) else {
        return Ok(());
    };
    // Locked like a signal's target; a parent whose status does not decode
    // is still signalled (it may be repaired).
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM processes WHERE id = $1 FOR NO KEY UPDATE")
            .bind(parent.as_str())
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    let Some(status) = status else {
        return Ok(());
    };
    if status.parse::<Status>().is_ok_and(Status::is_finished) {
        return Ok(());
    }
    insert_signal(
        conn,
        channel,
        &parent,
        &notice.signal,
        &notice.payload,
        now,
        None,
    )
    .await?;
    Ok(())
}
