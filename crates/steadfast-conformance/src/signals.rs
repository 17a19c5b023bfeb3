//! `signal`, `pending_signals` and `suspend`: unloading a process, waking it
//! with a signal or its timer, and handing pending signals back.

use steadfast_core::{
    Finish, NewProcess, NewSignal, PendingSignal, SignalSent, Status, StoreError, SuspendOutcome,
    Suspension,
};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, T0, append, assert_nothing_claimable, at, claim_one, completed, finish, get,
    host, new_process, pid, spawn, spawn_claimed, spawn_finished, suspend, wait_consuming,
};

/// Signalling an unknown id fails with `NotFound` naming it.
pub async fn signal_unknown_process_is_not_found(store: DynStore) {
    let result = store.signal(&pid("ghost"), "go", "{}", T0).await;
    assert_err!(
        result,
        StoreError::NotFound(ref id) if *id == pid("ghost"),
        "signal to an unknown process"
    );
}

/// Signalling a completed, failed or cancelled process fails with
/// `InvalidState` and stores nothing.
pub async fn signal_finished_process_is_invalid_state(store: DynStore) {
    let cases = [
        ("completed", completed("1"), Status::Completed),
        (
            "failed",
            Finish::Failed {
                error: "e".to_owned(),
            },
            Status::Failed,
        ),
        ("cancelled", Finish::Cancelled, Status::Cancelled),
    ];
    for (id, how, status) in cases {
        spawn_finished(&store, id, how, T0).await;
        let result = store.signal(&pid(id), "go", "{}", at(1)).await;
        assert_err!(
            result,
            StoreError::InvalidState { status: s, .. } if s == status,
            "signal to a {id} process must fail with InvalidState({status})"
        );
        let pending = store
            .pending_signals(&pid(id))
            .await
            .expect("pending_signals");
        assert!(
            pending.is_empty(),
            "a rejected signal is not stored: {pending:?}"
        );
    }
}

/// A signal sent by a message is stored once per process and message id:
/// sending it again (a broker's re-delivery) stores nothing and returns the
/// first signal's id — also once the process has finished — while the same
/// message id may still signal another process. A bad message id is
/// refused and stores nothing; an unknown process is `NotFound`.
pub async fn redelivered_message_is_not_stored_twice(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    spawn(&store, "q", T0).await;
    let send = |id: &'static str, payload: &'static str, secs: u64, message: &'static str| {
        let store = store.clone();
        async move {
            store
                .signal_message(&pid(id), "paid", payload, at(secs), message)
                .await
        }
    };
    let first = match send("p", "1", 1, "m-1").await {
        Ok(SignalSent::Stored(id)) => id,
        other => panic!("the first signal of message m-1 must be stored, got {other:?}"),
    };
    assert_eq!(
        send("p", "2", 2, "m-1").await.expect("signal_message"),
        SignalSent::Duplicate(first),
        "a re-delivered message is recognised by its id"
    );
    let pending = store.pending_signals(&pid("p")).await.expect("pending");
    assert_eq!(
        pending
            .iter()
            .map(|s| s.payload.as_str())
            .collect::<Vec<_>>(),
        ["1"],
        "one signal stored, with the first delivery's payload"
    );
    assert!(
        matches!(send("q", "1", 3, "m-1").await, Ok(SignalSent::Stored(id)) if id != first),
        "message ids are unique per process, not across processes"
    );
    assert!(
        matches!(send("p", "3", 4, "m-2").await, Ok(SignalSent::Stored(_))),
        "another message id is another signal"
    );
    let plain = store
        .signal(&pid("p"), "paid", "0", at(4))
        .await
        .expect("signal");
    let message_ids: Vec<(i64, Option<String>)> = store
        .signals(&pid("p"))
        .await
        .expect("signals")
        .into_iter()
        .map(|s| (s.id, s.message_id))
        .collect();
    assert_eq!(
        message_ids.first(),
        Some(&(first, Some("m-1".to_owned()))),
        "signals lists the message id a signal came from"
    );
    assert_eq!(
        message_ids.last(),
        Some(&(plain, None)),
        "a signal sent otherwise has no message id"
    );
    for bad in ["", "a\u{7}b"] {
        assert_err!(
            store
                .signal_message(&pid("p"), "paid", "9", at(5), bad)
                .await,
            StoreError::InvalidInput(_),
            "message id {bad:?}"
        );
    }
    assert_eq!(
        store
            .pending_signals(&pid("p"))
            .await
            .expect("pending")
            .len(),
        3,
        "a refused message id stores nothing"
    );
    assert_err!(
        send("ghost", "1", 6, "m-1").await,
        StoreError::NotFound(ref id) if *id == pid("ghost"),
        "a message to an unknown process"
    );
    // Finished: a re-delivery is still recognised, a new message refused.
    finish(&store, &lease, completed("1"), at(7)).await;
    assert_eq!(
        send("p", "1", 8, "m-1").await.expect("signal_message"),
        SignalSent::Duplicate(first),
        "a re-delivery to a finished process is recognised, not refused"
    );
    assert_err!(
        send("p", "1", 9, "m-3").await,
        StoreError::InvalidState {
            status: Status::Completed,
            ..
        },
        "a new message to a finished process"
    );
}

/// A process suspended with no timer (`wake_at` None) is never due until a
/// signal arrives, and is claimable from the signal's `now` on, with it.
pub async fn signal_wakes_process_waiting_only_for_signals(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    suspend(&store, &lease, None, &["approve"], at(1)).await;
    assert_eq!(
        get(&store, "p").await.wake_at,
        None,
        "no timer: wake_at is None"
    );
    assert_eq!(
        store.next_wake().await.expect("next_wake"),
        None,
        "a process waiting only for signals has no wake time"
    );
    assert_nothing_claimable(
        &store,
        at(86_400 * 365),
        "the process waits only for a signal",
    )
    .await;

    let sent = store
        .signal(&pid("p"), "approve", "{\"by\":\"ünï\"}", at(100))
        .await
        .expect("signal");
    let record = get(&store, "p").await;
    assert_eq!(
        record.wake_at,
        Some(at(100)),
        "a signal makes the process due at once"
    );
    assert_eq!(
        store.next_wake().await.expect("next_wake"),
        Some(at(100)),
        "next_wake sees the signalled process"
    );
    let claimed = claim_one(&store, "p", &host("b"), at(100)).await;
    assert_eq!(claimed.lease.epoch, 2, "second claim");
    assert_eq!(
        claimed.signals,
        [PendingSignal {
            id: sent,
            name: "approve".to_owned(),
            payload: "{\"by\":\"ünï\"}".to_owned(),
            sent_at: at(100),
            traceparent: None,
        }],
        "the claim hands over the signal"
    );
}

/// A signal makes a process suspended on a later timer due at once, and a
/// signal to a process a host holds does not break that host's lease.
pub async fn signal_wakes_suspended_process_before_its_timer(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let early = store
        .signal(&pid("p"), "go", "1", at(1))
        .await
        .expect("signal to a leased process");
    assert_eq!(
        get(&store, "p").await.wake_at,
        Some(T0 + LEASE),
        "a signal to a leased process must keep its lease expiry as wake_at"
    );
    assert_nothing_claimable(&store, at(2), "a signal must not break a live lease").await;
    append(&store, &lease, wait_consuming(0, "first", at(2), early)).await;

    suspend(&store, &lease, Some(at(3600)), &["go"], at(3)).await;
    assert_nothing_claimable(&store, at(10), "the timer is due only at 3600s").await;
    let late = store
        .signal(&pid("p"), "go", "2", at(10))
        .await
        .expect("signal to a suspended process");
    let claimed = claim_one(&store, "p", &host("b"), at(10)).await;
    assert_eq!(
        claimed.signals.iter().map(|s| s.id).collect::<Vec<_>>(),
        [late],
        "the claim hands over the new signal only"
    );
}

/// `pending_signals` returns signals in send order (by id, not by `sent_at`
/// or name) with names and payloads byte-exact.
pub async fn signals_keep_send_order_and_payload(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    suspend(&store, &lease, None, &["x"], at(1)).await;
    let sent = [
        ("zeta", crate::spawn::TRICKY_JSON, at(9)),
        ("alpha", "\"\"", at(2)),
        ("名前 with space", "[]", at(5)),
        ("zeta", "null", at(5)),
        ("%_\\", "{\"k\":\"\\u0000\"}", at(1)),
    ];
    let mut expected = Vec::new();
    for (name, payload, now) in sent {
        let id = store
            .signal(&pid("p"), name, payload, now)
            .await
            .unwrap_or_else(|e| panic!("signal {name:?} failed: {e:?}"));
        if let Some(last) = expected.last() {
            let last: &PendingSignal = last;
            assert!(
                id > last.id,
                "signal ids increase in send order: {id} after {}",
                last.id
            );
        }
        expected.push(PendingSignal {
            id,
            name: name.to_owned(),
            payload: payload.to_owned(),
            sent_at: now,
            traceparent: None,
        });
    }
    let pending = store
        .pending_signals(&pid("p"))
        .await
        .expect("pending_signals");
    assert_eq!(
        pending, expected,
        "pending signals in send order, byte-exact"
    );
    let claimed = claim_one(&store, "p", &host("b"), at(9)).await;
    assert_eq!(
        claimed.signals, expected,
        "claimed signals in send order, byte-exact"
    );
}

/// `suspend` with no matching pending signal unloads the process: status
/// suspended, no owner, `wake_at` and `waiting_for` as given, epoch kept;
/// it is due again exactly at `wake_at`.
pub async fn suspend_unloads_process(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    suspend(
        &store,
        &lease,
        Some(at(60)),
        &["b-signal", "a-signal"],
        at(1),
    )
    .await;
    let record = get(&store, "p").await;
    assert_eq!(record.status, Status::Suspended, "status: {record:?}");
    assert_eq!(record.owner, None, "suspend releases the lease: {record:?}");
    assert_eq!(record.wake_at, Some(at(60)), "wake_at as given: {record:?}");
    assert_eq!(
        record.waiting_for,
        ["b-signal", "a-signal"],
        "waiting_for as given: {record:?}"
    );
    assert_eq!(
        record.epoch, 1,
        "suspend does not change the epoch: {record:?}"
    );
    assert_eq!(
        record.updated_at,
        at(1),
        "updated_at is the suspension's now"
    );
    assert_eq!(
        store.next_wake().await.expect("next_wake"),
        Some(at(60)),
        "next_wake is the suspension's wake_at"
    );

    assert_nothing_claimable(&store, at(59), "the process sleeps until 60s").await;
    let claimed = claim_one(&store, "p", &host("b"), at(60)).await;
    assert_eq!(claimed.lease.epoch, 2, "waking claim bumps the epoch");
    assert_eq!(
        claimed.record.status,
        Status::Running,
        "a claimed process is running"
    );
}

/// `suspend` while a signal named in `waiting_for` is pending returns those
/// signals (only the matching ones, in send order) and changes nothing.
pub async fn suspend_with_matching_signal_changes_nothing(store: DynStore) {
    let claimed = spawn_claimed(&store, "p", &host("a"), T0).await;
    let id = pid("p");
    let a1 = store.signal(&id, "a", "1", at(1)).await.expect("signal");
    let _z = store.signal(&id, "z", "2", at(1)).await.expect("signal");
    let a2 = store.signal(&id, "a", "3", at(2)).await.expect("signal");
    let b = store.signal(&id, "b", "4", at(3)).await.expect("signal");
    let before = get(&store, "p").await;

    let outcome = store
        .suspend(
            &claimed.lease,
            Suspension {
                wake_at: Some(at(600)),
                waiting_for: vec!["b".to_owned(), "a".to_owned()],
                parked_at: Vec::new(),
                now: at(4),
            },
        )
        .await
        .expect("suspend");
    let SuspendOutcome::SignalsPending(signals) = outcome else {
        panic!(
            "suspend with pending signals \"a\" and \"b\" must return SignalsPending, got {outcome:?}"
        );
    };
    assert_eq!(
        signals.iter().map(|s| s.id).collect::<Vec<_>>(),
        [a1, a2, b],
        "the matching signals in send order (not \"z\"): {signals:?}"
    );
    assert_eq!(signals[2].payload, "4", "payload of signal b");

    let after = get(&store, "p").await;
    assert_eq!(
        after, before,
        "SignalsPending must leave the process unchanged"
    );
    assert_eq!(after.status, Status::Running, "still running");
    assert_eq!(after.owner.as_deref(), Some("a"), "still owned");
    assert_nothing_claimable(&store, at(5), "the lease is still held").await;
    append(
        &store,
        &claimed.lease,
        wait_consuming(0, "wait-a", at(5), a1),
    )
    .await;
}

/// Pending signals with other names, and consumed signals with the awaited
/// name, do not prevent a suspension.
pub async fn non_matching_or_consumed_signals_do_not_prevent_suspension(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let id = pid("p");
    store
        .signal(&id, "other", "1", at(1))
        .await
        .expect("signal");
    store
        .signal(&id, "a-prefix", "1", at(1))
        .await
        .expect("signal");
    let a = store.signal(&id, "a", "2", at(1)).await.expect("signal");
    append(&store, &lease, wait_consuming(0, "wait-a", at(2), a)).await;
    suspend(&store, &lease, Some(at(600)), &["a"], at(3)).await;
    assert_eq!(
        get(&store, "p").await.status,
        Status::Suspended,
        "suspended"
    );
}

/// The W3C trace context of the span that spawned a process or sent a
/// signal is stored with it and read back unchanged wherever the record is:
/// `get`, `list` and `claim` for the process (a repeated spawn from another
/// trace keeps the first one); `pending_signals`, `claim` and `signals` for
/// a signal, also one sent by a message. A process or signal without one
/// reads back `None`.
pub async fn trace_context_round_trips(store: DynStore) {
    const SPAWNED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const SIGNALLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const BY_MESSAGE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-53995c3f42cd8ad8-00";
    let traced = |id: &str, traceparent: &str| NewProcess {
        traceparent: Some(traceparent.to_owned()),
        ..new_process(id, T0)
    };
    store.spawn(traced("p", SPAWNED)).await.expect("spawn");
    // Due later than "p", so the claim below takes "p".
    spawn(&store, "plain", at(1)).await;
    store
        .spawn(traced("p", BY_MESSAGE))
        .await
        .expect("a repeated spawn from another trace is the same process");
    assert_eq!(
        get(&store, "p").await.traceparent.as_deref(),
        Some(SPAWNED),
        "get returns the traceparent of the first spawn"
    );
    assert_eq!(get(&store, "plain").await.traceparent, None);
    let listed = store
        .list(&steadfast_core::ListFilter::default())
        .await
        .expect("list");
    let traces: Vec<_> = listed
        .iter()
        .filter_map(|l| l.record())
        .map(|r| (r.id.as_str(), r.traceparent.as_deref()))
        .collect();
    assert_eq!(traces, [("p", Some(SPAWNED)), ("plain", None)], "list");

    let send = |signal: NewSignal| {
        let store = store.clone();
        async move { store.send_signal(&pid("p"), signal).await }
    };
    let first = send(NewSignal {
        traceparent: Some(SIGNALLED.to_owned()),
        ..NewSignal::new("go", "1", at(1))
    })
    .await
    .expect("signal");
    let second = send(NewSignal {
        message_id: Some("m-1".to_owned()),
        traceparent: Some(BY_MESSAGE.to_owned()),
        ..NewSignal::new("go", "2", at(2))
    })
    .await
    .expect("signal by a message");
    let third = store
        .signal(&pid("p"), "go", "3", at(3))
        .await
        .expect("signal without trace context");
    let expected = [
        (first.id(), Some(SIGNALLED)),
        (second.id(), Some(BY_MESSAGE)),
        (third, None),
    ];
    let pending = store.pending_signals(&pid("p")).await.expect("pending");
    let read: Vec<_> = pending
        .iter()
        .map(|s| (s.id, s.traceparent.as_deref()))
        .collect();
    assert_eq!(read, expected, "pending_signals returns each traceparent");
    let records = store.signals(&pid("p")).await.expect("signals");
    let read: Vec<_> = records
        .iter()
        .map(|s| (s.id, s.traceparent.as_deref()))
        .collect();
    assert_eq!(read, expected, "signals returns each traceparent");

    let claimed = claim_one(&store, "p", &host("a"), at(4)).await;
    assert_eq!(
        claimed.record.traceparent.as_deref(),
        Some(SPAWNED),
        "claim returns the process's traceparent"
    );
    let read: Vec<_> = claimed
        .signals
        .iter()
        .map(|s| (s.id, s.traceparent.as_deref()))
        .collect();
    assert_eq!(read, expected, "claim returns each signal's traceparent");
}
