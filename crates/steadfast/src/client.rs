//! [`Client`]: spawns, signals and reads processes without running any, and
//! the read calls [`Host`] and [`Client`] share (`journal`, `list`,
//! `outcome_timeout`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{
    Backend, JournalEntry, ListFilter, Listed, ProcessId, ProcessRecord, SignalRecord, Status,
};

use crate::error::Error;
use crate::handle::Handle;
use crate::host::{Host, HostBuilder, Spawned};
use crate::typed::ProcessKind;

/// Talks to the processes of a store without running any: spawn, signal,
/// outcome (with or without a timeout), cancel, retry, status, journal,
/// list. For command-line tools, web front ends and services next to the
/// workers that run the processes.
///
/// A client built with kinds (`HostBuilder::register_kind`, then
/// [`HostBuilder::client`]) checks spawn inputs against their input types;
/// the values those kinds' functions need are not asked for.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use steadfast::{Client, Error, HostBuilder, Process, SqliteStore, StepFailed};
///
/// #[steadfast::process]
/// async fn greet(p: Process, name: String) -> Result<String, StepFailed> {
///     p.step("greeted", || async { Ok(format!("Hello, {name}!")) }).await
/// }
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("steadfast.db");
/// let store = SqliteStore::open(&path).await?;
/// let client: Client = HostBuilder::new(store).register_kind::<Greet>().client();
/// let greeting = client.start::<Greet>("greet-1", &"Ada".to_owned()).await?;
/// // No worker runs it yet: waiting for its outcome times out.
/// let waited = client.outcome_timeout::<String>("greet-1", Duration::from_millis(10)).await;
/// assert!(matches!(waited, Err(Error::Timeout { .. })));
/// assert_eq!(greeting.status().await?.status, steadfast::Status::Running);
/// assert!(client.journal("greet-1").await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    host: Host,
}

impl Client {
    /// A client over `store`, with no kinds (it can signal, cancel, retry
    /// and read any process; spawning needs the kind: see
    /// [`HostBuilder::client`]).
    pub fn new(store: impl Backend) -> Client {
        HostBuilder::new(store).client()
    }

    /// [`Client::new`] over a shared store.
    pub fn from_arc(store: Arc<dyn Backend>) -> Client {
        HostBuilder::from_arc(store).client()
    }

    /// Wraps a host built without its runners (`HostBuilder::client`).
    pub(crate) fn from_host(host: Host) -> Client {
        Client { host }
    }

    /// The store this client talks to.
    pub fn store(&self) -> &Arc<dyn Backend> {
        self.host.store()
    }

    /// Starts a process of `kind` (see [`Host::spawn`]): idempotent per id,
    /// input checked against the kind's input type.
    pub async fn spawn<I: Serialize + ?Sized>(
        &self,
        kind: &str,
        id: &str,
        input: &I,
    ) -> Result<Spawned, Error> {
        self.host.spawn(kind, id, input).await
    }

    /// [`Client::spawn`] with the input as JSON text.
    pub async fn spawn_json(&self, kind: &str, id: &str, input: &str) -> Result<Spawned, Error> {
        self.host.spawn_json(kind, id, input).await
    }

    /// Starts a process of the typed kind `K` (see [`Host::start`]).
    pub async fn start<K: ProcessKind>(
        &self,
        id: &str,
        input: &K::Input,
    ) -> Result<Handle<K>, Error> {
        self.host.start::<K>(id, input).await
    }

    /// A typed handle on process `id` (see [`Host::handle`]).
    pub async fn handle<K: ProcessKind>(&self, id: &str) -> Result<Handle<K>, Error> {
        self.host.handle::<K>(id).await
    }

    /// Sends a signal (see [`Host::signal`]).
    pub async fn signal<P: Serialize + ?Sized>(
        &self,
        id: &str,
        name: impl crate::SignalName<P>,
        payload: &P,
    ) -> Result<(), Error> {
        self.host.signal(id, name, payload).await
    }

    /// [`Client::signal`] with the payload as JSON text.
    pub async fn signal_json(&self, id: &str, name: &str, payload: &str) -> Result<(), Error> {
        self.host.signal_json(id, name, payload).await
    }

    /// Every signal of process `id` (see [`Host::signals`]).
    pub async fn signals(&self, id: &str) -> Result<Vec<SignalRecord>, Error> {
        self.host.signals(id).await
    }

    /// Discards a pending signal (see [`Host::discard_signal`]).
    pub async fn discard_signal(&self, id: &str, signal: i64) -> Result<(), Error> {
        self.host.discard_signal(id, signal).await
    }

    /// Waits until process `id` has finished (see [`Host::outcome`]).
    pub async fn outcome<O: DeserializeOwned>(&self, id: &str) -> Result<O, Error> {
        self.host.outcome(id).await
    }

    /// [`Client::outcome`], giving up after `timeout` with
    /// [`Error::Timeout`].
    pub async fn outcome_timeout<O: DeserializeOwned>(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<O, Error> {
        self.host.outcome_timeout(id, timeout).await
    }

    /// Cancels process `id` (see [`Host::cancel`]).
    pub async fn cancel(&self, id: &str) -> Result<Status, Error> {
        self.host.cancel(id).await
    }

    /// Resumes a blocked or failed process, or cuts a durable retry wait
    /// short (see [`Host::retry`]).
    pub async fn retry(&self, id: &str) -> Result<(), Error> {
        self.host.retry(id).await
    }

    /// Rewinds process `id` to its entry `step` (see [`Host::rewind`]).
    pub async fn rewind(&self, id: &str, step: &str) -> Result<u64, Error> {
        self.host.rewind(id, step).await
    }

    /// Deletes finished processes older than `age` (see [`Host::purge`]).
    pub async fn purge(&self, age: Duration) -> Result<u64, Error> {
        self.host.purge(age).await
    }

    /// The stored state of process `id`.
    pub async fn status(&self, id: &str) -> Result<ProcessRecord, Error> {
        self.host.status(id).await
    }

    /// The journal of process `id`, oldest entry first.
    pub async fn journal(&self, id: &str) -> Result<Vec<JournalEntry>, Error> {
        self.host.journal(id).await
    }

    /// Processes matching `filter`, ordered by id.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Listed>, Error> {
        self.host.list(filter).await
    }

    /// The latest value process `id` published under `key` (see
    /// [`Host::state`]).
    pub async fn state<T: DeserializeOwned>(
        &self,
        id: &str,
        key: &str,
    ) -> Result<Option<T>, Error> {
        self.host.state(id, key).await
    }

    /// Adds a schedule (see [`Host::schedule`]).
    pub async fn schedule(&self, schedule: crate::schedule::Schedule) -> Result<Spawned, Error> {
        self.host.schedule(schedule).await
    }

    /// Removes a schedule (see [`Host::unschedule`]).
    pub async fn unschedule(&self, name: &str) -> Result<Status, Error> {
        self.host.unschedule(name).await
    }
}

impl Host {
    /// The journal of process `id`, oldest entry first.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use steadfast::{Host, Process, SqliteStore, StepFailed};
    /// # async fn one(p: Process, _: ()) -> Result<u32, StepFailed> {
    /// #     p.step("counted", || async { Ok(1) }).await
    /// # }
    /// # let dir = tempfile::tempdir()?;
    /// let host = Host::builder(SqliteStore::open(dir.path().join("s.db")).await?)
    ///     .register("one", one)
    ///     .build();
    /// host.spawn("one", "one-1", &()).await?;
    /// let _: u32 = host.outcome("one-1").await?;
    /// let journal = host.journal("one-1").await?;
    /// assert_eq!(journal[0].name, "counted");
    /// # host.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn journal(&self, id: &str) -> Result<Vec<JournalEntry>, Error> {
        Ok(self.store().journal(&ProcessId::new(id)?).await?)
    }

    /// Processes matching `filter`, ordered by id (a page of at most
    /// `filter.limit`).
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Listed>, Error> {
        Ok(self.store().list(filter).await?)
    }

    /// [`Host::outcome`], giving up after `timeout` (measured in real time)
    /// with [`Error::Timeout`], which names the process's status then.
    /// Nothing changes when it times out: the process goes on.
    pub async fn outcome_timeout<O: DeserializeOwned>(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<O, Error> {
        let pid = ProcessId::new(id)?;
        match tokio::time::timeout(timeout, self.outcome(id)).await {
            Ok(result) => result,
            Err(_) => {
                let status = self.store().get(&pid).await?.status;
                Err(Error::Timeout {
                    id: pid,
                    waited: timeout,
                    status,
                })
            }
        }
    }
}

impl HostBuilder {
    /// A [`Client`]: spawns, signals, cancels and reads processes
    /// and never runs any. The kinds registered here check spawn inputs
    /// (their provided values are not needed).
    pub fn client(self) -> Client {
        Client::from_host(self.build_client())
    }
}
