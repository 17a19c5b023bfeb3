//! What the SQLite store does to the files on disk: reads change nothing,
//! a clean close leaves the database file complete on its own, and damaged,
//! foreign or read-only files get their own messages and keep no side files.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use steadfast_core::{
    EntryKind, EntryStatus, HostId, JournalEntry, ListFilter, NewProcess, ProcessId, Store,
    StoreAdmin, StoreError, Timestamp,
};
use steadfast_sqlite::{Access, SqliteOptions, SqliteStore};

fn pid(s: &str) -> ProcessId {
    ProcessId::new(s).expect("valid id")
}

fn new_process(id: &str) -> NewProcess {
    NewProcess {
        id: pid(id),
        kind: "order".to_owned(),
        version: 1,
        input: "{}".to_owned(),
        now: Timestamp::now_system(),
        parent: None,
        traceparent: None,
    }
}

fn side(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The bytes and modification time of a file, and which side files exist.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    len: usize,
    /// A hash of the bytes (equal bytes, equal hash).
    hash: u64,
    modified: SystemTime,
    wal: bool,
    shm: bool,
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn snapshot(path: &Path) -> Snapshot {
    Snapshot {
        len: std::fs::read(path).expect("read").len(),
        hash: hash(&std::fs::read(path).expect("read")),
        modified: std::fs::metadata(path)
            .and_then(|m| m.modified())
            .expect("mtime"),
        wal: side(path, "-wal").exists(),
        shm: side(path, "-shm").exists(),
    }
}

/// A store with `n` processes, each with one journal entry, closed cleanly.
async fn filled(path: &Path, n: usize) {
    let store = SqliteStore::open(path).await.expect("open");
    for i in 0..n {
        store
            .spawn(new_process(&format!("p{i}")))
            .await
            .expect("spawn");
    }
    let claimed = store
        .claim(
            &HostId::new("h"),
            Timestamp::now_system(),
            std::time::Duration::from_secs(60),
            n,
        )
        .await
        .expect("claim");
    for c in &claimed {
        let entry = JournalEntry {
            seq: 1,
            name: "charge".to_owned(),
            kind: EntryKind::Step,
            status: EntryStatus::Completed,
            outcome: Some("\"ok\"".repeat(100)),
            attempts: 1,
            started_at: Timestamp::now_system(),
            finished_at: Some(Timestamp::now_system()),
            due_at: None,
            location: None,
            consumed_signal: None,
        };
        store.append(&c.lease, entry).await.expect("append");
    }
    store.close().await.expect("close");
}

async fn read_everything(store: &SqliteStore) -> usize {
    let list = store
        .list(&ListFilter {
            limit: 10_000,
            ..ListFilter::default()
        })
        .await
        .expect("list");
    for r in &list {
        store
            .journal(&ProcessId::new(r.id()).expect("a stored id"))
            .await
            .expect("journal");
    }
    store.counts().await.expect("counts");
    list.len()
}

#[tokio::test]
async fn reading_changes_no_file_and_leaves_no_side_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    filled(&path, 20).await;
    let before = snapshot(&path);
    assert!(
        !before.wal && !before.shm,
        "a closed store keeps no side files"
    );
    for access in [Access::ReadOnly, Access::WriteOnDemand] {
        let store = SqliteStore::open_with(&path, SqliteOptions::default().access(access))
            .await
            .expect("open");
        assert_eq!(read_everything(&store).await, 20);
        drop(store);
        assert_eq!(snapshot(&path), before, "{access:?} changed the files");
    }
}

#[tokio::test]
async fn read_only_store_refuses_writes_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.db");
    assert!(SqliteStore::open_read_only(&missing).await.is_err());
    assert!(!missing.exists());

    let path = dir.path().join("app.db");
    filled(&path, 1).await;
    let before = snapshot(&path);
    let store = SqliteStore::open_read_only(&path).await.expect("open");
    match store.spawn(new_process("new")).await {
        Err(StoreError::ReadOnly { detail, .. }) => assert!(detail.contains("read-only")),
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    drop(store);
    assert_eq!(snapshot(&path), before);
}

#[tokio::test]
async fn write_on_demand_opens_the_writer_at_the_first_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    filled(&path, 1).await;
    let store = SqliteStore::open_with(
        &path,
        SqliteOptions::default().access(Access::WriteOnDemand),
    )
    .await
    .expect("open");
    assert_eq!(read_everything(&store).await, 1);
    store.spawn(new_process("new")).await.expect("spawn");
    assert_eq!(read_everything(&store).await, 2);
    store.close().await.expect("close");
    assert!(!side(&path, "-wal").exists());
}

#[tokio::test]
async fn an_empty_file_is_refused_for_reading_and_stays_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").expect("write");
    for access in [Access::ReadOnly, Access::WriteOnDemand] {
        match SqliteStore::open_with(&path, SqliteOptions::default().access(access)).await {
            Err(err @ StoreError::NotSteadfast { .. }) => {
                assert!(err.to_string().contains("empty file"), "{err}");
            }
            other => panic!("expected NotSteadfast, got {other:?}"),
        }
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 0);
        assert!(!side(&path, "-wal").exists() && !side(&path, "-shm").exists());
    }
}

#[tokio::test]
async fn a_clean_close_leaves_the_database_file_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    filled(&path, 300).await;
    let wal = side(&path, "-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).expect("meta").len() == 0,
        "the WAL was not checkpointed at close"
    );
    // The database file alone, copied elsewhere, holds everything.
    let copy_dir = tempfile::tempdir().expect("tempdir");
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&path, &copy).expect("copy");
    let store = SqliteStore::open_read_only(&copy).await.expect("open copy");
    assert_eq!(read_everything(&store).await, 300);
    let journal = store.journal(&pid("p7")).await.expect("journal");
    assert_eq!(journal.len(), 1);
}

#[tokio::test]
async fn closing_one_clone_closes_them_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let clone = store.clone();
    store.spawn(new_process("p")).await.expect("spawn");
    store.close().await.expect("close");
    assert!(matches!(
        clone.spawn(new_process("q")).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        clone.get(&pid("p")).await,
        Err(StoreError::Closed)
    ));
    // Closing twice is harmless.
    clone.close().await.expect("close again");
}

#[tokio::test]
async fn foreign_and_truncated_files_keep_no_side_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A foreign SQLite database in WAL mode, closed cleanly.
    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).expect("sqlite");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
            .expect("create");
    }
    let before = snapshot(&foreign);
    assert!(!before.wal && !before.shm);
    for access in [Access::ReadWrite, Access::ReadOnly] {
        match SqliteStore::open_with(&foreign, SqliteOptions::default().access(access)).await {
            Err(StoreError::NotSteadfast { .. }) => {}
            other => panic!("expected NotSteadfast, got {other:?}"),
        }
        assert_eq!(snapshot(&foreign), before, "{access:?}");
    }

    // A Steadfast database cut short.
    let real = dir.path().join("real.db");
    filled(&real, 50).await;
    let bytes = std::fs::read(&real).expect("read");
    assert!(bytes.len() > 3 * 4096);
    for (name, content) in [
        ("header-only.db", bytes[..60].to_vec()),
        ("half.db", bytes[..bytes.len() / 2].to_vec()),
        ("one-page.db", bytes[..4096].to_vec()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).expect("write");
        let before = snapshot(&path);
        for access in [Access::ReadWrite, Access::ReadOnly] {
            match SqliteStore::open_with(&path, SqliteOptions::default().access(access)).await {
                Err(err @ StoreError::Corrupt(_)) => {
                    let text = err.to_string();
                    assert!(text.contains("truncated"), "{text}");
                    assert!(!text.contains("not a Steadfast database"), "{text}");
                }
                other => panic!("{name}: expected Corrupt, got {other:?}"),
            }
            assert_eq!(snapshot(&path), before, "{name} {access:?}");
        }
    }
}

/// Mounts `dir` read-only at `at` (needs root; `None` when that fails).
fn read_only_mount(dir: &Path, at: &Path) -> Option<Unmount> {
    let run = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    let (d, a) = (dir.to_str()?, at.to_str()?);
    if !run(&["--bind", d, a]) {
        return None;
    }
    let guard = Unmount(at.to_path_buf());
    run(&["-o", "remount,ro,bind", a]).then_some(guard)
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_read_only_file_reads_and_says_so_when_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::create_dir_all(&ro).expect("mkdir");
    filled(&data.join("app.db"), 5).await;
    let Some(_mount) = read_only_mount(&data, &ro) else {
        eprintln!("skipped: cannot mount a read-only bind mount here (needs root)");
        return;
    };
    let path = ro.join("app.db");
    let before = snapshot(&path);
    let store = SqliteStore::open_read_only(&path)
        .await
        .expect("open read-only");
    assert_eq!(read_everything(&store).await, 5);
    drop(store);
    match SqliteStore::open(&path).await {
        Err(err @ StoreError::ReadOnly { .. }) => {
            let text = err.to_string();
            assert!(text.contains("read-only"), "{text}");
            assert!(!text.contains("not a Steadfast database"), "{text}");
        }
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    assert_eq!(snapshot(&path), before);
}
