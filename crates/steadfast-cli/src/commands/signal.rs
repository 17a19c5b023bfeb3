//! `steadfast signal ID NAME JSON`.

use anyhow::Context;

use crate::SignalArgs;
use crate::commands::admin;
use crate::db::{self, Open};

/// Runs `steadfast signal`.
pub async fn run(db: &str, args: SignalArgs) -> anyhow::Result<()> {
    // Check the payload before touching the database.
    let payload: serde_json::Value = serde_json::from_str(&args.json)
        .with_context(|| format!("the payload {:?} is not valid JSON", args.json))?;
    if args.name.is_empty() {
        anyhow::bail!("the signal name must not be empty");
    }
    let (store, _) = db::open(db, Open::Existing).await?;
    let host = admin::plain_client(store);
    host.signal(&args.id, &args.name, &payload)
        .await
        .with_context(|| format!("sending signal {:?} to {:?} failed", args.name, args.id))?;
    println!(
        "signal {:?} sent to {} (stored; a worker delivers it)",
        args.name, args.id
    );
    Ok(())
}
