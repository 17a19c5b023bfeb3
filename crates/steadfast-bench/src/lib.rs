//! The standard Steadfast workloads W1–W5 (defined in the repository's
//! `BENCHMARKS.md`), measured the same way on every store, with same-run
//! references beside every figure.
//!
//! * W1 latency: sequential ten-step processes, spawn to completion, with
//!   the store's durable-commit floor sampled between them (`w1.rs`).
//! * W2 throughput: many ten-step processes, at most 100 in flight, with
//!   the CPU the bench process (and on PostgreSQL, the server) used (`w2.rs`).
//! * W3 sleepers: processes that each sleep 60 s, run by a worker child
//!   process whose memory is measured alone (`w3.rs`).
//! * W4 crash: W2 on a worker child that is SIGKILLed and restarted (`w4.rs`).
//! * W5 scale-out: W2 on 1, 2 and 3 worker children (`w5.rs`).
//! * W6 bus: messages through a RabbitMQ subscription, a signal, one step
//!   and a confirmed publish, alternating with W2 rounds (`w6.rs`; cargo
//!   feature `bus`, on by default).
//!
//! Every workload runs on a fresh store (`target.rs`). Results are printed as
//! a table or, with `--json`, as one JSON object per workload per line
//! (`report.rs`). `--baseline OLD_BINARY` runs a workload alternately on this
//! binary and an older build and prints both and their ratio (`baseline.rs`).
//! Nothing here asserts on time.
//!
//! The crate is a library and the `steadfast-bench` binary; the `steadfast`
//! command's `bench` subcommand is a thin front over [`run`]. Worker
//! children (W3–W5) are this same binary started with the hidden `worker`
//! subcommand ([`Launch`]), which registers the bench's kinds; the
//! production `steadfast worker` does not.

mod baseline;
mod common;
mod cpu;
mod floor;
mod pgstats;
mod report;
pub mod sleeper;
mod stats;
mod store;
mod sys;
mod target;
mod w1;
mod w2;
mod w3;
mod w4;
mod w5;
#[cfg(feature = "bus")]
mod w6;
mod worker;
mod workers;
mod writes;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use steadfast::Durability;

pub use stats::init_logging;
pub use worker::WorkerArgs;

use report::Report;
use sys::Machine;
use target::Target;

/// Arguments of `steadfast bench` and of the `steadfast-bench` binary.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    /// The hidden `worker` subcommand the bench starts its worker children
    /// with (W3–W5).
    #[command(subcommand)]
    pub child: Option<ChildCommand>,
    /// The workload to run.
    #[arg(long, value_enum, required = true)]
    pub workload: Option<WorkloadArg>,
    /// Print one JSON object per workload per line instead of tables.
    #[arg(long)]
    pub json: bool,
    /// How many processes (W1: runs) instead of the workload's standard
    /// number (W1 200, W2 2,000, W3 10,000, W4 2,000, W5 2,000, W6 1,000
    /// messages per round).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub count: Option<u64>,
    /// W5 only: run with this many worker processes (default: 1, 2 and 3).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: Option<u64>,
    /// SQLite durability of the store W1 and W2 run on in this process
    /// (W3–W5 run worker processes, which always use full).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    pub durability: DurabilityArg,
    /// Keep the databases created under `--db` (they are removed by default).
    #[arg(long)]
    pub keep: bool,
    /// W3's sleep in milliseconds; the standard workload sleeps 60 s (for
    /// tests only).
    #[arg(long, hide = true, default_value_t = 60_000)]
    pub sleep_ms: u64,
    /// Run the workload alternately on this binary and on an older build
    /// (a `steadfast` or `steadfast-bench` binary), `--rounds` times each,
    /// and print both and the ratio of their medians.
    #[arg(long, value_name = "OLD_BINARY")]
    pub baseline: Option<PathBuf>,
    /// With `--baseline`: rounds per binary; W6: rounds of W6, each
    /// followed by a W2 round of the same count (1 to 99).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=99))]
    pub rounds: u64,
}

/// The bench's hidden subcommands.
#[derive(Debug, Subcommand)]
pub enum ChildCommand {
    /// A worker child of W3–W5: runs the bench's kinds on `--store`.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// How this binary starts itself as a bench child (a worker of W3–W5, or
/// a round of `--baseline`): its path and the arguments before the bench's
/// own (`["bench"]` for the `steadfast` command).
///
/// ```
/// let launch = steadfast_bench::Launch::new("/usr/bin/steadfast", ["bench"]);
/// assert_eq!(launch.command().get_args().collect::<Vec<_>>(), ["bench"]);
/// ```
#[derive(Clone, Debug)]
pub struct Launch {
    /// The executable.
    pub exe: PathBuf,
    /// The arguments that lead to the bench's arguments.
    pub prefix: Vec<OsString>,
}

impl Launch {
    /// `exe`, started with `prefix` before the bench's arguments.
    pub fn new<I, S>(exe: impl Into<PathBuf>, prefix: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Launch {
            exe: exe.into(),
            prefix: prefix.into_iter().map(Into::into).collect(),
        }
    }

    /// The running binary, with `prefix`.
    pub fn current<I, S>(prefix: I) -> anyhow::Result<Launch>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let exe = std::env::current_exe().context("cannot find this program's own path")?;
        Ok(Launch::new(exe, prefix))
    }

    /// A command running the binary with the prefix, and no environment
    /// `STEADFAST_DB` (a child's store is always given explicitly).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(&self.prefix).env_remove("STEADFAST_DB");
        cmd
    }
}

/// The `--workload` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// Latency of one ten-step process.
    W1,
    /// Throughput of many ten-step processes.
    W2,
    /// Sleeping processes: spawn time, worker memory, wake-up time.
    W3,
    /// SIGKILL of the worker midway.
    W4,
    /// Several worker processes on one store.
    W5,
    /// Messages through a subscription, a signal, a step and a publish
    /// (RabbitMQ), alternating with W2.
    W6,
    /// W1 to W5 one after the other (not W6, which needs a broker).
    All,
}

/// The `--durability` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Every commit is fsynced (survives power loss): the default.
    Full,
    /// Commits survive a kill -9 of the process, not a power loss.
    ProcessCrash,
}

impl DurabilityArg {
    /// The SQLite level.
    fn level(self) -> Durability {
        match self {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::ProcessCrash => Durability::ProcessCrash,
        }
    }

    /// The name printed in reports.
    fn name(self) -> &'static str {
        match self {
            DurabilityArg::Full => "full",
            DurabilityArg::ProcessCrash => "process-crash",
        }
    }
}

/// What every workload gets: where to store, how much, the machine.
pub(crate) struct Ctx {
    /// Where the fresh stores go.
    pub target: Target,
    /// The requested durability (W1, W2).
    pub durability: DurabilityArg,
    /// `--count`, if given.
    pub count: Option<usize>,
    /// The worker counts W5 runs with.
    pub workers: Vec<usize>,
    /// W3's sleep.
    pub sleep: Duration,
    /// Keep databases created under `--db`.
    pub keep: bool,
    /// The machine, printed with every report.
    pub machine: Machine,
    /// How worker children are started.
    pub launch: Launch,
}

impl Ctx {
    /// `--count` or the workload's standard number.
    pub fn count_or(&self, standard: usize) -> usize {
        self.count.unwrap_or(standard)
    }
}

/// Runs the bench. `db` is the `--db` value when it was given on the
/// command line (otherwise every workload gets a fresh temporary store);
/// `launch` says how this binary starts itself as a worker child.
///
/// ```no_run
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[arg(long)]
///     db: Option<String>,
///     #[command(flatten)]
///     bench: steadfast_bench::BenchArgs,
/// }
///
/// # #[tokio::main] async fn main() -> anyhow::Result<()> {
/// let cli = Cli::parse_from(["my-bench", "--workload", "w1", "--count", "20", "--json"]);
/// let launch = steadfast_bench::Launch::current(Vec::<String>::new())?;
/// steadfast_bench::run(cli.db.as_deref(), cli.bench, launch).await
/// # }
/// ```
pub async fn run(db: Option<&str>, args: BenchArgs, launch: Launch) -> anyhow::Result<()> {
    if let Some(ChildCommand::Worker(worker)) = args.child {
        return worker::run(worker).await;
    }
    let Some(workload) = args.workload else {
        bail!("--workload is required (w1, w2, w3, w4, w5, w6 or all)");
    };
    if let Some(old) = &args.baseline {
        if workload == WorkloadArg::W6 {
            bail!("W6 compares itself with W2 in the same run; --baseline does not apply to it");
        }
        return baseline::run(db, &args, workload, old, &launch).await;
    }
    let target = Target::parse(db)?;
    let workloads = match workload {
        WorkloadArg::All => vec![
            WorkloadArg::W1,
            WorkloadArg::W2,
            WorkloadArg::W3,
            WorkloadArg::W4,
            WorkloadArg::W5,
        ],
        one => vec![one],
    };
    if args.sleep_ms == 0 {
        bail!("--sleep-ms must be at least 1");
    }
    let ctx = Ctx {
        machine: Machine::read(&target.probe_dir()?),
        target,
        durability: args.durability,
        count: args.count.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        workers: match args.workers {
            Some(n) => vec![usize::try_from(n).unwrap_or(1)],
            None => vec![1, 2, 3],
        },
        sleep: Duration::from_millis(args.sleep_ms),
        keep: args.keep,
        launch,
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; figures are not representative \
             (use `cargo run --release -p steadfast-bench -- …`)"
        );
    }
    if ctx.durability != DurabilityArg::Full
        && workloads
            .iter()
            .any(|w| matches!(w, WorkloadArg::W3 | WorkloadArg::W4 | WorkloadArg::W5))
    {
        eprintln!(
            "warning: --durability applies to W1 and W2 only; W3–W5 run worker \
             child processes, which open the store with full durability"
        );
    }
    if !args.json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", ctx.machine.describe())?;
        writeln!(out, "store: {}", ctx.target.describe())?;
    }
    for workload in workloads {
        let report = match workload {
            WorkloadArg::W1 => w1::run(&ctx).await?,
            WorkloadArg::W2 => w2::run(&ctx).await?,
            WorkloadArg::W3 => w3::run(&ctx).await?,
            WorkloadArg::W4 => w4::run(&ctx).await?,
            WorkloadArg::W5 | WorkloadArg::All => w5::run(&ctx).await?,
            WorkloadArg::W6 => w6(&ctx, args.rounds).await?,
        };
        print(&ctx, &report, args.json)?;
    }
    Ok(())
}

/// W6, in a build with the `bus` feature.
async fn w6(ctx: &Ctx, rounds: u64) -> anyhow::Result<Report> {
    #[cfg(feature = "bus")]
    {
        w6::run(ctx, usize::try_from(rounds).unwrap_or(1)).await
    }
    #[cfg(not(feature = "bus"))]
    {
        let _ = (ctx, rounds);
        bail!(
            "W6 needs the `bus` feature of steadfast-bench (on by default), which brings the RabbitMQ client"
        )
    }
}

/// Prints one report, as a JSON line or as a table.
fn print(ctx: &Ctx, report: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", report.json_line(&ctx.machine))?;
    } else {
        writeln!(out, "\n{}", report.table())?;
    }
    out.flush()?;
    Ok(())
}
