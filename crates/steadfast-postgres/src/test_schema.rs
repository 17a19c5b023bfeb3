//! The unit tests' PostgreSQL: a schema of their own on the test server,
//! dropped after, whatever the test did.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The test server (`STEADFAST_TEST_PG`, default the local `test` database).
pub(crate) fn url() -> String {
    std::env::var("STEADFAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs `body(url, schema)` in a fresh schema and drops the schema after,
/// also when `body` panics (the panic is then resumed). Skips when the
/// server is unreachable, unless `STEADFAST_REQUIRE_PG=1`, which fails.
pub(crate) async fn in_fresh_schema<F, Fut>(body: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = url();
    let Ok(Ok(probe)) =
        tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await
    else {
        assert!(
            std::env::var("STEADFAST_REQUIRE_PG").as_deref() != Ok("1"),
            "STEADFAST_REQUIRE_PG=1 but PostgreSQL at {url} is unreachable"
        );
        eprintln!("SKIPPED: PostgreSQL at {url} is unreachable");
        return;
    };
    probe.close().await.expect("close");
    let schema = format!("steadfast_t_{:016x}", rand::random::<u64>());
    let outcome = tokio::spawn(body(url.clone(), schema.clone())).await;
    let mut admin = PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the schema");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
