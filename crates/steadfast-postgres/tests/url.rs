//! Connection URLs: `?schema=NAME` is honoured, unknown parameters are
//! refused, and passwords never reach a message.

mod common;

use std::time::Duration;

use common::SchemaGuard;
use steadfast_core::{NewProcess, ProcessId, Store, StoreError, Timestamp};
use steadfast_postgres::{PostgresOptions, PostgresStore};

/// `url` with `?key=value` (or `&key=value`) added.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

#[tokio::test]
async fn connect_writes_into_the_schema_the_url_names() {
    if !common::reachable().await {
        return;
    }
    let guard = SchemaGuard::new();
    let url = with_param(&common::url(), "schema", &guard.schema);
    let store = PostgresStore::connect(&url).await.expect("connect");
    assert_eq!(store.schema(), guard.schema);
    store
        .spawn(NewProcess {
            id: ProcessId::new("in-the-url-schema").expect("id"),
            kind: "k".to_owned(),
            version: 1,
            input: "{}".to_owned(),
            now: Timestamp::now_system(),
            parent: None,
            traceparent: None,
        })
        .await
        .expect("spawn");
    let mut admin = common::admin().await;
    let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".processes WHERE id = 'in-the-url-schema'",
        guard.schema
    )))
    .fetch_one(&mut admin)
    .await
    .expect("count");
    assert_eq!(count, 1);

    // Naming another schema in the options too is a conflict.
    let conflict = PostgresStore::connect_with(&url, PostgresOptions::default().schema("other"))
        .await
        .expect_err("two schemas");
    assert!(
        matches!(conflict, StoreError::InvalidInput(_)),
        "{conflict}"
    );
}

#[tokio::test]
async fn unknown_parameters_are_refused() {
    let url = with_param(&common::url(), "shema", "typo");
    match PostgresStore::connect(&url).await {
        Err(StoreError::InvalidInput(message)) => {
            assert!(message.contains("unknown parameter \"shema\""), "{message}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn passwords_never_reach_a_message_and_the_cause_is_shown() {
    // Nothing listens on port 1: the connection is refused.
    let secret = "hunter2-secret";
    for url in [
        format!("postgres://someone:{secret}@127.0.0.1:1/db"),
        format!("postgres://someone@127.0.0.1:1/db?password={secret}"),
        format!("postgres://someone:{secret}@127.0.0.1:1/db?bogus=1"),
        format!("postgres://someone:{secret}@127.0.0.1:notaport/db"),
    ] {
        let options = PostgresOptions::default().connect_timeout(Duration::from_secs(2));
        let err = PostgresStore::connect_with(&url, options)
            .await
            .expect_err("nothing listens there");
        let mut text = format!("{err} / {err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&format!(" / {cause}"));
            source = cause.source();
        }
        assert!(!text.contains(secret), "{text}");
        if url.contains(":1/") && !url.contains("bogus") {
            let shown = err.to_string();
            assert!(
                shown.to_lowercase().contains("refused"),
                "the cause is not shown: {shown}"
            );
        }
    }
}

#[tokio::test]
async fn an_older_schema_is_refused_untouched_when_upgrades_are_off() {
    if !common::reachable().await {
        return;
    }
    let guard = SchemaGuard::new();
    drop(guard.store().await);
    let mut admin = common::admin().await;
    let set = format!(
        "UPDATE \"{}\".steadfast_meta SET value = '1' WHERE key = 'schema_version'",
        guard.schema
    );
    sqlx::query(sqlx::AssertSqlSafe(set))
        .execute(&mut admin)
        .await
        .expect("downgrade the recorded version");
    let options = guard.options().create_schema(false).upgrade_schema(false);
    match PostgresStore::connect_with(&common::url(), options).await {
        Err(err @ StoreError::ReadOnly { .. }) => {
            assert!(err.to_string().contains("schema version 1"), "{err}");
        }
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    let get = format!(
        "SELECT value FROM \"{}\".steadfast_meta WHERE key = 'schema_version'",
        guard.schema
    );
    let (version,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(get))
        .fetch_one(&mut admin)
        .await
        .expect("version");
    assert_eq!(version, "1", "nothing was upgraded");
}
