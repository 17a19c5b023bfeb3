use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::Timestamp;

/// Where a host reads the time and how it waits for a moment to come.
///
/// Durable timers store their due time as a [`Timestamp`] read from this
/// clock, so a clock that runs faster than real time ([`ScaledClock`]) makes
/// month-long sleeps pass in seconds without shortening any duration in the
/// process code.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// A future that completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// How many seconds of this clock pass per real second (1 for the wall
    /// clock). Hosts scale their leases by it so a lease lasts the same real
    /// time whatever the clock.
    fn rate(&self) -> f64 {
        1.0
    }

    /// Whether this clock tells the real time of day (perhaps off by a
    /// little, like any machine's clock). A store that has a clock of its
    /// own (PostgreSQL's server clock, SQLite's monotonic clock) decides
    /// lease expiry and due times with it when the host's clock is a real
    /// one; a clock that is not (a virtual or scaled clock in tests and
    /// demos) makes the host tell the store to follow the host's time
    /// instead. `false` unless a clock says otherwise.
    fn is_real_time(&self) -> bool {
        false
    }

    /// A future that completes after `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.sleep_until(self.now() + duration)
    }
}

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now_system()
    }

    fn is_real_time(&self) -> bool {
        true
    }

    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let wait = deadline.saturating_since(self.now());
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that runs `scale` times faster than real time from a fixed origin.
///
/// Two processes built with the same origin and scale agree on the time,
/// which lets a demo restart its worker and keep its timers.
///
/// ```
/// use steadfast_core::{Clock, ScaledClock, Timestamp};
///
/// let clock = ScaledClock::new(Timestamp::now_system(), 86_400.0); // a day per second
/// assert!(clock.now() >= Timestamp::now_system());
/// ```
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin: Timestamp,
    origin_instant: Instant,
    scale: f64,
}

impl ScaledClock {
    /// A clock that equals the wall clock at `origin` and runs `scale` times
    /// faster from then on.
    ///
    /// # Panics
    /// If `scale` is not a finite number greater than zero.
    pub fn new(origin: Timestamp, scale: f64) -> Self {
        assert!(
            scale.is_finite() && scale > 0.0,
            "clock scale must be positive"
        );
        let real_now = Timestamp::now_system();
        let since_origin = real_now.saturating_since(origin);
        let origin_instant = Instant::now()
            .checked_sub(since_origin)
            .unwrap_or_else(Instant::now);
        ScaledClock {
            origin,
            origin_instant,
            scale,
        }
    }

    /// How many seconds of this clock pass per real second.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl Clock for ScaledClock {
    fn rate(&self) -> f64 {
        self.scale
    }

    fn now(&self) -> Timestamp {
        let real = self.origin_instant.elapsed().as_secs_f64();
        self.origin + Duration::from_secs_f64(real * self.scale)
    }

    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let scaled = deadline.saturating_since(self.now()).as_secs_f64() / self.scale;
        Box::pin(tokio::time::sleep(Duration::from_secs_f64(scaled)))
    }
}

/// The machine's wall clock off by an adjustable offset: a machine whose
/// clock runs ahead (positive offset) or behind, or one whose clock is
/// stepped (by NTP, or a VM resuming) while the host runs.
///
/// ```
/// use std::time::Duration;
/// use steadfast_core::{Clock, OffsetClock, Timestamp};
///
/// let clock = OffsetClock::ahead(Duration::from_secs(5));
/// assert!(clock.now() > Timestamp::now_system() + Duration::from_secs(4));
/// clock.set_offset_micros(-60_000_000); // stepped back a minute
/// assert!(clock.now() < Timestamp::now_system());
/// ```
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_micros: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    /// A clock `offset` ahead of the wall clock.
    pub fn ahead(offset: Duration) -> Self {
        let clock = OffsetClock::default();
        clock.set_offset_micros(i64::try_from(offset.as_micros()).unwrap_or(i64::MAX));
        clock
    }

    /// Sets the offset from the wall clock in microseconds (negative:
    /// behind), effective at once: a step of the clock.
    pub fn set_offset_micros(&self, micros: i64) {
        self.offset_micros
            .store(micros, std::sync::atomic::Ordering::SeqCst);
    }

    /// The offset from the wall clock in microseconds.
    pub fn offset_micros(&self) -> i64 {
        self.offset_micros.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(
            Timestamp::now_system()
                .as_micros()
                .saturating_add(self.offset_micros()),
        )
    }

    fn is_real_time(&self) -> bool {
        true
    }

    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let wait = deadline.saturating_since(self.now());
        Box::pin(tokio::time::sleep(wait))
    }
}
