//! Onboarding: save the e-mail, register the user, generate a secret, send
//! the verification mail, wait for the user to confirm it, activate.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use steadfast::{HostBuilder, Process, Signal, StepFailed};
use uuid::Uuid;

use crate::Services;

/// The kind's name.
pub const KIND: &str = "onboarding";
/// The signal the user's click sends, with its payload type.
pub const VERIFIED: Signal<Verification> = Signal::new("email verified");
/// How many wrong secrets are tolerated.
pub const MAX_TRIES: u32 = 3;

/// Input: who signs up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signup {
    /// The e-mail address.
    pub email: String,
}

/// The payload of the [`VERIFIED`] signal: the secret from the mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The secret the user typed or clicked.
    pub secret: Uuid,
}

/// Output: the activated user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Onboarded {
    /// The user's id.
    pub user_id: u64,
}

/// Why onboarding failed.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    /// A step failed for good.
    #[error(transparent)]
    Step(#[from] StepFailed),
    /// The user never confirmed with the right secret.
    #[error("no valid verification after {0} tries")]
    NotVerified(u32),
}

/// The process function.
#[steadfast::process(name = KIND)]
pub async fn onboarding(
    p: Process,
    signup: Signup,
    services: Arc<Services>,
) -> Result<Onboarded, OnboardingError> {
    let email = p.get("email saved", move || signup.email).await;
    let user_id = p
        .step("registered", || async {
            services
                .users
                .register(&email)
                .await
                .map_err(|e| e.into_step())
        })
        .await?;
    let secret = p.uuid("secret generated").await;
    let key = p.idempotency_key("verification mail sent");
    p.step("verification mail sent", || async {
        let body = format!("Confirm your address with this code: {secret}");
        services
            .mail
            .send(&key, &email, "Please confirm your e-mail", &body)
            .await
            .map_err(|e| e.into_step())
    })
    .await?;
    let mut tries = 0;
    loop {
        tries += 1;
        let answer = p.scope(tries).wait(VERIFIED).await; // "1/email verified", …
        if answer.secret == secret {
            break;
        }
        if tries == MAX_TRIES {
            return Err(OnboardingError::NotVerified(tries));
        }
    }
    p.step("activated", || async {
        services
            .users
            .activate(user_id)
            .await
            .map_err(|e| e.into_step())
    })
    .await?;
    Ok(Onboarded { user_id })
}

/// Registers the kind (typed: [`Onboarding`]), providing the services.
pub fn register(builder: HostBuilder, services: Arc<Services>) -> HostBuilder {
    builder.provide(services).register_kind::<Onboarding>()
}
