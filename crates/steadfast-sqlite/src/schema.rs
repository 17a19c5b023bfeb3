//! The schema, its migrations, and the checks that keep foreign files
//! untouched when they are opened by mistake.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use steadfast_core::StoreError;

use crate::options::{Access, SqliteOptions};
use crate::reader::{open_read, wal_path};
use crate::rows::{Db, backend};

/// The schema version this build writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 11;

/// The value of the `magic` key in `steadfast_meta`.
const MAGIC: &str = "steadfast";

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE steadfast_meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    );
    INSERT INTO steadfast_meta (key, value) VALUES ('magic', 'steadfast');

    CREATE TABLE processes (
        id               TEXT PRIMARY KEY NOT NULL,
        kind             TEXT NOT NULL,
        input            TEXT NOT NULL,
        status           TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        wake_at          INTEGER,
        waiting_for      TEXT NOT NULL DEFAULT '[]',
        owner            TEXT,
        epoch            INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        output           TEXT,
        error            TEXT,
        blocked_step     TEXT
    );
    CREATE INDEX processes_wake ON processes (wake_at, id) WHERE wake_at IS NOT NULL;
    CREATE INDEX processes_status ON processes (status, id);
    CREATE INDEX processes_kind ON processes (kind, id);
    CREATE INDEX processes_owner ON processes (owner) WHERE owner IS NOT NULL;

    CREATE TABLE journal (
        process_id      TEXT NOT NULL,
        name            TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        status          TEXT NOT NULL,
        outcome         TEXT,
        attempts        INTEGER NOT NULL,
        started_at      INTEGER NOT NULL,
        finished_at     INTEGER,
        due_at          INTEGER,
        file            TEXT,
        line            INTEGER,
        consumed_signal INTEGER,
        PRIMARY KEY (process_id, name)
    );
    CREATE INDEX journal_seq ON journal (process_id, seq, name);

    CREATE TABLE signals (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        process_id  TEXT NOT NULL,
        name        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        sent_at     INTEGER NOT NULL,
        consumed_at INTEGER
    );
    CREATE INDEX signals_pending ON signals (process_id, id) WHERE consumed_at IS NULL;
    ",
    // Version 2: where a suspended or blocked process stands in its source.
    "
    ALTER TABLE processes ADD COLUMN parked_at TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX processes_parked ON processes (kind, status) WHERE parked_at <> '[]';
    ",
    // Version 3: the source of process functions, for tools.
    "
    CREATE TABLE sources (
        file       TEXT NOT NULL,
        name       TEXT NOT NULL,
        first_line INTEGER NOT NULL,
        text       TEXT NOT NULL,
        PRIMARY KEY (file, name)
    );
    ",
    // Version 4: continue-as-new keeps earlier generations as history.
    "
    ALTER TABLE processes ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE generations (
        process_id TEXT NOT NULL,
        generation INTEGER NOT NULL,
        input      TEXT NOT NULL,
        ended_at   INTEGER NOT NULL,
        PRIMARY KEY (process_id, generation)
    );
    CREATE TABLE journal_history (
        process_id      TEXT NOT NULL,
        generation      INTEGER NOT NULL,
        name            TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        status          TEXT NOT NULL,
        outcome         TEXT,
        attempts        INTEGER NOT NULL,
        started_at      INTEGER NOT NULL,
        finished_at     INTEGER,
        due_at          INTEGER,
        file            TEXT,
        line            INTEGER,
        consumed_signal INTEGER,
        PRIMARY KEY (process_id, generation, name)
    );
    ",
    // Version 5: the version of the kind's code a process runs with.
    "
    ALTER TABLE processes ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ",
    // Version 6: a signal a wait could not decode is rejected, an operator
    // may discard one; both are kept (settled: `consumed_at` set) with
    // what became of them and why.
    "
    ALTER TABLE signals ADD COLUMN disposition TEXT;
    ALTER TABLE signals ADD COLUMN reason TEXT;
    ",
    // Version 7: a child's parent is stored (set by `Process::child` only).
    // Children spawned before have ids `<parent>/<name>` and a parent whose
    // journal holds the step `<name>: spawned`: those (and no other ids with
    // a slash) get their parent once, here.
    "
    ALTER TABLE processes ADD COLUMN parent TEXT;
    CREATE INDEX processes_parent ON processes (parent) WHERE parent IS NOT NULL;
    UPDATE processes SET parent = j.process_id
    FROM journal AS j
    WHERE j.kind = 'step' AND substr(j.name, -9) = ': spawned' AND length(j.name) > 9
      AND processes.id = j.process_id || '/' || substr(j.name, 1, length(j.name) - 9)
      AND processes.parent IS NULL;
    ",
    // Version 8: each process's history besides its journal (claims with
    // host and epoch, blocks, ends, cancels, retries, rewinds, generations),
    // one row written in the transaction of the operation it records.
    // Processes stored before have entries from now on. Lists sort by
    // creation or update time through an index.
    "
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY,
        process_id TEXT NOT NULL,
        at         INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        host       TEXT,
        epoch      INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        detail     TEXT
    );
    CREATE INDEX events_process ON events (process_id, id);
    CREATE INDEX processes_created ON processes (created_at, id);
    CREATE INDEX processes_updated ON processes (updated_at, id);
    ",
    // Version 9: a signal sent by a message keeps the message's id, unique
    // per process, so a re-delivered message is not stored twice.
    "
    ALTER TABLE signals ADD COLUMN message_id TEXT;
    CREATE UNIQUE INDEX signals_message_id ON signals (process_id, message_id)
        WHERE message_id IS NOT NULL;
    ",
    // Version 10: what each running subscription has done, per name and
    // host, saved periodically for tools in other programs.
    "
    CREATE TABLE subscriptions (
        name                    TEXT NOT NULL,
        host                    TEXT NOT NULL,
        source                  TEXT NOT NULL,
        received                INTEGER NOT NULL,
        routed                  INTEGER NOT NULL,
        dead_lettered           INTEGER NOT NULL,
        lag                     INTEGER,
        lag_read_at             INTEGER,
        last_dead_letter_reason TEXT,
        updated_at              INTEGER NOT NULL,
        PRIMARY KEY (name, host)
    ) WITHOUT ROWID;
    ",
    // Version 11: the W3C trace context (`traceparent`) of the span that
    // spawned a process or sent a signal, so its runs continue that trace
    // on any host. Rows stored before have none.
    "
    ALTER TABLE processes ADD COLUMN traceparent TEXT;
    ALTER TABLE signals ADD COLUMN traceparent TEXT;
    ",
];

// Every version has exactly one migration.
const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// What the file at the path holds, found without writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No file, an empty file, or an SQLite database without any schema.
    Fresh,
    /// A Steadfast database at this (supported) schema version.
    Steadfast(i64),
}

fn not_steadfast(location: &str, detail: impl Into<String>) -> StoreError {
    StoreError::NotSteadfast {
        location: location.to_owned(),
        detail: detail.into(),
    }
}

/// Errors while inspecting a file: lock contention and failures to open are
/// backend errors; anything else means the file is not a (sane) database.
fn inspect_error(location: &str, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfMemory,
        ) => backend(e),
        _ => not_steadfast(location, format!("SQLite cannot read it: {e}")),
    }
}

/// Looks at the file without modifying it (and without leaving a `-wal` or
/// `-shm` file beside it).
pub(crate) fn inspect(
    path: &Path,
    location: &str,
    options: &SqliteOptions,
) -> Result<Found, StoreError> {
    let read_only = options.access != Access::ReadWrite;
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if options.create_if_missing && !read_only {
                return Ok(Found::Fresh);
            }
            return Err(StoreError::Backend {
                message: format!("{location} does not exist"),
                retryable: false,
                source: Some(Box::new(e)),
            });
        }
        Err(e) => return Err(io_error(location, e)),
    };
    if !meta.is_file() {
        return Err(not_steadfast(location, "it is not a regular file"));
    }
    let wal = wal_path(path);
    let wal_exists = wal.exists();
    let wal_has_data = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    if meta.len() == 0 && !wal_has_data {
        if read_only {
            return Err(not_steadfast(location, "it is an empty file (0 bytes)"));
        }
        return Ok(Found::Fresh);
    }
    if meta.len() > 0 {
        let mut header = [0u8; 100];
        let mut file = std::fs::File::open(path).map_err(|e| io_error(location, e))?;
        let read = read_up_to(&mut file, &mut header).map_err(|e| io_error(location, e))?;
        let header = &header[..read];
        if !header.starts_with(&SQLITE_HEADER[..header.len().min(16)]) {
            return Err(not_steadfast(
                location,
                "it does not start with the SQLite file header",
            ));
        }
        // The length is read after the header: a live database grows while
        // it is checkpointed, and its header may already name the new size.
        // With a `-wal` beside it the file may be mid-checkpoint, so only a
        // file without one (closed cleanly, or copied alone) is judged here.
        let len = file.metadata().map_err(|e| io_error(location, e))?.len();
        if !wal_exists && let Some(detail) = truncated(header, len) {
            return Err(StoreError::Corrupt(format!(
                "{location} is a truncated SQLite database: {detail}; restore it from a backup"
            )));
        }
    }

    let conn = open_read(path, options.busy_timeout, !wal_exists)
        .map_err(|e| inspect_error(location, e))?;
    let found = read_state(&conn, location).map_err(|e| match e {
        Inspect::Store(e) => e,
        Inspect::Sqlite(e) => inspect_error(location, e),
    })?;
    drop(conn);
    Ok(found)
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Reads as much of `buf` as the file holds.
fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Why a file that starts like an SQLite database is shorter than its
/// header says, if it is.
fn truncated(header: &[u8], len: u64) -> Option<String> {
    if header.len() < 100 {
        return Some(format!(
            "it is {len} bytes long, shorter than the 100-byte SQLite header"
        ));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let change_counter = &header[24..28];
    let valid_for = &header[92..96];
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    // The page count in the header is valid only when it was written by
    // the same change as the counter beside it.
    if page_size < 512 || change_counter != valid_for || pages == 0 {
        return (len < page_size.max(512))
            .then(|| format!("it is {len} bytes long, shorter than one page ({page_size} bytes)"));
    }
    let expected = pages * page_size;
    (len < expected).then(|| {
        format!(
            "its header says {pages} pages of {page_size} bytes ({expected} bytes) but the file \
             holds only {len} bytes"
        )
    })
}

/// Refuses to write a file the file system will not let us write, with a
/// message of its own (SQLite would only say "attempt to write a readonly
/// database" at the first write).
pub(crate) fn check_writable(path: &Path, location: &str) -> Result<(), StoreError> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Err(StoreError::ReadOnly {
                location: location.to_owned(),
                detail: format!(
                    "the file is read-only ({e}); commands that only read it (list, show, \
                     check) still work"
                ),
            })
        }
        Err(e) => Err(io_error(location, e)),
    }
}

fn io_error(location: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend {
        message: format!("cannot read {location}: {e}"),
        retryable: false,
        source: Some(Box::new(e)),
    }
}

enum Inspect {
    Store(StoreError),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Inspect {
    fn from(e: rusqlite::Error) -> Self {
        Inspect::Sqlite(e)
    }
}

/// Reads which schema the database holds (works inside or outside a
/// transaction).
fn read_state(conn: &Connection, location: &str) -> Result<Found, Inspect> {
    let mut stmt = conn.prepare("SELECT type, name FROM sqlite_master ORDER BY name")?;
    let objects = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    if objects.is_empty() {
        return Ok(Found::Fresh);
    }
    if !objects
        .iter()
        .any(|(ty, name)| ty == "table" && name == "steadfast_meta")
    {
        let names: Vec<&str> = objects.iter().take(5).map(|(_, n)| n.as_str()).collect();
        return Err(Inspect::Store(not_steadfast(
            location,
            format!(
                "it is an SQLite database without a steadfast_meta table (it holds {})",
                names.join(", ")
            ),
        )));
    }
    let meta = |key: &str| -> Result<Option<String>, rusqlite::Error> {
        conn.query_row(
            "SELECT value FROM steadfast_meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()
    };
    let magic = meta("magic")?;
    if magic.as_deref() != Some(MAGIC) {
        return Err(Inspect::Store(not_steadfast(
            location,
            format!("steadfast_meta holds magic {magic:?}, expected \"{MAGIC}\""),
        )));
    }
    let version = meta("schema_version")?;
    let version = version
        .as_deref()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            Inspect::Store(not_steadfast(
                location,
                format!("steadfast_meta holds schema_version {version:?}, not a number"),
            ))
        })?;
    if version > SCHEMA_VERSION {
        return Err(Inspect::Store(StoreError::NewerSchema {
            location: location.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        }));
    }
    Ok(Found::Steadfast(version))
}

/// Opens the writer connection: WAL, the durability's `synchronous`, and the
/// schema migrated to [`SCHEMA_VERSION`]. Call only after [`inspect`] said
/// the file is ours (or fresh).
pub(crate) fn open_writer(
    path: &Path,
    location: &str,
    options: &SqliteOptions,
    found: Found,
) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.create_if_missing {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).db()?;
    conn.busy_timeout(options.busy_timeout).db()?;
    conn.set_prepared_statement_cache_capacity(64);
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            message: format!("{location}: SQLite refused WAL mode (journal_mode is {mode})"),
            retryable: false,
            source: None,
        });
    }
    conn.pragma_update(None, "synchronous", options.durability.synchronous())
        .db()?;
    conn.pragma_update(
        None,
        "journal_size_limit",
        i64::try_from(options.journal_size_limit).unwrap_or(i64::MAX),
    )
    .db()?;
    if found != Found::Steadfast(SCHEMA_VERSION) {
        migrate(&conn, location)?;
    }
    Ok(conn)
}

/// Applies the missing migrations in one immediate transaction, re-checking
/// the schema under the write lock (another process may have raced us).
fn migrate(conn: &Connection, location: &str) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").db()?;
    let result = (|| -> Result<(), StoreError> {
        let from = match read_state(conn, location) {
            Ok(Found::Fresh) => 0,
            Ok(Found::Steadfast(v)) => v,
            Err(Inspect::Store(e)) => return Err(e),
            Err(Inspect::Sqlite(e)) => return Err(backend(e)),
        };
        let from = usize::try_from(from).unwrap_or(0);
        for (i, script) in MIGRATIONS.iter().enumerate().skip(from) {
            conn.execute_batch(script).db()?;
            conn.execute(
                "INSERT INTO steadfast_meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(i + 1).to_string()],
            )
            .db()?;
            tracing::info!(
                location,
                version = i + 1,
                "applied steadfast schema migration"
            );
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").db(),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
