//! The host's background loops: claiming due processes from the store and
//! renewing the leases of those it runs.

use std::sync::Arc;
use std::time::Duration;

use steadfast_core::{Claimed, Timestamp};
use tokio::sync::{OwnedSemaphorePermit, TryAcquireError};
use tracing::Instrument;

use crate::metrics::WriteOp;
use crate::run;
use crate::shared::Shared;

/// How many processes one claim asks for at most.
const CLAIM_BATCH: usize = 256;

/// The lease in the clock's time: a scaled clock makes leases longer, so a
/// lease still lasts the same real time.
pub(crate) fn clock_lease(shared: &Shared) -> Duration {
    shared.config.lease.mul_f64(shared.clock.rate())
}

/// Claims due processes and starts a run for each, until the host stops.
pub(crate) async fn dispatch(shared: Arc<Shared>) {
    let mut stopping = shared.stopping.subscribe();
    let mut store_events = shared.store.work_events();
    let mut backoff = Duration::from_millis(50);
    // Timers compare against the store's clock: know the offset first.
    measure_offset(&shared, true).await;
    loop {
        if *stopping.borrow() {
            return;
        }
        let mut next_wake: Option<Timestamp> = None;
        if let Some(mut slots) = reserve_slots(&shared) {
            let free = slots.num_permits();
            let now = shared.clock.now();
            let began = std::time::Instant::now();
            let claim = shared
                .store
                .claim(&shared.id, now, clock_lease(&shared), free)
                .await;
            shared.metrics.store_write(WriteOp::Claim, began.elapsed());
            match claim {
                Ok(claimed) => {
                    backoff = Duration::from_millis(50);
                    let full = claimed.len() == free;
                    let expires = now + clock_lease(&shared);
                    for process in claimed {
                        let Some(slot) = slots.split(1) else {
                            // The store returned more than asked for: no room
                            // to run it; its lease is not renewed and runs
                            // out, and a later claim takes it.
                            tracing::warn!(process = %process.record.id, "claimed a process without a free run slot; leaving its lease to run out");
                            continue;
                        };
                        start_run(&shared, process, slot, expires);
                    }
                    // The slots no claimed process took are free again.
                    drop(slots);
                    if full {
                        continue;
                    }
                }
                Err(err) => {
                    // Free for this host's spawns while the claims back off.
                    drop(slots);
                    tracing::warn!(error = %err, "claiming processes failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            // Due times are the store's; wait for them by the host's clock.
            next_wake = shared
                .store
                .next_wake()
                .await
                .ok()
                .flatten()
                .map(|due| shared.offset.host_time(due, shared.clock.now()));
        }
        let clock = Arc::clone(&shared.clock);
        let until_due = async move {
            match next_wake {
                Some(due) => clock.sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        let from_store = async {
            match store_events.as_mut() {
                Some(events) => {
                    if events.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shared.work.notified() => {}
            () = from_store => {}
            () = until_due => {}
            () = tokio::time::sleep(shared.config.poll_interval) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// The run slots a claim may fill (at most [`CLAIM_BATCH`]), taken before
/// the claim: a spawn of this host that claims its process ([`run_slot`])
/// cannot take them while the claim runs, so every process the claim
/// returns has its slot. `None` when no slot is free.
fn reserve_slots(shared: &Shared) -> Option<OwnedSemaphorePermit> {
    loop {
        let free = shared.permits.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            return None;
        }
        let free = u32::try_from(free).unwrap_or(u32::MAX);
        match Arc::clone(&shared.permits).try_acquire_many_owned(free) {
            Ok(slots) => return Some(slots),
            // A spawn took a slot meanwhile: look again.
            Err(TryAcquireError::NoPermits) => {}
            Err(TryAcquireError::Closed) => return None,
        }
    }
}

/// A run slot for a process this host spawns, when it may claim it at the
/// spawn: the host runs processes, is not stopping, and has a free slot.
pub(crate) fn run_slot(shared: &Shared) -> Option<OwnedSemaphorePermit> {
    if !shared.runs_processes || *shared.stopping.borrow() {
        return None;
    }
    Arc::clone(&shared.permits).try_acquire_owned().ok()
}

/// Starts the run of a process this host claimed, in `slot`, its lease
/// held (renewed by the heartbeat) from now until `expires`.
pub(crate) fn start_run(
    shared: &Arc<Shared>,
    process: Claimed,
    slot: OwnedSemaphorePermit,
    expires: Timestamp,
) {
    shared.leases.hold(&process.lease, expires);
    let shared = Arc::clone(shared);
    // A child of the span that spawned the process.
    let span = crate::trace::run_span(&process.record, process.lease.epoch);
    tokio::spawn(
        async move {
            run::run(Arc::clone(&shared), process).await;
            drop(slot);
            shared.work.notify_one();
        }
        .instrument(span),
    );
}

/// Renews the leases of this host's live runs three times per lease
/// period: exactly those (id and epoch) in the host's list, so a process
/// whose run ended, was handed back or given up is never renewed.
pub(crate) async fn heartbeat(shared: Arc<Shared>) {
    let period = shared.config.lease / 3;
    loop {
        tokio::time::sleep(period).await;
        let held = shared.leases.snapshot();
        if held.is_empty() {
            continue;
        }
        let now = shared.clock.now();
        let lease = clock_lease(&shared);
        match shared.store.renew(&shared.id, &held, now, lease).await {
            Ok(renewed) => {
                shared.leases.renewed(&held, now + lease);
                if renewed < held.len() as u64 {
                    tracing::debug!(
                        renewed,
                        held = held.len(),
                        "some leases were not renewed (their runs just ended, or other hosts \
                         took them over)"
                    );
                }
            }
            Err(err) => tracing::warn!(
                error = %err,
                leases = held.len(),
                "renewing leases failed; runs whose lease runs out before the store recovers \
                 are given up"
            ),
        }
    }
}

/// Purges processes that finished more than `keep` ago, every tenth of
/// `keep` (at least every second, at most every hour) of the host's clock.
pub(crate) async fn retain(shared: Arc<Shared>, keep: Duration) {
    let period = (keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        let now = shared.clock.now();
        match shared.store.purge(now - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "finished processes past their retention purged"),
            Err(err) => tracing::warn!(error = %err, "purging finished processes failed"),
        }
        shared.clock.sleep(period).await;
    }
}

/// Measures the host's clock offset once (see [`crate::offset::measure`]).
pub(crate) async fn measure_offset(shared: &Shared, first: bool) {
    crate::offset::measure(
        &*shared.store,
        &*shared.clock,
        &shared.offset,
        shared.config.clock_offset_warning,
        first,
    )
    .await;
    if let Some(seconds) = shared.offset.seconds() {
        shared.metrics.clock_offset(seconds);
    }
}

/// Measures the offset again every [`MEASURE_EVERY`](crate::offset::MEASURE_EVERY) (real time) until the
/// host stops.
pub(crate) async fn watch_offset(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(crate::offset::MEASURE_EVERY).await;
        measure_offset(&shared, false).await;
    }
}
