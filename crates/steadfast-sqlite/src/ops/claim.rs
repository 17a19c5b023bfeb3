//! Claiming due processes (after making dead hosts' processes due), parking
//! rows that do not decode, and renewing or releasing a lease.

use std::time::Duration;

use rusqlite::{Connection, params};
use steadfast_core::rules::Recorded;
use steadfast_core::{
    Claimed, HostId, Lease, NewProcess, ProcessRecord, RowError, SpawnAndClaim, SpawnOutcome,
    StoreError, Timestamp,
};

use super::events::{self, Row};
use super::{micros, pending_signals};
use crate::hosts::{Hosts, Liveness};
use crate::rows::{
    Db, SELECT_JOURNAL, collect, first, journal_from_row, process_columns, process_from_row,
};

/// Makes the processes of dead hosts on this machine runnable at `now`.
fn reap_dead_hosts(
    conn: &Connection,
    hosts: &mut Hosts,
    owner: &HostId,
    now: Timestamp,
) -> Result<(), StoreError> {
    if !hosts.reap_due() {
        return Ok(());
    }
    let owners: Vec<Option<String>> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT DISTINCT owner FROM processes
                 WHERE wake_at > ?2 AND owner IS NOT NULL AND owner <> ?1
                   AND +status = 'running'",
            )
            .db()?;
        // An owner that is not text (a corrupt row) is skipped: the row is
        // claimed once its lease runs out and parked there if it does not
        // decode.
        collect(&mut stmt, params![owner.as_str(), micros(now)], |r| {
            Ok(r.get::<_, String>(0).ok())
        })?
    };
    for other in owners.into_iter().flatten() {
        let liveness = hosts.probe(&other);
        if matches!(liveness, Liveness::Alive) {
            continue;
        }
        let n = conn
            .prepare_cached(
                // Runnable since they were created (at the latest now), so
                // they are claimed before work that never started.
                "UPDATE processes SET wake_at = min(created_at, ?2)
                 WHERE owner = ?1 AND status = 'running' AND wake_at > ?2",
            )
            .db()?
            .execute(params![other, micros(now)])
            .db()?;
        tracing::info!(
            owner = other,
            processes = n,
            "host is gone; its processes are runnable now"
        );
        hosts.bury(liveness);
    }
    Ok(())
}

/// [`steadfast_core::Store::claim`].
pub(crate) fn claim(
    conn: &Connection,
    hosts: &mut Hosts,
    owner: &HostId,
    now: Timestamp,
    lease: Duration,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    hosts.ensure_held(owner.as_str());
    reap_dead_hosts(conn, hosts, owner, now)?;
    let rows: Vec<i64> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT rowid FROM processes
                 WHERE wake_at IS NOT NULL AND wake_at <= ?1
                   AND +status IN ('running', 'suspended')
                 ORDER BY wake_at, id LIMIT ?2",
            )
            .db()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        collect(&mut stmt, params![micros(now), limit], |r| r.get(0).db())?
    };
    let expiry = micros(now + lease);
    let mut claimed = Vec::with_capacity(rows.len());
    for rowid in rows {
        match claim_one(conn, rowid, owner, expiry, now) {
            Ok(Some(one)) => {
                events::record(
                    conn,
                    Row::Rowid(rowid),
                    Recorded::Claim,
                    Some(owner.as_str()),
                    now,
                )?;
                claimed.push(one);
            }
            Ok(None) => {}
            Err(StoreError::CorruptRow(error)) => park(conn, rowid, &error, now)?,
            Err(other) => return Err(other),
        }
    }
    Ok(claimed)
}

/// [`steadfast_core::Store::spawn_and_claim`]: the spawn, and for a new
/// process the claim of its row, in the writer's one transaction.
pub(crate) fn spawn_and_claim(
    conn: &Connection,
    hosts: &mut Hosts,
    p: &NewProcess,
    owner: &HostId,
    lease: Duration,
) -> Result<SpawnAndClaim, StoreError> {
    match super::spawn::spawn(conn, p)? {
        SpawnOutcome::Existing(record) => Ok(SpawnAndClaim::Existing(record)),
        SpawnOutcome::Created => {
            hosts.ensure_held(owner.as_str());
            let rowid = conn.last_insert_rowid();
            // A new process has no journal and no signals to load.
            let record =
                take_lease(conn, rowid, owner, micros(p.now + lease), p.now)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("process {:?} was stored but not found", p.id))
                })?;
            let claimed = Claimed::spawned(record, owner);
            events::record(
                conn,
                Row::Rowid(rowid),
                Recorded::Claim,
                Some(owner.as_str()),
                p.now,
            )?;
            Ok(SpawnAndClaim::Claimed(Box::new(claimed)))
        }
    }
}

/// Claims the process in row `rowid` and loads its journal and signals;
/// [`StoreError::CorruptRow`] when any of them does not decode.
fn claim_one(
    conn: &Connection,
    rowid: i64,
    owner: &HostId,
    expiry: i64,
    now: Timestamp,
) -> Result<Option<Claimed>, StoreError> {
    let Some(record) = take_lease(conn, rowid, owner, expiry, now)? else {
        return Ok(None);
    };
    let id = record.id.as_str();
    let journal = {
        let mut stmt = conn.prepare_cached(SELECT_JOURNAL).db()?;
        collect(&mut stmt, [id], |r| journal_from_row(r, id))?
    };
    let signals = pending_signals(conn, id)?;
    Ok(Some(Claimed {
        lease: Lease {
            id: record.id.clone(),
            owner: owner.clone(),
            epoch: record.epoch,
        },
        record,
        journal,
        signals,
    }))
}

/// Gives the process in row `rowid` to `owner` until `expiry` (the next
/// epoch, status running) and returns its record.
fn take_lease(
    conn: &Connection,
    rowid: i64,
    owner: &HostId,
    expiry: i64,
    now: Timestamp,
) -> Result<Option<ProcessRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "UPDATE processes SET owner = ?2, epoch = epoch + 1, status = 'running',
                 wake_at = ?3, updated_at = ?4, waiting_for = '[]', parked_at = '[]'
             WHERE rowid = ?1 RETURNING ",
            process_columns!()
        ))
        .db()?;
    first(
        &mut stmt,
        params![rowid, owner.as_str(), expiry, micros(now)],
        process_from_row,
    )
}

/// Parks the process in row `rowid` as blocked because `error` does not
/// decode: it is not claimed again until it is repaired and retried.
fn park(conn: &Connection, rowid: i64, error: &RowError, now: Timestamp) -> Result<(), StoreError> {
    let reason =
        format!("stored data does not decode: {error}; repair the row and retry the process");
    tracing::warn!(%reason, "parking a process whose stored data does not decode");
    conn.prepare_cached(
        "UPDATE processes SET status = 'blocked', error = ?2, blocked_step = NULL,
             wake_at = NULL, owner = NULL, cancel_requested = 0, waiting_for = '[]',
             parked_at = '[]', updated_at = ?3
         WHERE rowid = ?1",
    )
    .db()?
    .execute(params![rowid, reason, micros(now)])
    .db()?;
    events::record(
        conn,
        Row::Rowid(rowid),
        Recorded::Park { reason: &reason },
        None,
        now,
    )
}

/// [`steadfast_core::Store::renew`].
pub(crate) fn renew(
    conn: &Connection,
    hosts: &mut Hosts,
    owner: &HostId,
    leases: &[Lease],
    now: Timestamp,
    lease: Duration,
) -> Result<u64, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE processes SET wake_at = ?4, updated_at = ?5
             WHERE id = ?1 AND epoch = ?2 AND owner = ?3 AND status = 'running'",
        )
        .db()?;
    let mut n = 0;
    for held in leases.iter().filter(|l| l.owner == *owner) {
        n += stmt
            .execute(params![
                held.id.as_str(),
                held.epoch,
                owner.as_str(),
                micros(now + lease),
                micros(now)
            ])
            .db()?;
    }
    if n > 0 {
        hosts.ensure_held(owner.as_str());
    }
    Ok(n as u64)
}

/// [`steadfast_core::Store::release`] (the host lock is dropped after commit).
pub(crate) fn release(
    conn: &Connection,
    owner: &HostId,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE processes SET owner = NULL, wake_at = ?2, updated_at = ?2
             WHERE owner = ?1 AND status = 'running'",
        )
        .db()?
        .execute(params![owner.as_str(), micros(now)])
        .db()?;
    Ok(n as u64)
}
