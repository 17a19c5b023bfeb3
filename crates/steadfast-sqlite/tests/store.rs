//! Tests of the SQLite store itself (the shared contract is checked by the
//! conformance suite).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as OsCommand, Stdio};
use std::time::Duration;

use steadfast_core::{
    EntryKind, EntryStatus, Finish, HostId, JournalEntry, ListFilter, NewProcess, ProcessId,
    SpawnAndClaim, SpawnOutcome, Status, Store, StoreAdmin, StoreError, SuspendOutcome, Suspension,
    Timestamp,
};
use steadfast_sqlite::{Durability, SqliteOptions, SqliteStore};

const LONG: Duration = Duration::from_secs(60);

fn pid(s: &str) -> ProcessId {
    ProcessId::new(s).expect("valid id")
}

fn now() -> Timestamp {
    Timestamp::now_system()
}

fn new_process(id: &str, input: &str) -> NewProcess {
    NewProcess {
        id: pid(id),
        kind: "order".to_owned(),
        version: 1,
        input: input.to_owned(),
        now: now(),
        parent: None,
        traceparent: None,
    }
}

fn entry(seq: i64, name: &str) -> JournalEntry {
    JournalEntry {
        seq,
        name: name.to_owned(),
        kind: EntryKind::Step,
        status: EntryStatus::Completed,
        outcome: Some(format!("{seq}")),
        attempts: 1,
        started_at: now(),
        finished_at: Some(now()),
        due_at: None,
        location: None,
        consumed_signal: None,
    }
}

/// A store that decides with the times these tests pass (not its own
/// monotonic clock).
async fn open(path: &Path) -> SqliteStore {
    let store = SqliteStore::open(path).await.expect("open store");
    store.follow_host_clock();
    store
}

/// The store claims a process at its spawn when asked (the conformance
/// check `spawn_and_claim_leases_a_new_process_to_its_spawner` also
/// accepts a store that does not): the spawner's lease, and nothing left
/// for another host's claim.
#[tokio::test]
async fn spawn_and_claim_claims_the_new_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("s.db")).await;
    let owner = HostId::new("spawner");
    let outcome = store
        .spawn_and_claim(new_process("p", "{}"), &owner, Duration::from_secs(60))
        .await
        .expect("spawn_and_claim");
    let SpawnAndClaim::Claimed(claimed) = outcome else {
        panic!("the SQLite store must claim at the spawn, got {outcome:?}");
    };
    assert_eq!((claimed.lease.owner, claimed.lease.epoch), (owner, 1));
    let others = store
        .claim(&HostId::new("other"), now(), Duration::from_secs(60), 10)
        .await
        .expect("claim");
    assert!(others.is_empty(), "claimed by its spawner: {others:?}");
}

#[tokio::test]
async fn pragmas_follow_durability() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = open(&dir.path().join("full.db")).await;
    assert_eq!(
        full.pragmas().await.expect("pragmas"),
        ("wal".to_owned(), 2)
    );
    let normal = SqliteStore::open_with(
        dir.path().join("normal.db"),
        SqliteOptions::default().durability(Durability::ProcessCrash),
    )
    .await
    .expect("open");
    assert_eq!(
        normal.pragmas().await.expect("pragmas"),
        ("wal".to_owned(), 1)
    );
}

/// `synchronous` is a setting of each connection, not of the file: the
/// store sets it on its own writer connection whatever another connection
/// (a weaker store, or a plain one set to NORMAL or OFF) uses on the same
/// file, before or at the same time.
#[tokio::test]
async fn full_durability_is_set_on_the_writer_whatever_other_connections_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mixed.db");
    let weak = || {
        SqliteStore::open_with(
            &path,
            SqliteOptions::default().durability(Durability::ProcessCrash),
        )
    };
    let first = weak().await.expect("open weak");
    assert_eq!(first.pragmas().await.expect("pragmas").1, 1);
    drop(first);
    let plain = rusqlite::Connection::open(&path).expect("plain connection");
    plain
        .pragma_update(None, "synchronous", "OFF")
        .expect("weaken the plain connection");
    let full = open(&path).await;
    assert_eq!(
        full.pragmas().await.expect("pragmas"),
        ("wal".to_owned(), 2),
        "the default store is FULL after a NORMAL one and beside an OFF one"
    );
    let second = weak().await.expect("open weak again");
    assert_eq!(second.pragmas().await.expect("pragmas").1, 1);
    assert_eq!(
        full.pragmas().await.expect("pragmas").1,
        2,
        "a weaker store opened later does not weaken this one"
    );
}

fn assert_not_steadfast(result: Result<SqliteStore, StoreError>) {
    match result {
        Err(StoreError::NotSteadfast { location, detail }) => {
            assert!(!location.is_empty() && !detail.is_empty());
        }
        other => panic!("expected NotSteadfast, got {other:?}"),
    }
}

#[tokio::test]
async fn foreign_files_are_rejected_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are my notes, not a database\n".repeat(10)).expect("write");
    let before = std::fs::read(&text).expect("read");
    assert_not_steadfast(SqliteStore::open(&text).await);
    assert_eq!(std::fs::read(&text).expect("read"), before);

    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).expect("sqlite");
        conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
            .expect("create");
    }
    let before = std::fs::read(&foreign).expect("read");
    assert_not_steadfast(SqliteStore::open(&foreign).await);
    assert_eq!(std::fs::read(&foreign).expect("read"), before);

    // A real store, truncated in several ways, and an SQLite header followed
    // by garbage.
    let real = dir.path().join("real.db");
    {
        let store = open(&real).await;
        store.spawn(new_process("p", "{}")).await.expect("spawn");
    }
    let bytes = std::fs::read(&real).expect("read");
    assert!(bytes.len() > 4096, "store file should hold several pages");
    let mut garbage = bytes[..100].to_vec();
    garbage.extend((0..8000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    for (name, content) in [
        ("short.db", bytes[..40].to_vec()),
        ("half-page.db", bytes[..2000].to_vec()),
        ("one-page.db", bytes[..4096].to_vec()),
        ("garbage.db", garbage),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).expect("write");
        // Cut short: a truncated database; whole but garbled: not ours.
        match SqliteStore::open(&path).await {
            Err(StoreError::NotSteadfast { .. } | StoreError::Corrupt(_)) => {}
            other => panic!("{name}: expected NotSteadfast or Corrupt, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).expect("read"),
            content,
            "{name} changed"
        );
    }
}

#[tokio::test]
async fn newer_schema_is_rejected_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.db");
    drop(open(&path).await);
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute(
            "UPDATE steadfast_meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .expect("update");
    }
    let before = std::fs::read(&path).expect("read");
    match SqliteStore::open(&path).await {
        Err(StoreError::NewerSchema {
            found, supported, ..
        }) => {
            assert_eq!(found, 99);
            assert_eq!(supported, steadfast_sqlite::SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[tokio::test]
async fn empty_files_and_concurrent_opens_initialize_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").expect("write");
    let (a, b) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
    let (a, b) = (a.expect("open a"), b.expect("open b"));
    a.spawn(new_process("p", "{}")).await.expect("spawn");
    assert_eq!(b.get(&pid("p")).await.expect("get").kind, "order");
    assert_eq!(a.path(), path.as_path());
}

#[tokio::test]
async fn missing_file_without_create_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.db");
    let result =
        SqliteStore::open_with(&path, SqliteOptions::default().create_if_missing(false)).await;
    assert!(result.is_err());
    assert!(!path.exists());
}

#[tokio::test]
async fn reopening_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keep.db");
    let host = HostId::new("h");
    {
        let store = open(&path).await;
        store.spawn(new_process("a", "1")).await.expect("spawn");
        let claimed = store.claim(&host, now(), LONG, 10).await.expect("claim");
        store
            .append(&claimed[0].lease, entry(0, "first"))
            .await
            .expect("append");
        store
            .finish(
                &claimed[0].lease,
                Finish::Completed {
                    output: "\"ok\"".to_owned(),
                },
                now(),
            )
            .await
            .expect("finish");
    }
    let store = open(&path).await;
    let record = store.get(&pid("a")).await.expect("get");
    assert_eq!(record.status, Status::Completed);
    assert_eq!(record.output.as_deref(), Some("\"ok\""));
    assert_eq!(record.owner, None);
    assert_eq!(record.wake_at, None);
    let journal = store.journal(&pid("a")).await.expect("journal");
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].name, "first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_under_concurrency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_with(
        dir.path().join("busy.db"),
        SqliteOptions::default().max_batch(64),
    )
    .await
    .expect("open");
    let host = HostId::new("h");
    for i in 0..50 {
        store
            .spawn(new_process(&format!("p{i:02}"), "{}"))
            .await
            .expect("spawn");
    }
    let claimed = store.claim(&host, now(), LONG, 100).await.expect("claim");
    assert_eq!(claimed.len(), 50);
    let mut tasks = Vec::new();
    for c in claimed {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..20 {
                store
                    .append(&c.lease, entry(seq, &format!("step-{seq}")))
                    .await
                    .expect("append");
            }
            // A duplicate fails alone, without harming the batch around it.
            let dup = store.append(&c.lease, entry(0, "step-0")).await;
            assert!(matches!(dup, Err(StoreError::DuplicateEntry { .. })));
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for i in 0..50 {
        let journal = store
            .journal(&pid(&format!("p{i:02}")))
            .await
            .expect("journal");
        assert_eq!(journal.len(), 20);
        assert!(journal.windows(2).all(|w| w[0].seq < w[1].seq));
    }
}

#[tokio::test]
async fn lifecycle_and_fencing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("life.db")).await;
    let (a, b) = (HostId::new("a"), HostId::new("b"));
    let id = pid("order-1");

    assert_eq!(
        store
            .spawn(new_process("order-1", "1"))
            .await
            .expect("spawn"),
        SpawnOutcome::Created
    );
    assert!(matches!(
        store.spawn(new_process("order-1", "1")).await,
        Ok(SpawnOutcome::Existing(_))
    ));
    assert!(matches!(
        store.spawn(new_process("order-1", "2")).await,
        Err(StoreError::SpawnConflict { .. })
    ));

    let t0 = now();
    let first = store
        .claim(&a, t0, Duration::from_secs(1), 1)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    assert!(
        store
            .claim(&b, t0, LONG, 1)
            .await
            .expect("claim")
            .is_empty()
    );
    // After the lease expires another host takes over; the old lease is fenced.
    let later = t0 + Duration::from_secs(2);
    let second = store.claim(&b, later, LONG, 1).await.expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].lease.epoch, first[0].lease.epoch + 1);
    assert!(matches!(
        store.append(&first[0].lease, entry(0, "x")).await,
        Err(StoreError::Fenced { .. })
    ));
    let lease = second[0].lease.clone();
    store.append(&lease, entry(0, "x")).await.expect("append");

    // Suspend waiting for a signal; a signal wakes it up.
    let s = Suspension {
        wake_at: None,
        waiting_for: vec!["paid".to_owned()],
        parked_at: Vec::new(),
        now: later,
    };
    assert_eq!(
        store.suspend(&lease, s.clone()).await.expect("suspend"),
        SuspendOutcome::Suspended
    );
    let rec = store.get(&id).await.expect("get");
    assert_eq!(rec.status, Status::Suspended);
    assert_eq!(rec.waiting_for, vec!["paid".to_owned()]);
    assert_eq!(rec.wake_at, None);
    assert_eq!(store.next_wake().await.expect("next_wake"), None);
    let sig = store
        .signal(&id, "paid", "42", later)
        .await
        .expect("signal");
    assert_eq!(store.get(&id).await.expect("get").wake_at, Some(later));
    let third = store.claim(&a, later, LONG, 5).await.expect("claim");
    assert_eq!(third[0].signals.len(), 1);
    assert_eq!(third[0].journal.len(), 1);
    let lease = third[0].lease.clone();
    // The signal is pending, so suspending for it changes nothing.
    assert!(matches!(
        store.suspend(&lease, s).await.expect("suspend"),
        SuspendOutcome::SignalsPending(p) if p.len() == 1 && p[0].id == sig
    ));
    let mut wait = entry(1, "wait-paid");
    wait.kind = EntryKind::Wait;
    wait.consumed_signal = Some(sig);
    store.append(&lease, wait).await.expect("append");
    assert!(
        store
            .pending_signals(&id)
            .await
            .expect("pending")
            .is_empty()
    );
    let journal = store.journal(&id).await.expect("journal");
    assert_eq!(journal[1].consumed_signal, Some(sig));

    // Cancel while a live host holds it: requested, and appends then fail.
    assert_eq!(
        store.cancel(&id, later).await.expect("cancel"),
        Status::Running
    );
    assert!(matches!(
        store.append(&lease, entry(2, "y")).await,
        Err(StoreError::CancelRequested(_))
    ));
    store
        .finish(&lease, Finish::Cancelled, later)
        .await
        .expect("finish");
    let rec = store.get(&id).await.expect("get");
    assert_eq!(rec.status, Status::Cancelled);
    assert!(!rec.cancel_requested);
    assert!(matches!(
        store.signal(&id, "paid", "1", later).await,
        Err(StoreError::InvalidState { .. })
    ));
    assert!(matches!(
        store.signal(&pid("nope"), "paid", "1", later).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.retry(&id, later).await,
        Err(StoreError::InvalidState { .. })
    ));

    // Blocked, then retried.
    store
        .spawn(new_process("order-2", "1"))
        .await
        .expect("spawn");
    let c = store.claim(&a, later, LONG, 5).await.expect("claim");
    store
        .finish(
            &c[0].lease,
            Finish::Blocked {
                step: Some("charge".to_owned()),
                reason: "journal does not fit".to_owned(),
                location: None,
            },
            later,
        )
        .await
        .expect("finish");
    let rec = store.get(&pid("order-2")).await.expect("get");
    assert_eq!(rec.status, Status::Blocked);
    assert_eq!(rec.blocked_step.as_deref(), Some("charge"));
    store.retry(&pid("order-2"), later).await.expect("retry");
    let rec = store.get(&pid("order-2")).await.expect("get");
    assert_eq!(
        (rec.status, rec.error, rec.wake_at),
        (Status::Running, None, Some(later))
    );

    // Renew and release.
    let c = store.claim(&a, later, LONG, 5).await.expect("claim");
    assert_eq!(c.len(), 1);
    assert_eq!(
        store
            .renew(&a, &[c[0].lease.clone()], later, LONG)
            .await
            .expect("renew"),
        1
    );
    assert_eq!(store.release(&a, later).await.expect("release"), 1);
    let rec = store.get(&pid("order-2")).await.expect("get");
    assert_eq!((rec.owner, rec.wake_at), (None, Some(later)));
    assert!(matches!(
        store.append(&c[0].lease, entry(0, "z")).await,
        Err(StoreError::Fenced { .. })
    ));
    // Not running, not held: cancelled at once.
    assert_eq!(
        store.cancel(&pid("order-2"), later).await.expect("cancel"),
        Status::Cancelled
    );
}

#[tokio::test]
async fn list_counts_and_prefixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("list.db")).await;
    for id in ["a/1", "a/2", "a/3", "a0", "b/1", "aé", "a"] {
        store.spawn(new_process(id, "{}")).await.expect("spawn");
    }
    let ids = |v: Vec<steadfast_core::Listed>| -> Vec<String> {
        v.into_iter().map(|r| r.id().to_owned()).collect()
    };
    let all = store.list(&ListFilter::default()).await.expect("list");
    assert_eq!(ids(all), ["a", "a/1", "a/2", "a/3", "a0", "aé", "b/1"]);
    let prefixed = store
        .list(&ListFilter {
            id_prefix: Some("a/".to_owned()),
            ..ListFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(prefixed), ["a/1", "a/2", "a/3"]);
    let page = store
        .list(&ListFilter {
            id_prefix: Some("a".to_owned()),
            after: Some(pid("a/2")),
            limit: 2,
            ..ListFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(page), ["a/3", "a0"]);
    let none = store
        .list(&ListFilter {
            status: Some(Status::Completed),
            kind: Some("order".to_owned()),
            ..ListFilter::default()
        })
        .await
        .expect("list");
    assert!(none.is_empty());
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.by_status.len(), 1);
    assert_eq!(
        (counts.by_status[0].status, counts.by_status[0].count),
        (Status::Running, 7)
    );
    assert!(matches!(
        store.journal(&pid("zzz")).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn corrupt_rows_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.db");
    let store = open(&path).await;
    store.spawn(new_process("bad", "{}")).await.expect("spawn");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute(
            "UPDATE processes SET status = 'sleeping' WHERE id = 'bad'",
            [],
        )
        .expect("update");
    }
    match store.get(&pid("bad")).await {
        Err(StoreError::CorruptRow(e)) => {
            assert_eq!((e.table.as_str(), e.row.as_str()), ("processes", "bad"));
            assert_eq!(e.column, "status");
            assert!(e.detail.contains("sleeping"), "{e}");
        }
        other => panic!("expected CorruptRow, got {other:?}"),
    }
}

/// Rewind reads the status like every other write: a status that does not
/// decode is a `CorruptRow` naming the column, and nothing is changed.
#[tokio::test]
async fn rewind_reports_a_corrupt_status_as_a_corrupt_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt-rewind.db");
    let store = open(&path).await;
    store.spawn(new_process("bad", "{}")).await.expect("spawn");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute(
            "UPDATE processes SET status = 'sleeping' WHERE id = 'bad'",
            [],
        )
        .expect("update");
    }
    match store
        .rewind(&pid("bad"), "step", Timestamp::from_micros(1))
        .await
    {
        Err(StoreError::CorruptRow(e)) => {
            assert_eq!((e.table.as_str(), e.row.as_str()), ("processes", "bad"));
            assert_eq!(e.column, "status");
            assert!(e.detail.contains("sleeping"), "{e}");
        }
        other => panic!("expected CorruptRow, got {other:?}"),
    }
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let status: String = conn
        .query_row("SELECT status FROM processes WHERE id = 'bad'", [], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(status, "sleeping", "nothing stored changed");
}

#[tokio::test]
async fn dead_host_in_this_process_is_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hosts.db");
    let a = open(&path).await;
    let b = open(&path).await;
    a.spawn(new_process("p", "{}")).await.expect("spawn");
    let claimed = a
        .claim(&HostId::new("host-a"), now(), LONG, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let host_b = HostId::new("host-b");
    // A is alive: B does not get the process.
    assert!(
        b.claim(&host_b, now(), LONG, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    drop(a);
    // Dead-host checks run at most every 500 ms: claim until B sees A dead.
    let started = std::time::Instant::now();
    let taken = loop {
        let taken = b.claim(&host_b, now(), LONG, 10).await.expect("claim");
        if !taken.is_empty() {
            break taken;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the dead host's process was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].lease.epoch, claimed[0].lease.epoch + 1);
}

/// Kills the child process if the test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CHILD_ENV: &str = "STEADFAST_SQLITE_TEST_CHILD_DB";

/// The child process of `killed_host_in_another_process_is_taken_over`
/// (that test run again with [`CHILD_ENV`] set): claims and holds a lease
/// until it is killed.
async fn child_host_holding_a_lease(path: &str) {
    let store = open(Path::new(path)).await;
    let claimed = store
        .claim(&HostId::new("child-host"), now(), LONG, 10)
        .await
        .expect("claim");
    println!("\nchild-host claimed {}", claimed.len());
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn killed_host_in_another_process_is_taken_over() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return child_host_holding_a_lease(&path).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("killed.db");
    let store = open(&path).await;
    store.spawn(new_process("p", "{}")).await.expect("spawn");

    let mut child = KillOnDrop(
        OsCommand::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "killed_host_in_another_process_is_taken_over",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("child-host ").map(str::to_owned))
    })
    .await
    .expect("reader");
    assert_eq!(line.as_deref(), Some("claimed 1"));

    let host = HostId::new("parent-host");
    assert!(
        store
            .claim(&host, now(), LONG, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // Close our store (which checkpoints the WAL: the child's claim is in
    // the database file now), then kill the child holding the lease.
    drop(store);
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("wait");
    let store = open(&path).await;
    let taken = store.claim(&host, now(), LONG, 10).await.expect("claim");
    assert_eq!(
        taken.len(),
        1,
        "the killed host's process is claimable at once"
    );
}

/// One way of corrupting the process `bad` (its row, journal or signals),
/// the column the error must name and a piece of the value it must show.
struct Corruption {
    sql: &'static str,
    column: &'static str,
    value: &'static str,
}

const CORRUPTIONS: &[Corruption] = &[
    Corruption {
        sql: "UPDATE processes SET status = 'bogus' WHERE id = 'bad'",
        column: "status",
        value: "bogus",
    },
    Corruption {
        sql: "UPDATE processes SET created_at = 'yesterday' WHERE id = 'bad'",
        column: "created_at",
        value: "yesterday",
    },
    Corruption {
        sql: "UPDATE processes SET version = -1 WHERE id = 'bad'",
        column: "version",
        value: "-1",
    },
    Corruption {
        sql: "UPDATE processes SET generation = 'many' WHERE id = 'bad'",
        column: "generation",
        value: "many",
    },
    Corruption {
        sql: "UPDATE processes SET cancel_requested = 'maybe' WHERE id = 'bad'",
        column: "cancel_requested",
        value: "maybe",
    },
    Corruption {
        sql: "UPDATE processes SET kind = CAST(x'ff' AS TEXT) WHERE id = 'bad'",
        column: "kind",
        value: "\u{fffd}",
    },
    Corruption {
        sql: "UPDATE processes SET input = x'00ff' WHERE id = 'bad'",
        column: "input",
        value: "blob",
    },
    Corruption {
        sql: "UPDATE processes SET parent = '' WHERE id = 'bad'",
        column: "parent",
        value: "empty",
    },
    Corruption {
        sql: "UPDATE journal SET kind = 'bogus' WHERE process_id = 'bad'",
        column: "kind",
        value: "bogus",
    },
    Corruption {
        sql: "UPDATE journal SET status = 'weird' WHERE process_id = 'bad'",
        column: "status",
        value: "weird",
    },
    Corruption {
        sql: "UPDATE journal SET attempts = -3 WHERE process_id = 'bad'",
        column: "attempts",
        value: "-3",
    },
    Corruption {
        sql: "UPDATE journal SET outcome = CAST(x'ff' AS TEXT) WHERE process_id = 'bad'",
        column: "outcome",
        value: "\u{fffd}",
    },
    Corruption {
        sql: "UPDATE signals SET payload = CAST(x'fe' AS TEXT) WHERE process_id = 'bad'",
        column: "payload",
        value: "\u{fffd}",
    },
    Corruption {
        sql: "UPDATE signals SET sent_at = 'noon' WHERE process_id = 'bad'",
        column: "sent_at",
        value: "noon",
    },
];

/// A store with `bad` (claimed once: one journal entry, one pending signal,
/// due again) and two good processes, then `sql` applied behind its back.
async fn store_with_corruption(path: &Path, sql: &str) -> SqliteStore {
    let store = open(path).await;
    store.spawn(new_process("bad", "{}")).await.expect("spawn");
    let t0 = now();
    let lease = store
        .claim(&HostId::new("setup"), t0, LONG, 10)
        .await
        .expect("claim")
        .remove(0)
        .lease;
    store.append(&lease, entry(0, "s1")).await.expect("append");
    store
        .signal(&pid("bad"), "go", "{\"n\":1}", t0)
        .await
        .expect("signal");
    let t1 = now();
    store
        .suspend(
            &lease,
            Suspension {
                wake_at: Some(t1),
                waiting_for: vec![],
                parked_at: vec![],
                now: t1,
            },
        )
        .await
        .expect("suspend");
    for id in ["good-1", "good-2"] {
        store.spawn(new_process(id, "{}")).await.expect("spawn");
    }
    let conn = rusqlite::Connection::open(path).expect("sqlite");
    conn.execute(sql, []).expect("corrupt");
    store
}

/// Decoding goes row by row: a corrupt row (or journal or signal row) of one
/// process is parked as blocked with a reason naming it and is skipped;
/// claims still return every other process, and `list`, `counts` and `get`
/// answer, showing the corrupt row as such.
#[tokio::test]
async fn a_corrupt_row_is_parked_and_nothing_else_is_affected() {
    for c in CORRUPTIONS {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_corruption(&dir.path().join("c.db"), c.sql).await;
        let claimed = store
            .claim(&HostId::new("worker"), now(), LONG, 10)
            .await
            .unwrap_or_else(|e| panic!("{}: claim failed: {e}", c.sql));
        let mut ids: Vec<&str> = claimed.iter().map(|c| c.record.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["good-1", "good-2"], "{}", c.sql);

        // `get` names the row and the column, or the row was parked as
        // blocked with a reason that does.
        let named = |text: &str| {
            assert!(
                text.contains("bad") && text.contains(c.column) && text.contains(c.value),
                "{}: {text:?} must name the row, the column {} and the value {:?}",
                c.sql,
                c.column,
                c.value
            );
        };
        match store.get(&pid("bad")).await {
            Ok(record) => {
                assert_eq!(record.status, Status::Blocked, "{}: {record:?}", c.sql);
                named(record.error.as_deref().unwrap_or_default());
                assert_eq!(record.wake_at, None);
                assert_eq!(record.owner, None);
            }
            Err(StoreError::CorruptRow(e)) => {
                assert_eq!(e.table, "processes", "{}", c.sql);
                named(&e.to_string());
            }
            Err(other) => panic!("{}: get failed with {other:?}", c.sql),
        }
        // Not claimed again.
        assert!(
            store
                .claim(&HostId::new("worker-2"), now() + LONG + LONG, LONG, 10)
                .await
                .expect("claim")
                .iter()
                .all(|c| c.record.id.as_str() != "bad"),
            "{}: a parked process is not claimed again",
            c.sql
        );

        let listed = store.list(&ListFilter::default()).await.expect("list");
        let ids: Vec<&str> = listed.iter().map(|r| r.id()).collect();
        assert_eq!(ids, ["bad", "good-1", "good-2"], "{}", c.sql);
        for row in &listed[1..] {
            assert!(row.record().is_some(), "{}: {row:?}", c.sql);
        }
        if let steadfast_core::Listed::Unreadable { error, .. } = &listed[0] {
            named(&error.to_string());
        }
        let counts = store.counts().await.expect("counts");
        assert_eq!(counts.total(), 3, "{}: {counts:?}", c.sql);
        store
            .parked_counts("order")
            .await
            .unwrap_or_else(|e| panic!("{}: parked_counts failed: {e}", c.sql));
        store.next_wake().await.expect("next_wake");
    }
}

/// A corrupt `id` (not UTF-8) and garbage in columns a claim rewrites: the
/// row is parked by its rowid, or repaired by the claim.
#[tokio::test]
async fn rows_with_undecodable_ids_or_garbage_in_rewritten_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ids.db");
    let store = store_with_corruption(
        &path,
        "UPDATE processes SET id = CAST(x'62ff' AS TEXT), waiting_for = 'nope',
             parked_at = '{' WHERE id = 'bad'",
    )
    .await;
    let listed = store.list(&ListFilter::default()).await.expect("list");
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().any(
            |r| matches!(r, steadfast_core::Listed::Unreadable { id, .. } if id == "b\u{fffd}")
        ),
        "{listed:?}"
    );
    let claimed = store
        .claim(&HostId::new("worker"), now(), LONG, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let (status, error): (String, String) = conn
        .query_row(
            "SELECT status, error FROM processes WHERE id = CAST(x'62ff' AS TEXT)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the parked row");
    assert_eq!(status, "blocked");
    assert!(error.contains("column id"), "{error}");
}

/// The migration that adds `parent` derives it once for children spawned
/// by `Process::child` before (id `<parent>/<name>` and the parent's step
/// `<name>: spawned`), and for no other id with a slash.
#[tokio::test]
async fn the_parent_migration_derives_parents_of_earlier_children_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    {
        let store = open(&path).await;
        for id in ["o", "o/payment", "o/other"] {
            store.spawn(new_process(id, "{}")).await.expect("spawn");
        }
        let lease = store
            .claim(&HostId::new("h"), now(), LONG, 10)
            .await
            .expect("claim")
            .into_iter()
            .find(|c| c.record.id.as_str() == "o")
            .expect("o")
            .lease;
        store
            .append(&lease, entry(0, "payment: spawned"))
            .await
            .expect("append");
        store
            .append(&lease, entry(1, "other"))
            .await
            .expect("append");
    }
    // Back to the schema before the column, as an older build left it (the
    // column's migration is 7, the history's and the sort indexes' 8, the
    // signals' message ids 9, the subscription reports 10, the trace
    // contexts 11).
    assert_eq!(steadfast_sqlite::SCHEMA_VERSION, 11, "undoes 7 to 11");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch(&format!(
            "ALTER TABLE processes DROP COLUMN traceparent;
             ALTER TABLE signals DROP COLUMN traceparent;
             DROP TABLE subscriptions;
             DROP INDEX signals_message_id;
             ALTER TABLE signals DROP COLUMN message_id;
             DROP TABLE events;
             DROP INDEX processes_created;
             DROP INDEX processes_updated;
             DROP INDEX processes_parent;
             ALTER TABLE processes DROP COLUMN parent;
             UPDATE steadfast_meta SET value = '{}' WHERE key = 'schema_version';",
            steadfast_sqlite::SCHEMA_VERSION - 5
        ))
        .expect("downgrade");
    }
    let store = open(&path).await;
    let parent = |id: &'static str| {
        let store = &store;
        async move { store.get(&pid(id)).await.expect("get").parent }
    };
    assert_eq!(parent("o/payment").await, Some(pid("o")));
    assert_eq!(parent("o/other").await, None);
    assert_eq!(parent("o").await, None);
    // A process from before the stored history has none, and gets entries
    // from the upgrade on.
    assert_eq!(store.events(&pid("o")).await.expect("events"), vec![]);
    // Still under its old lease: the cancel is requested.
    let status = store.cancel(&pid("o/other"), now()).await.expect("cancel");
    assert_eq!(status, steadfast_core::Status::Running);
    let kinds: Vec<_> = store
        .events(&pid("o/other"))
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [steadfast_core::EventKind::CancelRequested]);
}
