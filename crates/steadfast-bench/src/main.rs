//! `steadfast-bench`: the standard workloads W1–W6 (see the repository's
//! `BENCHMARKS.md`). `steadfast bench` runs the same code.

use std::process::ExitCode;

use clap::Parser;

/// Runs the standard Steadfast workloads W1–W6 and prints their figures.
#[derive(Debug, Parser)]
#[command(name = "steadfast-bench", version, about)]
struct Cli {
    /// Where the fresh stores go: a directory (`DIR` or `sqlite:DIR`) or a
    /// `postgres://` URL (a fresh schema per workload unless `schema=` is
    /// given). Default: a new temporary directory per workload.
    #[arg(long)]
    db: Option<String>,

    /// The workload and its settings.
    #[command(flatten)]
    bench: steadfast_bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    steadfast_bench::init_logging();
    let result = steadfast_bench::Launch::current(Vec::<String>::new()).and_then(|launch| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(steadfast_bench::run(cli.db.as_deref(), cli.bench, launch))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
