//! Many journal appends in one statement: the writer folds the appends of a
//! batch (from any processes) into a single round trip, each still fenced,
//! cancel-checked and duplicate-checked on its own.

use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres, Row, SqlSafeStr};
use steadfast_core::{JournalEntry, Lease, StoreError};

use crate::clock::db_now;
use crate::rows::Db;

/// A statement with its parameters bound.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The statement of [`append_many`]: `$1`…`$16` are the columns of the
/// appends as arrays, one element per append.
pub(crate) const APPEND_MANY: &str = concat!(
    "WITH input AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
             $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
             $11::text[], $12::bigint[], $13::bigint[], $14::bigint[], $15::text[],
             $16::bigint[])
         WITH ORDINALITY AS t(process_id, name, seq, kind, status, outcome, attempts,
             started_at, finished_at, due_at, file, line, consumed_signal, epoch, owner,
             consumed_at, ord)
     ), checked AS (
         -- The fence: each input row looks its process up by primary key
         -- (a lateral join cannot become a hash join over every running
         -- process, whatever the statistics say) and locks it. The owner is
         -- compared with IS NOT DISTINCT FROM, which no index serves: with
         -- `=`, statistics taken before any process had an owner sent the
         -- lookup through `processes_owner`, reading every lease of the host.
         SELECT i.*, pr.cancel_requested,
             (i.consumed_signal IS NULL OR EXISTS (
                 SELECT 1 FROM signals s WHERE s.id = i.consumed_signal
                     AND s.process_id = i.process_id AND s.consumed_at IS NULL
             )) AS signal_ok
         FROM input i LEFT JOIN LATERAL (
             SELECT pr.cancel_requested FROM processes pr
             WHERE pr.id = i.process_id AND pr.epoch = i.epoch
                 AND pr.owner IS NOT DISTINCT FROM i.owner AND pr.status = 'running'
             FOR NO KEY UPDATE
         ) pr ON true
     ), up AS (
         INSERT INTO journal (process_id, name, seq, kind, status, outcome, attempts,
             started_at, finished_at, due_at, file, line, consumed_signal,
             db_started_at, db_finished_at)
         SELECT process_id, name, seq, kind, status, outcome, attempts, started_at,
             finished_at, due_at, file, line, consumed_signal, ",
    db_now!(),
    ", CASE WHEN status = 'scheduled' THEN NULL ELSE ",
    db_now!(),
    " END
         FROM checked WHERE cancel_requested = false AND signal_ok
         ON CONFLICT (process_id, name) DO UPDATE SET status = excluded.status,
             db_finished_at = excluded.db_finished_at,
             outcome = excluded.outcome, attempts = excluded.attempts,
             finished_at = excluded.finished_at,
             due_at = coalesce(excluded.due_at, journal.due_at),
             file = coalesce(excluded.file, journal.file),
             line = coalesce(excluded.line, journal.line),
             consumed_signal = excluded.consumed_signal, seq = excluded.seq
         WHERE journal.status = 'scheduled'
         RETURNING process_id, name
     ), consumed AS (
         -- Only entries that consume a signal touch `signals`; rows are
         -- matched to `up` by a join (hashed), not a probe per row.
         UPDATE signals s SET consumed_at = c.consumed_at
         FROM checked c JOIN up ON up.process_id = c.process_id AND up.name = c.name
         WHERE c.consumed_signal IS NOT NULL AND s.id = c.consumed_signal
             AND s.process_id = c.process_id AND s.consumed_at IS NULL
         RETURNING s.id
     )
     SELECT c.ord, c.cancel_requested, c.signal_ok, up.name IS NOT NULL,
         (SELECT count(*) FROM consumed)
     FROM checked c LEFT JOIN up ON up.process_id = c.process_id AND up.name = c.name
     ORDER BY c.ord"
);

/// [`APPEND_MANY`] (or a statement with its parameters, such as its
/// `EXPLAIN`) with the columns of `appends` bound.
pub(crate) fn bound<'q>(
    sql: impl SqlSafeStr,
    appends: &[(&'q Lease, &'q JournalEntry)],
) -> PgQuery<'q> {
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
    sqlx::query(sql)
        .bind(ids)
        .bind(names)
        .bind(seqs)
        .bind(kinds)
        .bind(statuses)
        .bind(outcomes)
        .bind(attempts)
        .bind(started)
        .bind(finished)
        .bind(due)
        .bind(files)
        .bind(lines)
        .bind(signals)
        .bind(epochs)
        .bind(owners)
        .bind(consumed_at)
}

/// One statement for all of `appends`; the result of each, in order.
/// Every entry must pass [`crate::ops::journal::append_is_checked`].
pub(crate) async fn append_many(
    conn: &mut PgConnection,
    appends: &[(&Lease, &JournalEntry)],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let n = appends.len();
    let rows = bound(APPEND_MANY, appends)
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests {
    use std::time::Duration;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{Connection, PgConnection};
    use steadfast_core::group_commit;
    use steadfast_core::{
        EntryKind, EntryStatus, HostId, JournalEntry, NewProcess, ProcessId, Store, StoreAdmin,
        StoreError, Timestamp,
    };

    use crate::write::Write;
    use crate::writer::Writer;
    use crate::{PostgresOptions, PostgresStore};

    fn step(seq: i64, name: &str, outcome: &str, at: Timestamp) -> JournalEntry {
        JournalEntry {
            seq,
            name: name.to_owned(),
            kind: EntryKind::Step,
            status: EntryStatus::Completed,
            outcome: Some(outcome.to_owned()),
            attempts: 1,
            started_at: at,
            finished_at: Some(at),
            due_at: None,
            location: None,
            consumed_signal: None,
        }
    }

    fn new_process(id: &str, now: Timestamp) -> NewProcess {
        NewProcess {
            id: ProcessId::new(id).unwrap(),
            kind: "test".to_owned(),
            version: 1,
            input: "null".to_owned(),
            now,
            parent: None,
            traceparent: None,
        }
    }

    /// One batch through the writer mixing appends under a stale epoch, a
    /// duplicate of a stored entry and good ones: each caller gets its own
    /// answer and only the good entries are stored.
    #[tokio::test]
    async fn a_batch_mixing_fenced_duplicate_and_good_appends_answers_each() {
        crate::test_schema::in_fresh_schema(mixed_batch).await;
    }

    async fn mixed_batch(url: String, schema: String) {
        let store = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema))
            .await
            .unwrap();
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let ttl = Duration::from_secs(3600);
        let (h1, h2) = (HostId::new("h1"), HostId::new("h2"));
        // "moved" is claimed by h1, given up, and claimed again by h2: h1's
        // lease on it is stale.
        store.spawn(new_process("moved", now)).await.unwrap();
        let stale = store.claim(&h1, now, ttl, 1).await.unwrap().remove(0).lease;
        store.release(&h1, now).await.unwrap();
        let current = store.claim(&h2, now, ttl, 1).await.unwrap().remove(0).lease;
        assert!(current.epoch > stale.epoch);
        store.spawn(new_process("good", now)).await.unwrap();
        let good = store.claim(&h1, now, ttl, 1).await.unwrap().remove(0).lease;
        assert_eq!(good.id.as_str(), "good");
        store
            .append(&good, step(0, "stored", "\"first\"", now))
            .await
            .unwrap();

        let batch = [
            (good.clone(), step(1, "one", "1", now)),
            (stale.clone(), step(0, "stale", "\"lost\"", now)),
            (good.clone(), step(1, "stored", "\"second\"", now)),
            (current.clone(), step(0, "fresh", "2", now)),
            (good.clone(), step(2, "two", "3", now)),
        ];
        let (queue, inbox) = group_commit::queue();
        let mut answers = Vec::new();
        for (lease, entry) in batch {
            answers.push(queue.submit::<()>(Write::Append(lease, entry)).unwrap());
        }
        drop(queue);
        // Every append is queued before the writer starts: it takes them in
        // one batch (and stops once the queue is drained).
        let mut conn = PgConnection::connect(&url).await.unwrap();
        crate::schema::setup(&mut conn, &schema).await.unwrap();
        let options: PgConnectOptions = url.parse().unwrap();
        Writer::new(
            conn,
            options,
            schema.clone(),
            "steadfast_test".to_owned(),
            Duration::from_secs(5),
            512,
        )
        .run(inbox)
        .await;
        let mut got = Vec::new();
        for answer in answers {
            got.push(answer.await);
        }
        assert!(got[0].is_ok(), "{got:?}");
        assert!(
            matches!(&got[1], Err(StoreError::Fenced { id, epoch })
                if id.as_str() == "moved" && *epoch == stale.epoch),
            "{got:?}"
        );
        assert!(
            matches!(&got[2], Err(StoreError::DuplicateEntry { id, name })
                if id.as_str() == "good" && name == "stored"),
            "{got:?}"
        );
        assert!(got[3].is_ok(), "{got:?}");
        assert!(got[4].is_ok(), "{got:?}");

        let journal = store.journal(&good.id).await.unwrap();
        let stored: Vec<(&str, Option<&str>)> = journal
            .iter()
            .map(|e| (e.name.as_str(), e.outcome.as_deref()))
            .collect();
        assert_eq!(
            stored,
            [
                ("stored", Some("\"first\"")),
                ("one", Some("1")),
                ("two", Some("3"))
            ]
        );
        let moved = store.journal(&current.id).await.unwrap();
        let names: Vec<&str> = moved.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["fresh"], "the stale lease's entry is not stored");
    }
}
