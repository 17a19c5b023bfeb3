//! Onboarding end to end: spawn, read the verification mail, confirm, done.
//!
//! `cargo run -p steadfast-examples --example onboarding`

use std::sync::Arc;
use std::time::Duration;

use steadfast::{Host, SqliteStore};
use steadfast_examples::Services;
use steadfast_examples::onboarding::{self, Onboarding, Signup, VERIFIED, Verification};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("steadfast-example-onboarding");
    let services = Arc::new(Services::open(dir.join("services"))?);
    let store = SqliteStore::open(dir.join("steadfast.db")).await?;
    let host = onboarding::register(Host::builder(store), Arc::clone(&services)).build();

    let id = format!("onboarding-{}", std::process::id());
    let signup = Signup {
        email: format!("{id}@example.com"),
    };
    let handle = host.start::<Onboarding>(&id, &signup).await?;
    println!("spawned {id}; waiting for the verification mail…");

    // The user opens the mail and types the code: here we read it from the mailbox.
    let secret = loop {
        let mail = services
            .mail
            .sent()?
            .into_iter()
            .find(|(name, _)| name.starts_with(&id));
        if let Some((_, text)) = mail {
            break text.rsplit(' ').next().unwrap_or_default().trim().parse()?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    handle.signal(VERIFIED, &Verification { secret }).await?;

    let done = handle.outcome().await?;
    println!("{} is active as user {}", signup.email, done.user_id);
    println!("journal and mails are under {}", dir.display());
    host.shutdown().await;
    Ok(())
}
