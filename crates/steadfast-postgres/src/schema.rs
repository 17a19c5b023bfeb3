//! The schema, its migrations, connection setup, and the checks that keep a
//! foreign schema untouched when it is opened by mistake.

use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use steadfast_core::StoreError;

use crate::rows::{Db, backend};

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 11;

/// The value of the `magic` key in `steadfast_meta`.
const MAGIC: &str = "steadfast";

/// The longest schema name accepted, so that `<schema>_work` still fits
/// PostgreSQL's 63-byte identifiers.
const MAX_SCHEMA_LEN: usize = 48;

/// Migration `i` takes the schema from version `i` to `i + 1`. Run with the
/// store's schema first on the `search_path`.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    r#"
    CREATE TABLE steadfast_meta (
        key   TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO steadfast_meta (key, value) VALUES ('magic', 'steadfast');

    CREATE TABLE processes (
        id               TEXT COLLATE "C" PRIMARY KEY,
        kind             TEXT COLLATE "C" NOT NULL,
        input            TEXT NOT NULL,
        status           TEXT COLLATE "C" NOT NULL,
        created_at       BIGINT NOT NULL,
        updated_at       BIGINT NOT NULL,
        wake_at          BIGINT,
        waiting_for      TEXT[] NOT NULL DEFAULT '{}',
        owner            TEXT COLLATE "C",
        epoch            BIGINT NOT NULL DEFAULT 0,
        cancel_requested BOOLEAN NOT NULL DEFAULT false,
        output           TEXT,
        error            TEXT,
        blocked_step     TEXT,
        parked_files     TEXT[] NOT NULL DEFAULT '{}',
        parked_lines     BIGINT[] NOT NULL DEFAULT '{}'
    );
    CREATE INDEX processes_wake ON processes (wake_at, id) WHERE wake_at IS NOT NULL;
    CREATE INDEX processes_status ON processes (status, id);
    CREATE INDEX processes_kind ON processes (kind, id);
    CREATE INDEX processes_owner ON processes (owner) WHERE owner IS NOT NULL;
    CREATE INDEX processes_parked ON processes (kind, status) WHERE parked_files <> '{}';

    CREATE TABLE journal (
        process_id      TEXT COLLATE "C" NOT NULL,
        name            TEXT COLLATE "C" NOT NULL,
        seq             BIGINT NOT NULL,
        kind            TEXT NOT NULL,
        status          TEXT NOT NULL,
        outcome         TEXT,
        attempts        BIGINT NOT NULL,
        started_at      BIGINT NOT NULL,
        finished_at     BIGINT,
        due_at          BIGINT,
        file            TEXT,
        line            BIGINT,
        consumed_signal BIGINT,
        PRIMARY KEY (process_id, name)
    );
    CREATE INDEX journal_seq ON journal (process_id, seq, name);

    CREATE TABLE signals (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        process_id  TEXT COLLATE "C" NOT NULL,
        name        TEXT COLLATE "C" NOT NULL,
        payload     TEXT NOT NULL,
        sent_at     BIGINT NOT NULL,
        consumed_at BIGINT
    );
    CREATE INDEX signals_pending ON signals (process_id, id) WHERE consumed_at IS NULL;
    "#,
    // Version 2: the source of process functions, for tools.
    r#"
    CREATE TABLE sources (
        file       TEXT COLLATE "C" NOT NULL,
        name       TEXT COLLATE "C" NOT NULL,
        first_line BIGINT NOT NULL,
        text       TEXT NOT NULL,
        PRIMARY KEY (file, name)
    );
    "#,
    // Version 3: continue-as-new keeps earlier generations as history.
    r#"
    ALTER TABLE processes ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE generations (
        process_id TEXT COLLATE "C" NOT NULL,
        generation BIGINT NOT NULL,
        input      TEXT NOT NULL,
        ended_at   BIGINT NOT NULL,
        PRIMARY KEY (process_id, generation)
    );
    CREATE TABLE journal_history (LIKE journal INCLUDING DEFAULTS);
    ALTER TABLE journal_history ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX journal_history_process ON journal_history (process_id, generation, seq);
    "#,
    // Version 4: the version of the kind's code a process runs with.
    r#"
    ALTER TABLE processes ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
    "#,
    // Version 5: a signal a wait could not decode is rejected, an operator
    // may discard one; both are kept (settled: `consumed_at` set) with
    // what became of them and why.
    r#"
    ALTER TABLE signals ADD COLUMN disposition TEXT;
    ALTER TABLE signals ADD COLUMN reason TEXT;
    "#,
    // Version 6: a child's parent is stored (set by `Process::child` only).
    // Children spawned before have ids `<parent>/<name>` and a parent whose
    // journal holds the step `<name>: spawned`: those (and no other ids with
    // a slash) get their parent once, here.
    r#"
    ALTER TABLE processes ADD COLUMN parent TEXT COLLATE "C";
    CREATE INDEX processes_parent ON processes (parent) WHERE parent IS NOT NULL;
    UPDATE processes AS c SET parent = j.process_id
    FROM journal AS j
    WHERE j.kind = 'step' AND right(j.name, 9) = ': spawned' AND length(j.name) > 9
      AND c.id = j.process_id || '/' || left(j.name, length(j.name) - 9)
      AND c.parent IS NULL;
    "#,
    // Version 7: the journal records the database's clock beside the
    // worker's: when a row was first written and when its outcome was.
    r#"
    ALTER TABLE journal ADD COLUMN db_started_at BIGINT;
    ALTER TABLE journal ADD COLUMN db_finished_at BIGINT;
    "#,
    // Version 8: each process's history besides its journal (claims with
    // host and epoch, blocks, ends, cancels, retries, rewinds, generations),
    // one row written in the transaction of the operation it records.
    // Processes stored before have entries from now on. Lists sort by
    // creation or update time through an index.
    r#"
    CREATE TABLE events (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        process_id TEXT COLLATE "C" NOT NULL,
        at         BIGINT NOT NULL,
        kind       TEXT NOT NULL,
        host       TEXT,
        epoch      BIGINT NOT NULL,
        generation BIGINT NOT NULL,
        detail     TEXT
    );
    CREATE INDEX events_process ON events (process_id, id);
    CREATE INDEX processes_created ON processes (created_at, id);
    CREATE INDEX processes_updated ON processes (updated_at, id);
    "#,
    // Version 9: a signal sent by a message keeps the message's id, unique
    // per process, so a re-delivered message is not stored twice.
    r#"
    ALTER TABLE signals ADD COLUMN message_id TEXT;
    CREATE UNIQUE INDEX signals_message_id ON signals (process_id, message_id)
        WHERE message_id IS NOT NULL;
    "#,
    // Version 10: what each running subscription has done, per name and
    // host, saved periodically for tools in other programs.
    r#"
    CREATE TABLE subscriptions (
        name                    TEXT NOT NULL,
        host                    TEXT NOT NULL,
        source                  TEXT NOT NULL,
        received                BIGINT NOT NULL,
        routed                  BIGINT NOT NULL,
        dead_lettered           BIGINT NOT NULL,
        lag                     BIGINT,
        lag_read_at             BIGINT,
        last_dead_letter_reason TEXT,
        updated_at              BIGINT NOT NULL,
        PRIMARY KEY (name, host)
    );
    "#,
    // Version 11: the W3C trace context (`traceparent`) of the span that
    // spawned a process or sent a signal, so its runs continue that trace
    // on any host. Rows stored before have none.
    r#"
    ALTER TABLE processes ADD COLUMN traceparent TEXT;
    ALTER TABLE signals ADD COLUMN traceparent TEXT;
    "#,
];

// Every version has exactly one migration.
const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// Checks that `schema` is a plain identifier: ASCII letters, digits and
/// `_`, not starting with a digit, 1 to 48 bytes. Only validated names are
/// ever put into SQL text (always double-quoted).
pub(crate) fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA_LEN
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !schema.to_ascii_lowercase().starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "schema name {schema:?} is not valid: use 1 to {MAX_SCHEMA_LEN} ASCII letters, digits \
             and '_', not starting with a digit or 'pg_'"
        )))
    }
}

/// The `LISTEN`/`NOTIFY` channel of a schema.
pub(crate) fn channel(schema: &str) -> String {
    format!("{schema}_work")
}

/// FNV-1a, 64 bits: a hash that is the same in every process and build.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator no identifier contains, so ("a","bc") != ("ab","c").
            hash ^= 0xff;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Folds a 64-bit hash into an `int4` advisory-lock key.
pub(crate) fn key32(hash: u64) -> i32 {
    ((hash >> 32) ^ hash) as u32 as i32
}

/// How long the server lets a session sit idle inside a transaction before
/// it aborts it. A worker frozen mid-transaction (SIGSTOP, a paused VM) would
/// otherwise hold its rows locked, and no other worker could take those
/// processes over; its uncommitted writes were never acknowledged, so
/// nothing acknowledged is lost.
pub(crate) const IDLE_IN_TRANSACTION_TIMEOUT: &str = "10s";

/// Prepares a fresh connection: durable commits, a bound on idling inside a
/// transaction, no JIT compilation, and the store's schema as the only
/// entry of the `search_path` (the catalog stays reachable).
///
/// JIT is off because the store's statements are short, by-key ones whose
/// cost the planner overestimates on tables without statistics (a fresh
/// schema, a million rows spawned since the last `ANALYZE`): above
/// `jit_above_cost`, the dead-host check was measured taking 335 ms in a
/// fresh session (loading and running the compiler) where its plan's nodes
/// took 21 ms.
pub(crate) async fn setup(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET synchronous_commit = on; \
         SET jit = off; \
         SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'; \
         SET search_path TO \"{schema}\""
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Prepares the writer's connection: [`setup`], and generic plans
/// (`plan_cache_mode = force_generic_plan`). The writer sends a few
/// statements over and over, each prepared once per connection; by default
/// PostgreSQL plans a prepared statement again for each execution's
/// parameters (a custom plan) until it trusts a generic one. The writes are
/// CTEs over `unnest` of up to sixteen arrays whose planning cost more than
/// their execution: on W1 an append took 1.2–1.3 ms with custom plans
/// against 0.4 ms for a single-row `INSERT` on the same server. Their plans
/// do not depend on the values (every row is found by key; `plans.rs`
/// checks their generic plans), so they are planned once per connection.
/// The pool's sessions keep custom plans: a list filtered by a status, say,
/// needs the value to pick its index (a generic plan of W3's "first process
/// still running" read a million suspended rows to find it).
pub(crate) async fn setup_writer(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    setup(conn, schema).await?;
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(conn)
        .await
        .map(|_| ())
}

fn not_steadfast(location: &str, detail: impl Into<String>) -> StoreError {
    StoreError::NotSteadfast {
        location: location.to_owned(),
        detail: detail.into(),
    }
}

/// What the schema holds.
enum Found {
    /// No such schema.
    Missing,
    /// The schema exists and holds no tables.
    Empty,
    /// A Steadfast schema at this (supported) version.
    Steadfast(i64),
}

/// Looks at the schema without changing it. Runs inside the migration
/// transaction, after its advisory lock.
async fn inspect(
    conn: &mut PgConnection,
    schema: &str,
    location: &str,
) -> Result<Found, StoreError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await
            .db()?;
    if !exists {
        return Ok(Found::Missing);
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
         ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    if tables.is_empty() {
        return Ok(Found::Empty);
    }
    if !tables.iter().any(|t| t == "steadfast_meta") {
        let names: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
        return Err(not_steadfast(
            location,
            format!(
                "schema {schema:?} holds tables but no steadfast_meta table (it holds {})",
                names.join(", ")
            ),
        ));
    }
    let rows = sqlx::query("SELECT key::text, value::text FROM steadfast_meta")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) => not_steadfast(
                location,
                format!("its steadfast_meta table cannot be read: {db}"),
            ),
            other => backend(other),
        })?;
    let meta = |key: &str| -> Option<String> {
        rows.iter().find_map(|r| {
            let k: String = r.try_get(0).ok()?;
            if k == key { r.try_get(1).ok() } else { None }
        })
    };
    let magic = meta("magic");
    if magic.as_deref() != Some(MAGIC) {
        return Err(not_steadfast(
            location,
            format!("steadfast_meta holds magic {magic:?}, expected \"{MAGIC}\""),
        ));
    }
    let version = meta("schema_version");
    let version = version
        .as_deref()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            not_steadfast(
                location,
                format!("steadfast_meta holds schema_version {version:?}, not a number"),
            )
        })?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            location: location.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(Found::Steadfast(version))
}

/// Checks the schema and applies the missing migrations in one transaction
/// under a transaction-level advisory lock, so workers starting together
/// migrate once. A foreign or newer schema is rejected and left untouched.
pub(crate) async fn migrate(
    conn: &mut PgConnection,
    schema: &str,
    location: &str,
    create: bool,
    upgrade: bool,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.db()?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(fnv1a(&["steadfast-migrate", schema]) as i64)
        .execute(&mut *tx)
        .await
        .db()?;
    let from = match inspect(&mut tx, schema, location).await? {
        Found::Steadfast(v) if v == SCHEMA_VERSION => return Ok(()),
        Found::Steadfast(v) if !upgrade => {
            return Err(StoreError::ReadOnly {
                location: location.to_owned(),
                detail: format!(
                    "its schema version {v} must first be upgraded to {SCHEMA_VERSION}, which \
                     only a store that may upgrade it does (e.g. a worker)"
                ),
            });
        }
        Found::Steadfast(v) => v,
        Found::Missing | Found::Empty if !create => {
            return Err(StoreError::Backend {
                message: format!(
                    "{location}: schema {schema:?} holds no Steadfast tables and create_schema is off"
                ),
                retryable: false,
                source: None,
            });
        }
        Found::Missing => {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
                .execute(&mut *tx)
                .await
                .db()?;
            0
        }
        Found::Empty => 0,
    };
    let from = usize::try_from(from).unwrap_or(0);
    for (i, script) in MIGRATIONS.iter().enumerate().skip(from) {
        sqlx::raw_sql(*script).execute(&mut *tx).await.db()?;
        sqlx::query(
            "INSERT INTO steadfast_meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind((i + 1).to_string())
        .execute(&mut *tx)
        .await
        .db()?;
        tracing::info!(
            location,
            version = i + 1,
            "applied steadfast schema migration"
        );
    }
    tx.commit().await.db()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        for ok in ["steadfast", "Steadfast_2", "_x", "a"] {
            assert!(validate_schema(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a\"b",
            "a b",
            "pg_x",
            "é",
            &"x".repeat(49),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_are_stable_and_separated() {
        assert_eq!(fnv1a(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&["a", "bc"]), fnv1a(&["ab", "c"]));
    }
}
