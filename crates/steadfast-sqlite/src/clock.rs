//! The store's own clock: the wall clock read once when the store opens,
//! advanced from then on by a monotonic clock, so a step of the machine's
//! clock (NTP, a VM resuming) neither makes a live lease look expired nor
//! fires a timer early or twice. Hosts with a virtual or scaled clock make
//! the store follow their times instead
//! ([`steadfast_core::Store::follow_host_clock`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use steadfast_core::{Suspension, Timestamp};

/// How far a suspension's `now` may be from the store's clock and still be
/// taken as the store's time: 1 s.
const TOLERANCE_MICROS: u64 = 1_000_000;

/// Which time the store decides with.
#[derive(Debug)]
pub(crate) struct StoreClock {
    origin: Timestamp,
    origin_instant: Instant,
    follow_host: AtomicBool,
}

impl StoreClock {
    /// A clock that equals the wall clock now and runs monotonically.
    pub(crate) fn new() -> Self {
        StoreClock {
            origin: Timestamp::now_system(),
            origin_instant: Instant::now(),
            follow_host: AtomicBool::new(false),
        }
    }

    /// From now on the hosts' times decide.
    pub(crate) fn follow_host(&self) {
        self.follow_host.store(true, Ordering::Relaxed);
    }

    /// The store's own time, unless it follows the hosts'.
    pub(crate) fn own(&self) -> Option<Timestamp> {
        (!self.follow_host.load(Ordering::Relaxed))
            .then(|| self.origin + self.origin_instant.elapsed())
    }

    /// The time to decide with when a host passed `host`.
    pub(crate) fn now(&self, host: Timestamp) -> Timestamp {
        self.own().unwrap_or(host)
    }

    /// A suspension in the store's time. Hosts that measured their offset
    /// send due times in the store's time (`now` within [`TOLERANCE_MICROS`] of the
    /// store's): kept as they are. Otherwise what was left of the wait by
    /// the host's clock counts from the store's now.
    pub(crate) fn suspension(&self, mut s: Suspension) -> Suspension {
        if let Some(now) = self.own()
            && now.as_micros().abs_diff(s.now.as_micros()) > TOLERANCE_MICROS
        {
            // Already due by the host's clock: due now.
            s.wake_at = s.wake_at.map(|due| now + due.saturating_since(s.now));
            s.now = now;
        }
        s
    }
}
