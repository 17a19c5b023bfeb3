//! Claims, run on a pooled connection: dead hosts' processes are made due,
//! then one autocommitted statement locks due processes with `SKIP LOCKED`
//! (so concurrent claimers on any machine get disjoint sets) and takes
//! their leases, and the journals and pending signals of those that have
//! any are loaded with one query each (a process never run before needs
//! neither: its claim is one round trip).

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool, Row};
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
pub(crate) const CLAIM: &str = concat!(
    "WITH t AS (SELECT COALESCE($3::bigint, ",
    db_now!(),
    ") AS now),
     due AS (
         -- `(SELECT now FROM t)` is computed before the scan, so it can
         -- bound a `processes_wake` index scan (a join with `t` is only a
         -- filter over every runnable process).
         SELECT id AS due_id, wake_at AS due_at FROM processes
         WHERE wake_at <= (SELECT now FROM t) AND status IN ('running', 'suspended')
         ORDER BY wake_at, id
         LIMIT $4
         FOR UPDATE SKIP LOCKED
     ),
     claimed AS (
         UPDATE processes SET owner = $1, epoch = epoch + 1, status = 'running',
             wake_at = t.now + $2, updated_at = $5, waiting_for = '{}', parked_files = '{}',
             parked_lines = '{}'
         FROM due, t
         -- The `ANY` lets the update find its rows by primary key: a plain join
         -- with `due` may be planned as a scan of every process.
         WHERE id = due.due_id AND id = ANY (ARRAY (SELECT due_id FROM due))
         RETURNING ",
    process_columns!(),
    ", due.due_at,
             EXISTS (SELECT 1 FROM journal j WHERE j.process_id = processes.id) AS has_journal,
             EXISTS (SELECT 1 FROM signals s WHERE s.process_id = processes.id
                 AND s.consumed_at IS NULL) AS has_signals
     ),
     logged AS (
         INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
         SELECT id, $5, $6, $1, COALESCE(epoch, 0), COALESCE(generation, 0), $7 FROM claimed
     )
     SELECT * FROM claimed"
);

// Journals and signals are read one process at a time through a lateral
// subquery (its `ORDER BY` keeps the planner from flattening it into a
// join), so each is an index range scan whatever the statistics say, where
// `process_id = ANY($1)` may be planned as a scan of the whole table.
pub(crate) const JOURNALS: &str = concat!(
    "SELECT j.* FROM unnest($1::text[]) AS q(id) CROSS JOIN LATERAL (SELECT ",
    journal_columns!(),
    " FROM journal WHERE process_id = q.id ORDER BY seq, name) AS j ORDER BY j.process_id, j.seq, j.name"
);

pub(crate) const SIGNALS: &str = concat!(
    "SELECT s.* FROM unnest($1::text[]) AS q(id) CROSS JOIN LATERAL (SELECT ",
    signal_columns!(),
    " FROM signals WHERE process_id = q.id AND consumed_at IS NULL ORDER BY id) AS s
     ORDER BY s.process_id, s.id"
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
    let mut conn = pool.acquire().await.db()?;
    let dead = hosts.dead_owners(&mut conn, now).await?;
    if !dead.is_empty() {
        let mut tx = conn.begin().await.db()?;
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
        tx.commit().await.db()?;
        tracing::info!(
            owners = ?dead,
            processes = n,
            "hosts are gone; their processes are runnable now"
        );
    }
    // The claim is one autocommitted statement: it takes the leases and
    // says which claimed processes have a journal or pending signals; only
    // those are read, after it (a lease holder's journal changes only by
    // its own writes, and a signal that arrives meanwhile is one more a
    // wait finds).
    let (kind, detail) = rules::event(Recorded::Claim);
    let rows = sqlx::query(CLAIM)
        .bind(owner.as_str())
        .bind(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
        .bind(now.bind())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(now.host().as_micros())
        .bind(kind.as_str())
        .bind(detail)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    // Rows are decoded one by one: a process whose row, journal or signals
    // do not decode is parked as blocked, the others are claimed.
    let mut bad: HashMap<String, RowError> = HashMap::new();
    let mut claimed = Vec::with_capacity(rows.len());
    let mut with_journal = Vec::new();
    let mut with_signals = Vec::new();
    let mut taken = Vec::with_capacity(rows.len());
    for row in &rows {
        let due_at: i64 = row.try_get("due_at").db()?;
        let id: String = row.try_get(0).db()?;
        match process_from_row(row) {
            Ok(record) => {
                taken.push((id.clone(), record.epoch));
                if row.try_get::<bool, _>("has_journal").db()? {
                    with_journal.push(id);
                }
                if row.try_get::<bool, _>("has_signals").db()? {
                    with_signals.push(record.id.as_str().to_owned());
                }
                claimed.push((due_at, record));
            }
            Err(StoreError::CorruptRow(error)) => {
                bad.insert(id, error);
            }
            Err(other) => {
                hand_back(&mut conn, owner, &taken, now).await;
                return Err(other);
            }
        }
    }
    claimed.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));

    let mut journals: HashMap<String, Vec<JournalEntry>> = HashMap::new();
    let mut signals: HashMap<String, Vec<PendingSignal>> = HashMap::new();
    let loaded = load(
        &mut conn,
        &with_journal,
        &with_signals,
        &mut journals,
        &mut signals,
        &mut bad,
    )
    .await;
    if let Err(e) = loaded {
        // Not leased to a run: give the leases back rather than leave them
        // to run out.
        hand_back(&mut conn, owner, &taken, now).await;
        return Err(e);
    }
    for (id, error) in &bad {
        park(&mut conn, id, error, now).await?;
    }

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

/// Reads the journals of `with_journal` and the pending signals of
/// `with_signals`; rows that do not decode mark their process in `bad`.
async fn load(
    conn: &mut PgConnection,
    with_journal: &[String],
    with_signals: &[String],
    journals: &mut HashMap<String, Vec<JournalEntry>>,
    signals: &mut HashMap<String, Vec<PendingSignal>>,
    bad: &mut HashMap<String, RowError>,
) -> Result<(), StoreError> {
    if !with_journal.is_empty() {
        for row in sqlx::query(JOURNALS)
            .bind(with_journal)
            .fetch_all(&mut *conn)
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
    }
    if !with_signals.is_empty() {
        for row in sqlx::query(SIGNALS)
            .bind(with_signals)
            .fetch_all(&mut *conn)
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
    Ok(())
}

/// Gives back the leases just `taken` (id and epoch) after the claim could
/// not be completed: the processes are runnable again at once. Best effort:
/// when this fails too, the leases run out.
async fn hand_back(conn: &mut PgConnection, owner: &HostId, taken: &[(String, i64)], now: Now) {
    let (ids, epochs): (Vec<&str>, Vec<i64>) = taken
        .iter()
        .map(|(id, epoch)| (id.as_str(), *epoch))
        .unzip();
    let result = sqlx::query(concat!(
        "UPDATE processes p SET owner = NULL, wake_at = COALESCE($4::bigint, ",
        db_now!(),
        ")
         FROM unnest($2::text[], $3::bigint[]) AS l(id, epoch)
         WHERE p.id = l.id AND p.epoch = l.epoch AND p.owner = $1 AND p.status = 'running'"
    ))
    .bind(owner.as_str())
    .bind(&ids)
    .bind(&epochs)
    .bind(now.bind())
    .execute(conn)
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot give back the leases of a failed claim; they run out");
    }
}

/// Parks process `id` as blocked because `error` does not decode: it is not
/// claimed again until it is repaired and retried.
async fn park(
    conn: &mut PgConnection,
    id: &str,
    error: &RowError,
    now: Now,
) -> Result<(), StoreError> {
    let reason =
        format!("stored data does not decode: {error}; repair the row and retry the process");
    tracing::warn!(%reason, "parking a process whose stored data does not decode");
    // The block and its history entry in one autocommitted statement.
    let (kind, detail) = rules::event(Recorded::Park { reason: &reason });
    sqlx::query(
        "WITH parked AS (
             UPDATE processes SET status = 'blocked', error = $2, blocked_step = NULL,
                 wake_at = NULL, owner = NULL, cancel_requested = false, waiting_for = '{}',
                 parked_files = '{}', parked_lines = '{}', updated_at = $3
             WHERE id = $1
             RETURNING id, epoch, generation
         )
         INSERT INTO events (process_id, at, kind, host, epoch, generation, detail)
         SELECT id, $3, $4, NULL, COALESCE(epoch, 0), COALESCE(generation, 0), $5 FROM parked",
    )
    .bind(id)
    .bind(&reason)
    .bind(now.host().as_micros())
    .bind(kind.as_str())
    .bind(detail)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
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
