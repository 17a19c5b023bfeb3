//! Registered process kinds: a name plus a typed async function, erased so
//! that a host can start any kind from its stored JSON input.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Process;

/// How a run of a process function ended.
pub(crate) enum Returned {
    /// `Ok(output)`, as JSON text.
    Ok(String),
    /// `Err(error)`, as its display text.
    Err(String),
    /// `Ok(output)` but the output cannot be encoded as JSON.
    Unencodable(String),
}

type RunFuture = Pin<Box<dyn Future<Output = Returned> + Send>>;
type StartFn = dyn Fn(Process, &str) -> Result<RunFuture, String> + Send + Sync;
type CheckFn = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// One registered kind.
pub(crate) struct Kind {
    /// The Rust type of its input.
    pub(crate) input_type: &'static str,
    start: Box<StartFn>,
    check: Box<CheckFn>,
}

impl Kind {
    pub(crate) fn new<I, O, E, F, Fut>(function: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(Process, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let start = move |process: Process, input: &str| -> Result<RunFuture, String> {
            let input: I = serde_json::from_str(input).map_err(|e| e.to_string())?;
            let running = function(process, input);
            Ok(Box::pin(async move {
                match running.await {
                    Ok(output) => match serde_json::to_string(&output) {
                        Ok(json) => Returned::Ok(json),
                        Err(e) => Returned::Unencodable(e.to_string()),
                    },
                    Err(error) => Returned::Err(error.to_string()),
                }
            }) as RunFuture)
        };
        let check = |input: &str| -> Result<(), String> {
            serde_json::from_str::<I>(input)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        Kind {
            input_type: std::any::type_name::<I>(),
            start: Box::new(start),
            check: Box::new(check),
        }
    }

    /// A kind whose processes this host only spawns and reads (a client
    /// host lacking the values its function needs): starting one fails.
    pub(crate) fn check_only<I: DeserializeOwned + Send + 'static>(why: String) -> Self {
        Kind {
            input_type: std::any::type_name::<I>(),
            start: Box::new(move |_, _| Err(why.clone())),
            check: Box::new(|input: &str| {
                serde_json::from_str::<I>(input)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }),
        }
    }

    /// Starts the function on a stored input; `Err` if the input does not decode.
    pub(crate) fn start(&self, process: Process, input: &str) -> Result<RunFuture, String> {
        (self.start)(process, input)
    }

    /// Checks that a JSON input decodes into the kind's input type.
    pub(crate) fn check_input(&self, input: &str) -> Result<(), String> {
        (self.check)(input)
    }
}

/// The registered kinds, each with one or more versions of its code.
#[derive(Default)]
pub(crate) struct Kinds(std::collections::HashMap<String, std::collections::BTreeMap<u32, Kind>>);

impl Kinds {
    /// Registers version `version` of kind `name` (replacing the same version).
    pub(crate) fn insert(&mut self, name: String, version: u32, kind: Kind) {
        self.0.entry(name).or_default().insert(version, kind);
    }

    /// The newest version of kind `name`: what new processes start with.
    pub(crate) fn latest(&self, name: &str) -> Option<(u32, &Kind)> {
        self.0
            .get(name)?
            .iter()
            .next_back()
            .map(|(version, kind)| (*version, kind))
    }

    /// Version `version` of kind `name`, or why it is not there.
    pub(crate) fn get(&self, name: &str, version: u32) -> Result<&Kind, String> {
        let Some(versions) = self.0.get(name) else {
            return Err(format!(
                "process kind {name:?} is not registered on this host (known kinds: {:?})",
                self.names()
            ));
        };
        versions.get(&version).ok_or_else(|| {
            format!(
                "version {version} of process kind {name:?} is not registered on this host \
                 (registered versions: {:?}); keep it registered until its processes finish",
                versions.keys().collect::<Vec<_>>()
            )
        })
    }

    /// Whether kind `name` is registered.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The names of the registered kinds, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().cloned().collect();
        names.sort();
        names
    }

    /// The newest version of each kind.
    pub(crate) fn latest_versions(&self) -> std::collections::HashMap<String, u32> {
        self.0
            .iter()
            .filter_map(|(name, versions)| versions.keys().next_back().map(|v| (name.clone(), *v)))
            .collect()
    }
}
