//! Host liveness through advisory file locks, so that the leases of a host
//! killed on this machine are taken over at once instead of after expiry.
//!
//! A host (owner) that claims through a store holds an exclusive `flock` on
//! `<db file name>.hosts/<owner>.lock` until the store is dropped or the
//! owner is released. Another store that can take that lock (or finds no
//! file) knows the owner is gone.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a store looks for dead owners at most.
const REAP_INTERVAL: Duration = Duration::from_millis(500);
/// How long to leave an owner alone whose lock someone else holds.
const CONTENDED_BACKOFF: Duration = Duration::from_secs(5);

/// Whether an owner's host is still running.
pub(crate) enum Liveness {
    /// Its lock is held.
    Alive,
    /// Its lock file is gone or was free; the lock (if any) is held until
    /// [`Hosts::bury`] removes the file.
    Dead(Option<(File, PathBuf)>),
}

struct Held {
    file: File,
    path: PathBuf,
}

/// The host locks one store holds, and the bookkeeping for dead-host checks.
pub(crate) struct Hosts {
    dir: PathBuf,
    held: HashMap<String, Held>,
    contended: HashMap<String, Instant>,
    last_reap: Option<Instant>,
}

impl Hosts {
    /// Lock files live in `<db file name>.hosts/` next to the database.
    pub(crate) fn new(db_path: &Path) -> Hosts {
        let name = db_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "steadfast".to_owned());
        let parent = db_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Hosts {
            dir: parent.join(format!("{name}.hosts")),
            held: HashMap::new(),
            contended: HashMap::new(),
            last_reap: None,
        }
    }

    fn lock_path(&self, owner: &str) -> PathBuf {
        self.dir.join(lock_file_name(owner))
    }

    /// Whether this store holds `owner`'s lock.
    pub(crate) fn holds(&self, owner: &str) -> bool {
        self.held.contains_key(owner)
    }

    /// Takes `owner`'s lock unless this store already holds it. Failures are
    /// logged, not returned: the lock only speeds up recovery.
    pub(crate) fn ensure_held(&mut self, owner: &str) {
        if self.held.contains_key(owner) {
            return;
        }
        if self
            .contended
            .get(owner)
            .is_some_and(|since| since.elapsed() < CONTENDED_BACKOFF)
        {
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot create the host lock directory");
            return;
        }
        let path = self.lock_path(owner);
        // A checker that found the owner dead may delete the file between our
        // open and our lock; retry until the locked file is the one at `path`.
        for _ in 0..20 {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot create a host lock file");
                    return;
                }
            };
            match fs4::FileExt::try_lock(&file) {
                Ok(()) if same_file(&file, &path) => {
                    self.contended.remove(owner);
                    self.held.insert(owner.to_owned(), Held { file, path });
                    return;
                }
                Ok(()) => {}
                Err(fs4::TryLockError::WouldBlock) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(fs4::TryLockError::Error(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot lock a host lock file");
                    return;
                }
            }
        }
        tracing::warn!(
            owner,
            "another store holds this host's lock; host ids should be unique per store"
        );
        self.contended.insert(owner.to_owned(), Instant::now());
    }

    /// Drops `owner`'s lock and removes its file.
    pub(crate) fn release(&mut self, owner: &str) {
        if let Some(held) = self.held.remove(owner) {
            remove(&held.path);
            drop(held.file);
        }
    }

    /// When the last dead-host check ran, for [`Hosts::undo_reap`].
    pub(crate) fn last_reap(&self) -> Option<Instant> {
        self.last_reap
    }

    /// Forgets the dead-host checks since `mark` (their writes were rolled
    /// back), so the next claim checks again.
    pub(crate) fn undo_reap(&mut self, mark: Option<Instant>) {
        self.last_reap = mark;
    }

    /// Whether a dead-host check is due (at most every 500 ms); marks it done.
    pub(crate) fn reap_due(&mut self) -> bool {
        let due = self
            .last_reap
            .is_none_or(|at| at.elapsed() >= REAP_INTERVAL);
        if due {
            self.last_reap = Some(Instant::now());
        }
        due
    }

    /// Checks whether `owner`'s host is alive, without waiting.
    pub(crate) fn probe(&self, owner: &str) -> Liveness {
        if self.holds(owner) {
            return Liveness::Alive;
        }
        let path = self.lock_path(owner);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Liveness::Dead(None),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot open a host lock file");
                return Liveness::Alive;
            }
        };
        match fs4::FileExt::try_lock(&file) {
            // The file was replaced meanwhile: look again next time.
            Ok(()) if !same_file(&file, &path) => Liveness::Alive,
            Ok(()) => Liveness::Dead(Some((file, path))),
            Err(_) => Liveness::Alive,
        }
    }

    /// Removes a dead owner's lock file, then lets go of its lock.
    pub(crate) fn bury(&self, dead: Liveness) {
        if let Liveness::Dead(Some((file, path))) = dead {
            remove(&path);
            drop(file);
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (_, held) in self.held.drain() {
            remove(&held.path);
            drop(held.file);
        }
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != ErrorKind::NotFound
    {
        tracing::debug!(path = %path.display(), error = %e, "cannot remove a host lock file");
    }
}

/// Whether `file` is still the file at `path` (not deleted or replaced).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `file` is still the file at `path` (Windows does not delete
/// open files, so it always is while it exists).
#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// A file name for an owner id: safe characters kept (at most 64), the rest
/// replaced, plus a stable hash of the full id so distinct ids never share a
/// file.
pub(crate) fn lock_file_name(owner: &str) -> String {
    let mut name: String = owner
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // FNV-1a: stable across processes and builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in owner.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    name.push_str(&format!("-{hash:016x}.lock"));
    name
}

#[cfg(test)]
mod tests {
    use super::lock_file_name;

    #[test]
    fn lock_file_names_are_safe_and_distinct() {
        let a = lock_file_name("host/1");
        let b = lock_file_name("host_1");
        assert_ne!(a, b);
        assert!(a.starts_with("host_1-"));
        assert!(!lock_file_name("../../etc/passwd").contains('/'));
        assert!(lock_file_name(&"x".repeat(1000)).len() < 100);
    }
}
