//! `steadfast spawn`, `cancel` and `retry`: changes made through a client
//! host (one that never runs processes itself).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use steadfast::{Backend, Host, HostBuilder, Spawned, Status};
use steadfast_examples::{Services, register_all};

use crate::db::{self, Open};
use crate::{IdArg, SpawnArgs};

/// A client host with every example kind registered, so spawn inputs are
/// checked against the kind's input type. `services` is where those kinds'
/// services would keep their files (the folder is created).
pub fn example_client(store: Arc<dyn Backend>, services: &Path) -> anyhow::Result<Host> {
    let services = Services::open(services)
        .with_context(|| format!("cannot open the services folder {}", services.display()))?;
    Ok(register_all(HostBuilder::from_arc(store), Arc::new(services)).build_client())
}

/// A client host without kinds: enough to signal, cancel and retry (the
/// engine does not look at kinds for those), and it creates no folders.
pub fn plain_client(store: Arc<dyn Backend>) -> Host {
    HostBuilder::from_arc(store).build_client()
}

/// Runs `steadfast spawn`.
pub async fn spawn(db: &str, args: SpawnArgs) -> anyhow::Result<()> {
    serde_json::from_str::<serde_json::Value>(&args.json)
        .with_context(|| format!("the input {:?} is not valid JSON", args.json))?;
    let (store, location) = db::open(db, Open::Create).await?;
    let host = example_client(store, &db::services_for(&location))?;
    let spawned = host
        .spawn_json(&args.kind, &args.id, &args.json)
        .await
        .with_context(|| format!("spawning {:?} failed", args.id))?;
    match spawned {
        Spawned::Created => println!("created {} ({})", args.id, args.kind),
        Spawned::Existing => println!(
            "existing: {} ({}) was already spawned with this input",
            args.id, args.kind
        ),
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
        .with_context(|| format!("cancelling {:?} failed", args.id))?;
    if status == Status::Cancelled {
        println!("{} cancelled", args.id);
    } else {
        println!(
            "cancellation of {} requested: it is {status}; the worker running it cancels it at its next step",
            args.id
        );
    }
    Ok(())
}

/// Runs `steadfast retry`.
pub async fn retry(db: &str, args: IdArg) -> anyhow::Result<()> {
    let (store, _) = db::open(db, Open::Existing).await?;
    let host = plain_client(store);
    host.retry(&args.id)
        .await
        .with_context(|| format!("retrying {:?} failed", args.id))?;
    println!(
        "{} is runnable again; a worker resumes it from its journal",
        args.id
    );
    Ok(())
}
