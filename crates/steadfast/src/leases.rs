//! The leases this host's live runs hold, and until when each is known to
//! last in the store.
//!
//! A lease is added when the dispatcher claims a process and removed when
//! its run ends (finished, suspended, handed back or given up). The
//! heartbeat renews exactly the leases listed here, so the lease of a run
//! that no longer exists is never renewed: it runs out, and another claim
//! replays the process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use steadfast_core::{Lease, ProcessId, Timestamp};

/// A held lease and when it expires in the store (the clock's time).
#[derive(Clone, Debug)]
struct Held {
    lease: Lease,
    expires: Timestamp,
}

/// The leases of this host's live runs.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<ProcessId, Held>>,
}

impl Leases {
    fn held(&self) -> MutexGuard<'_, HashMap<ProcessId, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A run holds `lease` (just claimed), stored to expire at `expires`.
    pub(crate) fn hold(&self, lease: &Lease, expires: Timestamp) {
        self.held().insert(
            lease.id.clone(),
            Held {
                lease: lease.clone(),
                expires,
            },
        );
    }

    /// The run of `lease` ended: its lease is no longer renewed. Returns
    /// when the lease expires in the store, if it was still held.
    pub(crate) fn release(&self, lease: &Lease) -> Option<Timestamp> {
        let mut held = self.held();
        match held.get(&lease.id) {
            Some(h) if h.lease.epoch == lease.epoch => held.remove(&lease.id).map(|h| h.expires),
            _ => None,
        }
    }

    /// When `lease` expires in the store, while a run holds it.
    pub(crate) fn expires(&self, lease: &Lease) -> Option<Timestamp> {
        self.held()
            .get(&lease.id)
            .filter(|h| h.lease.epoch == lease.epoch)
            .map(|h| h.expires)
    }

    /// Every held lease, for the heartbeat to renew.
    pub(crate) fn snapshot(&self) -> Vec<Lease> {
        self.held().values().map(|h| h.lease.clone()).collect()
    }

    /// The store renewed `leases` to `expires`; those still held (at the
    /// same epoch) are known to last until then.
    pub(crate) fn renewed(&self, leases: &[Lease], expires: Timestamp) {
        let mut held = self.held();
        for lease in leases {
            if let Some(h) = held.get_mut(&lease.id)
                && h.lease.epoch == lease.epoch
            {
                h.expires = h.expires.max(expires);
            }
        }
    }
}

/// Removes a run's lease from [`Leases`] when the run ends, however it ends.
pub(crate) struct HeldLease<'a> {
    pub(crate) leases: &'a Leases,
    pub(crate) lease: Lease,
}

impl Drop for HeldLease<'_> {
    fn drop(&mut self) {
        self.leases.release(&self.lease);
    }
}
