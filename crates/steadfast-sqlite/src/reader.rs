//! Reads on a small pool of read-only connections, off the async runtime.
//! Under WAL they see every committed (acknowledged) write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use steadfast_core::rules;
use steadfast_core::{
    Counts, FunctionSource, Generation, JournalEntry, ListFilter, Listed, ParkedCount,
    ParkedCounts, PendingSignal, ProcessId, ProcessRecord, SortKey, SourceLocation, Status,
    StoreError, SubscriptionReport, Timestamp,
};

use crate::rows::{
    Db, SELECT_JOURNAL, SELECT_PENDING, SELECT_PROCESS, collect, first, journal_columns,
    journal_from_row, listed_from_row, locations, process_columns, process_from_row,
    signal_from_row,
};

/// How many idle reader connections are kept.
const MAX_IDLE: usize = 4;

/// The `-wal` file SQLite keeps beside the database at `path`.
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Opens a connection that never writes, and that leaves no `-wal` or
/// `-shm` file behind when `tidy` is set.
///
/// SQLite creates both files for any connection to a WAL database, even a
/// read-only one, and only a connection that may write removes them when it
/// is the last one to close. So the connection is opened for writing (never
/// creating the file) with `query_only` set; with `tidy` it checkpoints on
/// close, which removes the side files it created and changes nothing
/// else, as nothing was written through it. Without `tidy` (the side files
/// were there before, or a writer of this store owns them) closing leaves
/// them as they are. A file that cannot be written is opened read-only,
/// and on a read-only file system, where nobody can write it, as immutable
/// when it has no `-wal`.
pub(crate) fn open_read(
    path: &Path,
    busy_timeout: Duration,
    tidy: bool,
) -> rusqlite::Result<Connection> {
    let read_only_fs = matches!(
        std::fs::OpenOptions::new().write(true).open(path),
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
    );
    let conn = if read_only_fs && !wal_path(path).exists() {
        Connection::open_with_flags(
            immutable_uri(path),
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?
    } else {
        match Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) {
            Ok(conn) => conn,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied)
                ) =>
            {
                Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?
            }
            Err(e) => return Err(e),
        }
    };
    conn.pragma_update(None, "query_only", true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, !tidy)?;
    conn.busy_timeout(busy_timeout)?;
    Ok(conn)
}

/// `file:PATH?immutable=1`, with the characters URIs reserve escaped.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' | '#' | '%' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// The reader pool.
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    tidy: bool,
    closed: AtomicBool,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// A pool on `path`; `tidy` as in [`open_read`].
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration, tidy: bool) -> Self {
        Readers {
            path,
            busy_timeout,
            tidy,
            closed: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Closes the idle connections; later reads fail with
    /// [`StoreError::Closed`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    fn checkout(&self) -> Result<Connection, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let conn = open_read(&self.path, self.busy_timeout, self.tidy).db()?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE && !self.closed.load(Ordering::SeqCst) {
            idle.push(conn);
        }
    }

    /// Runs `f` on a pooled connection in a blocking task.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = pool.checkout()?;
            let result = f(&conn);
            // A connection that hit a backend error is not reused.
            if !matches!(result, Err(StoreError::Backend { .. })) {
                pool.checkin(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend {
            message: format!("a read task failed: {e}"),
            retryable: false,
            source: Some(Box::new(e)),
        })?
    }
}

/// [`steadfast_core::Store::get`].
pub(crate) fn get(conn: &Connection, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
    let mut stmt = conn.prepare_cached(SELECT_PROCESS).db()?;
    first(&mut stmt, [id.as_str()], process_from_row)?
        .ok_or_else(|| StoreError::NotFound(id.clone()))
}

pub(crate) fn exists(conn: &Connection, id: &ProcessId) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM processes WHERE id = ?1")
        .db()?;
    first(&mut stmt, [id.as_str()], |_| Ok(()))?.ok_or_else(|| StoreError::NotFound(id.clone()))
}

/// Runs `f` in one read transaction, so its queries see one snapshot.
pub(crate) fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("BEGIN").db()?.execute([]).db()?;
    let result = f(conn);
    let _ = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    result
}

/// [`steadfast_core::Store::pending_signals`]; `NotFound` for an unknown id.
pub(crate) fn pending_signals(
    conn: &Connection,
    id: &ProcessId,
) -> Result<Vec<PendingSignal>, StoreError> {
    snapshot(conn, |conn| {
        exists(conn, id)?;
        let mut stmt = conn.prepare_cached(SELECT_PENDING).db()?;
        collect(&mut stmt, [id.as_str()], |r| {
            signal_from_row(r, id.as_str())
        })
    })
}

/// [`steadfast_core::StoreAdmin::journal`].
pub(crate) fn journal(conn: &Connection, id: &ProcessId) -> Result<Vec<JournalEntry>, StoreError> {
    snapshot(conn, |conn| {
        exists(conn, id)?;
        let mut stmt = conn.prepare_cached(SELECT_JOURNAL).db()?;
        collect(&mut stmt, [id.as_str()], |r| {
            journal_from_row(r, id.as_str())
        })
    })
}

/// [`steadfast_core::Store::next_wake`].
pub(crate) fn next_wake(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    // Integers sort before text in SQLite, so a corrupt (non-integer)
    // `wake_at` is the minimum only when no valid one is set; it is ignored.
    let mut stmt = conn
        .prepare_cached("SELECT min(wake_at) FROM processes WHERE wake_at IS NOT NULL")
        .db()?;
    let min: Option<Option<i64>> = first(&mut stmt, [], |r| Ok(r.get(0).ok().flatten()))?;
    Ok(min.flatten().map(Timestamp::from_micros))
}

/// The exclusive upper bound of the ids starting with `prefix`: the prefix
/// with its last byte incremented (UTF-8 never has 0xFF bytes, so there is
/// no carry). Compared byte-wise as text, like the `id` index.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Appends `filter`'s conditions (all but its paging fields) to `sql`, a
/// query over `processes` ending in `WHERE 1`, with their values to `args`.
fn push_filter(sql: &mut String, args: &mut Vec<Value>, filter: &ListFilter) {
    let mut arg = |sql: &mut String, clause: &str, value: Value| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(status) = filter.status {
        arg(
            sql,
            " AND status = ?",
            Value::Text(status.as_str().to_owned()),
        );
    }
    if let Some(kind) = &filter.kind {
        arg(sql, " AND kind = ?", Value::Text(kind.clone()));
    }
    if let Some(prefix) = filter.id_prefix.as_deref().filter(|p| !p.is_empty()) {
        arg(sql, " AND id >= ?", Value::Text(prefix.to_owned()));
        arg(
            sql,
            " AND id < CAST(? AS TEXT)",
            Value::Blob(prefix_end(prefix)),
        );
    }
    // SQLite's lower() changes ASCII letters only, like the lowering here.
    if let Some(text) = filter.id_contains.as_deref().filter(|t| !t.is_empty()) {
        let text = text.to_ascii_lowercase();
        arg(sql, " AND instr(lower(id), ?) > 0", Value::Text(text));
    }
    if let Some(text) = filter.reason_contains.as_deref().filter(|t| !t.is_empty()) {
        let text = text.to_ascii_lowercase();
        arg(sql, " AND instr(lower(error), ?) > 0", Value::Text(text));
    }
    if let Some(from) = filter.created_from {
        arg(
            sql,
            " AND created_at >= ?",
            Value::Integer(from.as_micros()),
        );
    }
    if let Some(before) = filter.created_before {
        arg(
            sql,
            " AND created_at < ?",
            Value::Integer(before.as_micros()),
        );
    }
    if let Some(after) = &filter.after {
        arg(sql, " AND id > ?", Value::Text(after.as_str().to_owned()));
    }
    if let Some(parent) = &filter.parent {
        arg(
            sql,
            " AND parent = ?",
            Value::Text(parent.as_str().to_owned()),
        );
    }
}

/// [`steadfast_core::StoreAdmin::list`].
pub(crate) fn list(conn: &Connection, filter: &ListFilter) -> Result<Vec<Listed>, StoreError> {
    let mut sql = String::with_capacity(500);
    sql.push_str(concat!(
        "SELECT ",
        process_columns!(),
        " FROM processes WHERE 1"
    ));
    let mut args: Vec<Value> = Vec::with_capacity(8);
    push_filter(&mut sql, &mut args, filter);
    let column = match filter.order.by {
        SortKey::Created => Some("created_at"),
        SortKey::Updated => Some("updated_at"),
        SortKey::Kind => Some("kind"),
        SortKey::Status => Some("status"),
        _ => None,
    };
    let direction = if filter.order.descending {
        "DESC"
    } else {
        "ASC"
    };
    sql.push_str(" ORDER BY ");
    if let Some(column) = column {
        sql.push_str(&format!("{column} {direction}, "));
    }
    sql.push_str(&format!("id {direction}"));
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" LIMIT ?{}", args.len()));
    args.push(Value::Integer(
        i64::try_from(filter.offset).unwrap_or(i64::MAX),
    ));
    sql.push_str(&format!(" OFFSET ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql).db()?;
    collect(
        &mut stmt,
        rusqlite::params_from_iter(args.iter()),
        listed_from_row,
    )
}

/// [`steadfast_core::StoreAdmin::count`], in [`Status::ALL`] order.
pub(crate) fn count(conn: &Connection, filter: &ListFilter) -> Result<Counts, StoreError> {
    let filter = ListFilter {
        after: None,
        ..filter.clone()
    };
    let mut sql = String::from("SELECT status, count(*) FROM processes WHERE 1");
    let mut args: Vec<Value> = Vec::with_capacity(8);
    push_filter(&mut sql, &mut args, &filter);
    sql.push_str(" GROUP BY status");
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let groups = collect(&mut stmt, rusqlite::params_from_iter(args.iter()), |r| {
        Ok((r.get::<_, String>(0).ok(), r.get::<_, i64>(1).db()?))
    })?;
    Ok(rules::counts(
        groups.iter().map(|(status, n)| (status.as_deref(), *n)),
    ))
}

/// [`steadfast_core::StoreAdmin::counts`], in [`Status::ALL`] order.
pub(crate) fn counts(conn: &Connection) -> Result<Counts, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT status, count(*) FROM processes GROUP BY status")
        .db()?;
    let groups = collect(&mut stmt, [], |r| {
        let count: i64 = r.get(1).db()?;
        Ok((r.get::<_, String>(0).ok(), count))
    })?;
    Ok(rules::counts(
        groups
            .iter()
            .map(|(status, count)| (status.as_deref(), *count)),
    ))
}

/// [`steadfast_core::StoreAdmin::parked_counts`].
pub(crate) fn parked_counts(conn: &Connection, kind: &str) -> Result<ParkedCounts, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT status, parked_at, count(*) FROM processes
             WHERE kind = ?1 AND status IN ('suspended', 'blocked') AND parked_at <> '[]'
             GROUP BY status, parked_at",
        )
        .db()?;
    let groups = collect(&mut stmt, [kind], |r| {
        let status = r
            .get::<_, String>(0)
            .ok()
            .and_then(|s| s.parse::<Status>().ok());
        let at = r
            .get::<_, String>(1)
            .ok()
            .and_then(|parked| locations(&parked).ok());
        let count: i64 = r.get(2).db()?;
        Ok((status.zip(at), u64::try_from(count).unwrap_or(0)))
    })?;
    let mut unreadable = 0;
    let mut totals: std::collections::BTreeMap<(SourceLocation, usize), u64> = Default::default();
    for (group, count) in groups {
        let Some((status, at)) = group else {
            unreadable += count;
            continue;
        };
        let rank = Status::ALL.iter().position(|s| *s == status).unwrap_or(0);
        for location in at {
            *totals.entry((location, rank)).or_default() += count;
        }
    }
    Ok(ParkedCounts {
        by_location: totals
            .into_iter()
            .map(|((location, rank), count)| ParkedCount {
                location,
                status: Status::ALL[rank],
                count,
            })
            .collect(),
        unreadable,
    })
}

/// [`steadfast_core::StoreAdmin::sources`].
pub(crate) fn sources(conn: &Connection) -> Result<Vec<FunctionSource>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT file, name, first_line, text FROM sources ORDER BY file, first_line",
        )
        .db()?;
    collect(&mut stmt, [], |r| {
        Ok(FunctionSource {
            file: r.get(0).db()?,
            name: r.get(1).db()?,
            first_line: r.get(2).db()?,
            text: r.get(3).db()?,
        })
    })
}

/// [`steadfast_core::StoreAdmin::subscriptions`].
pub(crate) fn subscriptions(conn: &Connection) -> Result<Vec<SubscriptionReport>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, host, source, received, routed, dead_lettered, lag, lag_read_at,
                 last_dead_letter_reason, updated_at
             FROM subscriptions ORDER BY name, host",
        )
        .db()?;
    collect(&mut stmt, [], |r| {
        let name: String = r.get(0).db()?;
        let count = |i: usize, column: &str| -> Result<Option<u64>, StoreError> {
            let v: Option<i64> = r.get(i).db()?;
            v.map(|v| {
                u64::try_from(v).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "subscriptions.{column} of {name:?} is negative ({v})"
                    ))
                })
            })
            .transpose()
        };
        Ok(SubscriptionReport {
            host: r.get(1).db()?,
            source: r.get(2).db()?,
            received: count(3, "received")?.unwrap_or(0),
            routed: count(4, "routed")?.unwrap_or(0),
            dead_lettered: count(5, "dead_lettered")?.unwrap_or(0),
            lag: count(6, "lag")?,
            lag_read_at: r.get::<_, Option<i64>>(7).db()?.map(Timestamp::from_micros),
            last_dead_letter_reason: r.get(8).db()?,
            updated_at: Timestamp::from_micros(r.get(9).db()?),
            name,
        })
    })
}

/// [`steadfast_core::StoreAdmin::history`].
pub(crate) fn history(conn: &Connection, id: &ProcessId) -> Result<Vec<Generation>, StoreError> {
    get(conn, id)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT generation, input, ended_at FROM generations WHERE process_id = ?1
             ORDER BY generation",
        )
        .db()?;
    let mut generations = collect(&mut stmt, [id.as_str()], |r| {
        Ok(Generation {
            generation: r.get(0).db()?,
            input: r.get(1).db()?,
            ended_at: Timestamp::from_micros(r.get(2).db()?),
            journal: Vec::new(),
        })
    })?;
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            journal_columns!(),
            " FROM journal_history WHERE process_id = ?1 AND generation = ?2 ORDER BY seq, name"
        ))
        .db()?;
    for g in &mut generations {
        g.journal = collect(
            &mut stmt,
            rusqlite::params![id.as_str(), g.generation],
            |r| journal_from_row(r, id.as_str()),
        )?;
    }
    Ok(generations)
}
