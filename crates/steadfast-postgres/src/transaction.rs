//! Transactional steps on PostgreSQL: the user's SQL and the journal entry
//! that records it commit in one PostgreSQL transaction, so effects in the
//! same database happen exactly once.

use futures::future::BoxFuture;
use sqlx::PgConnection;
use steadfast_core::{JournalEntry, Lease, StoreError, TransactionBody, TransactionalStore};

use crate::PostgresStore;
use crate::ops;
use crate::rows::Db;

/// Bodies are asynchronous: each runs in a transaction of its own, taken
/// from the pool, that first locks and fences the process row.
impl TransactionalStore for PostgresStore {
    type Connection = PgConnection;
    type Returns<'c, R: Send + 'c> = BoxFuture<'c, R>;

    fn then<'c, A: Send + 'c, B: Send + 'c>(
        returned: BoxFuture<'c, A>,
        f: impl FnOnce(A) -> B + Send + 'c,
    ) -> BoxFuture<'c, B> {
        Box::pin(async move { f(returned.await) })
    }

    /// The process row is locked and fenced first, then the body runs, then
    /// the entry is written with the body's outcome, and everything commits
    /// together; a body that returns `None` is rolled back.
    async fn transaction(
        &self,
        lease: &Lease,
        mut entry: JournalEntry,
        body: TransactionBody<Self>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.inner.pool.begin().await.db()?;
        if ops::fence(&mut tx, lease).await? {
            return Err(StoreError::CancelRequested(lease.id.clone()));
        }
        match body(&mut tx).await {
            Some(outcome) => {
                entry.outcome = Some(outcome);
                ops::journal::append(&mut tx, lease, &entry).await?;
                tx.commit().await.db()?;
                Ok(true)
            }
            None => {
                tx.rollback().await.db()?;
                Ok(false)
            }
        }
    }
}
