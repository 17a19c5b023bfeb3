//! The conformance suite every Steadfast store must pass.
//!
//! Each check is a `pub async fn check(store: Arc<dyn Backend>)` that panics
//! with a message naming the broken rule when the store does not follow the
//! contract of [`steadfast_core::Store`] and [`steadfast_core::StoreAdmin`].
//! Every check gets a fresh, empty store of its own and controls every
//! timestamp it passes (never the wall clock), so checks are deterministic
//! and independent.
//!
//! A store crate runs the whole suite with one macro invocation in an
//! integration test:
//!
//! ```ignore
//! use std::sync::Arc;
//! use steadfast_core::Backend;
//!
//! async fn fresh_store() -> (Arc<dyn Backend>, tempfile::TempDir) {
//!     let dir = tempfile::tempdir().expect("temporary directory");
//!     let store = my_store::MyStore::open(dir.path().join("s.db")).await.expect("open");
//!     (Arc::new(store), dir)
//! }
//!
//! steadfast_conformance::conformance_tests!(fresh_store);
//! ```
//!
//! This expands to one `#[test]` per check, named `<group>::<check>` (for
//! example `claim::expired_lease_is_fenced`), each running on its own
//! multi-threaded Tokio runtime with two workers. See [`run_check`] for the
//! factory contract, in particular when the guard is dropped.
//!
//! Stores must also order process ids bytewise (the order of
//! [`steadfast_core::ProcessId`]'s `Ord`), e.g. `COLLATE "C"` in PostgreSQL.

pub mod admin;
pub mod children;
pub mod claim;
pub mod concurrency;
pub mod events;
pub mod faults;
pub mod fixture;
pub mod journal;
pub mod lifecycle;
pub mod lists;
pub mod signal_states;
pub mod signals;
pub mod spawn;
pub mod tools;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::Backend;

/// How long one check may run before it is reported as hung.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one check against a fresh store made by `factory`.
///
/// `factory` returns the store and a guard `G` that keeps it alive (a
/// `TempDir`, a PostgreSQL schema handle, `()` ...). The order of events:
///
/// 1. a multi-threaded Tokio runtime with two workers is built;
/// 2. `factory` runs on it, and the store is told to follow the checks'
///    times ([`steadfast_core::Store::follow_host_clock`]);
/// 3. `check` runs on it with the store (at most [`CHECK_TIMEOUT`]);
/// 4. the store handle is dropped, then the guard is dropped on the test
///    thread, *outside* the runtime context but while the runtime is still
///    alive, also when the check failed. A guard's `Drop` may therefore clean
///    up asynchronously with `tokio::runtime::Handle::block_on` on a handle
///    it captured in the factory (e.g. `DROP SCHEMA ... CASCADE`);
/// 5. a failure of the check is re-raised.
pub fn run_check<F, Fut, G, C, CFut>(factory: F, check: C)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (Arc<dyn Backend>, G)>,
    C: FnOnce(Arc<dyn Backend>) -> CFut,
    CFut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("failed to build the Tokio runtime for a conformance check");
    let (store, guard) = runtime.block_on(factory());
    // The checks control every timestamp: the store decides with them, not
    // with a clock of its own.
    store.follow_host_clock();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async move {
            if tokio::time::timeout(CHECK_TIMEOUT, check(store))
                .await
                .is_err()
            {
                panic!(
                    "the check did not finish within {CHECK_TIMEOUT:?}; \
                     a store operation probably hangs (deadlock or lost wake-up)"
                );
            }
        })
    }));
    drop(guard);
    drop(runtime);
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

/// Invokes `$callback!` with `($args)` followed by every check, grouped by
/// module: the single list of checks the macros and [`CHECKS`] are built from.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_checks {
    ($callback:ident, $args:tt) => {
        $crate::$callback! { $args
            spawn {
                new_process_is_runnable,
                spawn_is_idempotent,
                spawn_conflicts_on_different_input_or_kind,
                spawn_and_claim_leases_a_new_process_to_its_spawner,
            }
            claim {
                claims_only_due_processes_earliest_first,
                claim_respects_limit,
                claim_sets_lease_fields,
                claimed_process_is_not_claimed_again_before_expiry,
                expired_lease_is_taken_over_and_fenced,
                claim_returns_journal_and_signals_in_order,
            }
            journal {
                append_inserts_and_rejects_duplicates,
                scheduled_entry_is_completed_in_place,
                scheduled_entry_can_be_rescheduled,
                entries_round_trip_every_field,
                consumed_signal_is_marked_consumed,
                failed_append_does_not_consume_signal,
            }
            signals {
                signal_unknown_process_is_not_found,
                signal_finished_process_is_invalid_state,
                redelivered_message_is_not_stored_twice,
                trace_context_round_trips,
                signal_wakes_process_waiting_only_for_signals,
                signal_wakes_suspended_process_before_its_timer,
                signals_keep_send_order_and_payload,
                suspend_unloads_process,
                suspend_with_matching_signal_changes_nothing,
                non_matching_or_consumed_signals_do_not_prevent_suspension,
            }
            signal_states {
                rejected_signal_is_kept_and_never_handed_out,
                reject_signal_is_fenced,
                discard_signal_settles_only_pending_signals,
            }
            lifecycle {
                finish_completed_stores_output,
                finish_failed_stores_error,
                finish_blocked_stores_reason_and_step,
                finish_cancelled,
                cancel_unowned_process_at_once,
                cancel_process_with_expired_lease_at_once,
                cancel_owned_process_is_requested,
                cancel_finished_or_unknown_fails,
                retry_blocked_process,
                retry_failed_process,
                retry_other_states_fails,
            }
            admin {
                renew_extends_own_running_leases_only,
                renew_touches_only_the_listed_leases,
                release_makes_processes_claimable,
                unknown_ids_are_not_found,
                next_wake_is_the_earliest_wake_at,
                list_filters_and_orders_by_id,
                list_prefix_is_literal,
                list_pages_cover_every_row_once,
                counts_per_status,
            }
            tools {
                parked_at_follows_suspension_and_blocking,
                parked_counts_per_line,
                rewind_drops_later_entries_and_returns_signals,
                rewind_refuses_bad_requests,
                purge_deletes_only_old_finished_processes,
                sources_are_saved_and_replaced,
                subscription_reports_are_kept_per_name_and_host,
                continue_as_new_keeps_history,
            }
            children {
                parent_is_stored,
                cancel_cascades_to_stored_children_only,
                finish_notifies_parent_atomically,
            }
            lists {
                list_sorts_by_each_key_both_ways,
                count_follows_every_filter,
            }
            events {
                each_operation_records_its_event,
                refused_operations_record_nothing,
            }
            concurrency {
                concurrent_appends_are_all_journaled,
                concurrent_claims_are_disjoint,
                concurrent_spawns_of_one_id_create_once,
            }
        }
    };
}

/// Expands to one `#[test]` per check; see [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __emit_tests {
    (($factory:expr, $skip:expr) $( $group:ident { $( $check:ident ),* $(,)? } )*) => {
        $(
            #[allow(missing_docs)]
            mod $group {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[test]
                    fn $check() {
                        let skip: fn() -> bool = $skip;
                        if skip() {
                            return;
                        }
                        $crate::run_check($factory, $crate::$group::$check);
                    }
                )*
            }
        )*
    };
}

/// Expands to the names of every check; see [`CHECKS`].
#[doc(hidden)]
#[macro_export]
macro_rules! __emit_names {
    (() $( $group:ident { $( $check:ident ),* $(,)? } )*) => {
        &[ $( $( concat!(stringify!($group), "::", stringify!($check)) ),* ),* ]
    };
}

/// Generates the whole conformance suite as tests: one `#[test]` per check,
/// in modules named after the check groups (`spawn::spawn_is_idempotent`, ...).
///
/// The argument is an async factory called once per test: an `async fn` or a
/// closure returning a future, whose output is `(Arc<dyn Backend>, G)` where
/// `G` is a guard kept alive until the check ends (see [`run_check`]). It is
/// resolved from inside the generated modules through `use super::*`, so name
/// an item of the invoking module or write a closure with full paths.
///
/// ```ignore
/// steadfast_conformance::conformance_tests!(fresh_store);
/// steadfast_conformance::conformance_tests!(|| async {
///     (std::sync::Arc::new(MemoryStore::default()) as std::sync::Arc<dyn steadfast_core::Backend>, ())
/// });
/// ```
///
/// A store that needs a server can pass `skip_if = f`, a `fn() -> bool`
/// called at the start of every check: when it returns `true` that check
/// returns at once (the function should print why, and panic instead when
/// the server is required). Each check skips on its own, so the harness
/// still reports every other test's result.
///
/// ```ignore
/// steadfast_conformance::conformance_tests!(fresh_store, skip_if = no_server);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__with_checks!(__emit_tests, ($factory, || false));
    };
    ($factory:expr, skip_if = $skip:expr $(,)?) => {
        $crate::__with_checks!(__emit_tests, ($factory, $skip));
    };
}

/// The name of every check, as `group::check`, in suite order.
pub const CHECKS: &[&str] = __with_checks!(__emit_names, ());

/// One check of the suite, callable by value: takes the store, returns the
/// check's future (which panics when the store breaks the rule).
pub type CheckFn = fn(Arc<dyn Backend>) -> Pin<Box<dyn Future<Output = ()>>>;

/// Expands to a table of `(name, check)` pairs; see [`find_check`].
#[doc(hidden)]
#[macro_export]
macro_rules! __emit_table {
    (() $( $group:ident { $( $check:ident ),* $(,)? } )*) => {
        &[ $( $( (
            concat!(stringify!($group), "::", stringify!($check)),
            (|store| ::std::boxed::Box::pin($crate::$group::$check(store))) as $crate::CheckFn,
        ) ),* ),* ]
    };
}

const TABLE: &[(&str, CheckFn)] = __with_checks!(__emit_table, ());

/// The check named `group::check` (as listed in [`CHECKS`]), if there is one.
pub fn find_check(name: &str) -> Option<CheckFn> {
    TABLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, check)| *check)
}

/// Runs the check named `name` like [`run_check`] but returns its verdict
/// instead of panicking: `Ok(())` when the store passed, `Err(message)` with
/// the check's panic message when it failed.
///
/// This is how a suite shows that a check can fail: run it against a store
/// broken on purpose and expect `Err`.
///
/// # Panics
/// When no check is named `name`.
pub fn check_outcome<F, Fut, G>(factory: F, name: &str) -> Result<(), String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (Arc<dyn Backend>, G)>,
{
    let check = find_check(name).unwrap_or_else(|| panic!("no conformance check named {name:?}"));
    catch_unwind(AssertUnwindSafe(|| run_check(factory, check))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}
