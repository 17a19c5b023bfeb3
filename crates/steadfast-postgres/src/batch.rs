//! How the writer runs one batch of writes.
//!
//! * **Alone** (the idle path: one write in the queue): a spawn, an append,
//!   a suspension or a finish of a process without a parent is one
//!   autocommitted statement that checks the fence and writes — one round
//!   trip, no `BEGIN`/`COMMIT`.
//! * **One kind** (only spawns, only appends or only suspensions, e.g. the
//!   steps of many processes between two commits): that kind's one
//!   statement, autocommitted, spawns notifying from inside it.
//! * **Together**: one transaction. Its spawns are one statement, its
//!   appends one, its finishes one, its suspensions one (each row still
//!   fenced, checked and answered on its own, without a savepoint); only
//!   the other writes get a savepoint each, so a batch of hundreds of steps opens none (more than
//!   64 subtransactions in one transaction overflow PostgreSQL's
//!   per-backend cache, which slows every session's snapshots). The batch
//!   sends at most one `NOTIFY` for its spawns, in the round trip of its
//!   `COMMIT`.
//!
//! The writes of one batch were all queued before any of them was answered,
//! so none happened before another: running them grouped by kind (spawns,
//! appends, finishes, suspensions, the rest in queue order) is one of the
//! orders they could have run in.

use sqlx::{AssertSqlSafe, PgConnection};
use steadfast_core::group_commit::Value;
use steadfast_core::{
    Finish, JournalEntry, Lease, NewProcess, SpawnOutcome, StoreError, Suspension,
};

use crate::clock::Now;
use crate::ops::{journal, spawn};
use crate::write::{Write, apply};

/// Runs `batch` and returns the result of each write, in order; `Err` when
/// the batch failed as a whole (nothing of it was committed, or the outcome
/// of its commit is unknown).
pub(crate) async fn run_batch(
    conn: &mut PgConnection,
    channel: &str,
    batch: &[Write],
) -> Result<Vec<Result<Value, StoreError>>, sqlx::Error> {
    if let [op] = batch
        && let Some(result) = run_alone(conn, channel, op).await?
    {
        return Ok(vec![result]);
    }
    run_together(conn, channel, batch).await
}

/// One write as one autocommitted statement, when it is one that can be:
/// `None` when it needs a transaction.
async fn run_alone(
    conn: &mut PgConnection,
    channel: &str,
    op: &Write,
) -> Result<Option<Result<Value, StoreError>>, sqlx::Error> {
    let result = match op {
        Write::Spawn(p, now) if spawn::spawn_is_checked(p) => {
            spawn::spawn(conn, channel, p, *now).await.map(Value::Spawn)
        }
        Write::Append(lease, entry) if journal::append_is_checked(entry) => {
            journal::append(conn, lease, entry)
                .await
                .map(|()| Value::Unit)
        }
        Write::Suspend(lease, s, now) if journal::suspend_is_checked(s) => {
            journal::suspend_many(conn, &[(lease, s, *now)])
                .await
                .and_then(|mut each| {
                    each.pop().unwrap_or_else(|| {
                        Err(StoreError::Corrupt(
                            "a suspension returned no result".to_owned(),
                        ))
                    })
                })
                .map(Value::Suspend)
        }
        Write::Finish(lease, f, now) if journal::finish_is_checked(f) => {
            match journal::finish_alone(conn, lease, f, *now).await {
                Ok(Some(result)) => result.map(|()| Value::Unit),
                // A child: its end signal goes in the same transaction.
                Ok(None) => return Ok(None),
                Err(e) => Err(e),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(fail_batch_on_backend(result)?))
}

/// A backend error (the connection or the server failed) fails the whole
/// batch; other errors are the write's own answer.
fn fail_batch_on_backend<T>(
    result: Result<T, StoreError>,
) -> Result<Result<T, StoreError>, sqlx::Error> {
    match result {
        Err(StoreError::Backend {
            source, message, ..
        }) => Err(sqlx::Error::Protocol(format!(
            "{message}{}",
            source.map(|s| format!(": {s}")).unwrap_or_default()
        ))),
        other => Ok(other),
    }
}

/// A copy of a store error for every write of a group that failed as one.
fn clone_error(e: &StoreError) -> StoreError {
    StoreError::Backend {
        message: e.to_string(),
        retryable: e.is_retryable(),
        source: None,
    }
}

/// Sets the result of every write of a group (`at` its indices in the
/// batch) from the group's statement.
fn place<T>(
    results: &mut [Option<Result<Value, StoreError>>],
    at: &[usize],
    group: Result<Vec<Result<T, StoreError>>, StoreError>,
    value: impl Fn(T) -> Value,
) -> Result<(), sqlx::Error> {
    match fail_batch_on_backend(group)? {
        Ok(each) => {
            for (&i, result) in at.iter().zip(each) {
                results[i] = Some(result.map(&value));
            }
        }
        Err(other) => {
            for &i in at {
                results[i] = Some(Err(clone_error(&other)));
            }
        }
    }
    Ok(())
}

/// The whole batch in one transaction.
async fn run_together(
    conn: &mut PgConnection,
    channel: &str,
    batch: &[Write],
) -> Result<Vec<Result<Value, StoreError>>, sqlx::Error> {
    let mut spawns: Vec<(usize, (&NewProcess, Now))> = Vec::new();
    let mut appends: Vec<(usize, (&Lease, &JournalEntry))> = Vec::new();
    let mut finishes: Vec<(usize, (&Lease, &Finish, Now))> = Vec::new();
    let mut suspensions: Vec<(usize, (&Lease, &Suspension, Now))> = Vec::new();
    let mut others: Vec<(usize, &Write)> = Vec::new();
    for (i, op) in batch.iter().enumerate() {
        match op {
            Write::Spawn(p, now) if spawn::spawn_is_checked(p) => spawns.push((i, (p, *now))),
            Write::Append(lease, entry) if journal::append_is_checked(entry) => {
                appends.push((i, (lease, entry)));
            }
            Write::Finish(lease, f, now) if journal::finish_is_checked(f) => {
                finishes.push((i, (lease, f, *now)));
            }
            Write::Suspend(lease, s, now) if journal::suspend_is_checked(s) => {
                suspensions.push((i, (lease, s, *now)));
            }
            other => others.push((i, other)),
        }
    }
    let mut results: Vec<Option<Result<Value, StoreError>>> =
        std::iter::repeat_with(|| None).take(batch.len()).collect();
    let mut created = false;

    // A batch of one kind of write (spawns, appends or suspensions only) is
    // its one statement, autocommitted: no `BEGIN` and `COMMIT` round trips.
    // Each of those statements writes only what it checked, row by row, so
    // it needs no transaction around it; spawns notify from inside theirs.
    let kinds = [
        !spawns.is_empty(),
        !appends.is_empty(),
        !suspensions.is_empty(),
    ];
    if finishes.is_empty() && others.is_empty() && kinds.iter().filter(|k| **k).count() == 1 {
        if !spawns.is_empty() {
            let (at, args): (Vec<usize>, Vec<_>) = spawns.into_iter().unzip();
            let group = spawn::spawn_many(conn, &args, Some(channel)).await;
            place(&mut results, &at, group, Value::Spawn)?;
        } else if !appends.is_empty() {
            let (at, args): (Vec<usize>, Vec<_>) = appends.into_iter().unzip();
            let group = crate::ops::append_many::append_many(conn, &args).await;
            place(&mut results, &at, group, |()| Value::Unit)?;
        } else {
            let (at, args): (Vec<usize>, Vec<_>) = suspensions.into_iter().unzip();
            let group = journal::suspend_many(conn, &args).await;
            place(&mut results, &at, group, Value::Suspend)?;
        }
        return Ok(answered(results));
    }

    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    if !spawns.is_empty() {
        let (at, args): (Vec<usize>, Vec<_>) = spawns.into_iter().unzip();
        let group = spawn::spawn_many(conn, &args, None).await;
        if let Ok(each) = &group {
            created = each.iter().any(|r| matches!(r, Ok(SpawnOutcome::Created)));
        }
        place(&mut results, &at, group, Value::Spawn)?;
    }
    if !appends.is_empty() {
        let (at, args): (Vec<usize>, Vec<_>) = appends.into_iter().unzip();
        let group = crate::ops::append_many::append_many(conn, &args).await;
        place(&mut results, &at, group, |()| Value::Unit)?;
    }
    if !finishes.is_empty() {
        let (at, args): (Vec<usize>, Vec<_>) = finishes.into_iter().unzip();
        let group = journal::finish_many(conn, channel, &args).await;
        place(&mut results, &at, group, |()| Value::Unit)?;
    }
    if !suspensions.is_empty() {
        let (at, args): (Vec<usize>, Vec<_>) = suspensions.into_iter().unzip();
        let group = journal::suspend_many(conn, &args).await;
        place(&mut results, &at, group, Value::Suspend)?;
    }
    for (i, op) in others {
        sqlx::raw_sql("SAVEPOINT one").execute(&mut *conn).await?;
        let result = apply(conn, channel, op).await;
        let end = if result.is_err() {
            "ROLLBACK TO SAVEPOINT one; RELEASE SAVEPOINT one"
        } else {
            "RELEASE SAVEPOINT one"
        };
        sqlx::raw_sql(end).execute(&mut *conn).await?;
        results[i] = Some(result);
    }
    // The channel is `<validated schema>_work`: letters, digits and `_`.
    let commit = if created {
        format!("SELECT pg_notify('{channel}', ''); COMMIT")
    } else {
        "COMMIT".to_owned()
    };
    sqlx::raw_sql(AssertSqlSafe(commit))
        .execute(&mut *conn)
        .await?;
    Ok(answered(results))
}

/// The result of every write of a batch (a write that got none is an
/// internal error).
fn answered(results: Vec<Option<Result<Value, StoreError>>>) -> Vec<Result<Value, StoreError>> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::Corrupt(
                    "internal error: a write of the batch got no result".to_owned(),
                ))
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests {
    use std::time::Duration;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{Connection, PgConnection};
    use steadfast_core::{
        Finish, HostId, NewProcess, NewSignal, ProcessId, SignalSent, SpawnOutcome, Status, Store,
        StoreAdmin, StoreError, Timestamp,
    };

    use crate::clock::Now;
    use crate::write::Write;
    use crate::writer::Writer;
    use crate::{PostgresOptions, PostgresStore};
    use steadfast_core::group_commit::{self, Value};

    fn new_process(id: &str, input: &str, parent: Option<&str>, now: Timestamp) -> NewProcess {
        NewProcess {
            id: ProcessId::new(id).unwrap(),
            kind: "test".to_owned(),
            version: 1,
            input: input.to_owned(),
            now,
            parent: parent.map(|p| ProcessId::new(p).unwrap()),
            traceparent: None,
        }
    }

    /// One batch through the writer holding spawns (new, the same id twice,
    /// one stored with the same input, one stored with another input),
    /// finishes (a good one, one under a stale lease, one of a child whose
    /// parent waits) and a signal: each caller gets its own answer, the
    /// fenced finish changes nothing, and the child's parent gets its end
    /// signal in the same commit.
    #[tokio::test]
    async fn a_batch_of_spawns_finishes_and_a_signal_answers_each() {
        crate::test_schema::in_fresh_schema(mixed_batch).await;
    }

    async fn mixed_batch(url: String, schema: String) {
        let store = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema))
            .await
            .unwrap();
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let ttl = Duration::from_secs(3600);
        let (h1, h2) = (HostId::new("h1"), HostId::new("h2"));
        let at = Now::new(now, false);
        store.follow_host_clock();
        // "moved": claimed by h1, released, claimed by h2 (h1's lease is
        // stale); "done": claimed by h1; "parent" waits, "parent/kid" is its
        // child, claimed by h1.
        store
            .spawn(new_process("moved", "null", None, now))
            .await
            .unwrap();
        let stale = store.claim(&h1, now, ttl, 1).await.unwrap().remove(0).lease;
        store.release(&h1, now).await.unwrap();
        let current = store.claim(&h2, now, ttl, 1).await.unwrap().remove(0).lease;
        store
            .spawn(new_process("done", "null", None, now))
            .await
            .unwrap();
        let done = store.claim(&h1, now, ttl, 1).await.unwrap().remove(0).lease;
        store
            .spawn(new_process("parent", "null", None, now))
            .await
            .unwrap();
        let parent = store.claim(&h1, now, ttl, 1).await.unwrap().remove(0).lease;
        store
            .suspend(
                &parent,
                steadfast_core::Suspension {
                    wake_at: None,
                    waiting_for: vec![steadfast_core::child::end_signal("kid")],
                    now,
                    parked_at: Vec::new(),
                },
            )
            .await
            .unwrap();
        store
            .spawn(new_process("parent/kid", "null", Some("parent"), now))
            .await
            .unwrap();
        let kid = store.claim(&h1, now, ttl, 1).await.unwrap().remove(0).lease;
        store
            .spawn(new_process("stored", "1", None, now))
            .await
            .unwrap();

        let completed = |output: &str| Finish::Completed {
            output: output.to_owned(),
        };
        let ops = vec![
            Write::Spawn(new_process("fresh", "1", None, now), at),
            Write::Finish(stale.clone(), completed("\"lost\""), at),
            Write::Spawn(new_process("twice", "2", None, now), at),
            Write::Finish(done.clone(), completed("\"ok\""), at),
            Write::Spawn(new_process("twice", "2", None, now), at),
            Write::Signal(
                ProcessId::new("moved").unwrap(),
                NewSignal::new("ping", "1", now),
                at,
            ),
            Write::Spawn(new_process("stored", "1", None, now), at),
            Write::Finish(kid.clone(), completed("7"), at),
            Write::Spawn(new_process("stored", "other", None, now), at),
        ];
        let (queue, inbox) = group_commit::queue();
        let mut spawns = Vec::new();
        let mut units = Vec::new();
        let mut ids = Vec::new();
        for op in ops {
            match op {
                Write::Spawn(..) => spawns.push(queue.submit::<SpawnOutcome>(op).unwrap()),
                Write::Signal(..) => ids.push(queue.submit::<SignalSent>(op).unwrap()),
                _ => units.push(queue.submit::<()>(op).unwrap()),
            }
        }
        drop(queue);
        // Every write is queued before the writer starts: one batch.
        let mut conn = PgConnection::connect(&url).await.unwrap();
        crate::schema::setup(&mut conn, &schema).await.unwrap();
        let options: PgConnectOptions = url.parse().unwrap();
        Writer::new(
            conn,
            options,
            schema.clone(),
            crate::schema::channel(&schema),
            Duration::from_secs(5),
            512,
        )
        .run(inbox)
        .await;

        let mut spawned = Vec::new();
        for answer in spawns {
            spawned.push(answer.await);
        }
        assert!(
            matches!(spawned[0], Ok(SpawnOutcome::Created)),
            "{spawned:?}"
        );
        assert!(
            matches!(spawned[1], Ok(SpawnOutcome::Created)),
            "{spawned:?}"
        );
        assert!(
            matches!(&spawned[2], Ok(SpawnOutcome::Existing(r)) if r.id.as_str() == "twice"),
            "{spawned:?}"
        );
        assert!(
            matches!(&spawned[3], Ok(SpawnOutcome::Existing(r)) if r.id.as_str() == "stored"),
            "{spawned:?}"
        );
        assert!(
            matches!(&spawned[4], Err(StoreError::SpawnConflict { id, .. }) if id.as_str() == "stored"),
            "{spawned:?}"
        );
        let mut ended = Vec::new();
        for answer in units {
            ended.push(answer.await);
        }
        assert!(
            matches!(&ended[0], Err(StoreError::Fenced { id, epoch })
                if id.as_str() == "moved" && *epoch == stale.epoch),
            "{ended:?}"
        );
        assert!(ended[1].is_ok(), "{ended:?}");
        assert!(ended[2].is_ok(), "{ended:?}");
        let signal = ids.pop().unwrap().await;
        assert!(signal.is_ok(), "{signal:?}");

        let moved = store.get(&current.id).await.unwrap();
        assert_eq!(
            moved.status,
            Status::Running,
            "the stale finish changed nothing"
        );
        assert_eq!(moved.epoch, current.epoch);
        let done = store.get(&done.id).await.unwrap();
        assert_eq!(done.status, Status::Completed);
        assert_eq!(done.output.as_deref(), Some("\"ok\""));
        let kid = store.get(&kid.id).await.unwrap();
        assert_eq!(kid.status, Status::Completed);
        let told = store.signals(&parent.id).await.unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0].name, steadfast_core::child::end_signal("kid"));
        let parent = store.get(&parent.id).await.unwrap();
        assert_eq!(parent.status, Status::Suspended);
        assert!(parent.wake_at.is_some(), "the end signal wakes the parent");
        for id in ["fresh", "twice"] {
            let record = store.get(&ProcessId::new(id).unwrap()).await.unwrap();
            assert_eq!(record.status, Status::Running);
        }
    }

    /// A batch of new spawns only, then a batch of appends only, each queued
    /// whole before the writer takes it: each is answered, the spawns wake
    /// the store's listeners, and the writer's session ran each batch as
    /// its one statement, autocommitted (the last statement the server saw
    /// from it is that statement, not a `COMMIT`).
    #[tokio::test]
    async fn a_batch_of_one_kind_is_one_autocommitted_statement() {
        crate::test_schema::in_fresh_schema(one_kind_batches).await;
    }

    /// One queued write's answer, as a [`Value`].
    type Answer = std::pin::Pin<Box<dyn Future<Output = Result<Value, StoreError>> + Send>>;

    /// Runs `ops` as one batch on a writer whose session is named `app`
    /// and returns each answer and the last statement of that session.
    async fn one_batch(
        url: &str,
        schema: &str,
        app: &str,
        ops: Vec<Write>,
    ) -> (Vec<Result<Value, StoreError>>, String) {
        let (queue, inbox) = group_commit::queue();
        let mut answers: Vec<Answer> = Vec::new();
        for op in ops {
            match op {
                Write::Spawn(..) => {
                    let answer = queue.submit::<SpawnOutcome>(op).unwrap();
                    answers.push(Box::pin(async move { answer.await.map(Value::Spawn) }));
                }
                _ => {
                    let answer = queue.submit::<()>(op).unwrap();
                    answers.push(Box::pin(async move { answer.await.map(|()| Value::Unit) }));
                }
            }
        }
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()
            .unwrap()
            .application_name(app);
        let mut conn = PgConnection::connect_with(&options).await.unwrap();
        crate::schema::setup(&mut conn, schema).await.unwrap();
        // Queued before the writer starts: one batch. The queue stays open,
        // so the writer (and its session) lives on after answering.
        let writer = tokio::spawn(
            Writer::new(
                conn,
                options,
                schema.to_owned(),
                crate::schema::channel(schema),
                Duration::from_secs(5),
                512,
            )
            .run(inbox),
        );
        let mut got = Vec::new();
        for answer in answers {
            got.push(answer.await);
        }
        let mut admin = PgConnection::connect(url).await.unwrap();
        let last: String =
            sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE application_name = $1")
                .bind(app)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        drop(queue);
        writer.await.unwrap();
        (got, last)
    }

    async fn one_kind_batches(url: String, schema: String) {
        let store = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema))
            .await
            .unwrap();
        let now = Timestamp::from_micros(1_893_456_000_000_000);
        let at = Now::new(now, false);
        store.follow_host_clock();
        let mut events = store.work_events().unwrap();
        drop(events.borrow_and_update());
        let app = format!("{schema}_writer");

        let spawns = vec![
            Write::Spawn(new_process("a", "1", None, now), at),
            Write::Spawn(new_process("b", "2", None, now), at),
            Write::Spawn(new_process("c", "3", None, now), at),
        ];
        let (got, last) = one_batch(&url, &schema, &app, spawns).await;
        assert!(
            matches!(got[0], Ok(Value::Spawn(SpawnOutcome::Created))),
            "{:?}",
            got.iter().map(|r| r.is_ok()).collect::<Vec<_>>()
        );
        assert!(matches!(got[1], Ok(Value::Spawn(SpawnOutcome::Created))));
        assert!(matches!(got[2], Ok(Value::Spawn(SpawnOutcome::Created))));
        assert!(
            last.contains("INSERT INTO processes") && last.contains("pg_notify"),
            "the spawns' last statement: {last}"
        );
        tokio::time::timeout(Duration::from_secs(10), events.changed())
            .await
            .expect("the spawns notify the listeners")
            .unwrap();

        let h = HostId::new("h");
        let ttl = Duration::from_secs(3600);
        let leases: Vec<_> = store
            .claim(&h, now, ttl, 3)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.lease)
            .collect();
        assert_eq!(leases.len(), 3);
        let appends = leases
            .iter()
            .map(|lease| {
                Write::Append(
                    lease.clone(),
                    steadfast_core::JournalEntry {
                        seq: 0,
                        name: "one".to_owned(),
                        kind: steadfast_core::EntryKind::Step,
                        status: steadfast_core::EntryStatus::Completed,
                        outcome: Some("1".to_owned()),
                        attempts: 1,
                        started_at: now,
                        finished_at: Some(now),
                        due_at: None,
                        location: None,
                        consumed_signal: None,
                    },
                )
            })
            .collect();
        let (got, last) = one_batch(&url, &schema, &app, appends).await;
        assert!(got.iter().all(Result::is_ok), "every append is written");
        assert!(
            // The server keeps the first 1 KiB of a statement's text.
            last.trim_start().starts_with("WITH input AS") && last.contains("process_id, name"),
            "the appends' last statement: {last}"
        );
        for lease in &leases {
            let journal = store.journal(&lease.id).await.unwrap();
            assert_eq!(journal.len(), 1, "{:?}", lease.id);
        }
    }
}
