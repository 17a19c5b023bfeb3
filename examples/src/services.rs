//! Simulated outside services backed by real files, so that what a process
//! did is visible after a crash: a mailbox folder, a user directory and a
//! bank, each keyed by idempotency keys where a real service would be.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A failure of a simulated service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Reading or writing the service's files failed.
    #[error("service I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The service's file holds data it cannot read.
    #[error("service data is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The request was refused for good.
    #[error("{0}")]
    Refused(String),
}

/// All simulated services, under one folder.
#[derive(Debug)]
pub struct Services {
    /// Where sent mails land.
    pub mail: Mailbox,
    /// Registered users.
    pub users: UserDirectory,
    /// Accounts and their transfers.
    pub bank: Bank,
    root: PathBuf,
}

impl Services {
    /// Services keeping their files under `root` (created if missing).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ServiceError> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root)?;
        Ok(Services {
            mail: Mailbox::open(root.join("mail"))?,
            users: UserDirectory {
                file: JsonFile::new(root.join("users.json")),
            },
            bank: Bank {
                file: JsonFile::new(root.join("bank.json")),
            },
            root,
        })
    }

    /// The folder holding the services' files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The log the ten-step workload appends each closure run to.
    pub fn run_log(&self) -> PathBuf {
        self.root.join("step-runs.log")
    }
}

/// A JSON document on disk, rewritten atomically on each change.
#[derive(Debug)]
struct JsonFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl JsonFile {
    fn new(path: PathBuf) -> Self {
        JsonFile {
            path,
            lock: Mutex::new(()),
        }
    }

    fn update<T, R>(
        &self,
        change: impl FnOnce(&mut T) -> Result<R, ServiceError>,
    ) -> Result<R, ServiceError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut doc: T = match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
            Err(e) => return Err(e.into()),
        };
        let result = change(&mut doc)?;
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)?;
        fs::rename(&tmp, &self.path)?;
        Ok(result)
    }
}

/// Sends mails by writing each as a text file into a folder.
#[derive(Debug)]
pub struct Mailbox {
    dir: PathBuf,
}

impl Mailbox {
    fn open(dir: PathBuf) -> Result<Self, ServiceError> {
        fs::create_dir_all(&dir)?;
        Ok(Mailbox { dir })
    }

    /// Sends a mail; the same `key` sends it only once.
    pub async fn send(
        &self,
        key: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<PathBuf, ServiceError> {
        let name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.dir.join(format!("{name}.txt"));
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(path),
            Err(e) => return Err(e.into()),
        };
        writeln!(file, "To: {to}\nSubject: {subject}\n\n{body}")?;
        Ok(path)
    }

    /// Every mail sent so far, as (file name, contents), sorted by name.
    pub fn sent(&self) -> Result<Vec<(String, String)>, ServiceError> {
        let mut mails = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            mails.push((
                entry.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(entry.path())?,
            ));
        }
        mails.sort();
        Ok(mails)
    }
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user's number.
    pub id: u64,
    /// The e-mail address.
    pub email: String,
    /// Whether the e-mail was verified.
    pub active: bool,
}

/// The users, in `users.json`.
#[derive(Debug)]
pub struct UserDirectory {
    file: JsonFile,
}

impl UserDirectory {
    /// Registers `email` (idempotent by e-mail) and returns the user's id.
    pub async fn register(&self, email: &str) -> Result<u64, ServiceError> {
        self.file.update(|users: &mut BTreeMap<String, User>| {
            if let Some(user) = users.get(email) {
                return Ok(user.id);
            }
            let id = users.len() as u64 + 1;
            users.insert(
                email.to_owned(),
                User {
                    id,
                    email: email.to_owned(),
                    active: false,
                },
            );
            Ok(id)
        })
    }

    /// Activates the user with `id`.
    pub async fn activate(&self, id: u64) -> Result<(), ServiceError> {
        self.file.update(|users: &mut BTreeMap<String, User>| {
            let user = users
                .values_mut()
                .find(|u| u.id == id)
                .ok_or_else(|| ServiceError::Refused(format!("no user {id}")))?;
            user.active = true;
            Ok(())
        })
    }

    /// The user registered under `email`.
    pub async fn get(&self, email: &str) -> Result<Option<User>, ServiceError> {
        self.file
            .update(|users: &mut BTreeMap<String, User>| Ok(users.get(email).cloned()))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    balances: BTreeMap<String, i64>,
    /// Holds on money by idempotency key: (account, amount), negative for debits.
    pending: BTreeMap<String, (String, i64)>,
    /// Keys whose hold was applied or released.
    settled: BTreeMap<String, String>,
}

/// Accounts with two-phase transfers: a hold, then completion or rollback.
#[derive(Debug)]
pub struct Bank {
    file: JsonFile,
}

impl Bank {
    /// Opens an account with a balance (replacing any balance it had).
    pub async fn open_account(&self, account: &str, balance: i64) -> Result<(), ServiceError> {
        self.file.update(|l: &mut Ledger| {
            l.balances.insert(account.to_owned(), balance);
            Ok(())
        })
    }

    /// The balance of `account`, holds not counted.
    pub async fn balance(&self, account: &str) -> Result<i64, ServiceError> {
        self.file.update(|l: &mut Ledger| {
            l.balances
                .get(account)
                .copied()
                .ok_or_else(|| ServiceError::Refused(format!("no account {account:?}")))
        })
    }

    /// Starts moving `amount` (negative: out of) `account` under `key`.
    /// A debit beyond the available balance is refused.
    pub async fn hold(&self, key: &str, account: &str, amount: i64) -> Result<(), ServiceError> {
        self.file.update(|l: &mut Ledger| {
            if l.pending.contains_key(key) || l.settled.contains_key(key) {
                return Ok(());
            }
            let balance = *l
                .balances
                .get(account)
                .ok_or_else(|| ServiceError::Refused(format!("no account {account:?}")))?;
            let held: i64 = l
                .pending
                .values()
                .filter(|(a, amt)| a == account && *amt < 0)
                .map(|(_, amt)| amt)
                .sum();
            if amount < 0 && balance + held + amount < 0 {
                return Err(ServiceError::Refused(format!(
                    "insufficient funds on {account:?}: balance {balance}, needed {}",
                    -amount
                )));
            }
            l.pending
                .insert(key.to_owned(), (account.to_owned(), amount));
            Ok(())
        })
    }

    /// Applies the hold `key` to its account's balance.
    pub async fn complete(&self, key: &str) -> Result<(), ServiceError> {
        self.settle(key, true)
    }

    /// Drops the hold `key` without touching the balance.
    pub async fn roll_back(&self, key: &str) -> Result<(), ServiceError> {
        self.settle(key, false)
    }

    fn settle(&self, key: &str, apply: bool) -> Result<(), ServiceError> {
        self.file.update(|l: &mut Ledger| {
            if l.settled.contains_key(key) {
                return Ok(());
            }
            let Some((account, amount)) = l.pending.remove(key) else {
                // Nothing was held under this key: rolling back is a no-op.
                return if apply {
                    Err(ServiceError::Refused(format!("no hold {key:?}")))
                } else {
                    Ok(())
                };
            };
            if apply {
                *l.balances.entry(account).or_default() += amount;
            }
            l.settled.insert(
                key.to_owned(),
                if apply { "completed" } else { "rolled back" }.to_owned(),
            );
            Ok(())
        })
    }
}

impl ServiceError {
    /// As a step error: refusals are permanent, I/O failures retryable.
    pub fn into_step(self) -> steadfast::StepError {
        match self {
            ServiceError::Refused(reason) => steadfast::StepError::permanent(reason),
            other => steadfast::StepError::retryable(other),
        }
    }
}
