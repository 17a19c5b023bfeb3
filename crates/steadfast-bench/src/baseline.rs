//! `--baseline OLD_BINARY`: one workload run alternately on this binary and
//! on an older build (`--rounds` times each, the order swapped every round
//! so neither always runs first), then each figure's median on both and
//! the ratio new / old. Both runs see the same moments of a noisy machine,
//! so the ratio is worth quoting where absolute figures are not.
//!
//! The old binary is a `steadfast` command (run as `OLD bench …`) or a
//! `steadfast-bench` binary (run as `OLD …`), told apart by its file name.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use comfy_table::Table;
use serde_json::{Map, Value, json};

use crate::report::round;
use crate::{BenchArgs, Launch, WorkloadArg};

/// Figures that describe the run rather than measure it: not compared.
const SETTINGS: &[&str] = &[
    "count",
    "warm_up",
    "in_flight",
    "workers",
    "spawn_tasks",
    "sleep_ms",
    "durable_commits",
    "floor_commits",
    "floor_samples",
    "fsync_samples",
];

/// Runs `--baseline`.
pub async fn run(
    db: Option<&str>,
    args: &BenchArgs,
    workload: WorkloadArg,
    old: &Path,
    launch: &Launch,
) -> anyhow::Result<()> {
    if !old.is_file() {
        bail!(
            "--baseline {}: no such file (build the old commit, e.g. in a `git worktree`, \
             and name its target/release/steadfast)",
            old.display()
        );
    }
    let bench_args = child_args(db, args, workload);
    let new_run = launch.clone();
    let old_run = Launch::new(old, old_prefix(old));
    let rounds = usize::try_from(args.rounds).unwrap_or(1);
    let mut new = Vec::with_capacity(rounds);
    let mut previous = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [(&new_run, true), (&old_run, false)]
        } else {
            [(&old_run, false), (&new_run, true)]
        };
        for (launch, is_new) in order {
            eprintln!(
                "baseline: round {} of {rounds}, {} …",
                round + 1,
                if is_new { "this build" } else { "the baseline" }
            );
            let lines = run_once(launch, &bench_args).await?;
            if is_new {
                new.push(lines);
            } else {
                previous.push(lines);
            }
        }
    }
    let comparisons = compare(&new, &previous);
    let mut out = std::io::stdout().lock();
    for (name, comparison) in &comparisons {
        if args.json {
            let line = json!({
                "workload": name,
                "baseline": old.display().to_string(),
                "rounds": rounds,
                "figures": comparison,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "\n{}", table(name, old, rounds, comparison))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The bench arguments both binaries get: the workload and its settings,
/// `--json`, and `--db` when it was given.
fn child_args(db: Option<&str>, args: &BenchArgs, workload: WorkloadArg) -> Vec<OsString> {
    let name = match workload {
        WorkloadArg::W1 => "w1",
        WorkloadArg::W2 => "w2",
        WorkloadArg::W3 => "w3",
        WorkloadArg::W4 => "w4",
        WorkloadArg::W5 => "w5",
        WorkloadArg::W6 => "w6",
        WorkloadArg::All => "all",
    };
    let mut out: Vec<OsString> = vec!["--workload".into(), name.into(), "--json".into()];
    if let Some(count) = args.count {
        out.extend(["--count".into(), count.to_string().into()]);
    }
    if let Some(workers) = args.workers {
        out.extend(["--workers".into(), workers.to_string().into()]);
    }
    if args.durability != crate::DurabilityArg::Full {
        out.extend(["--durability".into(), args.durability.name().into()]);
    }
    if args.sleep_ms != 60_000 {
        out.extend(["--sleep-ms".into(), args.sleep_ms.to_string().into()]);
    }
    if let Some(db) = db {
        out.extend(["--db".into(), db.into()]);
    }
    out
}

/// `bench` for a `steadfast` command, nothing for a `steadfast-bench`.
fn old_prefix(old: &Path) -> Vec<OsString> {
    let name = old
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("steadfast-bench") {
        Vec::new()
    } else {
        vec!["bench".into()]
    }
}

/// One run of a binary: its JSON report lines.
async fn run_once(launch: &Launch, args: &[OsString]) -> anyhow::Result<Vec<Value>> {
    let mut cmd = launch.command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let shown = launch.exe.display().to_string();
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .context("the baseline runner panicked")?
        .with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        bail!("{shown} failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .with_context(|| format!("{shown} printed a line that is not JSON: {line}"))
        })
        .collect()
}

/// For each workload, each numeric figure present in both builds' reports:
/// the values, their medians and the ratio new / old.
fn compare(new: &[Vec<Value>], old: &[Vec<Value>]) -> BTreeMap<String, Map<String, Value>> {
    let mut out = BTreeMap::new();
    let workloads: Vec<String> = new
        .first()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l["workload"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for name in workloads {
        let reports = |runs: &[Vec<Value>]| -> Vec<Value> {
            runs.iter()
                .filter_map(|lines| lines.iter().find(|l| l["workload"] == name.as_str()))
                .cloned()
                .collect()
        };
        let (news, olds) = (reports(new), reports(old));
        let Some(first) = news.first().and_then(Value::as_object) else {
            continue;
        };
        let mut figures = Map::new();
        for key in first.keys() {
            if SETTINGS.contains(&key.as_str()) {
                continue;
            }
            let (Some(a), Some(b)) = (numbers(&news, key), numbers(&olds, key)) else {
                continue;
            };
            let (ma, mb) = (median(&a), median(&b));
            let ratio = if mb == 0.0 {
                Value::Null
            } else {
                round(ma / mb, 3).into()
            };
            figures.insert(
                key.clone(),
                json!({ "new": a, "old": b, "new_median": ma, "old_median": mb, "ratio": ratio }),
            );
        }
        out.insert(name, figures);
    }
    out
}

/// The numbers under `key` in every report (a list figure, as W5's per
/// worker count, contributes its first element); `None` unless every
/// report has one.
fn numbers(reports: &[Value], key: &str) -> Option<Vec<f64>> {
    if reports.is_empty() {
        return None;
    }
    reports
        .iter()
        .map(|r| match &r[key] {
            Value::Array(items) => items.first().and_then(Value::as_f64),
            other => other.as_f64(),
        })
        .collect()
}

/// The median (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The comparison of one workload as a table.
fn table(name: &str, old: &Path, rounds: usize, figures: &Map<String, Value>) -> String {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(vec![
        format!("{} ({rounds} rounds each, medians)", name.to_uppercase()),
        "this build".to_owned(),
        format!("baseline {}", old.display()),
        "ratio".to_owned(),
    ]);
    for (key, f) in figures {
        table.add_row(vec![
            key.clone(),
            f["new_median"].to_string(),
            f["old_median"].to_string(),
            f["ratio"].to_string(),
        ]);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let run = |p50: f64, steps: f64| {
            vec![
                json!({"workload": "w1", "count": 5, "p50_ms": p50, "steps_per_s": [steps, 1.0], "store": "sqlite"}),
            ]
        };
        let new = vec![run(2.0, 100.0), run(4.0, 300.0), run(3.0, 200.0)];
        let old = vec![run(6.0, 50.0), run(5.0, 40.0), run(7.0, 60.0)];
        let figures = &compare(&new, &old)["w1"];
        assert_eq!(figures["p50_ms"]["new_median"], 3.0);
        assert_eq!(figures["p50_ms"]["old_median"], 6.0);
        assert_eq!(figures["p50_ms"]["ratio"], 0.5);
        assert_eq!(figures["steps_per_s"]["ratio"], 4.0);
        assert!(figures.get("count").is_none(), "settings are not compared");
        assert!(figures.get("store").is_none(), "text is not compared");
    }

    #[test]
    fn old_binaries_are_told_apart() {
        assert_eq!(
            old_prefix(Path::new("/x/steadfast")),
            vec![OsString::from("bench")]
        );
        assert!(old_prefix(Path::new("/x/steadfast-bench")).is_empty());
    }
}
