//! [`Handle`], a typed handle on one process, and the typed ways to start
//! and look up processes ([`Host::start`], [`Host::handle`]).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{JournalEntry, ProcessId, ProcessRecord, Status};

use crate::typed::ProcessKind;
use crate::{Error, Host, Spawned};

/// A typed handle on one process of kind `K`: returned by
/// [`Host::start`] and [`Host::handle`]. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), steadfast::Error> {
/// use steadfast::{Process, Signal, StepFailed};
///
/// const NAMED: Signal<String> = Signal::new("named");
///
/// #[steadfast::process]
/// async fn greet(p: Process, greeting: String) -> Result<String, StepFailed> {
///     let name = p.wait(NAMED).await;
///     Ok(format!("{greeting}, {name}!"))
/// }
///
/// let t = steadfast::testing::TestHost::start(|b| b.register_kind::<Greet>()).await;
/// let greeting = t.host().start::<Greet>("greet-1", &"Hello".to_owned()).await?;
/// greeting.signal(NAMED, &"Ada".to_owned()).await?;
/// assert_eq!(greeting.outcome().await?, "Hello, Ada!");
/// # Ok(()) }
/// ```
pub struct Handle<K> {
    host: Host,
    id: ProcessId,
    spawned: Spawned,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Handle<K> {
    fn clone(&self) -> Self {
        Handle {
            host: self.host.clone(),
            id: self.id.clone(),
            spawned: self.spawned,
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Handle<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("kind", &std::any::type_name::<K>())
            .field("id", &self.id)
            .finish()
    }
}

impl<K: ProcessKind> Handle<K> {
    pub(crate) fn new(host: Host, id: ProcessId, spawned: Spawned) -> Self {
        Handle {
            host,
            id,
            spawned,
            _kind: PhantomData,
        }
    }

    /// The process's id.
    pub fn id(&self) -> &ProcessId {
        &self.id
    }

    /// Whether [`Host::start`] created the process or found it there
    /// ([`Spawned::Existing`] also for handles from [`Host::handle`]).
    pub fn spawned(&self) -> Spawned {
        self.spawned
    }

    /// Sends `signal` with `payload` (see [`Host::signal`]); with a typed
    /// [`crate::Signal`] the payload's type is checked at compile time.
    pub async fn signal<P: Serialize + ?Sized>(
        &self,
        signal: impl crate::SignalName<P>,
        payload: &P,
    ) -> Result<(), Error> {
        self.host.signal(self.id.as_str(), signal, payload).await
    }

    /// Waits until the process has finished and returns its output, or the
    /// error it failed with, or [`Error::Cancelled`] (see [`Host::outcome`]).
    pub async fn outcome(&self) -> Result<K::Output, Error> {
        self.host.outcome::<K::Output>(self.id.as_str()).await
    }

    /// Cancels the process and its children (see [`Host::cancel`]).
    pub async fn cancel(&self) -> Result<Status, Error> {
        self.host.cancel(self.id.as_str()).await
    }

    /// The process's stored record (status, times, error, what it waits for).
    pub async fn status(&self) -> Result<ProcessRecord, Error> {
        self.host.status(self.id.as_str()).await
    }

    /// The process's journal, in order.
    pub async fn journal(&self) -> Result<Vec<JournalEntry>, Error> {
        Ok(self.host.store().journal(&self.id).await?)
    }

    /// The latest value the process published under `key`
    /// ([`crate::Process::publish_state`]), read from the store; `None` if
    /// it has published none (in its current generation).
    pub async fn state<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.host.state(self.id.as_str(), key).await
    }

    /// Resumes the process if it is blocked or failed, or cuts a step's
    /// durable retry wait short (see [`Host::retry`]).
    pub async fn retry(&self) -> Result<(), Error> {
        self.host.retry(self.id.as_str()).await
    }
}

impl Host {
    /// Starts a process of kind `K` under the caller's `id`: [`Host::spawn`]
    /// with the kind, input and output checked at compile time.
    ///
    /// Idempotent like [`Host::spawn`]: starting the same id with the same
    /// input again returns a handle on the existing process.
    ///
    /// An input of the wrong type does not compile:
    ///
    /// ```compile_fail,E0308
    /// # async fn demo(host: steadfast::Host) -> Result<(), steadfast::Error> {
    /// use steadfast::{Process, StepFailed};
    ///
    /// #[steadfast::process]
    /// async fn greet(_p: Process, name: String) -> Result<String, StepFailed> {
    ///     Ok(format!("Hello, {name}!"))
    /// }
    ///
    /// host.start::<Greet>("greet-1", &42).await?; // a number is not a `String`
    /// # Ok(()) }
    /// ```
    ///
    /// nor does a signal payload of the wrong type (see [`crate::Signal`]):
    ///
    /// ```compile_fail,E0277
    /// # async fn demo(host: steadfast::Host) -> Result<(), steadfast::Error> {
    /// # use steadfast::{Process, Signal, StepFailed};
    /// const NAMED: Signal<String> = Signal::new("named");
    /// # #[steadfast::process]
    /// # async fn greet(p: Process, greeting: String) -> Result<String, StepFailed> {
    /// #     let name = p.wait(NAMED).await;
    /// #     Ok(format!("{greeting}, {name}!"))
    /// # }
    /// let greeting = host.start::<Greet>("greet-1", &"Hello".to_owned()).await?;
    /// greeting.signal(NAMED, &42).await?; // the payload is a `String`
    /// # Ok(()) }
    /// ```
    ///
    /// nor does reading its outcome as another type:
    ///
    /// ```compile_fail,E0308
    /// # async fn demo(host: steadfast::Host) -> Result<(), steadfast::Error> {
    /// # use steadfast::{Process, StepFailed};
    /// # #[steadfast::process]
    /// # async fn greet(_p: Process, name: String) -> Result<String, StepFailed> {
    /// #     Ok(format!("Hello, {name}!"))
    /// # }
    /// let greeting = host.start::<Greet>("greet-1", &"Ada".to_owned()).await?;
    /// let n: u64 = greeting.outcome().await?; // the output is a `String`
    /// # Ok(()) }
    /// ```
    pub async fn start<K: ProcessKind>(
        &self,
        id: &str,
        input: &K::Input,
    ) -> Result<Handle<K>, Error> {
        let spawned = self.spawn(K::NAME, id, input).await?;
        Ok(Handle::new(self.clone(), ProcessId::new(id)?, spawned))
    }

    /// A handle on the existing process `id`, which must be of kind `K`
    /// ([`Error::WrongKind`] otherwise).
    pub async fn handle<K: ProcessKind>(&self, id: &str) -> Result<Handle<K>, Error> {
        let record = self.status(id).await?;
        if record.kind != K::NAME {
            return Err(Error::WrongKind {
                id: record.id,
                expected: K::NAME,
                found: record.kind,
            });
        }
        Ok(Handle::new(self.clone(), record.id, Spawned::Existing))
    }
}

impl Host {
    /// The latest value process `id` published under `key`
    /// ([`crate::Process::publish_state`]), read from the store (no live
    /// worker needed); `None` if it has published none in its current
    /// generation.
    pub async fn state<T: DeserializeOwned>(
        &self,
        id: &str,
        key: &str,
    ) -> Result<Option<T>, Error> {
        let states = self.states(id).await?;
        let Some(json) = states.get(key) else {
            return Ok(None);
        };
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| Error::Decode {
                what: format!("the state {key:?} of process {id:?}"),
                expected: std::any::type_name::<T>(),
                detail: e.to_string(),
            })
    }

    /// Every state key process `id` published, with its latest value (JSON
    /// text), for tools that do not know the types.
    pub async fn states(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, Error> {
        let id = ProcessId::new(id)?;
        let journal = self.store().journal(&id).await?;
        Ok(latest_states(&journal))
    }
}

/// The latest value of each state key in `journal`.
pub(crate) fn latest_states(
    journal: &[JournalEntry],
) -> std::collections::BTreeMap<String, String> {
    let mut latest: std::collections::BTreeMap<String, (i64, String)> = Default::default();
    for entry in journal {
        let (Some(key), Some(json)) = (crate::context::key_of(entry), &entry.outcome) else {
            continue;
        };
        match latest.get(key) {
            Some((seq, _)) if *seq > entry.seq => {}
            _ => {
                latest.insert(key.to_owned(), (entry.seq, json.clone()));
            }
        }
    }
    latest.into_iter().map(|(k, (_, v))| (k, v)).collect()
}
