//! A fresh PostgreSQL schema per test, dropped afterwards.
//!
//! Tests read `STEADFAST_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When the server cannot be
//! reached they are skipped, unless `STEADFAST_REQUIRE_PG=1`, which makes
//! them fail instead.

/// The server's URL for tests.
pub fn server_url() -> String {
    std::env::var("STEADFAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema that exists for one test.
pub struct Schema {
    /// The schema's name.
    pub name: String,
    url: String,
}

impl Schema {
    /// A new, empty schema name (the store creates the schema), or `None`
    /// when PostgreSQL is unreachable and not required.
    pub async fn fresh(tag: &str) -> Option<Schema> {
        let url = server_url();
        match sqlx::PgPool::connect(&url).await {
            Ok(pool) => pool.close().await,
            Err(e) => {
                if std::env::var("STEADFAST_REQUIRE_PG").as_deref() == Ok("1") {
                    panic!("PostgreSQL at {url} is required (STEADFAST_REQUIRE_PG=1): {e}");
                }
                eprintln!("skipped: PostgreSQL at {url} is unreachable: {e}");
                return None;
            }
        }
        let name = format!("cli_{tag}_{:016x}", rand::random::<u64>());
        Some(Schema { name, url })
    }

    /// The `--db` value naming this schema.
    pub fn db(&self) -> String {
        format!("{}?schema={}", self.url, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let pool = sqlx::PgPool::connect(&url).await.ok()?;
                let drop = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                    .execute(&pool)
                    .await
                    .ok()?;
                pool.close().await;
                Some(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test schema {}", self.name);
        }
    }
}
