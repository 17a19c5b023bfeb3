//! `steadfast signals ID`: a process's signals, pending and settled.

use anyhow::Context;
use steadfast::{ProcessId, SignalRecord, SignalState, Timestamp};

use crate::db::{self, Open};
use crate::{SignalsArgs, render};

/// The longest payload preview in the table.
const PREVIEW: usize = 40;

/// Runs `steadfast signals`.
pub async fn run(db: &str, args: SignalsArgs) -> anyhow::Result<()> {
    let id = ProcessId::new(args.id.as_str()).context("not a valid process id")?;
    let (store, _) = db::open(db, Open::Existing).await?;
    let mut signals = store.signals(&id).await?;
    if args.pending {
        signals.retain(|s| s.state == SignalState::Pending);
    }
    if args.json {
        let signals: Vec<serde_json::Value> = signals.iter().map(crate::json::signal).collect();
        outln!("{}", serde_json::to_string_pretty(&signals)?)?;
        return Ok(());
    }
    if signals.is_empty() {
        let which = if args.pending {
            "pending signals"
        } else {
            "signals"
        };
        outln!("{id} has no {which}")?;
        return Ok(());
    }
    outln!("{}", table(&signals, Timestamp::now_system()))?;
    Ok(())
}

/// Signals as a table: id, name, state, when sent and settled, payload,
/// and the reason of a rejection.
pub fn table(signals: &[SignalRecord], now: Timestamp) -> comfy_table::Table {
    let mut table = render::table([
        "id", "name", "state", "sent", "settled", "payload", "reason",
    ]);
    for s in signals {
        table.add_row([
            s.id.to_string(),
            s.name.clone(),
            s.state.to_string(),
            render::relative(s.sent_at, now),
            s.settled_at
                .map(|t| render::relative(t, now))
                .unwrap_or_default(),
            render::preview(&s.payload, PREVIEW),
            s.reason.clone().unwrap_or_default(),
        ]);
    }
    table
}
