//! One module per subcommand.

pub mod admin;
pub mod dashboard;
pub mod demo;
pub mod list;
pub mod schedule;
pub mod serve;
pub mod show;
pub mod signal;
pub mod signals;
pub mod watch;
pub mod worker;
