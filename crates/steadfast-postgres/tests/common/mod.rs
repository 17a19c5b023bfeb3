//! Shared test support: the server URL, reachability, and a fresh schema
//! per test that is dropped afterwards.

#![allow(dead_code)]

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use steadfast_postgres::{PostgresOptions, PostgresStore};

/// The server the tests use (`STEADFAST_TEST_PG`).
pub fn url() -> String {
    std::env::var("STEADFAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether a missing server fails the tests (`STEADFAST_REQUIRE_PG=1`).
pub fn required() -> bool {
    std::env::var("STEADFAST_REQUIRE_PG").is_ok_and(|v| v == "1")
}

/// A direct connection to the test server.
pub async fn admin() -> PgConnection {
    PgConnection::connect(&url())
        .await
        .expect("connect to the test server")
}

/// Prints a skip notice straight to stderr (not captured by the test
/// harness, so it is seen even when the test passes or the binary exits).
pub fn notice(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// Whether the server answers; panics when it does not and it is required.
pub async fn reachable() -> bool {
    let url = url();
    let attempt = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await;
    match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            true
        }
        Ok(Err(e)) if required() => {
            panic!("STEADFAST_REQUIRE_PG=1 but PostgreSQL at {url} is unreachable: {e}")
        }
        Err(_) if required() => {
            panic!("STEADFAST_REQUIRE_PG=1 but PostgreSQL at {url} does not answer")
        }
        Ok(Err(e)) => {
            notice(&format!(
                "SKIPPED: PostgreSQL at {url} is unreachable ({e}); set STEADFAST_TEST_PG"
            ));
            false
        }
        Err(_) => {
            notice(&format!(
                "SKIPPED: PostgreSQL at {url} does not answer; set STEADFAST_TEST_PG"
            ));
            false
        }
    }
}

/// Drops its schema (`CASCADE`) when dropped, from a thread of its own, so
/// it works inside and outside a runtime.
pub struct SchemaGuard {
    pub schema: String,
}

impl SchemaGuard {
    /// A fresh, unused schema name (nothing is created yet).
    pub fn new() -> Self {
        SchemaGuard {
            schema: format!("steadfast_t_{:016x}", rand::random::<u64>()),
        }
    }

    /// Store options for this schema, with a small pool so that many tests
    /// can run at once.
    pub fn options(&self) -> PostgresOptions {
        PostgresOptions::default()
            .schema(self.schema.clone())
            .max_connections(4)
    }

    /// Connects a store to this schema.
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect_with(&url(), self.options())
            .await
            .expect("connect a store to a fresh schema")
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the schema");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&url()).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET lock_timeout = '20s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot drop test schema {}: {e}", self.schema),
            Err(_) => eprintln!("dropping test schema {} panicked", self.schema),
        }
    }
}
