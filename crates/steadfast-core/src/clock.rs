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
