//! Which store a process needs: [`AnyStore`] for the processes that run on
//! any store, or a concrete [`TransactionalStore`] for those that run
//! transactional steps ([`Process::transaction`]).

use std::sync::Arc;

use steadfast_core::TransactionalStore;

use crate::provided::{NotProvided, Provided};

/// The store of a [`Process`](crate::Process) that uses nothing store-specific: it runs on
/// any store. `Process` means `Process<AnyStore>`; a process that runs
/// transactional steps names its store instead (`Process<SqliteStore>`).
///
/// A `Process<AnyStore>` has no [`Process::transaction`](crate::Process::transaction): the compiler
/// refuses a transactional step in a process that did not say its store.
///
/// ```compile_fail
/// use steadfast::{Process, StepError, StepFailed};
///
/// async fn pay(p: Process, amount: i64) -> Result<(), StepFailed> {
///     p.transaction("ledger updated", move |conn| {
///         conn.execute("UPDATE accounts SET balance = balance - ?1", [amount])
///             .map_err(StepError::retryable)?;
///         Ok(())
///     })
///     .await
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AnyStore;

/// What a [`Process<S>`](crate::Process) knows of its host's store: nothing
/// ([`AnyStore`]), or the store itself as its concrete type `S` (any
/// [`TransactionalStore`]), which [`Process::transaction`](crate::Process::transaction) runs on.
///
/// A host hands a kind whose function takes `Process<S>` the store it was
/// built on when that store is an `S` ([`crate::HostBuilder::new`]); a host
/// on another store refuses the kind when it is built (see
/// [`crate::HostBuilder::build`]), before any process runs.
pub trait ProcessStore: Clone + Send + Sync + 'static {
    /// The host's store as `Self`, or what is missing.
    #[doc(hidden)]
    fn from_host(provided: &Provided) -> Result<Self, NotProvided>;
}

impl ProcessStore for AnyStore {
    fn from_host(_: &Provided) -> Result<Self, NotProvided> {
        Ok(AnyStore)
    }
}

impl<S: TransactionalStore> ProcessStore for S {
    fn from_host(provided: &Provided) -> Result<Self, NotProvided> {
        provided
            .get::<HostStore<S>>()
            .map(|host| S::clone(&host.0))
            .map_err(|_| NotProvided::store::<S>())
    }
}

/// The store a [`crate::HostBuilder`] was created with, as its own type,
/// among the builder's provided values (users cannot provide one).
pub(crate) struct HostStore<S>(pub(crate) Arc<S>);

impl<S> Clone for HostStore<S> {
    fn clone(&self) -> Self {
        HostStore(Arc::clone(&self.0))
    }
}
