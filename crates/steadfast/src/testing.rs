//! Testing processes: a host with a virtual clock on a temporary SQLite
//! store ([`TestHost::start`]) or on any store ([`TestHost::on_store`]), so
//! a year-long process runs in milliseconds, plus helpers to deliver
//! signals, advance time, crash and restart the host mid-process, and read
//! the journal.
//!
//! Enable with the `testing` feature (e.g. in `[dev-dependencies]`).
//!
//! ```
//! use std::time::Duration;
//! use steadfast::testing::TestHost;
//! use steadfast::{Process, Status, StepFailed};
//!
//! async fn reminder(p: Process, _: ()) -> Result<&'static str, StepFailed> {
//!     p.sleep("a year passed", Duration::from_secs(365 * 86_400)).await;
//!     Ok("happy anniversary")
//! }
//!
//! # #[tokio::main] async fn main() {
//! let t = TestHost::start(|b| b.register("reminder", reminder)).await;
//! t.host().spawn("reminder", "r-1", &()).await.unwrap();
//! assert_eq!(t.settle("r-1").await.status, Status::Suspended);
//! t.advance(Duration::from_secs(365 * 86_400)).await;
//! let said: String = t.host().outcome("r-1").await.unwrap();
//! assert_eq!(said, "happy anniversary");
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast_core::{Clock, JournalEntry, ProcessId, ProcessRecord, Status, Timestamp};
use tokio::sync::oneshot;

use futures::future::BoxFuture;
use steadfast_core::Backend;

use crate::{Host, HostBuilder};

/// A clock that stands still until told to move.
///
/// Sleepers wake when [`VirtualClock::advance`] or [`VirtualClock::set`]
/// moves the time past their deadline. Clones share one time.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    inner: Arc<VirtualInner>,
}

#[derive(Debug)]
struct VirtualInner {
    now: AtomicI64,
    sleepers: Mutex<BTreeMap<(Timestamp, u64), oneshot::Sender<()>>>,
    next_sleeper: AtomicI64,
}

impl VirtualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        VirtualClock {
            inner: Arc::new(VirtualInner {
                now: AtomicI64::new(start.as_micros()),
                sleepers: Mutex::default(),
                next_sleeper: AtomicI64::new(0),
            }),
        }
    }

    /// Moves the time forward by `by`, waking every sleeper now due.
    pub fn advance(&self, by: Duration) {
        self.set(self.now() + by);
    }

    /// Moves the time to `to` (never backwards), waking every sleeper now due.
    pub fn set(&self, to: Timestamp) {
        self.inner.now.fetch_max(to.as_micros(), Ordering::SeqCst);
        let now = self.now();
        let mut sleepers = self
            .inner
            .sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let later = sleepers.split_off(&(now + Duration::from_micros(1), 0));
        for (_, wake) in std::mem::replace(&mut *sleepers, later) {
            let _ = wake.send(());
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.inner.now.load(Ordering::SeqCst))
    }

    /// Leases never expire by themselves in virtual time: a jump of a year
    /// must not look like a dead host.
    fn rate(&self) -> f64 {
        1.0e9
    }

    fn sleep_until(&self, deadline: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        if deadline <= self.now() {
            return Box::pin(std::future::ready(()));
        }
        let (tx, rx) = oneshot::channel();
        let key = (
            deadline,
            self.inner.next_sleeper.fetch_add(1, Ordering::SeqCst) as u64,
        );
        self.inner
            .sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, tx);
        // Close the race with a concurrent `set`.
        if deadline <= self.now() {
            self.set(self.now());
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

type Configure = dyn Fn(HostBuilder) -> HostBuilder + Send + Sync;
type OpenStore = dyn Fn() -> BoxFuture<'static, HostBuilder> + Send + Sync;

/// A host with a [`VirtualClock`] on a store of its own: a temporary SQLite
/// file ([`TestHost::start`]) or any store ([`TestHost::on_store`]).
pub struct TestHost {
    /// The temporary directory of [`TestHost::start`]'s store.
    _dir: Option<tempfile::TempDir>,
    clock: VirtualClock,
    open: Arc<OpenStore>,
    configure: Arc<Configure>,
    host: Mutex<Option<Host>>,
}

impl TestHost {
    /// Starts a host on a temporary SQLite store whose kinds (and other
    /// settings) `configure` registers; the clock starts at
    /// 2030-01-01T00:00:00Z.
    #[cfg(feature = "sqlite")]
    pub async fn start(
        configure: impl Fn(HostBuilder) -> HostBuilder + Send + Sync + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let path = dir.path().join("test.db");
        let open = move || {
            let path = path.clone();
            async move {
                crate::open_sqlite(&path, crate::OpenMode::Create)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open the test store: {e}"))
            }
        };
        Self::starting(Some(dir), open, configure).await
    }

    /// Like [`TestHost::start`] on the store `open` opens: called once now
    /// and again for every restart ([`TestHost::crash_and_restart`],
    /// [`TestHost::start_again`]), so it must open the same database each
    /// time (a PostgreSQL schema of the test's own, say). The host knows
    /// the store as its type `S`, so kinds taking `Process<S>` run on it.
    pub async fn on_store<S, O, Fut>(
        open: O,
        configure: impl Fn(HostBuilder) -> HostBuilder + Send + Sync + 'static,
    ) -> Self
    where
        S: Backend,
        O: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = S> + Send + 'static,
    {
        Self::starting(None, open, configure).await
    }

    async fn starting<S, O, Fut>(
        dir: Option<tempfile::TempDir>,
        open: O,
        configure: impl Fn(HostBuilder) -> HostBuilder + Send + Sync + 'static,
    ) -> Self
    where
        S: Backend,
        O: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = S> + Send + 'static,
    {
        let open = move || -> BoxFuture<'static, HostBuilder> {
            let opening = open();
            Box::pin(async move { Host::builder(opening.await) })
        };
        let t = TestHost {
            _dir: dir,
            clock: VirtualClock::new(Timestamp::from_micros(1_893_456_000_000_000)),
            open: Arc::new(open),
            configure: Arc::new(configure),
            host: Mutex::new(None),
        };
        let host = t.build().await;
        *t.host.lock().unwrap_or_else(|p| p.into_inner()) = Some(host);
        t
    }

    async fn build(&self) -> Host {
        let builder = (self.open)()
            .await
            .clock(self.clock.clone())
            .poll_interval(Duration::from_millis(5));
        (self.configure)(builder).build()
    }

    /// The running host.
    pub fn host(&self) -> Host {
        self.host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| panic!("the test host is not running"))
    }

    /// The virtual clock.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Moves virtual time forward and lets the host act on what became due.
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        tokio::task::yield_now().await;
    }

    /// Kills the host abruptly (runs in flight are dropped mid-step, leases
    /// are left behind, as in a crash) and starts a new one on the same store.
    pub async fn crash_and_restart(&self) {
        let old = self.host.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
        let host = self.build().await;
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = Some(host);
    }

    /// Shuts the host down cleanly (as [`Host::shutdown`]: leases given up)
    /// and leaves no host running, so virtual time can pass with nobody
    /// acting on it; [`TestHost::start_again`] starts a new one.
    pub async fn stop(&self) {
        let old = self.host.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            old.shutdown().await;
        }
    }

    /// Starts a new host on the same store after [`TestHost::stop`] (or
    /// replaces a running one, as a crash would).
    pub async fn start_again(&self) {
        let host = self.build().await;
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = Some(host);
    }

    /// Waits (in real time, up to 10 s) until process `id` is no longer
    /// running: suspended, blocked or finished; returns its record.
    ///
    /// # Panics
    /// If the process does not settle in time.
    pub async fn settle(&self, id: &str) -> ProcessRecord {
        for _ in 0..2000 {
            let record = self.status(id).await;
            if record.status != Status::Running {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("process {id:?} is still running after 10 s");
    }

    /// The stored record of process `id`.
    pub async fn status(&self, id: &str) -> ProcessRecord {
        self.host()
            .status(id)
            .await
            .unwrap_or_else(|e| panic!("no status for {id:?}: {e}"))
    }

    /// The journal of process `id`, in order.
    pub async fn journal(&self, id: &str) -> Vec<JournalEntry> {
        let pid = ProcessId::new(id).unwrap_or_else(|e| panic!("bad id {id:?}: {e}"));
        self.host()
            .store()
            .journal(&pid)
            .await
            .unwrap_or_else(|e| panic!("no journal for {id:?}: {e}"))
    }

    /// The names of the journal's entries, in order.
    pub async fn steps(&self, id: &str) -> Vec<String> {
        self.journal(id).await.into_iter().map(|e| e.name).collect()
    }
}
