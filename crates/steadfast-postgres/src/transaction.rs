//! Transactional steps: the user's SQL and the journal entry that records
//! it commit in one PostgreSQL transaction, so effects in the same database
//! happen exactly once.

use futures::future::BoxFuture;
use sqlx::PgConnection;
use steadfast_core::{JournalEntry, Lease, StoreError};

use crate::PostgresStore;
use crate::ops;
use crate::rows::Db;

impl PostgresStore {
    /// Runs `body` in a transaction of its own that also journals `entry`
    /// under `lease`: the process row is locked and fenced first, then the
    /// body runs, then the entry is written with the body's JSON as its
    /// outcome, and everything commits together. When the body fails, the
    /// transaction is rolled back and its error returned in `Ok(Err(..))`.
    ///
    /// This is what `Process::postgres_transaction` builds on.
    pub async fn transaction<R, E>(
        &self,
        lease: &Lease,
        mut entry: JournalEntry,
        body: impl for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<(String, R), E>> + Send,
    ) -> Result<Result<R, E>, StoreError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        if ops::fence(&mut tx, lease).await? {
            return Err(StoreError::CancelRequested(lease.id.clone()));
        }
        match body(&mut tx).await {
            Ok((outcome, value)) => {
                entry.outcome = Some(outcome);
                ops::journal::append(&mut tx, lease, &entry).await?;
                tx.commit().await.db()?;
                Ok(Ok(value))
            }
            Err(e) => {
                tx.rollback().await.db()?;
                Ok(Err(e))
            }
        }
    }
}
