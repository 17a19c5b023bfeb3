//! The in-memory state of one run of a process: the loaded journal, the
//! replay and ordering gates every durable operation passes, and what the
//! run waits for.
//!
//! Three rules make replay deterministic:
//! 1. An operation whose name is in the journal returns its recorded outcome
//!    without running, and recorded outcomes reach the function in the order
//!    they were journaled (an operation whose outcome came later waits for
//!    the earlier ones), so a `select!` takes the branch it took the first
//!    time. A name used twice in one run blocks the process.
//! 2. Nothing new happens (no step closure starts, no timer is scheduled, no
//!    signal is taken) while a recorded outcome has not been returned yet:
//!    new work only follows a fully replayed journal.
//! 3. New outcomes are journaled one at a time: an operation holds the
//!    *completion token* from its append until it returns, so the order of
//!    outcomes in the journal is the order in which the function saw them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::poll_fn;
use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use steadfast_core::{
    Backend, Clock, EntryKind, EntryStatus, JournalEntry, Lease, PendingSignal, ProcessId,
    SourceLocation, StoreError, Timestamp,
};

use crate::retry::RetryPolicy;

/// Everything an operation of one run shares.
pub(crate) struct RunCtx {
    pub(crate) id: ProcessId,
    pub(crate) lease: Lease,
    pub(crate) store: Arc<dyn Backend>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The host clock's offset from the store's clock.
    pub(crate) offset: Arc<crate::offset::ClockOffset>,
    pub(crate) default_retry: RetryPolicy,
    /// A dry run replays and stops before any new work; it never writes.
    pub(crate) dry_run: bool,
    /// Past this many journal entries the run warns (once) that the journal
    /// grows without bound and `continue_as_new` would keep it small.
    pub(crate) journal_warning: usize,
    /// The largest JSON text a run stores (`HostBuilder::max_payload_bytes`).
    pub(crate) max_payload_bytes: usize,
    /// The process's kind (a label of its metrics).
    pub(crate) kind: String,
    /// The host's counters.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The newest registered version of each kind (for spawns from a run).
    pub(crate) latest_versions: Arc<HashMap<String, u32>>,
    /// Retries the run's writes through transient store errors.
    pub(crate) persist: crate::persist::Persist,
    state: Mutex<RunState>,
}

/// What a run takes from its host (`Shared::run_host`).
pub(crate) struct RunHost {
    pub(crate) store: Arc<dyn Backend>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) offset: Arc<crate::offset::ClockOffset>,
    pub(crate) default_retry: RetryPolicy,
    pub(crate) journal_warning: usize,
    pub(crate) max_payload_bytes: usize,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) latest_versions: Arc<HashMap<String, u32>>,
    pub(crate) persist: crate::persist::Persist,
}

/// Why a run stops early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The journal no longer fits the code.
    Blocked {
        step: Option<String>,
        reason: String,
        location: Option<SourceLocation>,
    },
    /// A cancellation was requested.
    Cancelled,
    /// The lease was lost or the store failed; another run will take over.
    Aborted(StoreError),
    /// A dry run (`Host::check`) replayed the whole journal and reached new
    /// work: the journal fits the code.
    Fits,
    /// The function continues as new with this input (JSON text).
    ContinueAsNew(String),
}

#[derive(Default)]
struct RunState {
    entries: HashMap<String, JournalEntry>,
    /// Names this run added to the journal (not among `entries`): with
    /// `entries`, the journal's length. A timer or wait scheduled and then
    /// completed, or a step retried durably, is one entry.
    appended: HashSet<String>,
    /// Recorded outcomes not yet returned to the function, by `seq`.
    outcomes: BTreeMap<i64, String>,
    used: HashSet<String>,
    /// Where in the source each operation of this run was called.
    locations: HashMap<String, &'static Location<'static>>,
    next_seq: i64,
    token_held: bool,
    token_waiters: Vec<Waker>,
    replay_waiters: HashMap<String, Waker>,
    progressed: bool,
    busy: usize,
    timers: HashMap<String, (Timestamp, Waker)>,
    waits: HashMap<String, Waiting>,
    signals: Vec<PendingSignal>,
    taken_signals: HashSet<i64>,
    /// Signals no registered wait can decode, by id: the wait that writes
    /// the rejection and the reason.
    rejecting: HashMap<i64, (String, String)>,
    stop: Option<Stop>,
    driver: Option<Waker>,
    /// How often each state key was published in this run.
    publications: HashMap<String, u32>,
}

/// A wait registered for a signal.
struct Waiting {
    /// The signal name.
    signal: String,
    /// Whether a payload decodes into the wait's type.
    fits: Fits,
    waker: Waker,
}

/// Checks that a payload decodes into a wait's type; the error says why not.
pub(crate) type Fits = fn(&str) -> Result<(), String>;

/// The [`Fits`] of a wait for a `T`.
pub(crate) fn fits<T: serde::de::DeserializeOwned>(payload: &str) -> Result<(), String> {
    serde_json::from_str::<T>(payload)
        .map(|_| ())
        .map_err(|e| format!("expects {}: {e}", std::any::type_name::<T>()))
}

/// What a wait's poll found.
pub(crate) enum Taken {
    /// A signal whose payload fits the wait, with the completion token.
    Signal(PendingSignal, TokenGuard),
    /// A signal no wait for its name can decode, which this wait is to
    /// reject (with the reason), with the completion token.
    Reject(PendingSignal, String, TokenGuard),
}

/// What the journal says about an operation's name.
pub(crate) enum Begin {
    /// The name has a recorded outcome.
    Replay(JournalEntry),
    /// A timer or wait whose due time is recorded but which has not fired.
    Scheduled(JournalEntry),
    /// The name is new.
    New,
}

/// What the driver should do after a poll of the function returned `Pending`.
pub(crate) enum Idle {
    /// Something will wake the run: keep it loaded.
    KeepRunning,
    /// The run stops.
    Stop(Stop),
    /// Only durable waits remain: unload until `wake_at` or a signal.
    Suspend {
        wake_at: Option<Timestamp>,
        waiting_for: Vec<String>,
        parked_at: Vec<SourceLocation>,
    },
}

impl RunCtx {
    /// A run on `host`'s store, clock, retry policy and counters.
    pub(crate) fn new(
        host: RunHost,
        lease: Lease,
        kind: &str,
        journal: Vec<JournalEntry>,
        signals: Vec<PendingSignal>,
    ) -> Self {
        let next_seq = journal.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
        let outcomes = journal
            .iter()
            .filter(|e| e.status != EntryStatus::Scheduled)
            .map(|e| (e.seq, e.name.clone()))
            .collect();
        let entries: HashMap<String, JournalEntry> = journal
            .into_iter()
            .map(|entry| (entry.name.clone(), entry))
            .collect();
        RunCtx {
            id: lease.id.clone(),
            kind: kind.to_owned(),
            lease,
            store: host.store,
            clock: host.clock,
            offset: host.offset,
            default_retry: host.default_retry,
            dry_run: false,
            journal_warning: host.journal_warning,
            max_payload_bytes: host.max_payload_bytes,
            metrics: host.metrics,
            latest_versions: host.latest_versions,
            persist: host.persist,
            state: Mutex::new(RunState {
                entries,
                outcomes,
                next_seq,
                signals,
                ..RunState::default()
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, RunState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks `name` as used by this run and looks it up in the journal.
    ///
    /// Returns `None` (and blocks the run) when the name was already used in
    /// this run or its recorded entry is of another kind.
    pub(crate) fn begin(
        &self,
        name: &str,
        kind: EntryKind,
        location: &'static Location<'static>,
    ) -> Option<Begin> {
        let mut st = self.state();
        st.locations.insert(name.to_owned(), location);
        if !st.used.insert(name.to_owned()) {
            drop(st);
            self.block(
                name,
                format!(
                    "step name {name:?} is used twice in one run; every step of a process needs a \
                     distinct name"
                ),
            );
            return None;
        }
        let Some(entry) = st.entries.get(name) else {
            return Some(Begin::New);
        };
        if entry.kind != kind {
            let recorded = entry.kind.as_str();
            drop(st);
            self.block(
                name,
                format!(
                    "the journal records {name:?} as a {recorded}, but the code now asks for a {}",
                    kind.as_str()
                ),
            );
            return None;
        }
        let entry = entry.clone();
        if entry.status == EntryStatus::Scheduled {
            Some(Begin::Scheduled(entry))
        } else {
            Some(Begin::Replay(entry))
        }
    }

    /// Waits until the recorded outcome `seq` of operation `name` is the
    /// earliest one not yet returned, then marks it returned: recorded
    /// outcomes reach the function in the order they were journaled, so a
    /// `select!` takes the same branch it took the first time.
    pub(crate) async fn replay_turn(&self, name: &str, seq: i64) {
        let _registered = ReplayWaiter(self, name);
        poll_fn(|cx| {
            let mut st = self.state();
            if st.outcomes.first_key_value().map(|(s, _)| *s) == Some(seq) {
                st.outcomes.remove(&seq);
                st.replay_waiters.remove(name);
                if !st.replay_waiters.is_empty() {
                    for (_, waker) in st.replay_waiters.drain() {
                        waker.wake();
                    }
                    st.progressed = true;
                }
                Poll::Ready(())
            } else {
                st.replay_waiters
                    .insert(name.to_owned(), cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Waits until every recorded outcome has been consumed (rule 2).
    pub(crate) async fn replayed(&self, name: &str) {
        let _registered = ReplayWaiter(self, name);
        poll_fn(|cx| {
            let mut st = self.state();
            if st.outcomes.is_empty() {
                st.replay_waiters.remove(name);
                if self.dry_run {
                    // Everything recorded was replayed; stop before new work.
                    if st.stop.is_none() {
                        st.stop = Some(Stop::Fits);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(())
            } else {
                st.replay_waiters
                    .insert(name.to_owned(), cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Takes the completion token (rule 3); it is released when the guard drops.
    pub(crate) async fn completion_token(self: &Arc<Self>) -> TokenGuard {
        poll_fn(|cx| {
            let mut st = self.state();
            if st.token_held {
                st.token_waiters.push(cx.waker().clone());
                Poll::Pending
            } else {
                st.token_held = true;
                Poll::Ready(())
            }
        })
        .await;
        TokenGuard(Arc::clone(self))
    }

    /// Counts work in flight (a running closure, an append) until the guard drops.
    pub(crate) fn busy(self: &Arc<Self>) -> BusyGuard {
        self.state().busy += 1;
        BusyGuard(Arc::clone(self))
    }

    /// The journal name of the next publication of state `key` in this run.
    pub(crate) fn next_publication(&self, key: &str) -> String {
        let mut st = self.state();
        let n = st.publications.entry(key.to_owned()).or_default();
        *n += 1;
        entry_name(key, *n)
    }

    /// The next journal sequence number.
    pub(crate) fn next_seq(&self) -> i64 {
        let mut st = self.state();
        let seq = st.next_seq;
        st.next_seq += 1;
        seq
    }

    /// Writes an entry under the lease; on failure the run stops and this
    /// future never completes.
    ///
    /// A transient store error is retried (see [`crate::persist`]): the
    /// outcome is in hand, and giving the run up would run its step again.
    /// A retry that finds the entry already written (the earlier try was
    /// committed but its answer lost) counts as written: under this lease
    /// only this run writes this name.
    pub(crate) async fn append(self: &Arc<Self>, entry: JournalEntry) {
        let _busy = self.busy();
        let mut tries = 0u32;
        let written = self
            .persist
            .write(&self.lease, crate::metrics::WriteOp::Append, None, || {
                tries += 1;
                let retry = tries > 1;
                let entry = entry.clone();
                async move {
                    match self.store.append(&self.lease, entry).await {
                        Err(StoreError::DuplicateEntry { .. }) if retry => Ok(()),
                        other => other,
                    }
                }
            })
            .await;
        match written {
            Ok(()) => {
                let mut st = self.state();
                if !st.entries.contains_key(&entry.name) && st.appended.insert(entry.name) {
                    let journal_len = st.entries.len() + st.appended.len();
                    if journal_len == self.journal_warning {
                        tracing::warn!(
                            process = %self.id,
                            entries = journal_len,
                            "the journal of this process has grown large; a process that loops \
                             forever should end each round with `continue_as_new` to keep it small"
                        );
                    }
                }
            }
            Err(StoreError::CancelRequested(_)) => {
                self.stop(Stop::Cancelled);
                std::future::pending::<()>().await;
            }
            Err(err) => {
                self.stop(Stop::Aborted(err));
                std::future::pending::<()>().await;
            }
        }
    }

    /// Blocks the run: the journal no longer fits the code.
    pub(crate) fn block(&self, step: &str, reason: String) {
        let location = self.state().locations.get(step).map(|l| source(l));
        self.stop(Stop::Blocked {
            step: Some(step.to_owned()),
            reason,
            location,
        });
    }

    /// Stops the run for `why` (the first reason given wins).
    pub(crate) fn stop(&self, why: Stop) {
        let mut st = self.state();
        if st.stop.is_none() {
            st.stop = Some(why);
        }
        if let Some(driver) = &st.driver {
            driver.wake_by_ref();
        }
    }

    /// The store's time as it decides timers: at the earliest what the
    /// store's clock reads now (the host's clock when the store follows it).
    pub(crate) fn due_now(&self) -> Timestamp {
        self.offset.due_now(self.clock.now())
    }

    /// The store's time: carried forward from the last offset measurement,
    /// or the host's clock when there is none.
    pub(crate) fn store_now(&self) -> Timestamp {
        self.offset.store_now(self.clock.now())
    }

    /// Ready once `due` has passed; otherwise registers the timer (or wait
    /// timeout) of operation `name` so the run suspends until then.
    pub(crate) fn poll_timer(&self, name: &str, due: Timestamp, cx: &mut Context<'_>) -> Poll<()> {
        if self.due_now() >= due {
            self.state().timers.remove(name);
            return Poll::Ready(());
        }
        self.state()
            .timers
            .insert(name.to_owned(), (due, cx.waker().clone()));
        Poll::Pending
    }

    /// Takes the oldest stored signal named `signal` whose payload `fits`
    /// operation `name`, together with the completion token; or a signal
    /// [`RunCtx::idle`] gave this wait to reject. Otherwise registers the
    /// wait so the run suspends until such a signal arrives.
    pub(crate) fn poll_signal(
        self: &Arc<Self>,
        name: &str,
        signal: &str,
        fits: Fits,
        cx: &mut Context<'_>,
    ) -> Poll<Taken> {
        let mut guard = self.state();
        let st = &mut *guard;
        let to_reject = st
            .rejecting
            .iter()
            .filter(|(_, (wait, _))| wait == name)
            .map(|(id, _)| *id)
            .min();
        let found = to_reject.or_else(|| {
            st.signals
                .iter()
                .find(|s| {
                    s.name == signal
                        && !st.rejecting.contains_key(&s.id)
                        && fits(&s.payload).is_ok()
                })
                .map(|s| s.id)
        });
        if let Some(id) = found {
            if !st.token_held {
                st.token_held = true;
                st.waits.remove(name);
                let token = TokenGuard(Arc::clone(self));
                let index = st.signals.iter().position(|s| s.id == id);
                let Some(index) = index else {
                    // Cannot happen: a signal is given to a wait to reject
                    // only while it is stored here.
                    st.rejecting.remove(&id);
                    drop(guard);
                    drop(token);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                };
                if to_reject.is_some() {
                    let reason = st
                        .rejecting
                        .get(&id)
                        .map(|(_, reason)| reason.clone())
                        .unwrap_or_default();
                    let signal = st.signals[index].clone();
                    return Poll::Ready(Taken::Reject(signal, reason, token));
                }
                let taken = st.signals.remove(index);
                st.taken_signals.insert(taken.id);
                return Poll::Ready(Taken::Signal(taken, token));
            }
            st.token_waiters.push(cx.waker().clone());
        }
        st.waits.insert(
            name.to_owned(),
            Waiting {
                signal: signal.to_owned(),
                fits,
                waker: cx.waker().clone(),
            },
        );
        Poll::Pending
    }

    /// Writes the rejection of `signal` (which wait `name` was given by
    /// [`RunCtx::idle`]) under the lease; once durable, the signal is gone
    /// from this run. On failure the run stops and this never completes.
    pub(crate) async fn reject(self: &Arc<Self>, name: &str, signal: &PendingSignal, reason: &str) {
        let _busy = self.busy();
        let now = self.clock.now();
        match self
            .store
            .reject_signal(&self.lease, signal.id, reason, now)
            .await
        {
            Ok(()) => {
                self.metrics.signal_rejected(&self.kind);
                tracing::warn!(
                    process = %self.id,
                    wait = name,
                    signal = signal.id,
                    name = %signal.name,
                    reason,
                    "rejected a signal whose payload does not fit the waits for it"
                );
                let mut st = self.state();
                st.rejecting.remove(&signal.id);
                st.signals.retain(|s| s.id != signal.id);
                st.taken_signals.insert(signal.id);
            }
            Err(StoreError::CancelRequested(_)) => {
                self.stop(Stop::Cancelled);
                std::future::pending::<()>().await;
            }
            Err(err) => {
                self.stop(Stop::Aborted(err));
                std::future::pending::<()>().await;
            }
        }
    }

    /// Gives each stored signal that waits are registered for but none of
    /// them can decode to one of those waits (the first by name) to reject.
    /// Returns whether it gave any.
    fn assign_rejections(st: &mut RunState) -> bool {
        let mut assigned = false;
        for signal in &st.signals {
            if st.rejecting.contains_key(&signal.id) {
                continue;
            }
            let mut waits: Vec<(&String, &Waiting)> = st
                .waits
                .iter()
                .filter(|(_, w)| w.signal == signal.name)
                .collect();
            if waits.is_empty() {
                continue;
            }
            waits.sort_by(|a, b| a.0.cmp(b.0));
            let mut reasons = Vec::with_capacity(waits.len());
            for (name, wait) in &waits {
                match (wait.fits)(&signal.payload) {
                    Ok(()) => break,
                    Err(why) => reasons.push(format!("wait {name:?} {why}")),
                }
            }
            if reasons.len() < waits.len() {
                continue;
            }
            let (first, wait) = waits[0];
            wait.waker.wake_by_ref();
            let reason = format!(
                "the payload of signal {:?} does not decode into the type its wait expects: {}",
                signal.name,
                reasons.join("; ")
            );
            st.rejecting.insert(signal.id, (first.clone(), reason));
            assigned = true;
        }
        assigned
    }

    /// Wakes the operations whose timers are due (called instead of
    /// suspending when the earliest timer has already passed).
    pub(crate) fn wake_due_timers(&self) {
        let now = self.due_now();
        let st = self.state();
        for (due, waker) in st.timers.values() {
            if *due <= now {
                waker.wake_by_ref();
            }
        }
    }

    /// Forgets the timer and wait of operation `name` (it completed or was dropped).
    pub(crate) fn clear_pending(&self, name: &str) {
        let mut st = self.state();
        st.timers.remove(name);
        st.waits.remove(name);
        // A rejection this wait did not write is decided again at idle.
        st.rejecting.retain(|_, (wait, _)| wait != name);
    }

    /// Forgets a signal that was discarded while the run is loaded.
    pub(crate) fn forget_signal(&self, signal: i64) {
        let mut st = self.state();
        st.signals.retain(|s| s.id != signal);
        st.rejecting.remove(&signal);
        st.taken_signals.insert(signal);
    }

    /// Hands signals that arrived while the run is loaded to its waits.
    pub(crate) fn deliver(&self, signals: Vec<PendingSignal>) {
        let mut st = self.state();
        for signal in signals {
            let known = st.taken_signals.contains(&signal.id)
                || st.signals.iter().any(|s| s.id == signal.id);
            if !known {
                st.signals.push(signal);
            }
        }
        st.signals.sort_by_key(|s| s.id);
        for wait in st.waits.values() {
            wait.waker.wake_by_ref();
        }
        if let Some(driver) = &st.driver {
            driver.wake_by_ref();
        }
    }

    /// Called by the driver before each poll of the function.
    pub(crate) fn begin_round(&self, driver: &Waker) {
        let mut st = self.state();
        st.progressed = false;
        match &st.driver {
            Some(w) if w.will_wake(driver) => {}
            _ => st.driver = Some(driver.clone()),
        }
    }

    /// Called by the driver after a poll of the function returned `Pending`.
    pub(crate) fn idle(&self) -> Idle {
        let mut st = self.state();
        if let Some(stop) = st.stop.take() {
            return Idle::Stop(stop);
        }
        if st.progressed || st.busy > 0 {
            return Idle::KeepRunning;
        }
        if !st.outcomes.is_empty() && !st.replay_waiters.is_empty() {
            return Idle::Stop(self.mismatch(&st));
        }
        if st.timers.is_empty() && st.waits.is_empty() {
            // The function awaits something that is not durable; its waker
            // will bring the run back.
            return Idle::KeepRunning;
        }
        // Every wait is registered now, so a signal none of them can decode
        // is rejected (by one of them) before the run suspends.
        if Self::assign_rejections(&mut st) {
            return Idle::KeepRunning;
        }
        let mut waiting_for: Vec<String> = st.waits.values().map(|w| w.signal.clone()).collect();
        waiting_for.sort();
        waiting_for.dedup();
        let mut parked_at: Vec<SourceLocation> = st
            .timers
            .keys()
            .chain(st.waits.keys())
            .filter_map(|name| st.locations.get(name).map(|l| source(l)))
            .collect();
        parked_at.sort();
        parked_at.dedup();
        Idle::Suspend {
            wake_at: st.timers.values().map(|(due, _)| *due).min(),
            waiting_for,
            parked_at,
        }
    }

    /// Checks, when the function returned, that it consumed the whole journal.
    pub(crate) fn finished_cleanly(&self) -> Result<(), Stop> {
        let mut st = self.state();
        if let Some(stop) = st.stop.take() {
            return Err(stop);
        }
        if !st.outcomes.is_empty() {
            return Err(self.mismatch(&st));
        }
        Ok(())
    }

    fn mismatch(&self, st: &RunState) -> Stop {
        let first = st.outcomes.first_key_value().map(|(_, name)| name.clone());
        let location = first
            .as_ref()
            .and_then(|name| st.entries.get(name))
            .and_then(|entry| entry.location.clone());
        let step = first.clone();
        let recorded = first.unwrap_or_default();
        let reason = if st.replay_waiters.is_empty() {
            format!(
                "the journal records step {recorded:?}, but the function finished without \
                 reaching it; the code no longer fits this process's journal"
            )
        } else {
            let mut asked: Vec<&str> = st.replay_waiters.keys().map(String::as_str).collect();
            asked.sort_unstable();
            format!(
                "the journal records step {recorded:?}, but the code did not reach it and asked \
                 for new step(s) {asked:?} instead; the code no longer fits this process's journal"
            )
        };
        Stop::Blocked {
            step,
            reason,
            location,
        }
    }
}

/// Forgets an operation's replay registration if it is dropped while waiting.
struct ReplayWaiter<'a>(&'a RunCtx, &'a str);

impl Drop for ReplayWaiter<'_> {
    fn drop(&mut self) {
        self.0.state().replay_waiters.remove(self.1);
    }
}

/// Holds the completion token; releasing it lets the next new outcome in.
pub(crate) struct TokenGuard(Arc<RunCtx>);

impl Drop for TokenGuard {
    fn drop(&mut self) {
        let mut st = self.0.state();
        st.token_held = false;
        if !st.token_waiters.is_empty() {
            wake_all(&mut st.token_waiters);
            st.progressed = true;
        }
    }
}

/// Counts one piece of work in flight.
pub(crate) struct BusyGuard(Arc<RunCtx>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.state().busy -= 1;
    }
}

fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        waker.wake();
    }
}

/// Clears an operation's registered timer and wait when it completes or is dropped.
pub(crate) struct PendingGuard {
    pub(crate) ctx: Arc<RunCtx>,
    pub(crate) name: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.ctx.clear_pending(&self.name);
    }
}

/// A journal entry for a new outcome of this run.
pub(crate) fn new_entry(
    ctx: &RunCtx,
    name: &str,
    kind: EntryKind,
    status: EntryStatus,
    started_at: Timestamp,
    location: &'static std::panic::Location<'static>,
) -> JournalEntry {
    JournalEntry {
        seq: ctx.next_seq(),
        name: name.to_owned(),
        kind,
        status,
        outcome: None,
        attempts: 0,
        started_at,
        finished_at: None,
        due_at: None,
        location: Some(source(location)),
        consumed_signal: None,
    }
}

/// A `#[track_caller]` location as stored in journals.
pub(crate) fn source(location: &Location<'_>) -> SourceLocation {
    SourceLocation {
        file: location.file().to_owned(),
        line: location.line(),
    }
}

/// The journal name of the `n`-th publication of `key` in a run.
pub(crate) fn entry_name(key: &str, n: u32) -> String {
    format!("{key} #{n}")
}

/// The key a state entry was published under.
pub(crate) fn key_of(entry: &JournalEntry) -> Option<&str> {
    if entry.kind != EntryKind::State {
        return None;
    }
    let (key, n) = entry.name.rsplit_once(" #")?;
    n.parse::<u32>().ok().map(|_| key)
}
