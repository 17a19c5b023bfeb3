//! `spawn`: creation, idempotency and conflicts.

use std::time::Duration;

use steadfast_core::{
    EventKind, Lease, NewProcess, SpawnAndClaim, SpawnOutcome, Status, StoreError,
};

use crate::assert_err;
use crate::fixture::{
    DynStore, KIND, LEASE, T0, append, assert_nothing_claimable, at, claim_one, completed, finish,
    get, host, journal, new_process, pid, step,
};

/// JSON text whose bytes a store must keep exactly: key order, spacing,
/// escapes, non-ASCII and astral characters.
pub const TRICKY_JSON: &str = "{\"zeta\": 1,  \"alpha\":[1, 2.50, -0, 1e3, null, true],\
     \"text\":\"Zoë \\\"quoted\\\" 'single' \\\\ back\\\\slash \\n tab\\t ü 🦀 \\u00e9\",\
     \"nested\" : {\"%\":\"_\", \"\":\"empty\"}}";

/// A new id is created runnable at once: status running, `wake_at = now`,
/// epoch 0, no owner, every optional field empty and the input kept
/// byte-exact.
pub async fn new_process_is_runnable(store: DynStore) {
    let outcome = store
        .spawn(NewProcess {
            id: pid("order-1"),
            kind: "order.ship".to_owned(),
            version: 3,
            input: TRICKY_JSON.to_owned(),
            now: T0,
            parent: None,
            traceparent: None,
        })
        .await
        .expect("spawn of a new id");
    assert_eq!(outcome, SpawnOutcome::Created, "spawn of a new id");

    let record = get(&store, "order-1").await;
    assert_eq!(record.id, pid("order-1"), "id");
    assert_eq!(record.kind, "order.ship", "kind");
    assert_eq!(record.version, 3, "the code version is kept");
    assert_eq!(record.generation, 0, "first generation");
    assert_eq!(
        record.input, TRICKY_JSON,
        "the input must be stored byte-exact (no JSON normalisation)"
    );
    assert_eq!(record.status, Status::Running, "a new process is running");
    assert_eq!(record.created_at, T0, "created_at is the spawn's now");
    assert_eq!(record.updated_at, T0, "updated_at is the spawn's now");
    assert_eq!(
        record.wake_at,
        Some(T0),
        "a new process is runnable at once"
    );
    assert!(record.waiting_for.is_empty(), "waiting_for: {record:?}");
    assert_eq!(record.owner, None, "a new process has no owner");
    assert_eq!(record.epoch, 0, "a new process has epoch 0");
    assert!(!record.cancel_requested, "cancel_requested: {record:?}");
    assert_eq!(record.output, None, "output");
    assert_eq!(record.error, None, "error");
    assert_eq!(record.blocked_step, None, "blocked_step");

    assert!(
        journal(&store, "order-1").await.is_empty(),
        "a new process has an empty journal"
    );
    let signals = store
        .pending_signals(&pid("order-1"))
        .await
        .expect("pending_signals of a new process");
    assert!(signals.is_empty(), "a new process has no signals");

    let claimed = claim_one(&store, "order-1", &host("a"), T0).await;
    assert_eq!(
        claimed.record.input, TRICKY_JSON,
        "claim returns the input byte-exact"
    );
}

/// The same id, kind and input again returns `Existing` with the stored
/// record and changes nothing, whatever state the process is in.
pub async fn spawn_is_idempotent(store: DynStore) {
    let request = |now| NewProcess {
        id: pid("p"),
        kind: KIND.to_owned(),
        version: 1,
        input: TRICKY_JSON.to_owned(),
        now,
        parent: None,
        traceparent: None,
    };
    let created = store.spawn(request(T0)).await.expect("first spawn");
    assert_eq!(created, SpawnOutcome::Created, "first spawn");
    let fresh = get(&store, "p").await;

    let again = store.spawn(request(at(1))).await.expect("second spawn");
    assert_eq!(
        again,
        SpawnOutcome::Existing(Box::new(fresh.clone())),
        "spawning again must return the stored record unchanged"
    );
    assert_eq!(
        get(&store, "p").await,
        fresh,
        "a repeated spawn changes nothing"
    );

    let claimed = claim_one(&store, "p", &host("a"), at(2)).await;
    let owned = get(&store, "p").await;
    let again = store
        .spawn(request(at(3)))
        .await
        .expect("spawn while claimed");
    assert_eq!(
        again,
        SpawnOutcome::Existing(Box::new(owned.clone())),
        "spawning a claimed process must return its current record (owner, epoch) unchanged"
    );
    assert_eq!(
        get(&store, "p").await,
        owned,
        "spawn must not reset a claimed process"
    );

    finish(&store, &claimed.lease, completed("\"done\""), at(4)).await;
    let done = get(&store, "p").await;
    let again = store
        .spawn(request(at(5)))
        .await
        .expect("spawn after completion");
    assert_eq!(
        again,
        SpawnOutcome::Existing(Box::new(done.clone())),
        "spawning a completed process must return it, not restart it"
    );
    assert_eq!(
        get(&store, "p").await.status,
        Status::Completed,
        "still completed"
    );
}

/// The same id with another input or kind fails with `SpawnConflict`
/// naming the existing kind, and changes nothing.
pub async fn spawn_conflicts_on_different_input_or_kind(store: DynStore) {
    let original = NewProcess {
        id: pid("p"),
        kind: "order".to_owned(),
        version: 1,
        input: "{\"n\":1}".to_owned(),
        now: T0,
        parent: None,
        traceparent: None,
    };
    store.spawn(original.clone()).await.expect("first spawn");
    let before = get(&store, "p").await;

    let cases = [
        ("another input", "order", "{\"n\":2}"),
        ("another kind", "invoice", "{\"n\":1}"),
        ("a kind differing only in case", "Order", "{\"n\":1}"),
        ("an input differing only in case", "order", "{\"N\":1}"),
    ];
    for (what, kind, input) in cases {
        let result = store
            .spawn(NewProcess {
                kind: kind.to_owned(),
                version: 1,
                input: input.to_owned(),
                now: at(1),
                ..original.clone()
            })
            .await;
        assert_err!(
            result,
            StoreError::SpawnConflict { ref id, ref existing_kind }
                if *id == pid("p") && existing_kind == "order",
            "spawning id \"p\" again with {what} must conflict, naming the existing kind \"order\""
        );
        assert_eq!(
            get(&store, "p").await,
            before,
            "a conflicting spawn ({what}) must change nothing"
        );
    }
}

/// `spawn_and_claim` of a new id stores the process as a claim by the
/// spawner at the spawn's `now` leaves it (owner, epoch 1, `wake_at = now +
/// lease`, the claim in its history) and returns that lease, which writes
/// its journal until another host takes it over after it expires; or, from
/// a store that does not claim on spawn, stores it as `spawn` does,
/// claimable at once. An id already stored is answered as `spawn` answers
/// it (`Existing`, or a conflict) and claimed by no one.
pub async fn spawn_and_claim_leases_a_new_process_to_its_spawner(store: DynStore) {
    let spawner = host("spawner");
    let outcome = store
        .spawn_and_claim(new_process("p", T0), &spawner, LEASE)
        .await
        .expect("spawn_and_claim of a new id");
    let lease = match outcome {
        SpawnAndClaim::Claimed(claimed) => {
            let lease = Lease {
                id: pid("p"),
                owner: spawner.clone(),
                epoch: 1,
            };
            assert_eq!(claimed.lease, lease, "the spawner's lease, epoch 1");
            assert!(
                claimed.journal.is_empty() && claimed.signals.is_empty(),
                "a new process has no journal and no signals: {claimed:?}"
            );
            let record = get(&store, "p").await;
            assert_eq!(
                claimed.record, record,
                "the returned record is the stored one"
            );
            assert_eq!(record.status, Status::Running, "running");
            assert_eq!(
                record.owner,
                Some(spawner.as_str().to_owned()),
                "owned by the spawner"
            );
            assert_eq!(record.epoch, 1, "epoch 1, as after one claim");
            assert_eq!(
                record.wake_at,
                Some(T0 + LEASE),
                "the lease runs from the spawn's now"
            );
            assert_eq!(record.created_at, T0, "created at the spawn's now");
            let history: Vec<_> = store
                .events(&pid("p"))
                .await
                .expect("events")
                .into_iter()
                .map(|e| (e.kind, e.host, e.epoch, e.at))
                .collect();
            assert_eq!(
                history,
                vec![(EventKind::Claimed, Some(spawner.as_str().to_owned()), 1, T0)],
                "the claim is in the process's history"
            );
            assert_nothing_claimable(
                &store,
                T0 + LEASE - Duration::from_micros(1),
                "the spawner holds the lease until it expires",
            )
            .await;
            append(&store, &lease, step(0, "first", at(1))).await;
            lease
        }
        SpawnAndClaim::Created => {
            assert_eq!(get(&store, "p").await.owner, None, "not claimed");
            claim_one(&store, "p", &spawner, T0).await.lease
        }
        SpawnAndClaim::Existing(record) => {
            panic!("spawn_and_claim of a new id answered Existing: {record:?}")
        }
    };
    let before = get(&store, "p").await;

    let again = store
        .spawn_and_claim(new_process("p", at(2)), &host("other"), LEASE)
        .await
        .expect("spawn_and_claim of a stored id");
    match again {
        SpawnAndClaim::Existing(record) => {
            assert_eq!(*record, before, "Existing carries the stored record")
        }
        other => panic!("a stored id must be answered Existing, got {other:?}"),
    }
    assert_eq!(
        get(&store, "p").await,
        before,
        "a repeated spawn_and_claim changes nothing"
    );
    let mut conflicting = new_process("p", at(3));
    conflicting.input = "{\"other\":1}".to_owned();
    assert_err!(
        store
            .spawn_and_claim(conflicting, &host("other"), LEASE)
            .await,
        StoreError::SpawnConflict { .. },
        "a stored id with another input"
    );

    // After the lease runs out another host takes the process over, and the
    // spawner's lease is fenced.
    let taken = claim_one(&store, "p", &host("other"), T0 + LEASE + LEASE).await;
    assert_eq!(taken.lease.epoch, lease.epoch + 1, "the takeover's epoch");
    let fenced = store.append(&lease, step(1, "late", at(99))).await;
    assert!(
        matches!(fenced, Err(StoreError::Fenced { .. })),
        "a write under the spawner's expired lease must be fenced, got {fenced:?}"
    );
}
