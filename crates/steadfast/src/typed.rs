//! Process kinds known at compile time: [`ProcessKind`] (emitted by
//! `#[steadfast::process]`) and what the macro's code needs to call their
//! functions.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Process;
use crate::provided::{NotProvided, Provided};
use crate::stores::ProcessStore;

/// A process kind known at compile time: its stored name, its version, its
/// input, output and error types, and how to call its function.
///
/// `#[steadfast::process]` implements it on a unit struct named after the
/// function (`onboarding` → `Onboarding`), so hosts check kinds, inputs,
/// outputs and signal payloads at compile time:
///
/// ```
/// use steadfast::{Process, ProcessKind, StepFailed};
///
/// #[steadfast::process]
/// async fn greet(p: Process, name: String) -> Result<String, StepFailed> {
///     p.step("greeted", || async { Ok(format!("Hello, {name}!")) }).await
/// }
///
/// assert_eq!(Greet::NAME, "greet");
/// assert_eq!(Greet::VERSION, 1);
/// let _: <Greet as ProcessKind>::Output = String::from("typed");
/// ```
pub trait ProcessKind: Send + Sync + 'static {
    /// The kind's name as stored (and as the string API, the CLI and the
    /// dashboard know it).
    const NAME: &'static str;
    /// The version new processes start with (see
    /// [`crate::HostBuilder::register_version`]).
    const VERSION: u32 = 1;
    /// The process's input.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// What the process returns when it completes.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// What the process function fails with.
    type Error: Display + Send + 'static;

    /// The function, with the values it needs beyond its input taken from
    /// `provided`.
    fn function(provided: &Provided) -> Result<KindFn<Self>, NotProvided>;
}

/// A kind's function with its provided values bound: `Process` and input in,
/// a boxed future of its result out.
pub type KindFn<K> = Arc<
    dyn Fn(Process, <K as ProcessKind>::Input) -> crate::__private::KindFuture<K> + Send + Sync,
>;

/// What a kind's function returns, split into output and error.
#[doc(hidden)]
pub trait ProcessResult {
    /// `Ok`'s type.
    type Output;
    /// `Err`'s type.
    type Error;
}

impl<O, E> ProcessResult for Result<O, E> {
    type Output = O;
    type Error = E;
}

/// The boxed future of a run of kind `K`'s function.
#[doc(hidden)]
pub type KindFuture<K> = Pin<
    Box<
        dyn Future<Output = Result<<K as ProcessKind>::Output, <K as ProcessKind>::Error>>
            + Send
            + 'static,
    >,
>;

/// The type of a process function's first parameter: `Process<S>` for a
/// [`ProcessStore`] `S`. Used by `#[steadfast::process]`.
#[doc(hidden)]
pub trait ProcessParam: Send + 'static {
    /// What the process knows of its store.
    type Store: ProcessStore;

    /// The handle a run gives, bound to the host's store.
    fn bind(process: Process, store: &Self::Store) -> Self;
}

impl<S: ProcessStore> ProcessParam for Process<S> {
    type Store = S;

    fn bind(process: Process, store: &S) -> Self {
        process.on_store(store.clone())
    }
}
