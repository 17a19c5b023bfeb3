//! Trace context that travels with processes and signals.
//!
//! `spawn` and `signal` store a W3C `traceparent` with the process or the
//! signal: the one given with [`with_traceparent`] (an HTTP request's
//! `traceparent` header, say), or else, with the feature `otel`, that of the
//! caller's current span. Without the feature no OpenTelemetry code is
//! compiled; a given `traceparent` is still stored, so a worker built with
//! the feature continues the trace. Every run of a process is a span whose
//! parent is the stored context, wherever and however late it runs, and a
//! wait that takes a signal records a span linked to the span that sent it.
//! The spans carry the attributes named in [`attributes`].

use std::fmt;
use std::future::Future;

use steadfast_core::{PendingSignal, ProcessRecord};

tokio::task_local! {
    /// The trace context given by [`with_traceparent`].
    static GIVEN: Traceparent;
}

/// A W3C trace context header value (`traceparent`), checked for its form:
/// `version-traceid-parentid-flags` in lowercase hex, the trace and parent
/// ids not all zeros, version `ff` refused.
///
/// ```
/// use steadfast::trace::Traceparent;
///
/// let tp = Traceparent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(tp.as_str(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!(Traceparent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err());
/// assert!(Traceparent::parse("not a traceparent").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Traceparent(String);

/// A text that is not a valid W3C `traceparent`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent ({reason}): {value:?}")]
pub struct InvalidTraceparent {
    /// The text (shortened).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Traceparent {
    /// Checks `value`'s form (leading and trailing whitespace is ignored).
    pub fn parse(value: &str) -> Result<Self, InvalidTraceparent> {
        let text = value.trim();
        let invalid = |reason| InvalidTraceparent {
            value: steadfast_core::shorten(text).into_owned(),
            reason,
        };
        let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let parts: Vec<&str> = text.split('-').collect();
        let [version, trace_id, parent_id, flags, rest @ ..] = parts.as_slice() else {
            return Err(invalid("fewer than four dash-separated fields"));
        };
        if version.len() != 2 || !lower_hex(version) || *version == "ff" {
            return Err(invalid(
                "the version is not two lowercase hex digits below ff",
            ));
        }
        if *version == "00" && !rest.is_empty() {
            return Err(invalid("version 00 has exactly four fields"));
        }
        if trace_id.len() != 32 || !lower_hex(trace_id) || trace_id.bytes().all(|b| b == b'0') {
            return Err(invalid(
                "the trace id is not 32 lowercase hex digits, not all zero",
            ));
        }
        if parent_id.len() != 16 || !lower_hex(parent_id) || parent_id.bytes().all(|b| b == b'0') {
            return Err(invalid(
                "the parent id is not 16 lowercase hex digits, not all zero",
            ));
        }
        if flags.len() != 2 || !lower_hex(flags) {
            return Err(invalid("the flags are not two lowercase hex digits"));
        }
        Ok(Traceparent(text.to_owned()))
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `future` with `traceparent` as the trace context that the spawns
/// and signals it makes store (instead of the current span's): for a
/// caller's context that arrived from outside, such as an HTTP request's
/// `traceparent` header.
///
/// ```
/// # use steadfast::{Process, StepFailed};
/// use steadfast::trace::{Traceparent, with_traceparent};
/// # async fn waits(p: Process, _: ()) -> Result<u32, StepFailed> { Ok(p.wait("paid").await) }
/// # #[tokio::main] async fn main() {
/// # let t = steadfast::testing::TestHost::start(|b| b.register("order", waits)).await;
/// let host = t.host();
/// let caller = Traceparent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// with_traceparent(caller.clone(), host.spawn("order", "order-1", &())).await.unwrap();
/// let record = host.status("order-1").await.unwrap();
/// assert_eq!(record.traceparent.as_deref(), Some(caller.as_str()));
/// # }
/// ```
pub async fn with_traceparent<F: Future>(traceparent: Traceparent, future: F) -> F::Output {
    GIVEN.scope(traceparent, future).await
}

/// The attribute keys of the engine's spans.
pub mod attributes {
    /// The process id (span `run`, `step` and `signal`).
    pub const PROCESS_ID: &str = "steadfast.process.id";
    /// The process's kind (span `run`, `step` and `signal`).
    pub const KIND: &str = "steadfast.process.kind";
    /// The claim's epoch: which run of the process this is (span `run`).
    pub const EPOCH: &str = "steadfast.epoch";
    /// The step's name (span `step`; span `signal`: the wait's step name).
    pub const STEP: &str = "steadfast.step.name";
    /// The attempt of the step, from 1 (span `step`).
    pub const ATTEMPT: &str = "steadfast.step.attempt";
    /// The signal's name (span `signal`).
    pub const SIGNAL: &str = "steadfast.signal.name";
    /// The signal's store id (span `signal`).
    pub const SIGNAL_ID: &str = "steadfast.signal.id";
}

/// The W3C `traceparent` to store with a spawn or signal: the one given by
/// [`with_traceparent`], else that of the current span when it is part of
/// an OpenTelemetry trace (feature `otel`, with the layer installed);
/// `None` otherwise.
pub(crate) fn current() -> Option<String> {
    if let Ok(given) = GIVEN.try_with(|given| given.0.clone()) {
        return Some(given);
    }
    #[cfg(feature = "otel")]
    {
        otel::current()
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

/// The span of one run of `record` under the claim's `epoch`: a child of
/// the span that spawned the process (its stored `traceparent`).
pub(crate) fn run_span(record: &ProcessRecord, epoch: i64) -> tracing::Span {
    let span = tracing::info_span!(
        "run",
        steadfast.process.id = %record.id,
        steadfast.process.kind = %record.kind,
        steadfast.epoch = epoch,
    );
    #[cfg(feature = "otel")]
    if let Some(traceparent) = &record.traceparent {
        otel::set_parent(&span, traceparent);
    }
    #[cfg(not(feature = "otel"))]
    let _ = &record.traceparent;
    span
}

/// Records that the wait `step` of process `id` took `signal`: a span in
/// the current run, linked to the span that sent the signal.
pub(crate) fn signal_received(id: &str, kind: &str, step: &str, signal: &PendingSignal) {
    let span = tracing::info_span!(
        "signal",
        steadfast.process.id = %id,
        steadfast.process.kind = %kind,
        steadfast.step.name = %step,
        steadfast.signal.name = %signal.name,
        steadfast.signal.id = signal.id,
    );
    #[cfg(feature = "otel")]
    if let Some(traceparent) = &signal.traceparent {
        otel::add_link(&span, traceparent);
    }
    // Entered and left at once: the span marks the moment of delivery.
    drop(span.enter());
}

#[cfg(feature = "otel")]
mod otel {
    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    const TRACEPARENT: &str = "traceparent";

    pub(super) fn current() -> Option<String> {
        let context = tracing::Span::current().context();
        if !context.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::with_capacity(2);
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        carrier.remove(TRACEPARENT)
    }

    /// The remote span context a stored `traceparent` names, if it parses.
    fn context(traceparent: &str) -> Option<opentelemetry::Context> {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
        let context = TraceContextPropagator::new().extract(&carrier);
        context.span().span_context().is_valid().then_some(context)
    }

    pub(super) fn set_parent(span: &tracing::Span, traceparent: &str) {
        match context(traceparent) {
            // Fails only without the OpenTelemetry layer: nothing to export.
            Some(parent) => drop(span.set_parent(parent)),
            None => tracing::debug!(traceparent, "stored traceparent does not parse; ignored"),
        }
    }

    pub(super) fn add_link(span: &tracing::Span, traceparent: &str) {
        if let Some(linked) = context(traceparent) {
            span.add_link(linked.span().span_context().clone());
        }
    }
}
