//! Mail flow: send "Welcome!", sleep 30 days, send "Your 1st month with us",
//! sleep 335 days, send "Your 1st year with us".

use std::sync::Arc;
use std::time::Duration;

use steadfast::{HostBuilder, Process, StepError, StepFailed};

use crate::Services;

/// The kind's name.
pub const KIND: &str = "mail flow";

const DAY: Duration = Duration::from_secs(86_400);

/// The process function: its input is the customer's e-mail address.
#[steadfast::process(name = KIND)]
pub async fn mail_flow(
    p: Process,
    email: String,
    services: Arc<Services>,
) -> Result<(), StepFailed> {
    let s = &services;
    p.step("welcome sent", || {
        send(s, p.idempotency_key("welcome sent"), &email, "Welcome!")
    })
    .await?;
    p.sleep("first month passed", 30 * DAY).await;
    p.step("first month mail sent", || {
        send(
            s,
            p.idempotency_key("first month mail sent"),
            &email,
            "Your 1st month with us",
        )
    })
    .await?;
    p.sleep("first year passed", 335 * DAY).await;
    p.step("first year mail sent", || {
        send(
            s,
            p.idempotency_key("first year mail sent"),
            &email,
            "Your 1st year with us",
        )
    })
    .await?;
    Ok(())
}

async fn send(services: &Services, key: String, to: &str, subject: &str) -> Result<(), StepError> {
    let body = format!("{subject}\n\n-- the Steadfast team");
    services
        .mail
        .send(&key, to, subject, &body)
        .await
        .map(drop)
        .map_err(|e| e.into_step())
}

/// Registers the kind (typed: [`MailFlow`]), providing the services.
pub fn register(builder: HostBuilder, services: Arc<Services>) -> HostBuilder {
    builder.provide(services).register_kind::<MailFlow>()
}
