//! Parent links: a child's parent is stored at spawn, cancelling a process
//! cascades to its stored descendants only, and a child's end reaches its
//! parent as a signal written with the end, under the child's fence.

use steadfast_core::child::{end_notice, end_signal};
use steadfast_core::{Finish, ListFilter, NewProcess, Status, StoreError};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, T0, at, claim_one, completed, finish, get, host, new_process, pid, spawn,
    suspend,
};

/// A spawn request for `id` whose parent is `parent`.
fn child_of(parent: &str, id: &str, now: steadfast_core::Timestamp) -> NewProcess {
    NewProcess {
        parent: Some(pid(parent)),
        ..new_process(id, now)
    }
}

async fn spawn_child(store: &DynStore, parent: &str, id: &str) {
    spawn_child_at(store, parent, id, T0).await;
}

async fn spawn_child_at(store: &DynStore, parent: &str, id: &str, now: steadfast_core::Timestamp) {
    store
        .spawn(child_of(parent, id, now))
        .await
        .unwrap_or_else(|e| panic!("spawn of child {id:?} failed: {e:?}"));
}

/// Spawns `id` and leaves it suspended, waiting only for signals.
async fn spawn_suspended(store: &DynStore, id: &str, waiting_for: &[&str]) {
    spawn(store, id, T0).await;
    let lease = claim_one(store, id, &host("setup"), T0).await.lease;
    suspend(store, &lease, None, waiting_for, T0).await;
}

/// `spawn` stores the parent; `get`, `claim` and `list` return it, and
/// `list` filters by it.
pub async fn parent_is_stored(store: DynStore) {
    spawn(&store, "x", T0).await;
    spawn_child(&store, "x", "x/a").await;
    spawn(&store, "x/b", T0).await;
    spawn_child(&store, "x", "elsewhere").await;
    assert_eq!(get(&store, "x/a").await.parent, Some(pid("x")));
    assert_eq!(get(&store, "elsewhere").await.parent, Some(pid("x")));
    assert_eq!(
        get(&store, "x/b").await.parent,
        None,
        "a process spawned without a parent has none, whatever its id"
    );
    assert_eq!(get(&store, "x").await.parent, None);
    let children: Vec<String> = store
        .list(&ListFilter {
            parent: Some(pid("x")),
            ..ListFilter::default()
        })
        .await
        .expect("list by parent")
        .iter()
        .map(|r| r.id().to_owned())
        .collect();
    assert_eq!(children, ["elsewhere", "x/a"], "list(parent = x)");
    let claimed = store.claim(&host("a"), T0, LEASE, 10).await.expect("claim");
    let a = claimed
        .iter()
        .find(|c| c.record.id.as_str() == "x/a")
        .expect("x/a is claimed");
    assert_eq!(a.record.parent, Some(pid("x")), "claim returns the parent");
}

/// `cancel` cancels the stored descendants (children and theirs), whatever
/// their ids, and leaves processes whose ids merely start with `<id>/`.
pub async fn cancel_cascades_to_stored_children_only(store: DynStore) {
    // A finished child stays as it is.
    store
        .spawn(child_of("x", "x/done", at(0)))
        .await
        .expect("spawn");
    let done = claim_one(&store, "x/done", &host("a"), at(0)).await.lease;
    finish(&store, &done, completed("1"), at(0)).await;
    // A held child is cancelled by request, like the process itself.
    spawn_child_at(&store, "x", "x/held", at(1)).await;
    let held = claim_one(&store, "x/held", &host("b"), at(1)).await.lease;
    spawn(&store, "x", at(2)).await;
    spawn_child_at(&store, "x", "x/a", at(2)).await;
    spawn_child_at(&store, "x/a", "x/a/deep", at(2)).await;
    spawn_child_at(&store, "x", "renamed", at(2)).await;
    spawn(&store, "x/unrelated", at(2)).await;
    assert_eq!(
        store.cancel(&pid("x"), at(3)).await.expect("cancel x"),
        Status::Cancelled
    );
    for id in ["x", "x/a", "x/a/deep", "renamed"] {
        assert_eq!(
            get(&store, id).await.status,
            Status::Cancelled,
            "{id:?} descends from x and is cancelled with it"
        );
    }
    let unrelated = get(&store, "x/unrelated").await;
    assert_eq!(
        unrelated.status,
        Status::Running,
        "x/unrelated has no stored parent: cancel x must not touch it"
    );
    assert!(!unrelated.cancel_requested);
    assert_eq!(get(&store, "x/done").await.status, Status::Completed);
    let held_now = get(&store, "x/held").await;
    assert_eq!(
        held_now.status,
        Status::Running,
        "a held child keeps running"
    );
    assert!(
        held_now.cancel_requested,
        "a held child gets a cancellation request"
    );
    assert_err!(
        store
            .append(&held, crate::fixture::step(0, "s", at(3)))
            .await,
        StoreError::CancelRequested(_),
        "the held child's next write"
    );
}

/// `finish` of a child writes the parent's end signal in the same
/// transaction (and wakes a suspended parent); a fenced finish writes
/// nothing; a blocked child sends nothing; a finished parent gets nothing.
pub async fn finish_notifies_parent_atomically(store: DynStore) {
    // A finished parent is not signalled; the child still finishes.
    spawn(&store, "q", T0).await;
    let q = claim_one(&store, "q", &host("a"), T0).await.lease;
    finish(&store, &q, completed("0"), T0).await;
    spawn_child(&store, "q", "q/e").await;
    let e = claim_one(&store, "q/e", &host("a"), T0).await.lease;
    finish(&store, &e, completed("1"), T0).await;
    assert_eq!(get(&store, "q/e").await.status, Status::Completed);
    assert!(
        store
            .pending_signals(&pid("q"))
            .await
            .expect("pending")
            .is_empty()
    );

    let signal = end_signal("c");
    spawn_suspended(&store, "p", &[&signal]).await;
    assert_eq!(get(&store, "p").await.wake_at, None);
    spawn_child(&store, "p", "p/c").await;
    let stale = claim_one(&store, "p/c", &host("a"), at(1)).await.lease;
    // The lease runs out and another host takes the child over.
    let fresh = claim_one(&store, "p/c", &host("b"), at(1) + LEASE)
        .await
        .lease;
    assert_err!(
        store.finish(&stale, completed("42"), at(40)).await,
        StoreError::Fenced { .. },
        "finish under the stale lease"
    );
    assert!(
        store
            .pending_signals(&pid("p"))
            .await
            .expect("pending")
            .is_empty(),
        "a fenced finish must not signal the parent"
    );
    let blocked = Finish::Blocked {
        step: None,
        reason: "stuck".to_owned(),
        location: None,
    };
    store
        .finish(&fresh, blocked, at(41))
        .await
        .expect("finish blocked");
    assert!(
        store
            .pending_signals(&pid("p"))
            .await
            .expect("pending")
            .is_empty(),
        "a blocked child has not ended: no signal"
    );
    store.retry(&pid("p/c"), at(42)).await.expect("retry");
    let lease = claim_one(&store, "p/c", &host("b"), at(42)).await.lease;
    finish(&store, &lease, completed("42"), at(43)).await;
    let pending = store.pending_signals(&pid("p")).await.expect("pending");
    let want = end_notice(&pid("p"), &pid("p/c"), &completed("42")).expect("notice");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].name, want.signal);
    assert_eq!(pending[0].payload, want.payload);
    assert_eq!(pending[0].sent_at, at(43));
    assert_eq!(
        get(&store, "p").await.wake_at,
        Some(at(43)),
        "the suspended parent is due at once"
    );

    // A child cancelled at once tells its parent too.
    spawn_child(&store, "p", "p/d").await;
    store.cancel(&pid("p/d"), at(44)).await.expect("cancel");
    let pending = store.pending_signals(&pid("p")).await.expect("pending");
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert_eq!(pending[1].name, end_signal("d"));
    assert_eq!(pending[1].payload, r#"{"status":"cancelled"}"#);
}
