//! Which clock decides: by default the database server's, read inside the
//! statements (`clock_timestamp()`), so hosts whose clocks are off agree on
//! when a lease expires and when a process is due; the hosts' times only
//! after [`steadfast_core::Store::follow_host_clock`] (virtual and scaled
//! clocks of tests and demos).

use steadfast_core::Timestamp;

/// The database server's clock in microseconds since the Unix epoch, as an
/// SQL expression.
macro_rules! db_now {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
    };
}
pub(crate) use db_now;

/// The time a decision is made at: the host's `now`, or (in the statement)
/// the database's clock. Bound as a nullable `bigint` that statements use
/// as `COALESCE($n, db_now!())`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now {
    host: Timestamp,
    database: bool,
}

impl Now {
    /// `host`'s time, replaced by the database's clock when `database`.
    pub(crate) fn new(host: Timestamp, database: bool) -> Self {
        Now { host, database }
    }

    /// The value to bind: `NULL` when the database's clock decides.
    pub(crate) fn bind(self) -> Option<i64> {
        (!self.database).then(|| self.host.as_micros())
    }

    /// The host's time (recorded alongside, never decisive when the
    /// database's clock decides).
    pub(crate) fn host(self) -> Timestamp {
        self.host
    }
}
