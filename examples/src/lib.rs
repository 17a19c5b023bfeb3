//! The four classic Steadfast processes, as real programs would write them:
//!
//! 1. [`onboarding`]: save the e-mail, register the user, generate a secret,
//!    send the verification mail, wait for the user to confirm, activate.
//! 2. [`mail_flow`]: welcome mail, sleep 30 days, mail, sleep 335 days, mail.
//! 3. [`transfer`]: a money transfer saga that compensates when a step fails.
//! 4. [`credit_card`]: three durable waits at once (a timer and two signals).
//!
//! Their outside services ([`services`]) are simulated but real: mails are
//! files in a folder, users and accounts are JSON files.
//! [`workload`] holds the ten-step process the crash tests and benchmarks use.
//! [`demo`] is what `steadfast demo` runs (the classic processes on a fast
//! clock, their worker killed and restarted midway), and [`render`] the
//! terminal tables and previews it shares with the `steadfast` command.

pub mod credit_card;
pub mod demo;
pub mod mail_flow;
pub mod onboarding;
pub mod render;
pub mod services;
pub mod transfer;
pub mod workload;

use std::sync::Arc;

use steadfast::HostBuilder;

pub use services::Services;

/// Registers every example kind (and the ten-step workload) on `builder`.
pub fn register_all(builder: HostBuilder, services: Arc<Services>) -> HostBuilder {
    let builder = onboarding::register(builder, Arc::clone(&services));
    let builder = mail_flow::register(builder, Arc::clone(&services));
    let builder = transfer::register(builder, Arc::clone(&services));
    let builder = credit_card::register(builder, Arc::clone(&services));
    workload::register(builder, services.run_log())
}
