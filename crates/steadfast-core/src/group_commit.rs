//! The group-commit writer both stores share.
//!
//! Every write of a store goes through one queue to one writer, which
//! drains what is queued into a batch, runs the batch in one transaction and
//! answers each caller only after the commit:
//!
//! 1. a caller queues a write with [`Queue::call`] and awaits its answer,
//!    typed by what it expects (`T`);
//! 2. [`run`] takes the first queued write and whatever else is queued (up
//!    to `max_batch`), and hands the batch to the store's [`GroupCommit::run`]
//!    — for a [`OneByOne`] store, [`one_by_one`]: [`OneByOne::begin`],
//!    [`OneByOne::apply`] for each write in queue order, [`OneByOne::commit`];
//! 3. after the commit, each caller gets its own write's result (a write that
//!    failed on its own, e.g. under a stale lease, fails alone); when the
//!    batch failed as a whole (`begin`, `commit`, or a write that broke the
//!    transaction), every caller gets that [`BatchFailure`] and nothing of the
//!    batch is kept.
//!
//! A store supplies the [`GroupCommit`] side: its write type (data only, one
//! variant per operation) and how a batch runs — usually through
//! [`OneByOne`]: what one write does inside the batch's transaction, and the
//! transaction's begin, commit and rollback. The same
//! async loop drives a synchronous store on its own thread ([`run_blocking`])
//! and an asynchronous one as a task ([`run`]).
//!
//! Writes carry no reply channel: the queue pairs each with a type-erased
//! [`Reply`] that turns the store's [`Value`] back into the caller's `T`.

use std::fmt;

use tokio::sync::{mpsc, oneshot};

use crate::rules::BatchFailure;
use crate::{Claimed, SignalSent, SpawnAndClaim, SpawnOutcome, Status, StoreError, SuspendOutcome};

/// What a write returned, one variant per answer type, so that writes of
/// every type share one queue. [`Queue::call`] converts it back to the type
/// its caller expects.
#[derive(Debug)]
#[non_exhaustive]
pub enum Value {
    /// Nothing (`()`).
    Unit,
    /// A spawn's outcome.
    Spawn(SpawnOutcome),
    /// A spawn-and-claim's outcome.
    SpawnAndClaim(SpawnAndClaim),
    /// The runs a claim handed out.
    Claimed(Vec<Claimed>),
    /// A suspension's outcome.
    Suspend(SuspendOutcome),
    /// A number of rows.
    Count(u64),
    /// A row id (a signal's sequence number).
    Id(i64),
    /// A signal sent by message id.
    Sent(SignalSent),
    /// A process status.
    Status(Status),
    /// Text (a setting of the writer's session).
    Text(String),
    /// Yes or no (whether a transactional step's body succeeded).
    Flag(bool),
    /// SQLite's `journal_mode` and `synchronous` settings.
    Pragmas((String, i64)),
}

impl From<()> for Value {
    fn from((): ()) -> Value {
        Value::Unit
    }
}

impl TryFrom<Value> for () {
    type Error = Value;

    fn try_from(value: Value) -> Result<(), Value> {
        match value {
            Value::Unit => Ok(()),
            other => Err(other),
        }
    }
}

macro_rules! values {
    ($($variant:ident($t:ty)),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v)
            }
        }

        impl TryFrom<Value> for $t {
            type Error = Value;

            fn try_from(value: Value) -> Result<$t, Value> {
                match value {
                    Value::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    )*};
}

values! {
    Spawn(SpawnOutcome),
    SpawnAndClaim(SpawnAndClaim),
    Claimed(Vec<Claimed>),
    Suspend(SuspendOutcome),
    Count(u64),
    Id(i64),
    Sent(SignalSent),
    Status(Status),
    Text(String),
    Flag(bool),
    Pragmas((String, i64)),
}

/// The caller of one queued write, waiting for a `T`: answered once, after
/// the batch's commit (or with the batch's failure).
pub struct Reply {
    send: Box<dyn FnOnce(Result<Value, StoreError>) + Send>,
}

impl Reply {
    /// A reply that converts the write's [`Value`] into `T` and sends it on
    /// `tx`. A value of another type (a store bug) reaches the caller as a
    /// non-retryable [`StoreError::Backend`].
    pub fn new<T>(tx: oneshot::Sender<Result<T, StoreError>>) -> Reply
    where
        T: TryFrom<Value, Error = Value> + Send + 'static,
    {
        Reply {
            send: Box::new(move |result: Result<Value, StoreError>| {
                let typed = result.and_then(|value| {
                    T::try_from(value).map_err(|other| StoreError::Backend {
                        message: format!(
                            "internal error: a write returned {other:?}, not a {}",
                            std::any::type_name::<T>()
                        ),
                        retryable: false,
                        source: None,
                    })
                });
                // The caller may have gone away; its write stands regardless.
                let _ = tx.send(typed);
            }),
        }
    }

    /// Answers the caller.
    pub fn send(self, result: Result<Value, StoreError>) {
        (self.send)(result)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply").finish_non_exhaustive()
    }
}

/// A write waiting in the queue, with its caller.
#[derive(Debug)]
pub struct Queued<W> {
    /// The write.
    pub write: W,
    /// Its caller.
    pub reply: Reply,
}

/// The sending side of a writer's queue. Cheap to clone; the writer stops
/// once every clone is dropped and the queue is drained.
#[derive(Debug)]
pub struct Queue<W> {
    tx: mpsc::UnboundedSender<Queued<W>>,
}

impl<W> Clone for Queue<W> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
        }
    }
}

/// The receiving side of a writer's queue, for [`run`] or [`run_blocking`].
#[derive(Debug)]
pub struct Inbox<W> {
    rx: mpsc::UnboundedReceiver<Queued<W>>,
}

/// A new, empty queue.
pub fn queue<W>() -> (Queue<W>, Inbox<W>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Queue { tx }, Inbox { rx })
}

impl<W> Queue<W> {
    /// Queues `write` and waits for its answer, which comes after the
    /// commit of the batch that carried it. [`StoreError::Closed`] when the
    /// writer has stopped.
    pub async fn call<T>(&self, write: W) -> Result<T, StoreError>
    where
        T: TryFrom<Value, Error = Value> + Send + 'static,
    {
        self.submit(write)?.await
    }

    /// Queues `write` now and returns the wait for its answer, so that a
    /// caller can queue several writes before awaiting any of them.
    pub fn submit<T>(
        &self,
        write: W,
    ) -> Result<impl Future<Output = Result<T, StoreError>> + Send + use<W, T>, StoreError>
    where
        T: TryFrom<Value, Error = Value> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Queued {
                write,
                reply: Reply::new(tx),
            })
            .map_err(|_| StoreError::Closed)?;
        Ok(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }
}

/// The result of one write inside a batch: its own answer (`Err` for a
/// write that failed alone and was undone, e.g. under a stale lease), or
/// the [`BatchFailure`] that broke the whole transaction.
pub type Applied = Result<Result<Value, StoreError>, BatchFailure>;

/// A store's side of the group commit: how it runs one batch.
///
/// Most stores implement [`OneByOne`] and answer with [`one_by_one`]; a store
/// that runs some writes of a batch together (one statement for many)
/// implements this directly.
pub trait GroupCommit {
    /// One write, as data (one variant per operation).
    type Write: Send;

    /// The `store` label of the `steadfast_store_batch_size` histogram.
    const STORE: &'static str;

    /// Runs a whole batch in one transaction and returns each write's
    /// result in queue order, or the failure of the batch as a whole
    /// (nothing of it was committed, or the outcome of its commit is
    /// unknown). A write that fails alone leaves its neighbours be.
    fn run(
        &mut self,
        writes: Vec<Self::Write>,
    ) -> impl Future<Output = Result<Vec<Result<Value, StoreError>>, BatchFailure>> + Send;
}

/// A store that runs a batch one write after the other, inside one
/// transaction: what one write does, and the transaction around it. The
/// futures of a synchronous store simply never wait.
pub trait OneByOne: GroupCommit {
    /// Opens the batch's transaction.
    fn begin(&mut self) -> impl Future<Output = Result<(), BatchFailure>> + Send;

    /// Runs one write inside the open transaction. A write that fails alone
    /// must leave the transaction as it was before it (a savepoint) and
    /// return its error as `Ok(Err(..))`; an `Err(BatchFailure)` ends the
    /// batch: nothing of it is committed.
    fn apply(&mut self, write: Self::Write) -> impl Future<Output = Applied> + Send;

    /// Commits the batch's transaction.
    fn commit(&mut self) -> impl Future<Output = Result<(), BatchFailure>> + Send;

    /// Undoes the batch's transaction after a failure (best effort: the
    /// transaction may already be gone).
    fn rollback(&mut self) -> impl Future<Output = ()> + Send;
}

/// [`GroupCommit::run`] for a [`OneByOne`] store: [`OneByOne::begin`],
/// [`OneByOne::apply`] for each write in queue order, [`OneByOne::commit`];
/// [`OneByOne::rollback`] when any of them ended the batch (the writes after
/// the one that broke it do not run).
pub async fn one_by_one<S: OneByOne>(
    store: &mut S,
    writes: Vec<S::Write>,
) -> Result<Vec<Result<Value, StoreError>>, BatchFailure> {
    store.begin().await?;
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        match store.apply(write).await {
            Ok(result) => results.push(result),
            Err(failure) => {
                store.rollback().await;
                return Err(failure);
            }
        }
    }
    if let Err(failure) = store.commit().await {
        store.rollback().await;
        return Err(failure);
    }
    Ok(results)
}

/// The writer loop: until every [`Queue`] is dropped and the queue is
/// drained, takes up to `max_batch` queued writes, runs them as one batch
/// through `store` and answers their callers after the batch ended.
/// Returns the store, for its own shutdown.
pub async fn run<S>(mut store: S, mut inbox: Inbox<S::Write>, max_batch: usize) -> S
where
    S: GroupCommit + Send,
{
    let max_batch = max_batch.max(1);
    let mut writes = Vec::with_capacity(max_batch.min(1024));
    let mut replies = Vec::with_capacity(max_batch.min(1024));
    while let Some(first) = inbox.rx.recv().await {
        let mut next = Some(first);
        while let Some(Queued { write, reply }) = next {
            writes.push(write);
            replies.push(reply);
            next = if writes.len() < max_batch {
                inbox.rx.try_recv().ok()
            } else {
                None
            };
        }
        // One group commit: how many writes it carries (exported by
        // whatever `metrics` recorder the application installed).
        metrics::histogram!("steadfast_store_batch_size", "store" => S::STORE)
            .record(writes.len() as f64);
        let count = writes.len();
        match store.run(std::mem::take(&mut writes)).await {
            Ok(results) if results.len() == count => {
                for (reply, result) in replies.drain(..).zip(results) {
                    reply.send(result);
                }
            }
            Ok(results) => {
                let failure = BatchFailure {
                    message: format!(
                        "internal error: a batch of {count} writes returned {} results",
                        results.len()
                    ),
                    retryable: false,
                };
                fail(&mut replies, &failure);
            }
            Err(failure) => {
                tracing::warn!(
                    error = %failure.message,
                    writes = count,
                    store = S::STORE,
                    "a write batch failed"
                );
                fail(&mut replies, &failure);
            }
        }
    }
    store
}

fn fail(replies: &mut Vec<Reply>, failure: &BatchFailure) {
    for reply in replies.drain(..) {
        reply.send(Err(failure.error()));
    }
}

/// [`run`] on the calling thread, for a store whose writes are synchronous
/// (its [`GroupCommit`] futures never wait): blocks between batches.
pub fn run_blocking<S>(store: S, inbox: Inbox<S::Write>, max_batch: usize) -> S
where
    S: GroupCommit + Send,
{
    futures::executor::block_on(run(store, inbox, max_batch))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A write of the test store: `Put(n)` stages `n`, `Alone` fails alone,
    /// `Break` breaks the transaction, `Text` answers with a text.
    #[derive(Debug)]
    enum Write {
        Put(u64),
        Alone,
        Break,
        Text,
    }

    /// What the test store did, shared with the test.
    #[derive(Default)]
    struct Log {
        /// Values of committed writes, in commit order.
        committed: Vec<u64>,
        /// Every write applied, in order.
        applied: Vec<String>,
        /// Rollbacks.
        rollbacks: usize,
        /// Answers received before a commit finished (must stay 0).
        early: usize,
    }

    /// A caller's wait for its answer.
    type Answer = oneshot::Receiver<Result<u64, StoreError>>;

    /// An in-memory transaction: staged values, kept on commit.
    struct Store {
        log: Arc<Mutex<Log>>,
        staged: Vec<u64>,
        fail_begin: bool,
        fail_commit: bool,
        /// Receivers of the callers, checked at commit: none answered yet.
        watch: Arc<Mutex<Vec<Answer>>>,
    }

    impl Store {
        fn new(log: &Arc<Mutex<Log>>) -> Store {
            Store {
                log: log.clone(),
                staged: Vec::new(),
                fail_begin: false,
                fail_commit: false,
                watch: Arc::default(),
            }
        }
    }

    impl GroupCommit for Store {
        type Write = Write;
        const STORE: &'static str = "test";

        async fn run(
            &mut self,
            writes: Vec<Write>,
        ) -> Result<Vec<Result<Value, StoreError>>, BatchFailure> {
            one_by_one(self, writes).await
        }
    }

    impl OneByOne for Store {
        async fn begin(&mut self) -> Result<(), BatchFailure> {
            if self.fail_begin {
                return Err(BatchFailure::new("BEGIN", "database is locked", true));
            }
            self.staged.clear();
            Ok(())
        }

        async fn apply(&mut self, write: Write) -> Applied {
            self.log.lock().unwrap().applied.push(format!("{write:?}"));
            match write {
                Write::Put(n) => {
                    self.staged.push(n);
                    Ok(Ok(Value::Count(n)))
                }
                Write::Alone => Ok(Err(StoreError::InvalidInput("alone".to_owned()))),
                Write::Break => Err(BatchFailure::new("write", "disk I/O error", false)),
                Write::Text => Ok(Ok(Value::Text("t".to_owned()))),
            }
        }

        async fn commit(&mut self) -> Result<(), BatchFailure> {
            let mut log = self.log.lock().unwrap();
            for rx in self.watch.lock().unwrap().iter_mut() {
                if rx.try_recv().is_ok() {
                    log.early += 1;
                }
            }
            if self.fail_commit {
                return Err(BatchFailure::new("COMMIT", "disk full", true));
            }
            log.committed.append(&mut self.staged);
            Ok(())
        }

        async fn rollback(&mut self) {
            self.staged.clear();
            self.log.lock().unwrap().rollbacks += 1;
        }
    }

    /// Queues `writes` (all before the writer starts: one batch), runs the
    /// writer to the end, and returns each caller's answer. The store holds
    /// the callers' receivers and checks at its commit that none was
    /// answered yet.
    fn one_batch(mut store: Store, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        let (queue, inbox) = queue::<Write>();
        let mut answers = Vec::new();
        for write in writes {
            let (tx, rx) = oneshot::channel::<Result<u64, StoreError>>();
            queue
                .tx
                .send(Queued {
                    write,
                    reply: Reply::new(tx),
                })
                .unwrap();
            answers.push(rx);
        }
        drop(queue);
        store.watch = Arc::new(Mutex::new(answers));
        let watch = store.watch.clone();
        run_blocking(store, inbox, 512);
        let mut receivers = std::mem::take(&mut *watch.lock().unwrap());
        receivers
            .iter_mut()
            .map(|rx| rx.try_recv().expect("every caller is answered"))
            .collect()
    }

    #[test]
    fn answers_come_after_the_commit_in_queue_order() {
        let log = Arc::default();
        let answers = one_batch(
            Store::new(&log),
            vec![Write::Put(1), Write::Put(2), Write::Put(3)],
        );
        let answers: Vec<u64> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, [1, 2, 3]);
        let log = log.lock().unwrap();
        assert_eq!(log.committed, [1, 2, 3]);
        assert_eq!(log.applied, ["Put(1)", "Put(2)", "Put(3)"]);
        assert_eq!(log.early, 0, "a caller was answered before the commit");
        assert_eq!(log.rollbacks, 0);
    }

    #[test]
    fn a_write_that_fails_alone_does_not_fail_its_neighbours() {
        let log = Arc::default();
        let answers = one_batch(
            Store::new(&log),
            vec![Write::Put(1), Write::Alone, Write::Put(3)],
        );
        assert_eq!(*answers[0].as_ref().unwrap(), 1);
        assert!(
            matches!(&answers[1], Err(StoreError::InvalidInput(m)) if m == "alone"),
            "{answers:?}"
        );
        assert_eq!(*answers[2].as_ref().unwrap(), 3);
        let log = log.lock().unwrap();
        assert_eq!(log.committed, [1, 3]);
        assert_eq!(log.early, 0);
    }

    fn backend(answer: &Result<u64, StoreError>) -> (String, bool) {
        match answer {
            Err(StoreError::Backend {
                message, retryable, ..
            }) => (message.clone(), *retryable),
            other => panic!("expected the batch's failure, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_commit_fails_every_caller_with_its_error() {
        let log = Arc::default();
        let mut store = Store::new(&log);
        store.fail_commit = true;
        let answers = one_batch(store, vec![Write::Put(1), Write::Alone, Write::Put(3)]);
        for answer in &answers {
            assert_eq!(backend(answer), ("COMMIT: disk full".to_owned(), true));
        }
        let log = log.lock().unwrap();
        assert!(log.committed.is_empty());
        assert_eq!(log.rollbacks, 1);
        assert_eq!(log.early, 0);
    }

    #[test]
    fn a_failed_begin_fails_every_caller_and_runs_nothing() {
        let log = Arc::default();
        let mut store = Store::new(&log);
        store.fail_begin = true;
        let answers = one_batch(store, vec![Write::Put(1), Write::Put(2)]);
        for answer in &answers {
            assert_eq!(
                backend(answer),
                ("BEGIN: database is locked".to_owned(), true)
            );
        }
        let log = log.lock().unwrap();
        assert!(log.applied.is_empty());
        assert!(log.committed.is_empty());
    }

    #[test]
    fn a_write_that_breaks_the_transaction_fails_the_batch() {
        let log = Arc::default();
        let answers = one_batch(
            Store::new(&log),
            vec![Write::Put(1), Write::Break, Write::Put(3)],
        );
        for answer in &answers {
            assert_eq!(backend(answer), ("write: disk I/O error".to_owned(), false));
        }
        let log = log.lock().unwrap();
        assert_eq!(log.applied, ["Put(1)", "Break"], "nothing runs after it");
        assert!(log.committed.is_empty());
        assert_eq!(log.rollbacks, 1);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_internal_error_for_that_caller_only() {
        let log = Arc::default();
        let answers = one_batch(Store::new(&log), vec![Write::Text, Write::Put(2)]);
        let (message, retryable) = backend(&answers[0]);
        assert!(message.starts_with("internal error"), "{message}");
        assert!(!retryable);
        assert_eq!(*answers[1].as_ref().unwrap(), 2);
    }

    #[test]
    fn batches_are_capped_and_every_caller_is_answered() {
        let log: Arc<Mutex<Log>> = Arc::default();
        let (queue, inbox) = queue::<Write>();
        let mut answers = Vec::new();
        for n in 0..10 {
            let (tx, rx) = oneshot::channel::<Result<u64, StoreError>>();
            queue
                .tx
                .send(Queued {
                    write: Write::Put(n),
                    reply: Reply::new(tx),
                })
                .unwrap();
            answers.push(rx);
        }
        drop(queue);
        run_blocking(Store::new(&log), inbox, 3);
        for (n, mut rx) in answers.into_iter().enumerate() {
            assert_eq!(rx.try_recv().unwrap().unwrap(), n as u64);
        }
        assert_eq!(log.lock().unwrap().committed, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn call_answers_through_an_async_writer() {
        let log: Arc<Mutex<Log>> = Arc::default();
        let (queue, inbox) = queue::<Write>();
        let writer = tokio::spawn(run(Store::new(&log), inbox, 64));
        let n: u64 = queue.call(Write::Put(7)).await.unwrap();
        assert_eq!(n, 7);
        let unit: Result<(), StoreError> = queue.call(Write::Put(8)).await;
        assert!(
            matches!(&unit, Err(StoreError::Backend { message, .. }) if message.starts_with("internal error")),
            "{unit:?}"
        );
        drop(queue);
        writer.await.unwrap();
        assert_eq!(log.lock().unwrap().committed, [7, 8]);
    }
}
