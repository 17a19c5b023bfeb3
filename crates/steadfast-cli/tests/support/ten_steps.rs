//! Checks shared by the crash tests of the ten-step workload.

use std::collections::HashMap;
use std::path::Path;

use steadfast::{Backend, EntryStatus, ListFilter, Status};
use steadfast_examples::workload::{STEPS, step_value};

/// The store holds exactly `n` processes, every one completed with exactly
/// its ten journal entries `step 0..9` holding the values the steps return,
/// and an output of ten values.
pub async fn assert_journals_intact(store: &dyn Backend, n: usize) {
    let all = store
        .list(&ListFilter {
            limit: n + 1,
            ..ListFilter::default()
        })
        .await
        .expect("list")
        .into_iter()
        .map(|row| row.into_record().expect("every row decodes"))
        .collect::<Vec<_>>();
    assert_eq!(all.len(), n);
    for record in &all {
        assert_eq!(record.status, Status::Completed, "{record:?}");
        let journal = store.journal(&record.id).await.expect("journal");
        assert_eq!(journal.len(), STEPS, "{}: {journal:?}", record.id);
        for (index, entry) in journal.iter().enumerate() {
            assert_eq!(entry.name, format!("step {index}"));
            assert_eq!(entry.status, EntryStatus::Completed);
            let value: String =
                serde_json::from_str(entry.outcome.as_deref().expect("outcome")).expect("json");
            assert_eq!(value, step_value(record.id.as_str(), index));
        }
        let output: Vec<String> =
            serde_json::from_str(record.output.as_deref().expect("output")).expect("output json");
        assert_eq!(output.len(), STEPS);
    }
}

/// Closure runs from the workers' run log in `services`: how many distinct
/// steps ran, how many runs were repeats, and the most runs of one step.
pub fn closure_runs(services: &Path) -> (usize, usize, usize) {
    let log = std::fs::read_to_string(services.join("step-runs.log")).expect("run log");
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in log.lines() {
        *runs.entry(line).or_default() += 1;
    }
    let reran = runs.values().map(|n| n - 1).sum();
    let worst = runs.values().max().copied().unwrap_or(0);
    (runs.len(), reran, worst)
}
