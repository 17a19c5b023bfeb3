//! Retry policies for steps.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently a failing step is tried again.
///
/// Delays grow exponentially from `initial_delay` by `multiplier`, capped at
/// `max_delay`, each shortened at random by up to `jitter` (a fraction) so
/// that many processes failing together do not retry in lockstep.
///
/// ```
/// use std::time::Duration;
/// use steadfast::RetryPolicy;
///
/// let policy = RetryPolicy::exponential(5)
///     .initial_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(10))
///     .jitter(0.0);
/// assert_eq!(policy.delay_before(2), Duration::from_millis(100));
/// assert_eq!(policy.delay_before(4), Duration::from_millis(400));
/// assert_eq!(RetryPolicy::none().max_attempts(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: f64,
}

impl Default for RetryPolicy {
    /// Five attempts, 200 ms doubling up to 10 s, 20 % jitter.
    fn default() -> Self {
        RetryPolicy::exponential(5)
    }
}

impl RetryPolicy {
    /// A single attempt: failures are final at once.
    pub fn none() -> Self {
        RetryPolicy::exponential(1)
    }

    /// Up to `max_attempts` attempts (at least one) with exponential backoff
    /// from 200 ms, doubling, capped at 10 s, 20 % jitter.
    pub fn exponential(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            initial_delay: Duration::from_millis(200),
            multiplier: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: 0.2,
        }
    }

    /// The delay before the second attempt.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The factor by which each delay grows (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest delay between two attempts.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The largest fraction (0 to 1) by which a delay is shortened at random.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How many attempts are made at most.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before attempt number `attempt` (2 is the first retry),
    /// jitter applied.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(2).min(64) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64());
        let cut = if self.jitter > 0.0 {
            rand::rng().random_range(0.0..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64(capped * (1.0 - cut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy::exponential(10)
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(5))
            .jitter(0.0);
        let delays: Vec<u64> = (2..=6).map(|a| p.delay_before(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn jitter_only_shortens() {
        let p = RetryPolicy::exponential(3)
            .initial_delay(Duration::from_secs(1))
            .jitter(0.5);
        for _ in 0..100 {
            let d = p.delay_before(2);
            assert!(d <= Duration::from_secs(1) && d >= Duration::from_millis(500));
        }
    }
}
