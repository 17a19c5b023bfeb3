//! Transactional steps on SQLite: the body runs on the writer thread, in the
//! savepoint of the batch that also journals the step, so the user's SQL and
//! the journal entry commit in the same group commit or not at all.

use std::ops::Deref;

use rusqlite::Connection;
use steadfast_core::{JournalEntry, Lease, StoreError, TransactionBody, TransactionalStore};

use crate::SqliteStore;
use crate::ops::fence;
use crate::ops::journal::append;
use crate::write::Write;

/// The store's write connection as a transactional step's body sees it: a
/// [`rusqlite::Connection`] (through [`Deref`]) inside the batch's open
/// transaction. A body can run any SQL on it, but cannot replace or close
/// it; it must not `COMMIT` or `ROLLBACK` (the step then fails).
pub struct WriteConnection(Connection);

impl WriteConnection {
    /// Wraps the writer thread's connection.
    pub(crate) fn new(conn: Connection) -> Self {
        WriteConnection(conn)
    }
}

impl Deref for WriteConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl std::fmt::Debug for WriteConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteConnection").finish_non_exhaustive()
    }
}

/// Bodies are synchronous: they run on the writer thread inside a group
/// commit, so they should be quick.
impl TransactionalStore for SqliteStore {
    type Connection = WriteConnection;
    type Returns<'c, R: Send + 'c> = R;

    fn then<'c, A: Send + 'c, B: Send + 'c>(returned: A, f: impl FnOnce(A) -> B + Send + 'c) -> B {
        f(returned)
    }

    async fn transaction(
        &self,
        lease: &Lease,
        entry: JournalEntry,
        body: TransactionBody<Self>,
    ) -> Result<bool, StoreError> {
        let lease = lease.clone();
        self.call(Write::Transaction(lease, entry, Some(body)))
            .await
    }
}

/// Runs on the writer thread, in the command's savepoint: fences the lease,
/// runs the body, and appends the entry with the body's outcome;
/// `Ok(false)` when the body failed (the savepoint is then rolled back).
pub(crate) fn apply(
    conn: &mut WriteConnection,
    lease: &Lease,
    mut entry: JournalEntry,
    body: TransactionBody<SqliteStore>,
) -> Result<bool, StoreError> {
    if fence(conn, lease)? {
        return Err(StoreError::CancelRequested(lease.id.clone()));
    }
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut *conn)));
    if conn.is_autocommit() {
        return Err(StoreError::InvalidInput(format!(
            "the transaction body of step {:?} ended the store's transaction (COMMIT or \
             ROLLBACK inside a transactional step is not allowed)",
            entry.name
        )));
    }
    match ran {
        Ok(Some(outcome)) => {
            entry.outcome = Some(outcome);
            append(conn, lease, &entry)?;
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(_) => Err(StoreError::InvalidInput(format!(
            "the transaction body of step {:?} panicked",
            entry.name
        ))),
    }
}
