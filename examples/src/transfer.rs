//! Money transfer saga: start the transfer on the source and on the target
//! account, then complete both; if a step fails for good, roll back what was
//! started and end as failed-and-compensated.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use steadfast::{HostBuilder, Process, StepError, StepFailed};

use crate::Services;

/// The kind's name.
pub const KIND: &str = "money transfer";

/// Input: what to move where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// How much (in cents), more than zero.
    pub amount: i64,
}

/// Why a transfer did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A step failed and every started step was rolled back.
    #[error("transfer failed and was compensated: {0}")]
    Compensated(StepFailed),
    /// A step failed and so did a compensation: needs a human.
    #[error("transfer failed ({failed}) and compensation failed too ({compensation})")]
    CompensationFailed {
        /// The failure that started the compensation.
        failed: StepFailed,
        /// The compensation that failed.
        compensation: StepFailed,
    },
}

/// The process function.
#[steadfast::process(name = KIND, kind = MoneyTransfer)]
pub async fn transfer(
    p: Process,
    t: Transfer,
    services: Arc<Services>,
) -> Result<(), TransferError> {
    let bank = &services.bank;
    let debit = p.idempotency_key("debit");
    let credit = p.idempotency_key("credit");
    let mut started = Vec::new();

    let outcome = async {
        p.step("debit started", || hold(bank, &debit, &t.from, -t.amount))
            .await?;
        started.push(("debit rolled back", &debit));
        p.step("credit started", || hold(bank, &credit, &t.to, t.amount))
            .await?;
        started.push(("credit rolled back", &credit));
        p.step("debit completed", || complete(bank, &debit)).await?;
        p.step("credit completed", || complete(bank, &credit))
            .await?;
        Ok::<(), StepFailed>(())
    }
    .await;

    let Err(failed) = outcome else {
        return Ok(());
    };
    // Compensate in reverse order of what was started.
    for (step, key) in started.into_iter().rev() {
        if let Err(compensation) = p.step(step, || roll_back(bank, key)).await {
            return Err(TransferError::CompensationFailed {
                failed,
                compensation,
            });
        }
    }
    Err(TransferError::Compensated(failed))
}

async fn hold(
    bank: &crate::services::Bank,
    key: &str,
    account: &str,
    amount: i64,
) -> Result<(), StepError> {
    bank.hold(key, account, amount)
        .await
        .map_err(|e| e.into_step())
}

async fn complete(bank: &crate::services::Bank, key: &str) -> Result<(), StepError> {
    bank.complete(key).await.map_err(|e| e.into_step())
}

async fn roll_back(bank: &crate::services::Bank, key: &str) -> Result<(), StepError> {
    bank.roll_back(key).await.map_err(|e| e.into_step())
}

/// Registers the kind (typed: [`MoneyTransfer`]), providing the services.
pub fn register(builder: HostBuilder, services: Arc<Services>) -> HostBuilder {
    builder.provide(services).register_kind::<MoneyTransfer>()
}
