//! [`Process`]: the handle a process function uses to journal its steps.

use std::borrow::Cow;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::FusedFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{ProcessId, Timestamp, TransactionBody, TransactionalStore};

use crate::context::RunCtx;
use crate::error::StepError;
use crate::ops::step::Step;
use crate::ops::timer::Due;
use crate::ops::{timer, value, wait};
use crate::stores::{AnyStore, ProcessStore};

/// A durable operation (a timer, a wait): `Unpin` and *fused*, so a
/// `select!` loop can poll it by reference, round after round, without
/// guards: once it has returned, polling it again returns `Pending` and
/// [`FusedFuture::is_terminated`] is true (so `futures::select!` skips it
/// too). [`Durable::abandon`] gives up one that is no longer wanted.
///
/// ```
/// # use std::time::Duration;
/// # use steadfast::{Process, StepFailed};
/// async fn reminder(p: Process, _: ()) -> Result<&'static str, StepFailed> {
///     let mut paid = p.wait::<u64>("paid");
///     let mut reminder = p.sleep("reminder due", Duration::from_secs(7 * 86_400));
///     let mut cancelled = p.wait::<()>("cancelled");
///     loop {
///         tokio::select! {
///             _amount = &mut paid => {
///                 reminder.abandon(); // no reminder once paid
///             }
///             () = &mut reminder => {
///                 p.step("reminded", || async { Ok(()) }).await?;
///             }
///             () = &mut cancelled => return Ok("cancelled"),
///         }
///     }
/// }
/// ```
#[must_use = "a durable operation does nothing until it is awaited"]
pub struct Durable<T> {
    running: Option<Pin<Box<dyn Future<Output = T> + Send + 'static>>>,
}

impl<T> Durable<T> {
    pub(crate) fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        Durable {
            running: Some(Box::pin(future)),
        }
    }

    /// Gives the operation up: it is dropped, counts as terminated, and
    /// polling it returns `Pending` from now on. A timer abandoned before it
    /// fired does not fire in this run; a wait abandoned takes no signal.
    /// Replays do the same, since the code abandons it at the same point.
    pub fn abandon(&mut self) {
        self.running = None;
    }
}

impl<T> std::fmt::Debug for Durable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("terminated", &self.running.is_none())
            .finish()
    }
}

impl<T> Future for Durable<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let Some(running) = this.running.as_mut() else {
            return Poll::Pending;
        };
        let output = std::task::ready!(running.as_mut().poll(cx));
        this.running = None;
        Poll::Ready(output)
    }
}

impl<T> FusedFuture for Durable<T> {
    fn is_terminated(&self) -> bool {
        self.running.is_none()
    }
}

/// The handle a process function receives: every durable operation goes
/// through it. Cheap to clone, so parallel branches can each hold one.
///
/// Each operation has a *name* that is its identity in the journal: unique
/// within the process, stable across deploys.
///
/// `S` is what the process knows of its host's store: [`AnyStore`] (the
/// default) for a process that runs on any store, the store's own type
/// (`Process<SqliteStore>`, `Process<PostgresStore>`) for one that runs
/// [`Process::transaction`]s on it.
#[derive(Clone)]
pub struct Process<S = AnyStore> {
    pub(crate) ctx: Arc<RunCtx>,
    /// The prefix of every name given through this handle (see
    /// [`Process::scope`]).
    pub(crate) scope: Option<Arc<str>>,
    /// The host's store, for transactional steps.
    store: S,
}

impl<S> std::fmt::Debug for Process<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("id", &self.ctx.id).finish()
    }
}

impl Process {
    /// The handle of a run, before it is bound to its kind's store.
    pub(crate) fn new(ctx: Arc<RunCtx>) -> Self {
        Process {
            ctx,
            scope: None,
            store: AnyStore,
        }
    }

    /// This handle, knowing its host's store as `S`.
    pub(crate) fn on_store<S>(self, store: S) -> Process<S> {
        Process {
            ctx: self.ctx,
            scope: self.scope,
            store,
        }
    }
}

impl<S: ProcessStore> Process<S> {
    /// The process's id.
    pub fn id(&self) -> &ProcessId {
        &self.ctx.id
    }

    /// A key that names one step of this process for outside services
    /// (`"<process id>/<step name>"`): pass it along so a retried or
    /// re-run step does not, say, charge a card twice.
    pub fn idempotency_key(&self, step: &str) -> String {
        format!("{}/{}", self.ctx.id, self.scoped(step.to_owned()))
    }

    /// A handle whose operation names are prefixed with `scope`: a name
    /// `n` becomes `"<scope>/n"` in the journal (scopes nest:
    /// `"<outer>/<inner>/n"`). Loops keep their names unique without
    /// building strings; signal names are not scoped (they come from
    /// outside), the waits' step names are.
    ///
    /// ```
    /// # use steadfast::{Process, StepFailed};
    /// async fn ship(p: Process, items: Vec<String>) -> Result<(), StepFailed> {
    ///     for (i, item) in items.iter().enumerate() {
    ///         let p = p.scope(i); // "0/packed", "0/shipped", "1/packed", …
    ///         p.step("packed", || async { Ok(item.len()) }).await?;
    ///         p.step("shipped", || async { Ok(()) }).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn scope(&self, scope: impl std::fmt::Display) -> Process<S> {
        let scope = self.scoped(scope.to_string()).into_owned();
        Process {
            ctx: Arc::clone(&self.ctx),
            scope: Some(scope.into()),
            store: self.store.clone(),
        }
    }

    /// `name` inside this handle's scope.
    pub(crate) fn scoped(&self, name: impl Into<Cow<'static, str>>) -> Cow<'static, str> {
        scoped(self.scope.as_deref(), name.into())
    }

    /// Runs a side effect once and journals its outcome.
    ///
    /// The closure is called for each attempt (see [`Step::retry`] and
    /// [`Step::timeout`]) and returns `Result<T, StepError>`: `Ok(value)`
    /// needs no annotation, `?` converts any error into a retryable one, and
    /// `.permanent()` / `.retryable()` ([`crate::StepResultExt`]) keep a
    /// serializable error typed for [`crate::StepFailed::error`]. An `Err` is
    /// retryable unless it is permanent. Once journaled, replays return the
    /// recorded outcome without calling the closure.
    #[track_caller]
    pub fn step<'a, T, F, Fut>(&self, name: impl Into<Cow<'static, str>>, run: F) -> Step<'a, T, F>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, StepError>> + Send + 'a,
    {
        Step {
            ctx: Arc::clone(&self.ctx),
            name: self.scoped(name),
            location: Location::caller(),
            retry: None,
            timeout: None,
            run: Some(run),
            state: crate::ops::step::StepState::Idle,
        }
    }

    /// Journals a non-deterministic value (made by `make` on the first run)
    /// so that every replay sees the same one.
    #[track_caller]
    pub fn get<T, F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        make: F,
    ) -> impl Future<Output = T> + Send + 'static
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        value::record(
            Arc::clone(&self.ctx),
            self.scoped(name).into_owned(),
            Location::caller(),
            make,
        )
    }

    /// Journals the current time of the host's clock.
    #[track_caller]
    pub fn now(
        &self,
        name: impl Into<Cow<'static, str>>,
    ) -> impl Future<Output = Timestamp> + Send + 'static {
        let clock = Arc::clone(&self.ctx.clock);
        value::record(
            Arc::clone(&self.ctx),
            self.scoped(name).into_owned(),
            Location::caller(),
            move || clock.now(),
        )
    }

    /// Journals a fresh random (version 4) UUID.
    #[track_caller]
    pub fn uuid(
        &self,
        name: impl Into<Cow<'static, str>>,
    ) -> impl Future<Output = uuid::Uuid> + Send + 'static {
        value::record(
            Arc::clone(&self.ctx),
            self.scoped(name).into_owned(),
            Location::caller(),
            uuid::Uuid::new_v4,
        )
    }

    /// Journals a random value of type `T` (any type `rand::random` makes).
    #[track_caller]
    pub fn random<T>(
        &self,
        name: impl Into<Cow<'static, str>>,
    ) -> impl Future<Output = T> + Send + 'static
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        rand::distr::StandardUniform: rand::distr::Distribution<T>,
    {
        value::record(
            Arc::clone(&self.ctx),
            self.scoped(name).into_owned(),
            Location::caller(),
            rand::random::<T>,
        )
    }

    /// Sleeps durably for `duration`: the wake-up time is journaled when the
    /// timer is first reached, the process is unloaded meanwhile, and a host
    /// restart does not restart the timer.
    #[track_caller]
    pub fn sleep(&self, name: impl Into<Cow<'static, str>>, duration: Duration) -> Durable<()> {
        Durable::new(timer::sleep(
            Arc::clone(&self.ctx),
            self.scoped(name).into_owned(),
            Due::In(duration),
            Location::caller(),
        ))
    }

    /// Sleeps durably until `deadline` (of the host's clock).
    #[track_caller]
    pub fn sleep_until(
        &self,
        name: impl Into<Cow<'static, str>>,
        deadline: Timestamp,
    ) -> Durable<()> {
        Durable::new(timer::sleep(
            Arc::clone(&self.ctx),
            self.scoped(name).into_owned(),
            Due::At(deadline),
            Location::caller(),
        ))
    }

    /// Waits for the signal `signal` sent with [`crate::Host::signal`]; the
    /// signal may have been sent before the wait is reached. The step is
    /// named after the signal unless [`Wait::name`] names it otherwise.
    ///
    /// `signal` is a typed [`crate::Signal`] (the payload type follows from
    /// it) or a plain name. A signal whose payload does not decode into `T`
    /// (nor into the type of any other wait for the same name pending at
    /// that moment) is *rejected*: it is kept as rejected with the reason,
    /// visible to tools, and the wait goes on for a signal that fits.
    #[track_caller]
    pub fn wait<T: DeserializeOwned + Send + 'static>(
        &self,
        signal: impl crate::SignalName<T>,
    ) -> Wait<T> {
        let signal = signal.signal_name().into_owned();
        Wait {
            ctx: Arc::clone(&self.ctx),
            name: self.scoped(signal.clone()).into_owned(),
            scope: self.scope.clone(),
            signal,
            location: Location::caller(),
            state: Lazy::Idle,
        }
    }
}

impl<S: ProcessStore> Process<S> {
    /// Spawns a child process of `kind` under the id `<this id>/<name>` and
    /// waits (durably: the process is unloaded meanwhile) for its outcome.
    /// Spawning is idempotent, so a replay does not start a second child.
    /// The child's parent is stored: cancelling this process cancels the
    /// child too, and the child's end is written to this process together
    /// with the child's end.
    #[track_caller]
    pub fn child<I, O>(
        &self,
        name: &str,
        kind: &str,
        input: &I,
    ) -> impl Future<Output = Result<O, crate::ChildError>> + Send + 'static
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned + Send + 'static,
    {
        // Under a scope the child's id keeps one `/` (its parent's), so the
        // scope's separators become `:` there.
        let id_name = match &self.scope {
            Some(_) => self.scoped(name.to_owned()).replace('/', ":"),
            None => name.to_owned(),
        };
        let id = crate::child::child_id(self.id(), &id_name);
        let spawned = self.spawn_step(
            format!("{name}: spawned"),
            id.clone(),
            Some(self.id().clone()),
            kind,
            input,
        );
        let ended = self
            .wait::<crate::child::ChildEnd>(crate::child::end_signal(&id_name))
            .name(name.to_owned());
        async move {
            spawned.await?;
            crate::child::outcome(id, ended.await)
        }
    }

    /// Spawns a process of `kind` under the caller's `id` that lives on its
    /// own: it is not awaited, and cancelling this process does not cancel
    /// it. The spawn is journaled as the step `name`.
    #[track_caller]
    pub fn spawn_detached<I: Serialize + ?Sized>(
        &self,
        name: &str,
        id: &str,
        kind: &str,
        input: &I,
    ) -> impl Future<Output = Result<(), crate::ChildError>> + Send + 'static {
        self.spawn_step(name.to_owned(), id.to_owned(), None, kind, input)
    }

    /// A step that spawns process `id` (idempotently), as a child of
    /// `parent` when one is given.
    #[track_caller]
    pub(crate) fn spawn_step<I: Serialize + ?Sized>(
        &self,
        name: String,
        id: String,
        parent: Option<steadfast_core::ProcessId>,
        kind: &str,
        input: &I,
    ) -> impl Future<Output = Result<(), crate::ChildError>> + Send + 'static {
        let store = Arc::clone(&self.ctx.store);
        let clock = Arc::clone(&self.ctx.clock);
        let version = self.ctx.latest_versions.get(kind).copied().unwrap_or(1);
        let kind = kind.to_owned();
        let limit = self.ctx.max_payload_bytes;
        let input = serde_json::to_value(input)
            .map_err(|e| format!("the input cannot be encoded: {e}"))
            .map(|v| v.to_string())
            .and_then(|json| {
                if json.len() > limit {
                    Err(crate::ops::too_large(
                        "the child's input",
                        json.len(),
                        limit,
                    ))
                } else {
                    Ok(json)
                }
            });
        let child = id.clone();
        let step = self
            .step(name, move || {
                let (store, clock, kind, child, parent) = (
                    Arc::clone(&store),
                    Arc::clone(&clock),
                    kind.clone(),
                    child.clone(),
                    parent.clone(),
                );
                let input = input.clone();
                async move {
                    let input = input.map_err(StepError::permanent)?;
                    let id = steadfast_core::ProcessId::new(child).map_err(StepError::permanent)?;
                    let new = steadfast_core::NewProcess {
                        id,
                        kind,
                        version,
                        input,
                        now: clock.now(),
                        parent,
                        // Inside the step's span: the child's runs are its children.
                        traceparent: crate::trace::current(),
                    };
                    match store.spawn(new).await {
                        Ok(_) => Ok(()),
                        Err(e) if e.is_retryable() => Err(StepError::retryable(e)),
                        Err(e) => Err(StepError::permanent(e)),
                    }
                }
            })
            .retry(crate::RetryPolicy::exponential(5));
        async move {
            step.await.map_err(|failed| crate::ChildError::Spawn {
                id,
                error: failed.message,
            })
        }
    }
}

impl<S: ProcessStore> Process<S> {
    /// Publishes `value` under `key` for readers outside the process:
    /// [`crate::Handle::state`] and [`crate::Host::state`] read the latest
    /// value from the store, with no live worker needed. Each publication
    /// is a journal entry (named `"<key> #<n>"`, kind `state`), so a replay
    /// publishes nothing twice. Keys are not scoped ([`Process::scope`]).
    ///
    /// ```
    /// # use steadfast::{Process, StepFailed};
    /// async fn import(p: Process, rows: u32) -> Result<(), StepFailed> {
    ///     for row in 0..rows {
    ///         p.scope(row).step("imported", || async { Ok(()) }).await?;
    ///         p.publish_state("progress", &(row + 1, rows)).await;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    #[track_caller]
    pub fn publish_state<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> impl Future<Output = ()> + Send + 'static {
        let json = serde_json::to_string(value).map_err(|e| e.to_string());
        let name = self.ctx.next_publication(key);
        crate::ops::state::publish(Arc::clone(&self.ctx), name, json, Location::caller())
    }
}

impl<S: ProcessStore> Process<S> {
    /// Ends this run and starts the process again, under the same id, with
    /// `input` and an empty journal; the current journal is kept as history
    /// (`StoreAdmin::history`). A loop that runs forever stays small this
    /// way: `return p.continue_as_new(&next).await;` The returned future
    /// never completes, so it fits any return type.
    ///
    /// Signals not consumed yet stay for the next generation.
    pub fn continue_as_new<I: Serialize + ?Sized, T>(
        &self,
        input: &I,
    ) -> impl Future<Output = T> + Send + 'static {
        let ctx = Arc::clone(&self.ctx);
        let input = serde_json::to_value(input).map(|v| v.to_string());
        async move {
            // Only after the recorded journal was replayed, and after any
            // outcome still being journaled.
            ctx.replayed("continue as new").await;
            let _token = ctx.completion_token().await;
            match input {
                Ok(json) if json.len() > ctx.max_payload_bytes => ctx.block(
                    "continue as new",
                    crate::ops::too_large("the next input", json.len(), ctx.max_payload_bytes),
                ),
                Ok(json) => ctx.stop(crate::context::Stop::ContinueAsNew(json)),
                Err(e) => ctx.block(
                    "continue as new",
                    format!("the next input cannot be encoded as JSON: {e}"),
                ),
            }
            crate::ops::halt().await
        }
    }
}

/// `name` under `scope`.
fn scoped(scope: Option<&str>, name: Cow<'static, str>) -> Cow<'static, str> {
    match scope {
        Some(scope) => Cow::Owned(format!("{scope}/{name}")),
        None => name,
    }
}

/// A wait for a signal; `.await` it for the payload, or add a timeout.
///
/// A wait is a [`FusedFuture`]: once it has returned, polling it again
/// returns `Pending` (it never yields twice) and
/// [`FusedFuture::is_terminated`] says so, so a `select!` loop can keep
/// polling it without guards (see [`Durable`]).
#[must_use = "a wait does nothing until it is awaited"]
pub struct Wait<T> {
    ctx: Arc<RunCtx>,
    name: String,
    scope: Option<Arc<str>>,
    signal: String,
    location: &'static Location<'static>,
    state: Lazy<T>,
}

/// A durable operation built on its first poll.
enum Lazy<T> {
    /// Not polled yet.
    Idle,
    /// Running.
    Running(Durable<T>),
    /// Returned or abandoned.
    Done,
}

impl<T> Lazy<T> {
    fn poll(&mut self, cx: &mut Context<'_>, start: impl FnOnce() -> Durable<T>) -> Poll<T> {
        if let Lazy::Idle = self {
            *self = Lazy::Running(start());
        }
        let Lazy::Running(running) = self else {
            return Poll::Pending;
        };
        let output = std::task::ready!(Pin::new(running).poll(cx));
        *self = Lazy::Done;
        Poll::Ready(output)
    }

    fn is_terminated(&self) -> bool {
        matches!(self, Lazy::Done)
    }
}

impl<T: DeserializeOwned + Send + 'static> Wait<T> {
    /// Names the step (by default the signal's name), so one process can
    /// wait for the same signal more than once. Call it before the wait is
    /// first polled.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = scoped(self.scope.as_deref(), name.into()).into_owned();
        self
    }

    /// Gives up after `timeout` (durably: the deadline is journaled):
    /// awaiting then yields `None`.
    pub fn timeout(self, timeout: Duration) -> WaitTimeout<T> {
        WaitTimeout {
            ctx: self.ctx,
            name: self.name,
            signal: self.signal,
            location: self.location,
            timeout,
            state: Lazy::Idle,
        }
    }

    /// Gives the wait up: it will not take a signal in this run, and it
    /// counts as terminated (see [`Durable::abandon`]).
    pub fn abandon(&mut self) {
        self.state = Lazy::Done;
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for Wait<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let (ctx, name, signal, location) = (&this.ctx, &this.name, &this.signal, this.location);
        this.state.poll(cx, || {
            let wait = wait::wait(
                Arc::clone(ctx),
                name.clone(),
                signal.clone(),
                None,
                location,
            );
            Durable::new(async move {
                match wait.await {
                    Some(value) => value,
                    None => crate::ops::halt().await,
                }
            })
        })
    }
}

impl<T: DeserializeOwned + Send + 'static> FusedFuture for Wait<T> {
    fn is_terminated(&self) -> bool {
        self.state.is_terminated()
    }
}

/// A wait with a timeout; awaiting yields `None` if the timeout passed first.
/// Fused like [`Wait`].
#[must_use = "a wait does nothing until it is awaited"]
pub struct WaitTimeout<T> {
    ctx: Arc<RunCtx>,
    name: String,
    signal: String,
    location: &'static Location<'static>,
    timeout: Duration,
    state: Lazy<Option<T>>,
}

impl<T> WaitTimeout<T> {
    /// Gives the wait up (see [`Durable::abandon`]).
    pub fn abandon(&mut self) {
        self.state = Lazy::Done;
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for WaitTimeout<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let (ctx, name, signal, location, timeout) = (
            &this.ctx,
            &this.name,
            &this.signal,
            this.location,
            this.timeout,
        );
        this.state.poll(cx, || {
            Durable::new(wait::wait(
                Arc::clone(ctx),
                name.clone(),
                signal.clone(),
                Some(timeout),
                location,
            ))
        })
    }
}

impl<T: DeserializeOwned + Send + 'static> FusedFuture for WaitTimeout<T> {
    fn is_terminated(&self) -> bool {
        self.state.is_terminated()
    }
}

impl<S: TransactionalStore> Process<S> {
    /// A step whose effects live in the same database as the journal:
    /// `body` runs on the store's connection inside the transaction that
    /// journals the step, so its SQL and the journal entry commit together
    /// — exactly once — or not at all.
    ///
    /// The body's form is the store's ([`TransactionalStore`]): on SQLite a
    /// closure over the store's `WriteConnection` (a `rusqlite::Connection`)
    /// returning the result, run on the writer thread inside a group commit
    /// (so it must be quick); on PostgreSQL a closure over a
    /// `sqlx::PgConnection` returning a boxed future. It must not commit or
    /// roll back itself. An `Err` rolls its effects back and is retried by
    /// the host's retry policy (in memory only, up to its durable threshold)
    /// unless it is permanent; a final failure is journaled and returned
    /// like a step's.
    ///
    /// Only a `Process<S>` of a transactional store has this method, and a
    /// host whose store is not an `S` refuses the kind when it is built.
    ///
    /// ```no_run
    /// # use steadfast::{Process, SqliteStore, StepError, StepFailed};
    /// #[steadfast::process]
    /// async fn pay(p: Process<SqliteStore>, amount: i64) -> Result<(), StepFailed> {
    ///     p.transaction("ledger updated", move |conn| {
    ///         conn.execute("UPDATE accounts SET balance = balance - ?1 WHERE id = 1", [amount])
    ///             .map_err(StepError::retryable)?;
    ///         Ok(())
    ///     })
    ///     .await
    /// }
    /// ```
    ///
    /// The same on PostgreSQL (with the `postgres` feature):
    ///
    /// ```ignore
    /// #[steadfast::process]
    /// async fn pay(p: Process<PostgresStore>, amount: i64) -> Result<(), StepFailed> {
    ///     p.transaction("ledger updated", move |conn| {
    ///         Box::pin(async move {
    ///             steadfast::sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = 1")
    ///                 .bind(amount)
    ///                 .execute(conn)
    ///                 .await
    ///                 .map_err(StepError::retryable)?;
    ///             Ok(())
    ///         })
    ///     })
    ///     .await
    /// }
    /// ```
    #[track_caller]
    pub fn transaction<T, F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        body: F,
    ) -> impl Future<Output = Result<T, crate::StepFailed>> + Send + 'static
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: for<'c> FnMut(&'c mut S::Connection) -> S::Returns<'c, Result<T, StepError>>
            + Send
            + 'static,
    {
        use crate::ops::transaction::{Slot, after_body, run};
        let ctx = Arc::clone(&self.ctx);
        let store = self.store.clone();
        // Attempts run one after another; the lock is held only while the
        // body is called (what it returns does not borrow it).
        let body = Arc::new(std::sync::Mutex::new(body));
        let attempt = move |entry: steadfast_core::JournalEntry| {
            let (store, lease, body) = (store.clone(), ctx.lease.clone(), Arc::clone(&body));
            let limit = ctx.max_payload_bytes;
            async move {
                let slot = Slot::new(limit);
                let put = slot.clone();
                let step = entry.name.clone();
                let boxed: TransactionBody<S> = Box::new(move |conn| {
                    let returned = {
                        let mut body = body.lock().unwrap_or_else(|p| p.into_inner());
                        (*body)(conn)
                    };
                    S::then(returned, move |result| {
                        after_body(&step);
                        put.put(result).ok()
                    })
                });
                store.transaction(&lease, entry, boxed).await?;
                Ok(slot.take())
            }
        };
        run(
            Arc::clone(&self.ctx),
            self.scoped(name).into_owned(),
            Location::caller(),
            attempt,
        )
    }
}
