//! [`Host`]: registers process kinds, spawns and signals processes, and runs
//! them on a store.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{
    Backend, Clock, EntryKind, EntryStatus, HostId, ListFilter, Listed, NewProcess, PendingSignal,
    ProcessId, ProcessRecord, SignalRecord, SpawnAndClaim, SpawnOutcome, Status, SystemClock,
};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::context::Stop;
use crate::error::Error;
use crate::kind::{Kind, Kinds};
use crate::provided::Provided;
use crate::retry::RetryPolicy;
use crate::shared::{Config, Shared};
use crate::stores::{HostStore, ProcessStore};
use crate::{Process, dispatcher};

/// The default of [`HostBuilder::max_payload_bytes`]: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Builds a [`Host`]: the store, the process kinds it runs, its tunables.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use steadfast::{Host, Process, SqliteStore};
///
/// async fn greet(p: Process, name: String) -> Result<String, steadfast::StepFailed> {
///     let greeting = p.step("greeted", || async { Ok(format!("Hello, {name}!")) }).await?;
///     Ok(greeting)
/// }
///
/// let host = Host::builder(SqliteStore::open("steadfast.db").await?)
///     .register("greet", greet)
///     .build();
/// host.spawn("greet", "greet-ada", &"Ada").await?;
/// let greeting: String = host.outcome("greet-ada").await?;
/// # Ok(()) }
/// ```
pub struct HostBuilder {
    store: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    kinds: Kinds,
    provided: Provided,
    typed: Vec<TypedKind>,
    config: Config,
    id: Option<String>,
}

impl HostBuilder {
    /// A builder over `store` with the defaults: the system clock, 1,000
    /// processes run at once, a 30 s lease, the default retry policy.
    ///
    /// The builder knows the store as its own type `S`, so kinds whose
    /// function takes `Process<S>` (transactional steps) run on it.
    pub fn new<S: Backend>(store: S) -> Self {
        let store = Arc::new(store);
        let mut builder = Self::from_arc(Arc::clone(&store) as Arc<dyn Backend>);
        builder.provided.insert(HostStore(store));
        builder
    }

    /// Like [`HostBuilder::new`] for a store already shared. The store is
    /// known only as a [`Backend`], so a kind whose function takes
    /// `Process<S>` for a concrete store `S` is refused when the host is
    /// built; use [`HostBuilder::new`] for those.
    pub fn from_arc(store: Arc<dyn Backend>) -> Self {
        let mut kinds = Kinds::default();
        let schedules = Arc::clone(&store);
        kinds.insert(
            crate::schedule::SCHEDULE_KIND.to_owned(),
            1,
            Kind::new(move |p, state| crate::schedule::run(p, state, Arc::clone(&schedules))),
        );
        HostBuilder {
            store,
            clock: Arc::new(SystemClock),
            kinds,
            provided: Provided::default(),
            typed: Vec::new(),
            config: Config {
                max_concurrency: 1000,
                lease: Duration::from_secs(30),
                poll_interval: Duration::from_millis(500),
                shutdown_grace: Duration::from_secs(5),
                retry: RetryPolicy::default(),
                retention: None,
                journal_warning: 10_000,
                max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
                clock_offset_warning: Duration::from_secs(1),
            },
            id: None,
        }
    }

    /// Registers a process kind: a name and an `async fn(Process, Input) ->
    /// Result<Output, E>`. Inputs and outputs are stored as JSON.
    ///
    /// A function that runs transactional steps takes `Process<S>` for its
    /// store `S` (say `|p: Process<SqliteStore>, input: i64| …`); on a host
    /// whose store is not an `S`, [`HostBuilder::build`] refuses it.
    pub fn register<S, I, O, E, F, Fut>(self, kind: impl Into<String>, function: F) -> Self
    where
        S: ProcessStore,
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(Process<S>, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        self.register_version(kind, 1, function)
    }

    /// Registers version `version` of a process kind. New processes start
    /// with the newest registered version and record it; a process keeps
    /// running with the version it started with, so a deploy can add
    /// version 2 while the processes of version 1 finish on their code
    /// (keep version 1 registered until they have). [`HostBuilder::register`]
    /// registers version 1.
    pub fn register_version<S, I, O, E, F, Fut>(
        mut self,
        kind: impl Into<String>,
        version: u32,
        function: F,
    ) -> Self
    where
        S: ProcessStore,
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(Process<S>, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let name = kind.into();
        match S::from_host(&self.provided) {
            Ok(store) => {
                let kind = Kind::new(move |p: Process, input: I| {
                    function(p.on_store(store.clone()), input)
                });
                self.kinds.insert(name, version, kind);
            }
            // Refused when the host is built, like a typed kind lacking a
            // provided value.
            Err(missing) => {
                let why = format!("process kind {name:?} is not runnable on this host: {missing}");
                self.typed.push(TypedKind {
                    name,
                    version,
                    resolve: Box::new(move |_| Err((missing, Kind::check_only::<I>(why)))),
                });
            }
        }
        self
    }

    /// Registers the process kind `K` (a type `#[steadfast::process]`
    /// emits) under its name and version: processes started with
    /// [`Host::start`] are then checked at compile time. The values its
    /// function takes besides its input come from [`HostBuilder::provide`].
    ///
    /// (Named `register_kind` because [`HostBuilder::register`], the string
    /// form, keeps its signature for dynamic use.)
    pub fn register_kind<K: crate::ProcessKind>(mut self) -> Self {
        self.typed.push(TypedKind {
            name: K::NAME.to_owned(),
            version: K::VERSION,
            resolve: Box::new(resolve_kind::<K>),
        });
        self
    }

    /// Gives process functions registered with
    /// [`HostBuilder::register_kind`] a value of type `T` (a client, a
    /// service, configuration): each argument after the input is a clone of
    /// the provided value of its type.
    pub fn provide<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.provided.insert(value);
        self
    }

    /// The clock timers are measured by (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many processes this host runs at once (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.config.max_concurrency = n.max(1);
        self
    }

    /// How long a claim on a process lasts without renewal (real time);
    /// after a crash, other hosts take over once it expires.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// How far this host's clock may be from the store's clock before the
    /// host warns (measured at start and every 30 s; default 1 s). Stores
    /// with a clock of their own (PostgreSQL's server clock) decide lease
    /// expiry and due times with it, so an offset does not make work run
    /// twice or timers fire early, but it does skew the times the host
    /// journals.
    pub fn clock_offset_warning(mut self, threshold: Duration) -> Self {
        self.config.clock_offset_warning = threshold;
        self
    }

    /// How often the store is polled for work that other hosts made due.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The retry policy of steps that set none.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Keeps finished processes (completed, failed, cancelled) for `keep`
    /// after they ended, their history viewable, then purges them in the
    /// background. Unfinished processes are never purged. Off by default:
    /// finished processes are kept until [`Host::purge`].
    pub fn retention(mut self, keep: Duration) -> Self {
        self.config.retention = Some(keep);
        self
    }

    /// Warns (in the log, once per run) when a process's journal reaches
    /// `entries` entries (default 10,000): a process that loops forever should
    /// end each round with [`crate::Process::continue_as_new`].
    pub fn journal_warning(mut self, entries: usize) -> Self {
        self.config.journal_warning = entries.max(1);
        self
    }

    /// The largest JSON text, in bytes, this host stores as a spawn input,
    /// a signal payload, a step's outcome or recorded value, a child's or a
    /// next generation's input, or a process's output (default
    /// [`DEFAULT_MAX_PAYLOAD_BYTES`], 1 MiB; at least 64 bytes). A spawn or
    /// signal over it fails with [`Error::PayloadTooLarge`] and stores
    /// nothing; an outcome or output over it blocks the process, naming the
    /// step and the sizes, before anything of it is stored (raise the limit
    /// and `retry` it).
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.config.max_payload_bytes = bytes.max(64);
        self
    }

    /// How long [`Host::shutdown`] lets running steps finish.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Names the host (default: a fresh UUID); the name owns its leases.
    pub fn host_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Starts the host: it resumes every unfinished process in the store
    /// and runs new ones. Must be called inside a Tokio runtime.
    ///
    /// # Panics
    ///
    /// If a kind registered with [`HostBuilder::register_kind`] takes a
    /// value of a type no [`HostBuilder::provide`] call gave, or a kind
    /// takes `Process<S>` for a store `S` this host does not run on (mistakes
    /// in the program's set-up, found before any process runs).
    pub fn build(self) -> Host {
        self.start(true)
    }

    /// A host that only spawns, signals, cancels and reads processes and
    /// never runs any. Registered kinds are still used to check spawn inputs.
    ///
    /// Prefer [`HostBuilder::client`]: its [`crate::Client`] has only the
    /// calls that make sense without runners. This shim stays for callers
    /// that need a `Host` value.
    pub fn build_client(self) -> Host {
        self.start(false)
    }

    fn start(mut self, run_processes: bool) -> Host {
        for typed in std::mem::take(&mut self.typed) {
            let kind = match (typed.resolve)(&self.provided) {
                Ok(kind) => kind,
                Err((missing, check_only)) if !run_processes => {
                    let _ = missing;
                    check_only
                }
                Err((missing, _)) => panic!(
                    "process kind {:?} needs a value this host was not given: {missing}",
                    typed.name
                ),
            };
            self.kinds.insert(typed.name, typed.version, kind);
        }
        let id = HostId::new(self.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()));
        if !self.clock.is_real_time() {
            // A virtual or scaled clock is a timeline of its own: the store
            // must decide with the times this host passes, not its clock.
            self.store.follow_host_clock();
        }
        let (stopping, _) = watch::channel(false);
        let metrics = Arc::new(crate::metrics::Metrics::new(id.as_str()));
        let shared = Arc::new(Shared {
            id,
            store: self.store,
            clock: self.clock,
            latest_versions: Arc::new(self.kinds.latest_versions()),
            kinds: self.kinds,
            permits: Arc::new(Semaphore::new(self.config.max_concurrency)),
            metrics,
            config: self.config,
            work: Notify::new(),
            stopping,
            leases: Arc::default(),
            offset: Arc::default(),
            active: Mutex::default(),
            outcome_waiters: Mutex::default(),
            runs_processes: run_processes,
        });
        let tasks = if run_processes {
            let store = Arc::clone(&shared.store);
            tokio::spawn(async move {
                let sources = crate::process_sources();
                if !sources.is_empty()
                    && let Err(err) = store.save_sources(&sources).await
                {
                    tracing::warn!(error = %err, "could not save the process functions' sources");
                }
            });
            let mut tasks = vec![
                tokio::spawn(dispatcher::dispatch(Arc::clone(&shared))),
                tokio::spawn(dispatcher::heartbeat(Arc::clone(&shared))),
                tokio::spawn(dispatcher::watch_offset(Arc::clone(&shared))),
            ];
            if let Some(keep) = shared.config.retention {
                tasks.push(tokio::spawn(dispatcher::retain(Arc::clone(&shared), keep)));
            }
            tasks
        } else {
            Vec::new()
        };
        Host {
            inner: Arc::new(HostInner {
                shared,
                tasks: Mutex::new(tasks),
            }),
        }
    }
}

/// A kind registered by type, resolved against the provided values when
/// the host is built.
struct TypedKind {
    name: String,
    version: u32,
    resolve: Box<ResolveFn>,
}

type ResolveFn = dyn FnOnce(&Provided) -> Result<Kind, (crate::NotProvided, Kind)> + Send;

/// Binds kind `K`'s function to its provided values; without them, a kind
/// that only checks inputs (for client hosts) and what was missing.
fn resolve_kind<K: crate::ProcessKind>(
    provided: &Provided,
) -> Result<Kind, (crate::NotProvided, Kind)> {
    match K::function(provided) {
        Ok(function) => Ok(Kind::new(move |p, input: K::Input| function(p, input))),
        Err(missing) => {
            let why = format!(
                "process kind {:?} is not runnable on this host: {missing}",
                K::NAME
            );
            Err((missing, Kind::check_only::<K::Input>(why)))
        }
    }
}

struct HostInner {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for HostInner {
    /// Dropping the last handle stops the host at once (like a crash: leases
    /// are left to expire or to be taken over); prefer [`Host::shutdown`].
    fn drop(&mut self) {
        self.shared.stopping.send_replace(true);
        for ctx in self.shared.active().drain().map(|(_, ctx)| ctx) {
            ctx.stop(Stop::Aborted(steadfast_core::StoreError::Closed));
        }
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Whether [`Host::spawn`] created the process or found it already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spawned {
    /// A new process was stored.
    Created,
    /// A process with the same id, kind and input already existed.
    Existing,
}

/// Runs processes on a store. Cheap to clone; see [`HostBuilder`].
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("id", &self.inner.shared.id)
            .finish()
    }
}

impl Host {
    /// A builder over `store`.
    pub fn builder(store: impl Backend) -> HostBuilder {
        HostBuilder::new(store)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// This host's id (it owns the leases the host takes).
    pub fn id(&self) -> &HostId {
        &self.shared().id
    }

    /// The store this host runs on.
    pub fn store(&self) -> &Arc<dyn Backend> {
        &self.shared().store
    }

    /// The clock this host measures timers by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared().clock
    }

    /// Starts a process of `kind` under the caller's `id` with `input`.
    ///
    /// Idempotent: spawning the same id with the same kind and input again
    /// returns [`Spawned::Existing`]; a different kind or input is an error.
    /// Once this returns, the process survives a crash of the host.
    pub async fn spawn<I: Serialize + ?Sized>(
        &self,
        kind: &str,
        id: &str,
        input: &I,
    ) -> Result<Spawned, Error> {
        let json = canonical_json(input, || {
            format!("the input of process {:?}", steadfast_core::shorten(id))
        })?;
        self.spawn_json(kind, id, &json).await
    }

    /// [`Host::spawn`] with the input as JSON text (checked against the
    /// kind's input type before anything is stored).
    pub async fn spawn_json(&self, kind: &str, id: &str, input: &str) -> Result<Spawned, Error> {
        let shared = self.shared();
        let id = ProcessId::new(id)?;
        let (version, registered) = shared
            .kinds
            .latest(kind)
            .ok_or_else(|| self.unknown_kind(kind))?;
        self.check_size(input, || format!("the input of process {:?}", id.as_str()))?;
        let value: serde_json::Value =
            serde_json::from_str(input).map_err(|e| Error::InvalidInput {
                kind: kind.to_owned(),
                expected: registered.input_type,
                detail: format!("not valid JSON: {e}"),
            })?;
        let input = value.to_string();
        registered
            .check_input(&input)
            .map_err(|detail| Error::InvalidInput {
                kind: kind.to_owned(),
                expected: registered.input_type,
                detail,
            })?;
        let now = shared.clock.now();
        let process = NewProcess {
            id,
            kind: kind.to_owned(),
            version,
            input,
            now,
            parent: None,
            traceparent: crate::trace::current(),
        };
        // With a free run slot, the spawn claims the process for this host
        // in the same write, and its run starts here: no claim afterwards.
        let outcome = match dispatcher::run_slot(shared) {
            Some(slot) => {
                let lease = dispatcher::clock_lease(shared);
                match shared
                    .store
                    .spawn_and_claim(process, &shared.id, lease)
                    .await?
                {
                    SpawnAndClaim::Claimed(claimed) => {
                        dispatcher::start_run(shared, *claimed, slot, now + lease);
                        return Ok(Spawned::Created);
                    }
                    SpawnAndClaim::Created => SpawnOutcome::Created,
                    SpawnAndClaim::Existing(record) => SpawnOutcome::Existing(record),
                }
            }
            None => shared.store.spawn(process).await?,
        };
        Ok(match outcome {
            SpawnOutcome::Created => {
                shared.work.notify_one();
                Spawned::Created
            }
            SpawnOutcome::Existing(_) => Spawned::Existing,
        })
    }

    /// Sends the signal `name` with `payload` to process `id`. It is stored
    /// durably before this returns, and kept until a wait for it consumes it
    /// (or rejects it, when its payload does not decode into the type the
    /// waits for it expect; see [`Host::signals`]).
    ///
    /// `name` is a typed [`crate::Signal`] (then `payload` must be of its
    /// type) or a plain name. Names beginning with `steadfast:` are reserved
    /// for the engine and refused.
    pub async fn signal<P: Serialize + ?Sized>(
        &self,
        id: &str,
        name: impl crate::SignalName<P>,
        payload: &P,
    ) -> Result<(), Error> {
        let name = name.signal_name();
        let json = canonical_json(payload, || {
            format!("the payload of signal {:?}", steadfast_core::shorten(&name))
        })?;
        self.signal_json(id, &name, &json).await
    }

    /// [`Host::signal`] with the payload as JSON text.
    pub async fn signal_json(&self, id: &str, name: &str, payload: &str) -> Result<(), Error> {
        self.send_signal(id, name, payload, None).await.map(drop)
    }

    /// [`Host::signal_json`] for a signal sent by a message (a bus
    /// subscription): the store keeps `message_id` with the signal, and a
    /// message with the same id sent to the same process again — a broker's
    /// re-delivery — stores nothing and returns
    /// [`SignalSent::Duplicate`](steadfast_core::SignalSent::Duplicate),
    /// also once the process has finished.
    ///
    /// ```
    /// # use steadfast::{Process, StepFailed, SignalSent};
    /// # async fn waits(p: Process, _: ()) -> Result<u32, StepFailed> { Ok(p.wait("paid").await) }
    /// # #[tokio::main] async fn main() {
    /// # let t = steadfast::testing::TestHost::start(|b| b.register("order", waits)).await;
    /// let host = t.host();
    /// host.spawn("order", "order-1", &()).await.unwrap();
    /// let first = host.signal_message_json("order-1", "paid", "42", "payments/7").await.unwrap();
    /// let again = host.signal_message_json("order-1", "paid", "42", "payments/7").await.unwrap();
    /// assert_eq!(again, SignalSent::Duplicate(first.id()));
    /// # }
    /// ```
    pub async fn signal_message_json(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        message_id: &str,
    ) -> Result<steadfast_core::SignalSent, Error> {
        self.send_signal(id, name, payload, Some(message_id)).await
    }

    async fn send_signal(
        &self,
        id: &str,
        name: &str,
        payload: &str,
        message_id: Option<&str>,
    ) -> Result<steadfast_core::SignalSent, Error> {
        let shared = self.shared();
        let id = ProcessId::new(id)?;
        if name.is_empty() {
            return Err(steadfast_core::StoreError::InvalidInput(
                "a signal name must not be empty".to_owned(),
            )
            .into());
        }
        if crate::is_reserved(name) {
            return Err(steadfast_core::StoreError::InvalidInput(format!(
                "signal {:?}: names beginning with {:?} are reserved for the engine",
                steadfast_core::shorten(name),
                crate::RESERVED_PREFIX
            ))
            .into());
        }
        self.check_size(payload, || {
            format!(
                "the payload of signal {:?} to {:?}",
                steadfast_core::shorten(name),
                id.as_str()
            )
        })?;
        let value: serde_json::Value = serde_json::from_str(payload).map_err(|e| {
            steadfast_core::StoreError::InvalidInput(format!(
                "the payload of signal {:?} is not valid JSON: {e}",
                steadfast_core::shorten(name)
            ))
        })?;
        let payload = value.to_string();
        let now = shared.clock.now();
        let traceparent = crate::trace::current();
        let sent = shared
            .store
            .send_signal(
                &id,
                steadfast_core::NewSignal {
                    name: name.to_owned(),
                    payload: payload.clone(),
                    now,
                    message_id: message_id.map(str::to_owned),
                    traceparent: traceparent.clone(),
                },
            )
            .await?;
        let steadfast_core::SignalSent::Stored(signal_id) = sent else {
            return Ok(sent);
        };
        if let Some(ctx) = shared.loaded(&id) {
            ctx.deliver(vec![PendingSignal {
                id: signal_id,
                name: name.to_owned(),
                payload,
                sent_at: now,
                traceparent,
            }]);
        }
        shared.work.notify_one();
        Ok(sent)
    }

    /// The stored state of process `id`.
    pub async fn status(&self, id: &str) -> Result<ProcessRecord, Error> {
        Ok(self.shared().store.get(&ProcessId::new(id)?).await?)
    }

    /// Waits until process `id` has finished and returns its output, or the
    /// error it failed with, or [`Error::Cancelled`].
    pub async fn outcome<O: DeserializeOwned>(&self, id: &str) -> Result<O, Error> {
        let shared = self.shared();
        let id = ProcessId::new(id)?;
        let decode = |output: &str| {
            serde_json::from_str(output).map_err(|e| Error::Decode {
                what: format!("the output of process {id:?}"),
                expected: std::any::type_name::<O>(),
                detail: e.to_string(),
            })
        };
        loop {
            let waiter = shared.outcome_waiter(&id);
            let notified = waiter.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = shared.store.get(&id).await?;
            if record.status.is_finished() {
                // Nobody needs a wake-up for this process any more.
                shared.finished(&id);
            }
            match record.status {
                Status::Completed => {
                    return decode(record.output.as_deref().unwrap_or("null"));
                }
                Status::Failed => {
                    return Err(crate::error::failed(&*shared.store, id, record).await);
                }
                Status::Cancelled => return Err(Error::Cancelled { id }),
                _ => {}
            }
            tokio::select! {
                () = notified => {
                    // A run on this host completed it: the output is in
                    // hand, no need to read it back.
                    if let Some(output) = waiter.output() {
                        return decode(&output);
                    }
                }
                () = tokio::time::sleep(shared.config.poll_interval) => {}
            }
        }
    }

    /// Cancels process `id`: at once if no host runs it now, otherwise at the
    /// running host's next write. Its child processes (spawned by
    /// [`crate::Process::child`], found by their stored parent, and theirs)
    /// are cancelled too, in the same store transaction; detached ones and
    /// other processes whose ids merely start with `<id>/` are not. Returns
    /// the status after the call.
    pub async fn cancel(&self, id: &str) -> Result<Status, Error> {
        let shared = self.shared();
        let id = ProcessId::new(id)?;
        let now = shared.clock.now();
        let status = shared.store.cancel(&id, now).await?;
        self.cancelled(&id, status);
        self.stop_children(&id).await?;
        Ok(status)
    }

    /// After the store cancelled `id` (or requested it): wakes its outcome
    /// waiters, or stops its run if this host runs it.
    fn cancelled(&self, id: &ProcessId, status: Status) {
        let shared = self.shared();
        if status == Status::Cancelled {
            shared.finished(id);
        } else if let Some(ctx) = shared.loaded(id) {
            ctx.stop(Stop::Cancelled);
        }
    }

    /// Stops the runs this host has of `id`'s descendants (which the store
    /// cancelled with it) and wakes their outcome waiters.
    async fn stop_children(&self, id: &ProcessId) -> Result<(), Error> {
        let store = &self.shared().store;
        let mut parents = vec![id.clone()];
        while let Some(parent) = parents.pop() {
            let mut filter = ListFilter {
                parent: Some(parent),
                limit: 500,
                ..ListFilter::default()
            };
            loop {
                let page = store.list(&filter).await?;
                for child in page.iter().filter_map(Listed::record) {
                    parents.push(child.id.clone());
                    match child.status {
                        Status::Cancelled => self.cancelled(&child.id, Status::Cancelled),
                        Status::Running if child.cancel_requested => {
                            self.cancelled(&child.id, Status::Running);
                        }
                        _ => {}
                    }
                }
                match page.last() {
                    Some(last) if page.len() == filter.limit => match ProcessId::new(last.id()) {
                        Ok(after) => filter.after = Some(after),
                        Err(_) => break,
                    },
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Every signal of process `id` in send order: pending ones, and those a
    /// wait consumed, rejected (with the reason) or an operator discarded.
    pub async fn signals(&self, id: &str) -> Result<Vec<SignalRecord>, Error> {
        let shared = self.shared();
        Ok(shared.store.signals(&ProcessId::new(id)?).await?)
    }

    /// Discards the pending signal `signal` (its id, from [`Host::signals`])
    /// of process `id`: no wait will take it; it stays listed as discarded.
    /// Nothing else changes. A signal that is no longer pending is refused.
    pub async fn discard_signal(&self, id: &str, signal: i64) -> Result<(), Error> {
        let shared = self.shared();
        let id = ProcessId::new(id)?;
        shared
            .store
            .discard_signal(&id, signal, shared.clock.now())
            .await?;
        if let Some(ctx) = shared.loaded(&id) {
            ctx.forget_signal(signal);
        }
        Ok(())
    }

    /// Resumes a blocked or failed process (after the code was fixed): its
    /// journal is kept and replayed. For a process whose steps wait durably
    /// for their next attempt (see [`RetryPolicy`]), cuts those waits short:
    /// the steps are tried again at once.
    pub async fn retry(&self, id: &str) -> Result<(), Error> {
        let shared = self.shared();
        let id = ProcessId::new(id)?;
        let record = shared.store.get(&id).await?;
        if matches!(record.status, Status::Running | Status::Suspended) {
            let waiting: Vec<String> = shared
                .store
                .journal(&id)
                .await?
                .into_iter()
                .filter(|e| e.kind == EntryKind::Step && e.status == EntryStatus::Scheduled)
                .map(|e| e.name)
                .collect();
            if !waiting.is_empty() {
                for step in waiting {
                    let signal = crate::ops::step::retry_now_signal(&step);
                    self.internal_signal(&id, &signal, "null").await?;
                }
                return Ok(());
            }
        }
        shared.store.retry(&id, shared.clock.now()).await?;
        shared.work.notify_one();
        Ok(())
    }

    /// Stores a signal the engine itself sends and hands it to a loaded run.
    async fn internal_signal(
        &self,
        id: &ProcessId,
        name: &str,
        payload: &str,
    ) -> Result<(), Error> {
        let shared = self.shared();
        let now = shared.clock.now();
        let signal_id = shared.store.signal(id, name, payload, now).await?;
        if let Some(ctx) = shared.loaded(id) {
            ctx.deliver(vec![PendingSignal {
                id: signal_id,
                name: name.to_owned(),
                payload: payload.to_owned(),
                sent_at: now,
                traceparent: None,
            }]);
        }
        shared.work.notify_one();
        Ok(())
    }

    /// This host's clock offset from the store's clock in seconds
    /// (positive: the host's clock is ahead), as last measured; `None`
    /// before the first measurement and when the store has no clock of its
    /// own (it follows the hosts' times).
    pub fn clock_offset(&self) -> Option<f64> {
        self.shared().offset.seconds()
    }

    /// Adds a schedule (see [`crate::schedule`]). While a schedule of the
    /// same name exists, adding it again changes nothing and returns
    /// [`Spawned::Existing`]; remove it first to change its settings.
    pub async fn schedule(&self, schedule: crate::schedule::Schedule) -> Result<Spawned, Error> {
        let shared = self.shared();
        if !shared.kinds.contains(schedule.spawns()) {
            return Err(self.unknown_kind(schedule.spawns()));
        }
        let id = crate::schedule::Schedule::process_id(schedule.name());
        let state = crate::schedule::ScheduleState {
            schedule,
            origin: shared.clock.now(),
            last_tick: None,
            last_run: None,
            readable_ids: true,
        };
        let input = canonical_json(&state, || format!("schedule {id:?}"))?;
        // The origin makes each add distinct; an existing schedule of the
        // same name is kept as it is.
        let pid = ProcessId::new(id.as_str())?;
        match shared.store.get(&pid).await {
            Ok(existing) if !existing.status.is_finished() => return Ok(Spawned::Existing),
            Ok(_) | Err(steadfast_core::StoreError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        self.spawn_json(crate::schedule::SCHEDULE_KIND, &id, &input)
            .await
    }

    /// Removes the schedule `name` (runs it already spawned go on).
    pub async fn unschedule(&self, name: &str) -> Result<Status, Error> {
        self.cancel(&crate::schedule::Schedule::process_id(name))
            .await
    }

    /// Rewinds process `id` to the journal entry named `step`: that entry and
    /// every later one are dropped (signals they consumed become pending
    /// again) and the process runs again from there. Returns how many entries
    /// were dropped. Refused while a live host runs the process.
    pub async fn rewind(&self, id: &str, step: &str) -> Result<u64, Error> {
        let shared = self.shared();
        let id = ProcessId::new(id)?;
        let dropped = shared.store.rewind(&id, step, shared.clock.now()).await?;
        shared.work.notify_one();
        Ok(dropped)
    }

    /// Deletes finished processes (completed, failed, cancelled) that ended
    /// more than `age` ago, with their journals; returns how many.
    pub async fn purge(&self, age: Duration) -> Result<u64, Error> {
        let shared = self.shared();
        let before = shared.clock.now() - age;
        Ok(shared.store.purge(before).await?)
    }

    /// Stops taking work, lets running steps finish for the grace period,
    /// then gives up every lease so other hosts can continue at once.
    pub async fn shutdown(&self) {
        let shared = self.shared();
        shared.stopping.send_replace(true);
        let deadline = tokio::time::Instant::now() + shared.config.shutdown_grace;
        while !shared.active().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for task in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        for ctx in shared.active().drain().map(|(_, ctx)| ctx) {
            ctx.stop(Stop::Aborted(steadfast_core::StoreError::Closed));
        }
        if let Err(err) = shared.store.release(&shared.id, shared.clock.now()).await {
            tracing::warn!(error = %err, "could not release leases at shutdown");
        }
    }

    /// Refuses a JSON text over [`HostBuilder::max_payload_bytes`].
    fn check_size(&self, json: &str, what: impl FnOnce() -> String) -> Result<(), Error> {
        let limit = self.shared().config.max_payload_bytes;
        if json.len() > limit {
            return Err(Error::PayloadTooLarge {
                what: what(),
                size: json.len(),
                limit,
            });
        }
        Ok(())
    }

    fn unknown_kind(&self, kind: &str) -> Error {
        let known = self.shared().kinds.names();
        Error::UnknownKind {
            kind: kind.to_owned(),
            known,
        }
    }
}

/// JSON with object keys sorted, so equal values give equal text (which
/// makes idempotent spawns compare inputs reliably).
fn canonical_json<T: Serialize + ?Sized>(
    value: &T,
    what: impl Fn() -> String,
) -> Result<String, Error> {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .map_err(|e| Error::Encode {
            what: what(),
            detail: e.to_string(),
        })
}
