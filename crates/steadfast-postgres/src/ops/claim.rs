//! Claims, run on a pooled connection in one transaction: dead hosts'
//! processes are made due, due processes are locked with `SKIP LOCKED` (so
//! concurrent claimers on any machine get disjoint sets) and updated, and
//! their journals and pending signals are loaded with one query each.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row};
use steadfast_core::rules::{self, Recorded};
use steadfast_core::{Claimed, HostId, JournalEntry, Lease, PendingSignal, RowError, StoreError};

use super::{micros, notify};
use crate::clock::{Now, db_now};
use crate::hosts::Hosts;
use crate::rows::{
    Db, journal_columns, journal_from_row, process_columns, process_from_row, signal_columns,
    signal_from_row,
};

// `$3` is the host's now, or NULL when the database's clock decides; `$2`
// the lease in microseconds. Each claimed process's history gets its entry
// (`$6`, `$7`: what `rules::event` says a claim records) in the same
// statement; a row whose epoch or generation is missing (corrupt, parked
// below) records 0, so it cannot fail the claim of the others.
const CLAIM: &str = concat!(
    "WITH t AS (SELECT COALESCE($3::bigint, ",
    db_now!(),
    ") AS now),
     due AS (
         SELECT id AS due_id, wake_at AS due_at FROM processes, t
         WHERE wake_at <= t.now AND status IN ('running', 'suspended')
         ORDER BY wake_at, id
         LIMIT $4
         FOR UPDATE SKIP LOCKED
     ),
     claimed AS (
         UPDATE processes SET owner = $1, epoch = epoch + 1, status = 'running',
             wake_at = t.now + $2, updated_at = $5, waiting_for = '{}', parked_files = '{}',
             parked_lines = '{}'
         FROM due, t WHERE id = due.due_id
         RETURNING ",
    process_columns!(),
    ", due.due_at
     ),
     logged AS (
         INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
         SELECT id, $5, $6, $1, COALESCE(epoch, 0), COALESCE(generation, 0), $7 FROM claimed
     )
     SELECT * FROM claimed"
);

const JOURNALS: &str = concat!(
    "SELECT ",
    journal_columns!(),
    " FROM journal WHERE process_id = ANY($1) ORDER BY process_id, seq, name"
);

const SIGNALS: &str = concat!(
    "SELECT ",
    signal_columns!(),
    " FROM signals WHERE process_id = ANY($1) AND consumed_at IS NULL ORDER BY process_id, id"
);

/// [`steadfast_core::Store::claim`].
pub(crate) async fn claim(
    pool: &PgPool,
    hosts: &Hosts,
    channel: &str,
    owner: &HostId,
    now: Now,
    lease: Duration,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    hosts.ensure_held(owner).await?;
    let mut tx = pool.begin().await.db()?;
    let dead = hosts.dead_owners(&mut tx, now).await?;
    if !dead.is_empty() {
        let n = sqlx::query(
            // Runnable since they were created (at the latest now), so they
            // are claimed before work that never started.
            concat!(
                "UPDATE processes SET wake_at = LEAST(created_at, t.now)
                 FROM (SELECT COALESCE($2::bigint, ",
                db_now!(),
                ") AS now) AS t
                 WHERE owner = ANY($1) AND status = 'running' AND wake_at > t.now"
            ),
        )
        .bind(&dead)
        .bind(now.bind())
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        if n > 0 {
            notify(&mut tx, channel).await?;
        }
        tracing::info!(
            owners = ?dead,
            processes = n,
            "hosts are gone; their processes are runnable now"
        );
    }
    let (kind, detail) = rules::event(Recorded::Claim);
    let rows = sqlx::query(CLAIM)
        .bind(owner.as_str())
        .bind(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
        .bind(now.bind())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(now.host().as_micros())
        .bind(kind.as_str())
        .bind(detail)
        .fetch_all(&mut *tx)
        .await
        .db()?;
    // Rows are decoded one by one: a process whose row, journal or signals
    // do not decode is parked as blocked, the others are claimed.
    let mut bad: HashMap<String, RowError> = HashMap::new();
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let due_at: i64 = row.try_get("due_at").db()?;
        match process_from_row(row) {
            Ok(record) => claimed.push((due_at, record)),
            Err(StoreError::CorruptRow(error)) => {
                let id: String = row.try_get(0).db()?;
                bad.insert(id, error);
            }
            Err(other) => return Err(other),
        }
    }
    claimed.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    let ids: Vec<String> = claimed
        .iter()
        .map(|(_, r)| r.id.as_str().to_owned())
        .collect();

    let mut journals: HashMap<String, Vec<JournalEntry>> = HashMap::new();
    let mut signals: HashMap<String, Vec<PendingSignal>> = HashMap::new();
    if !ids.is_empty() {
        for row in sqlx::query(JOURNALS)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .db()?
        {
            match journal_from_row(&row) {
                Ok((process, entry)) => journals.entry(process).or_default().push(entry),
                Err(StoreError::CorruptRow(error)) => {
                    let process: String = row.try_get(0).db()?;
                    bad.entry(process).or_insert(error);
                }
                Err(other) => return Err(other),
            }
        }
        for row in sqlx::query(SIGNALS)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .db()?
        {
            match signal_from_row(&row) {
                Ok((process, signal)) => signals.entry(process).or_default().push(signal),
                Err(StoreError::CorruptRow(error)) => {
                    let process: String = row.try_get(0).db()?;
                    bad.entry(process).or_insert(error);
                }
                Err(other) => return Err(other),
            }
        }
    }
    for (id, error) in &bad {
        park(&mut tx, id, error, now).await?;
    }
    tx.commit().await.db()?;

    Ok(claimed
        .into_iter()
        .filter(|(_, record)| !bad.contains_key(record.id.as_str()))
        .map(|(_, record)| {
            let id = record.id.as_str();
            Claimed {
                journal: journals.remove(id).unwrap_or_default(),
                signals: signals.remove(id).unwrap_or_default(),
                lease: Lease {
                    id: record.id.clone(),
                    owner: owner.clone(),
                    epoch: record.epoch,
                },
                record,
            }
        })
        .collect())
}

/// Parks process `id` as blocked because `error` does not decode: it is not
/// claimed again until it is repaired and retried.
async fn park(
    conn: &mut sqlx::PgConnection,
    id: &str,
    error: &RowError,
    now: Now,
) -> Result<(), StoreError> {
    let reason =
        format!("stored data does not decode: {error}; repair the row and retry the process");
    tracing::warn!(%reason, "parking a process whose stored data does not decode");
    sqlx::query(
        "UPDATE processes SET status = 'blocked', error = $2, blocked_step = NULL,
             wake_at = NULL, owner = NULL, cancel_requested = false, waiting_for = '{}',
             parked_files = '{}', parked_lines = '{}', updated_at = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(&reason)
    .bind(now.host().as_micros())
    .execute(&mut *conn)
    .await
    .db()?;
    super::events::record(conn, id, Recorded::Park { reason: &reason }, None, now).await
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
