//! The conformance suite, run against a fresh PostgreSQL schema per check.
//!
//! When the server is unreachable the whole test binary exits successfully
//! after a skip notice (the suite has no way to skip one check), unless
//! `STEADFAST_REQUIRE_PG=1`, which makes every check fail instead.

mod common;

use std::sync::Arc;

use common::SchemaGuard;
use steadfast_core::Backend;

/// A store on a fresh schema, which the guard drops.
async fn fresh_store() -> (Arc<dyn Backend>, SchemaGuard) {
    if !common::reachable().await {
        common::notice("SKIPPED: the whole PostgreSQL conformance suite (no server)");
        std::process::exit(0);
    }
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    (Arc::new(store), guard)
}

steadfast_conformance::conformance_tests!(fresh_store);
