//! The time of the engine's store writes, read from the `metrics` facade:
//! the bench installs a recorder that keeps every value of
//! `steadfast_store_write_duration_seconds` (one per claim and per try of a
//! run's write, labelled by `op`), so W1 can say how much of a process's
//! latency is spent inside the store's writes and how much between them.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use steadfast::metric_names;

/// The write times recorded since the last [`WriteTimes::take`].
pub struct WriteTimes {
    snapshotter: Snapshotter,
}

impl WriteTimes {
    /// The bench's recorder, installed by the first call in this process
    /// and shared by later ones (a run takes what was recorded before it
    /// and drops it); `None` when the process had another recorder, then W1
    /// reports no breakdown.
    pub fn install() -> Option<WriteTimes> {
        static SNAPSHOTTER: OnceLock<Option<Snapshotter>> = OnceLock::new();
        let snapshotter = SNAPSHOTTER.get_or_init(|| {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder.install().ok().map(|()| snapshotter)
        });
        snapshotter
            .clone()
            .map(|snapshotter| WriteTimes { snapshotter })
    }

    /// The durations recorded since the last call, by `op` label, and
    /// forgets them.
    pub fn take(&self) -> BTreeMap<String, Vec<Duration>> {
        let mut by_op: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            if key.key().name() != metric_names::STORE_WRITE_DURATION {
                continue;
            }
            let DebugValue::Histogram(values) = value else {
                continue;
            };
            let op = key
                .key()
                .labels()
                .find(|label| label.key() == "op")
                .map_or_else(|| "unknown".to_owned(), |label| label.value().to_owned());
            by_op.entry(op).or_default().extend(
                values
                    .iter()
                    .filter(|secs| secs.0.is_finite() && secs.0 >= 0.0)
                    .map(|secs| Duration::from_secs_f64(secs.0)),
            );
        }
        by_op
    }
}
