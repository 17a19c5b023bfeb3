//! [`TransactionalStore`]: a store that runs a step's own SQL in the
//! transaction that journals the step.

use std::future::Future;

use crate::{Backend, JournalEntry, Lease, StoreError};

/// A store whose database can hold the user's data too, and that runs a
/// transactional step's body in the same transaction as the step's journal
/// entry: the body's effects and the entry commit together or not at all.
///
/// Like sqlx's `Database`, it names its driver's types: the
/// [`Connection`](TransactionalStore::Connection) a body works on, and what a
/// body [`Returns`](TransactionalStore::Returns) (the result itself where
/// bodies run synchronously, a future of it where they run asynchronously).
/// The engine's `Process::transaction` is generic over it, so a process that
/// uses transactional steps says which store it needs in its type
/// (`Process<SqliteStore>`), and a host on another store refuses the kind
/// when it is registered, never when the step runs.
///
/// A store implementing it (each store crate's `transaction` module):
///
/// - checks the lease like [`crate::Store::append`] before the body runs,
///   and fails with [`StoreError::CancelRequested`] when a cancellation is
///   pending;
/// - runs the body once per call; when it returns `Some(outcome)`, appends
///   `entry` with that outcome (the same rules as [`crate::Store::append`])
///   and commits both; when it returns `None`, rolls its effects back and
///   writes nothing;
/// - answers only after the commit is durable.
pub trait TransactionalStore: Backend + Clone {
    /// The connection a body receives, inside the store's transaction
    /// (`rusqlite::Connection` behind SQLite's `WriteConnection`,
    /// `sqlx::PgConnection` for PostgreSQL).
    type Connection: ?Sized;

    /// What a body returns for a result `R`: `R` itself when bodies are
    /// synchronous (SQLite runs them on its writer thread), a boxed future of
    /// `R` when they are asynchronous (PostgreSQL).
    type Returns<'c, R: Send + 'c>: Send + 'c;

    /// Applies `f` to what a body returned: to the value itself, or once the
    /// future is ready. This is how the engine turns a body's result into
    /// the outcome to journal without knowing whether bodies are
    /// synchronous.
    fn then<'c, A: Send + 'c, B: Send + 'c>(
        returned: Self::Returns<'c, A>,
        f: impl FnOnce(A) -> B + Send + 'c,
    ) -> Self::Returns<'c, B>;

    /// Runs `body` and journals `entry` under `lease` in one transaction.
    ///
    /// `Ok(true)`: the body returned `Some(outcome)`, and its effects and
    /// `entry` (with that outcome) committed together. `Ok(false)`: the body
    /// returned `None`; its effects were rolled back and nothing was written.
    /// An `Err` means nothing of the attempt was kept (a transient error may
    /// be retried).
    fn transaction(
        &self,
        lease: &Lease,
        entry: JournalEntry,
        body: TransactionBody<Self>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A transactional step's body as a [`TransactionalStore`] runs it: the
/// user's code on the store's connection, its result already turned into
/// the outcome to journal (`Some`) or a roll-back (`None`).
pub type TransactionBody<S> = Box<
    dyn for<'c> FnOnce(
            &'c mut <S as TransactionalStore>::Connection,
        ) -> <S as TransactionalStore>::Returns<'c, Option<String>>
        + Send,
>;
