//! `reject_signal`, `discard_signal` and `signals`: what becomes of a
//! signal besides being consumed, and how tools see every signal.

use steadfast_core::{
    Lease, PendingSignal, SignalRecord, SignalState, StoreError, SuspendOutcome, Suspension,
};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, T0, append, at, claim_one, get, host, pid, spawn, spawn_claimed,
    wait_consuming,
};

async fn signals(store: &DynStore, id: &str) -> Vec<SignalRecord> {
    store.signals(&pid(id)).await.expect("signals")
}

async fn send(store: &DynStore, id: &str, name: &str, payload: &str, secs: u64) -> i64 {
    store
        .signal(&pid(id), name, payload, at(secs))
        .await
        .expect("signal")
}

fn state_of(list: &[SignalRecord], signal: i64) -> SignalState {
    list.iter()
        .find(|s| s.id == signal)
        .map(|s| s.state)
        .unwrap_or_else(|| panic!("signal {signal} missing from {list:?}"))
}

/// A rejected signal is kept with its payload, reason and time, is no
/// longer pending (not returned by `pending_signals`, `claim` or a
/// `suspend` that waits for its name), and cannot be rejected or consumed
/// again; the signals after it are unaffected.
pub async fn rejected_signal_is_kept_and_never_handed_out(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let bad = send(&store, "p", "go", "null", 1).await;
    let good = send(&store, "p", "go", "{\"ok\":true}", 2).await;
    store
        .reject_signal(&lease, bad, "does not decode into Verification", at(3))
        .await
        .expect("reject_signal");

    let listed = signals(&store, "p").await;
    assert_eq!(
        listed,
        vec![
            SignalRecord {
                id: bad,
                name: "go".to_owned(),
                payload: "null".to_owned(),
                sent_at: at(1),
                state: SignalState::Rejected,
                settled_at: Some(at(3)),
                reason: Some("does not decode into Verification".to_owned()),
                traceparent: None,
                message_id: None,
            },
            SignalRecord {
                id: good,
                name: "go".to_owned(),
                payload: "{\"ok\":true}".to_owned(),
                sent_at: at(2),
                state: SignalState::Pending,
                settled_at: None,
                reason: None,
                traceparent: None,
                message_id: None,
            },
        ],
        "signals lists the rejected signal with its reason beside the pending one"
    );
    let pending: Vec<i64> = store
        .pending_signals(&pid("p"))
        .await
        .expect("pending_signals")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(pending, vec![good], "a rejected signal is not pending");

    let outcome = store
        .suspend(
            &lease,
            Suspension {
                wake_at: None,
                waiting_for: vec!["go".to_owned()],
                parked_at: Vec::new(),
                now: at(4),
            },
        )
        .await
        .expect("suspend");
    let handed: Vec<i64> = match outcome {
        SuspendOutcome::SignalsPending(list) => list.iter().map(|s: &PendingSignal| s.id).collect(),
        other => panic!("the good signal is pending, so suspend must hand it back: {other:?}"),
    };
    assert_eq!(
        handed,
        vec![good],
        "suspend hands back only the pending signal"
    );

    let again = store.reject_signal(&lease, bad, "twice", at(5)).await;
    assert_err!(
        again,
        StoreError::InvalidInput(_),
        "rejecting a signal that is no longer pending"
    );
    let mut consume = wait_consuming(0, "w", at(5), bad);
    consume.outcome = Some("null".to_owned());
    let consumed = store.append(&lease, consume).await;
    assert_err!(
        consumed,
        StoreError::InvalidInput(_),
        "a wait cannot consume a rejected signal"
    );
    append(&store, &lease, wait_consuming(0, "w", at(6), good)).await;
    let listed = signals(&store, "p").await;
    assert_eq!(state_of(&listed, bad), SignalState::Rejected);
    assert_eq!(state_of(&listed, good), SignalState::Consumed);
    assert_eq!(
        listed
            .iter()
            .find(|s| s.id == bad)
            .and_then(|s| s.reason.clone()),
        Some("does not decode into Verification".to_owned()),
        "a failed second rejection keeps the first reason"
    );
}

/// A rejection is a write under the lease: a stale lease is fenced and the
/// signal stays pending; a signal of another process cannot be rejected.
pub async fn reject_signal_is_fenced(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    // Spawned after the takeover below, so that claim takes "p".
    spawn(&store, "other", at(1000)).await;
    let sig = send(&store, "p", "go", "null", 1).await;
    let theirs = send(&store, "other", "go", "null", 1).await;
    let taken = claim_one(&store, "p", &host("b"), T0 + LEASE + LEASE).await;
    let stale = store.reject_signal(&lease, sig, "late", at(100)).await;
    assert_err!(
        stale,
        StoreError::Fenced { .. },
        "a rejection under a lease that was taken over"
    );
    assert_eq!(
        state_of(&signals(&store, "p").await, sig),
        SignalState::Pending,
        "a fenced rejection changes nothing"
    );
    let foreign = store
        .reject_signal(&taken.lease, theirs, "not mine", at(100))
        .await;
    assert_err!(
        foreign,
        StoreError::InvalidInput(_),
        "rejecting another process's signal"
    );
    assert_eq!(
        state_of(&signals(&store, "other").await, theirs),
        SignalState::Pending
    );
    let wrong = Lease {
        epoch: taken.lease.epoch + 1,
        ..taken.lease.clone()
    };
    assert_err!(
        store.reject_signal(&wrong, sig, "x", at(100)).await,
        StoreError::Fenced { .. },
        "a rejection with an epoch the store never gave"
    );
}

/// Discarding settles only a pending signal of that process and changes
/// nothing else; unknown processes are `NotFound`, unknown or settled
/// signals `InvalidInput`.
pub async fn discard_signal_settles_only_pending_signals(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    spawn(&store, "other", T0).await;
    let first = send(&store, "p", "go", "1", 1).await;
    let second = send(&store, "p", "go", "2", 2).await;
    let consumed = send(&store, "p", "go", "3", 3).await;
    let theirs = send(&store, "other", "go", "4", 3).await;
    append(&store, &lease, wait_consuming(0, "w", at(4), consumed)).await;

    let before = get(&store, "p").await;
    store
        .discard_signal(&pid("p"), first, at(5))
        .await
        .expect("discard_signal");
    assert_eq!(
        get(&store, "p").await,
        before,
        "discarding a signal changes nothing of the process"
    );
    let listed = signals(&store, "p").await;
    let discarded = listed.iter().find(|s| s.id == first).expect("listed");
    assert_eq!(discarded.state, SignalState::Discarded);
    assert_eq!(discarded.settled_at, Some(at(5)));
    assert_eq!(state_of(&listed, second), SignalState::Pending);
    let pending: Vec<i64> = store
        .pending_signals(&pid("p"))
        .await
        .expect("pending_signals")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(pending, vec![second], "a discarded signal is not pending");

    for (signal, why) in [
        (first, "an already discarded signal"),
        (consumed, "a consumed signal"),
        (theirs, "another process's signal"),
        (999_999, "an unknown signal id"),
    ] {
        assert_err!(
            store.discard_signal(&pid("p"), signal, at(6)).await,
            StoreError::InvalidInput(_),
            "discarding {why}"
        );
    }
    assert_eq!(
        state_of(&signals(&store, "other").await, theirs),
        SignalState::Pending
    );
    assert_err!(
        store.discard_signal(&pid("ghost"), first, at(6)).await,
        StoreError::NotFound(_),
        "discarding a signal of an unknown process"
    );
    assert_err!(
        store.signals(&pid("ghost")).await,
        StoreError::NotFound(_),
        "listing the signals of an unknown process"
    );
    assert!(
        signals(&store, "other").await.len() == 1,
        "signals lists only that process's signals"
    );
}
