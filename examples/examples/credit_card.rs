//! The credit-card flow: a first transaction arrives before the five-minute
//! inactivity timer, then the card is deleted.
//!
//! `cargo run -p steadfast-examples --example credit_card`

use std::sync::Arc;
use std::time::Duration;

use steadfast::{Host, SqliteStore, Status};
use steadfast_examples::Services;
use steadfast_examples::credit_card::{self, Card, Transaction};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("steadfast-example-credit-card");
    let services = Arc::new(Services::open(dir.join("services"))?);
    let store = SqliteStore::open(dir.join("steadfast.db")).await?;
    let host = credit_card::register(Host::builder(store), Arc::clone(&services)).build();

    let id = format!("card-{}", std::process::id());
    host.spawn(
        credit_card::KIND,
        &id,
        &Card {
            email: format!("{id}@example.com"),
        },
    )
    .await?;
    while host.status(&id).await?.status != Status::Suspended {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tx = Transaction {
        amount: 1_250,
        merchant: "Coffee Corner".into(),
    };
    host.signal(&id, credit_card::FIRST_TRANSACTION, &tx)
        .await?;
    // Let the customer enjoy the card a little before deleting it.
    let sent = |id: &str| -> anyhow::Result<usize> {
        Ok(services
            .mail
            .sent()?
            .iter()
            .filter(|(f, _)| f.starts_with(id))
            .count())
    };
    while sent(&id)? < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    host.signal(&id, credit_card::CARD_DELETED, &()).await?;
    host.outcome::<()>(&id).await?;
    for (file, text) in services.mail.sent()? {
        if file.starts_with(&id) {
            println!("{file}: {}", text.lines().nth(1).unwrap_or_default());
        }
    }
    host.shutdown().await;
    Ok(())
}
