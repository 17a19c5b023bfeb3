//! Claims, run on a pooled connection in one transaction: dead hosts'
//! processes are made due, due processes are locked with `SKIP LOCKED` (so
//! concurrent claimers on any machine get disjoint sets) and updated, and
//! their journals and pending signals are loaded with one query each.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{PgPool, Row};
use steadfast_core::{Claimed, HostId, JournalEntry, Lease, PendingSignal, StoreError, Timestamp};

use crate::hosts::Hosts;
use crate::ops::notify;
use crate::rows::{
    Db, journal_columns, journal_from_row, process_columns, process_from_row, signal_columns,
    signal_from_row,
};

const CLAIM: &str = concat!(
    "WITH due AS (
         SELECT id AS due_id, wake_at AS due_at FROM processes
         WHERE wake_at <= $3 AND status IN ('running', 'suspended')
         ORDER BY wake_at, id
         LIMIT $4
         FOR UPDATE SKIP LOCKED
     )
     UPDATE processes SET owner = $1, epoch = epoch + 1, status = 'running',
         wake_at = $2, updated_at = $3, waiting_for = '{}', parked_files = '{}',
         parked_lines = '{}'
     FROM due WHERE id = due.due_id
     RETURNING ",
    process_columns!(),
    ", due.due_at"
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
    now: Timestamp,
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
            "UPDATE processes SET wake_at = LEAST(created_at, $2)
             WHERE owner = ANY($1) AND status = 'running' AND wake_at > $2",
        )
        .bind(&dead)
        .bind(now.as_micros())
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
    let rows = sqlx::query(CLAIM)
        .bind(owner.as_str())
        .bind((now + lease).as_micros())
        .bind(now.as_micros())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .db()?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let due_at: i64 = row.try_get("due_at").db()?;
        claimed.push((due_at, process_from_row(row)?));
    }
    if claimed.is_empty() {
        tx.commit().await.db()?;
        return Ok(Vec::new());
    }
    claimed.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    let ids: Vec<String> = claimed
        .iter()
        .map(|(_, r)| r.id.as_str().to_owned())
        .collect();

    let mut journals: HashMap<String, Vec<JournalEntry>> = HashMap::new();
    for row in sqlx::query(JOURNALS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .db()?
    {
        let (process, entry) = journal_from_row(&row)?;
        journals.entry(process).or_default().push(entry);
    }
    let mut signals: HashMap<String, Vec<PendingSignal>> = HashMap::new();
    for row in sqlx::query(SIGNALS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .db()?
    {
        let (process, signal) = signal_from_row(&row)?;
        signals.entry(process).or_default().push(signal);
    }
    tx.commit().await.db()?;

    Ok(claimed
        .into_iter()
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
