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

use std::sync::Mutex;
use std::time::{Duration, Instant};

use steadfast_core::{Backend, Clock, Timestamp};

/// How often the offset is measured again after the first time.
pub(crate) const MEASURE_EVERY: Duration = Duration::from_secs(30);

/// The host clock's last measured offset from the store's clock, and the
/// store's time at that measurement, carried forward by a monotonic clock
/// (so a step of the host's clock between measurements changes nothing).
#[derive(Debug, Default)]
pub(crate) struct ClockOffset {
    last: Mutex<Option<Measured>>,
}

#[derive(Clone, Copy, Debug)]
struct Measured {
    /// Host time minus store time, in microseconds.
    offset: i64,
    /// The store's time when `at` was taken.
    store: Timestamp,
    at: Instant,
    /// Half the round trip of that measurement: how far off it may be.
    uncertainty: Duration,
}

impl ClockOffset {
    fn last(&self) -> Option<Measured> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store's time now; `host_now` (the host's clock) when no offset
    /// was measured (the store follows the host's clock, or could not be
    /// asked yet).
    pub(crate) fn store_now(&self, host_now: Timestamp) -> Timestamp {
        match self.last() {
            Some(m) => m.store + m.at.elapsed(),
            None => host_now,
        }
    }

    /// The earliest the store's time can be now: what decides whether a
    /// timer is due, so none fires before its due time by the store's clock.
    pub(crate) fn due_now(&self, host_now: Timestamp) -> Timestamp {
        match self.last() {
            Some(m) => (m.store + m.at.elapsed()) - m.uncertainty,
            None => host_now,
        }
    }

    /// When the host's clock (reading `host_now`) reaches the store's time
    /// `store`.
    pub(crate) fn host_time(&self, store: Timestamp, host_now: Timestamp) -> Timestamp {
        let store_now = self.store_now(host_now);
        if store >= store_now {
            host_now + store.saturating_since(store_now)
        } else {
            host_now - store_now.saturating_since(store)
        }
    }

    /// The last measured offset in seconds (positive: the host's clock is
    /// ahead), if one was measured.
    pub(crate) fn seconds(&self) -> Option<f64> {
        self.last().map(|m| m.offset as f64 / 1e6)
    }

    fn set(&self, measured: Measured) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(measured);
    }
}

/// Measures the offset once (when the store has a clock of its own), logs
/// it and warns when it is above the host's threshold.
pub(crate) async fn measure(
    store: &dyn Backend,
    clock: &dyn Clock,
    offset: &ClockOffset,
    threshold: Duration,
    first: bool,
) {
    let started = Instant::now();
    let host_before = clock.now();
    let store = match store.store_time().await {
        Ok(Some(store)) => store,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the store's clock to measure this host's offset from it");
            return;
        }
    };
    let round_trip = started.elapsed();
    // The store read its clock somewhere within the round trip: assume
    // the middle.
    let half = round_trip / 2;
    let host_middle = host_before + half.mul_f64(clock.rate());
    let micros = host_middle.as_micros().saturating_sub(store.as_micros());
    offset.set(Measured {
        offset: micros,
        store,
        at: started + half,
        uncertainty: half,
    });
    let seconds = micros as f64 / 1e6;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_time_runs_on_from_the_measurement_and_due_is_conservative() {
        let offset = ClockOffset::default();
        let host = Timestamp::from_micros(10_000_000);
        assert_eq!(offset.store_now(host), host, "unmeasured: the host's time");
        assert_eq!(offset.seconds(), None);
        let at = Instant::now();
        offset.set(Measured {
            offset: 5_000_000,
            store: Timestamp::from_micros(5_000_000),
            at,
            uncertainty: Duration::from_secs(1),
        });
        assert_eq!(offset.seconds(), Some(5.0));
        // Whatever the host's clock says now (it may have been stepped).
        let store = offset.store_now(Timestamp::from_micros(0));
        assert!(store >= Timestamp::from_micros(5_000_000));
        assert!(offset.due_now(host) < store);
        let later = store + Duration::from_secs(2);
        let woken = offset.host_time(later, host);
        assert!(woken >= host + Duration::from_secs(1) && woken <= host + Duration::from_secs(2));
    }
}
