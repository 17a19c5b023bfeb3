//! Mapping between SQLite rows and the records of `steadfast_core`, and
//! between `rusqlite` errors and [`StoreError`].

use rusqlite::types::{FromSql, ValueRef};
use rusqlite::{ErrorCode, Row};
use steadfast_core::rules;
use steadfast_core::{
    JournalEntry, Listed, PendingSignal, ProcessId, ProcessRecord, RowError, SignalRecord,
    SignalState, SourceLocation, Status, StoreError, Timestamp,
};

/// The columns of `processes`, in the order [`process_from_row`] reads them.
macro_rules! process_columns {
    () => {
        "id, kind, input, status, created_at, updated_at, wake_at, waiting_for, owner, \
         epoch, cancel_requested, output, error, blocked_step, parked_at, generation, version, \
         parent, traceparent"
    };
}
pub(crate) use process_columns;

/// The columns of `journal`, in the order [`journal_from_row`] reads them.
macro_rules! journal_columns {
    () => {
        "seq, name, kind, status, outcome, attempts, started_at, finished_at, due_at, file, \
         line, consumed_signal"
    };
}
pub(crate) use journal_columns;

/// The columns of `signals`, in the order [`signal_from_row`] reads them.
macro_rules! signal_columns {
    () => {
        "id, name, payload, sent_at, traceparent"
    };
}

/// Converts a `rusqlite` error into a backend error; see [`is_retryable`]
/// for which are retryable.
pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    let retryable = is_retryable(&e);
    StoreError::Backend {
        message: format!("sqlite: {e}"),
        retryable,
        source: Some(Box::new(e)),
    }
}

/// Whether trying again may help: a database busy or locked by another
/// connection, a full disk (space may be freed) and an I/O error (a
/// transient device or file-system failure). SQLite rolls back what the
/// failed statement did, so the write can be repeated as a whole.
pub(crate) fn is_retryable(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
        )
    )
}

/// `.db()?` turns a `rusqlite` result into a store result.
pub(crate) trait Db<T> {
    /// Maps the error with [`backend`].
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(backend)
    }
}

/// Column `idx` of `row` shown as text whatever it holds (for messages and
/// row keys): text lossily decoded, numbers, `NULL`, blob sizes.
pub(crate) fn shown(row: &Row<'_>, idx: usize) -> String {
    match row.get_ref(idx) {
        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
        Ok(ValueRef::Integer(i)) => i.to_string(),
        Ok(ValueRef::Real(r)) => r.to_string(),
        Ok(ValueRef::Null) => "NULL".to_owned(),
        Ok(ValueRef::Blob(b)) => format!("<blob of {} bytes>", b.len()),
        Err(e) => format!("<{e}>"),
    }
}

/// Reads column `idx`; a value of the wrong type is reported as corrupt data
/// naming the table, the row, the column and the value.
fn col<T: FromSql>(row: &Row<'_>, idx: usize, table: &str, key: &str) -> Result<T, StoreError> {
    row.get(idx).map_err(|e| match e {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => {
            let name = row.as_ref().column_name(idx).unwrap_or("?").to_owned();
            let value = match row.get_ref(idx) {
                Ok(ValueRef::Text(t)) => format!("{:?}", String::from_utf8_lossy(t)),
                _ => shown(row, idx),
            };
            corrupt(
                table,
                key,
                &name,
                &format!("the value {value} does not decode: {e}"),
            )
        }
        other => backend(other),
    })
}

fn corrupt(table: &str, key: &str, column: &str, what: &str) -> StoreError {
    StoreError::CorruptRow(RowError::new(table, key, column, what))
}

fn parse_id(id: String, table: &str) -> Result<ProcessId, StoreError> {
    ProcessId::new(id.as_str()).map_err(|e| corrupt(table, &id, "id", &e.to_string()))
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

/// Reads a `processes` row selected with [`process_columns!`].
pub(crate) fn process_from_row(row: &Row<'_>) -> Result<ProcessRecord, StoreError> {
    const T: &str = "processes";
    let shown_id = shown(row, 0);
    let raw_id: String = col(row, 0, T, &shown_id)?;
    let key = raw_id.as_str();
    let status: String = col(row, 3, T, key)?;
    let status = status
        .parse::<Status>()
        .map_err(|e| corrupt(T, key, "status", &e.to_string()))?;
    let waiting_for: String = col(row, 7, T, key)?;
    let waiting_for: Vec<String> = serde_json::from_str(&waiting_for).map_err(|e| {
        corrupt(
            T,
            key,
            "waiting_for",
            &format!("not a JSON array of strings: {e}"),
        )
    })?;
    let record = ProcessRecord {
        kind: col(row, 1, T, key)?,
        input: col(row, 2, T, key)?,
        status,
        created_at: ts(col(row, 4, T, key)?),
        updated_at: ts(col(row, 5, T, key)?),
        wake_at: col::<Option<i64>>(row, 6, T, key)?.map(ts),
        waiting_for,
        owner: col(row, 8, T, key)?,
        epoch: col(row, 9, T, key)?,
        cancel_requested: col(row, 10, T, key)?,
        output: col(row, 11, T, key)?,
        error: col(row, 12, T, key)?,
        blocked_step: col(row, 13, T, key)?,
        parked_at: locations(&col::<String>(row, 14, T, key)?)
            .map_err(|e| corrupt(T, key, "parked_at", &e))?,
        generation: col(row, 15, T, key)?,
        version: col(row, 16, T, key)?,
        parent: col::<Option<String>>(row, 17, T, key)?
            .map(|p| ProcessId::new(p).map_err(|e| corrupt(T, key, "parent", &e.to_string())))
            .transpose()?,
        traceparent: col(row, 18, T, key)?,
        id: parse_id(raw_id, T)?,
    };
    Ok(record)
}

/// Reads a `processes` row for a listing: a row that does not decode is
/// [`Listed::Unreadable`]; only backend errors fail.
pub(crate) fn listed_from_row(row: &Row<'_>) -> Result<Listed, StoreError> {
    match process_from_row(row) {
        Ok(record) => Ok(Listed::Process(Box::new(record))),
        Err(StoreError::CorruptRow(error)) => Ok(Listed::Unreadable {
            id: shown(row, 0),
            error,
        }),
        Err(other) => Err(other),
    }
}

/// Reads a `journal` row selected with [`journal_columns!`].
pub(crate) fn journal_from_row(row: &Row<'_>, process: &str) -> Result<JournalEntry, StoreError> {
    const T: &str = "journal";
    let key = format!("{process}/{} (seq {})", shown(row, 1), shown(row, 0));
    let name: String = col(row, 1, T, &key)?;
    let kind: String = col(row, 2, T, &key)?;
    let kind = rules::entry_kind(&key, &kind)?;
    let status: String = col(row, 3, T, &key)?;
    let status = rules::entry_status(&key, &status)?;
    let file: Option<String> = col(row, 9, T, &key)?;
    let line: Option<u32> = col(row, 10, T, &key)?;
    let location = match (file, line) {
        (Some(file), Some(line)) => Some(SourceLocation { file, line }),
        _ => None,
    };
    Ok(JournalEntry {
        seq: col(row, 0, T, &key)?,
        kind,
        status,
        outcome: col(row, 4, T, &key)?,
        attempts: col(row, 5, T, &key)?,
        started_at: ts(col(row, 6, T, &key)?),
        finished_at: col::<Option<i64>>(row, 7, T, &key)?.map(ts),
        due_at: col::<Option<i64>>(row, 8, T, &key)?.map(ts),
        location,
        consumed_signal: col(row, 11, T, &key)?,
        name,
    })
}

/// Reads a `signals` row selected with [`signal_columns!`].
pub(crate) fn signal_from_row(row: &Row<'_>, process: &str) -> Result<PendingSignal, StoreError> {
    const T: &str = "signals";
    let key = format!("{process} signal {}", shown(row, 0));
    let id: i64 = col(row, 0, T, &key)?;
    Ok(PendingSignal {
        id,
        name: col(row, 1, T, &key)?,
        payload: col(row, 2, T, &key)?,
        sent_at: ts(col(row, 3, T, &key)?),
        traceparent: col(row, 4, T, &key)?,
    })
}

/// The columns of `signals` as tools see them, in the order
/// [`signal_record_from_row`] reads them.
pub(crate) const SIGNAL_RECORD_COLUMNS: &str =
    "id, name, payload, sent_at, consumed_at, disposition, reason, traceparent, message_id";

/// Reads a `signals` row selected with [`SIGNAL_RECORD_COLUMNS`].
pub(crate) fn signal_record_from_row(row: &Row<'_>) -> Result<SignalRecord, StoreError> {
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

/// Runs a prepared query and maps every row with `map`.
pub(crate) fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    mut map: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// Runs a prepared query and maps its first row, if any.
pub(crate) fn first<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut rows = stmt.query(params).db()?;
    match rows.next().db()? {
        Some(row) => map(row).map(Some),
        None => Ok(None),
    }
}

/// Parses a JSON array of source locations (`parked_at`).
pub(crate) fn locations(json: &str) -> Result<Vec<SourceLocation>, String> {
    serde_json::from_str(json).map_err(|e| format!("not a JSON array of source locations: {e}"))
}

/// Encodes source locations as the JSON array stored in `parked_at`.
pub(crate) fn locations_json(locations: &[SourceLocation]) -> Result<String, StoreError> {
    serde_json::to_string(locations)
        .map_err(|e| StoreError::InvalidInput(format!("parked_at: {e}")))
}

/// Selects one process by id (`?1`).
pub(crate) const SELECT_PROCESS: &str = concat!(
    "SELECT ",
    process_columns!(),
    " FROM processes WHERE id = ?1"
);

/// Selects a process's journal (`?1`) in `seq` order.
pub(crate) const SELECT_JOURNAL: &str = concat!(
    "SELECT ",
    journal_columns!(),
    " FROM journal WHERE process_id = ?1 ORDER BY seq, name"
);

/// Selects a process's (`?1`) unconsumed signals in send order.
pub(crate) const SELECT_PENDING: &str = concat!(
    "SELECT ",
    signal_columns!(),
    " FROM signals WHERE process_id = ?1 AND consumed_at IS NULL ORDER BY id"
);
