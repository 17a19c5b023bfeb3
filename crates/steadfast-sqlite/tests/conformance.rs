//! The store conformance suite, run against a fresh SQLite file per check.

use std::sync::Arc;

use steadfast_core::Backend;
use steadfast_sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh store in its own temporary directory, which the guard removes.
async fn fresh_store() -> (Arc<dyn Backend>, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = SqliteStore::open(dir.path().join("steadfast.db"))
        .await
        .expect("open a fresh SQLite store");
    (Arc::new(store), dir)
}

steadfast_conformance::conformance_tests!(fresh_store);
