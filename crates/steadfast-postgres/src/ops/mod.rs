//! The write operations, each run by the writer task inside its own
//! savepoint of the batch transaction.
//!
//! Every write to a process row first locks that row (`FOR NO KEY UPDATE`),
//! so fencing, suspension and signalling are serialized per process across
//! all stores sharing the database, and a concurrent claim (which skips
//! locked rows) cannot take a process over in the middle of a write.

use std::time::Duration;

use sqlx::{PgConnection, Row};
use steadfast_core::{
    Finish, HostId, JournalEntry, Lease, NewProcess, PendingSignal, ProcessId, SpawnOutcome,
    Status, StoreError, SuspendOutcome, Suspension, Timestamp,
};

pub(crate) mod admin;
pub(crate) mod append_many;
pub(crate) mod claim;
pub(crate) mod signal;

use crate::clock::{Now, db_now};
use crate::rows::{
    Db, process_columns, process_from_row, signal_columns, signal_from_row, split_locations,
};

fn micros(t: Timestamp) -> i64 {
    t.as_micros()
}

/// Makes every listening store look for due work once this transaction
/// commits (PostgreSQL folds repeated notifications of one transaction).
pub(crate) async fn notify(conn: &mut PgConnection, channel: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(conn)
        .await
        .db()
        .map(|_| ())
}

fn parse_status(id: &ProcessId, status: &str) -> Result<Status, StoreError> {
    status.parse::<Status>().map_err(|e| {
        StoreError::CorruptRow(steadfast_core::RowError::new(
            "processes",
            id.as_str(),
            "status",
            e.to_string(),
        ))
    })
}

/// Locks a process row and returns its status, owner and whether its
/// lease (if any) is still live at `now`, or `NotFound`.
pub(crate) async fn lock_status(
    conn: &mut PgConnection,
    id: &ProcessId,
    now: Now,
) -> Result<(Status, Option<String>, bool), StoreError> {
    let row = sqlx::query(concat!(
        "SELECT status, owner, COALESCE(wake_at > COALESCE($2::bigint, ",
        db_now!(),
        "), false) FROM processes WHERE id = $1 FOR NO KEY UPDATE"
    ))
    .bind(id.as_str())
    .bind(now.bind())
    .fetch_optional(conn)
    .await
    .db()?
    .ok_or_else(|| StoreError::NotFound(id.clone()))?;
    let status: String = row.try_get(0).db()?;
    Ok((
        parse_status(id, &status)?,
        row.try_get(1).db()?,
        row.try_get(2).db()?,
    ))
}

/// Checks (and locks) that `lease` still holds its process: it exists, is
/// running, is owned by the lease's host, at the lease's epoch. Returns
/// whether a cancellation is pending.
pub(crate) async fn fence(conn: &mut PgConnection, lease: &Lease) -> Result<bool, StoreError> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "SELECT cancel_requested FROM processes
         WHERE id = $1 AND epoch = $2 AND owner = $3 AND status = 'running'
         FOR NO KEY UPDATE",
    )
    .bind(lease.id.as_str())
    .bind(lease.epoch)
    .bind(lease.owner.as_str())
    .fetch_optional(conn)
    .await
    .db()?;
    cancel.ok_or_else(|| StoreError::Fenced {
        id: lease.id.clone(),
        epoch: lease.epoch,
    })
}

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
                 waiting_for, epoch, cancel_requested, version, parent)
             VALUES ($1, $2, $3, 'running', $4, $4, COALESCE($8::bigint, ",
        db_now!(),
        "), '{}', 0, false, $5, $7)
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
    .fetch_one(&mut *conn)
    .await
    .db()?;
    if inserted == 1 {
        return Ok(SpawnOutcome::Created);
    }
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
    append_many::append_many(conn, &[(lease, e)])
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "an append returned no result".to_owned(),
            ))
        })
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

/// [`steadfast_core::Store::finish`].
pub(crate) async fn finish(
    conn: &mut PgConnection,
    channel: &str,
    lease: &Lease,
    f: &Finish,
    now: Now,
) -> Result<(), StoreError> {
    fence(conn, lease).await?;
    let (status, output, error, step): (Status, Option<&str>, Option<&str>, Option<&str>) = match f
    {
        Finish::Completed { output } => (Status::Completed, Some(output), None, None),
        Finish::Failed { error } => (Status::Failed, None, Some(error), None),
        Finish::Blocked { step, reason, .. } => {
            (Status::Blocked, None, Some(reason), step.as_deref())
        }
        Finish::Cancelled => (Status::Cancelled, None, None, None),
        other => {
            return Err(StoreError::InvalidInput(format!(
                "this store does not know how to finish a run with {other:?}"
            )));
        }
    };
    let (files, lines) = match f {
        Finish::Blocked {
            location: Some(at), ..
        } => split_locations(std::slice::from_ref(at)),
        _ => (Vec::new(), Vec::new()),
    };
    sqlx::query(
        "UPDATE processes SET status = $2, output = $3, error = $4, blocked_step = $5,
             wake_at = NULL, owner = NULL, cancel_requested = false, waiting_for = '{}',
             updated_at = $6, parked_files = $7, parked_lines = $8
         WHERE id = $1",
    )
    .bind(lease.id.as_str())
    .bind(status.as_str())
    .bind(output)
    .bind(error)
    .bind(step)
    .bind(micros(now.host()))
    .bind(&files)
    .bind(&lines)
    .execute(&mut *conn)
    .await
    .db()?;
    notify_parent(conn, channel, &lease.id, f, now).await
}

/// Stores the end signal of child `id` (ended with `f`) for its stored
/// parent, if it has one that is still unfinished; wakes a suspended parent.
async fn notify_parent(
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
    insert_signal(conn, channel, &parent, &notice.signal, &notice.payload, now).await?;
    Ok(())
}

/// Inserts a signal and wakes the process if it is suspended.
async fn insert_signal(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    name: &str,
    payload: &str,
    now: Now,
) -> Result<i64, StoreError> {
    let signal_id: i64 = sqlx::query_scalar(
        "INSERT INTO signals (process_id, name, payload, sent_at) VALUES ($1, $2, $3, $4)
         RETURNING id",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(payload)
    .bind(micros(now.host()))
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

/// [`steadfast_core::Store::renew`].
pub(crate) async fn renew(
    conn: &mut PgConnection,
    owner: &HostId,
    leases: &[Lease],
    now: Now,
    lease: Duration,
) -> Result<u64, StoreError> {
    let (ids, epochs): (Vec<&str>, Vec<i64>) = leases
        .iter()
        .filter(|l| l.owner == *owner)
        .map(|l| (l.id.as_str(), l.epoch))
        .unzip();
    let n = sqlx::query(concat!(
        "UPDATE processes p SET wake_at = COALESCE($6::bigint, ",
        db_now!(),
        ") + $2, updated_at = $3
         FROM unnest($4::text[], $5::bigint[]) AS l(id, epoch)
         WHERE p.id = l.id AND p.epoch = l.epoch AND p.owner = $1 AND p.status = 'running'"
    ))
    .bind(owner.as_str())
    .bind(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
    .bind(micros(now.host()))
    .bind(&ids)
    .bind(&epochs)
    .bind(now.bind())
    .execute(conn)
    .await
    .db()?
    .rows_affected();
    Ok(n)
}

/// [`steadfast_core::Store::release`] (the host lock is dropped after commit).
pub(crate) async fn release(
    conn: &mut PgConnection,
    channel: &str,
    owner: &HostId,
    now: Now,
) -> Result<u64, StoreError> {
    let n = sqlx::query(concat!(
        "UPDATE processes SET owner = NULL, wake_at = COALESCE($3::bigint, ",
        db_now!(),
        "), updated_at = $2
         WHERE owner = $1 AND status = 'running'"
    ))
    .bind(owner.as_str())
    .bind(micros(now.host()))
    .bind(now.bind())
    .execute(&mut *conn)
    .await
    .db()?
    .rows_affected();
    if n > 0 {
        notify(conn, channel).await?;
    }
    Ok(n)
}

/// [`steadfast_core::Store::signal`].
pub(crate) async fn signal(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    name: &str,
    payload: &str,
    now: Now,
) -> Result<i64, StoreError> {
    let (status, _, _) = lock_status(conn, id, now).await?;
    if status.is_finished() {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "signal",
            expected: "running, suspended or blocked",
        });
    }
    insert_signal(conn, channel, id, name, payload, now).await
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
    if status.is_finished() {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "cancel",
            expected: "running, suspended or blocked",
        });
    }
    let after = cancel_one(conn, channel, id, status, owner, live, now).await?;
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
            cancel_one(conn, channel, &child, status, owner, live, now).await?;
        }
    }
    Ok(after)
}

/// Cancels one unfinished (locked) process: at once when no live lease
/// holds it (telling its parent), otherwise by requesting it.
async fn cancel_one(
    conn: &mut PgConnection,
    channel: &str,
    id: &ProcessId,
    status: Status,
    owner: Option<String>,
    live: bool,
    now: Now,
) -> Result<Status, StoreError> {
    let leased = status == Status::Running && owner.is_some() && live;
    if leased {
        sqlx::query("UPDATE processes SET cancel_requested = true, updated_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(micros(now.host()))
            .execute(&mut *conn)
            .await
            .db()?;
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
    if !matches!(status, Status::Blocked | Status::Failed) {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "retry",
            expected: "blocked or failed",
        });
    }
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
