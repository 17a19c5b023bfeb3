//! The writer thread: it owns the write connection and commits the writes
//! of all callers in batches (group commit), one savepoint per write.

use std::time::Duration;

use rusqlite::Connection;
use steadfast_core::rules::BatchFailure;
use steadfast_core::{
    Claimed, Finish, FunctionSource, HostId, JournalEntry, Lease, NewProcess, ProcessId,
    SignalSent, SpawnOutcome, Status, StoreError, SubscriptionReport, SuspendOutcome, Suspension,
    Timestamp, TransactionBody,
};
use tokio::sync::{mpsc, oneshot};

use crate::hosts::Hosts;
use crate::ops::{admin, claim, journal, signal, spawn};
use crate::rows::is_retryable;
use crate::transaction::{self, WriteConnection};

/// Where a command's result goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write (or writer-side read) for the writer thread.
pub(crate) enum Command {
    Spawn(NewProcess, Reply<SpawnOutcome>),
    Claim {
        owner: HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        reply: Reply<Vec<Claimed>>,
    },
    Append(Lease, JournalEntry, Reply<()>),
    Suspend(Lease, Suspension, Reply<SuspendOutcome>),
    Finish(Lease, Finish, Timestamp, Reply<()>),
    Renew(HostId, Vec<Lease>, Timestamp, Duration, Reply<u64>),
    Release(HostId, Timestamp, Reply<u64>),
    Signal {
        id: ProcessId,
        name: String,
        payload: String,
        now: Timestamp,
        reply: Reply<i64>,
    },
    /// [`steadfast_core::Store::signal_message`].
    SignalMessage {
        id: ProcessId,
        name: String,
        payload: String,
        now: Timestamp,
        message_id: String,
        reply: Reply<SignalSent>,
    },
    Cancel(ProcessId, Timestamp, Reply<Status>),
    Retry(ProcessId, Timestamp, Reply<()>),
    /// [`steadfast_core::Store::reject_signal`].
    RejectSignal(Lease, i64, String, Timestamp, Reply<()>),
    /// [`steadfast_core::StoreAdmin::discard_signal`].
    DiscardSignal(ProcessId, i64, Timestamp, Reply<()>),
    Rewind(ProcessId, String, Timestamp, Reply<u64>),
    /// [`steadfast_core::TransactionalStore::transaction`].
    Transaction(
        Lease,
        JournalEntry,
        TransactionBody<crate::SqliteStore>,
        Reply<bool>,
    ),
    SaveSources(Vec<FunctionSource>, Reply<()>),
    /// [`steadfast_core::StoreAdmin::save_subscription`].
    SaveSubscription(Box<SubscriptionReport>, Reply<()>),
    ContinueAsNew(Lease, String, Timestamp, Reply<()>),
    PurgeChunk(Timestamp, Reply<u64>),
    Pragmas(Reply<(String, i64)>),
}

/// A command that ran, waiting for the batch to commit.
enum Done {
    Spawn(Reply<SpawnOutcome>, Result<SpawnOutcome, StoreError>),
    Claim(Reply<Vec<Claimed>>, Result<Vec<Claimed>, StoreError>),
    Unit(Reply<()>, Result<(), StoreError>),
    Suspend(Reply<SuspendOutcome>, Result<SuspendOutcome, StoreError>),
    Count(Reply<u64>, Result<u64, StoreError>),
    Release(HostId, Reply<u64>, Result<u64, StoreError>),
    Id(Reply<i64>, Result<i64, StoreError>),
    Sent(Reply<SignalSent>, Result<SignalSent, StoreError>),
    Status(Reply<Status>, Result<Status, StoreError>),
    Pragmas(Reply<(String, i64)>, Result<(String, i64), StoreError>),
    Transaction(Reply<bool>, Result<bool, StoreError>),
}

/// Why a whole batch failed: `what` failed with SQLite's error `e`.
fn batch_failure(what: &str, e: &rusqlite::Error) -> BatchFailure {
    BatchFailure::new(what, e, is_retryable(e))
}

fn send<T>(reply: Reply<T>, result: Result<T, StoreError>, failure: Option<&BatchFailure>) {
    // The caller may have gone away; its write stands regardless.
    let _ = reply.send(BatchFailure::answer(failure, result));
}

impl Done {
    fn failed(&self) -> bool {
        match self {
            Done::Spawn(_, r) => r.is_err(),
            Done::Claim(_, r) => r.is_err(),
            Done::Unit(_, r) => r.is_err(),
            Done::Suspend(_, r) => r.is_err(),
            Done::Count(_, r) | Done::Release(_, _, r) => r.is_err(),
            Done::Id(_, r) => r.is_err(),
            Done::Sent(_, r) => r.is_err(),
            Done::Status(_, r) => r.is_err(),
            Done::Pragmas(_, r) => r.is_err(),
            // A body that failed is rolled back like an error.
            Done::Transaction(_, r) => !matches!(r, Ok(true)),
        }
    }

    /// This command's error (its text and whether it is retryable), when it
    /// failed with one.
    fn error_text(&self) -> Option<(String, bool)> {
        let text = |r: Result<(), &StoreError>| r.err().map(|e| (e.to_string(), e.is_retryable()));
        match self {
            Done::Spawn(_, r) => text(r.as_ref().map(drop)),
            Done::Claim(_, r) => text(r.as_ref().map(drop)),
            Done::Unit(_, r) => text(r.as_ref().map(drop)),
            Done::Suspend(_, r) => text(r.as_ref().map(drop)),
            Done::Count(_, r) | Done::Release(_, _, r) => text(r.as_ref().map(drop)),
            Done::Id(_, r) => text(r.as_ref().map(drop)),
            Done::Sent(_, r) => text(r.as_ref().map(drop)),
            Done::Status(_, r) => text(r.as_ref().map(drop)),
            Done::Pragmas(_, r) => text(r.as_ref().map(drop)),
            Done::Transaction(_, r) => text(r.as_ref().map(drop)),
        }
    }

    fn deliver(self, failure: Option<&BatchFailure>, hosts: &mut Hosts) {
        match self {
            Done::Spawn(tx, r) => send(tx, r, failure),
            Done::Claim(tx, r) => send(tx, r, failure),
            Done::Unit(tx, r) => send(tx, r, failure),
            Done::Suspend(tx, r) => send(tx, r, failure),
            Done::Count(tx, r) => send(tx, r, failure),
            Done::Release(owner, tx, r) => {
                if failure.is_none() && r.is_ok() {
                    hosts.release(owner.as_str());
                }
                send(tx, r, failure)
            }
            Done::Id(tx, r) => send(tx, r, failure),
            Done::Sent(tx, r) => send(tx, r, failure),
            Done::Status(tx, r) => send(tx, r, failure),
            Done::Pragmas(tx, r) => send(tx, r, failure),
            Done::Transaction(tx, r) => send(tx, r, failure),
        }
    }
}

impl Command {
    /// Fails the command without running it.
    fn fail(self, failure: &BatchFailure, hosts: &mut Hosts) {
        let done = match self {
            Command::Spawn(_, tx) => Done::Spawn(tx, Err(StoreError::Closed)),
            Command::Claim { reply, .. } => Done::Claim(reply, Err(StoreError::Closed)),
            Command::Append(_, _, tx)
            | Command::Finish(_, _, _, tx)
            | Command::Retry(_, _, tx)
            | Command::RejectSignal(_, _, _, _, tx)
            | Command::DiscardSignal(_, _, _, tx)
            | Command::SaveSources(_, tx)
            | Command::SaveSubscription(_, tx)
            | Command::ContinueAsNew(_, _, _, tx) => Done::Unit(tx, Err(StoreError::Closed)),
            Command::Suspend(_, _, tx) => Done::Suspend(tx, Err(StoreError::Closed)),
            Command::Renew(_, _, _, _, tx)
            | Command::Release(_, _, tx)
            | Command::Rewind(_, _, _, tx)
            | Command::PurgeChunk(_, tx) => Done::Count(tx, Err(StoreError::Closed)),
            Command::Signal { reply, .. } => Done::Id(reply, Err(StoreError::Closed)),
            Command::SignalMessage { reply, .. } => Done::Sent(reply, Err(StoreError::Closed)),
            Command::Cancel(_, _, tx) => Done::Status(tx, Err(StoreError::Closed)),
            Command::Pragmas(tx) => Done::Pragmas(tx, Err(StoreError::Closed)),
            Command::Transaction(_, _, _, tx) => Done::Transaction(tx, Err(StoreError::Closed)),
        };
        done.deliver(Some(failure), hosts);
    }
}

/// The state owned by the writer thread.
pub(crate) struct Writer {
    conn: WriteConnection,
    hosts: Hosts,
    max_batch: usize,
}

impl Writer {
    pub(crate) fn new(conn: Connection, hosts: Hosts, max_batch: usize) -> Self {
        Writer {
            conn: WriteConnection::new(conn),
            hosts,
            max_batch: max_batch.max(1),
        }
    }

    /// Runs until every sender is gone and the queue is drained.
    pub(crate) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut batch = Vec::with_capacity(self.max_batch.min(1024));
        let mut done = Vec::with_capacity(self.max_batch.min(1024));
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            // One group commit: how many writes it carries (exported by
            // whatever `metrics` recorder the application installed).
            metrics::histogram!("steadfast_store_batch_size", "store" => "sqlite")
                .record(batch.len() as f64);
            self.execute(&mut batch, &mut done);
        }
        // Everything in the WAL goes into the database file, so the file
        // alone holds every write after a clean shutdown.
        if let Err(e) = self
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

    /// Runs a batch in one immediate transaction and answers every caller
    /// after the commit.
    fn execute(&mut self, batch: &mut Vec<Command>, done: &mut Vec<Done>) {
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            let failure = batch_failure("cannot begin a write transaction", &e);
            for cmd in batch.drain(..) {
                cmd.fail(&failure, &mut self.hosts);
            }
            return;
        }
        let mut aborted: Option<BatchFailure> = None;
        for cmd in batch.drain(..) {
            if let Some(failure) = &aborted {
                cmd.fail(failure, &mut self.hosts);
                continue;
            }
            if let Err(e) = self.exec("SAVEPOINT cmd") {
                aborted = Some(batch_failure("cannot open a savepoint", &e));
                if let Some(failure) = &aborted {
                    cmd.fail(failure, &mut self.hosts);
                }
                continue;
            }
            let result = self.apply(cmd);
            let cause = result.error_text();
            let undo = if result.failed() {
                self.exec("ROLLBACK TO cmd")
            } else {
                Ok(())
            };
            done.push(result);
            if let Err(e) = undo.and_then(|()| self.exec("RELEASE cmd")) {
                aborted = Some(batch_failure("cannot end a savepoint", &e));
            } else if self.conn.is_autocommit() {
                // SQLite rolled the whole transaction back: it does that on a
                // full disk, an I/O error, a busy database or lack of memory,
                // conditions that may pass, so the batch is repeatable unless
                // the command's own error says otherwise (a corrupt file).
                aborted = Some(match cause {
                    Some((cause, retryable)) => BatchFailure {
                        message: format!(
                            "the write transaction was rolled back by SQLite: {cause}"
                        ),
                        retryable,
                    },
                    None => BatchFailure {
                        message: "the write transaction was rolled back by SQLite".to_owned(),
                        retryable: true,
                    },
                });
            }
        }
        let failure = match aborted {
            Some(failure) => Some(failure),
            None => self
                .exec("COMMIT")
                .err()
                .map(|e| batch_failure("commit failed", &e)),
        };
        if failure.is_some() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if let Some(f) = &failure {
            tracing::warn!(error = %f.message, writes = done.len(), "a write batch failed");
        }
        for d in done.drain(..) {
            d.deliver(failure.as_ref(), &mut self.hosts);
        }
    }

    fn apply(&mut self, cmd: Command) -> Done {
        let conn = &self.conn;
        match cmd {
            Command::Spawn(p, tx) => Done::Spawn(tx, spawn::spawn(conn, &p)),
            Command::Claim {
                owner,
                now,
                lease,
                limit,
                reply,
            } => Done::Claim(
                reply,
                claim::claim(conn, &mut self.hosts, &owner, now, lease, limit),
            ),
            Command::Append(lease, entry, tx) => {
                Done::Unit(tx, journal::append(conn, &lease, &entry))
            }
            Command::Suspend(lease, s, tx) => Done::Suspend(tx, journal::suspend(conn, &lease, &s)),
            Command::Finish(lease, f, now, tx) => {
                Done::Unit(tx, journal::finish(conn, &lease, &f, now))
            }
            Command::Renew(owner, leases, now, lease, tx) => Done::Count(
                tx,
                claim::renew(conn, &mut self.hosts, &owner, &leases, now, lease),
            ),
            Command::Release(owner, now, tx) => {
                let r = claim::release(conn, &owner, now);
                Done::Release(owner, tx, r)
            }
            Command::Signal {
                id,
                name,
                payload,
                now,
                reply,
            } => Done::Id(reply, signal::signal(conn, &id, &name, &payload, now)),
            Command::SignalMessage {
                id,
                name,
                payload,
                now,
                message_id,
                reply,
            } => Done::Sent(
                reply,
                signal::signal_message(conn, &id, &name, &payload, now, &message_id),
            ),
            Command::Cancel(id, now, tx) => Done::Status(tx, admin::cancel(conn, &id, now)),
            Command::Retry(id, now, tx) => Done::Unit(tx, admin::retry(conn, &id, now)),
            Command::RejectSignal(lease, signal, reason, now, tx) => {
                Done::Unit(tx, signal::reject(conn, &lease, signal, &reason, now))
            }
            Command::DiscardSignal(id, signal, now, tx) => {
                Done::Unit(tx, signal::discard(conn, &id, signal, now))
            }
            Command::Rewind(id, step, now, tx) => {
                Done::Count(tx, admin::rewind(conn, &id, &step, now))
            }
            Command::PurgeChunk(before, tx) => Done::Count(tx, admin::purge_chunk(conn, before)),
            Command::Pragmas(tx) => Done::Pragmas(tx, admin::pragmas(conn)),
            Command::ContinueAsNew(lease, input, now, tx) => {
                Done::Unit(tx, spawn::continue_as_new(conn, &lease, &input, now))
            }
            Command::SaveSources(sources, tx) => {
                Done::Unit(tx, admin::save_sources(conn, &sources))
            }
            Command::SaveSubscription(report, tx) => {
                Done::Unit(tx, admin::save_subscription(conn, &report))
            }
            Command::Transaction(lease, entry, body, tx) => {
                Done::Transaction(tx, transaction::apply(&mut self.conn, &lease, entry, body))
            }
        }
    }
}
