//! Two money transfers: one goes through, one fails for lack of funds and is
//! compensated (the started debit is rolled back).
//!
//! `cargo run -p steadfast-examples --example transfer`

use std::sync::Arc;

use steadfast::{Host, SqliteStore};
use steadfast_examples::Services;
use steadfast_examples::transfer::{self, Transfer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("steadfast-example-transfer");
    let services = Arc::new(Services::open(dir.join("services"))?);
    let store = SqliteStore::open(dir.join("steadfast.db")).await?;
    let host = transfer::register(Host::builder(store), Arc::clone(&services)).build();

    let run = std::process::id();
    let (alice, bob) = (format!("alice-{run}"), format!("bob-{run}"));
    services.bank.open_account(&alice, 10_000).await?;
    services.bank.open_account(&bob, 0).await?;

    for (n, amount) in [(1, 4_000), (2, 50_000)] {
        let id = format!("transfer-{run}-{n}");
        let t = Transfer {
            from: alice.clone(),
            to: bob.clone(),
            amount,
        };
        host.spawn(transfer::KIND, &id, &t).await?;
        match host.outcome::<()>(&id).await {
            Ok(()) => println!("{id}: moved {amount} cents"),
            Err(e) => println!("{id}: {e}"),
        }
    }
    println!(
        "balances: {alice} {}, {bob} {}",
        services.bank.balance(&alice).await?,
        services.bank.balance(&bob).await?
    );
    host.shutdown().await;
    Ok(())
}
