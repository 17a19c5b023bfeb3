//! The writes the writer task runs: one [`Write`] per store operation that
//! changes the database, and [`apply`], which runs one of them on the
//! batch's connection. The store's methods queue them; the `batch` module
//! runs a batch of them.

use std::time::Duration;

use sqlx::PgConnection;
use steadfast_core::group_commit::Value;
use steadfast_core::{
    Finish, HostId, JournalEntry, Lease, NewProcess, NewSignal, ProcessId, StoreError, Suspension,
    Timestamp,
};

use crate::clock::Now;
use crate::ops::{admin, claim, journal, signal, spawn};

/// One write for the writer task; its caller waits in the queue beside it
/// ([`group_commit::Queue::call`]).
pub(crate) enum Write {
    Spawn(NewProcess, Now),
    Append(Lease, JournalEntry),
    Suspend(Lease, Suspension, Now),
    Finish(Lease, Finish, Now),
    Renew(HostId, Vec<Lease>, Now, Duration),
    Release(HostId, Now),
    /// [`steadfast_core::Store::send_signal`] (its `now` is the [`Now`]).
    Signal(ProcessId, NewSignal, Now),
    Cancel(ProcessId, Now),
    Retry(ProcessId, Now),
    RejectSignal(Lease, i64, String, Timestamp),
    DiscardSignal(ProcessId, i64, Timestamp),
    Rewind(ProcessId, String, Now),
    ContinueAsNew(Lease, String, Now),
    /// Reads a setting of the writer's session (`SHOW`).
    Show(&'static str),
}

/// Runs one write (inside a savepoint of the batch's transaction).
pub(crate) async fn apply(
    conn: &mut PgConnection,
    channel: &str,
    op: &Write,
) -> Result<Value, StoreError> {
    Ok(match op {
        Write::Spawn(p, now) => Value::Spawn(spawn::spawn(conn, channel, p, *now).await?),
        Write::Append(lease, entry) => {
            journal::append(conn, lease, entry).await?;
            Value::Unit
        }
        Write::Suspend(lease, s, now) => {
            Value::Suspend(journal::suspend(conn, lease, s, *now).await?)
        }
        Write::Finish(lease, f, now) => {
            journal::finish(conn, channel, lease, f, *now).await?;
            Value::Unit
        }
        Write::Renew(owner, leases, now, lease) => {
            Value::Count(claim::renew(conn, owner, leases, *now, *lease).await?)
        }
        Write::Release(owner, now) => {
            Value::Count(claim::release(conn, channel, owner, *now).await?)
        }
        Write::Signal(id, sent, now) => {
            Value::Sent(signal::send(conn, channel, id, sent, *now).await?)
        }
        Write::Cancel(id, now) => Value::Status(admin::cancel(conn, channel, id, *now).await?),
        Write::Retry(id, now) => {
            admin::retry(conn, channel, id, *now).await?;
            Value::Unit
        }
        Write::RejectSignal(lease, signal, reason, now) => {
            signal::reject(conn, lease, *signal, reason, *now).await?;
            Value::Unit
        }
        Write::DiscardSignal(id, signal, now) => {
            signal::discard(conn, id, *signal, *now).await?;
            Value::Unit
        }
        Write::Rewind(id, step, now) => {
            Value::Count(admin::rewind(conn, channel, id, step, *now).await?)
        }
        Write::ContinueAsNew(lease, input, now) => {
            spawn::continue_as_new(conn, channel, lease, input, *now).await?;
            Value::Unit
        }
        Write::Show(setting) => Value::Text(admin::show(conn, setting).await?),
    })
}
