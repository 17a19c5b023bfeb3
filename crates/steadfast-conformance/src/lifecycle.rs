//! `finish`, `cancel` and `retry`: how runs end and how ended runs resume.

use steadfast_core::{Finish, ProcessRecord, Status, StoreError, Timestamp};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, T0, append, assert_nothing_claimable, at, claim_one, completed, finish, get,
    host, journal, pid, spawn, spawn_claimed, spawn_finished, step, suspend,
};

/// Far enough in the future that every timer and lease is due.
fn far_future() -> Timestamp {
    at(86_400 * 365 * 10)
}

/// Claims `p`, appends a step and finishes it with `how` at 5s; returns the
/// record afterwards, after checking what every finish has in common.
async fn finished_record(store: &DynStore, how: Finish, status: Status) -> ProcessRecord {
    let lease = spawn_claimed(store, "p", &host("a"), T0).await.lease;
    append(store, &lease, step(0, "work", at(1))).await;
    finish(store, &lease, how.clone(), at(5)).await;
    let record = get(store, "p").await;
    assert_eq!(record.status, status, "status after {how:?}: {record:?}");
    assert_eq!(record.wake_at, None, "finish clears wake_at: {record:?}");
    assert_eq!(record.owner, None, "finish releases the lease: {record:?}");
    assert_eq!(record.epoch, 1, "finish keeps the epoch: {record:?}");
    assert_eq!(record.updated_at, at(5), "updated_at is the finish's now");
    assert_eq!(
        journal(store, "p").await.len(),
        1,
        "finish keeps the journal"
    );
    assert_nothing_claimable(
        store,
        far_future(),
        "a finished or blocked process is never due",
    )
    .await;
    assert_eq!(
        store.next_wake().await.expect("next_wake"),
        None,
        "nothing is due after the only process finished"
    );
    record
}

/// `Completed` stores the output byte-exact.
pub async fn finish_completed_stores_output(store: DynStore) {
    let output = crate::spawn::TRICKY_JSON;
    let record = finished_record(&store, completed(output), Status::Completed).await;
    assert_eq!(record.output.as_deref(), Some(output), "output byte-exact");
    assert_eq!(record.error, None, "no error");
    assert_eq!(record.blocked_step, None, "no blocked step");
}

/// `Failed` stores the error text.
pub async fn finish_failed_stores_error(store: DynStore) {
    let error = "payment declined: \"insufficient funds\" — ünï";
    let how = Finish::Failed {
        error: error.to_owned(),
    };
    let record = finished_record(&store, how, Status::Failed).await;
    assert_eq!(record.error.as_deref(), Some(error), "error text");
    assert_eq!(record.output, None, "no output");
}

/// `Blocked` stores the reason as error and the step (or none).
pub async fn finish_blocked_stores_reason_and_step(store: DynStore) {
    let how = Finish::Blocked {
        step: Some("charge card".to_owned()),
        location: None,
        reason: "step \"charge card\" expected a timer".to_owned(),
    };
    let record = finished_record(&store, how, Status::Blocked).await;
    assert_eq!(
        record.error.as_deref(),
        Some("step \"charge card\" expected a timer"),
        "the reason is the error"
    );
    assert_eq!(
        record.blocked_step.as_deref(),
        Some("charge card"),
        "blocked_step"
    );

    let lease = spawn_claimed(&store, "q", &host("a"), T0).await.lease;
    let how = Finish::Blocked {
        step: None,
        location: None,
        reason: "panicked".to_owned(),
    };
    finish(&store, &lease, how, at(1)).await;
    let record = get(&store, "q").await;
    assert_eq!(record.status, Status::Blocked, "status");
    assert_eq!(record.blocked_step, None, "no step given, none stored");
    assert_eq!(record.error.as_deref(), Some("panicked"), "reason");
}

/// `Cancelled` ends the process for good.
pub async fn finish_cancelled(store: DynStore) {
    let record = finished_record(&store, Finish::Cancelled, Status::Cancelled).await;
    assert_eq!(record.output, None, "no output");
}

/// A process no host holds (never claimed, suspended, released, blocked) is
/// cancelled at once and never claimed again.
pub async fn cancel_unowned_process_at_once(store: DynStore) {
    let lease = spawn_claimed(&store, "suspended", &host("a"), T0)
        .await
        .lease;
    suspend(&store, &lease, Some(at(60)), &["go"], at(1)).await;

    let lease = spawn_claimed(&store, "blocked", &host("a"), T0).await.lease;
    let how = Finish::Blocked {
        step: None,
        location: None,
        reason: "r".to_owned(),
    };
    finish(&store, &lease, how, at(1)).await;

    spawn_claimed(&store, "released", &host("r"), T0).await;
    assert_eq!(
        store.release(&host("r"), at(1)).await.expect("release"),
        1,
        "released"
    );
    spawn(&store, "fresh", T0).await;

    for id in ["fresh", "suspended", "blocked", "released"] {
        let status = store.cancel(&pid(id), at(2)).await.expect("cancel");
        assert_eq!(
            status,
            Status::Cancelled,
            "cancel of the unowned {id:?} process"
        );
        let record = get(&store, id).await;
        assert_eq!(record.status, Status::Cancelled, "{id}: {record:?}");
        assert_eq!(record.wake_at, None, "{id}: a cancelled process is not due");
        assert_eq!(record.owner, None, "{id}: no owner");
    }
    assert_nothing_claimable(&store, far_future(), "every process is cancelled").await;
}

/// A process whose lease expired is held by no live host: it is cancelled
/// at once.
pub async fn cancel_process_with_expired_lease_at_once(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let status = store.cancel(&pid("p"), T0 + LEASE).await.expect("cancel");
    assert_eq!(
        status,
        Status::Cancelled,
        "the lease expired at the cancel's now; no live host holds the process"
    );
    assert_nothing_claimable(&store, far_future(), "the process is cancelled").await;
    let result = store.append(&lease, step(0, "late", T0 + LEASE)).await;
    assert!(
        result.is_err(),
        "the dead host may not write to a cancelled process"
    );
}

/// A process a host holds gets `cancel_requested` and stays running; its
/// next append fails with `CancelRequested`, and finishing it as cancelled
/// works.
pub async fn cancel_owned_process_is_requested(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    append(&store, &lease, step(0, "before", at(1))).await;
    let status = store.cancel(&pid("p"), at(2)).await.expect("cancel");
    assert_eq!(
        status,
        Status::Running,
        "a held process stays running until its host sees it"
    );
    let record = get(&store, "p").await;
    assert!(
        record.cancel_requested,
        "cancel_requested is set: {record:?}"
    );
    assert_eq!(record.status, Status::Running, "still running: {record:?}");
    assert_eq!(
        record.owner.as_deref(),
        Some("a"),
        "still owned: {record:?}"
    );
    assert_nothing_claimable(&store, at(3), "the lease is still live").await;

    let result = store.append(&lease, step(1, "after", at(3))).await;
    assert_err!(
        result,
        StoreError::CancelRequested(ref id) if *id == pid("p"),
        "append after a cancellation request"
    );
    assert_eq!(
        journal(&store, "p").await.len(),
        1,
        "the rejected append wrote nothing"
    );

    finish(&store, &lease, Finish::Cancelled, at(4)).await;
    let record = get(&store, "p").await;
    assert_eq!(record.status, Status::Cancelled, "cancelled: {record:?}");
    assert_eq!(record.owner, None, "no owner: {record:?}");
    assert_eq!(record.wake_at, None, "not due: {record:?}");
}

/// Cancelling a finished process fails with `InvalidState`; an unknown one
/// with `NotFound`.
pub async fn cancel_finished_or_unknown_fails(store: DynStore) {
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
        let before = get(&store, id).await;
        let result = store.cancel(&pid(id), at(1)).await;
        assert_err!(
            result,
            StoreError::InvalidState { status: s, .. } if s == status,
            "cancel of a {id} process"
        );
        assert_eq!(
            get(&store, id).await,
            before,
            "a rejected cancel changes nothing"
        );
    }
    let result = store.cancel(&pid("ghost"), at(1)).await;
    assert_err!(
        result,
        StoreError::NotFound(ref id) if *id == pid("ghost"),
        "cancel of an unknown process"
    );
}

/// Retries `p` (finished with `how`) at 10s and checks it runs again from
/// its kept journal.
async fn check_retry(store: &DynStore, how: Finish) {
    let lease = spawn_claimed(store, "p", &host("a"), T0).await.lease;
    append(store, &lease, step(0, "kept", at(1))).await;
    finish(store, &lease, how.clone(), at(5)).await;

    store
        .retry(&pid("p"), at(10))
        .await
        .unwrap_or_else(|e| panic!("retry after {how:?} failed: {e:?}"));
    let record = get(store, "p").await;
    assert_eq!(
        record.status,
        Status::Running,
        "retry makes it running: {record:?}"
    );
    assert_eq!(record.error, None, "retry clears the error: {record:?}");
    assert_eq!(
        record.blocked_step, None,
        "retry clears blocked_step: {record:?}"
    );
    assert_eq!(record.owner, None, "no host holds it yet: {record:?}");
    assert_eq!(
        record.wake_at,
        Some(at(10)),
        "due at the retry's now: {record:?}"
    );
    assert_nothing_claimable(store, at(9), "due only from the retry's now").await;

    let claimed = claim_one(store, "p", &host("b"), at(10)).await;
    assert_eq!(claimed.lease.epoch, 2, "the retried run has a new epoch");
    assert_eq!(
        claimed
            .journal
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["kept"],
        "retry keeps the journal"
    );
    append(store, &claimed.lease, step(1, "new", at(11))).await;
}

/// A blocked process runs again after `retry`.
pub async fn retry_blocked_process(store: DynStore) {
    let how = Finish::Blocked {
        step: Some("kept".to_owned()),
        location: None,
        reason: "mismatch".to_owned(),
    };
    check_retry(&store, how).await;
}

/// A failed process runs again after `retry`.
pub async fn retry_failed_process(store: DynStore) {
    let how = Finish::Failed {
        error: "boom".to_owned(),
    };
    check_retry(&store, how).await;
}

/// `retry` of a running (unclaimed or claimed), suspended, completed or
/// cancelled process fails with `InvalidState`; of an unknown one with
/// `NotFound`.
pub async fn retry_other_states_fails(store: DynStore) {
    let claimed = spawn_claimed(&store, "claimed", &host("a"), T0).await;
    let lease = spawn_claimed(&store, "suspended", &host("a"), at(2))
        .await
        .lease;
    suspend(&store, &lease, Some(at(60)), &[], at(2)).await;
    spawn_finished(&store, "completed", completed("1"), at(3)).await;
    spawn_finished(&store, "cancelled", Finish::Cancelled, at(4)).await;
    spawn(&store, "fresh", at(5)).await;

    let cases = [
        ("fresh", Status::Running),
        ("claimed", Status::Running),
        ("suspended", Status::Suspended),
        ("completed", Status::Completed),
        ("cancelled", Status::Cancelled),
    ];
    for (id, status) in cases {
        let before = get(&store, id).await;
        let result = store.retry(&pid(id), at(5)).await;
        assert_err!(
            result,
            StoreError::InvalidState { status: s, .. } if s == status,
            "retry of a {status} process ({id:?})"
        );
        assert_eq!(
            get(&store, id).await,
            before,
            "a rejected retry changes nothing"
        );
    }
    append(&store, &claimed.lease, step(0, "still mine", at(6))).await;
    let result = store.retry(&pid("ghost"), at(5)).await;
    assert_err!(
        result,
        StoreError::NotFound(ref id) if *id == pid("ghost"),
        "retry of an unknown process"
    );
}
