//! Credit-card flow with branches: after a welcome mail, three durable waits
//! run at once: a 5-minute timer, the signal "first transaction" and the
//! signal "card deleted".

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steadfast::{HostBuilder, Process, StepError, StepFailed};

use crate::Services;

/// The kind's name.
pub const KIND: &str = "credit card";
/// Signal: the card was used for the first time.
pub const FIRST_TRANSACTION: &str = "first transaction";
/// Signal: the customer deleted the card.
pub const CARD_DELETED: &str = "card deleted";
/// How long a new card may stay unused before the "inactive card" mail.
pub const INACTIVITY: Duration = Duration::from_secs(5 * 60);

/// Input: whose card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// The card holder's e-mail address.
    pub email: String,
}

/// The payload of [`FIRST_TRANSACTION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Amount in cents.
    pub amount: i64,
    /// Where the card was used.
    pub merchant: String,
}

/// The process function: it finishes when the card is deleted.
#[steadfast::process(name = KIND)]
pub async fn credit_card(
    p: Process,
    card: Card,
    services: Arc<Services>,
) -> Result<(), StepFailed> {
    let s = &services;
    let email = &card.email;
    p.step("welcome sent", || {
        mail(s, p.idempotency_key("welcome"), email, "Your new card")
    })
    .await?;

    let mut inactive = p.sleep("5 minutes passed", INACTIVITY);
    let mut first = p.wait::<Transaction>(FIRST_TRANSACTION);
    let mut deleted = p.wait::<()>(CARD_DELETED);
    loop {
        tokio::select! {
            biased;
            () = &mut deleted => {
                p.step("card deleted mail sent", || mail(s, p.idempotency_key("deleted"), email, "Your card was deleted")).await?;
                return Ok(());
            }
            tx = &mut first => {
                inactive.abandon();
                let subject = format!("First transaction received: {} at {}", tx.amount, tx.merchant);
                p.step("first transaction mail sent", || mail(s, p.idempotency_key("first tx"), email, &subject)).await?;
            }
            () = &mut inactive => {
                p.step("inactive card mail sent", || mail(s, p.idempotency_key("inactive"), email, "Your card is not used yet")).await?;
            }
        }
    }
}

async fn mail(services: &Services, key: String, to: &str, subject: &str) -> Result<(), StepError> {
    services
        .mail
        .send(&key, to, subject, subject)
        .await
        .map(drop)
        .map_err(|e| e.into_step())
}

/// Registers the kind (typed: [`CreditCard`]), providing the services.
pub fn register(builder: HostBuilder, services: Arc<Services>) -> HostBuilder {
    builder.provide(services).register_kind::<CreditCard>()
}
