//! `steadfast bench`: the standard workloads W1–W5 of DESIGN.md
//! ("Standard workloads"), measured the same way on every store.
//!
//! * W1 latency: sequential ten-step processes, spawn to completion, next to
//!   the disk's fdatasync latency ([`w1`]).
//! * W2 throughput: many ten-step processes, at most 100 in flight ([`w2`]).
//! * W3 sleepers: processes that each sleep 60 s, run by a worker child
//!   process whose memory is measured alone ([`w3`]).
//! * W4 crash: W2 on a worker child that is SIGKILLed and restarted ([`w4`]).
//! * W5 scale-out: W2 on 1, 2 and 3 worker children ([`w5`]).
//!
//! Every workload runs on a fresh store ([`target`]). Results are printed as a
//! table or, with `--json`, as one JSON object per workload per line
//! ([`report`]). Nothing here asserts on time.

mod common;
mod report;
pub mod sleeper;
mod sys;
mod target;
mod w1;
mod w2;
mod w3;
mod w4;
mod w5;
mod workers;

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use steadfast::Durability;

use report::Report;
use sys::Machine;
use target::Target;

/// Arguments of `steadfast bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The workload to run.
    #[arg(long, value_enum)]
    pub workload: WorkloadArg,
    /// Print one JSON object per workload per line instead of tables.
    #[arg(long)]
    pub json: bool,
    /// How many processes (W1: runs) instead of the workload's standard
    /// number (W1 200, W2 2,000, W3 10,000, W4 2,000, W5 2,000).
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
    /// W1 to W5 one after the other.
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
}

impl Ctx {
    /// `--count` or the workload's standard number.
    pub fn count_or(&self, standard: usize) -> usize {
        self.count.unwrap_or(standard)
    }
}

/// Runs `steadfast bench`. `db` is the `--db` value when it was given on
/// the command line (otherwise every workload gets a fresh temporary store).
pub async fn run(db: Option<&str>, args: BenchArgs) -> anyhow::Result<()> {
    let target = Target::parse(db)?;
    let workloads = match args.workload {
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
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; figures are not representative \
             (use `cargo run --release -p steadfast-cli -- bench …`)"
        );
    }
    if ctx.durability != DurabilityArg::Full
        && workloads
            .iter()
            .any(|w| matches!(w, WorkloadArg::W3 | WorkloadArg::W4 | WorkloadArg::W5))
    {
        eprintln!(
            "warning: --durability applies to W1 and W2 only; W3–W5 run `steadfast worker` \
             processes, which open the store with full durability"
        );
    }
    if !args.json {
        outln!("{}", ctx.machine.describe())?;
        outln!("store: {}", ctx.target.describe())?;
    }
    for workload in workloads {
        let report = match workload {
            WorkloadArg::W1 => w1::run(&ctx).await?,
            WorkloadArg::W2 => w2::run(&ctx).await?,
            WorkloadArg::W3 => w3::run(&ctx).await?,
            WorkloadArg::W4 => w4::run(&ctx).await?,
            WorkloadArg::W5 | WorkloadArg::All => w5::run(&ctx).await?,
        };
        print(&ctx, &report, args.json)?;
    }
    Ok(())
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
