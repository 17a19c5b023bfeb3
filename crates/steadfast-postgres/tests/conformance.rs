//! The conformance suite, run against a fresh PostgreSQL schema per check.
//!
//! When the server is unreachable each check is skipped on its own with a
//! notice (the other tests of the binary still run and report), unless
//! `STEADFAST_REQUIRE_PG=1`, which makes every check fail instead.

mod common;

use std::sync::{Arc, OnceLock};

use common::SchemaGuard;
use steadfast_core::Backend;

/// Whether the server is missing (and allowed to be): asked once per test
/// binary; panics in every check when it is missing and required.
fn no_server() -> bool {
    static REACHABLE: OnceLock<bool> = OnceLock::new();
    let reachable = *REACHABLE.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to reach the server")
                .block_on(common::reachable())
        })
        .join()
        .unwrap_or(false)
    });
    if !reachable {
        assert!(
            !common::required(),
            "STEADFAST_REQUIRE_PG=1 but PostgreSQL at {} is unreachable",
            common::url()
        );
        common::notice("SKIPPED: a PostgreSQL conformance check (no server)");
    }
    !reachable
}

/// A store on a fresh schema, which the guard drops.
async fn fresh_store() -> (Arc<dyn Backend>, SchemaGuard) {
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    (Arc::new(store), guard)
}

steadfast_conformance::conformance_tests!(fresh_store, skip_if = no_server);
