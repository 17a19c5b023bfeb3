//! Runs the suite against a small in-memory reference store, which checks
//! the suite itself: every check must pass against a store that follows the
//! contract, and each deliberately broken variant of that store (a [`Fault`]
//! switched on) must make the check named for that rule fail.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use steadfast_core::{
    Backend, Claimed, Counts, EntryStatus, EventKind, Finish, FunctionSource, Generation, HostId,
    JournalEntry, Lease, ListFilter, Listed, NewProcess, NewSignal, ParkedCount, ParkedCounts,
    PendingSignal, ProcessEvent, ProcessId, ProcessRecord, SignalRecord, SignalSent, SignalState,
    SortKey, SourceLocation, SpawnAndClaim, SpawnOutcome, Status, StatusCount, Store, StoreAdmin,
    StoreError, SubscriptionReport, SuspendOutcome, Suspension, Timestamp, check_message_id,
    check_subscription_report,
};

#[derive(Default)]
struct State {
    sources: BTreeMap<(String, String), FunctionSource>,
    /// Subscription reports by name and host.
    subscriptions: BTreeMap<(String, String), SubscriptionReport>,
    history: BTreeMap<ProcessId, Vec<Generation>>,
    processes: BTreeMap<ProcessId, ProcessRecord>,
    journals: BTreeMap<ProcessId, Vec<JournalEntry>>,
    signals: BTreeMap<ProcessId, Vec<SignalRecord>>,
    /// The message id each signal sent by a message came from.
    message_ids: BTreeMap<i64, String>,
    next_signal: i64,
    events: BTreeMap<ProcessId, Vec<ProcessEvent>>,
    next_event: i64,
    /// The one rule this store breaks on purpose, if any.
    fault: Option<Fault>,
}

/// A rule the reference store can break on purpose, to show that the check
/// guarding it fails (see the `broken_*` tests at the end of this file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Writes under a lease never check its epoch or owner.
    NoFencing,
    /// `claim` also takes processes whose lease has not expired.
    ClaimIgnoresLease,
    /// `journal` and `claim` return entries in storage order, not `seq` order.
    JournalOutOfOrder,
    /// `rewind` leaves the signals of dropped entries consumed.
    RewindKeepsSignalsConsumed,
    /// `purge` deletes old processes whatever their status.
    PurgeIgnoresStatus,
    /// `purge` deletes finished processes whatever their age.
    PurgeIgnoresAge,
    /// `continue_as_new` drops the unconsumed signals.
    ContinueAsNewDropsSignals,
    /// Entries read back without their `consumed_signal`.
    LaxConsumedSignal,
    /// `signal_message` stores a re-delivered message's signal again.
    MessageIdsIgnored,
    /// `save_subscription` replaces a newer stored report with an older one.
    LateSubscriptionReportWins,
    /// A refused operation still leaves its history entry (not written in
    /// the operation's transaction).
    EventOfRefusedOperation,
    /// `claim` leaves no history entry.
    ClaimNotRecorded,
    /// `list` returns rows by id whatever the order asked for.
    ListIgnoresOrder,
    /// `count` counts every process, whatever the filter.
    CountIgnoresFilter,
    /// Signals are stored without their trace context.
    TraceContextDropped,
    /// `spawn_and_claim` of an id already stored takes it over.
    SpawnAndClaimTakesExisting,
}

/// Whether `r` matches every filter of `f` but its paging fields.
fn matches(f: &ListFilter, r: &ProcessRecord) -> bool {
    let contains = |text: &str, part: &Option<String>| {
        part.as_ref()
            .is_none_or(|p| text.to_ascii_lowercase().contains(&p.to_ascii_lowercase()))
    };
    f.status.is_none_or(|st| r.status == st)
        && f.kind.as_ref().is_none_or(|k| &r.kind == k)
        && f.id_prefix
            .as_ref()
            .is_none_or(|p| r.id.as_str().starts_with(p.as_str()))
        && contains(r.id.as_str(), &f.id_contains)
        && (f.reason_contains.is_none()
            || r.error
                .as_deref()
                .is_some_and(|e| contains(e, &f.reason_contains)))
        && f.created_from.is_none_or(|t| r.created_at >= t)
        && f.created_before.is_none_or(|t| r.created_at < t)
        && f.parent
            .as_ref()
            .is_none_or(|p| r.parent.as_ref() == Some(p))
}

/// A reference store: one mutex, no persistence.
#[derive(Default, Clone)]
struct MemoryStore(Arc<Mutex<State>>);

fn invalid(r: &ProcessRecord, action: &'static str, expected: &'static str) -> StoreError {
    StoreError::InvalidState {
        id: r.id.clone(),
        status: r.status,
        action,
        expected,
    }
}

impl State {
    fn record(&mut self, id: &ProcessId) -> Result<&mut ProcessRecord, StoreError> {
        self.processes
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    fn fenced(&mut self, lease: &Lease) -> Result<&mut ProcessRecord, StoreError> {
        let no_fencing = self.fault == Some(Fault::NoFencing);
        let r = self.record(&lease.id)?;
        if no_fencing {
            return Ok(r);
        }
        if r.epoch != lease.epoch || r.owner.as_deref() != Some(lease.owner.as_str()) {
            return Err(StoreError::Fenced {
                id: lease.id.clone(),
                epoch: lease.epoch,
            });
        }
        Ok(r)
    }

    /// Appends a history entry for `id` (its epoch and generation now).
    fn event(
        &mut self,
        id: &ProcessId,
        kind: EventKind,
        host: Option<&str>,
        detail: Option<String>,
        now: Timestamp,
    ) {
        let Some(r) = self.processes.get(id) else {
            return;
        };
        let (epoch, generation) = (r.epoch, r.generation);
        self.next_event += 1;
        let e = ProcessEvent {
            id: self.next_event,
            at: now,
            kind,
            host: host.map(str::to_owned),
            epoch,
            generation,
            detail,
        };
        self.events.entry(id.clone()).or_default().push(e);
    }

    /// Stores a signal; a suspended process becomes due.
    fn push_signal(
        &mut self,
        id: &ProcessId,
        name: &str,
        payload: &str,
        now: Timestamp,
        traceparent: Option<String>,
    ) -> i64 {
        if let Some(r) = self.processes.get_mut(id)
            && r.status == Status::Suspended
        {
            r.wake_at = Some(r.wake_at.map_or(now, |w| w.min(now)));
        }
        self.next_signal += 1;
        let sig = SignalRecord {
            id: self.next_signal,
            name: name.to_owned(),
            payload: payload.to_owned(),
            sent_at: now,
            state: SignalState::Pending,
            settled_at: None,
            reason: None,
            traceparent: traceparent.filter(|_| self.fault != Some(Fault::TraceContextDropped)),
            message_id: None,
        };
        self.signals.entry(id.clone()).or_default().push(sig);
        self.next_signal
    }

    /// Tells the stored parent of `id`, if unfinished, how `id` ended.
    fn notify_parent(&mut self, id: &ProcessId, how: &Finish, now: Timestamp) {
        let Some(parent) = self.processes.get(id).and_then(|r| r.parent.clone()) else {
            return;
        };
        let Some(notice) = steadfast_core::child::end_notice(&parent, id, how) else {
            return;
        };
        if self
            .processes
            .get(&parent)
            .is_some_and(|p| !p.status.is_finished())
        {
            self.push_signal(&parent, &notice.signal, &notice.payload, now, None);
        }
    }

    /// Cancels one unfinished process, at once unless a live lease holds it.
    fn cancel_one(&mut self, id: &ProcessId, now: Timestamp) -> Status {
        let Some(r) = self.processes.get_mut(id) else {
            return Status::Cancelled;
        };
        let live = r.owner.is_some() && r.wake_at.is_some_and(|w| w > now);
        r.updated_at = now;
        if live {
            r.cancel_requested = true;
            let status = r.status;
            self.event(
                id,
                EventKind::CancelRequested,
                None,
                Some("cancel requested".into()),
                now,
            );
            return status;
        }
        r.status = Status::Cancelled;
        r.owner = None;
        r.wake_at = None;
        self.event(
            id,
            EventKind::Cancelled,
            None,
            Some("cancelled".into()),
            now,
        );
        self.notify_parent(id, &Finish::Cancelled, now);
        Status::Cancelled
    }

    /// A journal as read back: in `seq` order, every field as stored.
    fn read_journal(&self, id: &ProcessId) -> Vec<JournalEntry> {
        let mut journal = self.journals.get(id).cloned().unwrap_or_default();
        if self.fault != Some(Fault::JournalOutOfOrder) {
            journal.sort_by_key(|e| e.seq);
        }
        if self.fault == Some(Fault::LaxConsumedSignal) {
            for e in &mut journal {
                e.consumed_signal = None;
            }
        }
        journal
    }

    fn pending(&self, id: &ProcessId) -> Vec<PendingSignal> {
        self.signals
            .get(id)
            .into_iter()
            .flatten()
            .filter(|s| s.state == SignalState::Pending)
            .map(SignalRecord::to_pending)
            .collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn spawn(&self, p: NewProcess) -> Result<SpawnOutcome, StoreError> {
        let mut s = self.0.lock().unwrap();
        if let Some(r) = s.processes.get(&p.id) {
            if r.kind == p.kind && r.input == p.input {
                return Ok(SpawnOutcome::Existing(Box::new(r.clone())));
            }
            return Err(StoreError::SpawnConflict {
                id: p.id,
                existing_kind: r.kind.clone(),
            });
        }
        let r = ProcessRecord {
            id: p.id.clone(),
            kind: p.kind,
            input: p.input,
            status: Status::Running,
            created_at: p.now,
            updated_at: p.now,
            wake_at: Some(p.now),
            waiting_for: vec![],
            owner: None,
            epoch: 0,
            cancel_requested: false,
            output: None,
            error: None,
            blocked_step: None,
            parked_at: vec![],
            generation: 0,
            version: p.version,
            parent: p.parent,
            traceparent: p.traceparent,
        };
        s.processes.insert(p.id, r);
        Ok(SpawnOutcome::Created)
    }

    /// The reference store does not claim on spawn: it answers as the
    /// trait's default does, leaving the claim to the dispatcher.
    async fn spawn_and_claim(
        &self,
        p: NewProcess,
        owner: &HostId,
        lease: Duration,
    ) -> Result<SpawnAndClaim, StoreError> {
        let now = p.now;
        match self.spawn(p).await? {
            SpawnOutcome::Created => Ok(SpawnAndClaim::Created),
            SpawnOutcome::Existing(record) => {
                let mut s = self.0.lock().unwrap();
                if s.fault == Some(Fault::SpawnAndClaimTakesExisting) {
                    let r = s.processes.get_mut(&record.id).unwrap();
                    r.owner = Some(owner.as_str().to_owned());
                    r.epoch += 1;
                    r.wake_at = Some(now + lease);
                }
                Ok(SpawnAndClaim::Existing(record))
            }
        }
    }

    async fn claim(
        &self,
        owner: &HostId,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut s = self.0.lock().unwrap();
        let ignore_lease = s.fault == Some(Fault::ClaimIgnoresLease);
        let mut due: Vec<(Timestamp, ProcessId)> = s
            .processes
            .values()
            .filter(|r| {
                (r.wake_at.is_some_and(|w| w <= now) || ignore_lease && r.owner.is_some())
                    && !r.status.is_finished()
            })
            .map(|r| (r.wake_at.unwrap(), r.id.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut out = Vec::new();
        for (_, id) in due {
            let r = s.processes.get_mut(&id).unwrap();
            r.owner = Some(owner.as_str().to_owned());
            r.epoch += 1;
            r.status = Status::Running;
            r.wake_at = Some(now + lease);
            r.updated_at = now;
            r.parked_at.clear();
            let record = r.clone();
            if s.fault != Some(Fault::ClaimNotRecorded) {
                s.event(&id, EventKind::Claimed, Some(owner.as_str()), None, now);
            }
            let journal = s.read_journal(&id);
            out.push(Claimed {
                lease: Lease {
                    id: id.clone(),
                    owner: owner.clone(),
                    epoch: record.epoch,
                },
                record,
                journal,
                signals: s.pending(&id),
            });
        }
        Ok(out)
    }

    async fn append(&self, lease: &Lease, entry: JournalEntry) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        let r = s.fenced(lease)?;
        if r.cancel_requested {
            return Err(StoreError::CancelRequested(lease.id.clone()));
        }
        if let Some(consumed) = entry.consumed_signal {
            let pending = s
                .signals
                .get(&lease.id)
                .into_iter()
                .flatten()
                .any(|sig| sig.id == consumed && sig.state == SignalState::Pending);
            if !pending {
                return Err(StoreError::InvalidInput(format!(
                    "signal {consumed} is not pending"
                )));
            }
        }
        let journal = s.journals.entry(lease.id.clone()).or_default();
        match journal.iter_mut().find(|e| e.name == entry.name) {
            Some(e) if e.status == EntryStatus::Scheduled => {
                e.status = entry.status;
                e.outcome = entry.outcome;
                e.attempts = entry.attempts;
                e.finished_at = entry.finished_at;
                e.due_at = entry.due_at.or(e.due_at);
                e.seq = entry.seq;
            }
            Some(_) => {
                return Err(StoreError::DuplicateEntry {
                    id: lease.id.clone(),
                    name: entry.name,
                });
            }
            None => journal.push(entry.clone()),
        }
        if let Some(consumed) = entry.consumed_signal {
            for sig in s.signals.entry(lease.id.clone()).or_default() {
                if sig.id == consumed {
                    sig.state = SignalState::Consumed;
                    sig.settled_at = entry.finished_at;
                }
            }
        }
        Ok(())
    }

    async fn suspend(&self, lease: &Lease, sus: Suspension) -> Result<SuspendOutcome, StoreError> {
        let mut s = self.0.lock().unwrap();
        s.fenced(lease)?;
        let matching: Vec<PendingSignal> = s
            .pending(&lease.id)
            .into_iter()
            .filter(|p| sus.waiting_for.contains(&p.name))
            .collect();
        if !matching.is_empty() {
            return Ok(SuspendOutcome::SignalsPending(matching));
        }
        let r = s.fenced(lease)?;
        r.status = Status::Suspended;
        r.owner = None;
        r.wake_at = sus.wake_at;
        r.waiting_for = sus.waiting_for;
        r.parked_at = sus.parked_at;
        r.updated_at = sus.now;
        Ok(SuspendOutcome::Suspended)
    }

    async fn finish(&self, lease: &Lease, how: Finish, now: Timestamp) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        let r = s.fenced(lease)?;
        let notice = how.clone();
        let (kind, detail) = match &how {
            Finish::Completed { .. } => (EventKind::Completed, None),
            Finish::Failed { error } => (EventKind::Failed, Some(error.clone())),
            Finish::Blocked { reason, .. } => (EventKind::Blocked, Some(reason.clone())),
            _ => (EventKind::Cancelled, Some("cancelled by its run".into())),
        };
        match how {
            Finish::Completed { output } => {
                r.status = Status::Completed;
                r.output = Some(output);
            }
            Finish::Failed { error } => {
                r.status = Status::Failed;
                r.error = Some(error);
            }
            Finish::Blocked {
                step,
                reason,
                location,
            } => {
                r.status = Status::Blocked;
                r.error = Some(reason);
                r.blocked_step = step;
                r.parked_at = location.into_iter().collect();
            }
            Finish::Cancelled => r.status = Status::Cancelled,
            _ => unreachable!(),
        }
        if r.status != Status::Blocked {
            r.parked_at.clear();
        }
        r.owner = None;
        r.wake_at = None;
        r.updated_at = now;
        s.event(&lease.id, kind, Some(lease.owner.as_str()), detail, now);
        s.notify_parent(&lease.id, &notice, now);
        Ok(())
    }

    async fn continue_as_new(
        &self,
        lease: &Lease,
        input: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        let r = s.fenced(lease)?;
        if r.cancel_requested {
            return Err(StoreError::CancelRequested(lease.id.clone()));
        }
        s.event(
            &lease.id,
            EventKind::ContinuedAsNew,
            Some(lease.owner.as_str()),
            None,
            now,
        );
        let r = s.record(&lease.id)?;
        let generation = Generation {
            generation: r.generation,
            input: std::mem::replace(&mut r.input, input.to_owned()),
            ended_at: now,
            journal: Vec::new(),
        };
        r.generation += 1;
        r.status = Status::Running;
        r.owner = None;
        r.wake_at = Some(now);
        r.waiting_for.clear();
        r.parked_at.clear();
        r.updated_at = now;
        if s.fault == Some(Fault::ContinueAsNewDropsSignals) {
            s.signals.remove(&lease.id);
        }
        let mut journal = s.journals.remove(&lease.id).unwrap_or_default();
        journal.sort_by_key(|e| e.seq);
        s.history
            .entry(lease.id.clone())
            .or_default()
            .push(Generation {
                journal,
                ..generation
            });
        Ok(())
    }

    async fn renew(
        &self,
        owner: &HostId,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        let mut s = self.0.lock().unwrap();
        let mut n = 0;
        for held in leases.iter().filter(|l| l.owner == *owner) {
            if let Some(r) = s.processes.get_mut(&held.id)
                && r.owner.as_deref() == Some(owner.as_str())
                && r.epoch == held.epoch
                && r.status == Status::Running
            {
                r.wake_at = Some(now + lease);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release(&self, owner: &HostId, now: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.0.lock().unwrap();
        let mut n = 0;
        for r in s.processes.values_mut() {
            if r.owner.as_deref() == Some(owner.as_str()) && r.status == Status::Running {
                r.wake_at = Some(now);
                r.owner = None;
                r.updated_at = now;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn send_signal(
        &self,
        id: &ProcessId,
        signal: NewSignal,
    ) -> Result<SignalSent, StoreError> {
        let NewSignal {
            name,
            payload,
            now,
            message_id,
            traceparent,
        } = signal;
        if let Some(message_id) = &message_id {
            check_message_id(message_id)?;
        }
        let mut s = self.0.lock().unwrap();
        let status = s.record(id)?.status;
        if let Some(message_id) = &message_id
            && s.fault != Some(Fault::MessageIdsIgnored)
        {
            let earlier = s
                .signals
                .get(id)
                .into_iter()
                .flatten()
                .find(|sig| s.message_ids.get(&sig.id) == Some(message_id));
            if let Some(earlier) = earlier {
                return Ok(SignalSent::Duplicate(earlier.id));
            }
        }
        if status.is_finished() {
            let r = s.record(id)?;
            return Err(invalid(r, "signal", "not finished"));
        }
        let stored = s.push_signal(id, &name, &payload, now, traceparent);
        if let Some(message_id) = message_id {
            s.message_ids.insert(stored, message_id.clone());
            if let Some(sig) = s
                .signals
                .get_mut(id)
                .and_then(|sigs| sigs.iter_mut().find(|sig| sig.id == stored))
            {
                sig.message_id = Some(message_id);
            }
        }
        Ok(SignalSent::Stored(stored))
    }

    async fn reject_signal(
        &self,
        lease: &Lease,
        signal: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        s.fenced(lease)?;
        let sig = s
            .signals
            .entry(lease.id.clone())
            .or_default()
            .iter_mut()
            .find(|sig| sig.id == signal && sig.state == SignalState::Pending)
            .ok_or_else(|| StoreError::InvalidInput(format!("signal {signal} is not pending")))?;
        sig.state = SignalState::Rejected;
        sig.settled_at = Some(now);
        sig.reason = Some(reason.to_owned());
        Ok(())
    }

    async fn pending_signals(&self, id: &ProcessId) -> Result<Vec<PendingSignal>, StoreError> {
        Ok(self.0.lock().unwrap().pending(id))
    }

    async fn cancel(&self, id: &ProcessId, now: Timestamp) -> Result<Status, StoreError> {
        let mut s = self.0.lock().unwrap();
        let r = s.record(id)?;
        if r.status.is_finished() {
            return Err(invalid(r, "cancel", "not finished"));
        }
        let after = s.cancel_one(id, now);
        // Descendants by stored parent, breadth first.
        let mut parents = vec![id.clone()];
        while let Some(parent) = parents.pop() {
            let children: Vec<ProcessId> = s
                .processes
                .values()
                .filter(|r| r.parent.as_ref() == Some(&parent))
                .map(|r| r.id.clone())
                .collect();
            for child in children {
                if !s.processes[&child].status.is_finished() {
                    s.cancel_one(&child, now);
                }
                parents.push(child);
            }
        }
        Ok(after)
    }

    async fn retry(&self, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        if s.fault == Some(Fault::EventOfRefusedOperation) {
            s.event(id, EventKind::Retried, None, None, now);
        }
        let r = s.record(id)?;
        if !matches!(r.status, Status::Blocked | Status::Failed) {
            return Err(invalid(r, "retry", "blocked or failed"));
        }
        let from = r.status;
        if s.fault != Some(Fault::EventOfRefusedOperation) {
            s.event(
                id,
                EventKind::Retried,
                None,
                Some(format!("was {from}")),
                now,
            );
        }
        let r = s.record(id)?;
        r.status = Status::Running;
        r.error = None;
        r.blocked_step = None;
        r.parked_at.clear();
        r.wake_at = Some(now);
        r.updated_at = now;
        Ok(())
    }

    async fn get(&self, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
        self.0.lock().unwrap().record(id).map(|r| r.clone())
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        let s = self.0.lock().unwrap();
        Ok(s.processes.values().filter_map(|r| r.wake_at).min())
    }
}

#[async_trait]
impl StoreAdmin for MemoryStore {
    async fn list(&self, f: &ListFilter) -> Result<Vec<Listed>, StoreError> {
        let s = self.0.lock().unwrap();
        let limit = if f.limit == 0 { 100 } else { f.limit };
        let mut rows: Vec<&ProcessRecord> = s
            .processes
            .values()
            .filter(|r| matches(f, r) && f.after.as_ref().is_none_or(|a| &r.id > a))
            .collect();
        let key = |r: &ProcessRecord| -> (i64, String) {
            match f.order.by {
                SortKey::Created => (r.created_at.as_micros(), String::new()),
                SortKey::Updated => (r.updated_at.as_micros(), String::new()),
                SortKey::Kind => (0, r.kind.clone()),
                SortKey::Status => (0, r.status.as_str().to_owned()),
                _ => (0, String::new()),
            }
        };
        rows.sort_by(|a, b| {
            let o = key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id));
            if f.order.descending { o.reverse() } else { o }
        });
        if s.fault == Some(Fault::ListIgnoresOrder) {
            rows.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(rows
            .into_iter()
            .skip(f.offset)
            .take(limit)
            .map(|r| Listed::Process(Box::new(r.clone())))
            .collect())
    }

    async fn count(&self, f: &ListFilter) -> Result<Counts, StoreError> {
        let s = self.0.lock().unwrap();
        let ignore = s.fault == Some(Fault::CountIgnoresFilter);
        let by_status = Status::ALL
            .into_iter()
            .map(|status| StatusCount {
                status,
                count: s
                    .processes
                    .values()
                    .filter(|r| r.status == status && (ignore || matches(f, r)))
                    .count() as u64,
            })
            .filter(|c| c.count > 0)
            .collect();
        Ok(Counts {
            by_status,
            unreadable: 0,
        })
    }

    async fn journal(&self, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError> {
        let mut s = self.0.lock().unwrap();
        s.record(id)?;
        Ok(s.read_journal(id))
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        let s = self.0.lock().unwrap();
        Ok(Counts {
            by_status: Status::ALL
                .into_iter()
                .map(|status| StatusCount {
                    status,
                    count: s.processes.values().filter(|r| r.status == status).count() as u64,
                })
                .filter(|c| c.count > 0)
                .collect(),
            unreadable: 0,
        })
    }

    async fn parked_counts(&self, kind: &str) -> Result<ParkedCounts, StoreError> {
        let s = self.0.lock().unwrap();
        let mut totals: BTreeMap<(SourceLocation, usize), u64> = BTreeMap::new();
        for r in s.processes.values() {
            if r.kind == kind && matches!(r.status, Status::Suspended | Status::Blocked) {
                let rank = Status::ALL.iter().position(|st| *st == r.status).unwrap();
                for at in &r.parked_at {
                    *totals.entry((at.clone(), rank)).or_default() += 1;
                }
            }
        }
        Ok(ParkedCounts {
            by_location: totals
                .into_iter()
                .map(|((location, rank), count)| ParkedCount {
                    location,
                    status: Status::ALL[rank],
                    count,
                })
                .collect(),
            unreadable: 0,
        })
    }

    async fn signals(&self, id: &ProcessId) -> Result<Vec<SignalRecord>, StoreError> {
        let mut s = self.0.lock().unwrap();
        s.record(id)?;
        Ok(s.signals.get(id).cloned().unwrap_or_default())
    }

    async fn discard_signal(
        &self,
        id: &ProcessId,
        signal: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        s.record(id)?;
        let sig = s
            .signals
            .entry(id.clone())
            .or_default()
            .iter_mut()
            .find(|sig| sig.id == signal)
            .ok_or_else(|| StoreError::InvalidInput(format!("no signal {signal}")))?;
        if sig.state != SignalState::Pending {
            return Err(StoreError::InvalidInput(format!(
                "signal {signal} is {}",
                sig.state
            )));
        }
        sig.state = SignalState::Discarded;
        sig.settled_at = Some(now);
        Ok(())
    }

    async fn rewind(&self, id: &ProcessId, step: &str, now: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.0.lock().unwrap();
        let r = s.record(id)?;
        if r.status == Status::Running && r.owner.is_some() && r.wake_at.is_some_and(|w| w > now) {
            return Err(invalid(r, "rewind", "not held by a live host"));
        }
        let journal = s.journals.entry(id.clone()).or_default();
        let Some(seq) = journal.iter().find(|e| e.name == step).map(|e| e.seq) else {
            return Err(StoreError::InvalidInput(format!("no step {step:?}")));
        };
        let dropped: Vec<JournalEntry> = journal.iter().filter(|e| e.seq >= seq).cloned().collect();
        journal.retain(|e| e.seq < seq);
        let keep_consumed = s.fault == Some(Fault::RewindKeepsSignalsConsumed);
        for sig in s.signals.entry(id.clone()).or_default() {
            if !keep_consumed && dropped.iter().any(|e| e.consumed_signal == Some(sig.id)) {
                sig.state = SignalState::Pending;
                sig.settled_at = None;
            }
        }
        let r = s.record(id)?;
        r.status = Status::Running;
        r.owner = None;
        r.epoch += 1;
        r.wake_at = Some(now);
        r.output = None;
        r.error = None;
        r.blocked_step = None;
        r.parked_at.clear();
        r.updated_at = now;
        s.event(
            id,
            EventKind::Rewound,
            None,
            Some(format!("rewound to {step:?}")),
            now,
        );
        Ok(dropped.len() as u64)
    }

    async fn save_sources(&self, sources: &[FunctionSource]) -> Result<(), StoreError> {
        let mut s = self.0.lock().unwrap();
        for src in sources {
            s.sources
                .insert((src.file.clone(), src.name.clone()), src.clone());
        }
        Ok(())
    }

    async fn sources(&self) -> Result<Vec<FunctionSource>, StoreError> {
        let s = self.0.lock().unwrap();
        let mut all: Vec<FunctionSource> = s.sources.values().cloned().collect();
        all.sort_by(|a, b| (&a.file, a.first_line).cmp(&(&b.file, b.first_line)));
        Ok(all)
    }

    async fn save_subscription(&self, report: &SubscriptionReport) -> Result<(), StoreError> {
        check_subscription_report(report)?;
        let mut s = self.0.lock().unwrap();
        let key = (report.name.clone(), report.host.clone());
        let newer_stored = s.subscriptions.get(&key).is_some_and(|stored| {
            s.fault != Some(Fault::LateSubscriptionReportWins)
                && stored.updated_at > report.updated_at
        });
        if !newer_stored {
            s.subscriptions.insert(key, report.clone());
        }
        Ok(())
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionReport>, StoreError> {
        let s = self.0.lock().unwrap();
        Ok(s.subscriptions.values().cloned().collect())
    }

    async fn history(&self, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
        let mut s = self.0.lock().unwrap();
        s.record(id)?;
        Ok(s.history.get(id).cloned().unwrap_or_default())
    }

    async fn events(&self, id: &ProcessId) -> Result<Vec<ProcessEvent>, StoreError> {
        let mut s = self.0.lock().unwrap();
        s.record(id)?;
        Ok(s.events.get(id).cloned().unwrap_or_default())
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.0.lock().unwrap();
        let any_status = s.fault == Some(Fault::PurgeIgnoresStatus);
        let any_age = s.fault == Some(Fault::PurgeIgnoresAge);
        let old: Vec<ProcessId> = s
            .processes
            .values()
            .filter(|r| {
                (any_status || r.status.is_finished()) && (any_age || r.updated_at < before)
            })
            .map(|r| r.id.clone())
            .collect();
        for id in &old {
            s.processes.remove(id);
            s.journals.remove(id);
            s.signals.remove(id);
            s.history.remove(id);
            s.events.remove(id);
        }
        Ok(old.len() as u64)
    }
}

async fn memory_store() -> (Arc<dyn Backend>, ()) {
    (Arc::new(MemoryStore::default()), ())
}

steadfast_conformance::conformance_tests!(memory_store);

#[test]
fn checks_are_listed() {
    assert!(
        steadfast_conformance::CHECKS.contains(&"claim::expired_lease_is_taken_over_and_fenced")
    );
    assert_eq!(steadfast_conformance::CHECKS.len(), 67);
}

/// Asserts that the reference store broken by `fault` fails the check
/// `name` (which the correct store passes, see the generated tests above).
fn assert_caught(fault: Fault, name: &str) {
    let broken = move || async move {
        let store = MemoryStore::default();
        store.0.lock().unwrap().fault = Some(fault);
        (Arc::new(store) as Arc<dyn Backend>, ())
    };
    let verdict = steadfast_conformance::check_outcome(broken, name);
    assert!(
        verdict.is_err(),
        "{name} passed against a store with {fault:?}: the check cannot catch that bug"
    );
    assert_eq!(
        steadfast_conformance::check_outcome(memory_store, name),
        Ok(()),
        "{name} must pass against the correct reference store"
    );
}

#[test]
fn broken_fencing_is_caught() {
    assert_caught(
        Fault::NoFencing,
        "claim::expired_lease_is_taken_over_and_fenced",
    );
}

#[test]
fn claim_ignoring_the_lease_is_caught() {
    assert_caught(
        Fault::ClaimIgnoresLease,
        "claim::claimed_process_is_not_claimed_again_before_expiry",
    );
}

#[test]
fn journal_out_of_order_is_caught() {
    assert_caught(
        Fault::JournalOutOfOrder,
        "journal::scheduled_entry_is_completed_in_place",
    );
    assert_caught(
        Fault::JournalOutOfOrder,
        "claim::claim_returns_journal_and_signals_in_order",
    );
}

#[test]
fn rewind_keeping_signals_consumed_is_caught() {
    assert_caught(
        Fault::RewindKeepsSignalsConsumed,
        "tools::rewind_drops_later_entries_and_returns_signals",
    );
}

#[test]
fn purge_ignoring_status_or_age_is_caught() {
    for fault in [Fault::PurgeIgnoresStatus, Fault::PurgeIgnoresAge] {
        assert_caught(fault, "tools::purge_deletes_only_old_finished_processes");
    }
}

#[test]
fn continue_as_new_dropping_signals_is_caught() {
    assert_caught(
        Fault::ContinueAsNewDropsSignals,
        "tools::continue_as_new_keeps_history",
    );
}

#[test]
fn lax_consumed_signal_read_back_is_caught() {
    assert_caught(
        Fault::LaxConsumedSignal,
        "journal::entries_round_trip_every_field",
    );
}

#[test]
fn late_subscription_report_winning_is_caught() {
    assert_caught(
        Fault::LateSubscriptionReportWins,
        "tools::subscription_reports_are_kept_per_name_and_host",
    );
}

#[test]
fn ignoring_message_ids_is_caught() {
    assert_caught(
        Fault::MessageIdsIgnored,
        "signals::redelivered_message_is_not_stored_twice",
    );
}

#[test]
fn dropping_trace_context_is_caught() {
    assert_caught(
        Fault::TraceContextDropped,
        "signals::trace_context_round_trips",
    );
}

#[test]
fn every_check_can_be_found_by_name() {
    for name in steadfast_conformance::CHECKS {
        assert!(steadfast_conformance::find_check(name).is_some(), "{name}");
    }
    assert!(steadfast_conformance::find_check("claim::no_such_check").is_none());
}

#[test]
fn history_entries_of_refused_operations_are_caught() {
    assert_caught(
        Fault::EventOfRefusedOperation,
        "events::refused_operations_record_nothing",
    );
}

#[test]
fn spawns_that_take_over_a_stored_process_are_caught() {
    assert_caught(
        Fault::SpawnAndClaimTakesExisting,
        "spawn::spawn_and_claim_leases_a_new_process_to_its_spawner",
    );
}

#[test]
fn claims_missing_from_the_history_are_caught() {
    assert_caught(
        Fault::ClaimNotRecorded,
        "events::each_operation_records_its_event",
    );
}

#[test]
fn lists_ignoring_the_order_are_caught() {
    assert_caught(
        Fault::ListIgnoresOrder,
        "lists::list_sorts_by_each_key_both_ways",
    );
}

#[test]
fn counts_ignoring_the_filter_are_caught() {
    assert_caught(
        Fault::CountIgnoresFilter,
        "lists::count_follows_every_filter",
    );
}
