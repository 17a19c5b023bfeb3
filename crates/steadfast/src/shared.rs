//! [`Shared`]: the state a host's handle, its dispatcher and its runs
//! share, and the host's tunables ([`Config`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use steadfast_core::{Backend, Clock, HostId, ProcessId};
use tokio::sync::{Notify, Semaphore, watch};

use crate::context::{RunCtx, RunHost};
use crate::kind::Kinds;
use crate::retry::RetryPolicy;

/// Tunables of a host.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_concurrency: usize,
    pub(crate) lease: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) retention: Option<Duration>,
    pub(crate) journal_warning: usize,
    pub(crate) max_payload_bytes: usize,
    pub(crate) clock_offset_warning: Duration,
}

/// State shared by a host's handle, its dispatcher and its runs.
pub(crate) struct Shared {
    pub(crate) id: HostId,
    pub(crate) store: Arc<dyn Backend>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) kinds: Kinds,
    pub(crate) latest_versions: Arc<HashMap<String, u32>>,
    pub(crate) config: Config,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) work: Notify,
    pub(crate) stopping: watch::Sender<bool>,
    /// The leases of the runs this host is running (what the heartbeat renews).
    pub(crate) leases: Arc<crate::leases::Leases>,
    /// The host clock's measured offset from the store's clock.
    pub(crate) offset: Arc<crate::offset::ClockOffset>,
    pub(crate) active: Mutex<HashMap<ProcessId, Arc<RunCtx>>>,
    pub(crate) outcome_waiters: Mutex<HashMap<ProcessId, Arc<OutcomeWaiter>>>,
    /// Whether this host runs processes (a client host does not): then its
    /// spawns may claim the processes they store
    /// (the dispatcher's `run_slot`).
    pub(crate) runs_processes: bool,
}

impl Shared {
    pub(crate) fn active(&self) -> MutexGuard<'_, HashMap<ProcessId, Arc<RunCtx>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<ProcessId, Arc<OutcomeWaiter>>> {
        self.outcome_waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// What a run takes from this host.
    pub(crate) fn run_host(&self) -> RunHost {
        RunHost {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            offset: Arc::clone(&self.offset),
            default_retry: self.config.retry.clone(),
            journal_warning: self.config.journal_warning,
            max_payload_bytes: self.config.max_payload_bytes,
            metrics: Arc::clone(&self.metrics),
            latest_versions: Arc::clone(&self.latest_versions),
            persist: self.persist(),
        }
    }

    /// What a run's store writes need to retry transient errors.
    pub(crate) fn persist(&self) -> crate::persist::Persist {
        crate::persist::Persist {
            clock: Arc::clone(&self.clock),
            stopping: self.stopping.subscribe(),
            leases: Arc::clone(&self.leases),
            metrics: Arc::clone(&self.metrics),
        }
    }

    pub(crate) fn activate(&self, id: &ProcessId, ctx: &Arc<RunCtx>) {
        let mut active = self.active();
        active.insert(id.clone(), Arc::clone(ctx));
        self.metrics.running(active.len());
    }

    pub(crate) fn deactivate(&self, id: &ProcessId, ctx: &Arc<RunCtx>) {
        let mut active = self.active();
        if active.get(id).is_some_and(|c| Arc::ptr_eq(c, ctx)) {
            active.remove(id);
            self.metrics.running(active.len());
        }
    }

    pub(crate) fn loaded(&self, id: &ProcessId) -> Option<Arc<RunCtx>> {
        self.active().get(id).cloned()
    }

    /// A run of `id` ended for good (or as far as this host can tell): its
    /// [`Host::outcome`](crate::Host::outcome) waiters wake up and read
    /// the store.
    pub(crate) fn finished(&self, id: &ProcessId) {
        if let Some(waiter) = self.waiters().remove(id) {
            waiter.notify.notify_waiters();
        }
    }

    /// A run of `id` recorded its completion with `output` (the store
    /// acknowledged it): its waiters wake up with the output in hand and
    /// need not read the store again.
    pub(crate) fn completed(&self, id: &ProcessId, output: String) {
        if let Some(waiter) = self.waiters().remove(id) {
            *waiter.output.lock().unwrap_or_else(|p| p.into_inner()) = Some(output);
            waiter.notify.notify_waiters();
        }
    }

    /// What [`Host::outcome`](crate::Host::outcome) waits on for `id`.
    pub(crate) fn outcome_waiter(&self, id: &ProcessId) -> Arc<OutcomeWaiter> {
        Arc::clone(self.waiters().entry(id.clone()).or_default())
    }
}

/// The waiters of one process's outcome: woken when a run of it on this
/// host ends, with its output when it completed.
#[derive(Debug, Default)]
pub(crate) struct OutcomeWaiter {
    pub(crate) notify: Notify,
    output: Mutex<Option<String>>,
}

impl OutcomeWaiter {
    /// The output of the completion that woke the waiters, if that is what
    /// woke them.
    pub(crate) fn output(&self) -> Option<String> {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
