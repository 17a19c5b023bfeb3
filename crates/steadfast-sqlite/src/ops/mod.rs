//! The write operations, each run on the writer thread inside its own
//! savepoint of the batch transaction.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use steadfast_core::{
    Claimed, EntryStatus, Finish, HostId, JournalEntry, Lease, NewProcess, PendingSignal,
    ProcessId, RowError, SpawnOutcome, Status, StoreError, SuspendOutcome, Suspension, Timestamp,
};

use crate::hosts::{Hosts, Liveness};
pub(crate) mod admin;
pub(crate) mod signal;

use crate::rows::{
    Db, collect, first, journal_columns, journal_from_row, locations_json, process_columns,
    process_from_row, shown, signal_columns, signal_from_row,
};

/// Selects one process by id (`?1`).
pub(crate) const SELECT_PROCESS: &str = concat!(
    "SELECT ",
    process_columns!(),
    " FROM processes WHERE id = ?1"
);

/// Selects a process's journal (`?1`) in `seq` order.
pub(crate) const SELECT_JOURNAL: &str = concat!(
    "SELECT ",
    journal_columns!(),
    " FROM journal WHERE process_id = ?1 ORDER BY seq, name"
);

/// Selects a process's (`?1`) unconsumed signals in send order.
pub(crate) const SELECT_PENDING: &str = concat!(
    "SELECT ",
    signal_columns!(),
    " FROM signals WHERE process_id = ?1 AND consumed_at IS NULL ORDER BY id"
);

fn micros(t: Timestamp) -> i64 {
    t.as_micros()
}

/// Loads a process's status, or `NotFound`.
fn status_of(
    conn: &Connection,
    id: &ProcessId,
) -> Result<(Status, Option<String>, Option<i64>), StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT status, owner, wake_at FROM processes WHERE id = ?1")
        .db()?;
    let row = first(&mut stmt, [id.as_str()], |r| {
        let status: String = r.get(0).db()?;
        let status = status.parse::<Status>().map_err(|e| {
            StoreError::CorruptRow(RowError::new(
                "processes",
                id.as_str(),
                "status",
                e.to_string(),
            ))
        })?;
        Ok((status, r.get(1).db()?, r.get(2).db()?))
    })?;
    row.ok_or_else(|| StoreError::NotFound(id.clone()))
}

/// Checks that `lease` still holds its process: it exists, is running, is
/// owned by the lease's host, at the lease's epoch. Returns whether a
/// cancellation is pending.
pub(crate) fn fence(conn: &Connection, lease: &Lease) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT cancel_requested FROM processes
             WHERE id = ?1 AND epoch = ?2 AND owner = ?3 AND status = 'running'",
        )
        .db()?;
    let cancel: Option<bool> = stmt
        .query_row(
            params![lease.id.as_str(), lease.epoch, lease.owner.as_str()],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    cancel.ok_or_else(|| StoreError::Fenced {
        id: lease.id.clone(),
        epoch: lease.epoch,
    })
}

fn pending_signals(conn: &Connection, id: &str) -> Result<Vec<PendingSignal>, StoreError> {
    let mut stmt = conn.prepare_cached(SELECT_PENDING).db()?;
    collect(&mut stmt, [id], |r| signal_from_row(r, id))
}

/// [`steadfast_core::Store::spawn`].
pub(crate) fn spawn(conn: &Connection, p: &NewProcess) -> Result<SpawnOutcome, StoreError> {
    let existing = {
        let mut stmt = conn.prepare_cached(SELECT_PROCESS).db()?;
        first(&mut stmt, [p.id.as_str()], process_from_row)?
    };
    if let Some(record) = existing {
        if record.kind == p.kind && record.input == p.input {
            return Ok(SpawnOutcome::Existing(Box::new(record)));
        }
        return Err(StoreError::SpawnConflict {
            id: p.id.clone(),
            existing_kind: record.kind,
        });
    }
    conn.prepare_cached(
        "INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at,
             waiting_for, epoch, cancel_requested, version, parent)
         VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?4, '[]', 0, 0, ?5, ?6)",
    )
    .db()?
    .execute(params![
        p.id.as_str(),
        p.kind,
        p.input,
        micros(p.now),
        p.version,
        p.parent.as_ref().map(ProcessId::as_str),
    ])
    .db()?;
    Ok(SpawnOutcome::Created)
}

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
            Ok(Some(one)) => claimed.push(one),
            Ok(None) => {}
            Err(StoreError::CorruptRow(error)) => park(conn, rowid, &error, now)?,
            Err(other) => return Err(other),
        }
    }
    Ok(claimed)
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
    let record = {
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
        )?
    };
    let Some(record) = record else {
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
    Ok(())
}

/// [`steadfast_core::Store::append`].
pub(crate) fn append(conn: &Connection, lease: &Lease, e: &JournalEntry) -> Result<(), StoreError> {
    if fence(conn, lease)? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    let id = lease.id.as_str();
    let existing: Option<String> = conn
        .prepare_cached("SELECT status FROM journal WHERE process_id = ?1 AND name = ?2")
        .db()?
        .query_row(params![id, e.name], |r| r.get(0))
        .optional()
        .db()?;
    let (file, line) = match &e.location {
        Some(loc) => (Some(loc.file.as_str()), Some(loc.line)),
        None => (None, None),
    };
    match existing {
        None => {
            conn.prepare_cached(
                "INSERT INTO journal (process_id, name, seq, kind, status, outcome, attempts,
                     started_at, finished_at, due_at, file, line, consumed_signal)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .db()?
            .execute(params![
                id,
                e.name,
                e.seq,
                e.kind.as_str(),
                e.status.as_str(),
                e.outcome,
                e.attempts,
                micros(e.started_at),
                e.finished_at.map(micros),
                e.due_at.map(micros),
                file,
                line,
                e.consumed_signal,
            ])
            .db()?;
        }
        Some(status) if status == EntryStatus::Scheduled.as_str() => {
            conn.prepare_cached(
                "UPDATE journal SET status = ?3, outcome = ?4, attempts = ?5, finished_at = ?6,
                     due_at = coalesce(?7, due_at), file = coalesce(?8, file),
                     line = coalesce(?9, line), consumed_signal = ?10, seq = ?11
                 WHERE process_id = ?1 AND name = ?2",
            )
            .db()?
            .execute(params![
                id,
                e.name,
                e.status.as_str(),
                e.outcome,
                e.attempts,
                e.finished_at.map(micros),
                e.due_at.map(micros),
                file,
                line,
                e.consumed_signal,
                e.seq,
            ])
            .db()?;
        }
        Some(_) => {
            return Err(StoreError::DuplicateEntry {
                id: lease.id.clone(),
                name: e.name.clone(),
            });
        }
    }
    if let Some(signal) = e.consumed_signal {
        let at = e.finished_at.unwrap_or(e.started_at);
        let n = conn
            .prepare_cached(
                "UPDATE signals SET consumed_at = ?3
                 WHERE id = ?1 AND process_id = ?2 AND consumed_at IS NULL",
            )
            .db()?
            .execute(params![signal, id, micros(at)])
            .db()?;
        if n == 0 {
            return Err(StoreError::InvalidInput(format!(
                "journal entry {:?} of process {id:?} consumes signal {signal}, \
                 which is not an unconsumed signal of that process",
                e.name
            )));
        }
    }
    Ok(())
}

/// [`steadfast_core::Store::suspend`].
pub(crate) fn suspend(
    conn: &Connection,
    lease: &Lease,
    s: &Suspension,
) -> Result<SuspendOutcome, StoreError> {
    if fence(conn, lease)? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    if !s.waiting_for.is_empty() {
        let mut pending = pending_signals(conn, lease.id.as_str())?;
        pending.retain(|sig| s.waiting_for.contains(&sig.name));
        if !pending.is_empty() {
            return Ok(SuspendOutcome::SignalsPending(pending));
        }
    }
    let waiting_for = serde_json::to_string(&s.waiting_for)
        .map_err(|e| StoreError::InvalidInput(format!("waiting_for: {e}")))?;
    conn.prepare_cached(
        "UPDATE processes SET status = 'suspended', owner = NULL, wake_at = ?2,
             waiting_for = ?3, updated_at = ?4, parked_at = ?5
         WHERE id = ?1",
    )
    .db()?
    .execute(params![
        lease.id.as_str(),
        s.wake_at.map(micros),
        waiting_for,
        micros(s.now),
        locations_json(&s.parked_at)?,
    ])
    .db()?;
    Ok(SuspendOutcome::Suspended)
}

/// [`steadfast_core::Store::finish`].
pub(crate) fn finish(
    conn: &Connection,
    lease: &Lease,
    f: &Finish,
    now: Timestamp,
) -> Result<(), StoreError> {
    fence(conn, lease)?;
    let (status, output, error, step): (Status, Option<&str>, Option<&str>, Option<&str>) = match f
    {
        Finish::Completed { output } => (Status::Completed, Some(output), None, None),
        Finish::Failed { error } => (Status::Failed, None, Some(error), None),
        Finish::Blocked { step, reason, .. } => {
            (Status::Blocked, None, Some(reason), step.as_deref())
        }
        Finish::Cancelled => (Status::Cancelled, None, None, None),
        other => {
            return Err(StoreError::InvalidInput(format!(
                "this store does not know how to finish a run with {other:?}"
            )));
        }
    };
    let parked: Vec<_> = match f {
        Finish::Blocked {
            location: Some(at), ..
        } => vec![at.clone()],
        _ => Vec::new(),
    };
    conn.prepare_cached(
        "UPDATE processes SET status = ?2, output = ?3, error = ?4, blocked_step = ?5,
             wake_at = NULL, owner = NULL, cancel_requested = 0, waiting_for = '[]',
             updated_at = ?6, parked_at = ?7
         WHERE id = ?1",
    )
    .db()?
    .execute(params![
        lease.id.as_str(),
        status.as_str(),
        output,
        error,
        step,
        micros(now),
        locations_json(&parked)?,
    ])
    .db()?;
    notify_parent(conn, &lease.id, f, now)
}

/// The stored parent of process `id`, if any.
fn parent_of(conn: &Connection, id: &ProcessId) -> Result<Option<ProcessId>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT parent FROM processes WHERE id = ?1")
        .db()?;
    let parent = first(&mut stmt, [id.as_str()], |r| {
        let parent: Option<String> = r.get(0).map_err(|_| {
            StoreError::CorruptRow(RowError::new(
                "processes",
                id.as_str(),
                "parent",
                format!("the value {} does not decode", shown(r, 0)),
            ))
        })?;
        parent
            .map(|p| {
                ProcessId::new(p).map_err(|e| {
                    StoreError::CorruptRow(RowError::new(
                        "processes",
                        id.as_str(),
                        "parent",
                        e.to_string(),
                    ))
                })
            })
            .transpose()
    })?;
    Ok(parent.flatten())
}

/// Stores the end signal of child `id` (ended with `f`) for its parent, if
/// it has one that is still unfinished; wakes a suspended parent.
fn notify_parent(
    conn: &Connection,
    id: &ProcessId,
    f: &Finish,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(parent) = parent_of(conn, id)? else {
        return Ok(());
    };
    let Some(notice) = steadfast_core::child::end_notice(&parent, id, f) else {
        return Ok(());
    };
    // `None`: no such parent; `Some(None)`: its status does not decode (it
    // is still signalled, it may be repaired).
    let status: Option<Option<Status>> = conn
        .prepare_cached("SELECT status FROM processes WHERE id = ?1")
        .db()?
        .query_row([parent.as_str()], |r| {
            Ok(r.get::<_, String>(0).ok().and_then(|s| s.parse().ok()))
        })
        .optional()
        .db()?;
    match status {
        None => return Ok(()),
        Some(Some(status)) if status.is_finished() => return Ok(()),
        Some(_) => {}
    }
    insert_signal(conn, &parent, &notice.signal, &notice.payload, now)?;
    Ok(())
}

/// Inserts a signal and wakes the process if it is suspended.
fn insert_signal(
    conn: &Connection,
    id: &ProcessId,
    name: &str,
    payload: &str,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let signal_id: i64 = conn
        .prepare_cached(
            "INSERT INTO signals (process_id, name, payload, sent_at) VALUES (?1, ?2, ?3, ?4)
             RETURNING id",
        )
        .db()?
        .query_row(params![id.as_str(), name, payload, micros(now)], |r| {
            r.get(0)
        })
        .db()?;
    conn.prepare_cached(
        "UPDATE processes SET wake_at = ?2, updated_at = ?2
         WHERE id = ?1 AND status = 'suspended' AND (wake_at IS NULL OR wake_at > ?2)",
    )
    .db()?
    .execute(params![id.as_str(), micros(now)])
    .db()?;
    Ok(signal_id)
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

/// [`steadfast_core::Store::signal`].
pub(crate) fn signal(
    conn: &Connection,
    id: &ProcessId,
    name: &str,
    payload: &str,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let (status, _, _) = status_of(conn, id)?;
    if status.is_finished() {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "signal",
            expected: "running, suspended or blocked",
        });
    }
    insert_signal(conn, id, name, payload, now)
}

/// [`steadfast_core::Store::cancel`]: the process, then its unfinished
/// descendants (by stored parent).
pub(crate) fn cancel(
    conn: &Connection,
    id: &ProcessId,
    now: Timestamp,
) -> Result<Status, StoreError> {
    let (status, owner, wake_at) = status_of(conn, id)?;
    if status.is_finished() {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "cancel",
            expected: "running, suspended or blocked",
        });
    }
    let after = cancel_one(conn, id, status, owner, wake_at, now)?;
    let descendants: Vec<String> = {
        let mut stmt = conn
            .prepare_cached(
                "WITH RECURSIVE tree(id) AS (
                     SELECT id FROM processes WHERE parent = ?1
                     UNION
                     SELECT p.id FROM processes p JOIN tree t ON p.parent = t.id
                 )
                 SELECT id FROM tree ORDER BY id",
            )
            .db()?;
        collect(&mut stmt, [id.as_str()], |r| Ok(r.get::<_, String>(0).ok()))?
            .into_iter()
            .flatten()
            .collect()
    };
    for child in descendants {
        let Ok(child) = ProcessId::new(child) else {
            continue;
        };
        // A descendant that does not decode is left as it is; the others
        // are cancelled.
        let Ok((status, owner, wake_at)) = status_of(conn, &child) else {
            continue;
        };
        if !status.is_finished() {
            cancel_one(conn, &child, status, owner, wake_at, now)?;
        }
    }
    Ok(after)
}

/// Cancels one unfinished process: at once when no live lease holds it
/// (telling its parent), otherwise by requesting it.
fn cancel_one(
    conn: &Connection,
    id: &ProcessId,
    status: Status,
    owner: Option<String>,
    wake_at: Option<i64>,
    now: Timestamp,
) -> Result<Status, StoreError> {
    let leased =
        status == Status::Running && owner.is_some() && wake_at.is_some_and(|w| w > micros(now));
    if leased {
        conn.prepare_cached(
            "UPDATE processes SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
        )
        .db()?
        .execute(params![id.as_str(), micros(now)])
        .db()?;
        return Ok(Status::Running);
    }
    conn.prepare_cached(
        "UPDATE processes SET status = 'cancelled', wake_at = NULL, owner = NULL,
             cancel_requested = 0, waiting_for = '[]', parked_at = '[]', updated_at = ?2
         WHERE id = ?1",
    )
    .db()?
    .execute(params![id.as_str(), micros(now)])
    .db()?;
    notify_parent(conn, id, &Finish::Cancelled, now)?;
    Ok(Status::Cancelled)
}

/// [`steadfast_core::Store::retry`].
pub(crate) fn retry(conn: &Connection, id: &ProcessId, now: Timestamp) -> Result<(), StoreError> {
    let (status, _, _) = status_of(conn, id)?;
    if !matches!(status, Status::Blocked | Status::Failed) {
        return Err(StoreError::InvalidState {
            id: id.clone(),
            status,
            action: "retry",
            expected: "blocked or failed",
        });
    }
    conn.prepare_cached(
        "UPDATE processes SET status = 'running', wake_at = ?2, error = NULL,
             blocked_step = NULL, output = NULL, owner = NULL, cancel_requested = 0,
             waiting_for = '[]', parked_at = '[]', updated_at = ?2
         WHERE id = ?1",
    )
    .db()?
    .execute(params![id.as_str(), micros(now)])
    .db()?;
    Ok(())
}

/// Reads `journal_mode` and `synchronous` back from the writer connection.
pub(crate) fn pragmas(conn: &Connection) -> Result<(String, i64), StoreError> {
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .db()?;
    let sync: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .db()?;
    Ok((mode, sync))
}

/// [`crate::SqliteStore::transaction`]: the body's SQL and the journal entry
/// in one savepoint of the batch; `Ok(false)` when the body failed.
pub(crate) fn transaction(
    conn: &Connection,
    lease: &Lease,
    mut entry: JournalEntry,
    body: crate::writer::TransactionBody,
) -> Result<bool, StoreError> {
    if fence(conn, lease)? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(conn)));
    if conn.is_autocommit() {
        return Err(StoreError::InvalidInput(format!(
            "the transaction body of step {:?} ended the store's transaction (COMMIT or \
             ROLLBACK inside a transactional step is not allowed)",
            entry.name
        )));
    }
    match ran {
        Ok(Ok(outcome)) => {
            entry.outcome = Some(outcome);
            append(conn, lease, &entry)?;
            Ok(true)
        }
        Ok(Err(())) => Ok(false),
        Err(_) => Err(StoreError::InvalidInput(format!(
            "the transaction body of step {:?} panicked",
            entry.name
        ))),
    }
}
