//! A process that runs transactional steps names its store in its type
//! (`Process<SqliteStore>`); a host on another store refuses its kind when
//! the host is built, before any process runs — never when the step runs.
//! And `steadfast::open`: "URL or path → store".

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use steadfast::{
    Backend, Host, HostBuilder, Location, OpenError, OpenMode, PostgresStore, Process, ProcessId,
    SqliteStore, Status, StepError, StepFailed,
};

/// Books one row in the store's own database, in the step's transaction.
#[steadfast::process]
async fn book(p: Process<SqliteStore>, amount: i64) -> Result<i64, StepFailed> {
    p.transaction("booked", move |conn| {
        conn.execute("CREATE TABLE IF NOT EXISTS ledger (amount INTEGER)", [])
            .map_err(StepError::retryable)?;
        conn.execute("INSERT INTO ledger VALUES (?1)", [amount])
            .map_err(StepError::retryable)?;
        Ok(amount)
    })
    .await
}

async fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("t.db"))
        .await
        .expect("open store")
}

/// The panic message of `build`, if it panicked.
fn build_refusal(builder: HostBuilder) -> Option<String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| builder.build())) {
        Ok(host) => {
            drop(host);
            None
        }
        Err(panic) => Some(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_kind_runs_on_its_own_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Host::builder(sqlite(&dir).await)
        .poll_interval(Duration::from_millis(20))
        .register_kind::<Book>()
        .build();
    let booked = host.start::<Book>("b-1", &42).await.expect("start");
    assert_eq!(booked.outcome().await.expect("outcome"), 42);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_for_another_store_is_refused_when_the_host_is_built() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Typed: `Process<SqliteStore>` on a host that knows its store only as
    // a `Backend`.
    let shared: Arc<dyn Backend> = Arc::new(sqlite(&dir).await);
    let refusal = build_refusal(HostBuilder::from_arc(Arc::clone(&shared)).register_kind::<Book>())
        .expect("the host refuses the kind");
    assert!(refusal.contains("\"book\""), "{refusal}");
    assert!(
        refusal.contains("Process<steadfast_sqlite::SqliteStore>"),
        "{refusal}"
    );

    // The string API: `Process<PostgresStore>` on a SQLite host.
    let on_sqlite = Host::builder(sqlite(&dir).await).register(
        "pg ledger",
        |p: Process<PostgresStore>, (): ()| async move {
            p.transaction("booked", |conn| {
                Box::pin(async move {
                    steadfast::sqlx::query("SELECT 1")
                        .execute(conn)
                        .await
                        .map_err(StepError::retryable)?;
                    Ok(())
                })
            })
            .await
        },
    );
    let refusal = build_refusal(on_sqlite).expect("the host refuses the kind");
    assert!(refusal.contains("\"pg ledger\""), "{refusal}");
    assert!(refusal.contains("PostgresStore"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_host_still_spawns_a_kind_it_could_not_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite(&dir).await;
    let shared: Arc<dyn Backend> = Arc::new(store.clone());
    let client = HostBuilder::from_arc(shared)
        .register_kind::<Book>()
        .build_client();
    client.start::<Book>("b-1", &7).await.expect("spawn");
    // The input is still checked against the kind.
    assert!(client.spawn("book", "b-2", &"seven").await.is_err());
    // A worker on the store as its own type runs it.
    let worker = Host::builder(store)
        .poll_interval(Duration::from_millis(20))
        .register_kind::<Book>()
        .build();
    let outcome: i64 = worker.outcome("b-1").await.expect("outcome");
    assert_eq!(outcome, 7);
    assert_eq!(
        worker.status("b-1").await.expect("status").status,
        Status::Completed
    );
    worker.shutdown().await;
}

#[test]
fn locations_parse_with_typed_errors() {
    let file = |p: &str| Location::Sqlite(p.into());
    assert_eq!(Location::parse("a.db").expect("path"), file("a.db"));
    assert_eq!(
        Location::parse("sqlite:a.db").expect("sqlite:"),
        file("a.db")
    );
    assert_eq!(
        Location::parse("sqlite:///tmp/a.db").expect("sqlite://"),
        file("/tmp/a.db")
    );
    let pg = Location::parse("postgresql://u:pw@h/db?schema=app").expect("postgres");
    assert_eq!(pg.schema().as_deref(), Some("app"));
    assert_eq!(pg.to_string(), "postgresql://u:***@h/db?schema=app");
    assert_eq!(
        Location::parse("postgres://h/db")
            .expect("no schema")
            .schema()
            .as_deref(),
        Some("steadfast")
    );
    for bad in [
        "",
        "sqlite:",
        "mysql://u:pw@h/db",
        "postgres://u:pw@h/db?schem=app",
    ] {
        match Location::parse(bad) {
            Err(OpenError::BadUrl { url, reason }) => {
                assert!(!url.contains("pw"), "{url}");
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let err = Location::parse("postgres://u:pw@h/db?schem=app").expect_err("bad parameter");
    assert!(err.to_string().contains("schem"), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_reads_and_refuses_without_changing_anything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("open.db");
    let url = format!("sqlite:{}", path.display());

    // Reading a missing database creates nothing.
    for mode in [
        OpenMode::ReadOnly,
        OpenMode::Existing,
        OpenMode::WriteOnDemand,
    ] {
        match steadfast::open_with(&url, mode).await {
            Err(OpenError::NoDatabase(p)) => assert_eq!(p, path),
            other => panic!("{mode:?}: {:?}", other.map(|_| ())),
        }
        assert!(!path.exists(), "{mode:?} created the file");
    }

    // `open` creates it; a host runs processes on it.
    let store = steadfast::open(&url).await.expect("open");
    let host = HostBuilder::from_arc(store)
        .poll_interval(Duration::from_millis(20))
        .register("echo", |p: Process, n: u32| async move {
            p.step("echoed", move || async move { Ok::<_, StepError>(n) })
                .await
        })
        .build();
    host.spawn("echo", "e-1", &5u32).await.expect("spawn");
    let echoed: u32 = host.outcome("e-1").await.expect("outcome");
    assert_eq!(echoed, 5);
    host.shutdown().await;

    // A plain path to the same file reads it.
    let read = steadfast::open_with(path.to_str().expect("utf-8"), OpenMode::ReadOnly)
        .await
        .expect("read only");
    assert_eq!(
        read.get(&ProcessId::new("e-1").expect("id"))
            .await
            .expect("get")
            .status,
        Status::Completed
    );
    read.close().await.expect("close");

    // A file that is not a Steadfast database is refused, unchanged.
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "not a database").expect("write");
    match steadfast::open(other.to_str().expect("utf-8")).await {
        Err(OpenError::Refused(steadfast::StoreError::NotSteadfast { .. })) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(
        std::fs::read_to_string(&other).expect("read"),
        "not a database"
    );
}
