//! The command line of Steadfast, as a library: a program with its own
//! process kinds gets the whole `steadfast` command line for them
//! (`worker`, `spawn` with inputs checked against the kinds, `check`,
//! `schedule`, `watch`, `list`, `show`, `dashboard`, …) from one call.
//!
//! ```no_run
//! use steadfast::{Process, StepFailed};
//!
//! #[steadfast::process]
//! async fn greet(p: Process, name: String) -> Result<String, StepFailed> {
//!     p.step("greeted", || async { Ok(format!("Hello, {name}!")) }).await
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     // `my-app worker`, `my-app spawn greet g-1 '"Ada"'`, `my-app check`, …
//!     steadfast_cli::run(|hosts| hosts.register_kind::<Greet>())
//! }
//! ```
//!
//! The generic `steadfast` binary ([`run_generic`]) has no kinds of its own:
//! it runs every command that needs no kind code (list, show, watch, signal,
//! cancel, retry, rewind, purge, schedule list/remove, dashboard) and, for
//! `worker`, `spawn`, `check` and `schedule add`, says how to get this
//! embedded command line (or runs the built-in example kinds with
//! `--examples`).

/// `println!` that returns the write's error instead of panicking: a closed
/// pipe (`steadfast list | head -1`) ends the command quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

/// `print!` that returns the write's error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)
    }};
}

#[cfg(feature = "bus")]
mod bus;
#[cfg(not(feature = "bus"))]
#[path = "no_bus.rs"]
mod bus;
mod commands;
mod db;
mod input;
mod json;
mod kinds;
mod numbers;

use steadfast_examples::render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use steadfast::HostBuilder;

use kinds::Kinds;

/// Steadfast: business processes as async functions that survive crashes.
#[derive(Debug, Parser)]
#[command(name = "steadfast", version, about, propagate_version = true)]
struct Cli {
    /// The store: a SQLite file path, `sqlite:PATH`, `sqlite://PATH`, or a
    /// PostgreSQL URL `postgres://USER@HOST/DB?schema=NAME`.
    #[arg(
        long,
        global = true,
        env = "STEADFAST_DB",
        default_value = "steadfast.db"
    )]
    db: String,

    /// Use the example process kinds built into this binary (onboarding,
    /// mail flow, money transfer, credit card, ten steps) for `worker`,
    /// `spawn`, `check` and `schedule add`. A program's own kinds get their
    /// own binary: see `steadfast_cli::run`.
    #[arg(
        long,
        global = true,
        env = "STEADFAST_EXAMPLES",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    examples: bool,

    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// List processes, with what they wait for.
    List(ListArgs),
    /// Show one process and its journal.
    Show(ShowArgs),
    /// Send a signal (with a JSON payload) to a process, or discard a
    /// pending one (`steadfast signal discard ID SIGNAL_ID`).
    Signal(SignalCommand),
    /// List a process's signals: pending ones, and those consumed, rejected
    /// (with the reason) or discarded.
    Signals(SignalsArgs),
    /// Start a process of one of the example kinds.
    Spawn(SpawnArgs),
    /// Cancel a process.
    Cancel(IdArg),
    /// Resume a blocked or failed process (its journal is kept), or cut a
    /// step's durable retry wait short.
    Retry(IdArg),
    /// Rewind a process to a journal entry: drop that entry and every later
    /// one, and run the process again from there.
    Rewind(RewindArgs),
    /// Delete finished processes (completed, failed, cancelled) older than
    /// an age, with their journals.
    Purge(PurgeArgs),
    /// Replay every unfinished process's journal against the example kinds
    /// built into this binary, without changing anything, and report each
    /// process that would block.
    Check(CheckArgs),
    /// Add, list or remove schedules that spawn a kind once per tick.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Run the example processes of the store until stopped.
    Worker(WorkerArgs),
    /// Run the four classic examples, crash the worker midway, and show
    /// that nothing was lost.
    Demo(DemoArgs),
    /// Run the standard benchmark workloads W1–W6 (see BENCHMARKS.md).
    Bench(steadfast_bench::BenchArgs),
    /// Serve the web dashboard: processes, journals beside their source,
    /// signals and admin actions.
    Dashboard(commands::dashboard::DashboardArgs),
    /// Serve the HTTP API (JSON under /api/v1, OpenAPI document included)
    /// for services in any language; workers run the processes.
    Serve(commands::serve::ServeArgs),
    /// Follow one process live: its status, the step and source line it
    /// stands at, and each new journal entry, until it ends.
    Watch(WatchArgs),
    /// Print a shell completion script (bash, zsh or fish) to standard output.
    Completions(CompletionsArgs),
}

/// Arguments of `steadfast watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The process id.
    pub id: String,
    /// How often to look at the store, in milliseconds (10 to 60,000).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub interval_ms: u64,
    /// Print one JSON object per line (each journal entry, each change of
    /// status) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `steadfast completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Arguments of `steadfast list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only processes in this status (running, suspended, blocked,
    /// completed, failed, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    /// Only processes of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only ids starting with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// At most this many processes.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub limit: u64,
    /// Only ids after this one (paging: pass the last id shown).
    #[arg(long)]
    pub after: Option<String>,
    /// Print a JSON array of process records instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `steadfast show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The process id.
    pub id: String,
    /// Print `{"process": …, "journal": […]}` instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `steadfast signal`: send, or `discard`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct SignalCommand {
    /// `discard`; without it, the arguments send a signal.
    #[command(subcommand)]
    pub action: Option<SignalAction>,
    /// Send a signal.
    #[command(flatten)]
    pub send: Option<SignalArgs>,
}

/// What `steadfast signal` does besides sending.
#[derive(Debug, Subcommand)]
pub(crate) enum SignalAction {
    /// Discard a pending signal: no wait will take it; it stays listed as
    /// discarded.
    Discard(DiscardArgs),
}

/// Arguments of `steadfast signal discard`.
#[derive(Debug, Args)]
pub(crate) struct DiscardArgs {
    /// The process id.
    pub id: String,
    /// The signal's id, as `steadfast signals ID` lists it.
    pub signal_id: i64,
}

/// Arguments of `steadfast signals`.
#[derive(Debug, Args)]
pub(crate) struct SignalsArgs {
    /// The process id.
    pub id: String,
    /// Only pending signals.
    #[arg(long)]
    pub pending: bool,
    /// Print the signals as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `steadfast signal`.
#[derive(Debug, Args)]
pub(crate) struct SignalArgs {
    /// The process id.
    pub id: String,
    /// The signal name, e.g. "email verified".
    pub name: String,
    /// The payload as JSON, e.g. '{"secret": "…"}' or null.
    pub json: String,
}

/// Arguments of `steadfast spawn`.
#[derive(Debug, Args)]
pub(crate) struct SpawnArgs {
    /// The kind: one your binary registers (with `--examples`: onboarding,
    /// "mail flow", "money transfer", "credit card" or "ten steps").
    pub kind: String,
    /// The id of the new process.
    pub id: String,
    /// The input as JSON, checked against the kind's input type.
    pub json: String,
    /// Print `{"id", "kind", "spawned": "created" | "existing"}` instead of text.
    #[arg(long = "json", id = "print_json")]
    pub print_json: bool,
}

/// A process id.
#[derive(Debug, Args)]
pub(crate) struct IdArg {
    /// The process id.
    pub id: String,
    /// Print the result as a JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `steadfast rewind`.
#[derive(Debug, Args)]
pub(crate) struct RewindArgs {
    /// The process id.
    pub id: String,
    /// The journal entry to rewind to (it and every later one are dropped).
    pub step: String,
    /// Do it without asking (required when standard input is not a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// Arguments of `steadfast purge`.
#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Only processes that finished longer ago than this many hours
    /// (0 to 1,000,000).
    #[arg(long, value_name = "HOURS", value_parser = numbers::hours)]
    pub older_than: f64,
    /// Do it without asking (required when standard input is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Print `{"purged": N}` instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `steadfast schedule …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Add a schedule (a name already in use keeps its schedule).
    Add(ScheduleAddArgs),
    /// List the schedules, with their next tick.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule (runs it already spawned go on).
    Remove {
        /// The schedule's name.
        name: String,
    },
}

/// Arguments of `steadfast schedule add`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["every", "cron"])))]
pub(crate) struct ScheduleAddArgs {
    /// The schedule's name.
    pub name: String,
    /// The process kind each tick spawns.
    #[arg(long)]
    pub kind: String,
    /// The input of each spawned process, as JSON.
    #[arg(long, default_value = "null")]
    pub input: String,
    /// A fixed interval: a number with s, m, h or d (e.g. 90s, 15m, 1d).
    #[arg(long, value_parser = commands::schedule::parse_interval)]
    pub every: Option<std::time::Duration>,
    /// A cron pattern in UTC (5 fields, or 6 with seconds).
    #[arg(long)]
    pub cron: Option<String>,
    /// At a tick while the previous run is unfinished: skip, queue or allow.
    #[arg(long, default_value = "skip", value_parser = ["skip", "queue", "allow"])]
    pub overlap: String,
    /// After downtime: run the latest missed tick once, or all missed ticks.
    #[arg(long, default_value = "once", value_parser = ["once", "all"])]
    pub catch_up: String,
}

/// Arguments of `steadfast check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Print the reports as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `steadfast worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// How many processes run at once (1 to 1,000,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=numbers::MAX_CONCURRENCY))]
    pub concurrency: u32,
    /// With `--examples`: where the simulated services keep their files (default: the folder
    /// `<db file stem>-services` next to the database).
    #[arg(long)]
    pub services: Option<PathBuf>,
    /// Run the clock this many times faster than real time (0.001 to
    /// 100,000,000).
    #[arg(long, value_parser = numbers::speed)]
    pub time_scale: Option<f64>,
    /// The instant (µs since the Unix epoch) the scaled clock starts from
    /// (default: now); workers sharing it agree on the time.
    #[arg(long, requires = "time_scale", value_parser = clap::value_parser!(i64).range(0..=numbers::MAX_CLOCK_ORIGIN))]
    pub clock_origin: Option<i64>,
    /// How long a lease lasts, in real milliseconds (100 to 86,400,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub lease_ms: Option<u64>,
    /// Warn in the log when this worker's clock is further than this many
    /// milliseconds from the store's clock (PostgreSQL's server clock),
    /// measured at start and every 30 s (1 to 86,400,000; default 1,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub max_clock_offset_ms: u64,
    /// Exit once no process is running or waiting for a timer (schedules,
    /// which always have a next tick, do not count).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Serve this host's Prometheus metrics (runs, steps, failures,
    /// retries, step latency) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Run the subscriptions of this route file: messages of RabbitMQ
    /// queues or NATS JetStream consumers become spawns and signals (TOML,
    /// or JSON when the name ends in `.json`; one file may hold several
    /// subscriptions, and the flag may be repeated). The files are checked
    /// before anything starts.
    #[arg(long, value_name = "ROUTES")]
    pub subscribe: Vec<PathBuf>,
    /// The HTTP API on this worker's host.
    #[command(flatten)]
    pub api: commands::serve::ApiArgs,
    /// Export this worker's spans (each run of a process, each step
    /// attempt, each signal taken) to the OpenTelemetry collector at this
    /// base URL over OTLP/HTTP (`/v1/traces` is appended); the service name
    /// is `OTEL_SERVICE_NAME` (default `steadfast`).
    #[cfg(feature = "otel")]
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp: Option<String>,
}

/// Arguments of `steadfast demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The folder for the database and the services' files (a `--db` given
    /// explicitly names the database instead; the services' files then go
    /// next to it).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// How much faster than real time the demo's clock runs (the default
    /// makes 30 days pass in about 1.3 s; 0.001 to 100,000,000).
    #[arg(long, default_value_t = 2_000_000.0, value_parser = numbers::speed)]
    pub speed: f64,
}

/// Runs the command line of a program whose process kinds `register`
/// adds to a host builder (`register_kind::<K>()`, `register(name, f)`,
/// `provide(value)`, …): `worker` runs them, `spawn` checks inputs against
/// them, `check` replays journals against them. Parses the program's
/// arguments, runs the command and returns its exit code (0 on success,
/// 1 on an error, printed to standard error).
///
/// `register` is called once per host the command builds (a worker's host,
/// a client that checks spawn inputs), so it may be called more than once.
///
/// ```no_run
/// # use steadfast::{Process, StepFailed};
/// # #[steadfast::process]
/// # async fn greet(p: Process, name: String) -> Result<String, StepFailed> { Ok(name) }
/// fn main() -> std::process::ExitCode {
///     steadfast_cli::run(|hosts| hosts.register_kind::<Greet>())
/// }
/// ```
pub fn run<F>(register: F) -> ExitCode
where
    F: Fn(HostBuilder) -> HostBuilder + Send + Sync + 'static,
{
    main_with(Kinds::custom(register))
}

/// The generic `steadfast` binary: every command that needs no kind code;
/// `worker`, `spawn`, `check` and `schedule add` explain how to build a
/// binary with the program's kinds ([`run`]), or use the example kinds with
/// `--examples`.
pub fn run_generic() -> ExitCode {
    main_with(Kinds::none())
}

/// Parses the arguments and runs the command with `kinds`.
fn main_with(kinds: Kinds) -> ExitCode {
    let bin = bin_name();
    let mut command = Cli::command().bin_name(bin);
    let matches = command.get_matches_mut();
    // `bench` uses fresh databases unless `--db` is given on the command
    // line; `demo` uses `--dir`'s `steadfast.db` unless `--db` is given
    // (on the command line or in `STEADFAST_DB`).
    let db_given = matches.value_source("db") == Some(ValueSource::CommandLine);
    let db_explicit = matches!(
        matches.value_source("db"),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.format(&mut command).exit(),
    };
    // A worker says that it started and how it goes: `info` unless RUST_LOG
    // says otherwise; other commands print only warnings.
    let default_log = if matches!(cli.command, Command::Worker(_)) {
        "info"
    } else {
        "warn"
    };
    #[cfg(feature = "otel")]
    let otlp = match &cli.command {
        Command::Worker(args) => args.otlp.clone(),
        _ => None,
    };
    #[cfg(not(feature = "otel"))]
    let otlp: Option<String> = None;
    // Kept until the command ends: dropping it exports the last spans.
    let _otel = if matches!(cli.command, Command::Bench(_)) {
        // The bench's logging also counts the statements sent to PostgreSQL.
        steadfast_bench::init_logging();
        None
    } else {
        match init_logging(default_log, otlp.as_deref()) {
            Ok(guard) => guard,
            Err(err) => {
                eprintln!("error: {err:#}");
                return ExitCode::from(1);
            }
        }
    };
    let kinds = if cli.examples {
        Kinds::examples()
    } else {
        kinds
    };
    match run_cli(cli, kinds, db_given, db_explicit) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): nothing to say.
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

/// The name the program was started as (`steadfast`, or a program's own
/// binary built with [`run`]), for help texts and completions.
fn bin_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_stem)
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("steadfast")
        .to_owned()
}

/// Whether `err` comes from writing to a pipe whose reader has gone.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// What keeps the span exporter running (nothing without the `otel`
/// feature).
#[cfg(feature = "otel")]
type OtelGuard = steadfast::otel::OtelGuard;
#[cfg(not(feature = "otel"))]
type OtelGuard = std::convert::Infallible;

/// Logs go to stderr, filtered by `RUST_LOG` (default `default`); with an
/// OTLP endpoint (feature `otel`), spans are exported there too.
fn init_logging(default: &str, otlp: Option<&str>) -> anyhow::Result<Option<OtelGuard>> {
    #[cfg(feature = "otel")]
    use anyhow::Context as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    #[cfg(feature = "otel")]
    if let Some(url) = otlp.filter(|url| !url.is_empty()) {
        let (otel, guard) =
            steadfast::otel::layer(steadfast::otel::OtelConfig::from_env().endpoint(url))
                .with_context(|| format!("cannot export spans to {url}"))?;
        // Fails only when a subscriber is already set, which is harmless.
        let _ = tracing_subscriber::registry()
            .with(log)
            .with(otel)
            .try_init();
        return Ok(Some(guard));
    }
    #[cfg(not(feature = "otel"))]
    let _ = otlp;
    // Fails only when a subscriber is already set, which is harmless.
    let _ = tracing_subscriber::registry().with(log).try_init();
    Ok(None)
}

/// Runs the command on a fresh Tokio runtime.
fn run_cli(cli: Cli, kinds: Kinds, db_given: bool, db_explicit: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let db = cli.db;
    runtime.block_on(async move {
        match cli.command {
            Command::List(args) => commands::list::run(&db, args).await,
            Command::Show(args) => commands::show::run(&db, args).await,
            Command::Signal(cmd) => commands::signal::dispatch(&db, cmd).await,
            Command::Signals(args) => commands::signals::run(&db, args).await,
            Command::Spawn(args) => commands::admin::spawn(&db, args, &kinds).await,
            Command::Cancel(args) => commands::admin::cancel(&db, args).await,
            Command::Retry(args) => commands::admin::retry(&db, args).await,
            Command::Rewind(args) => commands::admin::rewind(&db, args).await,
            Command::Purge(args) => commands::admin::purge(&db, args).await,
            Command::Check(args) => commands::admin::check(&db, args, &kinds).await,
            Command::Schedule(cmd) => commands::schedule::run(&db, cmd, &kinds).await,
            Command::Worker(args) => commands::worker::run(&db, args, &kinds).await,
            Command::Watch(args) => commands::watch::run(&db, args).await,
            Command::Completions(args) => {
                let mut command = Cli::command();
                let bin = bin_name();
                clap_complete::generate(args.shell, &mut command, bin, &mut std::io::stdout());
                Ok(())
            }
            Command::Demo(args) => {
                commands::demo::run(db_explicit.then_some(db.as_str()), args).await
            }
            Command::Dashboard(args) => commands::dashboard::run(&db, args).await,
            Command::Serve(args) => commands::serve::run(&db, args, &kinds).await,
            Command::Bench(args) => {
                let launch = steadfast_bench::Launch::current(["bench"])?;
                steadfast_bench::run(db_given.then_some(db.as_str()), args, launch).await
            }
        }
    })
}
