//! Property tests of everything the engine decodes from outside or from the
//! store: spawn inputs, signal payloads and recorded journal outcomes. None
//! may panic; each bad value gets a typed error (or blocks the one process
//! it belongs to, naming the value) and changes nothing stored.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use steadfast::{
    Backend, EntryKind, EntryStatus, Error, Host, HostBuilder, JournalEntry, Process, ProcessId,
    SqliteStore, Status, StepError, StoreError, Timestamp,
};
use steadfast_core::{HostId, NewProcess};

/// A time far ahead of the test host's clock: processes spawned at it are
/// not due for the host, so only the test touches them until it releases
/// them.
const FUTURE: Timestamp = Timestamp::from_micros(4_102_444_800_000_000);

/// A structured input, so that most JSON does not fit it.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Signup {
    email: String,
    age: u8,
}

#[steadfast::process(kind = SignupKind)]
async fn signup(p: Process, input: Signup) -> Result<u16, StepError> {
    let doubled: u16 = p
        .step("doubled", || async move {
            Ok::<u16, StepError>(u16::from(input.age) * 2)
        })
        .await
        .map_err(|e| StepError::permanent(e.to_string()))?;
    Ok(doubled)
}

/// JSON values of every shape, small enough to shrink well.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![Just("email".to_owned()), Just("age".to_owned()), ".{0,6}"],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that is sometimes JSON and often not.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        ".{0,40}",
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    host: Host,
    store: Arc<dyn Backend>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (host, store) = runtime.block_on(async {
        let store: Arc<dyn Backend> = Arc::new(
            SqliteStore::open(dir.path().join("decoding.db"))
                .await
                .expect("open"),
        );
        // The tests record journals "in the future" (where the host cannot
        // claim them) through the store: it must decide with those times.
        store.follow_host_clock();
        let host = HostBuilder::from_arc(Arc::clone(&store))
            .register("signup", signup)
            .poll_interval(Duration::from_millis(10))
            .build();
        (host, store)
    });
    Fixture {
        runtime,
        host,
        store,
        _dir: dir,
    }
}

/// Waits until process `id` is neither running nor suspended.
async fn settled(host: &Host, id: &str) -> steadfast::ProcessRecord {
    for _ in 0..5_000 {
        let record = host.status(id).await.expect("status");
        if record.status.is_finished() || record.status == Status::Blocked {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{id} did not settle");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A spawn input is accepted exactly when it decodes into the kind's
    /// input type; anything else is `Error::InvalidInput` and stores nothing.
    #[test]
    fn spawn_inputs_are_accepted_only_when_they_fit(inputs in prop::collection::vec(any_text(), 1..8)) {
        let f = fixture();
        f.runtime.block_on(async {
            for (i, input) in inputs.iter().enumerate() {
                let id = format!("spawn-{i}");
                let fits = serde_json::from_str::<Signup>(input).is_ok();
                match f.host.spawn_json("signup", &id, input).await {
                    Ok(_) => prop_assert!(fits, "accepted an input that does not fit: {input:?}"),
                    Err(Error::InvalidInput { kind, .. }) => {
                        prop_assert!(!fits, "refused an input that fits: {input:?}");
                        prop_assert_eq!(kind, "signup");
                        let stored = f.store.get(&ProcessId::new(&id).expect("id")).await;
                        prop_assert!(matches!(stored, Err(StoreError::NotFound(_))), "a refused spawn stored {stored:?}");
                    }
                    Err(other) => prop_assert!(false, "unexpected error for {input:?}: {other}"),
                }
            }
            Ok(())
        })?;
    }

    /// A signal payload is stored exactly when it is JSON; a payload that is
    /// not is a typed error and nothing is stored.
    #[test]
    fn signal_payloads_are_stored_only_when_they_are_json(payloads in prop::collection::vec(any_text(), 1..8)) {
        let f = fixture();
        f.runtime.block_on(async {
            // A process that has ended keeps no signals; use one that waits forever.
            let store = Arc::clone(&f.store);
            let id = ProcessId::new("receiver").expect("id");
            store.spawn(NewProcess {
                id: id.clone(),
                kind: "not registered here".to_owned(),
                version: 1,
                input: "null".to_owned(),
                now: FUTURE,
                parent: None,
                traceparent: None,
            }).await.expect("spawn");
            let mut stored = 0;
            for payload in &payloads {
                let is_json = serde_json::from_str::<serde_json::Value>(payload).is_ok();
                match f.host.signal_json("receiver", "anything", payload).await {
                    Ok(()) => {
                        prop_assert!(is_json, "stored a payload that is not JSON: {payload:?}");
                        stored += 1;
                    }
                    Err(Error::Store(StoreError::InvalidInput(message))) => {
                        prop_assert!(!is_json, "refused JSON: {payload:?}: {message}");
                    }
                    Err(other) => prop_assert!(false, "unexpected error for {payload:?}: {other}"),
                }
            }
            let pending = store.pending_signals(&id).await.expect("pending");
            prop_assert_eq!(pending.len(), stored);
            Ok(())
        })?;
    }

    /// A recorded outcome that no longer decodes blocks only its process,
    /// naming the step; one that decodes is replayed as the step's value.
    #[test]
    fn recorded_outcomes_never_panic_the_replay(outcomes in prop::collection::vec(any_text(), 1..4)) {
        let f = fixture();
        f.runtime.block_on(async {
            let other = HostId::new("a host that crashed");
            for (i, outcome) in outcomes.iter().enumerate() {
                let id = format!("replay-{i}");
                let pid = ProcessId::new(&id).expect("id");
                // Record the journal as a crashed host would have, then let
                // the test's host replay it.
                f.store.spawn(NewProcess {
                    id: pid.clone(),
                    kind: "signup".to_owned(),
                    version: 1,
                    input: r#"{"age":4,"email":"a@example.com"}"#.to_owned(),
                    now: FUTURE,
                    parent: None,
                    traceparent: None,
                }).await.expect("spawn");
                let claimed = f.store
                    .claim(&other, FUTURE, Duration::from_secs(3600), 1)
                    .await
                    .expect("claim")
                    .pop()
                    .expect("the process just spawned is due at FUTURE");
                prop_assert_eq!(claimed.record.id.as_str(), id.as_str());
                f.store.append(&claimed.lease, JournalEntry {
                    seq: 1,
                    name: "doubled".to_owned(),
                    kind: EntryKind::Step,
                    status: EntryStatus::Completed,
                    outcome: Some(outcome.clone()),
                    attempts: 1,
                    started_at: FUTURE,
                    finished_at: Some(FUTURE),
                    due_at: None,
                    location: None,
                    consumed_signal: None,
                }).await.expect("append");
                f.store.release(&other, Timestamp::from_micros(1)).await.expect("release");
                let record = settled(&f.host, &id).await;
                match serde_json::from_str::<u16>(outcome) {
                    Ok(value) => {
                        prop_assert_eq!(record.status, Status::Completed, "{:?}", record.error);
                        let expected = value.to_string();
                        prop_assert_eq!(record.output.as_deref(), Some(expected.as_str()));
                    }
                    Err(_) => {
                        prop_assert_eq!(record.status, Status::Blocked);
                        let reason = record.error.unwrap_or_default();
                        prop_assert!(reason.contains("no longer decodes"), "{reason}");
                        prop_assert_eq!(record.blocked_step.as_deref(), Some("doubled"));
                        let journal = f.store.journal(&pid).await.expect("journal");
                        prop_assert_eq!(journal.len(), 1, "the journal stays as it was");
                        prop_assert_eq!(journal[0].outcome.as_deref(), Some(outcome.as_str()));
                    }
                }
            }
            Ok(())
        })?;
    }
}
