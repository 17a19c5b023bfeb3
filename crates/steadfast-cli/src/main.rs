//! `steadfast`: the command-line tool of Steadfast.
//!
//! Lists and inspects the processes of a store, sends them signals,
//! cancels and retries them, follows one live, serves the dashboard, and
//! shows the classic examples surviving a `kill -9` with `steadfast demo`.
//! A program's own kinds get the rest (`worker`, `spawn`, `check`) through
//! `steadfast_cli::run` in a binary of its own.

fn main() -> std::process::ExitCode {
    steadfast_cli::run_generic()
}
