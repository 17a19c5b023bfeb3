//! Small helpers the checks share: fixed timestamps, ids, entries, and
//! "spawn and claim" shortcuts that assert each step went as expected.

use std::sync::Arc;
use std::time::Duration;

use steadfast_core::{
    Backend, Claimed, EntryKind, EntryStatus, Finish, HostId, JournalEntry, Lease, NewProcess,
    ProcessId, ProcessRecord, SourceLocation, SpawnOutcome, Status, SuspendOutcome, Suspension,
    Timestamp,
};

/// The store every check receives.
pub type DynStore = Arc<dyn Backend>;

/// The base instant of every check: 2027-01-15, far from the wall clock's
/// "now" only in that it never changes.
pub const T0: Timestamp = Timestamp::from_micros(1_800_000_000_000_000);

/// The lease length the checks claim with unless they need another.
pub const LEASE: Duration = Duration::from_secs(30);

/// The default kind of spawned processes.
pub const KIND: &str = "conformance";

/// `T0` plus whole seconds.
pub fn at(secs: u64) -> Timestamp {
    T0 + Duration::from_secs(secs)
}

/// `T0` plus microseconds.
pub fn at_micros(micros: u64) -> Timestamp {
    T0 + Duration::from_micros(micros)
}

/// A process id; panics on an invalid one.
pub fn pid(id: &str) -> ProcessId {
    ProcessId::new(id).expect("the suite only uses valid process ids")
}

/// A host id.
pub fn host(name: &str) -> HostId {
    HostId::new(name)
}

/// A spawn request of kind [`KIND`] with input `{}`.
pub fn new_process(id: &str, now: Timestamp) -> NewProcess {
    NewProcess {
        id: pid(id),
        kind: KIND.to_owned(),
        version: 1,
        input: "{}".to_owned(),
        now,
        parent: None,
        traceparent: None,
    }
}

/// Spawns `id` at `now` and asserts it was created.
pub async fn spawn(store: &DynStore, id: &str, now: Timestamp) {
    let outcome = store
        .spawn(new_process(id, now))
        .await
        .expect("spawning a fresh process");
    assert_eq!(
        outcome,
        SpawnOutcome::Created,
        "spawn of the new id {id:?} must return Created"
    );
}

/// Claims with `limit` and returns the claimed ids in the order returned.
pub async fn claim_ids(
    store: &DynStore,
    owner: &HostId,
    now: Timestamp,
    limit: usize,
) -> Vec<String> {
    store
        .claim(owner, now, LEASE, limit)
        .await
        .expect("claim")
        .into_iter()
        .map(|c| c.record.id.as_str().to_owned())
        .collect()
}

/// Claims exactly one process at `now` and asserts it is `id`.
///
/// The check must make sure no other process is due earlier.
pub async fn claim_one(store: &DynStore, id: &str, owner: &HostId, now: Timestamp) -> Claimed {
    let mut claimed = store
        .claim(owner, now, LEASE, 1)
        .await
        .expect("claim of a single process");
    assert_eq!(
        claimed.len(),
        1,
        "claim at {now} must return the due process {id:?}, got {claimed:?}"
    );
    let claimed = claimed.remove(0);
    assert_eq!(
        claimed.record.id.as_str(),
        id,
        "claim at {now} returned the wrong process"
    );
    claimed
}

/// Spawns `id` at `now` and claims it as `owner` at the same instant.
pub async fn spawn_claimed(store: &DynStore, id: &str, owner: &HostId, now: Timestamp) -> Claimed {
    spawn(store, id, now).await;
    claim_one(store, id, owner, now).await
}

/// Asserts that nothing is claimable at `now`, without claiming anything
/// that is (the claim uses a throwaway owner and the assertion fails then).
pub async fn assert_nothing_claimable(store: &DynStore, now: Timestamp, why: &str) {
    let claimed = claim_ids(store, &host("probe"), now, 100).await;
    assert!(
        claimed.is_empty(),
        "{why}: nothing may be claimable at {now}, but claim returned {claimed:?}"
    );
}

/// A completed step entry with a JSON outcome and no location.
pub fn step(seq: i64, name: &str, started_at: Timestamp) -> JournalEntry {
    JournalEntry {
        seq,
        name: name.to_owned(),
        kind: EntryKind::Step,
        status: EntryStatus::Completed,
        outcome: Some(format!("{{\"step\":{seq}}}")),
        attempts: 1,
        started_at,
        finished_at: Some(started_at + Duration::from_millis(5)),
        due_at: None,
        location: Some(SourceLocation {
            file: "src/conformance.rs".to_owned(),
            line: 42,
        }),
        consumed_signal: None,
    }
}

/// A scheduled timer entry due at `due_at`.
pub fn timer(seq: i64, name: &str, started_at: Timestamp, due_at: Timestamp) -> JournalEntry {
    JournalEntry {
        seq,
        name: name.to_owned(),
        kind: EntryKind::Timer,
        status: EntryStatus::Scheduled,
        outcome: None,
        attempts: 0,
        started_at,
        finished_at: None,
        due_at: Some(due_at),
        location: None,
        consumed_signal: None,
    }
}

/// A completed wait entry that consumed `signal` with `payload` as outcome.
pub fn wait_consuming(seq: i64, name: &str, now: Timestamp, signal: i64) -> JournalEntry {
    JournalEntry {
        seq,
        name: name.to_owned(),
        kind: EntryKind::Wait,
        status: EntryStatus::Completed,
        outcome: Some("\"consumed\"".to_owned()),
        attempts: 0,
        started_at: now,
        finished_at: Some(now),
        due_at: None,
        location: None,
        consumed_signal: Some(signal),
    }
}

/// Appends and asserts success.
pub async fn append(store: &DynStore, lease: &Lease, entry: JournalEntry) {
    let name = entry.name.clone();
    store
        .append(lease, entry)
        .await
        .unwrap_or_else(|e| panic!("append of {name:?} under the live lease failed: {e:?}"));
}

/// Suspends and asserts the process was unloaded.
pub async fn suspend(
    store: &DynStore,
    lease: &Lease,
    wake_at: Option<Timestamp>,
    waiting_for: &[&str],
    now: Timestamp,
) {
    let outcome = store
        .suspend(
            lease,
            Suspension {
                wake_at,
                waiting_for: waiting_for.iter().map(|s| (*s).to_owned()).collect(),
                parked_at: Vec::new(),
                now,
            },
        )
        .await
        .expect("suspend under the live lease");
    assert_eq!(
        outcome,
        SuspendOutcome::Suspended,
        "suspend of {:?} with no matching pending signal must return Suspended",
        lease.id
    );
}

/// Finishes and asserts success.
pub async fn finish(store: &DynStore, lease: &Lease, how: Finish, now: Timestamp) {
    store
        .finish(lease, how.clone(), now)
        .await
        .unwrap_or_else(|e| panic!("finish({how:?}) of {:?} failed: {e:?}", lease.id));
}

/// Spawns `id`, claims it and finishes it with `how`.
pub async fn spawn_finished(store: &DynStore, id: &str, how: Finish, now: Timestamp) {
    let claimed = spawn_claimed(store, id, &host("finisher"), now).await;
    finish(store, &claimed.lease, how, now).await;
}

/// Reads a process and panics when that fails.
pub async fn get(store: &DynStore, id: &str) -> ProcessRecord {
    store
        .get(&pid(id))
        .await
        .unwrap_or_else(|e| panic!("get({id:?}) failed: {e:?}"))
}

/// Reads a process's journal and panics when that fails.
pub async fn journal(store: &DynStore, id: &str) -> Vec<JournalEntry> {
    store
        .journal(&pid(id))
        .await
        .unwrap_or_else(|e| panic!("journal({id:?}) failed: {e:?}"))
}

/// Asserts a process's status.
pub async fn assert_status(store: &DynStore, id: &str, status: Status, why: &str) {
    let record = get(store, id).await;
    assert_eq!(
        record.status, status,
        "{why}: status of {id:?} ({record:?})"
    );
}

/// A completed outcome with `output`.
pub fn completed(output: &str) -> Finish {
    Finish::Completed {
        output: output.to_owned(),
    }
}

/// Asserts that `$result` is `Err` matching `$pattern`, with a context message.
#[macro_export]
#[doc(hidden)]
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)?, $($context:tt)+) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!(
                "{}: expected Err({}), got {:?}",
                format_args!($($context)+),
                stringify!($pattern),
                other
            ),
        }
    };
}
