//! The demo behind `steadfast demo`: the four classic processes on a fast
//! clock, with a worker that is killed with SIGKILL midway and restarted.
//!
//! The worker runs as a real child process (the `steadfast` binary's
//! `worker` command, [`DemoOptions::worker`]), so the crash is a real crash:
//! the demo shows afterwards that every process still reached its end and
//! that no mail was sent twice.

/// `println!` that returns the write's error instead of panicking (a closed
/// pipe ends the demo quietly in the caller).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Services, credit_card, mail_flow, onboarding, register_all, render, transfer};
use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use steadfast::{
    Clock, EntryStatus, Host, HostBuilder, JournalEntry, ProcessId, ProcessRecord, ScaledClock,
    SqliteStore, Status, Store, StoreAdmin, Timestamp,
};

/// How often the demo reads the store.
const TICK: Duration = Duration::from_millis(100);
/// The mail flow's first sleep.
const MONTH: Duration = Duration::from_secs(30 * 86_400);
/// Everything the mail flow sleeps in total.
const YEAR: Duration = Duration::from_secs(365 * 86_400);
/// Kill the worker after this long even if the mail flow was not caught
/// sleeping (on a very slow machine or a very fast clock).
const KILL_AT_THE_LATEST: Duration = Duration::from_secs(6);

/// What the demo runs on.
pub struct DemoOptions {
    /// The demo's database, opened (created when missing) by the caller.
    pub store: SqliteStore,
    /// Its path (the worker child opens it; the worker's log goes next to it).
    pub db_path: PathBuf,
    /// The simulated services' folder.
    pub services: PathBuf,
    /// How much faster than real time the clock runs.
    pub speed: f64,
    /// The `steadfast` binary whose `worker` command runs the processes.
    pub worker: PathBuf,
}

/// Runs the demo: spawns the classic processes, starts a worker child,
/// kills it with SIGKILL while the mail flow sleeps, starts a new one, and
/// prints what every process did.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use steadfast_examples::demo::{DemoOptions, run};
///
/// let store = steadfast::SqliteStore::open("demo.db").await?;
/// run(DemoOptions {
///     store,
///     db_path: "demo.db".into(),
///     services: "demo-services".into(),
///     speed: 2_000_000.0,
///     worker: "target/release/steadfast".into(),
/// })
/// .await
/// # }
/// ```
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let DemoOptions {
        store,
        db_path,
        services: services_dir,
        speed,
        worker: exe,
    } = options;
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed must be a number greater than zero, not {speed}");
    }
    let folder = db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create the folder {}", folder.display()))?;
    let stem = db_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "steadfast".to_owned());
    let log_path = folder.join(format!("{stem}-worker.log"));

    let origin = Timestamp::now_system();
    let clock = ScaledClock::new(origin, speed);
    let services =
        Arc::new(Services::open(&services_dir).with_context(|| {
            format!("cannot open the services folder {}", services_dir.display())
        })?);
    let client = register_all(
        HostBuilder::new(store.clone()).clock(clock.clone()),
        Arc::clone(&services),
    )
    .build_client();

    let month_real = MONTH.as_secs_f64() / speed;
    outln!(
        "Steadfast demo on {}: the clock runs {}× faster than real time (30 days ≈ {}).",
        db_path.display(),
        speed,
        render::duration(Duration::from_secs_f64(month_real)),
    )?;

    let launcher = Launcher {
        exe,
        db: db_path.clone(),
        services: services_dir.clone(),
        speed,
        origin,
        log: log_path.clone(),
    };
    let run = Run::new(origin);
    spawn_all(&client, &services, &run).await?;

    let mut worker = launcher.start()?;
    outln!(
        "▶ worker #1 started (pid {}, a child process; logs in {})\n",
        worker.id(),
        log_path.display()
    )?;

    let ui = Ui::new(&run.tracked);
    let outcome = watch(
        &store,
        &client,
        &clock,
        &launcher,
        &mut worker,
        &run,
        ui,
        speed,
    )
    .await;
    worker.kill();
    outcome?;
    outln!("■ worker stopped\n")?;
    let summarised = summary(&store, &services, &run, &db_path, &log_path).await;
    drop(client);
    // The database file alone holds everything once the demo is over.
    store
        .close()
        .await
        .with_context(|| format!("cannot close {}", db_path.display()))?;
    summarised
}

/// The processes of one demo run.
struct Run {
    onboarding: String,
    mail_flow: String,
    transfer_ok: String,
    transfer_closed: String,
    card: String,
    alice: String,
    bob: String,
    tracked: Vec<Tracked>,
}

/// One process the demo follows.
struct Tracked {
    label: &'static str,
    id: String,
    expect: Status,
}

impl Run {
    /// Fresh ids, suffixed with the start time so re-runs on the same
    /// database start new processes.
    fn new(origin: Timestamp) -> Self {
        let suffix = suffix(origin);
        let id = |name: &str| format!("{name}-{suffix}");
        let tracked = vec![
            Tracked {
                label: "onboarding",
                id: id("onboarding"),
                expect: Status::Completed,
            },
            Tracked {
                label: "mail flow",
                id: id("mail-flow"),
                expect: Status::Completed,
            },
            Tracked {
                label: "transfer",
                id: id("transfer-ok"),
                expect: Status::Completed,
            },
            Tracked {
                label: "transfer (closed)",
                id: id("transfer-to-closed"),
                expect: Status::Failed,
            },
            Tracked {
                label: "credit card",
                id: id("card"),
                expect: Status::Completed,
            },
        ];
        Run {
            onboarding: tracked[0].id.clone(),
            mail_flow: tracked[1].id.clone(),
            transfer_ok: tracked[2].id.clone(),
            transfer_closed: tracked[3].id.clone(),
            card: tracked[4].id.clone(),
            alice: id("alice"),
            bob: id("bob"),
            tracked,
        }
    }
}

/// `20260501-123456-789` from a timestamp's RFC 3339 text.
fn suffix(t: Timestamp) -> String {
    let text = t.to_string();
    let digits = |range: std::ops::Range<usize>| -> Option<String> {
        Some(
            text.get(range)?
                .chars()
                .filter(char::is_ascii_digit)
                .collect(),
        )
    };
    match (digits(0..10), digits(11..19), digits(20..23)) {
        (Some(date), Some(time), Some(ms)) => format!("{date}-{time}-{ms}"),
        _ => t.as_micros().to_string(),
    }
}

/// Opens the bank accounts and spawns the five processes.
async fn spawn_all(client: &Host, services: &Services, run: &Run) -> anyhow::Result<()> {
    services.bank.open_account(&run.alice, 10_000).await?;
    services.bank.open_account(&run.bob, 500).await?;
    let spawn = |kind: &'static str, id: String, input: serde_json::Value| async move {
        client
            .spawn(kind, &id, &input)
            .await
            .with_context(|| format!("spawning {id} failed"))?;
        outln!("  spawned {id:<34} ({kind})")?;
        anyhow::Ok(())
    };
    let email = "ada@example.com";
    spawn(
        onboarding::KIND,
        run.onboarding.clone(),
        serde_json::to_value(onboarding::Signup {
            email: email.to_owned(),
        })?,
    )
    .await?;
    spawn(mail_flow::KIND, run.mail_flow.clone(), email.into()).await?;
    spawn(
        transfer::KIND,
        run.transfer_ok.clone(),
        serde_json::to_value(transfer::Transfer {
            from: run.alice.clone(),
            to: run.bob.clone(),
            amount: 2_500,
        })?,
    )
    .await?;
    spawn(
        transfer::KIND,
        run.transfer_closed.clone(),
        serde_json::to_value(transfer::Transfer {
            from: run.alice.clone(),
            to: format!("{}-closed", run.bob),
            amount: 4_000,
        })?,
    )
    .await?;
    spawn(
        credit_card::KIND,
        run.card.clone(),
        serde_json::to_value(credit_card::Card {
            email: email.to_owned(),
        })?,
    )
    .await?;
    Ok(())
}

/// A process and its journal as read in one tick.
struct Snapshot {
    record: ProcessRecord,
    journal: Vec<JournalEntry>,
}

impl Snapshot {
    fn entry(&self, name: &str) -> Option<&JournalEntry> {
        self.journal.iter().find(|e| e.name == name)
    }

    fn done(&self, name: &str) -> bool {
        self.entry(name)
            .is_some_and(|e| e.status == EntryStatus::Completed)
    }

    fn ended(&self) -> bool {
        self.record.status.is_finished() || self.record.status == Status::Blocked
    }
}

/// Reads every tracked process.
async fn snapshots(store: &SqliteStore, run: &Run) -> anyhow::Result<Vec<Snapshot>> {
    let mut out = Vec::with_capacity(run.tracked.len());
    for t in &run.tracked {
        let id = ProcessId::new(t.id.as_str())?;
        let record = store.get(&id).await?;
        let journal = store.journal(&id).await?;
        out.push(Snapshot { record, journal });
    }
    Ok(out)
}

/// What the demo has done so far.
#[derive(Default)]
struct Progress {
    killed: bool,
    verified: bool,
    paid: bool,
    deleted: bool,
}

/// Follows the processes until all have ended, killing and restarting the
/// worker once and sending the signals along the way.
#[allow(clippy::too_many_arguments)]
async fn watch(
    store: &SqliteStore,
    client: &Host,
    clock: &ScaledClock,
    launcher: &Launcher,
    worker: &mut WorkerChild,
    run: &Run,
    mut ui: Ui,
    speed: f64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let budget = Duration::from_secs(45)
        .max(Duration::from_secs_f64(YEAR.as_secs_f64() / speed) + Duration::from_secs(30));
    let mut done = Progress::default();
    let mut interval = tokio::time::interval(TICK);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mail_dir = launcher.services.join("mail");
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = &mut ctrl_c => {
                ui.finish(&[], run);
                bail!("interrupted");
            }
        }
        let snaps = snapshots(store, run).await?;
        ui.update(&snaps, clock.now(), started.elapsed());
        if let Some(status) = worker.exited() {
            ui.finish(&snaps, run);
            bail!(
                "the worker exited by itself ({status}); see {}",
                launcher.log.display()
            );
        }
        let [onb, mail, _, _, card] = &snaps[..] else {
            bail!("internal error: expected five processes");
        };

        // 💥 Crash the worker while the mail flow sleeps its first month.
        if !done.killed {
            let sleeping = mail
                .entry("first month passed")
                .is_some_and(|e| e.status == EntryStatus::Scheduled);
            if sleeping || started.elapsed() >= KILL_AT_THE_LATEST {
                worker.kill();
                done.killed = true;
                let sent = mails_of(&mail_dir, &run.mail_flow);
                ui.note(&format!(
                    "💥 worker killed with SIGKILL{} ({sent} mail(s) of the mail flow sent so far); restarting",
                    if sleeping {
                        " while the mail flow sleeps its 30 days"
                    } else {
                        ""
                    }
                ));
                if let Some(secret) = secret(&mail_dir, run, onb) {
                    verify(client, run, &secret, &mut ui, true).await?;
                    done.verified = true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                *worker = launcher.start()?;
                ui.note(&format!(
                    "▶ worker #2 started (pid {}): it resumes every process from its journal",
                    worker.id()
                ));
            }
        }
        if done.killed
            && !done.verified
            && let Some(secret) = secret(&mail_dir, run, onb)
        {
            verify(client, run, &secret, &mut ui, false).await?;
            done.verified = true;
        }
        // The card stayed unused for five (fast) minutes; now Ada pays with it.
        if done.killed && !done.paid && card.done("inactive card mail sent") {
            let tx = credit_card::Transaction {
                amount: 1250,
                merchant: "Coffee Corner".to_owned(),
            };
            client
                .signal(&run.card, credit_card::FIRST_TRANSACTION, &tx)
                .await?;
            done.paid = true;
            ui.note(&format!(
                "💳 signal {:?} {{\"amount\":1250,\"merchant\":\"Coffee Corner\"}} → {}",
                credit_card::FIRST_TRANSACTION,
                run.card
            ));
        }
        if !done.deleted && card.done("first transaction mail sent") {
            client
                .signal(&run.card, credit_card::CARD_DELETED, &())
                .await?;
            done.deleted = true;
            ui.note(&format!(
                "🗑  signal {:?} null → {}",
                credit_card::CARD_DELETED,
                run.card
            ));
        }

        if snaps.iter().all(Snapshot::ended) {
            ui.finish(&snaps, run);
            return Ok(());
        }
        if started.elapsed() > budget {
            ui.finish(&snaps, run);
            bail!(
                "the processes did not end within {}; see {} and `steadfast --db {} list`",
                render::duration(budget),
                launcher.log.display(),
                launcher.db.display()
            );
        }
    }
}

/// Sends the onboarding's `email verified` signal with the secret.
async fn verify(
    client: &Host,
    run: &Run,
    secret: &str,
    ui: &mut Ui,
    worker_down: bool,
) -> anyhow::Result<()> {
    client
        .signal(
            &run.onboarding,
            onboarding::VERIFIED.name(),
            &serde_json::json!({ "secret": secret }),
        )
        .await?;
    ui.note(&format!(
        "✉  Ada clicks the link in her mail: signal {:?} {{\"secret\":\"{secret}\"}} → {}{}",
        onboarding::VERIFIED.name(),
        run.onboarding,
        if worker_down {
            " (no worker is running: the signal waits in the store)"
        } else {
            ""
        }
    ));
    Ok(())
}

/// The verification secret: from the mail Ada received, or else from the
/// onboarding's journal entry "secret generated" once the mail is sent.
fn secret(mail_dir: &Path, run: &Run, onb: &Snapshot) -> Option<String> {
    if !onb.done("verification mail sent") {
        return None;
    }
    let file = mail_dir.join(format!(
        "{}_verification_mail_sent.txt",
        mail_file_prefix(&run.onboarding)
    ));
    if let Ok(text) = std::fs::read_to_string(file)
        && let Some(code) = text.lines().find_map(|l| l.split("code: ").nth(1))
    {
        return Some(code.trim().to_owned());
    }
    let outcome = onb.entry("secret generated")?.outcome.as_deref()?;
    serde_json::from_str::<String>(outcome).ok()
}

/// How the mailbox names the files of a process's mails (its idempotency
/// keys `<id>/<step>` with everything but ASCII letters, digits and `-`
/// replaced by `_`).
fn mail_file_prefix(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How many mails process `id` has sent (files in the mail folder).
fn mails_of(mail_dir: &Path, id: &str) -> usize {
    let prefix = format!("{}_", mail_file_prefix(id));
    std::fs::read_dir(mail_dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        })
        .unwrap_or(0)
}

/// This run's mails: (file name, subject), sorted by file name.
fn run_mails(mail_dir: &Path, run: &Run) -> Vec<(String, String)> {
    let prefixes: Vec<String> = run
        .tracked
        .iter()
        .map(|t| format!("{}_", mail_file_prefix(&t.id)))
        .collect();
    let Ok(dir) = std::fs::read_dir(mail_dir) else {
        return Vec::new();
    };
    let mut mails: Vec<(String, String)> = dir
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !prefixes.iter().any(|p| name.starts_with(p)) {
                return None;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_owned();
            Some((name, format!("“{subject}”")))
        })
        .collect();
    mails.sort();
    mails
}

/// The final table and the checks; an error when a process did not reach
/// its expected end.
async fn summary(
    store: &SqliteStore,
    services: &Services,
    run: &Run,
    db_path: &Path,
    log_path: &Path,
) -> anyhow::Result<()> {
    let snaps = snapshots(store, run).await?;
    let mail_dir = services.root().join("mail");
    let mut table = render::table(["process", "kind", "status", "steps", "mails", "result"]);
    for (t, s) in run.tracked.iter().zip(&snaps) {
        let r = &s.record;
        let result = r
            .output
            .as_deref()
            .or(r.error.as_deref())
            .map(|x| render::preview(x, 60))
            .unwrap_or_default();
        table.add_row([
            t.id.clone(),
            r.kind.clone(),
            r.status.to_string(),
            s.journal.len().to_string(),
            mails_of(&mail_dir, &t.id).to_string(),
            result,
        ]);
    }
    outln!("{table}\n")?;

    let mut failures = Vec::new();
    let mut check = |ok: bool, text: String| {
        let _ = outln!("{} {text}", if ok { "✓" } else { "✗" });
        if !ok {
            failures.push(text);
        }
    };
    for (t, s) in run.tracked.iter().zip(&snaps) {
        let status = s.record.status;
        let text = format!(
            "{} {} ended {status} (expected {})",
            t.label, t.id, t.expect
        );
        check(status == t.expect, text);
    }
    let mail = &snaps[1];
    let mails = mails_of(&mail_dir, &run.mail_flow);
    let mail_steps = [
        "welcome sent",
        "first month mail sent",
        "first year mail sent",
    ];
    let once = mail_steps
        .iter()
        .all(|step| mail.entry(step).is_some_and(|e| e.attempts == 1));
    check(
        mails == 3 && once,
        format!(
            "the mail flow sent {mails} of 3 mails, each exactly once, across the crash{}",
            if once {
                ""
            } else {
                " (a mail step ran more than once)"
            }
        ),
    );
    let compensated = snaps[3]
        .entry("debit rolled back")
        .is_some_and(|e| e.status == EntryStatus::Completed);
    check(
        compensated,
        "the transfer to a closed account failed and its started debit was rolled back".to_owned(),
    );
    let alice = services.bank.balance(&run.alice).await?;
    let bob = services.bank.balance(&run.bob).await?;
    check(
        alice == 7_500 && bob == 3_000,
        format!(
            "balances: {} {alice} (10000 - 2500), {} {bob} (500 + 2500)",
            run.alice, run.bob
        ),
    );

    outln!("\nMails are text files in {}:", mail_dir.display())?;
    for (file, subject) in run_mails(&mail_dir, run) {
        outln!("  {file:<58} {subject}")?;
    }
    outln!("Worker logs: {}", log_path.display())?;
    let db = db_path.display();
    outln!("Inspect the processes:")?;
    outln!("  steadfast --db {db} list")?;
    outln!("  steadfast --db {db} show {}", run.mail_flow)?;
    if failures.is_empty() {
        outln!("\nEvery process reached its expected end. 🎉")?;
        Ok(())
    } else {
        bail!(
            "the demo did not end as expected: {}; see {}",
            failures.join("; "),
            log_path.display()
        )
    }
}

/// Starts worker child processes.
struct Launcher {
    exe: PathBuf,
    db: PathBuf,
    services: PathBuf,
    speed: f64,
    origin: Timestamp,
    log: PathBuf,
}

impl Launcher {
    /// Starts `steadfast worker` on the demo's database and clock.
    fn start(&self) -> anyhow::Result<WorkerChild> {
        let log: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open the worker log {}", self.log.display()))?;
        let child = Command::new(&self.exe)
            // The demo's worker runs the example kinds built into this binary.
            .arg("--examples")
            .arg("--db")
            .arg(&self.db)
            .arg("worker")
            .arg("--services")
            .arg(&self.services)
            .arg("--time-scale")
            .arg(self.speed.to_string())
            .arg("--clock-origin")
            .arg(self.origin.as_micros().to_string())
            // A safety net only: a killed worker's processes are taken over
            // at once through its lock file, not when its leases expire.
            .arg("--lease-ms")
            .arg("5000")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start the worker {}", self.exe.display()))?;
        Ok(WorkerChild { child })
    }
}

/// A worker child process; killed (SIGKILL) when dropped.
struct WorkerChild {
    child: Child,
}

impl WorkerChild {
    /// The child's process id.
    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child with SIGKILL (if it still runs) and reaps it.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Err(err) = self.child.kill() {
                tracing::warn!(error = %err, "cannot kill the worker");
            }
            let _ = self.child.wait();
        }
    }

    /// How the child ended, if it did.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for WorkerChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Live progress: spinners on a terminal, plain lines otherwise.
enum Ui {
    /// One spinner per process (stdout is a terminal).
    Live {
        multi: MultiProgress,
        bars: Vec<ProgressBar>,
        labels: Vec<&'static str>,
    },
    /// A line whenever a process changes (stdout is not a terminal).
    Plain {
        last: Vec<String>,
        labels: Vec<&'static str>,
        started: Instant,
    },
}

impl Ui {
    fn new(tracked: &[Tracked]) -> Self {
        let labels: Vec<&'static str> = tracked.iter().map(|t| t.label).collect();
        if !std::io::stdout().is_terminal() {
            return Ui::Plain {
                last: vec![String::new(); tracked.len()],
                labels,
                started: Instant::now(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template("{spinner:.cyan} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = labels
            .iter()
            .map(|label| {
                let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                bar.set_message(format!("{label:<20} starting"));
                bar.enable_steady_tick(TICK);
                bar
            })
            .collect();
        Ui::Live {
            multi,
            bars,
            labels,
        }
    }

    /// A line of its own (above the spinners). Progress lines that cannot
    /// be written (a closed pipe) are dropped; the summary's output then
    /// ends the command quietly.
    fn note(&mut self, text: &str) {
        match self {
            Ui::Live { multi, .. } => {
                if multi.println(text).is_err() {
                    let _ = outln!("{text}");
                }
            }
            Ui::Plain { started, .. } => {
                let _ = outln!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64());
            }
        }
    }

    /// Shows the processes' current state.
    fn update(&mut self, snaps: &[Snapshot], now: Timestamp, _elapsed: Duration) {
        match self {
            Ui::Live { bars, labels, .. } => {
                for ((bar, label), s) in bars.iter().zip(labels.iter()).zip(snaps) {
                    if bar.is_finished() {
                        continue;
                    }
                    let line = line(label, s, now);
                    if s.ended() {
                        bar.set_style(
                            ProgressStyle::with_template("{msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.finish_with_message(format!("■ {line}"));
                    } else {
                        bar.set_message(line);
                    }
                }
            }
            Ui::Plain {
                last,
                labels,
                started,
            } => {
                for ((prev, label), s) in last.iter_mut().zip(labels.iter()).zip(snaps) {
                    let key = change_key(s);
                    if *prev != key {
                        *prev = key;
                        let _ = outln!(
                            "[{:>5.1}s] {}",
                            started.elapsed().as_secs_f64(),
                            line(label, s, now)
                        );
                    }
                }
            }
        }
    }

    /// Stops the spinners (leaving their last lines on screen).
    fn finish(&mut self, snaps: &[Snapshot], _run: &Run) {
        if let Ui::Live { bars, labels, .. } = self {
            for (i, bar) in bars.iter().enumerate() {
                if !bar.is_finished() {
                    let text = match (snaps.get(i), labels.get(i)) {
                        (Some(s), Some(label)) => line(label, s, Timestamp::now_system()),
                        _ => bar.message(),
                    };
                    bar.finish_with_message(text);
                }
            }
        }
    }
}

/// What makes a plain-mode line worth printing again: the status, the
/// journal's last entry and the awaited signals (not the countdowns).
fn change_key(s: &Snapshot) -> String {
    let last = s
        .journal
        .iter()
        .map(|e| format!("{}:{}", e.name, e.status.as_str()))
        .collect::<Vec<_>>()
        .join("|");
    format!(
        "{} {} {:?} {}",
        s.record.status,
        last,
        s.record.waiting_for,
        s.record.wake_at.is_some()
    )
}

/// `mail flow           suspended  ✓ welcome sent · timer in 29d 23h`.
fn line(label: &str, s: &Snapshot, now: Timestamp) -> String {
    let r = &s.record;
    let last_done = s
        .journal
        .iter()
        .filter(|e| e.status != EntryStatus::Scheduled)
        .max_by_key(|e| (e.finished_at, e.seq))
        .map(|e| {
            let mark = if e.status == EntryStatus::Failed {
                "✗"
            } else {
                "✓"
            };
            format!("{mark} {}", e.name)
        });
    let detail = match r.status {
        Status::Suspended => {
            let waits = render::waits(r, now);
            match last_done {
                Some(step) => format!("{step} · waits for {waits}"),
                None => format!("waits for {waits}"),
            }
        }
        Status::Running => last_done.unwrap_or_else(|| "starting".to_owned()),
        Status::Completed => format!("{} steps journaled", s.journal.len()),
        Status::Failed => render::preview(r.error.as_deref().unwrap_or("failed"), 70),
        _ => render::preview(r.error.as_deref().unwrap_or(""), 70),
    };
    format!("{label:<20} {:<10} {detail}", r.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_is_compact() {
        let t = Timestamp::from_micros(1_795_381_574_123_456);
        assert_eq!(suffix(t), "20261122-210614-123");
    }

    #[test]
    fn mail_prefix_matches_the_mailbox() {
        assert_eq!(mail_file_prefix("card-1/x y"), "card-1_x_y");
    }
}
