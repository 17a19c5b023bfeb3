//! The writer thread: it owns the write connection and runs the store's
//! side of the shared group commit ([`steadfast_core::group_commit`]): one
//! immediate transaction per batch; a batch in which a write fails (or one
//! holding a transactional step) runs again with a savepoint per write.

use rusqlite::Connection;
use steadfast_core::group_commit::{self, Applied, GroupCommit, Inbox, OneByOne, Value};
use steadfast_core::rules::BatchFailure;
use steadfast_core::{HostId, StoreError};

use crate::hosts::Hosts;
use crate::ops::{admin, claim, journal, signal, spawn};
use crate::rows::is_retryable;
use crate::transaction::{self, WriteConnection};
use crate::write::Write;

/// Why a whole batch failed: `what` failed with SQLite's error `e`.
fn batch_failure(what: &str, e: &rusqlite::Error) -> BatchFailure {
    BatchFailure::new(what, e, is_retryable(e))
}

/// The state owned by the writer thread.
pub(crate) struct Writer {
    conn: WriteConnection,
    hosts: Hosts,
    max_batch: usize,
    /// Owners released by the open batch: their host locks go once it
    /// commits.
    released: Vec<HostId>,
}

impl Writer {
    pub(crate) fn new(conn: Connection, hosts: Hosts, max_batch: usize) -> Self {
        Writer {
            conn: WriteConnection::new(conn),
            hosts,
            max_batch: max_batch.max(1),
            released: Vec::new(),
        }
    }

    /// Runs the group commit on this thread until every sender is gone and
    /// the queue is drained, then checkpoints.
    pub(crate) fn run(self, inbox: Inbox<Write>) {
        let max_batch = self.max_batch;
        let writer = group_commit::run_blocking(self, inbox, max_batch);
        // Everything in the WAL goes into the database file, so the file
        // alone holds every write after a clean shutdown.
        if let Err(e) = writer
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "could not checkpoint the WAL at close");
        }
        tracing::debug!("steadfast sqlite writer stopped");
    }

    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Runs one write; what it returns is its caller's answer.
    fn write(&mut self, write: &mut Write) -> Result<Value, StoreError> {
        let conn = &self.conn;
        let value = match write {
            Write::Spawn(p) => spawn::spawn(conn, p)?.into(),
            Write::SpawnAndClaim(p, owner, lease) => {
                claim::spawn_and_claim(conn, &mut self.hosts, p, owner, *lease)?.into()
            }
            Write::Claim {
                owner,
                now,
                lease,
                limit,
            } => claim::claim(conn, &mut self.hosts, owner, *now, *lease, *limit)?.into(),
            Write::Append(lease, entry) => journal::append(conn, lease, entry)?.into(),
            Write::Suspend(lease, s) => journal::suspend(conn, lease, s)?.into(),
            Write::Finish(lease, f, now) => journal::finish(conn, lease, f, *now)?.into(),
            Write::Renew(owner, leases, now, lease) => {
                claim::renew(conn, &mut self.hosts, owner, leases, *now, *lease)?.into()
            }
            Write::Release(owner, now) => {
                let count = claim::release(conn, owner, *now)?;
                self.released.push(owner.clone());
                count.into()
            }
            Write::Signal(id, sent) => signal::send(conn, id, sent)?.into(),
            Write::Cancel(id, now) => admin::cancel(conn, id, *now)?.into(),
            Write::Retry(id, now) => admin::retry(conn, id, *now)?.into(),
            Write::RejectSignal(lease, signal, reason, now) => {
                signal::reject(conn, lease, *signal, reason, *now)?.into()
            }
            Write::DiscardSignal(id, signal, now) => {
                signal::discard(conn, id, *signal, *now)?.into()
            }
            Write::Rewind(id, step, now) => admin::rewind(conn, id, step, *now)?.into(),
            Write::PurgeChunk(before) => admin::purge_chunk(conn, *before)?.into(),
            Write::Pragmas => admin::pragmas(conn)?.into(),
            Write::ContinueAsNew(lease, input, now) => {
                spawn::continue_as_new(conn, lease, input, *now)?.into()
            }
            Write::SaveSources(sources) => admin::save_sources(conn, sources)?.into(),
            Write::SaveSubscription(report) => admin::save_subscription(conn, report)?.into(),
            Write::Transaction(lease, entry, body) => {
                let body = body.take().ok_or_else(|| {
                    StoreError::Corrupt("internal error: a transactional step ran twice".to_owned())
                })?;
                transaction::apply(&mut self.conn, lease, entry.clone(), body)?.into()
            }
        };
        Ok(value)
    }
}

impl GroupCommit for Writer {
    type Write = Write;
    const STORE: &'static str = "sqlite";

    /// First the whole batch without savepoints; when a write fails on its
    /// own, that attempt is rolled back and the batch runs again write by
    /// write ([`group_commit::one_by_one`]), each in its savepoint, so the
    /// failing write fails alone. A batch with a transactional step (whose
    /// body runs once) goes write by write at once.
    async fn run(
        &mut self,
        mut writes: Vec<Write>,
    ) -> Result<Vec<Result<Value, StoreError>>, BatchFailure> {
        if writes.iter().all(Write::repeatable)
            && let Some(done) = self.run_together(&mut writes)
        {
            return done;
        }
        group_commit::one_by_one(self, writes).await
    }
}

impl Writer {
    /// The batch in one transaction without savepoints: each write's result,
    /// the batch's failure, or `None` when a write failed on its own (then
    /// nothing of the attempt stays).
    fn run_together(
        &mut self,
        writes: &mut [Write],
    ) -> Option<Result<Vec<Result<Value, StoreError>>, BatchFailure>> {
        let reaped = self.hosts.last_reap();
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            return Some(Err(batch_failure("cannot begin a write transaction", &e)));
        }
        self.released.clear();
        let mut results = Vec::with_capacity(writes.len());
        for write in writes.iter_mut() {
            let result = self.write(write);
            if self.conn.is_autocommit() {
                self.released.clear();
                return Some(Err(rolled_back(result.err().as_ref())));
            }
            match result {
                Ok(value) => results.push(Ok(value)),
                Err(_) => {
                    self.rollback_now();
                    self.hosts.undo_reap(reaped);
                    return None;
                }
            }
        }
        if let Err(e) = self.exec("COMMIT") {
            let failure = batch_failure("commit failed", &e);
            self.rollback_now();
            return Some(Err(failure));
        }
        for owner in self.released.drain(..) {
            self.hosts.release(owner.as_str());
        }
        Some(Ok(results))
    }

    /// Undoes the open batch, if SQLite has not already.
    fn rollback_now(&mut self) {
        self.released.clear();
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The failure of a batch whose transaction SQLite rolled back itself:
/// it does that on a full disk, an I/O error, a busy database or lack of
/// memory, conditions that may pass, so the batch is repeatable unless the
/// write's own error (`cause`) says otherwise (a corrupt file).
fn rolled_back(cause: Option<&StoreError>) -> BatchFailure {
    match cause {
        Some(cause) => BatchFailure {
            message: format!("the write transaction was rolled back by SQLite: {cause}"),
            retryable: cause.is_retryable(),
        },
        None => BatchFailure {
            message: "the write transaction was rolled back by SQLite".to_owned(),
            retryable: true,
        },
    }
}

/// One immediate transaction per batch; each write in a savepoint of its
/// own, rolled back when the write fails, so it fails alone.
impl OneByOne for Writer {
    async fn begin(&mut self) -> Result<(), BatchFailure> {
        self.released.clear();
        self.exec("BEGIN IMMEDIATE")
            .map_err(|e| batch_failure("cannot begin a write transaction", &e))
    }

    async fn apply(&mut self, mut write: Write) -> Applied {
        self.exec("SAVEPOINT cmd")
            .map_err(|e| batch_failure("cannot open a savepoint", &e))?;
        let released = self.released.len();
        let result = self.write(&mut write);
        // A transactional step whose body failed (`false`) is rolled back
        // like an error; its caller still gets `Ok(false)`.
        let undo = matches!(result, Err(_) | Ok(Value::Flag(false)));
        let ended = if undo {
            self.released.truncate(released);
            self.exec("ROLLBACK TO cmd")
        } else {
            Ok(())
        };
        if let Err(e) = ended.and_then(|()| self.exec("RELEASE cmd")) {
            return Err(batch_failure("cannot end a savepoint", &e));
        }
        if self.conn.is_autocommit() {
            return Err(rolled_back(result.as_ref().err()));
        }
        Ok(result)
    }

    async fn commit(&mut self) -> Result<(), BatchFailure> {
        self.exec("COMMIT")
            .map_err(|e| batch_failure("commit failed", &e))?;
        for owner in self.released.drain(..) {
            self.hosts.release(owner.as_str());
        }
        Ok(())
    }

    async fn rollback(&mut self) {
        self.rollback_now();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use steadfast_core::group_commit;
    use steadfast_core::{
        EntryKind, EntryStatus, JournalEntry, Lease, NewProcess, ProcessId, SpawnOutcome, Store,
        StoreAdmin, StoreError, Timestamp,
    };

    use super::{Write, Writer};
    use crate::hosts::Hosts;
    use crate::{SqliteOptions, SqliteStore, schema};

    fn step(seq: i64, name: &str, now: Timestamp) -> JournalEntry {
        JournalEntry {
            seq,
            name: name.to_owned(),
            kind: EntryKind::Step,
            status: EntryStatus::Completed,
            outcome: Some(format!("{seq}")),
            attempts: 1,
            started_at: now,
            finished_at: Some(now),
            due_at: None,
            location: None,
            consumed_signal: None,
        }
    }

    /// Spawns and claims `ids` (in that order) through a store that is then
    /// closed; returns their leases.
    async fn leases(path: &Path, ids: &[&str], now: Timestamp) -> Vec<Lease> {
        let store = SqliteStore::open(path).await.unwrap();
        store.follow_host_clock();
        let host = steadfast_core::HostId::new("h1");
        let mut leases = Vec::new();
        for id in ids {
            let spawned = store
                .spawn(NewProcess {
                    id: ProcessId::new(*id).unwrap(),
                    kind: "test".to_owned(),
                    version: 1,
                    input: "null".to_owned(),
                    now,
                    parent: None,
                    traceparent: None,
                })
                .await
                .unwrap();
            assert!(matches!(spawned, SpawnOutcome::Created));
            let claimed = store
                .claim(&host, now, Duration::from_secs(3600), 1)
                .await
                .unwrap();
            leases.push(claimed[0].lease.clone());
        }
        store.close().await.unwrap();
        leases
    }

    /// Queues `writes` (all before the writer starts: one batch), runs the
    /// writer on this thread until the queue is drained, and returns the
    /// wait for each caller's answer.
    fn one_batch(
        path: &Path,
        writes: Vec<Write>,
    ) -> Vec<impl Future<Output = Result<(), StoreError>> + Send + use<>> {
        let location = path.display().to_string();
        let options = SqliteOptions::default();
        let found = schema::inspect(path, &location, &options).unwrap();
        let conn = schema::open_writer(path, &location, &options, found).unwrap();
        let (queue, inbox) = group_commit::queue();
        let answers: Vec<_> = writes
            .into_iter()
            .map(|w| queue.submit::<()>(w).unwrap())
            .collect();
        drop(queue);
        Writer::new(conn, Hosts::new(path), 512).run(inbox);
        answers
    }

    /// A batch of appends in which one is under a stale lease: the batch
    /// first runs without savepoints, the fenced append makes it run again
    /// write by write, and in the end the fenced append fails alone while
    /// each of its neighbours is stored exactly once.
    #[tokio::test]
    async fn a_fenced_append_fails_alone_and_its_neighbours_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.db");
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let held = leases(&path, &["a", "b"], now).await;
        let (a, b) = (held[0].clone(), held[1].clone());
        let mut stale = b.clone();
        stale.epoch -= 1;
        let waits = tokio::task::spawn_blocking({
            let path = path.clone();
            move || {
                one_batch(
                    &path,
                    vec![
                        Write::Append(a.clone(), step(0, "one", now)),
                        Write::Append(stale, step(0, "lost", now)),
                        Write::Append(b.clone(), step(0, "one", now)),
                        Write::Append(a, step(1, "two", now)),
                    ],
                )
            }
        })
        .await
        .unwrap();
        let mut answers = Vec::new();
        for wait in waits {
            answers.push(wait.await);
        }
        assert!(answers[0].is_ok(), "{answers:?}");
        assert!(
            matches!(&answers[1], Err(StoreError::Fenced { id, .. }) if id.as_str() == "b"),
            "{answers:?}"
        );
        assert!(answers[2].is_ok(), "{answers:?}");
        assert!(answers[3].is_ok(), "{answers:?}");
        let store = SqliteStore::open(&path).await.unwrap();
        let names = |journal: Vec<JournalEntry>| -> Vec<String> {
            journal.into_iter().map(|e| e.name).collect()
        };
        assert_eq!(
            names(store.journal(&held[0].id).await.unwrap()),
            ["one", "two"]
        );
        assert_eq!(names(store.journal(&held[1].id).await.unwrap()), ["one"]);
        store.close().await.unwrap();
    }
}
