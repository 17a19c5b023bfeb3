//! Retry policies for steps.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently a failing step is tried again.
///
/// Delays grow exponentially from `initial_delay` by `multiplier`, capped at
/// `max_delay`, each shortened at random by up to `jitter` (a fraction) so
/// that many processes failing together do not retry in lockstep. A step
/// gives up after `max_attempts` attempts or once `max_elapsed` has passed
/// since its first attempt, whichever comes first.
///
/// Waits longer than [`RetryPolicy::durable_after`] (10 s by default) are
/// *durable*: the failed attempt is journaled with the time of the next one,
/// the process is unloaded (no memory, task or lease held) and it resumes on
/// a durable timer, on any host, after any restart; `steadfast retry ID`
/// ([`crate::Host::retry`]) cuts the wait short. So a policy that retries
/// for days costs nothing while it waits.
///
/// The default retries for 24 hours, from 1 s doubling to 5 minutes apart:
/// a dependency that is down for an hour fails no step, and the step
/// succeeds within 5 minutes of the dependency's return.
///
/// ```
/// use std::time::Duration;
/// use steadfast::RetryPolicy;
///
/// // Exponential, capped at 1 h, for 3 days.
/// let patient = RetryPolicy::for_duration(Duration::from_secs(3 * 86_400))
///     .max_delay(Duration::from_secs(3_600))
///     .jitter(0.0);
/// let after = |attempts, elapsed| patient.next_delay(attempts, Duration::from_secs(elapsed));
/// assert_eq!(after(1, 0), Some(Duration::from_secs(1)));
/// assert_eq!(after(20, 86_400), Some(Duration::from_secs(3_600)));
/// // The last wait ends at the deadline; an attempt failing after it is final.
/// assert_eq!(after(20, 3 * 86_400 - 60), Some(Duration::from_secs(60)));
/// assert_eq!(after(21, 3 * 86_400), None);
///
/// let default = RetryPolicy::default();
/// assert_eq!(default.max_elapsed(), Some(Duration::from_secs(86_400)));
/// assert!(default.durable_after() < Duration::from_secs(3_600));
/// ```
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
    max_elapsed: Option<Duration>,
    durable_after: Duration,
}

/// Waits longer than this are durable by default.
const DURABLE_AFTER: Duration = Duration::from_secs(10);

impl Default for RetryPolicy {
    /// Retries for 24 hours, 1 s doubling up to 5 minutes apart, 20 %
    /// jitter; waits longer than 10 s are durable.
    fn default() -> Self {
        RetryPolicy::for_duration(Duration::from_secs(24 * 3_600))
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
            max_elapsed: None,
            durable_after: DURABLE_AFTER,
        }
    }

    /// Attempts without a count limit until `duration` has passed since the
    /// first one, from 1 s doubling, capped at 5 minutes, 20 % jitter.
    pub fn for_duration(duration: Duration) -> Self {
        RetryPolicy {
            max_attempts: u32::MAX,
            initial_delay: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(5 * 60),
            jitter: 0.2,
            max_elapsed: Some(duration),
            durable_after: DURABLE_AFTER,
        }
    }

    /// At most this many attempts (at least one).
    pub fn attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Gives up once `duration` has passed since the first attempt (the last
    /// wait is shortened to end then, and an attempt failing after it is
    /// final).
    pub fn give_up_after(mut self, duration: Duration) -> Self {
        self.max_elapsed = Some(duration);
        self
    }

    /// Waits longer than `threshold` are durable: the process is unloaded
    /// and resumes on a journaled timer (default 10 s). Shorter waits are
    /// slept in memory, the process staying loaded.
    pub fn durable_after_delay(mut self, threshold: Duration) -> Self {
        self.durable_after = threshold;
        self
    }

    /// How long after the first attempt the step gives up, if ever.
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// Waits longer than this are durable.
    pub fn durable_after(&self) -> Duration {
        self.durable_after
    }

    /// The wait before the next attempt after `attempts` attempts failed,
    /// `elapsed` after the first one began; `None` when the step gives up.
    pub fn next_delay(&self, attempts: u32, elapsed: Duration) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let delay = self.delay_before(attempts.saturating_add(1));
        match self.max_elapsed {
            None => Some(delay),
            Some(max) if elapsed >= max => None,
            Some(max) => Some(delay.min(max - elapsed)),
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

    /// How many attempts are made at most (`u32::MAX`: no count limit).
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
    fn the_default_outlasts_an_hour_long_outage() {
        let p = RetryPolicy::default().jitter(0.0);
        let mut elapsed = Duration::ZERO;
        let mut attempts = 1;
        // Attempts fail for an hour; count the waits.
        while elapsed < Duration::from_secs(3_600) {
            let delay = p.next_delay(attempts, elapsed).expect("still retrying");
            assert!(delay <= Duration::from_secs(300));
            elapsed += delay;
            attempts += 1;
        }
        assert!(attempts > 5, "{attempts}");
        assert!(p.next_delay(attempts, elapsed).is_some());
        assert_eq!(p.next_delay(attempts, Duration::from_secs(86_400)), None);
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
