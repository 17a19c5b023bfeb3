//! The hot statements find their rows by key whatever the planner's
//! statistics say: `EXPLAIN` of each, at batch sizes 1, 50 and 500, on a
//! schema holding 20,000 runnable processes and 20,000 journal entries,
//! both before the tables were analysed and after (the claim: after), and
//! the generic plans of the writer's statements (what its session runs, see
//! `schema::setup_writer`), show no scan of a whole table (`Seq Scan`) and no scan of every
//! running process (the `processes_status` index with only the status as
//! its condition).

use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use steadfast_core::{
    EntryKind, EntryStatus, Finish, HostId, JournalEntry, Lease, ProcessId, Timestamp,
};

use crate::clock::Now;

/// Plan lines that mean a statement reads more than the rows it is about.
const WHOLE_TABLE: &[&str] = &[
    "Seq Scan on processes",
    "Seq Scan on journal",
    "Seq Scan on signals",
    "Bitmap Index Scan on processes_status",
];

fn entry(name: &str) -> JournalEntry {
    JournalEntry {
        seq: 10,
        name: name.to_owned(),
        kind: EntryKind::Step,
        status: EntryStatus::Completed,
        outcome: Some("\"value\"".to_owned()),
        attempts: 1,
        started_at: Timestamp::from_micros(1),
        finished_at: Some(Timestamp::from_micros(2)),
        due_at: None,
        location: None,
        consumed_signal: None,
    }
}

fn lease(i: usize) -> Lease {
    Lease {
        id: ProcessId::new(format!("p{:07}", i * 37 % 20_000)).expect("id"),
        owner: HostId::new("h"),
        epoch: 1,
    }
}

/// Plan lines of a per-row fence (append, finish, suspend) that find the
/// process through its owner: every lease the host holds is read for each
/// row. Statistics gathered while most processes had no owner (all
/// spawned, none claimed yet) make `owner = …` look more selective than
/// the primary key; the fences compare the owner with `IS NOT DISTINCT
/// FROM`, which no index serves.
const BY_OWNER: &str = "processes_owner";

/// The plan's lines that read a whole table (empty when none does), and,
/// for a fence, those that go through the owner's index.
fn fence_scans(what: &str, plan: Vec<String>) -> Vec<String> {
    let by_owner: Vec<String> = plan
        .iter()
        .filter(|line| line.contains(BY_OWNER))
        .map(|line| format!("{what}: {}", line.trim()))
        .collect();
    let mut bad = whole_table_scans(what, plan);
    bad.extend(by_owner);
    bad
}

/// The plan's lines that read a whole table (empty when none does).
fn whole_table_scans(what: &str, plan: Vec<String>) -> Vec<String> {
    plan.into_iter()
        .filter(|line| WHOLE_TABLE.iter().any(|bad| line.contains(bad)))
        .map(|line| format!("{what}: {}", line.trim()))
        .collect()
}

fn lines(rows: &[sqlx::postgres::PgRow]) -> Vec<String> {
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).expect("plan line"))
        .collect()
}

async fn explain_all(conn: &mut PgConnection, analysed: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let entries: Vec<JournalEntry> = (0..500).map(|i| entry(&format!("new {i}"))).collect();
    let leases: Vec<Lease> = (0..500).map(lease).collect();
    let finishes: Vec<Finish> = (0..500)
        .map(|_| Finish::Completed {
            output: "null".to_owned(),
        })
        .collect();
    let now = Now::new(Timestamp::from_micros(3), true);
    for n in [1, 50, 500] {
        let appends: Vec<(&Lease, &JournalEntry)> = leases.iter().zip(&entries).take(n).collect();
        let plan = crate::ops::append_many::bound(
            AssertSqlSafe(format!("EXPLAIN {}", crate::ops::append_many::APPEND_MANY)),
            &appends,
        )
        .fetch_all(&mut *conn)
        .await
        .expect("explain the appends");
        bad.extend(fence_scans(&format!("append x{n}"), lines(&plan)));

        let ends: Vec<(&Lease, &Finish, Now)> = leases
            .iter()
            .zip(&finishes)
            .take(n)
            .map(|(l, f)| (l, f, now))
            .collect();
        let plan = crate::ops::journal::finish_query(
            AssertSqlSafe(format!("EXPLAIN {}", crate::ops::journal::FINISH_MANY)),
            &ends,
            false,
        )
        .fetch_all(&mut *conn)
        .await
        .expect("explain the finishes");
        bad.extend(fence_scans(&format!("finish x{n}"), lines(&plan)));

        // The claim picks due processes in `processes_wake` order; only
        // statistics tell the planner that this beats reading every
        // runnable process through `processes_status` (autovacuum gathers
        // them).
        if analysed {
            let plan = sqlx::query(AssertSqlSafe(format!(
                "EXPLAIN {}",
                crate::ops::claim::CLAIM
            )))
            .bind("h2")
            .bind(30_000_000_i64)
            .bind(None::<i64>)
            .bind(i64::try_from(n).expect("n"))
            .bind(0_i64)
            .bind("claimed")
            .bind(None::<String>)
            .fetch_all(&mut *conn)
            .await
            .expect("explain the claim");
            bad.extend(whole_table_scans(&format!("claim x{n}"), lines(&plan)));
        }

        let ids: Vec<&str> = leases.iter().take(n).map(|l| l.id.as_str()).collect();
        for (what, sql) in [
            ("journals", crate::ops::claim::JOURNALS),
            ("signals", crate::ops::claim::SIGNALS),
        ] {
            let plan = sqlx::query(AssertSqlSafe(format!("EXPLAIN {sql}")))
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await
                .expect("explain the claim's reads");
            bad.extend(whole_table_scans(&format!("{what} x{n}"), lines(&plan)));
        }
    }
    bad
}

/// The generic plan of `sql` (the one a session with
/// `plan_cache_mode = force_generic_plan`, as the writer's is, runs for
/// every execution): prepared under a name, explained with every
/// parameter NULL (a generic plan does not look at them), deallocated.
async fn generic_plan(conn: &mut PgConnection, sql: &str) -> Vec<String> {
    let params = (1..=32)
        .rev()
        .find(|n| sql.contains(&format!("${n}")))
        .unwrap_or(0);
    let nulls = vec!["NULL"; params].join(", ");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE steadfast_generic AS {sql}"
    )))
    .execute(&mut *conn)
    .await
    .expect("prepare");
    let args = if params == 0 {
        String::new()
    } else {
        format!("({nulls})")
    };
    let plan = sqlx::raw_sql(AssertSqlSafe(format!(
        "EXPLAIN EXECUTE steadfast_generic{args}"
    )))
    .fetch_all(&mut *conn)
    .await
    .expect("explain the generic plan");
    sqlx::raw_sql("DEALLOCATE steadfast_generic; RESET plan_cache_mode")
        .execute(&mut *conn)
        .await
        .expect("deallocate");
    lines(&plan)
}

/// The generic plans (see [`generic_plan`]) of the writer's batched
/// statements, which run on its connection with generic plans
/// (`schema::setup_writer`); claims and reads run on the pool with custom
/// plans.
async fn explain_generic(conn: &mut PgConnection) -> Vec<String> {
    let statements = [
        ("append", crate::ops::append_many::APPEND_MANY),
        ("finish", crate::ops::journal::FINISH_MANY),
        ("suspend", crate::ops::journal::SUSPEND_MANY),
    ];
    let mut bad = Vec::new();
    for (what, sql) in statements {
        let plan = generic_plan(conn, sql).await;
        assert!(!plan.is_empty(), "{what}: no plan");
        bad.extend(fence_scans(&format!("generic {what}"), plan));
    }
    bad
}

/// The custom plans ([`explain_all`]) and the writer's generic plans
/// ([`explain_generic`]) in the tables' present state, each finding after
/// `label`.
async fn explain_phase(conn: &mut PgConnection, analysed: bool, label: &str) -> Vec<String> {
    let mut bad = explain_all(conn, analysed).await;
    bad.extend(explain_generic(conn).await);
    bad.into_iter().map(|b| format!("{label}{b}")).collect()
}

async fn plans_in(url: &str, schema: &str) {
    let store =
        crate::PostgresStore::connect_with(url, crate::PostgresOptions::default().schema(schema))
            .await
            .expect("create the schema");
    drop(store);
    let mut conn = PgConnection::connect(url).await.expect("connect");
    crate::schema::setup(&mut conn, schema)
        .await
        .expect("setup");
    sqlx::raw_sql(
        "INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at, owner,
             epoch)
         SELECT 'p' || lpad(i::text, 7, '0'), 'w', 'null', 'running', 0, 0, 1, 'h', 1
         FROM generate_series(0, 19999) AS i;
         INSERT INTO journal (process_id, name, seq, kind, status, outcome, attempts,
             started_at, finished_at)
         SELECT 'p' || lpad(i::text, 7, '0'), 'step ' || s, s, 'step', 'completed',
             '\"value\"', 1, 0, 0
         FROM generate_series(0, 1999) AS i, generate_series(0, 9) AS s;
         INSERT INTO signals (process_id, name, payload, sent_at, consumed_at)
         SELECT 'p' || lpad(i::text, 7, '0'), 'done', 'null', 0, 1
         FROM generate_series(0, 19999) AS i;",
    )
    .execute(&mut conn)
    .await
    .expect("fill the tables");
    let mut bad = explain_phase(&mut conn, false, "").await;
    sqlx::raw_sql("ANALYZE processes, journal, signals")
        .execute(&mut conn)
        .await
        .expect("analyze");
    bad.extend(explain_phase(&mut conn, true, "analysed, ").await);
    // Statistics gathered before any process had an owner (the store
    // analyses as it spawns, before the claims), then 1,000 leases taken:
    // `owner = …` now looks like one row, and a fence that compared the
    // owner with `=` went through `processes_owner`.
    sqlx::raw_sql(
        "UPDATE processes SET owner = NULL;
         ANALYZE processes;
         UPDATE processes SET owner = 'h' WHERE id < 'p0001000';",
    )
    .execute(&mut conn)
    .await
    .expect("analyse before the claims");
    bad.extend(explain_phase(&mut conn, true, "analysed before the claims, ").await);
    assert!(
        bad.is_empty(),
        "statements that read whole tables:\n{}",
        bad.join("\n")
    );
}

#[tokio::test]
async fn hot_statements_find_their_rows_by_key() {
    crate::test_schema::in_fresh_schema(|url, schema| async move { plans_in(&url, &schema).await })
        .await;
}

/// The dead-host check (`hosts::LEASE_OWNERS`) among 50,000 runnable
/// processes nobody has claimed (no owner) and 300 leased ones: before
/// and after `ANALYZE`, its plan reads no whole table and not every
/// running process (the `DISTINCT owner … WHERE status = 'running'` it
/// replaced read all 50,300 through `processes_status` before the table
/// was analysed), and it finds exactly the owners of unexpired leases on
/// running processes.
async fn lease_owners_in(url: &str, schema: &str) {
    let store =
        crate::PostgresStore::connect_with(url, crate::PostgresOptions::default().schema(schema))
            .await
            .expect("create the schema");
    drop(store);
    let mut conn = PgConnection::connect(url).await.expect("connect");
    crate::schema::setup(&mut conn, schema)
        .await
        .expect("setup");
    // "h0".."h2": leases that run until 10,000; "expired": leases that ran
    // out at 500; "h-asleep": owner of suspended processes only (a row
    // that kept its owner, which the check must not count).
    sqlx::raw_sql(
        "INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at)
         SELECT 'new' || lpad(i::text, 7, '0'), 'w', 'null', 'running', 0, 0, 1
         FROM generate_series(0, 49999) AS i;
         INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at, owner,
             epoch)
         SELECT 'leased' || lpad(i::text, 7, '0'), 'w', 'null', 'running', 0, 0, 10000,
             'h' || (i % 3), 1
         FROM generate_series(0, 299) AS i;
         INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at, owner,
             epoch)
         SELECT 'late' || i, 'w', 'null', 'running', 0, 0, 500, 'expired', 1
         FROM generate_series(0, 9) AS i;
         INSERT INTO processes (id, kind, input, status, created_at, updated_at, wake_at, owner,
             epoch)
         SELECT 'asleep' || i, 'w', 'null', 'suspended', 0, 0, 10000, 'h-asleep', 1
         FROM generate_series(0, 9) AS i;",
    )
    .execute(&mut conn)
    .await
    .expect("fill the table");
    let mut bad = Vec::new();
    for analysed in [false, true] {
        if analysed {
            sqlx::raw_sql("ANALYZE processes")
                .execute(&mut conn)
                .await
                .expect("analyze");
        }
        let plan = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN {}",
            crate::hosts::LEASE_OWNERS
        )))
        .bind(Some(1000_i64))
        .fetch_all(&mut conn)
        .await
        .expect("explain the dead-host check");
        bad.extend(whole_table_scans(
            &format!("lease owners (analysed: {analysed})"),
            lines(&plan),
        ));
        let mut owners: Vec<String> = sqlx::query_scalar(crate::hosts::LEASE_OWNERS)
            .bind(Some(1000_i64))
            .fetch_all(&mut conn)
            .await
            .expect("run the dead-host check");
        owners.sort();
        assert_eq!(owners, ["h0", "h1", "h2"], "analysed: {analysed}");
    }
    assert!(
        bad.is_empty(),
        "the dead-host check reads whole tables:\n{}",
        bad.join("\n")
    );
}

#[tokio::test]
async fn dead_host_check_reads_the_leases_only() {
    crate::test_schema::in_fresh_schema(|url, schema| async move {
        lease_owners_in(&url, &schema).await
    })
    .await;
}

/// The claim's plan once the store has spawned 1,000 processes itself,
/// with nobody else analysing (the test server runs without autovacuum):
/// the store's own `ANALYZE` (see `statistics.rs`) makes it take due
/// processes through `processes_wake`. Without it the claim reads every
/// process, sorting the runnable ones, on each call.
async fn claim_after_spawns_in(url: &str, schema: &str) {
    use steadfast_core::{NewProcess, Store};

    let store =
        crate::PostgresStore::connect_with(url, crate::PostgresOptions::default().schema(schema))
            .await
            .expect("create the schema");
    for i in 0..1_000 {
        store
            .spawn(NewProcess {
                id: ProcessId::new(format!("p{i:05}")).expect("id"),
                kind: "w".to_owned(),
                input: "null".to_owned(),
                now: Timestamp::from_micros(1),
                parent: None,
                version: 1,
                traceparent: None,
            })
            .await
            .expect("spawn");
    }
    let mut conn = PgConnection::connect(url).await.expect("connect");
    crate::schema::setup(&mut conn, schema)
        .await
        .expect("setup");
    // Waits for the analysis (it runs in the background), polling the
    // server's count of it; a store that never analyses fails here.
    let mut polls = 0;
    loop {
        let analysed: i64 = sqlx::query_scalar(
            "SELECT analyze_count FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'processes'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("read the statistics' count");
        if analysed >= 1 {
            break;
        }
        polls += 1;
        assert!(
            polls < 600,
            "the store did not analyse processes after 1,000 spawns"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let plan = sqlx::query(AssertSqlSafe(format!(
        "EXPLAIN {}",
        crate::ops::claim::CLAIM
    )))
    .bind("h2")
    .bind(30_000_000_i64)
    .bind(None::<i64>)
    .bind(10_i64)
    .bind(0_i64)
    .bind("claimed")
    .bind(None::<String>)
    .fetch_all(&mut conn)
    .await
    .expect("explain the claim");
    let bad = whole_table_scans("claim", lines(&plan));
    assert!(
        bad.is_empty(),
        "the claim reads whole tables:\n{}",
        bad.join("\n")
    );
    store.close().await.expect("close");
}

#[tokio::test]
async fn the_store_keeps_the_claims_statistics() {
    crate::test_schema::in_fresh_schema(|url, schema| async move {
        claim_after_spawns_in(&url, &schema).await
    })
    .await;
}

/// The writer's session runs generic plans (see `schema::setup_writer`):
/// its statements are planned once per connection; the pool's sessions
/// (claims, reads) keep custom plans.
#[tokio::test]
async fn the_store_sessions_use_generic_plans() {
    crate::test_schema::in_fresh_schema(|url, schema| async move {
        let store = crate::PostgresStore::connect_with(
            &url,
            crate::PostgresOptions::default().schema(&schema),
        )
        .await
        .expect("connect");
        let writer: String = store
            .call(crate::write::Write::Show("plan_cache_mode"))
            .await
            .expect("the writer's setting");
        let pooled: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&store.inner.pool)
            .await
            .expect("a pooled session's setting");
        // The pool's sessions plan with the values (a list by status needs
        // them); only the writer forces generic plans.
        assert_eq!(
            (writer.as_str(), pooled.as_str()),
            ("force_generic_plan", "auto")
        );
        steadfast_core::Store::close(&store).await.expect("close");
    })
    .await;
}
