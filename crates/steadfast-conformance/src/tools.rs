//! What tools (CLI, dashboard) need beyond reading: where processes stand in
//! their source (`parked_at`, `parked_counts`), `rewind` and `purge`, and
//! the subscription reports they show.

use steadfast_core::{
    Finish, FunctionSource, ParkedCount, SourceLocation, Status, StoreError, SubscriptionReport,
    SuspendOutcome, Suspension,
};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, append, assert_nothing_claimable, at, claim_one, completed, finish, get, host,
    journal, pid, spawn, spawn_claimed, spawn_finished, step, timer, wait_consuming,
};

fn line(n: u32) -> SourceLocation {
    SourceLocation {
        file: "src/flow.rs".to_owned(),
        line: n,
    }
}

async fn park(store: &DynStore, id: &str, lines: &[u32], now: steadfast_core::Timestamp) {
    let lease = spawn_claimed(store, id, &host("a"), now).await.lease;
    let outcome = store
        .suspend(
            &lease,
            Suspension {
                wake_at: None,
                waiting_for: vec!["go".to_owned()],
                parked_at: lines.iter().map(|n| line(*n)).collect(),
                now,
            },
        )
        .await
        .expect("suspend");
    assert_eq!(outcome, SuspendOutcome::Suspended);
}

/// `parked_at` is stored by `suspend` and by `finish(Blocked)` with a
/// location, and cleared by a claim and by finishing otherwise.
pub async fn parked_at_follows_suspension_and_blocking(store: DynStore) {
    park(&store, "p", &[12, 14], at(0)).await;
    assert_eq!(get(&store, "p").await.parked_at, [line(12), line(14)]);

    store
        .signal(&pid("p"), "go", "null", at(1))
        .await
        .expect("signal");
    let claimed = claim_one(&store, "p", &host("b"), at(1)).await;
    assert!(
        claimed.record.parked_at.is_empty(),
        "a claimed (running) process is parked nowhere: {:?}",
        claimed.record
    );
    let blocked = Finish::Blocked {
        step: Some("x".to_owned()),
        reason: "does not decode".to_owned(),
        location: Some(line(20)),
    };
    finish(&store, &claimed.lease, blocked, at(2)).await;
    assert_eq!(get(&store, "p").await.parked_at, [line(20)]);

    store.retry(&pid("p"), at(3)).await.expect("retry");
    assert!(
        get(&store, "p").await.parked_at.is_empty(),
        "retry clears it"
    );
    let claimed = claim_one(&store, "p", &host("b"), at(3)).await;
    finish(&store, &claimed.lease, completed("1"), at(4)).await;
    assert!(get(&store, "p").await.parked_at.is_empty());
}

/// `parked_counts(kind)` counts the suspended and blocked processes of that
/// kind at each line, a process parked at two lines counting at both.
pub async fn parked_counts_per_line(store: DynStore) {
    park(&store, "a", &[12], at(0)).await;
    park(&store, "b", &[12, 14], at(0)).await;
    park(&store, "c", &[14], at(0)).await;
    let lease = spawn_claimed(&store, "d", &host("a"), at(0)).await.lease;
    let blocked = Finish::Blocked {
        step: Some("x".to_owned()),
        reason: "why".to_owned(),
        location: Some(line(12)),
    };
    finish(&store, &lease, blocked, at(1)).await;
    spawn(&store, "running", at(0)).await;

    let counts = store
        .parked_counts(crate::fixture::KIND)
        .await
        .expect("parked_counts");
    let expected = [
        (12, Status::Suspended, 2),
        (12, Status::Blocked, 1),
        (14, Status::Suspended, 2),
    ];
    assert_eq!(counts.unreadable, 0, "{counts:?}");
    let got: Vec<(u32, Status, u64)> = counts
        .by_location
        .iter()
        .map(|c: &ParkedCount| (c.location.line, c.status, c.count))
        .collect();
    for want in expected {
        assert!(got.contains(&want), "{want:?} missing from {got:?}");
    }
    assert_eq!(got.len(), expected.len(), "{got:?}");
    let other = store
        .parked_counts("another kind")
        .await
        .expect("parked_counts");
    assert!(other.by_location.is_empty(), "{other:?}");
}

/// `rewind(id, step)` drops that entry and all later ones, returns the
/// signals they consumed to the pending list, and makes the process
/// runnable again with a new epoch that fences the old lease.
pub async fn rewind_drops_later_entries_and_returns_signals(store: DynStore) {
    let claimed = spawn_claimed(&store, "p", &host("a"), at(0)).await;
    let lease = claimed.lease;
    let sig = store
        .signal(&pid("p"), "go", "\"ok\"", at(0))
        .await
        .expect("signal");
    append(&store, &lease, step(0, "first", at(1))).await;
    append(&store, &lease, wait_consuming(1, "go", at(2), sig)).await;
    append(&store, &lease, step(2, "third", at(3))).await;
    append(&store, &lease, timer(3, "nap", at(4), at(100))).await;
    finish(&store, &lease, completed("\"done\""), at(5)).await;

    let dropped = store.rewind(&pid("p"), "go", at(6)).await.expect("rewind");
    assert_eq!(dropped, 3, "go, third and nap are dropped");
    let names: Vec<String> = journal(&store, "p")
        .await
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["first"]);
    let pending = store.pending_signals(&pid("p")).await.expect("pending");
    assert_eq!(pending.len(), 1, "the consumed signal is pending again");
    assert_eq!(pending[0].id, sig);

    let record = get(&store, "p").await;
    assert_eq!(record.status, Status::Running);
    assert_eq!(record.output, None);
    assert_eq!(record.wake_at, Some(at(6)));
    assert!(record.epoch > lease.epoch, "the epoch moves on");
    let stale = store.append(&lease, step(9, "late", at(7))).await;
    assert_err!(stale, StoreError::Fenced { .. }, "the old lease is fenced");
    let again = claim_one(&store, "p", &host("b"), at(6)).await;
    assert_eq!(again.journal.len(), 1);
    assert_eq!(again.signals.len(), 1);
}

/// `rewind` refuses an unknown process, an unknown step and a process a
/// live host holds, and changes nothing then.
pub async fn rewind_refuses_bad_requests(store: DynStore) {
    let missing = store.rewind(&pid("ghost"), "x", at(0)).await;
    assert_err!(missing, StoreError::NotFound(_), "unknown process");

    let lease = spawn_claimed(&store, "p", &host("a"), at(0)).await.lease;
    append(&store, &lease, step(0, "first", at(1))).await;
    let held = store.rewind(&pid("p"), "first", at(2)).await;
    assert_err!(
        held,
        StoreError::InvalidState { .. },
        "a live lease blocks a rewind"
    );

    finish(&store, &lease, completed("1"), at(3)).await;
    let unknown = store.rewind(&pid("p"), "no such step", at(4)).await;
    assert_err!(unknown, StoreError::InvalidInput(_), "unknown step");
    assert_eq!(journal(&store, "p").await.len(), 1, "nothing changed");
    assert_eq!(get(&store, "p").await.status, Status::Completed);

    // An expired lease no longer blocks it.
    let lease = spawn_claimed(&store, "q", &host("a"), at(0)).await.lease;
    append(&store, &lease, step(0, "first", at(1))).await;
    let later = at(0) + LEASE + LEASE;
    assert_eq!(
        store
            .rewind(&pid("q"), "first", later)
            .await
            .expect("rewind"),
        1
    );
    assert_nothing_claimable(&store, at(1), "runnable only from the rewind on").await;
}

/// `purge(before)` deletes finished processes updated before the cutoff,
/// with their journals and signals, and nothing else.
pub async fn purge_deletes_only_old_finished_processes(store: DynStore) {
    spawn_finished(&store, "old-done", completed("1"), at(10)).await;
    spawn_finished(
        &store,
        "old-failed",
        Finish::Failed { error: "e".into() },
        at(10),
    )
    .await;
    spawn_finished(&store, "new-done", completed("1"), at(100)).await;
    park(&store, "old-suspended", &[1], at(0)).await;
    spawn(&store, "old-running", at(0)).await;

    let purged = store.purge(at(50)).await.expect("purge");
    assert_eq!(purged, 2);
    for gone in ["old-done", "old-failed"] {
        assert_err!(
            store.get(&pid(gone)).await,
            StoreError::NotFound(_),
            "purged"
        );
        assert_err!(
            store.journal(&pid(gone)).await,
            StoreError::NotFound(_),
            "purged"
        );
    }
    for kept in ["new-done", "old-running", "old-suspended"] {
        get(&store, kept).await;
    }
    assert_eq!(store.purge(at(50)).await.expect("purge again"), 0);
}

/// `save_sources` stores function sources (byte-exact), replaces the text of
/// the same file and name, and `sources` lists them by file and first line.
pub async fn sources_are_saved_and_replaced(store: DynStore) {
    assert!(store.sources().await.expect("sources").is_empty());
    let source = |file: &str, name: &str, first_line: u32, text: &str| FunctionSource {
        file: file.to_owned(),
        name: name.to_owned(),
        first_line,
        text: text.to_owned(),
    };
    let flow = source(
        "src/b.rs",
        "flow",
        10,
        "async fn flow() {\n    \"ü 🦀 <script>\"\n}",
    );
    let early = source("src/b.rs", "early", 2, "fn early() {}");
    let other = source("src/a.rs", "other", 50, "fn other() {}");
    store
        .save_sources(&[flow.clone(), early.clone(), other.clone()])
        .await
        .expect("save");
    assert_eq!(
        store.sources().await.expect("sources"),
        [other.clone(), early.clone(), flow.clone()]
    );
    let moved = source("src/b.rs", "flow", 12, "async fn flow() {}");
    store
        .save_sources(std::slice::from_ref(&moved))
        .await
        .expect("save again");
    assert_eq!(
        store.sources().await.expect("sources"),
        [other, early, moved.clone()]
    );
    assert!(moved.contains(&line_in("src/b.rs", 12)));
    assert!(!moved.contains(&line_in("src/b.rs", 13)));
}

/// `save_subscription` keeps one row per subscription name and host with
/// every field as saved (the lag and its time, the last dead-letter reason
/// included, text byte-exact), a later save of the same name and host
/// replaces it, an older one (by `updated_at`) changes nothing, a report
/// that breaks `check_subscription_report` is refused and stores nothing,
/// and `subscriptions` lists them by name, then host.
pub async fn subscription_reports_are_kept_per_name_and_host(store: DynStore) {
    assert!(
        store
            .subscriptions()
            .await
            .expect("subscriptions")
            .is_empty()
    );
    let report = |name: &str, host: &str, received: u64, secs: u64| SubscriptionReport {
        name: name.to_owned(),
        host: host.to_owned(),
        source: "rabbitmq queue orders".to_owned(),
        received,
        routed: received.saturating_sub(1),
        dead_lettered: received.min(1),
        lag: None,
        lag_read_at: None,
        last_dead_letter_reason: None,
        updated_at: at(secs),
    };
    let save = |r: SubscriptionReport| {
        let store = store.clone();
        async move { store.save_subscription(&r).await }
    };
    let first = SubscriptionReport {
        lag: Some(7),
        lag_read_at: Some(at(1)),
        last_dead_letter_reason: Some("no route takes the message: “ü” <b>".to_owned()),
        ..report("orders", "h-2", 3, 2)
    };
    save(first.clone()).await.expect("save");
    let payments = report("payments", "h-1", 0, 2);
    save(payments.clone()).await.expect("save");
    let other_host = report("orders", "h-1", 5, 2);
    save(other_host.clone()).await.expect("save");
    assert_eq!(
        store.subscriptions().await.expect("subscriptions"),
        [other_host.clone(), first.clone(), payments.clone()],
        "one row per name and host, by name then host, every field as saved"
    );
    // A later save replaces the row (the lag may become unknown again).
    let later = SubscriptionReport {
        lag: Some(u64::try_from(i64::MAX).expect("fits")),
        lag_read_at: Some(at(4)),
        ..report("orders", "h-2", 9, 5)
    };
    save(later.clone()).await.expect("save later");
    // An older save (retried late) changes nothing.
    save(report("orders", "h-2", 4, 3))
        .await
        .expect("save older");
    assert_eq!(
        store.subscriptions().await.expect("subscriptions"),
        [other_host.clone(), later.clone(), payments.clone()],
        "a later save replaces the row, an older one is ignored"
    );
    for bad in [
        report("", "h-1", 1, 9),
        report("orders", "", 1, 9),
        report("orders\n", "h-1", 1, 9),
        report("orders", "h-1", u64::MAX, 9),
    ] {
        assert_err!(
            store.save_subscription(&bad).await,
            StoreError::InvalidInput(_),
            "report {bad:?}"
        );
    }
    assert_eq!(
        store.subscriptions().await.expect("subscriptions"),
        [other_host, later, payments],
        "a refused report stores nothing"
    );
}

fn line_in(file: &str, line: u32) -> SourceLocation {
    SourceLocation {
        file: file.to_owned(),
        line,
    }
}

/// `continue_as_new` restarts a claimed process with a new input and an
/// empty journal: the old input and journal become history, the generation
/// grows, unconsumed signals stay, the lease is released and the process is
/// runnable at once; a stale lease is fenced; purge removes the history too.
pub async fn continue_as_new_keeps_history(store: DynStore) {
    let lease = spawn_claimed(&store, "loop", &host("a"), at(0)).await.lease;
    append(&store, &lease, step(0, "first", at(1))).await;
    append(&store, &lease, step(1, "second", at(2))).await;
    store
        .signal(&pid("loop"), "later", "1", at(2))
        .await
        .expect("signal");
    store
        .continue_as_new(&lease, "{\"round\":2}", at(3))
        .await
        .expect("continue as new");

    let record = get(&store, "loop").await;
    assert_eq!(record.generation, 1);
    assert_eq!(record.input, "{\"round\":2}");
    assert_eq!(record.status, Status::Running);
    assert_eq!(record.owner, None);
    assert_eq!(record.wake_at, Some(at(3)));
    assert!(journal(&store, "loop").await.is_empty(), "a fresh journal");
    let pending = store.pending_signals(&pid("loop")).await.expect("signals");
    assert_eq!(pending.len(), 1, "unconsumed signals stay");
    let history = store.history(&pid("loop")).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].generation, 0);
    assert_eq!(history[0].input, "{}");
    assert_eq!(history[0].ended_at, at(3));
    let names: Vec<&str> = history[0].journal.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);

    let stale = store.append(&lease, step(2, "late", at(4))).await;
    assert_err!(stale, StoreError::Fenced { .. }, "the old lease is fenced");
    let again = claim_one(&store, "loop", &host("b"), at(3)).await;
    assert!(again.journal.is_empty());
    append(&store, &again.lease, step(0, "first", at(4))).await;
    finish(&store, &again.lease, completed("1"), at(5)).await;
    assert_err!(
        store.history(&pid("ghost")).await,
        StoreError::NotFound(_),
        "unknown id"
    );
    assert_eq!(store.purge(at(6)).await.expect("purge"), 1);
    assert_err!(
        store.history(&pid("loop")).await,
        StoreError::NotFound(_),
        "purged"
    );
}
