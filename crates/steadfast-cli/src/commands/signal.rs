//! `steadfast signal ID NAME JSON` and `steadfast signal discard ID SIGNAL_ID`.

use anyhow::Context;

use steadfast::shorten;

use crate::commands::admin;
use crate::db::{self, Open};
use crate::input;
use crate::{DiscardArgs, SignalAction, SignalArgs, SignalCommand};

/// Runs `steadfast signal`: sends, or discards with `discard`.
pub async fn dispatch(db: &str, cmd: SignalCommand) -> anyhow::Result<()> {
    match (cmd.action, cmd.send) {
        (Some(SignalAction::Discard(args)), _) => discard(db, args).await,
        (None, Some(args)) => run(db, args).await,
        (None, None) => anyhow::bail!("give the process id, the signal name and a JSON payload"),
    }
}

/// Runs `steadfast signal discard`.
async fn discard(db: &str, args: DiscardArgs) -> anyhow::Result<()> {
    let (store, _) = db::open(db, Open::Existing).await?;
    let host = admin::plain_client(store);
    host.discard_signal(&args.id, args.signal_id)
        .await
        .with_context(|| {
            format!(
                "discarding signal {} of {:?} failed",
                args.signal_id, args.id
            )
        })?;
    outln!(
        "signal {} of {} discarded (it will not be delivered)",
        args.signal_id,
        shorten(&args.id)
    )?;
    Ok(())
}

/// Runs `steadfast signal`.
pub async fn run(db: &str, args: SignalArgs) -> anyhow::Result<()> {
    // Check the payload before touching the database.
    let payload = input::json_arg(&args.json, "the payload")?;
    if args.name.is_empty() {
        anyhow::bail!("the signal name must not be empty");
    }
    let (store, _) = db::open(db, Open::Existing).await?;
    let host = admin::plain_client(store);
    host.signal_json(&args.id, &args.name, &payload)
        .await
        .with_context(|| {
            format!(
                "sending signal {:?} to {:?} failed",
                shorten(&args.name),
                shorten(&args.id)
            )
        })?;
    outln!(
        "signal {:?} sent to {} (stored; a worker delivers it)",
        args.name,
        args.id
    )?;
    Ok(())
}
