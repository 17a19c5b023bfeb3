//! Host liveness through session-level advisory locks, so that the leases
//! of a host whose worker died are taken over at once instead of after
//! expiry.
//!
//! A host (owner) that claims through a store holds
//! `pg_try_advisory_lock(<schema key>, <owner key>)` on a connection the
//! store keeps for its whole life. When the worker dies, PostgreSQL ends
//! its session and releases the lock; another store that can take the lock
//! knows the owner is gone. A stopped (`SIGSTOP`) worker keeps its session,
//! so its leases expire normally.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use steadfast_core::{HostId, StoreError};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::clock::{Now, db_now};
use crate::rows::Db;
use crate::schema::{fnv1a, key32};

/// How often a store looks for dead owners at most.
const REAP_INTERVAL: Duration = Duration::from_millis(500);
/// How long to leave an owner alone whose lock another session holds.
const CONTENDED_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait before reconnecting after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The owners of unexpired leases on running processes (`$1`: the host's
/// now, or NULL when the database's clock decides).
///
/// Read through `processes_owner` only, whatever the statistics say: the
/// distinct owners one index probe each (a skip scan: a recursive CTE asks
/// for the next owner after the last one), then, for each, its leased rows
/// until one is running and unexpired. Only leased processes carry an
/// owner, so the work is bounded by the leases held, not by the table: a
/// `DISTINCT owner … WHERE status = 'running'` read every running process
/// (1,000,000 spawned ones not yet claimed, say) through `processes_status`
/// on every check. The `OFFSET 0` keeps the status and due-time filters out
/// of the per-owner subquery, so they cannot pull `processes_status` into
/// its plan.
pub(crate) const LEASE_OWNERS: &str = concat!(
    "WITH RECURSIVE owners(owner) AS (
         (SELECT owner FROM processes WHERE owner IS NOT NULL ORDER BY owner LIMIT 1)
         UNION ALL
         SELECT (SELECT p.owner FROM processes p WHERE p.owner > o.owner
                 ORDER BY p.owner LIMIT 1)
         FROM owners o WHERE o.owner IS NOT NULL
     )
     SELECT o.owner FROM owners o
     WHERE o.owner IS NOT NULL AND EXISTS (
         SELECT 1 FROM (SELECT p.status, p.wake_at FROM processes p
                        WHERE p.owner = o.owner OFFSET 0) AS leased
         WHERE leased.status = 'running' AND leased.wake_at > COALESCE($1::bigint, ",
    db_now!(),
    "))"
);

/// The host locks one store holds, on their dedicated connection.
pub(crate) struct Hosts {
    options: PgConnectOptions,
    connect_timeout: Duration,
    schema_key: i32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    conn: Option<PgConnection>,
    /// Owners this store claims for, with their lock keys.
    wanted: HashMap<String, i32>,
    /// Owners whose lock the current connection holds.
    locked: HashSet<String>,
    /// Owners whose lock another session held, and since when.
    contended: HashMap<String, Instant>,
    last_reap: Option<Instant>,
    next_attempt: Option<Instant>,
    backoff: Duration,
}

impl Hosts {
    pub(crate) fn new(options: PgConnectOptions, schema: &str, connect_timeout: Duration) -> Self {
        Hosts {
            options,
            connect_timeout,
            schema_key: key32(fnv1a(&["steadfast-hosts", schema])),
            state: Mutex::new(State {
                backoff: MIN_BACKOFF,
                ..State::default()
            }),
        }
    }

    fn owner_key(owner: &str) -> i32 {
        key32(fnv1a(&[owner]))
    }

    /// Takes `owner`'s lock unless this store holds it already.
    ///
    /// Fails (retryably) only when the lock connection cannot be used: a
    /// host that claimed without its lock would look dead to every other
    /// store. A lock another session holds (the same host id used by two
    /// stores) is logged and tolerated.
    pub(crate) async fn ensure_held(&self, owner: &HostId) -> Result<(), StoreError> {
        let owner = owner.as_str();
        let mut state = self.state.lock().await;
        state
            .wanted
            .entry(owner.to_owned())
            .or_insert_with(|| Self::owner_key(owner));
        if state.locked.contains(owner) {
            return Ok(());
        }
        if state
            .contended
            .get(owner)
            .is_some_and(|since| since.elapsed() < CONTENDED_BACKOFF)
        {
            return Ok(());
        }
        let result = self.lock_wanted(&mut state).await;
        if let Err(e) = &result {
            tracing::warn!(owner, error = %e, "cannot take the host's advisory lock");
            if state.conn.is_some() {
                state.drop_connection();
            }
        }
        result
    }

    /// Takes the locks of every wanted owner not locked yet (all of them
    /// after a reconnection).
    async fn lock_wanted(&self, state: &mut State) -> Result<(), StoreError> {
        self.connect_if_needed(state).await?;
        let todo: Vec<(String, i32)> = state
            .wanted
            .iter()
            .filter(|(o, _)| !state.locked.contains(*o))
            .filter(|(o, _)| {
                state
                    .contended
                    .get(*o)
                    .is_none_or(|since| since.elapsed() >= CONTENDED_BACKOFF)
            })
            .map(|(o, k)| (o.clone(), *k))
            .collect();
        let Some(conn) = state.conn.as_mut() else {
            return Ok(());
        };
        for (owner, key) in todo {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                .bind(self.schema_key)
                .bind(key)
                .fetch_one(&mut *conn)
                .await
                .db()?;
            if got {
                state.contended.remove(&owner);
                state.locked.insert(owner);
            } else {
                tracing::warn!(
                    owner,
                    "another session holds this host's advisory lock; \
                     host ids should be unique per store"
                );
                state.contended.insert(owner, Instant::now());
            }
        }
        Ok(())
    }

    async fn connect_if_needed(&self, state: &mut State) -> Result<(), StoreError> {
        if state.conn.is_some() {
            return Ok(());
        }
        if let Some(at) = state.next_attempt
            && Instant::now() < at
        {
            return Err(StoreError::Backend {
                message: "the host-lock connection is down; reconnecting".to_owned(),
                retryable: true,
                source: None,
            });
        }
        let connect = PgConnection::connect_with(&self.options);
        let result = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(r) => r.db(),
            Err(_) => Err(StoreError::Backend {
                message: "connecting the host-lock connection timed out".to_owned(),
                retryable: true,
                source: None,
            }),
        };
        match result {
            Ok(conn) => {
                state.conn = Some(conn);
                state.locked.clear();
                state.next_attempt = None;
                state.backoff = MIN_BACKOFF;
                Ok(())
            }
            Err(e) => {
                state.next_attempt = Some(Instant::now() + state.backoff);
                state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
                Err(e)
            }
        }
    }

    /// Drops `owner`'s lock (after a graceful `release`).
    pub(crate) async fn release(&self, owner: &HostId) {
        let owner = owner.as_str();
        let mut state = self.state.lock().await;
        let Some(key) = state.wanted.remove(owner) else {
            return;
        };
        state.contended.remove(owner);
        if !state.locked.remove(owner) {
            return;
        }
        let Some(conn) = state.conn.as_mut() else {
            return;
        };
        let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, $2)")
            .bind(self.schema_key)
            .bind(key)
            .fetch_one(conn)
            .await;
        if let Err(e) = unlocked {
            tracing::warn!(owner, error = %e, "cannot release the host's advisory lock");
            state.drop_connection();
        }
    }

    /// Checks that the lock connection is alive when this store holds locks;
    /// a lost one is re-established and its locks re-taken (until then
    /// other stores may take this store's processes over).
    async fn keep_locks(&self, state: &mut State) {
        if state.wanted.is_empty() {
            return;
        }
        if let Some(conn) = state.conn.as_mut()
            && let Err(e) = conn.ping().await
        {
            tracing::warn!(error = %e, "the host-lock connection was lost; reconnecting");
            state.drop_connection();
        }
        if let Err(e) = self.lock_wanted(state).await {
            tracing::warn!(error = %e, "cannot re-take the host advisory locks");
            if state.conn.is_some() {
                state.drop_connection();
            }
        }
    }

    /// The owners of running processes with unexpired leases whose sessions
    /// are gone; looked for at most every 500 ms (otherwise empty). `conn`
    /// runs the query on processes; the locks are probed on the dedicated
    /// connection.
    pub(crate) async fn dead_owners(
        &self,
        conn: &mut PgConnection,
        now: Now,
    ) -> Result<Vec<String>, StoreError> {
        let mut state = self.state.lock().await;
        if state
            .last_reap
            .is_some_and(|at| at.elapsed() < REAP_INTERVAL)
        {
            return Ok(Vec::new());
        }
        state.last_reap = Some(Instant::now());
        self.keep_locks(&mut state).await;
        let owners: Vec<String> = sqlx::query_scalar(LEASE_OWNERS)
            .bind(now.bind())
            .fetch_all(&mut *conn)
            .await
            .db()?;
        let ours: HashSet<i32> = state.wanted.values().copied().collect();
        let (names, keys): (Vec<String>, Vec<i32>) = owners
            .into_iter()
            .filter(|o| !state.wanted.contains_key(o))
            .map(|o| {
                let key = Self::owner_key(&o);
                (o, key)
            })
            .filter(|(_, k)| !ours.contains(k))
            .unzip();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        if let Err(e) = self.connect_if_needed(&mut state).await {
            tracing::debug!(error = %e, "cannot check for dead hosts");
            return Ok(Vec::new());
        }
        let Some(lock_conn) = state.conn.as_mut() else {
            return Ok(Vec::new());
        };
        match probe(lock_conn, self.schema_key, &names, &keys).await {
            Ok(dead) => Ok(dead),
            Err(e) => {
                tracing::warn!(error = %e, "cannot probe the host advisory locks");
                state.drop_connection();
                Ok(Vec::new())
            }
        }
    }
}

/// Tries each owner's lock; the ones taken belong to dead sessions and are
/// unlocked again at once.
async fn probe(
    conn: &mut PgConnection,
    schema_key: i32,
    names: &[String],
    keys: &[i32],
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, i32, bool)> = sqlx::query_as(
        "SELECT t.owner, t.key, pg_try_advisory_lock($1, t.key)
         FROM unnest($2::text[], $3::int4[]) AS t(owner, key)",
    )
    .bind(schema_key)
    .bind(names)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await?;
    let taken: Vec<i32> = rows.iter().filter(|r| r.2).map(|r| r.1).collect();
    if !taken.is_empty() {
        sqlx::query("SELECT pg_advisory_unlock($1, k) FROM unnest($2::int4[]) AS k")
            .bind(schema_key)
            .bind(&taken)
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows.into_iter().filter(|r| r.2).map(|r| r.0).collect())
}

impl State {
    /// Forgets a connection that failed; its session (and locks) end with it.
    fn drop_connection(&mut self) {
        self.conn = None;
        self.locked.clear();
    }
}
