//! Typed step failures: a step's error keeps its serialized form and type,
//! so compensation code matches on it (`StepFailed::error`), and so does the
//! caller of `outcome` (`Error::error`); journal entries written before the
//! typed error was kept still decode. Also the `Client`: it never runs a
//! process, reads journals, and `outcome_timeout` gives up with a typed
//! error.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steadfast::{
    Backend, Client, EntryKind, EntryStatus, Error, Host, HostBuilder, JournalEntry, Process,
    ProcessId, SqliteStore, Status, StepFailed, StepResultExt as _, Timestamp,
};
use steadfast_core::{HostId, NewProcess};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum PaymentError {
    #[error("card declined: {0}")]
    Declined(String),
    #[error("bank unreachable")]
    Unreachable,
}

async fn charge(cents: u64) -> Result<u64, PaymentError> {
    match cents {
        0..=100 => Ok(cents),
        101..=1000 => Err(PaymentError::Declined("over the limit".to_owned())),
        _ => Err(PaymentError::Unreachable),
    }
}

/// Compensates a declined card (matching on the typed error), returns any
/// other failure as it is.
#[steadfast::process]
async fn order(p: Process, cents: u64) -> Result<String, StepFailed> {
    let charged = p
        .step(
            "charged",
            move || async move { charge(cents).await.permanent() },
        )
        .await;
    match charged {
        Ok(paid) => Ok(format!("paid {paid}")),
        Err(failed) => match failed.error::<PaymentError>() {
            Some(PaymentError::Declined(why)) => {
                p.step("customer told", || async { Ok(()) }).await?;
                Ok(format!("declined: {why}"))
            }
            _ => Err(failed),
        },
    }
}

struct Fixture {
    host: Host,
    store: Arc<dyn Backend>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store: Arc<dyn Backend> = Arc::new(
        SqliteStore::open(dir.path().join("typed.db"))
            .await
            .expect("open"),
    );
    let host = HostBuilder::from_arc(Arc::clone(&store))
        .register_kind::<Order>()
        .poll_interval(Duration::from_millis(10))
        .build();
    Fixture {
        host,
        store,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_step_error_reaches_compensation_and_the_outcome() {
    let f = fixture().await;
    f.host.spawn("order", "small", &50u64).await.expect("spawn");
    f.host
        .spawn("order", "declined", &500u64)
        .await
        .expect("spawn");
    f.host
        .spawn("order", "unreachable", &5000u64)
        .await
        .expect("spawn");
    assert_eq!(
        f.host.outcome::<String>("small").await.expect("small"),
        "paid 50"
    );
    assert_eq!(
        f.host
            .outcome::<String>("declined")
            .await
            .expect("declined"),
        "declined: over the limit",
        "compensation matched on the typed error"
    );
    let err = f
        .host
        .outcome::<String>("unreachable")
        .await
        .expect_err("fails");
    assert_eq!(err.error::<PaymentError>(), Some(PaymentError::Unreachable));
    let failed = err.step_failed().expect("the step failure");
    assert_eq!(failed.step, "charged");
    assert!(failed.permanent);
    assert!(
        failed
            .error_type
            .as_deref()
            .is_some_and(|t| t.ends_with("PaymentError")),
        "{failed:?}"
    );
    // The journal records the typed error, so a replay returns it too.
    let journal = f.host.journal("unreachable").await.expect("journal");
    let outcome = journal[0].outcome.as_deref().expect("outcome");
    assert!(
        outcome.contains(r#""error_value":"Unreachable""#),
        "{outcome}"
    );
    // A client (no runners) gets the same typed error.
    let client = HostBuilder::from_arc(Arc::clone(&f.store))
        .register_kind::<Order>()
        .client();
    let err = client
        .outcome::<String>("unreachable")
        .await
        .expect_err("fails");
    assert_eq!(err.error::<PaymentError>(), Some(PaymentError::Unreachable));
    f.host.shutdown().await;
}

/// A failed step recorded by a version that did not keep typed errors (no
/// `error_type`, no `error_value`) replays as a `StepFailed` without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_format_failure_row_still_decodes() {
    let f = fixture().await;
    // Record the journal as an older host would have, at a time the test's
    // host cannot claim it, then release it to the host.
    f.store.follow_host_clock();
    let future = Timestamp::from_micros(4_102_444_800_000_000);
    let id = ProcessId::new("old").expect("id");
    f.store
        .spawn(NewProcess {
            id: id.clone(),
            kind: "order".to_owned(),
            version: 1,
            input: "500".to_owned(),
            now: future,
            parent: None,
            traceparent: None,
        })
        .await
        .expect("spawn");
    let older = HostId::new("an older host");
    let claimed = f
        .store
        .claim(&older, future, Duration::from_secs(3600), 1)
        .await
        .expect("claim")
        .pop()
        .expect("claimed");
    let old_row = r#"{"attempts":3,"message":"card declined: over the limit","permanent":true,"step":"charged","timed_out":false}"#;
    f.store
        .append(
            &claimed.lease,
            JournalEntry {
                seq: 1,
                name: "charged".to_owned(),
                kind: EntryKind::Step,
                status: EntryStatus::Failed,
                outcome: Some(old_row.to_owned()),
                attempts: 3,
                started_at: future,
                finished_at: Some(future),
                due_at: None,
                location: None,
                consumed_signal: None,
            },
        )
        .await
        .expect("append");
    f.store
        .release(&older, Timestamp::from_micros(1))
        .await
        .expect("release");
    let err = f.host.outcome::<String>("old").await.expect_err("fails");
    // Decoded: the message and attempts are the old row's; no typed error,
    // so the compensation branch did not run and the failure came back.
    let failed = err.step_failed().expect("the old failure, decoded");
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.message, "card declined: over the limit");
    assert_eq!(failed.error_type, None);
    assert_eq!(err.error::<PaymentError>(), None);
    assert_eq!(
        f.host.status("old").await.expect("status").status,
        Status::Failed
    );
    f.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_runs_nothing_and_its_outcome_can_time_out() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("client.db"))
        .await
        .expect("open");
    let client: Client = HostBuilder::new(store.clone())
        .register_kind::<Order>()
        .client();
    client.spawn("order", "o-1", &50u64).await.expect("spawn");
    // Inputs are checked against the kind, and nothing is stored when they
    // do not fit.
    let bad = client.spawn("order", "o-2", &"fifty").await;
    assert!(matches!(bad, Err(Error::InvalidInput { .. })), "{bad:?}");
    assert!(matches!(
        client.status("o-2").await,
        Err(Error::Store(steadfast::StoreError::NotFound(_)))
    ));
    let waited = client
        .outcome_timeout::<String>("o-1", Duration::from_millis(200))
        .await;
    match waited {
        Err(Error::Timeout { id, status, .. }) => {
            assert_eq!(id.as_str(), "o-1");
            assert_eq!(status, Status::Running, "nobody ran it");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(client.journal("o-1").await.expect("journal").is_empty());
    // A host on the same store runs it; the client then sees the outcome.
    let host = Host::builder(store)
        .register_kind::<Order>()
        .poll_interval(Duration::from_millis(10))
        .build();
    let out: String = client
        .outcome_timeout("o-1", Duration::from_secs(60))
        .await
        .expect("outcome");
    assert_eq!(out, "paid 50");
    assert_eq!(
        client.journal("o-1").await.expect("journal")[0].name,
        "charged"
    );
    let listed = client
        .list(&steadfast::ListFilter {
            limit: 10,
            ..steadfast::ListFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    host.shutdown().await;
}
