//! The standard workload of the benchmarks and crash tests: a process of
//! ten sequential steps, each returning a ~50-byte string, no I/O.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use steadfast::{HostBuilder, Process, StepFailed};

/// The kind's name.
pub const KIND: &str = "ten steps";
/// Steps per process.
pub const STEPS: usize = 10;

/// The value step `index` of process `id` returns (about 50 bytes).
pub fn step_value(id: &str, index: usize) -> String {
    format!("step {index} of {id} done: {:0>24}", index * 7919)
}

/// The process function. When `log` is set, every run of a step closure
/// appends `"<id> <step>\n"` to it, so tests can count re-runs.
#[steadfast::process(name = KIND)]
pub async fn ten_steps(
    p: Process,
    _input: (),
    log: Option<Arc<PathBuf>>,
) -> Result<Vec<String>, StepFailed> {
    let mut values = Vec::with_capacity(STEPS);
    for index in 0..STEPS {
        let value = p
            .step(format!("step {index}"), || async {
                if let Some(log) = &log {
                    let mut file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log.as_path())?;
                    file.write_all(format!("{} {index}\n", p.id()).as_bytes())?;
                }
                Ok(step_value(p.id().as_str(), index))
            })
            .await?;
        values.push(value);
    }
    Ok(values)
}

/// Registers the kind; `log` receives one line per step closure run.
pub fn register(builder: HostBuilder, log: impl Into<Option<PathBuf>>) -> HostBuilder {
    let log = log.into().map(Arc::new);
    builder.register(KIND, move |p, input| ten_steps(p, input, log.clone()))
}
