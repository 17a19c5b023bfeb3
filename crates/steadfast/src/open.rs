//! "URL or path → store": [`open`], [`open_with`] and [`Location`], shared by
//! the CLI, the dashboard and user code. The only place the facade names the
//! concrete stores besides its re-exports: each is an optional feature
//! (`sqlite`, on by default; `postgres`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use steadfast_core::{Backend, StoreError};

#[cfg(feature = "postgres")]
use steadfast_postgres::{PostgresOptions, PostgresStore, PostgresUrl};
#[cfg(feature = "sqlite")]
use steadfast_sqlite::{Access, SqliteOptions, SqliteStore};

/// How [`open_with`] opens a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// A missing store (SQLite file, PostgreSQL schema) is created and an
    /// older one upgraded: what workers do. The default.
    #[default]
    Create,
    /// The store must exist (an older one is upgraded): for tools that
    /// change existing processes.
    Existing,
    /// Only reads: nothing is created, upgraded or changed.
    ReadOnly,
    /// Reads, and writes when asked to (a dashboard): opened like
    /// [`OpenMode::ReadOnly`] until its first write; never creates or
    /// upgrades a PostgreSQL schema.
    WriteOnDemand,
}

/// Where a store URL or path points: `postgres://…` (or `postgresql://…`,
/// with an optional `schema=NAME` parameter), `sqlite:PATH`,
/// `sqlite://PATH`, or a plain path (a SQLite file).
///
/// ```
/// use std::path::PathBuf;
/// use steadfast::Location;
///
/// assert_eq!(Location::parse("app.db")?, Location::Sqlite(PathBuf::from("app.db")));
/// assert_eq!(Location::parse("sqlite:/var/lib/app.db")?, Location::Sqlite("/var/lib/app.db".into()));
/// assert!(Location::parse("sqlite:").is_err()); // names no file
/// assert!(Location::parse("mysql://db/app").is_err()); // not a store
/// # Ok::<(), steadfast::OpenError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database; the URL's `schema` parameter names the schema
    /// (`steadfast` when it has none).
    #[cfg(feature = "postgres")]
    Postgres(PostgresUrl),
}

impl Location {
    /// Parses a store URL or path; see [`Location`].
    pub fn parse(url_or_path: &str) -> Result<Location, OpenError> {
        let bad = |reason: String| OpenError::BadUrl {
            url: redact(url_or_path),
            reason,
        };
        if strip_prefix_ci(url_or_path, "postgres://").is_some()
            || strip_prefix_ci(url_or_path, "postgresql://").is_some()
        {
            return postgres(url_or_path);
        }
        let path = if let Some(rest) = strip_prefix_ci(url_or_path, "sqlite://") {
            rest
        } else if let Some(rest) = strip_prefix_ci(url_or_path, "sqlite:") {
            rest
        } else if let Some(scheme) = scheme(url_or_path) {
            return Err(bad(format!(
                "{scheme}:// is not a store (use postgres://…, sqlite:PATH or a file path)"
            )));
        } else {
            url_or_path
        };
        if path.is_empty() {
            return Err(bad("it names no file".to_owned()));
        }
        Ok(Location::Sqlite(PathBuf::from(path)))
    }

    /// Opens the store it points to; see [`open_with`].
    pub async fn open(&self, mode: OpenMode) -> Result<Arc<dyn Backend>, OpenError> {
        match self {
            Location::Sqlite(path) => open_sqlite_store(path, mode).await,
            #[cfg(feature = "postgres")]
            Location::Postgres(url) => Ok(Arc::new(open_postgres(url, mode).await?)),
        }
    }

    /// The PostgreSQL schema it names (`steadfast` unless the URL's
    /// `schema` parameter says otherwise); `None` for SQLite.
    pub fn schema(&self) -> Option<String> {
        match self {
            Location::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Location::Postgres(url) => Some(
                url.schema()
                    .map(str::to_owned)
                    .unwrap_or_else(|| PostgresOptions::default().schema),
            ),
        }
    }
}

impl FromStr for Location {
    type Err = OpenError;

    fn from_str(s: &str) -> Result<Self, OpenError> {
        Location::parse(s)
    }
}

/// The path, or the URL without its password.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            #[cfg(feature = "postgres")]
            Location::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// Why [`open`] or [`Location::parse`] failed. Nothing was created or
/// changed; URLs in messages never show a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is not one of a store (unknown scheme, a bad PostgreSQL URL or
    /// parameter, no file named).
    #[error("invalid store URL {url}: {reason}")]
    BadUrl {
        /// The URL as given, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL names a store this build of `steadfast` leaves out.
    #[error(
        "{url} needs the {store} store, which this build leaves out (enable the `{feature}` feature of steadfast)"
    )]
    NotBuiltIn {
        /// The URL as given, without its password.
        url: String,
        /// The store's name.
        store: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// No database at this path, and the mode does not create one.
    #[error("no Steadfast database at {}", .0.display())]
    NoDatabase(PathBuf),
    /// The store refused the database and says why, naming it: not a
    /// Steadfast database, a newer schema, read-only, corrupt.
    #[error(transparent)]
    Refused(StoreError),
    /// The store could not be opened (an I/O error, a server that does not
    /// answer); `source` says why.
    #[error("cannot open the Steadfast {what}")]
    Unavailable {
        /// The database: `database PATH` or `schema "NAME" at URL`.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

impl OpenError {
    /// Whether trying again later may succeed (the store's error is
    /// retryable: a busy file, a server not answering yet).
    pub fn is_retryable(&self) -> bool {
        match self {
            OpenError::Unavailable { source, .. } | OpenError::Refused(source) => {
                source.is_retryable()
            }
            _ => false,
        }
    }
}

/// Opens the store at `url_or_path`, creating it if missing
/// ([`OpenMode::Create`]); see [`Location`] for the forms it takes.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use steadfast::Host;
///
/// let store = steadfast::open("sqlite:steadfast.db").await?;
/// // or steadfast::open("postgres://app@db/orders?schema=billing") with the `postgres` feature
/// let host = steadfast::HostBuilder::from_arc(store).build();
/// # let _ = host; Ok(()) }
/// ```
pub async fn open(url_or_path: &str) -> Result<Arc<dyn Backend>, OpenError> {
    open_with(url_or_path, OpenMode::Create).await
}

/// Opens the store at `url_or_path` in `mode`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let missing = dir.path().join("none.db");
/// let err = steadfast::open_with(missing.to_str().unwrap(), steadfast::OpenMode::ReadOnly)
///     .await
///     .err()
///     .unwrap();
/// assert!(matches!(err, steadfast::OpenError::NoDatabase(_)));
/// assert!(!missing.exists()); // nothing created
/// # }
/// ```
pub async fn open_with(url_or_path: &str, mode: OpenMode) -> Result<Arc<dyn Backend>, OpenError> {
    Location::parse(url_or_path)?.open(mode).await
}

/// Opens the SQLite file at `path` in `mode`, as its own type.
#[cfg(feature = "sqlite")]
pub async fn open_sqlite(path: &Path, mode: OpenMode) -> Result<SqliteStore, OpenError> {
    if mode != OpenMode::Create && !path.exists() {
        return Err(OpenError::NoDatabase(path.to_path_buf()));
    }
    let access = match mode {
        OpenMode::ReadOnly => Access::ReadOnly,
        OpenMode::WriteOnDemand => Access::WriteOnDemand,
        OpenMode::Existing | OpenMode::Create => Access::ReadWrite,
    };
    let options = SqliteOptions::default()
        .create_if_missing(mode == OpenMode::Create)
        .access(access);
    SqliteStore::open_with(path, options)
        .await
        .map_err(|err| match err {
            // These already name the file and say what is wrong.
            StoreError::NotSteadfast { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::Corrupt(_) => OpenError::Refused(err),
            source => OpenError::Unavailable {
                what: format!("database {}", path.display()),
                source,
            },
        })
}

#[cfg(feature = "sqlite")]
async fn open_sqlite_store(path: &Path, mode: OpenMode) -> Result<Arc<dyn Backend>, OpenError> {
    Ok(Arc::new(open_sqlite(path, mode).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite_store(path: &Path, _: OpenMode) -> Result<Arc<dyn Backend>, OpenError> {
    Err(OpenError::NotBuiltIn {
        url: path.display().to_string(),
        store: "SQLite",
        feature: "sqlite",
    })
}

#[cfg(feature = "postgres")]
fn postgres(url: &str) -> Result<Location, OpenError> {
    PostgresUrl::parse(url)
        .map(Location::Postgres)
        .map_err(|err| {
            let text = err.to_string();
            let prefix = format!("invalid PostgreSQL URL {}: ", redact(url));
            OpenError::BadUrl {
                url: redact(url),
                reason: text.strip_prefix(&prefix).unwrap_or(&text).to_owned(),
            }
        })
}

#[cfg(not(feature = "postgres"))]
fn postgres(url: &str) -> Result<Location, OpenError> {
    Err(OpenError::NotBuiltIn {
        url: redact(url),
        store: "PostgreSQL",
        feature: "postgres",
    })
}

/// Opens the PostgreSQL schema `url` names. Reads never create or upgrade
/// a schema (nor does a dashboard's first write: workers do).
#[cfg(feature = "postgres")]
async fn open_postgres(url: &PostgresUrl, mode: OpenMode) -> Result<PostgresStore, OpenError> {
    let reads_only = matches!(mode, OpenMode::ReadOnly | OpenMode::WriteOnDemand);
    let options = PostgresOptions::default()
        .create_schema(mode == OpenMode::Create)
        .upgrade_schema(!reads_only);
    PostgresStore::connect_with(url.as_str(), options)
        .await
        .map_err(|err| match err {
            StoreError::NotSteadfast { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::InvalidInput(_) => OpenError::Refused(err),
            source => OpenError::Unavailable {
                what: format!(
                    "schema {:?} at {url}",
                    Location::Postgres(url.clone()).schema().unwrap_or_default()
                ),
                source,
            },
        })
}

/// The URL without its password (PostgreSQL's rules; other text as is).
fn redact(url: &str) -> String {
    #[cfg(feature = "postgres")]
    {
        steadfast_postgres::redact(url)
    }
    #[cfg(not(feature = "postgres"))]
    {
        // `scheme://user:password@host…` → `scheme://user:***@host…`
        if let Some((scheme, rest)) = url.split_once("://")
            && let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}");
        }
        url.to_owned()
    }
}

/// The scheme of a `scheme://…` URL (RFC 3986 scheme characters), if `s`
/// is one.
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// `s` without `prefix` (ASCII case-insensitive), if it starts with it.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}
