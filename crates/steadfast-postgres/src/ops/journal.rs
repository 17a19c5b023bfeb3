//! A lease holder's writes to its process: journal appends, suspending,
//! finishing (and telling a waiting parent).

use sqlx::PgConnection;
use steadfast_core::rules::{self, Recorded};
use steadfast_core::{
    Finish, JournalEntry, Lease, PendingSignal, ProcessId, Status, StoreError, SuspendOutcome,
    Suspension,
};

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
    let row = rules::finished(f);
    let (files, lines) = match row.parked {
        Some(at) => split_locations(std::slice::from_ref(at)),
        None => (Vec::new(), Vec::new()),
    };
    sqlx::query(
        "UPDATE processes SET status = $2, output = $3, error = $4, blocked_step = $5,
             wake_at = NULL, owner = NULL, cancel_requested = false, waiting_for = '{}',
             updated_at = $6, parked_files = $7, parked_lines = $8
         WHERE id = $1",
    )
    .bind(lease.id.as_str())
    .bind(row.status.as_str())
    .bind(row.output)
    .bind(row.error)
    .bind(row.blocked_step)
    .bind(micros(now.host()))
    .bind(&files)
    .bind(&lines)
    .execute(&mut *conn)
    .await
    .db()?;
    let host = Some(lease.owner.as_str());
    super::events::record(conn, lease.id.as_str(), Recorded::Finish(f), host, now).await?;
    notify_parent(conn, channel, &lease.id, f, now).await
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
