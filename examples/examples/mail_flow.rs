//! The year-long mail flow, on a clock that runs ten million times faster
//! than real time (a year in about three seconds). The durations in the
//! process code are the real ones.
//!
//! `cargo run -p steadfast-examples --example mail_flow`

use std::sync::Arc;

use steadfast::{Host, ScaledClock, SqliteStore, Timestamp};
use steadfast_examples::{Services, mail_flow};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("steadfast-example-mail-flow");
    let services = Arc::new(Services::open(dir.join("services"))?);
    let store = SqliteStore::open(dir.join("steadfast.db")).await?;
    let host = mail_flow::register(Host::builder(store), Arc::clone(&services))
        .clock(ScaledClock::new(Timestamp::now_system(), 1.0e7))
        .build();

    let id = format!("mail-flow-{}", std::process::id());
    host.spawn(mail_flow::KIND, &id, &format!("{id}@example.com"))
        .await?;
    host.outcome::<()>(&id).await?;
    for (file, text) in services.mail.sent()? {
        if file.starts_with(&id) {
            println!("{file}: {}", text.lines().nth(1).unwrap_or_default());
        }
    }
    host.shutdown().await;
    Ok(())
}
