//! The values a host [`Provided`] to process functions besides their
//! input, and [`NotProvided`], what a kind lacks on a host.

use std::any::{Any, TypeId};
use std::collections::HashMap;

/// Values a host hands to process functions besides their input (clients,
/// services, configuration), one per type; see
/// [`crate::HostBuilder::provide`].
#[derive(Default)]
pub struct Provided(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl std::fmt::Debug for Provided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provided")
            .field("values", &self.0.len())
            .finish()
    }
}

impl Provided {
    /// Adds `value` (replacing one of the same type).
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// A clone of the value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Result<T, NotProvided> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
            .ok_or(NotProvided {
                type_name: std::any::type_name::<T>(),
                store: false,
            })
    }
}

/// A process function needs a value of a type the host was not given, or
/// a store the host does not run on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NotProvided {
    /// The Rust type asked for.
    pub type_name: &'static str,
    /// Whether it is the host's store (a `Process<S>` on a host whose store
    /// is not an `S`) rather than a provided value.
    pub store: bool,
}

impl NotProvided {
    /// The host does not run on a store of type `S`.
    pub(crate) fn store<S>() -> Self {
        NotProvided {
            type_name: std::any::type_name::<S>(),
            store: true,
        }
    }

    fn describe(&self) -> String {
        if self.store {
            format!(
                "it takes Process<{}> (it runs transactional steps on that store), but this \
                 host was not built on a store of that type",
                self.type_name
            )
        } else {
            format!(
                "no value of type {} was provided to the host (HostBuilder::provide)",
                self.type_name
            )
        }
    }
}
