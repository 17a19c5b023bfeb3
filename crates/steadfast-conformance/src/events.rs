//! `events`: each process's stored history besides its journal. Every claim,
//! block, end, cancel, retry, rewind and continue-as-new leaves one entry
//! with its time, host, epoch and generation; an operation that is refused
//! leaves none (the entry is written in the operation's own transaction).

use steadfast_core::{EventKind, Finish, ProcessEvent, StoreError};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, T0, append, at, claim_one, completed, finish, host, pid, spawn, spawn_claimed,
    step,
};

/// The stored history of `id`.
async fn events(store: &DynStore, id: &str) -> Vec<ProcessEvent> {
    store
        .events(&pid(id))
        .await
        .unwrap_or_else(|e| panic!("events of {id:?}: {e}"))
}

/// What a history entry says, without its store-given id and detail.
type Said = (
    EventKind,
    Option<String>,
    i64,
    u32,
    steadfast_core::Timestamp,
);

fn said(events: &[ProcessEvent]) -> Vec<Said> {
    events
        .iter()
        .map(|e| (e.kind, e.host.clone(), e.epoch, e.generation, e.at))
        .collect()
}

fn by(name: &str) -> Option<String> {
    Some(host(name).as_str().to_owned())
}

/// Claims (host, epoch), blocks (with the reason), retries, cancels
/// (requested, then done by the run), failures, rewinds (naming the step),
/// continue-as-new (in the generation that ended) and completions each
/// leave their entry, in order, on their own process only.
pub async fn each_operation_records_its_event(store: DynStore) {
    // p: claimed by a, blocked, retried, claimed by b, cancel requested and
    // then cancelled by b's run.
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    assert_eq!(
        said(&events(&store, "p").await),
        vec![(EventKind::Claimed, by("a"), 1, 0, T0)],
        "a claim records the host and the new epoch"
    );
    append(&store, &lease, step(0, "work", at(1))).await;
    let blocked = Finish::Blocked {
        step: Some("work".into()),
        reason: "the journal does not fit".into(),
        location: None,
    };
    finish(&store, &lease, blocked, at(2)).await;
    store.retry(&pid("p"), at(3)).await.expect("retry");
    let lease = claim_one(&store, "p", &host("b"), at(4)).await.lease;
    let status = store.cancel(&pid("p"), at(5)).await.expect("cancel");
    assert_eq!(
        status,
        steadfast_core::Status::Running,
        "a live lease: requested"
    );
    finish(&store, &lease, Finish::Cancelled, at(6)).await;
    let p = events(&store, "p").await;
    assert_eq!(
        said(&p),
        vec![
            (EventKind::Claimed, by("a"), 1, 0, T0),
            (EventKind::Blocked, by("a"), 1, 0, at(2)),
            (EventKind::Retried, None, 1, 0, at(3)),
            (EventKind::Claimed, by("b"), 2, 0, at(4)),
            (EventKind::CancelRequested, None, 2, 0, at(5)),
            (EventKind::Cancelled, by("b"), 2, 0, at(6)),
        ],
        "each operation on p, in order: {p:#?}"
    );
    assert!(
        p[1].detail
            .as_deref()
            .is_some_and(|d| d.contains("the journal does not fit")),
        "a block records its reason: {:?}",
        p[1]
    );
    assert!(
        p.windows(2).all(|w| w[0].id < w[1].id),
        "entries come in the order they were written: {p:#?}"
    );

    // q: fails, is rewound, continues as new, and is cancelled unleased.
    let lease = spawn_claimed(&store, "q", &host("a"), at(10)).await.lease;
    append(&store, &lease, step(0, "one", at(10))).await;
    append(&store, &lease, step(1, "two", at(11))).await;
    let failed = Finish::Failed {
        error: "payment declined".into(),
    };
    finish(&store, &lease, failed, at(12)).await;
    let dropped = store
        .rewind(&pid("q"), "two", at(13))
        .await
        .expect("rewind");
    assert_eq!(dropped, 1, "the rewind drops one entry");
    let lease = claim_one(&store, "q", &host("a"), at(14)).await.lease;
    store
        .continue_as_new(&lease, "{\"round\":2}", at(15))
        .await
        .expect("continue_as_new");
    let status = store.cancel(&pid("q"), at(16)).await.expect("cancel");
    assert_eq!(
        status,
        steadfast_core::Status::Cancelled,
        "no lease: at once"
    );
    let q = events(&store, "q").await;
    assert_eq!(
        said(&q),
        vec![
            (EventKind::Claimed, by("a"), 1, 0, at(10)),
            (EventKind::Failed, by("a"), 1, 0, at(12)),
            (EventKind::Rewound, None, 2, 0, at(13)),
            (EventKind::Claimed, by("a"), 3, 0, at(14)),
            (EventKind::ContinuedAsNew, by("a"), 3, 0, at(15)),
            (EventKind::Cancelled, None, 3, 1, at(16)),
        ],
        "each operation on q, in order: {q:#?}"
    );
    assert!(
        q[1].detail
            .as_deref()
            .is_some_and(|d| d.contains("payment declined")),
        "a failure records its error: {:?}",
        q[1]
    );
    assert!(
        q[2].detail.as_deref().is_some_and(|d| d.contains("two")),
        "a rewind names its step: {:?}",
        q[2]
    );

    // r: completes.
    let lease = spawn_claimed(&store, "r", &host("c"), at(20)).await.lease;
    finish(&store, &lease, completed("1"), at(21)).await;
    assert_eq!(
        said(&events(&store, "r").await),
        vec![
            (EventKind::Claimed, by("c"), 1, 0, at(20)),
            (EventKind::Completed, by("c"), 1, 0, at(21)),
        ],
        "a completion records the host that ran it"
    );
    assert_eq!(
        said(&events(&store, "p").await),
        said(&p),
        "other processes' operations leave p's history alone"
    );
    spawn(&store, "s", at(30)).await;
    assert!(
        events(&store, "s").await.is_empty(),
        "a process never claimed has no entries"
    );
    assert_err!(
        store.events(&pid("nobody")).await,
        StoreError::NotFound(_),
        "events of an unknown process"
    );
}

/// An operation the store refuses (wrong state, stale lease, unknown step)
/// leaves no entry: the entry is part of the operation's transaction.
pub async fn refused_operations_record_nothing(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let before = said(&events(&store, "p").await);
    assert_eq!(before.len(), 1, "the claim's entry: {before:?}");
    assert_err!(
        store.retry(&pid("p"), at(1)).await,
        StoreError::InvalidState { .. },
        "retry of a running process"
    );
    assert_err!(
        store.rewind(&pid("p"), "work", at(1)).await,
        StoreError::InvalidState { .. } | StoreError::InvalidInput(_),
        "rewind of a process under a live lease"
    );
    // Another host takes the process over once the lease ran out; the
    // first host's writes are fenced and record nothing.
    let late = at(LEASE.as_secs() + 1);
    claim_one(&store, "p", &host("b"), late).await;
    let taken = said(&events(&store, "p").await);
    assert_eq!(taken.len(), 2, "the takeover's claim: {taken:?}");
    assert_err!(
        store.finish(&lease, completed("1"), late).await,
        StoreError::Fenced { .. },
        "finish under a lost lease"
    );
    assert_err!(
        store.continue_as_new(&lease, "2", late).await,
        StoreError::Fenced { .. },
        "continue_as_new under a lost lease"
    );
    assert_eq!(
        said(&events(&store, "p").await),
        taken,
        "refused operations leave no entry"
    );
    // Before b's lease on p runs out, so the claim takes "done".
    let lease = spawn_claimed(&store, "done", &host("a"), at(40))
        .await
        .lease;
    finish(&store, &lease, completed("1"), at(41)).await;
    let done = said(&events(&store, "done").await);
    assert_err!(
        store.cancel(&pid("done"), at(42)).await,
        StoreError::InvalidState { .. },
        "cancel of a completed process"
    );
    assert_err!(
        store.retry(&pid("done"), at(42)).await,
        StoreError::InvalidState { .. },
        "retry of a completed process"
    );
    assert_err!(
        store.rewind(&pid("done"), "no such step", at(42)).await,
        StoreError::InvalidInput(_),
        "rewind to a step that is not in the journal"
    );
    assert_eq!(
        said(&events(&store, "done").await),
        done,
        "refused operations on a finished process leave no entry"
    );
}
