//! [`Process`]: the handle a process function uses to journal its steps.

use std::borrow::Cow;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use steadfast_core::{ProcessId, Timestamp};

use crate::context::RunCtx;
use crate::error::StepError;
use crate::ops::step::Step;
use crate::ops::timer::Due;
use crate::ops::{timer, value, wait};

/// A boxed durable operation: `Unpin`, so it can be polled by reference in
/// `tokio::select!` loops.
pub type Durable<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The handle a process function receives: every durable operation goes
/// through it. Cheap to clone, so parallel branches can each hold one.
///
/// Each operation has a *name* that is its identity in the journal: unique
/// within the process, stable across deploys.
#[derive(Clone)]
pub struct Process {
    pub(crate) ctx: Arc<RunCtx>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("id", &self.ctx.id).finish()
    }
}

impl Process {
    /// The process's id.
    pub fn id(&self) -> &ProcessId {
        &self.ctx.id
    }

    /// A key that names one step of this process for outside services
    /// (`"<process id>/<step name>"`): pass it along so a retried or
    /// re-run step does not, say, charge a card twice.
    pub fn idempotency_key(&self, step: &str) -> String {
        format!("{}/{step}", self.ctx.id)
    }

    /// Runs a side effect once and journals its outcome.
    ///
    /// The closure is called for each attempt (see [`Step::retry`] and
    /// [`Step::timeout`]); its `Err` is retryable unless it is
    /// [`StepError::permanent`]. Once journaled, replays return the recorded
    /// outcome without calling the closure.
    #[track_caller]
    pub fn step<'a, T, E, F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        run: F,
    ) -> Step<'a, T, F>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
        E: Into<StepError> + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        Step {
            ctx: Arc::clone(&self.ctx),
            name: name.into(),
            location: Location::caller(),
            retry: None,
            timeout: None,
            run,
            _marker: PhantomData,
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
            name.into().into_owned(),
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
            name.into().into_owned(),
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
            name.into().into_owned(),
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
            name.into().into_owned(),
            Location::caller(),
            rand::random::<T>,
        )
    }

    /// Sleeps durably for `duration`: the wake-up time is journaled when the
    /// timer is first reached, the process is unloaded meanwhile, and a host
    /// restart does not restart the timer.
    #[track_caller]
    pub fn sleep(&self, name: impl Into<Cow<'static, str>>, duration: Duration) -> Durable<()> {
        Box::pin(timer::sleep(
            Arc::clone(&self.ctx),
            name.into().into_owned(),
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
        Box::pin(timer::sleep(
            Arc::clone(&self.ctx),
            name.into().into_owned(),
            Due::At(deadline),
            Location::caller(),
        ))
    }

    /// Waits for the signal `signal` sent with [`crate::Host::signal`]; the
    /// signal may have been sent before the wait is reached. The step is
    /// named after the signal unless [`Wait::name`] names it otherwise.
    #[track_caller]
    pub fn wait<T: DeserializeOwned + Send + 'static>(
        &self,
        signal: impl Into<Cow<'static, str>>,
    ) -> Wait<T> {
        let signal = signal.into().into_owned();
        Wait {
            ctx: Arc::clone(&self.ctx),
            name: signal.clone(),
            signal,
            location: Location::caller(),
            _marker: PhantomData,
        }
    }
}

/// A wait for a signal; `.await` it for the payload, or add a timeout.
#[must_use = "a wait does nothing until it is awaited"]
pub struct Wait<T> {
    ctx: Arc<RunCtx>,
    name: String,
    signal: String,
    location: &'static Location<'static>,
    _marker: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> Wait<T> {
    /// Names the step (by default the signal's name), so one process can
    /// wait for the same signal more than once.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into().into_owned();
        self
    }

    /// Gives up after `timeout` (durably: the deadline is journaled):
    /// awaiting then yields `None`.
    pub fn timeout(self, timeout: Duration) -> WaitTimeout<T> {
        WaitTimeout {
            wait: self,
            timeout,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for Wait<T> {
    type Output = T;
    type IntoFuture = Durable<T>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match wait::wait(self.ctx, self.name, self.signal, None, self.location).await {
                Some(value) => value,
                None => crate::ops::halt().await,
            }
        })
    }
}

/// A wait with a timeout; awaiting yields `None` if the timeout passed first.
#[must_use = "a wait does nothing until it is awaited"]
pub struct WaitTimeout<T> {
    wait: Wait<T>,
    timeout: Duration,
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for WaitTimeout<T> {
    type Output = Option<T>;
    type IntoFuture = Durable<Option<T>>;

    fn into_future(self) -> Self::IntoFuture {
        let w = self.wait;
        Box::pin(wait::wait(
            w.ctx,
            w.name,
            w.signal,
            Some(self.timeout),
            w.location,
        ))
    }
}
