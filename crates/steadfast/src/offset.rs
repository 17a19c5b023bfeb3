//! How far the host's clock is from the store's: measured when the host
//! starts and every [`MEASURE_EVERY`] after, from the middle of a round
//! trip to the store's clock, exposed as a metric, logged, and warned
//! about above a threshold.
//!
//! Runs use it to read the store's time ([`ClockOffset::store_now`]): a
//! timer's due time is journaled in the store's time and fires only once
//! the store's time, read conservatively ([`ClockOffset::due_now`]), has
//! reached it, whichever host set it and however far that host's clock was
//! off. A store that follows the host's clock has no clock of its own; the
//! offset is then zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use steadfast_core::Timestamp;

use crate::host::Shared;

/// How often the offset is measured again after the first time.
pub(crate) const MEASURE_EVERY: Duration = Duration::from_secs(30);

/// The host clock's last measured offset from the store's clock.
#[derive(Debug, Default)]
pub(crate) struct ClockOffset {
    /// Host time minus store time, in microseconds of the host's clock.
    micros: AtomicI64,
    /// Half the round trip of that measurement: how far off it may be.
    uncertainty: AtomicI64,
    measured: AtomicBool,
}

impl ClockOffset {
    /// The store's time when the host's clock reads `host_now`.
    pub(crate) fn store_now(&self, host_now: Timestamp) -> Timestamp {
        Timestamp::from_micros(
            host_now
                .as_micros()
                .saturating_sub(self.micros.load(Ordering::Relaxed)),
        )
    }

    /// When the host's clock reads the store's time `store`.
    pub(crate) fn host_time(&self, store: Timestamp) -> Timestamp {
        Timestamp::from_micros(
            store
                .as_micros()
                .saturating_add(self.micros.load(Ordering::Relaxed)),
        )
    }

    /// The earliest the store's time can be when the host's clock reads
    /// `host_now`: what decides whether a timer is due, so none fires
    /// before its due time by the store's clock.
    pub(crate) fn due_now(&self, host_now: Timestamp) -> Timestamp {
        let now = self.store_now(host_now);
        Timestamp::from_micros(
            now.as_micros()
                .saturating_sub(self.uncertainty.load(Ordering::Relaxed)),
        )
    }

    /// The last measured offset in seconds (positive: the host's clock is
    /// ahead), if one was measured.
    pub(crate) fn seconds(&self) -> Option<f64> {
        self.measured
            .load(Ordering::Relaxed)
            .then(|| self.micros.load(Ordering::Relaxed) as f64 / 1e6)
    }

    fn set(&self, micros: i64, uncertainty: i64) {
        self.micros.store(micros, Ordering::Relaxed);
        self.uncertainty.store(uncertainty, Ordering::Relaxed);
        self.measured.store(true, Ordering::Relaxed);
    }
}

/// Measures the offset once (when the store has a clock of its own), logs
/// it and warns when it is above the host's threshold.
pub(crate) async fn measure(shared: &Shared, first: bool) {
    let started = Instant::now();
    let host_before = shared.clock.now();
    let store = match shared.store.store_time().await {
        Ok(Some(store)) => store,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the store's clock to measure this host's offset from it");
            return;
        }
    };
    let round_trip = started.elapsed();
    // The store read its clock somewhere within the round trip: assume
    // the middle, in the host clock's time.
    let half = round_trip.mul_f64(shared.clock.rate()) / 2;
    let host_middle = host_before + half;
    let micros = host_middle.as_micros().saturating_sub(store.as_micros());
    let uncertainty = i64::try_from(half.as_micros()).unwrap_or(i64::MAX);
    shared.offset.set(micros, uncertainty);
    let seconds = micros as f64 / 1e6;
    let threshold = shared.config.clock_offset_warning;
    if micros.unsigned_abs() > u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX) {
        tracing::warn!(
            offset_seconds = seconds,
            round_trip_ms = round_trip.as_secs_f64() * 1e3,
            threshold_seconds = threshold.as_secs_f64(),
            "this host's clock is off from the store's clock by more than the threshold; \
             the store's clock decides lease expiry and due times, but the times this host \
             journals (p.now(), step start and end) are off by as much"
        );
    } else if first {
        tracing::info!(
            offset_seconds = seconds,
            round_trip_ms = round_trip.as_secs_f64() * 1e3,
            "measured this host's clock offset from the store's clock"
        );
    } else {
        tracing::debug!(
            offset_seconds = seconds,
            "clock offset from the store's clock"
        );
    }
}

/// Measures the offset again every [`MEASURE_EVERY`] (real time) until the
/// host stops.
pub(crate) async fn watch(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(MEASURE_EVERY).await;
        measure(&shared, false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_time_is_the_host_time_less_the_offset_and_due_is_conservative() {
        let offset = ClockOffset::default();
        let host = Timestamp::from_micros(10_000_000);
        assert_eq!(offset.store_now(host), host);
        assert_eq!(offset.seconds(), None);
        offset.set(5_000_000, 1_000);
        assert_eq!(offset.seconds(), Some(5.0));
        assert_eq!(offset.store_now(host), Timestamp::from_micros(5_000_000));
        assert_eq!(offset.due_now(host), Timestamp::from_micros(4_999_000));
        assert_eq!(offset.host_time(Timestamp::from_micros(5_000_000)), host);
    }
}
