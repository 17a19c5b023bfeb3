//! A store wrapper that injects faults, for testing what a host does when
//! its store misbehaves.
//!
//! [`FaultyStore`] forwards every call of [`Store`] and [`StoreAdmin`] to the
//! store it wraps, but first asks its [`Faults`] policy whether the call
//! should fail instead. A call failed that way never reaches the wrapped
//! store, so nothing is written by it: the fault happens before the commit,
//! as a busy or full store's does.
//!
//! A policy can also lose the answer of a call that succeeded
//! ([`Faults::lost_answer`]): the call reaches the wrapped store and its
//! writes commit, then the caller gets an error instead of the store's
//! answer, as when a connection drops between the commit and its
//! acknowledgement. A caller that retries such a write finds it already
//! done.
//!
//! [`RandomFaults`] is the policy for soak tests: it draws from a seeded
//! generator and fails the plan's share of calls with a retryable
//! [`StoreError::Backend`] (like a busy database, a full disk or a dropped
//! connection) or a non-retryable one (like an I/O error), until it is
//! [healed](RandomFaults::heal). A test that needs one precise fault writes
//! a policy of its own.
//!
//! ```
//! use std::sync::Arc;
//! use steadfast_conformance::faults::{FaultPlan, FaultyStore};
//!
//! let plan = FaultPlan::new(7).retryable(0.01).fatal(0.001);
//! assert_eq!(plan.seed(), 7);
//! # let _ = |store: Arc<dyn steadfast_core::Backend>| {
//! let faulty = FaultyStore::random(store, plan);
//! // ... run processes on `faulty`, then:
//! faulty.faults().heal();
//! assert!(faulty.faults().injected().fatal <= faulty.faults().injected().retryable + 1_000);
//! # };
//! ```

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use steadfast_core::{
    Backend, Claimed, Counts, Finish, FunctionSource, Generation, HostId, JournalEntry, Lease,
    ListFilter, Listed, NewProcess, ParkedCounts, PendingSignal, ProcessEvent, ProcessId,
    ProcessRecord, SignalRecord, SpawnAndClaim, SpawnOutcome, Status, Store, StoreAdmin,
    StoreError, SuspendOutcome, Suspension, Timestamp,
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

/// One call that reaches a [`FaultyStore`], as its [`Faults`] policy sees it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Call<'a> {
    /// The trait method called (`"append"`, `"claim"`, ...).
    pub operation: &'static str,
    /// The lease the call writes under, for writes fenced by one.
    pub lease: Option<&'a Lease>,
}

/// Decides which calls of a [`FaultyStore`] fail.
pub trait Faults: Send + Sync + 'static {
    /// The error `call` fails with instead of reaching the store, if any.
    fn fault(&self, call: &Call<'_>) -> Option<StoreError>;

    /// The error `call` answers with *after* the store carried it out
    /// successfully, if any: its writes are committed, but the caller is
    /// told it failed (a lost answer). Asked only for calls the store
    /// answered with success; a store error is passed on as it is. The
    /// default loses no answer.
    ///
    /// ```
    /// use steadfast_conformance::faults::{Call, Faults, injected_error};
    /// use steadfast_core::StoreError;
    ///
    /// /// Loses the answer of every journal append (each is retried and
    /// /// found already written).
    /// struct LoseAppends;
    ///
    /// impl Faults for LoseAppends {
    ///     fn fault(&self, _call: &Call<'_>) -> Option<StoreError> {
    ///         None
    ///     }
    ///
    ///     fn lost_answer(&self, call: &Call<'_>) -> Option<StoreError> {
    ///         (call.operation == "append").then(|| injected_error(call.operation, true))
    ///     }
    /// }
    /// ```
    fn lost_answer(&self, call: &Call<'_>) -> Option<StoreError> {
        let _ = call;
        None
    }
}

/// Fails a random share of calls, as a [`FaultPlan`] says, until healed.
pub struct RandomFaults {
    plan: FaultPlan,
    rng: Mutex<SplitMix>,
    healed: AtomicBool,
    retryable: AtomicU64,
    fatal: AtomicU64,
    fatal_under_lease: AtomicU64,
}

impl RandomFaults {
    /// Faults as `plan` says.
    pub fn new(plan: FaultPlan) -> Self {
        RandomFaults {
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
}

impl Faults for RandomFaults {
    fn fault(&self, call: &Call<'_>) -> Option<StoreError> {
        if self.healed.load(Ordering::SeqCst) {
            return None;
        }
        let x = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_unit();
        if x < self.plan.fatal {
            self.fatal.fetch_add(1, Ordering::SeqCst);
            if call.lease.is_some() {
                self.fatal_under_lease.fetch_add(1, Ordering::SeqCst);
            }
            Some(injected_error(call.operation, false))
        } else if x < self.plan.fatal + self.plan.retryable {
            self.retryable.fetch_add(1, Ordering::SeqCst);
            Some(injected_error(call.operation, true))
        } else {
            None
        }
    }
}

/// A [`Backend`] whose calls fail as its [`Faults`] policy says; see the
/// [module documentation](self).
pub struct FaultyStore<F: Faults = RandomFaults> {
    inner: Arc<dyn Backend>,
    faults: F,
}

impl FaultyStore<RandomFaults> {
    /// Wraps `inner`, failing a random share of calls as `plan` says.
    pub fn random(inner: Arc<dyn Backend>, plan: FaultPlan) -> Self {
        FaultyStore::new(inner, RandomFaults::new(plan))
    }
}

impl<F: Faults> FaultyStore<F> {
    /// Wraps `inner`, failing the calls `faults` picks.
    pub fn new(inner: Arc<dyn Backend>, faults: F) -> Self {
        FaultyStore { inner, faults }
    }

    /// The policy that picks the faults.
    pub fn faults(&self) -> &F {
        &self.faults
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// Fails the call if the policy says so.
    fn gate(&self, operation: &'static str, lease: Option<&Lease>) -> Result<(), StoreError> {
        match self.faults.fault(&Call { operation, lease }) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// The wrapped store's `answer` to the call, or the error the policy
    /// replaces a successful answer with (a lost answer).
    fn answer<T>(
        &self,
        operation: &'static str,
        lease: Option<&Lease>,
        answer: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let value = answer?;
        match self.faults.lost_answer(&Call { operation, lease }) {
            Some(err) => Err(err),
            None => Ok(value),
        }
    }
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

/// The error an injected fault of `operation` returns; its message starts
/// with `injected fault`, so a process blocked or failed by one names it.
pub fn injected_error(operation: &'static str, retryable: bool) -> StoreError {
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
impl<F: Faults> Store for FaultyStore<F> {
    async fn spawn(&self, process: NewProcess) -> Result<SpawnOutcome, StoreError> {
        self.gate("spawn", None)?;
        let answer = self.inner.spawn(process).await;
        self.answer("spawn", None, answer)
    }

    async fn spawn_and_claim(
        &self,
        process: NewProcess,
        owner: &HostId,
        lease: Duration,
    ) -> Result<SpawnAndClaim, StoreError> {
        self.gate("spawn_and_claim", None)?;
        let answer = self.inner.spawn_and_claim(process, owner, lease).await;
        self.answer("spawn_and_claim", None, answer)
    }

    async fn claim(
        &self,
        owner: &HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.gate("claim", None)?;
        let answer = self.inner.claim(owner, now, lease, limit).await;
        self.answer("claim", None, answer)
    }

    async fn append(&self, lease: &Lease, entry: JournalEntry) -> Result<(), StoreError> {
        self.gate("append", Some(lease))?;
        let answer = self.inner.append(lease, entry).await;
        self.answer("append", Some(lease), answer)
    }

    async fn suspend(
        &self,
        lease: &Lease,
        suspension: Suspension,
    ) -> Result<SuspendOutcome, StoreError> {
        self.gate("suspend", Some(lease))?;
        let answer = self.inner.suspend(lease, suspension).await;
        self.answer("suspend", Some(lease), answer)
    }

    async fn finish(
        &self,
        lease: &Lease,
        finish: Finish,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.gate("finish", Some(lease))?;
        let answer = self.inner.finish(lease, finish, now).await;
        self.answer("finish", Some(lease), answer)
    }

    async fn continue_as_new(
        &self,
        lease: &Lease,
        input: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.gate("continue_as_new", Some(lease))?;
        let answer = self.inner.continue_as_new(lease, input, now).await;
        self.answer("continue_as_new", Some(lease), answer)
    }

    async fn renew(
        &self,
        owner: &HostId,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        self.gate("renew", None)?;
        let answer = self.inner.renew(owner, leases, now, lease).await;
        self.answer("renew", None, answer)
    }

    async fn release(&self, owner: &HostId, now: Timestamp) -> Result<u64, StoreError> {
        self.gate("release", None)?;
        let answer = self.inner.release(owner, now).await;
        self.answer("release", None, answer)
    }

    async fn send_signal(
        &self,
        id: &ProcessId,
        signal: steadfast_core::NewSignal,
    ) -> Result<steadfast_core::SignalSent, StoreError> {
        let op = if signal.message_id.is_some() {
            "signal_message"
        } else {
            "signal"
        };
        self.gate(op, None)?;
        let answer = self.inner.send_signal(id, signal).await;
        self.answer(op, None, answer)
    }

    async fn reject_signal(
        &self,
        lease: &Lease,
        signal: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.gate("reject_signal", Some(lease))?;
        let answer = self.inner.reject_signal(lease, signal, reason, now).await;
        self.answer("reject_signal", Some(lease), answer)
    }

    async fn pending_signals(&self, id: &ProcessId) -> Result<Vec<PendingSignal>, StoreError> {
        self.gate("pending_signals", None)?;
        let answer = self.inner.pending_signals(id).await;
        self.answer("pending_signals", None, answer)
    }

    async fn cancel(&self, id: &ProcessId, now: Timestamp) -> Result<Status, StoreError> {
        self.gate("cancel", None)?;
        let answer = self.inner.cancel(id, now).await;
        self.answer("cancel", None, answer)
    }

    async fn retry(&self, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
        self.gate("retry", None)?;
        let answer = self.inner.retry(id, now).await;
        self.answer("retry", None, answer)
    }

    async fn get(&self, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
        self.gate("get", None)?;
        let answer = self.inner.get(id).await;
        self.answer("get", None, answer)
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.gate("next_wake", None)?;
        let answer = self.inner.next_wake().await;
        self.answer("next_wake", None, answer)
    }

    fn work_events(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.work_events()
    }

    async fn store_time(&self) -> Result<Option<Timestamp>, StoreError> {
        self.gate("store_time", None)?;
        let answer = self.inner.store_time().await;
        self.answer("store_time", None, answer)
    }

    fn follow_host_clock(&self) {
        self.inner.follow_host_clock();
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[async_trait]
impl<F: Faults> StoreAdmin for FaultyStore<F> {
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Listed>, StoreError> {
        self.gate("list", None)?;
        let answer = self.inner.list(filter).await;
        self.answer("list", None, answer)
    }

    async fn journal(&self, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError> {
        self.gate("journal", None)?;
        let answer = self.inner.journal(id).await;
        self.answer("journal", None, answer)
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.gate("counts", None)?;
        let answer = self.inner.counts().await;
        self.answer("counts", None, answer)
    }

    async fn parked_counts(&self, kind: &str) -> Result<ParkedCounts, StoreError> {
        self.gate("parked_counts", None)?;
        let answer = self.inner.parked_counts(kind).await;
        self.answer("parked_counts", None, answer)
    }

    async fn signals(&self, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError> {
        self.gate("signals", None)?;
        let answer = self.inner.signals(id).await;
        self.answer("signals", None, answer)
    }

    async fn discard_signal(
        &self,
        id: &ProcessId,
        signal: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.gate("discard_signal", None)?;
        let answer = self.inner.discard_signal(id, signal, now).await;
        self.answer("discard_signal", None, answer)
    }

    async fn rewind(&self, id: &ProcessId, step: &str, now: Timestamp) -> Result<u64, StoreError> {
        self.gate("rewind", None)?;
        let answer = self.inner.rewind(id, step, now).await;
        self.answer("rewind", None, answer)
    }

    async fn purge(&self, finished_before: Timestamp) -> Result<u64, StoreError> {
        self.gate("purge", None)?;
        let answer = self.inner.purge(finished_before).await;
        self.answer("purge", None, answer)
    }

    async fn save_sources(&self, sources: &[FunctionSource]) -> Result<(), StoreError> {
        self.gate("save_sources", None)?;
        let answer = self.inner.save_sources(sources).await;
        self.answer("save_sources", None, answer)
    }

    async fn sources(&self) -> Result<Vec<FunctionSource>, StoreError> {
        self.gate("sources", None)?;
        let answer = self.inner.sources().await;
        self.answer("sources", None, answer)
    }

    async fn history(&self, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
        self.gate("history", None)?;
        let answer = self.inner.history(id).await;
        self.answer("history", None, answer)
    }

    async fn events(&self, id: &ProcessId) -> Result<Vec<ProcessEvent>, StoreError> {
        self.gate("events", None)?;
        let answer = self.inner.events(id).await;
        self.answer("events", None, answer)
    }

    async fn save_subscription(
        &self,
        report: &steadfast_core::SubscriptionReport,
    ) -> Result<(), StoreError> {
        self.gate("save_subscription", None)?;
        let answer = self.inner.save_subscription(report).await;
        self.answer("save_subscription", None, answer)
    }

    async fn subscriptions(&self) -> Result<Vec<steadfast_core::SubscriptionReport>, StoreError> {
        self.gate("subscriptions", None)?;
        let answer = self.inner.subscriptions().await;
        self.answer("subscriptions", None, answer)
    }

    async fn count(&self, filter: &ListFilter) -> Result<Counts, StoreError> {
        self.gate("count", None)?;
        let answer = self.inner.count(filter).await;
        self.answer("count", None, answer)
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
