//! Mapping between PostgreSQL rows and the records of `steadfast_core`, and
//! between `sqlx` errors and [`StoreError`].

use sqlx::Row;
use sqlx::postgres::PgRow;
use steadfast_core::rules;
use steadfast_core::{
    JournalEntry, Listed, PendingSignal, ProcessId, ProcessRecord, RowError, SignalRecord,
    SignalState, SourceLocation, Status, StoreError, Timestamp,
};

/// The columns of `processes`, in the order [`process_from_row`] reads them.
macro_rules! process_columns {
    () => {
        "id, kind, input, status, created_at, updated_at, wake_at, waiting_for, owner, \
         epoch, cancel_requested, output, error, blocked_step, parked_files, parked_lines, \
         generation, version, parent, traceparent"
    };
}
pub(crate) use process_columns;

/// The columns of `journal`, in the order [`journal_from_row`] reads them.
macro_rules! journal_columns {
    () => {
        "process_id, seq, name, kind, status, outcome, attempts, started_at, finished_at, \
         due_at, file, line, consumed_signal"
    };
}
pub(crate) use journal_columns;

/// The columns of `signals`, in the order [`signal_from_row`] reads them.
macro_rules! signal_columns {
    () => {
        "process_id, id, name, payload, sent_at, traceparent"
    };
}
pub(crate) use signal_columns;

/// Whether a PostgreSQL SQLSTATE means trying again may help: lost or
/// refused connections (08xxx), serialization failures and deadlocks,
/// lock timeouts, server shutdown, exhausted resources (53xxx: a full disk,
/// out of memory, too many connections) and I/O errors on the server.
pub(crate) fn retryable_state(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "58030"
        )
}

/// Whether trying again may help after `e`.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| retryable_state(&c)),
        _ => false,
    }
}

/// Converts a `sqlx` error into a store error: connection trouble is a
/// retryable backend error, text PostgreSQL cannot store (a NUL character)
/// is invalid input, undecodable columns are corrupt data.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolClosed => return StoreError::Closed,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::Decode(_) => return StoreError::Corrupt(format!("postgres: {e}")),
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| matches!(&*c, "22021" | "22P05" | "54000")) =>
        {
            return StoreError::InvalidInput(format!("PostgreSQL cannot store this value: {e}"));
        }
        _ => {}
    }
    StoreError::Backend {
        message: format!("postgres: {e}"),
        retryable: is_retryable(&e),
        source: Some(Box::new(e)),
    }
}

/// `.db()?` turns a `sqlx` result into a store result.
pub(crate) trait Db<T> {
    /// Maps the error with [`backend`].
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(backend)
    }
}

fn corrupt(table: &str, key: &str, column: &str, what: &str) -> StoreError {
    StoreError::CorruptRow(RowError::new(table, key, column, what))
}

/// Reads column `idx`; a value of the wrong type (or a NULL where none is
/// allowed) is reported as corrupt data naming the table, the row and the
/// column.
fn col<'r, T>(row: &'r PgRow, idx: usize, table: &str, key: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    use sqlx::{Column, ValueRef};
    row.try_get(idx).map_err(|e| match e {
        sqlx::Error::ColumnDecode { index, source } => {
            let name = row
                .columns()
                .get(idx)
                .map_or(index, |c| c.name().to_owned());
            let null = row.try_get_raw(idx).is_ok_and(|v| v.is_null());
            let detail = if null {
                format!("the value NULL does not decode: {source}")
            } else {
                source.to_string()
            };
            corrupt(table, key, &name, &detail)
        }
        other => backend(other),
    })
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

pub(crate) fn small(value: i64, table: &str, key: &str, column: &str) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| corrupt(table, key, column, &format!("{value} is out of range")))
}

/// Reads a `processes` row selected with [`process_columns!`].
pub(crate) fn process_from_row(row: &PgRow) -> Result<ProcessRecord, StoreError> {
    const T: &str = "processes";
    let raw_id: String = col(row, 0, T, "?")?;
    let key = raw_id.as_str();
    let status: String = col(row, 3, T, key)?;
    let status = status
        .parse::<Status>()
        .map_err(|e| corrupt(T, key, "status", &e.to_string()))?;
    Ok(ProcessRecord {
        kind: col(row, 1, T, key)?,
        input: col(row, 2, T, key)?,
        status,
        created_at: ts(col(row, 4, T, key)?),
        updated_at: ts(col(row, 5, T, key)?),
        wake_at: col::<Option<i64>>(row, 6, T, key)?.map(ts),
        waiting_for: col(row, 7, T, key)?,
        owner: col(row, 8, T, key)?,
        epoch: col(row, 9, T, key)?,
        cancel_requested: col(row, 10, T, key)?,
        output: col(row, 11, T, key)?,
        error: col(row, 12, T, key)?,
        blocked_step: col(row, 13, T, key)?,
        parked_at: locations(col(row, 14, T, key)?, col(row, 15, T, key)?)
            .map_err(|e| corrupt(T, key, "parked_files/parked_lines", &e))?,
        generation: small(col(row, 16, T, key)?, T, key, "generation")?,
        version: small(col(row, 17, T, key)?, T, key, "version")?,
        parent: col::<Option<String>>(row, 18, T, key)?
            .map(|p| ProcessId::new(p).map_err(|e| corrupt(T, key, "parent", &e.to_string())))
            .transpose()?,
        traceparent: col(row, 19, T, key)?,
        id: parse_id(raw_id, T)?,
    })
}

/// Reads a `processes` row for a listing: a row that does not decode is
/// [`Listed::Unreadable`]; only backend errors fail.
pub(crate) fn listed_from_row(row: &PgRow) -> Result<Listed, StoreError> {
    match process_from_row(row) {
        Ok(record) => Ok(Listed::Process(Box::new(record))),
        Err(StoreError::CorruptRow(error)) => Ok(Listed::Unreadable {
            id: row
                .try_get::<Option<String>, _>(0)
                .ok()
                .flatten()
                .unwrap_or_else(|| error.row.clone()),
            error,
        }),
        Err(other) => Err(other),
    }
}

/// Parses a stored process id.
pub(crate) fn parse_id(id: String, table: &str) -> Result<ProcessId, StoreError> {
    ProcessId::new(id.as_str()).map_err(|e| corrupt(table, &id, "id", &e.to_string()))
}

/// Reads a `journal` row selected with [`journal_columns!`]; returns the
/// process id it belongs to and the entry.
pub(crate) fn journal_from_row(row: &PgRow) -> Result<(String, JournalEntry), StoreError> {
    const T: &str = "journal";
    let process: String = col(row, 0, T, "?")?;
    let seq: Option<i64> = row.try_get(1).ok();
    let seq = seq.map_or_else(|| "?".to_owned(), |s| s.to_string());
    let name: String = col(row, 2, T, &format!("{process} (seq {seq})"))?;
    let key = format!("{process}/{name} (seq {seq})");
    let kind: String = col(row, 3, T, &key)?;
    let kind = rules::entry_kind(&key, &kind)?;
    let status: String = col(row, 4, T, &key)?;
    let status = rules::entry_status(&key, &status)?;
    let attempts: i64 = col(row, 6, T, &key)?;
    let file: Option<String> = col(row, 10, T, &key)?;
    let line: Option<i64> = col(row, 11, T, &key)?;
    let location = match (file, line) {
        (Some(file), Some(line)) => Some(SourceLocation {
            file,
            line: small(line, T, &key, "line")?,
        }),
        _ => None,
    };
    let entry = JournalEntry {
        seq: col(row, 1, T, &key)?,
        kind,
        status,
        outcome: col(row, 5, T, &key)?,
        attempts: small(attempts, T, &key, "attempts")?,
        started_at: ts(col(row, 7, T, &key)?),
        finished_at: col::<Option<i64>>(row, 8, T, &key)?.map(ts),
        due_at: col::<Option<i64>>(row, 9, T, &key)?.map(ts),
        location,
        consumed_signal: col(row, 12, T, &key)?,
        name,
    };
    Ok((process, entry))
}

/// Reads a `signals` row selected with [`signal_columns!`]; returns the
/// process id it belongs to and the signal.
pub(crate) fn signal_from_row(row: &PgRow) -> Result<(String, PendingSignal), StoreError> {
    const T: &str = "signals";
    let process: String = col(row, 0, T, "?")?;
    let id: i64 = col(row, 1, T, &process)?;
    let key = format!("{process} signal {id}");
    let signal = PendingSignal {
        id,
        name: col(row, 2, T, &key)?,
        payload: col(row, 3, T, &key)?,
        sent_at: ts(col(row, 4, T, &key)?),
        traceparent: col(row, 5, T, &key)?,
    };
    Ok((process, signal))
}

/// Zips the stored `parked_files` and `parked_lines` into source locations.
pub(crate) fn locations(
    files: Vec<String>,
    lines: Vec<i64>,
) -> Result<Vec<SourceLocation>, String> {
    if files.len() != lines.len() {
        return Err(format!("{} files but {} lines", files.len(), lines.len()));
    }
    files
        .into_iter()
        .zip(lines)
        .map(|(file, line)| {
            let line = u32::try_from(line).map_err(|_| format!("line {line} is out of range"))?;
            Ok(SourceLocation { file, line })
        })
        .collect()
}

/// Splits source locations into the `parked_files` and `parked_lines`
/// arrays.
pub(crate) fn split_locations(locations: &[SourceLocation]) -> (Vec<String>, Vec<i64>) {
    locations
        .iter()
        .map(|l| (l.file.clone(), i64::from(l.line)))
        .unzip()
}

/// The columns of `signals` as tools see them, in the order
/// [`signal_record_from_row`] reads them.
pub(crate) const SIGNAL_RECORD_COLUMNS: &str =
    "id, name, payload, sent_at, consumed_at, disposition, reason, traceparent, message_id";

/// Reads a `signals` row selected with [`SIGNAL_RECORD_COLUMNS`].
pub(crate) fn signal_record_from_row(row: &PgRow) -> Result<SignalRecord, StoreError> {
    const T: &str = "signals";
    let id: i64 = col(row, 0, T, "?")?;
    let key = id.to_string();
    let settled_at: Option<i64> = col(row, 4, T, &key)?;
    let disposition: Option<String> = col(row, 5, T, &key)?;
    let state = SignalState::from_stored(settled_at.is_some(), disposition.as_deref())
        .map_err(|why| corrupt(T, &key, "disposition", &why))?;
    Ok(SignalRecord {
        id,
        name: col(row, 1, T, &key)?,
        payload: col(row, 2, T, &key)?,
        sent_at: ts(col(row, 3, T, &key)?),
        state,
        settled_at: settled_at.map(ts),
        reason: col(row, 6, T, &key)?,
        traceparent: col(row, 7, T, &key)?,
        message_id: col(row, 8, T, &key)?,
    })
}

#[cfg(test)]
mod tests {
    //! The error mapping on real errors from the server (`STEADFAST_TEST_PG`,
    //! skipped with a notice when it is unreachable, unless
    //! `STEADFAST_REQUIRE_PG=1`).

    use sqlx::{Connection, PgConnection};

    use super::backend;

    fn url() -> String {
        std::env::var("STEADFAST_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn connect() -> Option<PgConnection> {
        match PgConnection::connect(&url()).await {
            Ok(conn) => Some(conn),
            Err(e) if std::env::var("STEADFAST_REQUIRE_PG").is_ok_and(|v| v == "1") => {
                panic!("STEADFAST_REQUIRE_PG=1 but PostgreSQL is unreachable: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: PostgreSQL at {} is unreachable ({e})", url());
                None
            }
        }
    }

    /// The error the server sends for `RAISE ... USING ERRCODE = code`.
    async fn raised(conn: &mut PgConnection, code: &str) -> sqlx::Error {
        let sql = format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(conn)
            .await
            .expect_err("the statement raises")
    }

    #[tokio::test]
    async fn full_disk_lost_connections_and_conflicts_are_retryable() {
        let Some(mut conn) = connect().await else {
            return;
        };
        for (code, what) in [
            ("53100", "disk full"),
            ("53200", "out of memory"),
            ("53300", "too many connections"),
            ("58030", "I/O error"),
            ("08006", "connection failure"),
            ("57P01", "admin shutdown"),
            ("40001", "serialization failure"),
            ("40P01", "deadlock"),
        ] {
            let err = backend(raised(&mut conn, code).await);
            assert!(
                err.is_retryable(),
                "{what} ({code}) must be retryable: {err}"
            );
        }
        for (code, what) in [("23505", "unique violation"), ("42P01", "undefined table")] {
            let err = backend(raised(&mut conn, code).await);
            assert!(
                !err.is_retryable(),
                "{what} ({code}) is not retryable: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_terminated_session_is_retryable() {
        let (Some(mut victim), Some(mut killer)) = (connect().await, connect().await) else {
            return;
        };
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut victim)
            .await
            .expect("pid");
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut killer)
            .await
            .expect("terminate");
        assert!(killed, "the session was terminated");
        let err = sqlx::query("SELECT 1")
            .execute(&mut victim)
            .await
            .expect_err("the session is gone");
        let err = backend(err);
        assert!(
            err.is_retryable(),
            "a lost session must be retryable: {err}"
        );
    }
}
