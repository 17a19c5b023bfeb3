//! `Host::check`: replays every unfinished process's journal against the
//! code this host runs, without running a step or writing anything, and
//! reports each process that would block.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use steadfast_core::{HostId, Lease, ListFilter, Listed, ProcessId, ProcessRecord, Status};

use crate::context::RunCtx;
use crate::error::Error;
use crate::run::{self, Verdict};
use crate::shared::Shared;
use crate::{Host, Process};

/// How long a dry run may take before it is called inconclusive.
const DRY_RUN_LIMIT: Duration = Duration::from_secs(10);

/// The result of [`Host::check`] for one process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The process.
    pub id: ProcessId,
    /// Its kind.
    pub kind: String,
    /// Its status now.
    pub status: Status,
    /// What the replay showed.
    pub verdict: Verdict,
}

impl Host {
    /// Replays the journal of every unfinished process (running, suspended
    /// or blocked) against the process kinds registered on this host,
    /// without running any step or changing anything stored, and reports
    /// whether each journal still fits the code. Run it before a deploy
    /// with the new code's kinds registered on a client host.
    pub async fn check(&self) -> Result<Vec<CheckReport>, Error> {
        let shared = self.shared();
        let mut reports = Vec::new();
        for status in [Status::Running, Status::Suspended, Status::Blocked] {
            let mut filter = ListFilter {
                status: Some(status),
                limit: 500,
                ..ListFilter::default()
            };
            loop {
                let page = shared.store.list(&filter).await?;
                for listed in &page {
                    let record = match listed {
                        Listed::Process(record) => record,
                        Listed::Unreadable { id, error } => {
                            // Reported, not replayed: its stored row does
                            // not decode.
                            if let Ok(id) = ProcessId::new(id.as_str()) {
                                reports.push(CheckReport {
                                    id,
                                    kind: String::new(),
                                    status,
                                    verdict: Verdict::Inconclusive {
                                        reason: format!("the stored row does not decode: {error}"),
                                    },
                                });
                            }
                            continue;
                        }
                    };
                    let verdict = dry_run(shared, record).await?;
                    reports.push(CheckReport {
                        id: record.id.clone(),
                        kind: record.kind.clone(),
                        status: record.status,
                        verdict,
                    });
                }
                match page.last() {
                    Some(last) if page.len() == filter.limit => match ProcessId::new(last.id()) {
                        Ok(after) => filter.after = Some(after),
                        Err(_) => break,
                    },
                    _ => break,
                }
            }
        }
        reports.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(reports)
    }
}

/// Replays one process without letting it do anything new.
async fn dry_run(shared: &Arc<Shared>, record: &ProcessRecord) -> Result<Verdict, Error> {
    let kind = match shared.kinds.get(&record.kind, record.version) {
        Ok(kind) => kind,
        Err(reason) => {
            return Ok(Verdict::Blocks { step: None, reason });
        }
    };
    let journal = shared.store.journal(&record.id).await?;
    let lease = Lease {
        id: record.id.clone(),
        owner: HostId::new("steadfast check"),
        epoch: -1,
    };
    let mut ctx = RunCtx::new(shared.run_host(), lease, &record.kind, journal, Vec::new());
    ctx.dry_run = true;
    let ctx = Arc::new(ctx);
    let process = Process::new(Arc::clone(&ctx));
    let future = match kind.start(process, &record.input) {
        Ok(future) => future,
        Err(err) => {
            return Ok(Verdict::Blocks {
                step: None,
                reason: format!(
                    "the stored input no longer decodes into {}: {err}",
                    kind.input_type
                ),
            });
        }
    };
    Ok(
        match tokio::time::timeout(DRY_RUN_LIMIT, run::dry_drive(shared, &ctx, future)).await {
            Ok(verdict) => verdict,
            Err(_) => Verdict::Inconclusive {
                reason: format!(
                    "the function awaited something that is not durable for {DRY_RUN_LIMIT:?}"
                ),
            },
        },
    )
}
