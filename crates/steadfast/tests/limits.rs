//! The payload size limit (`HostBuilder::max_payload_bytes`) and how long
//! user text is kept out of error messages.

use std::time::Duration;

use steadfast::{
    Error, Host, HostBuilder, Process, SqliteStore, Status, StepError, StepFailed, StoreError,
};

async fn builder(dir: &tempfile::TempDir) -> HostBuilder {
    let store = SqliteStore::open(dir.path().join("limits.db"))
        .await
        .expect("open store");
    Host::builder(store)
        .poll_interval(Duration::from_millis(20))
        .register("echo", |p: Process, text: String| async move {
            let _: String = p.wait("go").await;
            Ok::<_, StepFailed>(text.len())
        })
        .register("big step", |p: Process, size: usize| async move {
            let value = p
                .step(
                    "make it",
                    || async move { Ok::<_, StepError>("x".repeat(size)) },
                )
                .await?;
            Ok::<_, StepFailed>(value.len())
        })
}

async fn wait_for(host: &Host, id: &str, status: Status) -> steadfast::ProcessRecord {
    for _ in 0..2000 {
        let record = host.status(id).await.expect("status");
        if record.status == status {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {id} never became {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_inputs_and_signal_payloads_over_the_limit_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = builder(&dir).await.max_payload_bytes(1000).build_client();

    let big = "x".repeat(2000);
    match host.spawn("echo", "too-big", &big).await {
        Err(Error::PayloadTooLarge { what, size, limit }) => {
            assert!(what.contains("too-big"), "{what}");
            assert_eq!((size, limit), (2002, 1000));
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert!(matches!(
        host.status("too-big").await,
        Err(Error::Store(StoreError::NotFound(_)))
    ));

    host.spawn("echo", "fits", &"x".repeat(900))
        .await
        .expect("spawn under the limit");
    let err = host
        .signal("fits", "go", &big)
        .await
        .expect_err("payload too large");
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("more than the limit of 1000 bytes"), "{text}");
    assert!(text.len() < 300, "{text}");
    let pending = host
        .store()
        .pending_signals(&steadfast::ProcessId::new("fits").expect("id"))
        .await
        .expect("pending");
    assert!(pending.is_empty(), "nothing stored: {pending:?}");

    // The default is 1 MiB.
    let host = builder(&dir).await.build_client();
    let err = host
        .spawn("echo", "ten-mb", &"y".repeat(10 * 1024 * 1024))
        .await
        .expect_err("10 MB input");
    assert!(
        matches!(err, Error::PayloadTooLarge { limit, .. } if limit == steadfast::DEFAULT_MAX_PAYLOAD_BYTES),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_outcome_over_the_limit_blocks_the_process_before_it_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = builder(&dir).await.max_payload_bytes(1000).build();
    host.spawn("big step", "small", &10).await.expect("spawn");
    host.spawn("big step", "large", &5000).await.expect("spawn");
    wait_for(&host, "small", Status::Completed).await;
    let blocked = wait_for(&host, "large", Status::Blocked).await;
    let reason = blocked.error.unwrap_or_default();
    assert!(reason.contains("\"make it\""), "{reason}");
    assert!(
        reason.contains("more than the host's limit of 1000 bytes"),
        "{reason}"
    );
    assert_eq!(blocked.blocked_step.as_deref(), Some("make it"));
    let journal = host.store().journal(&blocked.id).await.expect("journal");
    assert!(journal.is_empty(), "nothing stored: {journal:?}");
    host.shutdown().await;
}

#[tokio::test]
async fn long_ids_kinds_and_names_are_not_echoed_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = builder(&dir).await.build_client();
    let long = "z".repeat(10 * 1024);
    let errors = [
        host.spawn("echo", &long, "x").await.expect_err("long id"),
        host.spawn(&long, "id", "x").await.expect_err("long kind"),
        host.signal(&long, "go", "x").await.expect_err("long id"),
        host.signal("id", &long, &())
            .await
            .expect_err("unknown process"),
        host.signal_json("id", &long, "{nope")
            .await
            .expect_err("bad json"),
        host.cancel(&long).await.expect_err("long id"),
        host.status(&format!("{long}\n"))
            .await
            .expect_err("long id"),
    ];
    for err in errors {
        let text = err.to_string();
        assert!(text.len() < 600, "{} bytes: {}", text.len(), &text[..200]);
    }
    let control = format!("{}\n", "c".repeat(250));
    let text = host
        .status(&control)
        .await
        .expect_err("control")
        .to_string();
    assert!(text.contains("bytes in all"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_value_over_the_limit_rolls_the_body_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = builder(&dir)
        .await
        .max_payload_bytes(1000)
        .register(
            "big transaction",
            |p: Process<SqliteStore>, size: usize| async move {
                let result = p
                    .transaction("write it", move |conn| {
                        conn.execute_batch(
                            "CREATE TABLE IF NOT EXISTS notes (text TEXT);
                         INSERT INTO notes VALUES ('written');",
                        )
                        .map_err(StepError::permanent)?;
                        Ok("x".repeat(size))
                    })
                    .await;
                Ok::<_, StepFailed>(match result {
                    Ok(value) => format!("ok {}", value.len()),
                    Err(failed) => failed.message,
                })
            },
        )
        .build();
    host.spawn("big transaction", "t", &5000)
        .await
        .expect("spawn");
    let message: String = host.outcome("t").await.expect("outcome");
    assert!(
        message.contains("more than the host's limit of 1000 bytes"),
        "{message}"
    );
    host.shutdown().await;
    let conn = steadfast::rusqlite::Connection::open(dir.path().join("limits.db")).expect("open");
    let notes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'notes'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(notes, 0, "the body's effects were rolled back");
}
