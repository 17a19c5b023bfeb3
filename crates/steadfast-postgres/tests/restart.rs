//! PostgreSQL restarted mid-run: a host running 500 processes on a private
//! server that is stopped (`-m immediate`, like a crash) and started again
//! reconnects, loses nothing that was acknowledged, and finishes every
//! process; spawns while the server is down fail retryably and take no
//! effect.
//!
//! The shared test server cannot be restarted (other tests use it), so this
//! test runs its own PostgreSQL 15 cluster in a temporary directory, as the
//! `postgres` OS user when run as root. Skipped with a notice when the
//! PostgreSQL binaries are missing, unless `STEADFAST_REQUIRE_PG=1`.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use steadfast::{HostBuilder, Process, Status, StepFailed, StoreAdmin};
use steadfast_core::{EntryKind, EntryStatus, ProcessId, Store};
use steadfast_postgres::{PostgresOptions, PostgresStore};

/// Where the PostgreSQL server binaries (`initdb`, `pg_ctl`) live:
/// `STEADFAST_PG_BIN` when set, else `pg_config --bindir` when it holds
/// `initdb`, else the newest `/usr/lib/postgresql/<major>/bin` that does.
fn pg_bin() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Some(dir) = std::env::var_os("STEADFAST_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| has_initdb(d));
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| has_initdb(d)) {
        return Some(dir);
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_initdb(bin))
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}
/// Processes spawned before the restart.
const PROCESSES: usize = 500;
/// Processes spawned while the server is down (refused), then again.
const LATE: usize = 5;
/// Steps per process.
const STEPS: usize = 10;
/// Processes the host runs at once (the most runs a restart can cut short).
const CONCURRENCY: usize = 50;
/// How long everything may take to finish after the restart.
const FINISH_WITHIN: Duration = Duration::from_secs(120);

/// A private PostgreSQL cluster in a temporary directory, stopped
/// (immediately) and removed when dropped.
struct Cluster {
    /// The server binaries' directory.
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the binaries through `runuser -u postgres` (we are root).
    as_postgres: bool,
}

impl Cluster {
    /// Creates (`initdb`) and starts a cluster on a free port.
    fn start(bin: PathBuf) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "steadfast-pg-restart-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir).expect("create the cluster directory");
        let as_postgres = is_root();
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid))
                .expect("give the cluster directory to the postgres user");
        }
        let data = cluster.data();
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", describe(&out));
        cluster.port = free_port();
        cluster.pg_start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one PostgreSQL binary (as the `postgres` user when we are root).
    fn run(&self, binary: &str, args: &[&str]) -> Output {
        let program = self.bin.join(binary);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn pg_start(&self) {
        let data = self.data();
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            path_str(&self.dir)
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n--- server log ---\n{}",
            describe(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `pg_ctl -m immediate stop`: like a crash, no checkpoint; whatever was
    /// committed must survive through WAL recovery.
    fn stop_immediate(&self) -> Output {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let out = self.stop_immediate();
            if !out.status.success() {
                eprintln!("stopping the private cluster failed: {}", describe(&out));
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The uid and gid of the `postgres` OS user.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "running as root needs a postgres OS user: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").port()
}

/// How often each `(process, step)` closure ran.
type Runs = Arc<Mutex<HashMap<(String, usize), u32>>>;

fn lock(runs: &Runs) -> MutexGuard<'_, HashMap<(String, usize), u32>> {
    runs.lock().unwrap_or_else(|p| p.into_inner())
}

fn step_value(id: &str, step: usize) -> String {
    format!("{id}/s{step}")
}

/// Ten sequential steps, each a small string; every closure run is counted.
async fn ten_steps(p: Process, runs: Runs) -> Result<Vec<String>, StepFailed> {
    let id = p.id().as_str().to_owned();
    let mut values = Vec::with_capacity(STEPS);
    for i in 0..STEPS {
        let value: String = p
            .step(format!("s{i}"), || {
                *lock(&runs).entry((id.clone(), i)).or_default() += 1;
                let value = step_value(&id, i);
                async move {
                    // Slow enough that the restart finds runs in flight.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(value)
                }
            })
            .await?;
        values.push(value);
    }
    Ok(values)
}

/// How many processes are completed, or `None` while the store is down.
async fn completed(store: &PostgresStore) -> Option<u64> {
    let counts = store.counts().await.ok()?;
    Some(counts.of(Status::Completed))
}

async fn counts_text(store: &PostgresStore) -> String {
    match store.counts().await {
        Ok(counts) => counts
            .by_status
            .iter()
            .map(|c| format!("{}={}", c.status.as_str(), c.count))
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("(cannot count: {e})"),
    }
}

/// The journal of every process in `ids`.
async fn snapshot(
    store: &PostgresStore,
    ids: &[String],
) -> HashMap<String, Vec<steadfast_core::JournalEntry>> {
    let mut all = HashMap::new();
    for id in ids {
        let pid = ProcessId::new(id.as_str()).expect("valid id");
        let journal = store.journal(&pid).await.expect("read a journal");
        all.insert(id.clone(), journal);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run_loses_nothing_and_every_process_finishes() {
    let Some(bin) = pg_bin() else {
        assert!(
            !common::required(),
            "STEADFAST_REQUIRE_PG=1 but no PostgreSQL server binaries (initdb) were found \
             (STEADFAST_PG_BIN, pg_config --bindir, /usr/lib/postgresql/*/bin)"
        );
        common::notice("SKIPPED: the PostgreSQL restart test needs initdb (set STEADFAST_PG_BIN)");
        return;
    };
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(bin))
        .await
        .expect("start the private cluster");
    let url = cluster.url();
    let store = PostgresStore::connect_with(
        &url,
        PostgresOptions::default()
            .max_connections(8)
            .connect_timeout(Duration::from_secs(2)),
    )
    .await
    .expect("connect to the private cluster");

    let runs: Runs = Arc::default();
    let host = {
        let runs = Arc::clone(&runs);
        HostBuilder::new(store.clone())
            .max_concurrency(CONCURRENCY)
            .register("ten_steps", move |p: Process, _n: u32| {
                ten_steps(p, Arc::clone(&runs))
            })
            .build()
    };

    // Spawned all at once (group commit keeps this short), so the restart
    // comes while most processes have not finished.
    let ids: Vec<String> = (0..PROCESSES).map(|i| format!("p{i:03}")).collect();
    let mut spawns = tokio::task::JoinSet::new();
    for (n, id) in ids.iter().enumerate() {
        let (host, id) = (host.clone(), id.clone());
        spawns.spawn(async move {
            host.spawn("ten_steps", &id, &n)
                .await
                .unwrap_or_else(|e| panic!("spawn {id}: {e}"))
        });
    }
    while let Some(spawned) = spawns.join_next().await {
        assert_eq!(spawned.expect("a spawn task"), steadfast::Spawned::Created);
    }

    // Restart once some processes have completed (and many are in flight).
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let done = completed(&store).await.unwrap_or(0);
        if done >= 50 {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "nothing completes before the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        (before as usize) < PROCESSES - CONCURRENCY,
        "too much finished before the restart ({before}) for it to test anything"
    );
    let runs_before: u32 = lock(&runs).values().sum();
    // The acknowledged journals: what a read returns just before the stop
    // is committed; every entry of it must survive, byte for byte.
    let acknowledged = snapshot(&store, &ids).await;
    let acknowledged_entries: usize = acknowledged.values().map(Vec::len).sum();
    assert!(
        acknowledged_entries > 0,
        "nothing was acknowledged before the stop"
    );
    let stopped = {
        let cluster = &cluster;
        tokio::task::block_in_place(|| cluster.stop_immediate())
    };
    assert!(
        stopped.status.success(),
        "pg_ctl stop: {}",
        describe(&stopped)
    );
    let down_at = Instant::now();
    eprintln!(
        "server stopped (immediate) with {before} of {PROCESSES} completed, \
         {runs_before} step closures run"
    );

    // While the server is down nothing can be acknowledged.
    let late: Vec<String> = (0..LATE).map(|i| format!("late{i}")).collect();
    for id in &late {
        let err = host
            .spawn("ten_steps", id, &0)
            .await
            .expect_err("a spawn cannot succeed while the server is down");
        assert!(err.is_retryable(), "{id}: not retryable: {err:?}");
    }
    let down_for = Duration::from_secs(1).saturating_sub(down_at.elapsed());
    tokio::time::sleep(down_for).await;
    tokio::task::block_in_place(|| cluster.pg_start());
    let up_at = Instant::now();
    eprintln!("server started again");

    // The refused spawns took no effect: the processes do not exist.
    for id in &late {
        let pid = ProcessId::new(id.as_str()).expect("valid id");
        let err = loop {
            match store.get(&pid).await {
                Ok(record) => panic!("{id} was refused but exists: {record:?}"),
                Err(e) if e.is_retryable() => {
                    assert!(up_at.elapsed() < FINISH_WITHIN, "reads do not recover: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, steadfast::StoreError::NotFound(_)),
            "{id}: {err:?}"
        );
    }
    // Spawning them again works once the writer has reconnected.
    for id in &late {
        loop {
            match host.spawn("ten_steps", id, &0).await {
                Ok(spawned) => {
                    assert_eq!(spawned, steadfast::Spawned::Created, "{id}");
                    break;
                }
                Err(e) => {
                    assert!(e.is_retryable(), "{id}: {e:?}");
                    assert!(
                        up_at.elapsed() < FINISH_WITHIN,
                        "spawns do not recover: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    eprintln!("late spawns accepted {:?} after the start", up_at.elapsed());

    let total = (PROCESSES + LATE) as u64;
    let mut last_report = Instant::now();
    loop {
        if completed(&store).await == Some(total) {
            break;
        }
        if up_at.elapsed() > FINISH_WITHIN {
            let now = steadfast::Timestamp::now_system();
            let mut stuck = Vec::new();
            for id in ids.iter().chain(&late) {
                let pid = ProcessId::new(id.as_str()).expect("valid id");
                match store.get(&pid).await {
                    Ok(r) if r.status != Status::Completed => stuck.push(format!(
                        "{id}: {} owner={:?}{} epoch={} lease ends in {:?}",
                        r.status.as_str(),
                        r.owner,
                        if r.owner.as_deref() == Some(host.id().as_str()) {
                            " (this live host)"
                        } else {
                            ""
                        },
                        r.epoch,
                        r.wake_at.map(|at| at.saturating_since(now))
                    )),
                    Ok(_) => {}
                    Err(e) => stuck.push(format!("{id}: {e}")),
                }
            }
            panic!(
                "not every process finished within {FINISH_WITHIN:?} of the restart ({}); \
                 {} unfinished, e.g.:\n{}",
                counts_text(&store).await,
                stuck.len(),
                stuck
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{:?} after the start: {}",
                up_at.elapsed(),
                counts_text(&store).await
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "all {total} completed {:?} after the start",
        up_at.elapsed()
    );

    // Every entry acknowledged before the stop is still there, identical in
    // every field (outcome, timestamps, attempts, position).
    let after = snapshot(&store, &ids).await;
    for (id, before) in &acknowledged {
        let now = &after[id];
        for entry in before {
            let kept = now.iter().find(|e| e.name == entry.name);
            assert_eq!(
                kept,
                Some(entry),
                "{id}: an entry acknowledged before the restart changed or was lost"
            );
        }
    }
    eprintln!("{acknowledged_entries} acknowledged entries kept across the restart");

    // Every journal holds exactly the ten steps, in order, with their values,
    // and every output is the ten values.
    for id in ids.iter().chain(&late) {
        let pid = ProcessId::new(id.as_str()).expect("valid id");
        let journal = store.journal(&pid).await.expect("read a journal");
        let got: Vec<(String, EntryKind, EntryStatus, Option<String>)> = journal
            .iter()
            .map(|e| (e.name.clone(), e.kind, e.status, e.outcome.clone()))
            .collect();
        let want: Vec<(String, EntryKind, EntryStatus, Option<String>)> = (0..STEPS)
            .map(|i| {
                (
                    format!("s{i}"),
                    EntryKind::Step,
                    EntryStatus::Completed,
                    Some(format!("\"{}\"", step_value(id, i))),
                )
            })
            .collect();
        assert_eq!(got, want, "{id}: the journal");
        let record = store.get(&pid).await.expect("read a process");
        let values: Vec<String> = (0..STEPS)
            .map(|i| format!("\"{}\"", step_value(id, i)))
            .collect();
        assert_eq!(
            record.output.as_deref(),
            Some(format!("[{}]", values.join(",")).as_str()),
            "{id}: the output"
        );
    }

    // Re-runs: only a step cut short by the restart runs again, at most once,
    // and at most one per process in flight.
    let runs = lock(&runs).clone();
    let mut reruns = 0;
    for id in ids.iter().chain(&late) {
        for i in 0..STEPS {
            let n = runs.get(&(id.clone(), i)).copied().unwrap_or(0);
            assert!(
                (1..=2).contains(&n),
                "{id} step s{i} ran {n} times (expected once, twice if cut short)"
            );
            reruns += n - 1;
        }
    }
    assert_eq!(
        runs.len(),
        (PROCESSES + LATE) * STEPS,
        "closures ran for unknown steps"
    );
    eprintln!("{reruns} step closures ran twice");
    assert!(
        reruns as usize <= CONCURRENCY,
        "{reruns} re-runs, more than the {CONCURRENCY} processes in flight"
    );

    host.shutdown().await;
    drop(host);
    drop(store);
    tokio::task::block_in_place(|| drop(cluster));
}
