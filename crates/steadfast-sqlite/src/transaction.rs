//! Transactional steps: the user's SQL and the journal entry that records it
//! commit in one savepoint of the writer's batch, so effects in the same
//! database happen exactly once.

use rusqlite::Connection;
use steadfast_core::{JournalEntry, Lease, StoreError};

use crate::ops::fence;
use crate::ops::journal::append;

/// [`crate::SqliteStore::transaction`]: the body's SQL and the journal entry
/// in one savepoint of the batch; `Ok(false)` when the body failed.
pub(crate) fn transaction(
    conn: &Connection,
    lease: &Lease,
    mut entry: JournalEntry,
    body: TransactionBody,
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

/// User SQL that commits together with a journal entry: returns the entry's
/// outcome as JSON, or `Err(())` when the body failed (its effects are then
/// rolled back). See [`crate::SqliteStore::transaction`].
pub type TransactionBody = Box<dyn FnOnce(&Connection) -> Result<String, ()> + Send>;
