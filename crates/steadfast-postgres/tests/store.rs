//! Behaviour specific to the PostgreSQL store: durability settings, safe
//! opening, migrations, group commit under load, claims from several
//! stores, LISTEN/NOTIFY wake-ups, dead-host takeover and connection loss.
//!
//! Every test uses a fresh schema of its own (dropped afterwards) and is
//! skipped with a notice when the server is unreachable, unless
//! `STEADFAST_REQUIRE_PG=1`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{SchemaGuard, admin, url};
use sqlx::AssertSqlSafe;
use steadfast_core::{
    EntryKind, EntryStatus, HostId, JournalEntry, NewProcess, ProcessId, SpawnAndClaim,
    SpawnOutcome, Store, StoreAdmin, StoreError, Timestamp, TransactionalStore,
};
use steadfast_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};

/// Returns early (the test is skipped) when the server is unreachable.
macro_rules! require_pg {
    () => {
        if !common::reachable().await {
            return;
        }
    };
}

fn pid(id: &str) -> ProcessId {
    ProcessId::new(id).expect("valid id")
}

fn new_process(id: &str, now: Timestamp) -> NewProcess {
    NewProcess {
        id: pid(id),
        kind: "test".to_owned(),
        version: 1,
        input: "{\"n\": 1}".to_owned(),
        now,
        parent: None,
        traceparent: None,
    }
}

fn step(seq: i64, name: &str, at: Timestamp) -> JournalEntry {
    JournalEntry {
        seq,
        name: name.to_owned(),
        kind: EntryKind::Step,
        status: EntryStatus::Completed,
        outcome: Some(format!("{{\"seq\":{seq}}}")),
        attempts: 1,
        started_at: at,
        finished_at: Some(at),
        due_at: None,
        location: None,
        consumed_signal: None,
    }
}

async fn exec(sql: String) {
    let mut conn = admin().await;
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .expect("admin statement");
}

/// The store claims a process at its spawn when asked (the conformance
/// check `spawn_and_claim_leases_a_new_process_to_its_spawner` also
/// accepts a store that does not): the spawner's lease, and nothing left
/// for another host's claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_claim_claims_the_new_process() {
    require_pg!();
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    let now = Timestamp::now_system();
    let owner = HostId::new("spawner");
    let outcome = store
        .spawn_and_claim(new_process("p", now), &owner, Duration::from_secs(60))
        .await
        .expect("spawn_and_claim");
    let SpawnAndClaim::Claimed(claimed) = outcome else {
        panic!("the PostgreSQL store must claim at the spawn, got {outcome:?}");
    };
    assert_eq!((claimed.lease.owner, claimed.lease.epoch), (owner, 1));
    let others = store
        .claim(&HostId::new("other"), now, Duration::from_secs(60), 10)
        .await
        .expect("claim");
    assert!(others.is_empty(), "claimed by its spawner: {others:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_commit_is_on() {
    require_pg!();
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    assert_eq!(store.schema(), guard.schema);
    assert_eq!(
        store.synchronous_commit().await.expect("read the setting"),
        "on",
        "acknowledged writes must be flushed by the server"
    );
}

/// The store's sessions commit durably even where the database's default
/// is `synchronous_commit = off`: a database of the test's own gets that
/// default (checked on a plain session), and the writer's session and a
/// pooled session (a transactional step's) must still say `on`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_commit_is_on_where_the_database_default_is_off() {
    require_pg!();
    use sqlx::Connection;
    let database = format!("steadfast_sync_{:016x}", rand::random::<u64>());
    exec(format!("CREATE DATABASE \"{database}\"")).await;
    exec(format!(
        "ALTER DATABASE \"{database}\" SET synchronous_commit = off"
    ))
    .await;
    let db_url = match url().rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("unexpected test URL {}", url()),
    };
    let outcome = async move {
        let mut plain = sqlx::PgConnection::connect(&db_url)
            .await
            .expect("connect to the test database");
        let default: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut plain)
            .await
            .expect("show");
        assert_eq!(default, "off", "the database's default is the weak one");
        plain.close().await.expect("close");

        let store = PostgresStore::connect_with(&db_url, PostgresOptions::default())
            .await
            .expect("connect the store");
        assert_eq!(
            store.synchronous_commit().await.expect("read the setting"),
            "on",
            "the writer's session overrides the database default"
        );
        let now = Timestamp::now_system();
        store.spawn(new_process("p", now)).await.expect("spawn");
        let claimed = store
            .claim(&HostId::new("h"), now, Duration::from_secs(60), 1)
            .await
            .expect("claim");
        let lease = claimed.into_iter().next().expect("claimed").lease;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let put = std::sync::Arc::clone(&seen);
        let committed = TransactionalStore::transaction(
            &store,
            &lease,
            step(0, "tx", now),
            Box::new(move |conn| {
                Box::pin(async move {
                    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
                        .fetch_one(&mut *conn)
                        .await
                        .ok()?;
                    *put.lock().expect("lock") = Some(setting);
                    Some("null".to_owned())
                })
            }),
        )
        .await
        .expect("transaction");
        assert!(committed);
        assert_eq!(
            seen.lock().expect("lock").as_deref(),
            Some("on"),
            "pooled sessions override the database default"
        );
        drop(store);
    };
    let result = tokio::spawn(outcome).await;
    exec(format!("DROP DATABASE \"{database}\" WITH (FORCE)")).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_schema_is_rejected_and_untouched() {
    require_pg!();
    let guard = SchemaGuard::new();
    let s = &guard.schema;
    exec(format!(
        "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".customers (id int PRIMARY KEY, name text);
         INSERT INTO \"{s}\".customers VALUES (1, 'ada');"
    ))
    .await;
    let err = PostgresStore::connect_with(&url(), guard.options())
        .await
        .expect_err("a foreign schema must be rejected");
    assert!(
        matches!(err, StoreError::NotSteadfast { ref detail, .. } if detail.contains("customers")),
        "expected NotSteadfast naming the table, got {err:?}"
    );
    let mut conn = admin().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    )
    .bind(s)
    .fetch_all(&mut conn)
    .await
    .expect("list tables");
    assert_eq!(tables, ["customers"], "nothing may be created");
    let name: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT name FROM \"{s}\".customers WHERE id = 1"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("the row is still there");
    assert_eq!(name, "ada");

    // A steadfast_meta table without the magic is not ours either.
    exec(format!(
        "CREATE TABLE \"{s}\".steadfast_meta (key text PRIMARY KEY, value text NOT NULL);
         INSERT INTO \"{s}\".steadfast_meta VALUES ('magic', 'other');"
    ))
    .await;
    let err = PostgresStore::connect_with(&url(), guard.options())
        .await
        .expect_err("wrong magic must be rejected");
    assert!(
        matches!(err, StoreError::NotSteadfast { .. }),
        "got {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_version_is_rejected() {
    require_pg!();
    let guard = SchemaGuard::new();
    drop(guard.store().await);
    let s = &guard.schema;
    exec(format!(
        "UPDATE \"{s}\".steadfast_meta SET value = '99' WHERE key = 'schema_version'"
    ))
    .await;
    let err = PostgresStore::connect_with(&url(), guard.options())
        .await
        .expect_err("a newer schema must be rejected");
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, supported, .. } if supported == SCHEMA_VERSION),
        "got {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_schema_names_are_rejected_before_connecting() {
    for bad in ["", "a-b", "x\"; DROP TABLE y; --", "1abc", "pg_catalog"] {
        let err = PostgresStore::connect_with(
            "postgres://nobody@127.0.0.1:1/none",
            PostgresOptions::default().schema(bad),
        )
        .await
        .expect_err("invalid schema name");
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{bad:?}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_retryable_error() {
    let started = Instant::now();
    let err = PostgresStore::connect_with(
        "postgres://postgres@127.0.0.1:1/test",
        PostgresOptions::default().connect_timeout(Duration::from_secs(2)),
    )
    .await
    .expect_err("nothing listens on port 1");
    assert!(err.is_retryable(), "got {err:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_starting_together_migrate_once() {
    require_pg!();
    let guard = SchemaGuard::new();
    let connects: Vec<_> = (0..6)
        .map(|_| {
            let options = guard.options().max_connections(1);
            tokio::spawn(async move { PostgresStore::connect_with(&url(), options).await })
        })
        .collect();
    let mut stores = Vec::new();
    for c in connects {
        stores.push(
            c.await
                .expect("task")
                .expect("every concurrent connect succeeds"),
        );
    }
    let version: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT value FROM \"{}\".steadfast_meta WHERE key = 'schema_version'",
        guard.schema
    )))
    .fetch_one(&mut admin().await)
    .await
    .expect("read the version");
    assert_eq!(version, SCHEMA_VERSION.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data() {
    require_pg!();
    let guard = SchemaGuard::new();
    let now = Timestamp::from_micros(1_000_000);
    let (record, journal, signals) = {
        let store = guard.store().await;
        store.spawn(new_process("keep", now)).await.expect("spawn");
        let claimed = store
            .claim(&HostId::new("h"), now, Duration::from_secs(60), 1)
            .await
            .expect("claim");
        let lease = &claimed[0].lease;
        store
            .append(lease, step(0, "one", now))
            .await
            .expect("append");
        store
            .signal(&pid("keep"), "go", "{\"x\":\"ü\"}", now)
            .await
            .expect("signal");
        (
            store.get(&pid("keep")).await.expect("get"),
            store.journal(&pid("keep")).await.expect("journal"),
            store.pending_signals(&pid("keep")).await.expect("signals"),
        )
    };
    let store = guard.store().await;
    assert_eq!(store.get(&pid("keep")).await.expect("get"), record);
    assert_eq!(store.journal(&pid("keep")).await.expect("journal"), journal);
    assert_eq!(
        store.pending_signals(&pid("keep")).await.expect("signals"),
        signals
    );
    assert_eq!(journal.len(), 1);
    assert_eq!(signals.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_many_tasks() {
    require_pg!();
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    let now = Timestamp::from_micros(1_000_000);
    for p in 0..50 {
        store
            .spawn(new_process(&format!("p{p:02}"), now))
            .await
            .expect("spawn");
    }
    let claimed = store
        .claim(&HostId::new("h"), now, Duration::from_secs(3600), 50)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 50);
    let tasks: Vec<_> = claimed
        .into_iter()
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    store
                        .append(&c.lease, step(i, &format!("s{i:02}"), now))
                        .await
                        .expect("every append succeeds");
                }
                c.lease.id
            })
        })
        .collect();
    for task in tasks {
        let id = task.await.expect("append task");
        let journal = store.journal(&id).await.expect("journal");
        let names: Vec<String> = journal.iter().map(|e| e.name.clone()).collect();
        let want: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
        assert_eq!(names, want, "{id}: every append is journaled in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_claim_disjoint_sets() {
    require_pg!();
    let guard = SchemaGuard::new();
    let a = guard.store().await;
    let b = guard.store().await;
    const COUNT: usize = 300;
    for i in 0..COUNT {
        a.spawn(new_process(
            &format!("p{i:03}"),
            Timestamp::from_micros(i as i64),
        ))
        .await
        .expect("spawn");
    }
    let claimer = |store: PostgresStore, name: &'static str| {
        tokio::spawn(async move {
            let owner = HostId::new(name);
            let mut got = Vec::new();
            let mut empty = 0;
            while empty < 3 {
                let claimed = store
                    .claim(
                        &owner,
                        Timestamp::from_micros(1_000_000),
                        Duration::from_secs(3600),
                        7,
                    )
                    .await
                    .expect("claim");
                if claimed.is_empty() {
                    empty += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                empty = 0;
                for c in claimed {
                    assert_eq!(c.lease.epoch, 1, "{name} got {:?} twice", c.lease.id);
                    got.push(c.record.id.as_str().to_owned());
                }
            }
            got
        })
    };
    let (ta, tb) = (claimer(a.clone(), "a"), claimer(b.clone(), "b"));
    let got_a = ta.await.expect("claimer a");
    let got_b = tb.await.expect("claimer b");
    let set_a: BTreeSet<_> = got_a.iter().cloned().collect();
    let set_b: BTreeSet<_> = got_b.iter().cloned().collect();
    assert_eq!(set_a.len(), got_a.len());
    assert_eq!(set_b.len(), got_b.len());
    assert!(set_a.is_disjoint(&set_b), "both stores claimed a process");
    assert_eq!(set_a.len() + set_b.len(), COUNT, "every process is claimed");
    assert!(
        !set_a.is_empty() && !set_b.is_empty(),
        "both stores should get some work ({} / {})",
        set_a.len(),
        set_b.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_events_cross_store_instances() {
    require_pg!();
    let guard = SchemaGuard::new();
    let a = guard.store().await;
    let b = guard.store().await;
    let mut events = a.work_events().expect("the postgres store has work events");
    events.borrow_and_update();
    let now = Timestamp::now_system();
    b.spawn(new_process("x", now)).await.expect("spawn via b");
    tokio::time::timeout(Duration::from_secs(1), events.changed())
        .await
        .expect("a spawn through another store wakes this one within a second")
        .expect("the listener is alive");

    // A signal that wakes a suspended process notifies too.
    let claimed = b
        .claim(&HostId::new("hb"), now, Duration::from_secs(60), 1)
        .await
        .expect("claim");
    b.suspend(
        &claimed[0].lease,
        steadfast_core::Suspension {
            wake_at: None,
            waiting_for: vec!["go".to_owned()],
            parked_at: Vec::new(),
            now,
        },
    )
    .await
    .expect("suspend");
    events.borrow_and_update();
    b.signal(&pid("x"), "go", "1", now).await.expect("signal");
    tokio::time::timeout(Duration::from_secs(1), events.changed())
        .await
        .expect("a waking signal notifies")
        .expect("the listener is alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_host_is_taken_over_at_once() {
    require_pg!();
    let guard = SchemaGuard::new();
    let a = guard.store().await;
    let b = guard.store().await;
    let now = Timestamp::now_system();
    a.spawn(new_process("job", now)).await.expect("spawn");
    let claimed = a
        .claim(&HostId::new("host-a"), now, Duration::from_secs(60), 10)
        .await
        .expect("claim by a");
    assert_eq!(claimed.len(), 1);

    // While a's session lives, b must not take the process.
    let early = b
        .claim(&HostId::new("host-b"), now, Duration::from_secs(60), 10)
        .await
        .expect("claim by b");
    assert!(early.is_empty(), "host a is alive: {early:?}");

    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    let taken = loop {
        let got = b
            .claim(
                &HostId::new("host-b"),
                Timestamp::now_system(),
                Duration::from_secs(60),
                10,
            )
            .await
            .expect("claim by b");
        if !got.is_empty() {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "the dead host's process was not taken over within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(taken[0].record.id.as_str(), "job");
    assert_eq!(taken[0].lease.epoch, 2);
    assert_eq!(taken[0].record.owner.as_deref(), Some("host-b"));
}

/// How many host advisory locks (two-key form) the sessions named `app` hold.
async fn host_locks(app: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
           AND a.application_name = $1",
    )
    .bind(app)
    .fetch_one(&mut admin().await)
    .await
    .expect("count advisory locks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_lock_is_held_while_claiming_and_dropped_on_release() {
    require_pg!();
    let guard = SchemaGuard::new();
    let app = guard.schema.clone();
    let store = PostgresStore::connect_with(
        &format!("{}?application_name={app}", url()),
        guard.options(),
    )
    .await
    .expect("connect");
    assert_eq!(host_locks(&app).await, 0, "no lock before the first claim");
    let now = Timestamp::now_system();
    store.spawn(new_process("j", now)).await.expect("spawn");
    let owner = HostId::new("host-r");
    let claimed = store
        .claim(&owner, now, Duration::from_secs(60), 1)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(host_locks(&app).await, 1, "the owner's lock is held");
    // Claiming again does not stack locks.
    store
        .claim(&owner, now, Duration::from_secs(60), 1)
        .await
        .expect("claim");
    assert_eq!(host_locks(&app).await, 1);
    assert_eq!(store.release(&owner, now).await.expect("release"), 1);
    assert_eq!(host_locks(&app).await, 0, "release drops the lock");
    // Releasing again (nothing held) is harmless.
    assert_eq!(store.release(&owner, now).await.expect("release"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_invalid_input() {
    require_pg!();
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    let now = Timestamp::from_micros(1);
    store.spawn(new_process("n", now)).await.expect("spawn");
    let err = store
        .signal(&pid("n"), "go", "\"a\u{0}b\"", now)
        .await
        .expect_err("PostgreSQL text cannot hold NUL");
    assert!(matches!(err, StoreError::InvalidInput(_)), "got {err:?}");
    // The failed write did not disturb the next ones.
    store
        .signal(&pid("n"), "go", "1", now)
        .await
        .expect("signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_loss_is_retryable_and_recovers() {
    require_pg!();
    let guard = SchemaGuard::new();
    let app = guard.schema.clone();
    let store_url = format!("{}?application_name={app}", url());
    let store = PostgresStore::connect_with(&store_url, guard.options())
        .await
        .expect("connect");
    let now = Timestamp::from_micros(1);
    store
        .spawn(new_process("before", now))
        .await
        .expect("spawn");
    let mut events = store.work_events().expect("events");
    events.borrow_and_update();

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&app)
    .fetch_all(&mut admin().await)
    .await
    .expect("terminate the store's sessions");
    assert!(
        killed.len() >= 3,
        "writer, pool and listener sessions: {killed:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut errors = 0;
    loop {
        match store.spawn(new_process("after", now)).await {
            Ok(SpawnOutcome::Created) => break,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                assert!(e.is_retryable(), "connection loss must be retryable: {e:?}");
                errors += 1;
            }
        }
        assert!(Instant::now() < deadline, "the writer did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        match store.get(&pid("after")).await {
            Ok(record) => {
                assert_eq!(record.id.as_str(), "after");
                break;
            }
            Err(e) => assert!(e.is_retryable(), "reads: {e:?}"),
        }
        assert!(Instant::now() < deadline, "the pool did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimed = loop {
        match store
            .claim(&HostId::new("h"), now, Duration::from_secs(60), 10)
            .await
        {
            Ok(c) => break c,
            Err(e) => assert!(e.is_retryable(), "claims: {e:?}"),
        }
        assert!(Instant::now() < deadline, "claims did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(claimed.len(), 2, "both processes are there");
    tokio::time::timeout(Duration::from_secs(10), events.changed())
        .await
        .expect("the listener reconnects and bumps the counter")
        .expect("listener alive");
    eprintln!("{errors} retryable errors while reconnecting");
}

/// Ways of corrupting the process `bad` that PostgreSQL's types still let
/// through, the column the error must name and a piece of the value.
const CORRUPTIONS: &[(&str, &str, &str)] = &[
    (
        "UPDATE processes SET status = 'bogus' WHERE id = 'bad'",
        "status",
        "bogus",
    ),
    (
        "UPDATE processes SET version = -1 WHERE id = 'bad'",
        "version",
        "-1",
    ),
    (
        "UPDATE processes SET generation = -5 WHERE id = 'bad'",
        "generation",
        "-5",
    ),
    (
        "UPDATE processes SET parent = '' WHERE id = 'bad'",
        "parent",
        "empty",
    ),
    (
        "UPDATE processes SET epoch = NULL WHERE id = 'bad'",
        "epoch",
        "NULL",
    ),
    (
        "UPDATE journal SET kind = 'bogus' WHERE process_id = 'bad'",
        "kind",
        "bogus",
    ),
    (
        "UPDATE journal SET status = 'weird' WHERE process_id = 'bad'",
        "status",
        "weird",
    ),
    (
        "UPDATE journal SET attempts = -3 WHERE process_id = 'bad'",
        "attempts",
        "-3",
    ),
    (
        "UPDATE journal SET file = 'x.rs', line = -7 WHERE process_id = 'bad'",
        "line",
        "-7",
    ),
];

/// Decoding goes row by row: a process whose row or journal does not
/// decode is parked as blocked with a reason naming the row, the column and
/// the value, and skipped; claims return every other process, and `list`,
/// `counts`, `parked_counts` and `get` answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_row_is_parked_and_nothing_else_is_affected() {
    require_pg!();
    for &(sql, column, value) in CORRUPTIONS {
        let guard = SchemaGuard::new();
        let store = guard.store().await;
        let t0 = Timestamp::from_micros(1_000_000);
        let lease_len = Duration::from_secs(60);
        store.spawn(new_process("bad", t0)).await.expect("spawn");
        let lease = store
            .claim(&HostId::new("setup"), t0, lease_len, 10)
            .await
            .expect("claim")
            .remove(0)
            .lease;
        store
            .append(&lease, step(0, "s1", t0))
            .await
            .expect("append");
        store
            .suspend(
                &lease,
                steadfast_core::Suspension {
                    wake_at: Some(t0),
                    waiting_for: vec![],
                    parked_at: vec![],
                    now: t0,
                },
            )
            .await
            .expect("suspend");
        for id in ["good-1", "good-2"] {
            store.spawn(new_process(id, t0)).await.expect("spawn");
        }
        if sql.contains("epoch = NULL") {
            // The schema forbids it; a damaged database may not.
            exec(format!(
                "ALTER TABLE \"{}\".processes ALTER COLUMN epoch DROP NOT NULL",
                guard.schema
            ))
            .await;
        }
        exec(format!("SET search_path TO \"{}\"; {sql}", guard.schema)).await;

        let claimed = store
            .claim(&HostId::new("worker"), t0, lease_len, 10)
            .await
            .unwrap_or_else(|e| panic!("{sql}: claim failed: {e}"));
        let mut ids: Vec<&str> = claimed.iter().map(|c| c.record.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["good-1", "good-2"], "{sql}");

        let named = |text: &str| {
            assert!(
                text.contains("bad") && text.contains(column) && text.contains(value),
                "{sql}: {text:?} must name the row, the column {column} and the value {value:?}"
            );
        };
        match store.get(&pid("bad")).await {
            Ok(record) => {
                assert_eq!(record.status, steadfast_core::Status::Blocked, "{sql}");
                named(record.error.as_deref().unwrap_or_default());
                assert_eq!(record.wake_at, None);
            }
            Err(StoreError::CorruptRow(e)) => {
                assert_eq!(e.table, "processes", "{sql}");
                named(&e.to_string());
            }
            Err(other) => panic!("{sql}: get failed with {other:?}"),
        }
        let later = Timestamp::from_micros(1_000_000_000);
        assert!(
            store
                .claim(&HostId::new("worker-2"), later, lease_len, 10)
                .await
                .expect("claim")
                .iter()
                .all(|c| c.record.id.as_str() != "bad"),
            "{sql}: a parked process is not claimed again"
        );
        let listed = store
            .list(&steadfast_core::ListFilter::default())
            .await
            .expect("list");
        let ids: Vec<&str> = listed.iter().map(|r| r.id()).collect();
        assert_eq!(ids, ["bad", "good-1", "good-2"], "{sql}");
        if let steadfast_core::Listed::Unreadable { error, .. } = &listed[0] {
            named(&error.to_string());
        }
        let counts = store.counts().await.expect("counts");
        assert_eq!(counts.total(), 3, "{sql}: {counts:?}");
        store.parked_counts("order").await.expect("parked_counts");
    }
}

/// A process whose parked arrays disagree is counted apart by
/// `parked_counts`, not an error for the whole kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_counts_survive_a_corrupt_row() {
    require_pg!();
    let guard = SchemaGuard::new();
    let store = guard.store().await;
    let t0 = Timestamp::from_micros(1_000_000);
    for id in ["a", "b"] {
        store.spawn(new_process(id, t0)).await.expect("spawn");
    }
    exec(format!(
        "SET search_path TO \"{}\";
         UPDATE processes SET status = 'suspended', parked_files = '{{f.rs}}',
             parked_lines = '{{3}}' WHERE id = 'a';
         UPDATE processes SET status = 'suspended', parked_files = '{{f.rs,g.rs}}',
             parked_lines = '{{3}}' WHERE id = 'b';",
        guard.schema
    ))
    .await;
    let kind = new_process("x", t0).kind;
    let counts = store.parked_counts(&kind).await.expect("parked_counts");
    assert_eq!(counts.unreadable, 1, "{counts:?}");
    assert_eq!(counts.by_location.len(), 1, "{counts:?}");
    assert_eq!(counts.by_location[0].count, 1);
    let listed = store
        .list(&steadfast_core::ListFilter::default())
        .await
        .expect("list");
    assert!(
        matches!(&listed[1], steadfast_core::Listed::Unreadable { id, .. } if id == "b"),
        "{listed:?}"
    );
}

/// The migration that adds `parent` derives it once for children spawned
/// by `Process::child` before, and for no other id with a slash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_migration_derives_parents_of_earlier_children_only() {
    require_pg!();
    let guard = SchemaGuard::new();
    let t0 = Timestamp::from_micros(1_000_000);
    {
        let store = guard.store().await;
        for id in ["o", "o/payment", "o/other"] {
            store.spawn(new_process(id, t0)).await.expect("spawn");
        }
        let lease = store
            .claim(&HostId::new("h"), t0, Duration::from_secs(60), 10)
            .await
            .expect("claim")
            .into_iter()
            .find(|c| c.record.id.as_str() == "o")
            .expect("o")
            .lease;
        store
            .append(&lease, step(0, "payment: spawned", t0))
            .await
            .expect("append");
        store
            .append(&lease, step(1, "other", t0))
            .await
            .expect("append");
        drop(store);
    }
    // Back to version 5, before the parent migration (6), the journal's
    // database times (7), the stored history and sort indexes (8), the
    // signals' message ids (9), the subscription reports (10) and the trace
    // contexts (11).
    let previous = 5;
    assert_eq!(
        SCHEMA_VERSION, 11,
        "this downgrade undoes migrations 6 to 11"
    );
    exec(format!(
        "SET search_path TO \"{}\";
         ALTER TABLE processes DROP COLUMN traceparent;
         ALTER TABLE signals DROP COLUMN traceparent;
         DROP TABLE subscriptions;
         DROP INDEX signals_message_id;
         ALTER TABLE signals DROP COLUMN message_id;
         DROP TABLE events;
         DROP INDEX processes_created;
         DROP INDEX processes_updated;
         DROP INDEX processes_parent;
         ALTER TABLE processes DROP COLUMN parent;
         ALTER TABLE journal DROP COLUMN db_started_at, DROP COLUMN db_finished_at;
         UPDATE steadfast_meta SET value = '{previous}' WHERE key = 'schema_version';",
        guard.schema
    ))
    .await;
    let store = guard.store().await;
    assert_eq!(
        store.get(&pid("o/payment")).await.expect("get").parent,
        Some(pid("o"))
    );
    assert_eq!(store.get(&pid("o/other")).await.expect("get").parent, None);
    assert_eq!(store.get(&pid("o")).await.expect("get").parent, None);
}
