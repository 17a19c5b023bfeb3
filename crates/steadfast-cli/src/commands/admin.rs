//! `steadfast spawn`, `cancel` and `retry`: changes made through a
//! [`Client`] (it never runs processes itself).

use std::sync::Arc;

use anyhow::Context;
use steadfast::{Backend, Client, Spawned, Status, shorten};

use crate::db::{self, Open};
use crate::input;
use crate::kinds::Kinds;
use crate::{CheckArgs, IdArg, PurgeArgs, RewindArgs, SpawnArgs};

/// A client without kinds: enough to signal, cancel and retry (the engine
/// does not look at kinds for those), and it creates no folders.
pub fn plain_client(store: Arc<dyn Backend>) -> Client {
    Client::from_arc(store)
}

/// Runs `steadfast spawn`.
pub async fn spawn(db: &str, args: SpawnArgs, kinds: &Kinds) -> anyhow::Result<()> {
    let input = input::json_arg(&args.json, "the input")?;
    // Without kinds, say so before anything is created.
    kinds.require("spawn")?;
    let (store, location) = db::open(db, Open::Create).await?;
    let host = kinds.client(store, &db::services_for(&location), "spawn")?;
    let spawned = host
        .spawn_json(&args.kind, &args.id, &input)
        .await
        .with_context(|| format!("spawning {:?} failed", shorten(&args.id)))?;
    if args.print_json {
        let spawned = match spawned {
            Spawned::Created => "created",
            Spawned::Existing => "existing",
        };
        let doc = serde_json::json!({ "id": args.id, "kind": args.kind, "spawned": spawned });
        outln!("{doc}")?;
        return Ok(());
    }
    match spawned {
        Spawned::Created => outln!("created {} ({})", args.id, args.kind)?,
        Spawned::Existing => outln!(
            "existing: {} ({}) was already spawned with this input",
            args.id,
            args.kind
        )?,
    }
    Ok(())
}

/// Runs `steadfast cancel`.
pub async fn cancel(db: &str, args: IdArg) -> anyhow::Result<()> {
    let (store, _) = db::open(db, Open::Existing).await?;
    let host = plain_client(store);
    let status = host
        .cancel(&args.id)
        .await
        .with_context(|| format!("cancelling {:?} failed", shorten(&args.id)))?;
    if args.json {
        let doc = serde_json::json!({
            "id": args.id,
            "status": status,
            "cancelled": status == Status::Cancelled,
        });
        outln!("{doc}")?;
    } else if status == Status::Cancelled {
        outln!("{} cancelled", args.id)?;
    } else {
        outln!(
            "cancellation of {} requested: it is {status}; the worker running it cancels it at its next step",
            args.id
        )?;
    }
    Ok(())
}

/// Runs `steadfast retry`.
pub async fn retry(db: &str, args: IdArg) -> anyhow::Result<()> {
    let (store, _) = db::open(db, Open::Existing).await?;
    let host = plain_client(store);
    host.retry(&args.id)
        .await
        .with_context(|| format!("retrying {:?} failed", shorten(&args.id)))?;
    if args.json {
        outln!("{}", serde_json::json!({ "id": args.id, "runnable": true }))?;
        return Ok(());
    }
    outln!(
        "{} is runnable again; a worker resumes it from its journal",
        args.id
    )?;
    Ok(())
}

/// Asks `question` on a terminal; without one, `--yes` is required.
fn confirmed(question: &str, yes: bool) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question} Pass --yes to confirm (standard input is not a terminal)");
    }
    out!("{question} [y/N] ")?;
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Runs `steadfast rewind`.
pub async fn rewind(db: &str, args: RewindArgs) -> anyhow::Result<()> {
    let (store, _) = db::open(db, Open::Existing).await?;
    let id = steadfast::ProcessId::new(args.id.as_str())?;
    let journal = store.journal(&id).await?;
    let Some(at) = journal.iter().position(|e| e.name == args.step) else {
        let names: Vec<&str> = journal.iter().map(|e| e.name.as_str()).collect();
        anyhow::bail!(
            "process {:?} has no journal entry named {:?}; its entries are {names:?}",
            args.id,
            shorten(&args.step)
        );
    };
    let dropped: Vec<&str> = journal[at..].iter().map(|e| e.name.as_str()).collect();
    let question = format!(
        "Rewinding {} drops {} journal entries ({}) and runs it again from {:?}.",
        args.id,
        dropped.len(),
        dropped.join(", "),
        args.step
    );
    if !confirmed(&question, args.yes)? {
        outln!("nothing changed")?;
        return Ok(());
    }
    let host = plain_client(store);
    let n = host
        .rewind(&args.id, &args.step)
        .await
        .with_context(|| format!("rewinding {:?} failed", shorten(&args.id)))?;
    outln!(
        "{} rewound to {:?}: {n} entries dropped; a worker runs it again from there",
        args.id,
        args.step
    )?;
    Ok(())
}

/// Runs `steadfast purge`.
pub async fn purge(db: &str, args: PurgeArgs) -> anyhow::Result<()> {
    if !(args.older_than.is_finite() && args.older_than >= 0.0) {
        anyhow::bail!(
            "--older-than takes a number of hours, not {}",
            args.older_than
        );
    }
    let age = std::time::Duration::from_secs_f64(args.older_than * 3600.0);
    let question = format!(
        "Delete every completed, failed or cancelled process that finished more than {} hours ago, with its journal?",
        args.older_than
    );
    if !confirmed(&question, args.yes)? {
        outln!("nothing changed")?;
        return Ok(());
    }
    let (store, _) = db::open(db, Open::Existing).await?;
    let spinner = crate::render::spinner("purging finished processes…");
    let n = plain_client(store)
        .purge(age)
        .await
        .context("purging failed")?;
    spinner.finish_and_clear();
    if args.json {
        outln!("{}", serde_json::json!({ "purged": n }))?;
        return Ok(());
    }
    outln!("{n} finished processes purged")?;
    Ok(())
}

/// Runs `steadfast check`.
pub async fn check(db: &str, args: CheckArgs, kinds: &Kinds) -> anyhow::Result<()> {
    let (store, _) = db::open(db, Open::ReadOnly).await?;
    // A dry replay runs no closure, so the kinds' services are never used:
    // they get a throwaway folder, and nothing beside the database changes.
    let services = tempfile::tempdir().context("cannot create a temporary folder")?;
    // Checking needs the kinds' functions: a host that is built but runs
    // nothing (`check` only replays).
    let host = kinds
        .register(
            steadfast::HostBuilder::from_arc(store),
            services.path(),
            "check",
        )?
        .build_client();
    let spinner = crate::render::spinner("replaying journals…");
    let reports = host.check().await.context("checking the journals failed")?;
    spinner.finish_and_clear();
    let blocking = reports
        .iter()
        .filter(|r| !matches!(r.verdict, steadfast::Verdict::Fits))
        .count();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reports)?)?;
    } else {
        for r in &reports {
            match &r.verdict {
                steadfast::Verdict::Fits => outln!("fits    {} ({})", r.id, r.kind)?,
                steadfast::Verdict::Blocks { step, reason } => outln!(
                    "BLOCKS  {} ({}) at {}: {reason}",
                    r.id,
                    r.kind,
                    step.as_deref().unwrap_or("-")
                )?,
                other => outln!("?       {} ({}): {other:?}", r.id, r.kind)?,
            }
        }
        outln!(
            "{} unfinished processes checked, {blocking} would not carry on",
            reports.len()
        )?;
    }
    if blocking > 0 {
        anyhow::bail!("{blocking} processes' journals do not fit this code");
    }
    Ok(())
}
