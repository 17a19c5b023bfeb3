//! The write operations, run by the writer task in its batches (the
//! `batch` module), one file per area: `spawn`, `claim`,
//! `journal` (and `append_many`), `signal`, `admin`. This file holds the
//! checks they share.
//!
//! Every write to a process row first locks that row (`FOR NO KEY UPDATE`),
//! so fencing, suspension and signalling are serialized per process across
//! all stores sharing the database, and a concurrent claim (which skips
//! locked rows) cannot take a process over in the middle of a write.

use sqlx::{PgConnection, Row};
use steadfast_core::rules;
use steadfast_core::{Lease, ProcessId, Status, StoreError, Timestamp};

pub(crate) mod admin;
pub(crate) mod append_many;
pub(crate) mod claim;
pub(crate) mod events;
pub(crate) mod journal;
pub(crate) mod signal;
pub(crate) mod spawn;

use crate::clock::{Now, db_now};
use crate::rows::Db;

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
        rules::parse_status(id.as_str(), &status)?,
        row.try_get(1).db()?,
        row.try_get(2).db()?,
    ))
}

/// Checks (and locks) that `lease` still holds its process: it exists, is
/// running, is owned by the lease's host, at the lease's epoch. Returns
/// whether a cancellation is pending. The owner is compared with `IS NOT
/// DISTINCT FROM` so the row is found by its key, never through
/// `processes_owner` (see `append_many.rs`).
pub(crate) async fn fence(conn: &mut PgConnection, lease: &Lease) -> Result<bool, StoreError> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "SELECT cancel_requested FROM processes
         WHERE id = $1 AND epoch = $2 AND owner IS NOT DISTINCT FROM $3 AND status = 'running'
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
