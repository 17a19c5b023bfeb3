//! A store wrapper that injects faults, for testing what a host does when
//! its store misbehaves.
//!
//! [`FaultyStore`] forwards every call of [`Store`] and [`StoreAdmin`] to the
//! store it wraps, but first draws a number from a seeded generator: with the
//! plan's probabilities the call fails instead, with a retryable
//! [`StoreError::Backend`] (like a busy database, a full disk or a dropped
//! connection) or a non-retryable one (like an I/O error). The failed call
//! never reaches the wrapped store, so nothing is written by it — the fault
//! happens before the commit, as a busy or full store's does. Faults can be
//! switched off at any moment ([`FaultyStore::heal`]) to check that
//! everything recovers once the fault is gone.
//!
//! ```
//! use steadfast_conformance::faults::{FaultPlan, FaultyStore};
//!
//! let plan = FaultPlan::new(7).retryable(0.01).fatal(0.001);
//! assert_eq!(plan.seed(), 7);
//! # let _ = |store: std::sync::Arc<dyn steadfast_core::Backend>| FaultyStore::new(store, plan);
//! ```

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use steadfast_core::{
    Backend, Claimed, Finish, FunctionSource, Generation, HostId, JournalEntry, Lease, ListFilter,
    NewProcess, ParkedCount, PendingSignal, ProcessId, ProcessRecord, SpawnOutcome, Status,
    StatusCount, Store, StoreAdmin, StoreError, SuspendOutcome, Suspension, Timestamp,
};

/// How often a [`FaultyStore`] fails its calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultPlan {
    seed: u64,
    retryable: f64,
    fatal: f64,
}

impl FaultPlan {
    /// A plan that injects nothing yet, drawing from a generator seeded with
    /// `seed` (the same seed and the same sequence of calls give the same
    /// faults).
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            seed,
            retryable: 0.0,
            fatal: 0.0,
        }
    }

    /// Fails this fraction of calls (0.0–1.0) with a retryable error.
    pub fn retryable(mut self, probability: f64) -> Self {
        self.retryable = probability.clamp(0.0, 1.0);
        self
    }

    /// Fails this fraction of calls (0.0–1.0) with a non-retryable error.
    pub fn fatal(mut self, probability: f64) -> Self {
        self.fatal = probability.clamp(0.0, 1.0);
        self
    }

    /// The generator's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// How many faults a [`FaultyStore`] injected so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Calls failed with a retryable error.
    pub retryable: u64,
    /// Calls failed with a non-retryable error.
    pub fatal: u64,
    /// Of `fatal`, those on a write made under a lease (append, suspend,
    /// finish, continue-as-new): each can abort at most one run.
    pub fatal_under_lease: u64,
}

/// A [`Backend`] that fails a random share of the calls made to it; see the
/// [module documentation](self).
pub struct FaultyStore {
    inner: Arc<dyn Backend>,
    plan: FaultPlan,
    rng: Mutex<SplitMix>,
    healed: AtomicBool,
    retryable: AtomicU64,
    fatal: AtomicU64,
    fatal_under_lease: AtomicU64,
}

/// The splitmix64 generator: tiny, seedable, and good enough to pick faults.
struct SplitMix(u64);

impl SplitMix {
    /// A uniform number in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Which kind of fault a call draws.
enum Draw {
    Pass,
    Retryable,
    Fatal,
}

impl FaultyStore {
    /// Wraps `inner`, failing calls as `plan` says.
    pub fn new(inner: Arc<dyn Backend>, plan: FaultPlan) -> Self {
        FaultyStore {
            inner,
            plan,
            // splitmix64's state may be anything, zero included.
            rng: Mutex::new(SplitMix(plan.seed)),
            healed: AtomicBool::new(false),
            retryable: AtomicU64::new(0),
            fatal: AtomicU64::new(0),
            fatal_under_lease: AtomicU64::new(0),
        }
    }

    /// Stops injecting faults: from now on every call reaches the store.
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    /// The faults injected so far.
    pub fn injected(&self) -> InjectedFaults {
        InjectedFaults {
            retryable: self.retryable.load(Ordering::SeqCst),
            fatal: self.fatal.load(Ordering::SeqCst),
            fatal_under_lease: self.fatal_under_lease.load(Ordering::SeqCst),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    fn draw(&self) -> Draw {
        if self.healed.load(Ordering::SeqCst) {
            return Draw::Pass;
        }
        let x = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_unit();
        if x < self.plan.fatal {
            Draw::Fatal
        } else if x < self.plan.fatal + self.plan.retryable {
            Draw::Retryable
        } else {
            Draw::Pass
        }
    }

    /// Fails the call named `operation` if the plan says so.
    fn gate(&self, operation: &'static str, under_lease: bool) -> Result<(), StoreError> {
        match self.draw() {
            Draw::Pass => Ok(()),
            Draw::Retryable => {
                self.retryable.fetch_add(1, Ordering::SeqCst);
                Err(injected(operation, true))
            }
            Draw::Fatal => {
                self.fatal.fetch_add(1, Ordering::SeqCst);
                if under_lease {
                    self.fatal_under_lease.fetch_add(1, Ordering::SeqCst);
                }
                Err(injected(operation, false))
            }
        }
    }
}

/// The error an injected fault returns; its message starts with
/// `injected fault`, so a process blocked or failed by one names it.
fn injected(operation: &'static str, retryable: bool) -> StoreError {
    let kind = if retryable {
        "retryable"
    } else {
        "non-retryable"
    };
    StoreError::Backend {
        message: format!("injected fault ({kind}) in {operation}"),
        retryable,
        source: None,
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn spawn(&self, process: NewProcess) -> Result<SpawnOutcome, StoreError> {
        self.gate("spawn", false)?;
        self.inner.spawn(process).await
    }

    async fn claim(
        &self,
        owner: &HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.gate("claim", false)?;
        self.inner.claim(owner, now, lease, limit).await
    }

    async fn append(&self, lease: &Lease, entry: JournalEntry) -> Result<(), StoreError> {
        self.gate("append", true)?;
        self.inner.append(lease, entry).await
    }

    async fn suspend(
        &self,
        lease: &Lease,
        suspension: Suspension,
    ) -> Result<SuspendOutcome, StoreError> {
        self.gate("suspend", true)?;
        self.inner.suspend(lease, suspension).await
    }

    async fn finish(
        &self,
        lease: &Lease,
        finish: Finish,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.gate("finish", true)?;
        self.inner.finish(lease, finish, now).await
    }

    async fn continue_as_new(
        &self,
        lease: &Lease,
        input: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.gate("continue_as_new", true)?;
        self.inner.continue_as_new(lease, input, now).await
    }

    async fn renew(
        &self,
        owner: &HostId,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        self.gate("renew", false)?;
        self.inner.renew(owner, leases, now, lease).await
    }

    async fn release(&self, owner: &HostId, now: Timestamp) -> Result<u64, StoreError> {
        self.gate("release", false)?;
        self.inner.release(owner, now).await
    }

    async fn signal(
        &self,
        id: &ProcessId,
        name: &str,
        payload: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        self.gate("signal", false)?;
        self.inner.signal(id, name, payload, now).await
    }

    async fn pending_signals(&self, id: &ProcessId) -> Result<Vec<PendingSignal>, StoreError> {
        self.gate("pending_signals", false)?;
        self.inner.pending_signals(id).await
    }

    async fn cancel(&self, id: &ProcessId, now: Timestamp) -> Result<Status, StoreError> {
        self.gate("cancel", false)?;
        self.inner.cancel(id, now).await
    }

    async fn retry(&self, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
        self.gate("retry", false)?;
        self.inner.retry(id, now).await
    }

    async fn get(&self, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
        self.gate("get", false)?;
        self.inner.get(id).await
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.gate("next_wake", false)?;
        self.inner.next_wake().await
    }

    fn work_events(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.work_events()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self.inner.as_any()
    }
}

#[async_trait]
impl StoreAdmin for FaultyStore {
    async fn list(&self, filter: &ListFilter) -> Result<Vec<ProcessRecord>, StoreError> {
        self.gate("list", false)?;
        self.inner.list(filter).await
    }

    async fn journal(&self, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError> {
        self.gate("journal", false)?;
        self.inner.journal(id).await
    }

    async fn counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        self.gate("counts", false)?;
        self.inner.counts().await
    }

    async fn parked_counts(&self, kind: &str) -> Result<Vec<ParkedCount>, StoreError> {
        self.gate("parked_counts", false)?;
        self.inner.parked_counts(kind).await
    }

    async fn rewind(&self, id: &ProcessId, step: &str, now: Timestamp) -> Result<u64, StoreError> {
        self.gate("rewind", false)?;
        self.inner.rewind(id, step, now).await
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        self.gate("purge", false)?;
        self.inner.purge(finished_before).await
    }

    async fn save_sources(&self, sources: &[FunctionSource]) -> Result<(), StoreError> {
        self.gate("save_sources", false)?;
        self.inner.save_sources(sources).await
    }

    async fn sources(&self) -> Result<Vec<FunctionSource>, StoreError> {
        self.gate("sources", false)?;
        self.inner.sources().await
    }

    async fn history(&self, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
        self.gate("history", false)?;
        self.inner.history(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_draws(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = SplitMix(seed);
        (0..n).map(|_| rng.next_unit()).collect()
    }

    #[test]
    fn draws_are_uniform_enough_and_repeatable() {
        let a = unit_draws(3, 100_000);
        assert_eq!(a, unit_draws(3, 100_000));
        assert_ne!(a, unit_draws(4, 100_000));
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let below = a.iter().filter(|x| **x < 0.01).count();
        assert!((800..1200).contains(&below), "{below} of 100000 below 0.01");
    }

    #[test]
    fn probabilities_are_clamped() {
        let plan = FaultPlan::new(1).retryable(2.0).fatal(-1.0);
        assert_eq!(plan.retryable, 1.0);
        assert_eq!(plan.fatal, 0.0);
    }
}
