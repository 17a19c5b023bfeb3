//! `claim`: which processes are due, in what order, the lease it grants and
//! fencing of a lease that expired and was taken over.

use std::time::Duration;

use steadfast_core::{Finish, Lease, Status, StoreError, Suspension};

use crate::fixture::{
    DynStore, LEASE, T0, append, assert_nothing_claimable, at, at_micros, claim_ids, claim_one,
    get, host, journal, pid, spawn, spawn_claimed, step, timer,
};

/// Only processes with `wake_at <= now` are claimed, earliest `wake_at`
/// first (not in id or insertion order).
pub async fn claims_only_due_processes_earliest_first(store: DynStore) {
    spawn(&store, "a", at(10)).await;
    spawn(&store, "b", at(5)).await;
    spawn(&store, "c", at(20)).await;
    spawn(&store, "d", at(7)).await;

    assert_nothing_claimable(&store, at(4), "every process wakes at 5s or later").await;
    let first = claim_ids(&store, &host("h"), at(10), 10).await;
    assert_eq!(
        first,
        ["b", "d", "a"],
        "claim at 10s must return exactly the processes due by then, earliest wake_at first"
    );
    assert_nothing_claimable(&store, at(19), "only c (due at 20s) is left unclaimed").await;
    let second = claim_ids(&store, &host("h"), at(20), 10).await;
    assert_eq!(second, ["c"], "c is due at exactly its wake_at");
}

/// At most `limit` processes are claimed per call, the earliest ones.
pub async fn claim_respects_limit(store: DynStore) {
    for i in 0..5u64 {
        // Spawned in reverse so that insertion order differs from wake order.
        spawn(&store, &format!("p{}", 4 - i), at_micros(4 - i)).await;
    }
    let owner = host("h");
    assert_eq!(
        claim_ids(&store, &owner, at(1), 2).await,
        ["p0", "p1"],
        "first page"
    );
    assert_eq!(
        claim_ids(&store, &owner, at(1), 2).await,
        ["p2", "p3"],
        "second page"
    );
    assert_eq!(
        claim_ids(&store, &owner, at(1), 10).await,
        ["p4"],
        "the rest"
    );
    assert!(
        claim_ids(&store, &owner, at(1), 10).await.is_empty(),
        "every process is leased"
    );
}

/// A claim sets owner, `epoch + 1`, status running and
/// `wake_at = now + lease`, and returns a matching lease and record.
pub async fn claim_sets_lease_fields(store: DynStore) {
    spawn(&store, "p", T0).await;
    let owner = host("host-a");
    let now = at(3);
    let lease = Duration::from_secs(45);
    let mut claimed = store.claim(&owner, now, lease, 5).await.expect("claim");
    assert_eq!(claimed.len(), 1, "exactly one process is due: {claimed:?}");
    let claimed = claimed.remove(0);

    assert_eq!(
        claimed.lease,
        Lease {
            id: pid("p"),
            owner: owner.clone(),
            epoch: 1
        },
        "the lease names the process, the owner and the new epoch"
    );
    let record = &claimed.record;
    assert_eq!(record.owner.as_deref(), Some("host-a"), "owner");
    assert_eq!(record.epoch, 1, "the first claim moves epoch from 0 to 1");
    assert_eq!(record.status, Status::Running, "status");
    assert_eq!(
        record.wake_at,
        Some(now + lease),
        "wake_at is the lease expiry"
    );
    assert_eq!(record.updated_at, now, "updated_at is the claim's now");
    assert_eq!(record.created_at, T0, "created_at is unchanged");
    assert_eq!(
        &get(&store, "p").await,
        record,
        "the returned record is the stored row after the claim"
    );
    assert!(
        claimed.journal.is_empty() && claimed.signals.is_empty(),
        "{claimed:?}"
    );
}

/// A leased process is not claimed again, by anyone, before the lease
/// expires; at the expiry instant another host takes it with `epoch + 1`.
pub async fn claimed_process_is_not_claimed_again_before_expiry(store: DynStore) {
    let first = spawn_claimed(&store, "p", &host("a"), T0).await;
    let expiry = T0 + LEASE;
    for (who, now) in [
        ("a", T0),
        ("a", at(29)),
        ("b", at(1)),
        ("b", expiry - Duration::from_micros(1)),
    ] {
        let got = claim_ids(&store, &host(who), now, 10).await;
        assert!(
            got.is_empty(),
            "host {who} claimed {got:?} at {now}, before the lease (until {expiry}) expired"
        );
    }
    let second = claim_one(&store, "p", &host("b"), expiry).await;
    assert_eq!(
        second.lease.epoch,
        first.lease.epoch + 1,
        "a takeover bumps the epoch"
    );
    assert_eq!(
        second.record.owner.as_deref(),
        Some("b"),
        "the new owner is recorded"
    );
}

/// After a takeover, every write under the old lease fails with `Fenced`
/// (carrying the stale epoch) and changes nothing, while the new lease works.
pub async fn expired_lease_is_taken_over_and_fenced(store: DynStore) {
    let old = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    append(&store, &old, step(0, "before", T0)).await;
    let takeover = T0 + LEASE;
    let new = claim_one(&store, "p", &host("b"), takeover).await;
    assert_eq!(new.lease.epoch, 2, "second claim has epoch 2");
    assert_eq!(
        new.journal
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["before"],
        "the new owner sees the old owner's acknowledged entry"
    );
    let after_takeover = get(&store, "p").await;

    let fenced = |result: Result<String, StoreError>, what: &str| match result {
        Err(StoreError::Fenced { id, epoch }) => {
            assert_eq!(id, pid("p"), "{what}: Fenced names the process");
            assert_eq!(epoch, old.epoch, "{what}: Fenced carries the stale epoch");
        }
        other => panic!("{what} under the taken-over lease must fail with Fenced, got {other:?}"),
    };
    let later = takeover + Duration::from_secs(1);
    fenced(
        store
            .append(&old, step(1, "stale", later))
            .await
            .map(|()| "appended".to_owned()),
        "append",
    );
    fenced(
        store
            .suspend(
                &old,
                Suspension {
                    wake_at: Some(later),
                    waiting_for: vec![],
                    parked_at: Vec::new(),
                    now: later,
                },
            )
            .await
            .map(|o| format!("{o:?}")),
        "suspend",
    );
    fenced(
        store
            .finish(
                &old,
                Finish::Failed {
                    error: "stale".to_owned(),
                },
                later,
            )
            .await
            .map(|()| "finished".to_owned()),
        "finish",
    );
    assert_eq!(
        get(&store, "p").await,
        after_takeover,
        "fenced writes must not change the process"
    );
    assert_eq!(
        journal(&store, "p").await.len(),
        1,
        "a fenced append writes no entry"
    );

    append(&store, &new.lease, step(1, "fresh", later)).await;
    store
        .finish(
            &new.lease,
            Finish::Completed {
                output: "1".to_owned(),
            },
            later,
        )
        .await
        .expect("finish under the current lease");
    assert_eq!(
        get(&store, "p").await.status,
        Status::Completed,
        "the new lease finished it"
    );
}

/// A claim returns the journal in `seq` order (not insertion or name order)
/// and the unconsumed signals in send order (not `sent_at` or name order).
pub async fn claim_returns_journal_and_signals_in_order(store: DynStore) {
    let first = spawn_claimed(&store, "p", &host("a"), T0).await;
    // Concurrent steps complete out of order: seq 2 is acknowledged first.
    append(&store, &first.lease, step(2, "alpha", at(1))).await;
    append(&store, &first.lease, step(0, "zulu", at(1))).await;
    append(&store, &first.lease, timer(3, "bravo", at(1), at(100))).await;
    append(&store, &first.lease, step(1, "mike", at(1))).await;

    let id = pid("p");
    let s1 = store.signal(&id, "zz", "1", at(5)).await.expect("signal 1");
    let s2 = store.signal(&id, "aa", "2", at(3)).await.expect("signal 2");
    let s3 = store.signal(&id, "zz", "3", at(4)).await.expect("signal 3");
    assert!(
        s1 < s2 && s2 < s3,
        "signal ids increase in send order: {s1}, {s2}, {s3}"
    );

    let second = claim_one(&store, "p", &host("b"), T0 + LEASE).await;
    let seqs: Vec<(i64, &str)> = second
        .journal
        .iter()
        .map(|e| (e.seq, e.name.as_str()))
        .collect();
    assert_eq!(
        seqs,
        [(0, "zulu"), (1, "mike"), (2, "alpha"), (3, "bravo")],
        "claim returns the journal in seq order"
    );
    let signals: Vec<(i64, &str, &str)> = second
        .signals
        .iter()
        .map(|s| (s.id, s.name.as_str(), s.payload.as_str()))
        .collect();
    assert_eq!(
        signals,
        [(s1, "zz", "1"), (s2, "aa", "2"), (s3, "zz", "3")],
        "claim returns the pending signals in send order"
    );
}
