//! `append` and `journal`: inserting entries, duplicates, completing
//! scheduled entries in place, field round-trips and consuming signals.

use std::time::Duration;

use steadfast_core::{
    EntryKind, EntryStatus, JournalEntry, PendingSignal, SourceLocation, StoreError, Timestamp,
};

use crate::assert_err;
use crate::fixture::{
    DynStore, LEASE, T0, append, at, claim_one, host, journal, pid, spawn_claimed, step, timer,
    wait_consuming,
};
use crate::spawn::TRICKY_JSON;

/// A new name is inserted; the same name again fails with `DuplicateEntry`
/// (for a completed and a failed entry alike) and leaves the entry as it was.
pub async fn append_inserts_and_rejects_duplicates(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let original = step(0, "charge", at(1));
    append(&store, &lease, original.clone()).await;
    let failed = JournalEntry {
        status: EntryStatus::Failed,
        outcome: Some("\"card declined\"".to_owned()),
        ..step(1, "refund", at(1))
    };
    append(&store, &lease, failed.clone()).await;
    let before = journal(&store, "p").await;
    assert_eq!(before.len(), 2, "two entries were appended: {before:?}");

    for name in ["charge", "refund"] {
        let again = JournalEntry {
            outcome: Some("\"different\"".to_owned()),
            ..step(7, name, at(2))
        };
        let result = store.append(&lease, again).await;
        assert_err!(
            result,
            StoreError::DuplicateEntry { ref id, name: ref dup } if *id == pid("p") && dup == name,
            "appending {name:?} a second time must fail with DuplicateEntry naming it"
        );
    }
    assert_eq!(
        journal(&store, "p").await,
        before,
        "rejected duplicates must not change the journal"
    );
}

/// A `Scheduled` entry can be scheduled again (a step waiting durably for
/// its next attempt): the update keeps one row and takes the new `seq`,
/// `attempts`, `due_at` and outcome; completing it afterwards works as for a
/// timer.
pub async fn scheduled_entry_can_be_rescheduled(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let waiting = |seq: i64, attempts: u32, due: Timestamp, error: &str| JournalEntry {
        seq,
        kind: EntryKind::Step,
        attempts,
        outcome: Some(format!("{{\"last_error\":{error:?}}}")),
        ..timer(seq, "mail sent", at(1), due)
    };
    append(&store, &lease, waiting(0, 1, at(60), "down")).await;
    append(&store, &lease, waiting(1, 2, at(180), "still down")).await;
    let entries = journal(&store, "p").await;
    assert_eq!(entries.len(), 1, "one row: {entries:?}");
    let e = &entries[0];
    assert_eq!(e.status, EntryStatus::Scheduled, "still scheduled: {e:?}");
    assert_eq!(e.attempts, 2, "attempts updated: {e:?}");
    assert_eq!(e.due_at, Some(at(180)), "due_at updated: {e:?}");
    assert_eq!(e.seq, 1, "seq updated: {e:?}");
    assert!(
        e.outcome
            .as_deref()
            .is_some_and(|o| o.contains("still down")),
        "outcome updated: {e:?}"
    );
    assert_eq!(e.started_at, at(1), "started_at kept: {e:?}");

    let done = JournalEntry {
        seq: 2,
        status: EntryStatus::Completed,
        outcome: Some("7".to_owned()),
        attempts: 3,
        finished_at: Some(at(180)),
        due_at: None,
        ..waiting(2, 3, at(180), "")
    };
    append(&store, &lease, done).await;
    let entries = journal(&store, "p").await;
    assert_eq!(entries.len(), 1, "one row: {entries:?}");
    assert_eq!(
        (
            entries[0].status,
            entries[0].attempts,
            entries[0].outcome.as_deref()
        ),
        (EntryStatus::Completed, 3, Some("7")),
        "completed in place: {entries:?}"
    );
}

/// A `Scheduled` entry is updated in place by an append of the same name:
/// it takes the new `seq` (its outcome's place in the order of outcomes),
/// status, outcome and `finished_at`; once completed, the name is a
/// duplicate again.
pub async fn scheduled_entry_is_completed_in_place(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    append(&store, &lease, timer(0, "nap", at(1), at(60))).await;
    append(&store, &lease, step(1, "after", at(2))).await;

    let fired = JournalEntry {
        // The outcome comes after "after": it moves to the end.
        seq: 9,
        status: EntryStatus::Completed,
        outcome: Some("null".to_owned()),
        finished_at: Some(at(60)),
        ..timer(0, "nap", at(1), at(60))
    };
    append(&store, &lease, fired.clone()).await;

    let entries = journal(&store, "p").await;
    assert_eq!(
        entries.len(),
        2,
        "the update must not add a row: {entries:?}"
    );
    let nap = &entries[1];
    assert_eq!(
        (nap.seq, nap.name.as_str()),
        (9, "nap"),
        "the completed timer takes the seq of its outcome and moves last: {entries:?}"
    );
    assert_eq!(
        nap.status,
        EntryStatus::Completed,
        "status updated: {nap:?}"
    );
    assert_eq!(
        nap.outcome.as_deref(),
        Some("null"),
        "outcome updated: {nap:?}"
    );
    assert_eq!(
        nap.finished_at,
        Some(at(60)),
        "finished_at updated: {nap:?}"
    );
    assert_eq!(nap.kind, EntryKind::Timer, "kind kept: {nap:?}");
    assert_eq!(nap.due_at, Some(at(60)), "due_at kept: {nap:?}");
    assert_eq!(
        (entries[0].seq, entries[0].name.as_str()),
        (1, "after"),
        "the other entry is untouched"
    );

    let result = store.append(&lease, fired).await;
    assert_err!(
        result,
        StoreError::DuplicateEntry { .. },
        "a completed (formerly scheduled) entry must reject another append"
    );
}

/// Entries of every kind and status read back field by field, through
/// `journal` and through a later `claim`, `consumed_signal` included.
pub async fn entries_round_trip_every_field(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let signal = store
        .signal(&pid("p"), "go", "{}", at(1))
        .await
        .expect("signal");
    let entries = vec![
        JournalEntry {
            seq: 0,
            name: "step: ünïcødé \"quoted\" 🦀".to_owned(),
            kind: EntryKind::Step,
            status: EntryStatus::Completed,
            outcome: Some(TRICKY_JSON.to_owned()),
            attempts: u32::MAX,
            started_at: Timestamp::from_micros(1),
            finished_at: Some(Timestamp::from_micros(i64::MAX - 1)),
            due_at: None,
            location: Some(SourceLocation {
                file: "src/dir with space/ünï\\x.rs".to_owned(),
                line: u32::MAX,
            }),
            consumed_signal: None,
        },
        JournalEntry {
            seq: 1,
            name: "failed".to_owned(),
            kind: EntryKind::Step,
            status: EntryStatus::Failed,
            outcome: Some("{\"error\": \"boom\\nline 2\"}".to_owned()),
            attempts: 3,
            started_at: at_offset(-5),
            finished_at: Some(at(2)),
            due_at: None,
            location: Some(SourceLocation {
                file: "a.rs".to_owned(),
                line: 1,
            }),
            consumed_signal: None,
        },
        JournalEntry {
            seq: 2,
            name: "value".to_owned(),
            kind: EntryKind::Value,
            status: EntryStatus::Completed,
            outcome: Some("\"0191d6a0-0000-7000-8000-000000000000\"".to_owned()),
            attempts: 0,
            started_at: at(3),
            finished_at: None,
            due_at: None,
            location: None,
            consumed_signal: None,
        },
        JournalEntry {
            seq: 3,
            name: "timer".to_owned(),
            kind: EntryKind::Timer,
            status: EntryStatus::Scheduled,
            outcome: None,
            attempts: 0,
            started_at: at(4),
            finished_at: None,
            due_at: Some(at(86_400 * 365)),
            location: None,
            consumed_signal: None,
        },
        JournalEntry {
            seq: 4,
            name: "wait".to_owned(),
            kind: EntryKind::Wait,
            status: EntryStatus::Completed,
            outcome: Some("{}".to_owned()),
            attempts: 0,
            started_at: at(5),
            finished_at: Some(at(6)),
            due_at: Some(at(7)),
            location: None,
            consumed_signal: Some(signal),
        },
        JournalEntry {
            seq: 5,
            name: "scheduled wait".to_owned(),
            kind: EntryKind::Wait,
            status: EntryStatus::Scheduled,
            outcome: None,
            attempts: 0,
            started_at: at(8),
            finished_at: None,
            due_at: None,
            location: Some(SourceLocation {
                file: String::new(),
                line: 0,
            }),
            consumed_signal: None,
        },
    ];
    for entry in &entries {
        append(&store, &lease, entry.clone()).await;
    }
    let read = journal(&store, "p").await;
    assert_same_entries(&read, &entries, "journal()");
    let claimed = claim_one(&store, "p", &host("b"), T0 + LEASE).await;
    assert_same_entries(&claimed.journal, &entries, "claim()");
}

fn at_offset(secs: i64) -> Timestamp {
    Timestamp::from_micros(T0.as_micros() + secs * 1_000_000)
}

fn assert_same_entries(read: &[JournalEntry], written: &[JournalEntry], via: &str) {
    assert_eq!(
        read.len(),
        written.len(),
        "{via} must return every appended entry: {read:?}"
    );
    for (got, want) in read.iter().zip(written) {
        assert_eq!(
            got, want,
            "{via}: entry {:?} must read back exactly as appended",
            want.name
        );
    }
}

/// An entry with `consumed_signal` marks that signal consumed: it leaves
/// `pending_signals` and the signals of the next claim, the others stay.
pub async fn consumed_signal_is_marked_consumed(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let id = pid("p");
    let first = store.signal(&id, "go", "1", at(1)).await.expect("signal 1");
    let second = store.signal(&id, "go", "2", at(2)).await.expect("signal 2");
    let other = store
        .signal(&id, "other", "3", at(3))
        .await
        .expect("signal 3");

    append(&store, &lease, wait_consuming(0, "wait-go", at(4), first)).await;
    let expected = vec![
        PendingSignal {
            id: second,
            name: "go".to_owned(),
            payload: "2".to_owned(),
            sent_at: at(2),
            traceparent: None,
        },
        PendingSignal {
            id: other,
            name: "other".to_owned(),
            payload: "3".to_owned(),
            sent_at: at(3),
            traceparent: None,
        },
    ];
    let pending = store.pending_signals(&id).await.expect("pending_signals");
    assert_eq!(
        pending, expected,
        "the consumed signal must leave pending_signals"
    );

    let claimed = claim_one(&store, "p", &host("b"), T0 + LEASE).await;
    assert_eq!(
        claimed.signals, expected,
        "a consumed signal must not be handed to the next claim"
    );
    append(
        &store,
        &claimed.lease,
        wait_consuming(1, "wait-other", T0 + LEASE + Duration::from_secs(1), other),
    )
    .await;
    let pending = store.pending_signals(&id).await.expect("pending_signals");
    assert_eq!(pending, expected[..1], "only the second \"go\" is left");
}

/// An append that fails (duplicate name) must not consume its signal:
/// the entry and the consumption are one transaction.
pub async fn failed_append_does_not_consume_signal(store: DynStore) {
    let lease = spawn_claimed(&store, "p", &host("a"), T0).await.lease;
    let id = pid("p");
    let signal = store.signal(&id, "go", "1", at(1)).await.expect("signal");
    append(&store, &lease, step(0, "wait", at(1))).await;
    let result = store
        .append(&lease, wait_consuming(0, "wait", at(2), signal))
        .await;
    assert_err!(
        result,
        StoreError::DuplicateEntry { .. },
        "duplicate wait entry"
    );
    let pending = store.pending_signals(&id).await.expect("pending_signals");
    assert_eq!(
        pending.iter().map(|s| s.id).collect::<Vec<_>>(),
        [signal],
        "a rejected append must not consume its signal"
    );
}
