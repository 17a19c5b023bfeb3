//! Slows down guessing of the access token: failed logins (and requests
//! with a wrong bearer token) are counted per client address; after
//! [`FREE_FAILURES`] of them the client must wait before its next attempt,
//! 1 s after the first lockout and twice as long after each further
//! failure, up to [`MAX_LOCK`]. During a lockout every attempt is refused
//! **before** the token is looked at, so a right guess is not told apart
//! from a wrong one. [`FORGET_AFTER`] without failures clears the count
//! (a success does not: it may come from another user behind the same
//! address).
//!
//! Counting only failures, and refusing before checking, is what
//! off-the-shelf rate limiters (which count every request and cannot be
//! asked without spending a cell) do not offer; hence this small table.
//! IPv6 clients are counted per /64 (one machine usually owns one).
//! Behind a reverse proxy every client has the proxy's address and shares
//! one count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use steadfast::Timestamp;

/// Failures allowed before the first lockout.
pub const FREE_FAILURES: u32 = 5;
/// The first lockout; each further failure doubles it.
pub const FIRST_LOCK: Duration = Duration::from_secs(1);
/// The longest lockout.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// How long after its last failure a client is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// How many clients are tracked at most; beyond, new ones share one count.
const MAX_CLIENTS: usize = 10_000;

/// Whose attempts are counted together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address.
    V4(u32),
    /// An IPv6 address's first 64 bits.
    V6(u64),
    /// Clients of unknown address (the router used without connection
    /// info), and new clients while the table is full.
    Shared,
}

impl ClientKey {
    /// The key of a client at `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.to_bits()),
                None => ClientKey::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Timestamp,
    locked_until: Timestamp,
}

/// The failure counts per client.
#[derive(Debug, Default)]
pub struct Throttle {
    clients: Mutex<HashMap<ClientKey, Entry>>,
}

impl Throttle {
    /// `Err(wait)` when `client` is locked out at `now` for `wait` more.
    pub fn check(&self, client: ClientKey, now: Timestamp) -> Result<(), Duration> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        match clients.get(&client) {
            Some(e) if e.locked_until > now => Err(e.locked_until.saturating_since(now)),
            _ => Ok(()),
        }
    }

    /// Counts a failure of `client` at `now`; returns the lockout it
    /// starts, if any.
    pub fn failed(&self, client: ClientKey, now: Timestamp) -> Option<Duration> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = client;
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, e| now.saturating_since(e.last_failure) < FORGET_AFTER);
            if clients.len() >= MAX_CLIENTS {
                key = ClientKey::Shared;
            }
        }
        let entry = clients.entry(key).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: now,
        });
        if now.saturating_since(entry.last_failure) >= FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let over = entry.failures.checked_sub(FREE_FAILURES)?;
        let lock = FIRST_LOCK
            .saturating_mul(2u32.saturating_pow(over.min(31)))
            .min(MAX_LOCK);
        entry.locked_until = now + lock;
        Some(lock)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn lockouts_start_after_the_free_failures_and_double() {
        let t = Throttle::default();
        let a = ClientKey::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let b = ClientKey::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let now = Timestamp::from_micros(1_000_000_000);
        for _ in 1..FREE_FAILURES {
            assert_eq!(t.failed(a, now), None);
            assert_eq!(t.check(a, now), Ok(()));
        }
        assert_eq!(t.failed(a, now), Some(secs(1)));
        assert_eq!(t.check(a, now), Err(secs(1)));
        assert_eq!(t.check(b, now), Ok(()), "other clients are not affected");
        let now = now + secs(1);
        assert_eq!(t.check(a, now), Ok(()));
        assert_eq!(t.failed(a, now), Some(secs(2)));
        assert_eq!(t.failed(a, now), Some(secs(4)));
        for _ in 0..30 {
            t.failed(a, now);
        }
        assert_eq!(t.check(a, now), Err(MAX_LOCK));
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_hour() {
        let t = Throttle::default();
        let a = ClientKey::Shared;
        let now = Timestamp::from_micros(1_000_000_000);
        for _ in 0..FREE_FAILURES {
            t.failed(a, now);
        }
        assert!(t.check(a, now).is_err());
        let later = now + FORGET_AFTER;
        assert_eq!(t.check(a, later), Ok(()));
        assert_eq!(t.failed(a, later), None, "counting starts again");
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let one: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let two: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(one.into()), ClientKey::of(two.into()));
        assert_ne!(ClientKey::of(one.into()), ClientKey::of(other.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            ClientKey::of(mapped.into()),
            ClientKey::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
    }
}
