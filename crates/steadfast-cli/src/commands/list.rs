//! `steadfast list`: processes as a table (or JSON), then counts per status.

use anyhow::Context;
use steadfast::{ListFilter, Listed, ProcessId, Status, Timestamp};

use crate::db::{self, Open};
use crate::{ListArgs, render};

/// Runs `steadfast list`.
pub async fn run(db: &str, args: ListArgs) -> anyhow::Result<()> {
    let status = args.status.as_deref().map(parse_status).transpose()?;
    let after = args
        .after
        .map(ProcessId::new)
        .transpose()
        .context("--after is not a valid process id")?;
    let filter = ListFilter {
        status,
        kind: args.kind,
        id_prefix: args.prefix,
        after,
        limit: usize::try_from(args.limit).unwrap_or(usize::MAX),
        ..ListFilter::default()
    };
    let (store, _) = db::open(db, Open::ReadOnly).await?;
    let records = store
        .list(&filter)
        .await
        .context("listing processes failed")?;
    if args.json {
        // A row that does not decode is an object with its id and the error.
        let rows: Vec<serde_json::Value> = records
            .iter()
            .map(|row| match row {
                Listed::Process(record) => crate::json::record(record),
                Listed::Unreadable { id, error } => {
                    serde_json::json!({ "id": id, "unreadable": error.to_string() })
                }
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    let now = Timestamp::now_system();
    if records.is_empty() {
        outln!("no processes match")?;
    } else {
        let mut table = render::table(["id", "kind", "status", "waits / wakes", "updated"]);
        for row in &records {
            match row {
                Listed::Process(r) => table.add_row([
                    r.id.to_string(),
                    r.kind.clone(),
                    r.status.to_string(),
                    render::waits(r, now),
                    render::relative(r.updated_at, now),
                ]),
                Listed::Unreadable { id, error } => table.add_row([
                    id.clone(),
                    "?".to_owned(),
                    "unreadable".to_owned(),
                    format!("row does not decode: {error}"),
                    String::new(),
                ]),
            };
        }
        outln!("{table}")?;
    }
    let newest = records
        .iter()
        .filter_map(Listed::record)
        .map(|r| r.updated_at)
        .max();
    if let Some(note) = render::future_note(newest, now) {
        outln!("{note}")?;
    }
    let counts = store.counts().await.context("counting processes failed")?;
    outln!("{}", render::counts(&counts))?;
    if records.len() as u64 == args.limit
        && let Some(last) = records.last()
    {
        outln!("(more may follow: add --after {:?})", last.id())?;
    }
    Ok(())
}

/// Parses a status name, listing the valid ones when it is none of them.
pub fn parse_status(name: &str) -> anyhow::Result<Status> {
    name.to_ascii_lowercase().parse::<Status>().map_err(|_| {
        let valid: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        anyhow::anyhow!(
            "unknown status {name:?}; valid statuses: {}",
            valid.join(", ")
        )
    })
}
