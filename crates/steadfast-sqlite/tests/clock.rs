//! The machine's clock is stepped (NTP, a VM resuming) by ±60 s while
//! processes are leased and waiting: the store decides with its monotonic
//! clock, so a live lease never looks expired, a timer never comes due
//! early, and work due before the step stays due.

use std::time::Duration;

use steadfast_core::{Clock, HostId, NewProcess, OffsetClock, ProcessId, Store, Suspension};
use steadfast_sqlite::SqliteStore;

const LEASE: Duration = Duration::from_secs(30);
const STEP: i64 = 60_000_000;

fn process(id: &str, clock: &OffsetClock) -> NewProcess {
    NewProcess {
        id: ProcessId::new(id).expect("valid id"),
        kind: "k".to_owned(),
        version: 1,
        input: "{}".to_owned(),
        now: clock.now(),
        parent: None,
        traceparent: None,
    }
}

async fn open() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("clock.db"))
        .await
        .expect("open");
    (store, dir)
}

#[tokio::test]
async fn a_clock_stepped_forward_60s_expires_no_live_lease_and_fires_no_timer() {
    let (store, _dir) = open().await;
    let clock = OffsetClock::default();
    let (a, b) = (HostId::new("a"), HostId::new("b"));
    store.spawn(process("leased", &clock)).await.expect("spawn");
    store
        .spawn(process("sleeper", &clock))
        .await
        .expect("spawn");
    let claimed = store
        .claim(&a, clock.now(), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let sleeper = claimed
        .iter()
        .find(|c| c.record.id.as_str() == "sleeper")
        .expect("the sleeper was claimed");
    // Sleeps ten seconds by the host's clock.
    let now = clock.now();
    store
        .suspend(
            &sleeper.lease,
            Suspension {
                wake_at: Some(now + Duration::from_secs(10)),
                waiting_for: Vec::new(),
                parked_at: Vec::new(),
                now,
            },
        )
        .await
        .expect("suspend");

    clock.set_offset_micros(STEP);
    let taken = store
        .claim(&b, clock.now(), LEASE, 10)
        .await
        .expect("claim after the step");
    assert!(
        taken.is_empty(),
        "after the clock stepped 60 s forward another host took {:?}",
        taken
            .iter()
            .map(|c| c.record.id.as_str())
            .collect::<Vec<_>>()
    );
    let leased = claimed
        .iter()
        .find(|c| c.record.id.as_str() == "leased")
        .expect("leased");
    assert_eq!(
        store
            .renew(&a, std::slice::from_ref(&leased.lease), clock.now(), LEASE)
            .await
            .expect("renew"),
        1,
        "the holder still renews its lease"
    );
}

#[tokio::test]
async fn a_clock_stepped_back_60s_keeps_due_work_due_and_leases_as_long() {
    let (store, _dir) = open().await;
    let clock = OffsetClock::default();
    let (a, b) = (HostId::new("a"), HostId::new("b"));
    store.spawn(process("due", &clock)).await.expect("spawn");
    store.spawn(process("leased", &clock)).await.expect("spawn");
    let leased = store
        .claim(&a, clock.now(), LEASE, 1)
        .await
        .expect("claim")
        .pop()
        .expect("one process is due");

    clock.set_offset_micros(-STEP);
    // Renewed after the step back: the lease lasts LEASE from now, not
    // LEASE minus 60 s (which would have ended already).
    assert_eq!(
        store
            .renew(&a, std::slice::from_ref(&leased.lease), clock.now(), LEASE)
            .await
            .expect("renew"),
        1
    );
    // Work due before the step is still due (not 60 s later), and the
    // renewed lease is still live for another host's claim.
    let taken = store
        .claim(&b, clock.now(), LEASE, 10)
        .await
        .expect("claim after the step");
    let ids: Vec<&str> = taken.iter().map(|c| c.record.id.as_str()).collect();
    let other = if leased.record.id.as_str() == "due" {
        "leased"
    } else {
        "due"
    };
    assert_eq!(
        ids,
        vec![other],
        "after a step back only the unleased process is claimed"
    );
}
