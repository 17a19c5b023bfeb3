//! Typed signal definitions, and the rule that names beginning with
//! `steadfast:` belong to the engine.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// The prefix of the signal names the engine sends itself (a child's end
/// notification, for one); outside callers may not send them.
pub const RESERVED_PREFIX: &str = "steadfast:";

/// Whether `name` is reserved for the engine (it begins with
/// [`RESERVED_PREFIX`]).
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// A signal name together with the type of its payload, so that the sender
/// ([`crate::Host::signal`]) and the receiver ([`crate::Process::wait`])
/// agree on it at compile time.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use steadfast::{Process, Signal};
///
/// #[derive(Serialize, Deserialize)]
/// struct Verification {
///     code: String,
/// }
///
/// const VERIFIED: Signal<Verification> = Signal::new("email verified");
///
/// async fn onboarding(p: Process, _email: String) -> Result<String, steadfast::StepFailed> {
///     // The payload's type comes from the definition.
///     let verification = p.wait(VERIFIED).await;
///     Ok(verification.code)
/// }
///
/// async fn verify(host: &steadfast::Host) -> Result<(), steadfast::Error> {
///     // Sending anything but a `Verification` does not compile.
///     let payload = Verification { code: "1234".to_owned() };
///     host.signal("user-1", VERIFIED, &payload).await
/// }
/// ```
///
/// A payload of another type is caught at compile time:
///
/// ```compile_fail
/// # async fn f(host: &steadfast::Host) {
/// const VERIFIED: steadfast::Signal<u32> = steadfast::Signal::new("email verified");
/// host.signal("user-1", VERIFIED, "not a number").await.ok();
/// # }
/// ```
pub struct Signal<T> {
    name: &'static str,
    _payload: PhantomData<fn() -> T>,
}

impl<T> Signal<T> {
    /// The signal `name` carrying a `T`.
    pub const fn new(name: &'static str) -> Self {
        Signal {
            name,
            _payload: PhantomData,
        }
    }

    /// The signal's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Signal<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Signal<T> {}

impl<T> fmt::Debug for Signal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("name", &self.name)
            .field("payload", &std::any::type_name::<T>())
            .finish()
    }
}

/// Something that names a signal whose payload is a `T`: a typed
/// [`Signal<T>`] (only for its own `T`), or a plain name (`&str`, `String`,
/// `Cow<str>`) for any payload type, for dynamic use.
pub trait SignalName<T: ?Sized> {
    /// The signal's name.
    fn signal_name(&self) -> Cow<'_, str>;
}

impl<T> SignalName<T> for Signal<T> {
    fn signal_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.name)
    }
}

impl<T> SignalName<T> for &Signal<T> {
    fn signal_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.name)
    }
}

impl<T: ?Sized> SignalName<T> for &&str {
    fn signal_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<T: ?Sized> SignalName<T> for &str {
    fn signal_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<T: ?Sized> SignalName<T> for String {
    fn signal_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<T: ?Sized> SignalName<T> for &String {
    fn signal_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
}

impl<T: ?Sized> SignalName<T> for Cow<'_, str> {
    fn signal_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}
