//! Lease upkeep (`renew`, `release`) and the read side: `get`, `journal`,
//! `next_wake`, `list` and `counts`.

use std::collections::BTreeMap;
use std::time::Duration;

use steadfast_core::{Finish, Lease, ListFilter, NewProcess, Status, StoreError};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, T0, append, assert_nothing_claimable, at, claim_ids, completed, get, host,
    pid, spawn, spawn_claimed, spawn_finished, step, suspend,
};

/// `renew` extends to `now + lease` the listed leases of the owner's
/// running processes only (not other owners', not its suspended or finished
/// ones, not ones taken over after expiry) and returns how many it renewed.
pub async fn renew_extends_own_running_leases_only(store: DynStore) {
    let (a, b) = (host("a"), host("b"));
    // "lost" is a's with a short lease, which expires and b takes over.
    spawn(&store, "lost", T0).await;
    let short = store
        .claim(&a, T0, Duration::from_secs(10), 1)
        .await
        .expect("claim");
    assert_eq!(short.len(), 1, "lost is due");
    let mut held = vec![short[0].lease.clone()];
    held.push(spawn_claimed(&store, "a1", &a, T0).await.lease);
    held.push(spawn_claimed(&store, "a2", &a, T0).await.lease);
    let b1 = spawn_claimed(&store, "b1", &b, T0).await.lease;
    let lease = spawn_claimed(&store, "a-suspended", &a, T0).await.lease;
    suspend(&store, &lease, Some(at(1000)), &[], T0).await;
    held.push(lease);
    spawn_finished(&store, "a-finished", completed("1"), T0).await;
    let taken = claim_ids(&store, &b, at(10), 10).await;
    assert_eq!(
        taken,
        ["lost"],
        "only a's 10s lease on \"lost\" is due at 10s"
    );
    // a lists b's lease too: renew must check the owner.
    held.push(Lease {
        owner: a.clone(),
        ..b1
    });

    let renewed = store
        .renew(&a, &held, at(20), Duration::from_secs(60))
        .await
        .expect("renew");
    assert_eq!(renewed, 2, "a holds exactly a1 and a2");
    for id in ["a1", "a2"] {
        assert_eq!(
            get(&store, id).await.wake_at,
            Some(at(80)),
            "{id}: renewed expiry"
        );
    }
    assert_eq!(
        get(&store, "b1").await.wake_at,
        Some(T0 + LEASE),
        "b1 is b's"
    );
    assert_eq!(
        get(&store, "lost").await.wake_at,
        Some(at(10) + LEASE),
        "lost is b's now"
    );
    assert_eq!(
        get(&store, "a-suspended").await.wake_at,
        Some(at(1000)),
        "suspended"
    );
    assert_eq!(
        get(&store, "a-suspended").await.owner,
        None,
        "suspended has no owner"
    );
    assert_eq!(get(&store, "a-finished").await.wake_at, None, "finished");

    // a1 and a2 must not be taken over until 80s.
    let mut due = claim_ids(&store, &b, at(79), 10).await;
    due.sort();
    assert_eq!(
        due,
        ["b1", "lost"],
        "only b's expired leases are due at 79s"
    );
    let mut due = claim_ids(&store, &b, at(80), 10).await;
    due.sort();
    assert_eq!(due, ["a1", "a2"], "a's leases expire at the renewed time");
}

/// `renew` renews exactly the leases it is given: a running process of the
/// owner that is not in the list keeps its expiry (its run was given up),
/// and a listed lease whose epoch is old (the process was claimed again
/// since, even by the same owner) is not renewed.
pub async fn renew_touches_only_the_listed_leases(store: DynStore) {
    let a = host("a");
    let listed = spawn_claimed(&store, "listed", &a, T0).await.lease;
    spawn_claimed(&store, "unlisted", &a, T0).await;
    // "again" was claimed by a, its lease ran out, and a claimed it again:
    // only the new epoch is a's live run.
    spawn(&store, "again", T0).await;
    let first = store
        .claim(&a, T0, Duration::from_secs(10), 1)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1, "again is due");
    let old = first[0].lease.clone();
    let again = claim_ids(&store, &a, at(10), 10).await;
    assert_eq!(again, ["again"], "a's 10s lease on again ran out at 10s");
    let current = get(&store, "again").await;
    assert_eq!(current.epoch, old.epoch + 1, "claimed again: {current:?}");

    let renewed = store
        .renew(&a, &[listed.clone(), old], at(20), Duration::from_secs(60))
        .await
        .expect("renew");
    assert_eq!(renewed, 1, "only the listed lease at its current epoch");
    assert_eq!(get(&store, "listed").await.wake_at, Some(at(80)), "listed");
    assert_eq!(
        get(&store, "unlisted").await.wake_at,
        Some(T0 + LEASE),
        "a lease not in the list keeps its expiry"
    );
    assert_eq!(
        get(&store, "again").await.wake_at,
        Some(at(10) + LEASE),
        "a lease with an old epoch is not renewed"
    );
    assert_eq!(
        store
            .renew(&a, &[], at(20), Duration::from_secs(60))
            .await
            .expect("renew nothing"),
        0,
        "an empty list renews nothing"
    );
    // Once the unlisted lease runs out, another host takes it over.
    let taken = claim_ids(&store, &host("b"), T0 + LEASE, 10).await;
    assert_eq!(taken, ["unlisted"], "the unlisted lease expired unrenewed");
}

/// `release` gives up every lease the owner holds: those processes become
/// due at `now` with no owner, another host claims them with a new epoch,
/// and the releasing host's old leases are fenced.
pub async fn release_makes_processes_claimable(store: DynStore) {
    let (a, b) = (host("a"), host("b"));
    let old = spawn_claimed(&store, "a1", &a, T0).await.lease;
    spawn_claimed(&store, "a2", &a, T0).await;
    spawn_claimed(&store, "b1", &b, T0).await;

    let released = store.release(&a, at(5)).await.expect("release");
    assert_eq!(released, 2, "a held a1 and a2");
    for id in ["a1", "a2"] {
        let record = get(&store, id).await;
        assert_eq!(record.owner, None, "{id}: released: {record:?}");
        assert_eq!(
            record.wake_at,
            Some(at(5)),
            "{id}: due at the release: {record:?}"
        );
        assert_eq!(
            record.status,
            Status::Running,
            "{id}: still running: {record:?}"
        );
    }
    let b1 = get(&store, "b1").await;
    assert_eq!(b1.owner.as_deref(), Some("b"), "b's lease is untouched");
    assert_eq!(b1.wake_at, Some(T0 + LEASE), "b's lease is untouched");
    assert_eq!(
        store.release(&a, at(5)).await.expect("release"),
        0,
        "nothing left"
    );

    assert_nothing_claimable(&store, at(4), "released processes are due at 5s").await;
    let mut got = claim_ids(&store, &b, at(5), 10).await;
    got.sort();
    assert_eq!(
        got,
        ["a1", "a2"],
        "b takes over a's released processes, not b1"
    );
    assert_eq!(get(&store, "a1").await.epoch, 2, "a new epoch");
    let result = store.append(&old, step(0, "stale", at(6))).await;
    assert_err!(
        result,
        StoreError::Fenced { .. },
        "a's lease after release and takeover"
    );
}

/// `get` and `journal` of an unknown id (here a prefix of a known one)
/// fail with `NotFound` naming it.
pub async fn unknown_ids_are_not_found(store: DynStore) {
    spawn(&store, "known", T0).await;
    let ghost = pid("know");
    let result = store.get(&ghost).await;
    assert_err!(result, StoreError::NotFound(ref id) if *id == ghost, "get of an unknown id");
    let result = store.journal(&ghost).await;
    assert_err!(
        result,
        StoreError::NotFound(ref id) if *id == ghost,
        "journal of an unknown id"
    );
    let empty = store
        .journal(&pid("known"))
        .await
        .expect("journal of a known id");
    assert!(
        empty.is_empty(),
        "a known process without entries has an empty journal"
    );
}

/// `next_wake` is the minimum `wake_at` over all processes (leases,
/// timers, spawns), ignoring finished, blocked and signal-only processes;
/// `None` on an empty store.
pub async fn next_wake_is_the_earliest_wake_at(store: DynStore) {
    let next = || async { store.next_wake().await.expect("next_wake") };
    assert_eq!(next().await, None, "an empty store has no next wake");

    let lease = spawn_claimed(&store, "sleeper", &host("a"), at(10))
        .await
        .lease;
    assert_eq!(next().await, Some(at(10) + LEASE), "the lease expiry");
    suspend(&store, &lease, Some(at(500)), &[], at(11)).await;
    assert_eq!(next().await, Some(at(500)), "the timer");

    let lease = spawn_claimed(&store, "waiter", &host("a"), at(20))
        .await
        .lease;
    suspend(&store, &lease, None, &["go"], at(21)).await;
    spawn_finished(&store, "done", completed("1"), at(1)).await;
    let lease = spawn_claimed(&store, "blocked", &host("a"), at(2))
        .await
        .lease;
    let how = Finish::Blocked {
        step: None,
        location: None,
        reason: "r".to_owned(),
    };
    crate::fixture::finish(&store, &lease, how, at(2)).await;
    assert_eq!(
        next().await,
        Some(at(500)),
        "ignoring finished, blocked and waiting"
    );

    spawn(&store, "late", at(300)).await;
    assert_eq!(next().await, Some(at(300)), "a spawn is due at its now");
    spawn(&store, "early", at(100)).await;
    assert_eq!(next().await, Some(at(100)), "the minimum, not the latest");
}

/// Spawns `id` of `kind` at `now`.
async fn spawn_kind(store: &DynStore, id: &str, kind: &str, now: steadfast_core::Timestamp) {
    store
        .spawn(NewProcess {
            id: pid(id),
            kind: kind.to_owned(),
            version: 1,
            input: "{}".to_owned(),
            now,
            parent: None,
            traceparent: None,
        })
        .await
        .expect("spawn");
}

/// Lists with `filter` and returns the ids in the order returned.
async fn list_ids(store: &DynStore, filter: ListFilter) -> Vec<String> {
    store
        .list(&filter)
        .await
        .unwrap_or_else(|e| panic!("list({filter:?}) failed: {e:?}"))
        .into_iter()
        .map(|r| r.id().to_owned())
        .collect()
}

/// `list` filters by status, kind and id prefix (alone and combined) and
/// orders by id bytewise; records are complete.
pub async fn list_filters_and_orders_by_id(store: DynStore) {
    // Bytewise order: "B" < "a" < "a-1" < "a.b" < "a1" < "a_1" < "b" < "é".
    let spawned = [
        ("a_1", "order"),
        ("é", "invoice"),
        ("a1", "order"),
        ("B", "order"),
        ("a-1", "invoice"),
        ("b", "order"),
        ("a", "order"),
        ("a.b", "order"),
    ];
    for (i, (id, kind)) in spawned.into_iter().enumerate() {
        spawn_kind(&store, id, kind, at(i as u64)).await;
    }
    // Move some out of "running": a1 completed, b suspended.
    let claimed = claim_ids(&store, &host("h"), at(100), 100).await;
    assert_eq!(claimed.len(), 8, "all eight are due");
    let lease = |id: &str, epoch| steadfast_core::Lease {
        id: pid(id),
        owner: host("h"),
        epoch,
    };
    crate::fixture::finish(&store, &lease("a1", 1), completed("1"), at(101)).await;
    suspend(&store, &lease("b", 1), Some(at(999)), &[], at(101)).await;

    let all = ["B", "a", "a-1", "a.b", "a1", "a_1", "b", "é"];
    assert_eq!(
        list_ids(&store, ListFilter::default()).await,
        all,
        "no filter"
    );
    let by = |status: Option<Status>, kind: Option<&str>, prefix: Option<&str>| ListFilter {
        status,
        kind: kind.map(str::to_owned),
        id_prefix: prefix.map(str::to_owned),
        ..ListFilter::default()
    };
    let cases: [(ListFilter, &[&str]); 7] = [
        (
            by(Some(Status::Running), None, None),
            &["B", "a", "a-1", "a.b", "a_1", "é"],
        ),
        (by(Some(Status::Completed), None, None), &["a1"]),
        (by(Some(Status::Failed), None, None), &[]),
        (by(None, Some("invoice"), None), &["a-1", "é"]),
        (by(None, None, Some("a")), &["a", "a-1", "a.b", "a1", "a_1"]),
        (
            by(Some(Status::Running), Some("order"), Some("a")),
            &["a", "a.b", "a_1"],
        ),
        (by(None, Some("Order"), None), &[]),
    ];
    for (filter, want) in cases {
        assert_eq!(
            list_ids(&store, filter.clone()).await,
            want,
            "list({filter:?})"
        );
    }

    let records = store.list(&by(None, None, Some("b"))).await.expect("list");
    assert_eq!(
        records.len(),
        1,
        "prefix \"b\" matches only b (case-sensitive)"
    );
    assert_eq!(
        records[0].record(),
        Some(&get(&store, "b").await),
        "list returns full records"
    );
}

/// `%`, `_` and `\` in `id_prefix` are literal characters (no `LIKE`
/// wildcards or escapes), and prefixes are case-sensitive.
pub async fn list_prefix_is_literal(store: DynStore) {
    let ids = [
        "50%-off", "50%", "500", "50-off", "a_b", "axb", "a_", "aXb", "A_b", "x\\y", "x\\", "xy",
        "x\\\\y", "%", "_", "ü-1", "u-1",
    ];
    for (i, id) in ids.into_iter().enumerate() {
        spawn(&store, id, at(i as u64)).await;
    }
    let cases: [(&str, &[&str]); 9] = [
        ("50%", &["50%", "50%-off"]),
        ("a_", &["a_", "a_b"]),
        ("a_b", &["a_b"]),
        ("%", &["%"]),
        ("_", &["_"]),
        ("x\\", &["x\\", "x\\\\y", "x\\y"]),
        ("x\\y", &["x\\y"]),
        ("ü", &["ü-1"]),
        ("ax", &["axb"]),
    ];
    for (prefix, want) in cases {
        let filter = ListFilter {
            id_prefix: Some(prefix.to_owned()),
            ..ListFilter::default()
        };
        assert_eq!(
            list_ids(&store, filter).await,
            want,
            "id_prefix {prefix:?} must match literally and case-sensitively"
        );
    }
}

/// Keyset paging with `after` and `limit` visits every row exactly once in
/// id order, also under a status filter; `limit` 0 means 100.
pub async fn list_pages_cover_every_row_once(store: DynStore) {
    let mut all: Vec<String> = (0..130)
        .map(|i| format!("proc-{:03}", (i * 37) % 130))
        .collect();
    for (i, id) in all.iter().enumerate() {
        spawn(&store, id, at(i as u64)).await;
    }
    all.sort();
    // Every third process is completed.
    let done: Vec<String> = all.iter().step_by(3).cloned().collect();
    let claimed = store
        .claim(&host("h"), at(1000), LEASE, 200)
        .await
        .expect("claim all");
    for c in claimed
        .iter()
        .filter(|c| done.iter().any(|d| d == c.record.id.as_str()))
    {
        crate::fixture::finish(&store, &c.lease, completed("1"), at(1001)).await;
    }

    let unfiltered = ListFilter::default();
    let zero = list_ids(&store, unfiltered.clone()).await;
    assert_eq!(zero, all[..100], "limit 0 returns the first 100 by id");

    for (status, want) in [(None, &all), (Some(Status::Completed), &done)] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let filter = ListFilter {
                status,
                after: after.clone(),
                limit: 7,
                ..ListFilter::default()
            };
            let page = list_ids(&store, filter.clone()).await;
            assert!(
                page.len() <= 7,
                "list({filter:?}) returned {} > limit",
                page.len()
            );
            pages += 1;
            assert!(pages <= 100, "paging does not terminate");
            let Some(last) = page.last() else { break };
            after = Some(pid(last));
            seen.extend(page);
        }
        assert_eq!(
            &seen, want,
            "paging with status {status:?} must return every row once, in id order"
        );
    }
}

/// `counts` reports each status that has processes, with the right count.
pub async fn counts_per_status(store: DynStore) {
    let counts = || async {
        let counts = store.counts().await.expect("counts");
        let mut map = BTreeMap::new();
        assert_eq!(counts.unreadable, 0, "no row is unreadable");
        for c in counts.by_status {
            assert!(
                c.count > 0,
                "statuses with no process must be omitted: {c:?}"
            );
            let previous = map.insert(c.status.as_str(), c.count);
            assert!(previous.is_none(), "status {} reported twice", c.status);
        }
        map
    };
    assert!(counts().await.is_empty(), "an empty store has no counts");

    let h = host("h");
    let mut t = 0;
    for i in 0..2 {
        t += 1;
        let lease = spawn_claimed(&store, &format!("sus-{i}"), &h, at(t))
            .await
            .lease;
        suspend(&store, &lease, Some(at(10_000)), &[], at(t)).await;
    }
    for i in 0..4 {
        t += 1;
        spawn_finished(&store, &format!("done-{i}"), completed("1"), at(t)).await;
    }
    let how = Finish::Blocked {
        step: None,
        location: None,
        reason: "r".to_owned(),
    };
    spawn_finished(&store, "blocked", how, at(t + 1)).await;
    spawn_finished(&store, "cancelled", Finish::Cancelled, at(t + 2)).await;
    // A claimed process is still "running".
    let lease = spawn_claimed(&store, "held", &h, at(t + 3)).await.lease;
    append(&store, &lease, step(0, "s", at(t + 3))).await;
    for i in 0..3 {
        spawn(&store, &format!("run-{i}"), at(t + 4)).await;
    }

    let want = BTreeMap::from([
        ("blocked", 1),
        ("cancelled", 1),
        ("completed", 4),
        ("running", 4),
        ("suspended", 2),
    ]);
    assert_eq!(counts().await, want, "counts per status (failed omitted)");
}
