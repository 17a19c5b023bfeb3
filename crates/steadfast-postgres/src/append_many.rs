//! Many journal appends in one statement: the writer folds consecutive
//! appends of a batch (from any processes) into a single round trip, each
//! still fenced, cancel-checked and duplicate-checked on its own.

use sqlx::{PgConnection, Row};
use steadfast_core::{JournalEntry, Lease, StoreError};

use crate::rows::Db;

/// One statement for all of `appends`; the result of each, in order.
/// Every entry must pass [`crate::ops::append_is_checked`].
pub(crate) async fn append_many(
    conn: &mut PgConnection,
    appends: &[(&Lease, &JournalEntry)],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let n = appends.len();
    let mut ids = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut finished = Vec::with_capacity(n);
    let mut due = Vec::with_capacity(n);
    let mut files = Vec::with_capacity(n);
    let mut lines = Vec::with_capacity(n);
    let mut signals = Vec::with_capacity(n);
    let mut epochs = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut consumed_at = Vec::with_capacity(n);
    for (lease, e) in appends {
        ids.push(lease.id.as_str());
        names.push(e.name.as_str());
        seqs.push(e.seq);
        kinds.push(e.kind.as_str());
        statuses.push(e.status.as_str());
        outcomes.push(e.outcome.as_deref());
        attempts.push(i64::from(e.attempts));
        started.push(e.started_at.as_micros());
        finished.push(e.finished_at.map(|t| t.as_micros()));
        due.push(e.due_at.map(|t| t.as_micros()));
        files.push(e.location.as_ref().map(|l| l.file.as_str()));
        lines.push(e.location.as_ref().map(|l| i64::from(l.line)));
        signals.push(e.consumed_signal);
        epochs.push(lease.epoch);
        owners.push(lease.owner.as_str());
        consumed_at.push(e.finished_at.unwrap_or(e.started_at).as_micros());
    }
    let rows = sqlx::query(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                 $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
                 $11::text[], $12::bigint[], $13::bigint[], $14::bigint[], $15::text[],
                 $16::bigint[])
             WITH ORDINALITY AS t(process_id, name, seq, kind, status, outcome, attempts,
                 started_at, finished_at, due_at, file, line, consumed_signal, epoch, owner,
                 consumed_at, ord)
         ), p AS (
             SELECT i.ord, pr.cancel_requested
             FROM input i JOIN processes pr ON pr.id = i.process_id AND pr.epoch = i.epoch
                 AND pr.owner = i.owner AND pr.status = 'running'
             FOR NO KEY UPDATE OF pr
         ), checked AS (
             SELECT i.*, p.cancel_requested,
                 (i.consumed_signal IS NULL OR EXISTS (
                     SELECT 1 FROM signals s WHERE s.id = i.consumed_signal
                         AND s.process_id = i.process_id AND s.consumed_at IS NULL
                 )) AS signal_ok
             FROM input i LEFT JOIN p ON p.ord = i.ord
         ), up AS (
             INSERT INTO journal (process_id, name, seq, kind, status, outcome, attempts,
                 started_at, finished_at, due_at, file, line, consumed_signal)
             SELECT process_id, name, seq, kind, status, outcome, attempts, started_at,
                 finished_at, due_at, file, line, consumed_signal
             FROM checked WHERE cancel_requested = false AND signal_ok
             ON CONFLICT (process_id, name) DO UPDATE SET status = excluded.status,
                 outcome = excluded.outcome, attempts = excluded.attempts,
                 finished_at = excluded.finished_at,
                 due_at = coalesce(excluded.due_at, journal.due_at),
                 file = coalesce(excluded.file, journal.file),
                 line = coalesce(excluded.line, journal.line),
                 consumed_signal = excluded.consumed_signal, seq = excluded.seq
             WHERE journal.status = 'scheduled'
             RETURNING process_id, name
         ), consumed AS (
             UPDATE signals s SET consumed_at = c.consumed_at
             FROM checked c
             WHERE s.id = c.consumed_signal AND s.process_id = c.process_id
                 AND s.consumed_at IS NULL
                 AND EXISTS (SELECT 1 FROM up WHERE up.process_id = c.process_id
                     AND up.name = c.name)
             RETURNING s.id
         )
         SELECT c.ord, c.cancel_requested, c.signal_ok,
             EXISTS (SELECT 1 FROM up WHERE up.process_id = c.process_id AND up.name = c.name),
             (SELECT count(*) FROM consumed)
         FROM checked c ORDER BY c.ord",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&seqs)
    .bind(&kinds)
    .bind(&statuses)
    .bind(&outcomes)
    .bind(&attempts)
    .bind(&started)
    .bind(&finished)
    .bind(&due)
    .bind(&files)
    .bind(&lines)
    .bind(&signals)
    .bind(&epochs)
    .bind(&owners)
    .bind(&consumed_at)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    if rows.len() != n {
        return Err(StoreError::Corrupt(format!(
            "a batch of {n} appends returned {} results",
            rows.len()
        )));
    }
    rows.iter()
        .zip(appends)
        .map(|(row, (lease, e))| {
            let cancel: Option<bool> = row.try_get(1).db()?;
            let signal_ok: bool = row.try_get(2).db()?;
            let written: bool = row.try_get(3).db()?;
            Ok(match cancel {
                None => Err(StoreError::Fenced {
                    id: lease.id.clone(),
                    epoch: lease.epoch,
                }),
                Some(true) => Err(StoreError::CancelRequested(lease.id.clone())),
                Some(false) if !signal_ok => Err(StoreError::InvalidInput(format!(
                    "signal {} is not an unconsumed signal of process {:?}",
                    e.consumed_signal.unwrap_or_default(),
                    lease.id
                ))),
                Some(false) if !written => Err(StoreError::DuplicateEntry {
                    id: lease.id.clone(),
                    name: e.name.clone(),
                }),
                Some(false) => Ok(()),
            })
        })
        .collect()
}
