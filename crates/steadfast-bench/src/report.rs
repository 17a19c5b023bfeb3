//! The result of one workload: named figures in a fixed order, printed as
//! a table or as one JSON line; and the statistics they are made of.

use std::time::Duration;

use comfy_table::Table;
use serde_json::Value;

use super::sys::Machine;

/// The figures of one workload run, in the order they were added.
#[derive(Debug)]
pub struct Report {
    workload: &'static str,
    title: &'static str,
    fields: Vec<(&'static str, Value)>,
    notes: Vec<String>,
}

impl Report {
    /// An empty report of `workload` ("w1" …) titled `title`.
    pub fn new(workload: &'static str, title: &'static str) -> Self {
        Report {
            workload,
            title,
            fields: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds (or replaces) the figure `key`.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key, value)),
        }
        self
    }

    /// Adds a duration in milliseconds, rounded to microseconds.
    pub fn ms(&mut self, key: &'static str, d: Duration) -> &mut Self {
        self.set(key, round(d.as_secs_f64() * 1e3, 3))
    }

    /// Adds a duration in seconds, rounded to milliseconds.
    pub fn secs(&mut self, key: &'static str, d: Duration) -> &mut Self {
        self.set(key, round(d.as_secs_f64(), 3))
    }

    /// Adds a number rounded to `digits` decimals.
    pub fn num(&mut self, key: &'static str, x: f64, digits: i32) -> &mut Self {
        self.set(key, round(x, digits))
    }

    /// Adds a sentence that explains a figure (printed under the table and
    /// as `"notes"` in JSON).
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }

    /// The figure `key`, if set.
    #[cfg_attr(not(feature = "bus"), cfg(test))]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// One JSON object on one line: `"workload"`, the figures in order,
    /// `"notes"` and `"machine"`.
    pub fn json_line(&self, machine: &Machine) -> String {
        let mut parts = Vec::with_capacity(self.fields.len() + 3);
        parts.push(pair("workload", &Value::from(self.workload)));
        for (key, value) in &self.fields {
            parts.push(pair(key, value));
        }
        parts.push(pair("notes", &Value::from(self.notes.clone())));
        parts.push(pair("machine", &machine.json()));
        format!("{{{}}}", parts.join(","))
    }

    /// A two-column table headed by the workload's title, notes below.
    pub fn table(&self) -> String {
        let mut table = Table::new();
        table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        table.set_header(vec![
            format!("{} {}", self.workload.to_uppercase(), self.title),
            String::new(),
        ]);
        for (key, value) in &self.fields {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            table.add_row(vec![(*key).to_owned(), shown]);
        }
        let mut text = table.to_string();
        for note in &self.notes {
            text.push_str("\n  note: ");
            text.push_str(note);
        }
        text
    }
}

/// `"key":value` (the key escaped as JSON).
fn pair(key: &str, value: &Value) -> String {
    format!("{}:{}", Value::from(key), value)
}

/// `x` rounded to `digits` decimals (non-finite values become 0, which JSON
/// can carry).
pub fn round(x: f64, digits: i32) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Latency statistics of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// The median (nearest rank).
    pub p50: Duration,
    /// The 99th percentile (nearest rank).
    pub p99: Duration,
    /// The mean.
    pub mean: Duration,
    /// The largest value.
    pub max: Duration,
}

impl Stats {
    /// The statistics of `samples` (all zero when there are none).
    pub fn of(samples: &[Duration]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        let mean = u32::try_from(sorted.len())
            .ok()
            .filter(|n| *n > 0)
            .map(|n| total / n)
            .unwrap_or_default();
        Stats {
            p50: percentile(&sorted, 50.0),
            p99: percentile(&sorted, 99.0),
            mean,
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// The nearest-rank percentile `p` of an ascending `sorted` sample.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: the smallest value with at least p% of the sample at or
    // below it. Sample sizes are far below 2^52, so the f64 math is exact.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sample: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let stats = Stats::of(&sample);
        assert_eq!(stats.p50, ms(50));
        assert_eq!(stats.p99, ms(99));
        assert_eq!(stats.max, ms(100));
        assert_eq!(stats.mean, Duration::from_micros(50_500));
        let one = Stats::of(&[ms(7)]);
        assert_eq!((one.p50, one.p99, one.max), (ms(7), ms(7), ms(7)));
        assert_eq!(Stats::of(&[]).p99, Duration::ZERO);
    }

    #[test]
    fn json_line_keeps_order_and_escapes() {
        let mut report = Report::new("w1", "latency");
        report
            .set("count", 5u64)
            .ms("p50_ms", ms(3))
            .note("a \"quoted\" note");
        report.set("count", 6u64);
        assert_eq!(report.get("count"), Some(&Value::from(6u64)));
        let machine = Machine::default();
        let line = report.json_line(&machine);
        assert!(line.starts_with(
            r#"{"workload":"w1","count":6,"p50_ms":3.0,"notes":["a \"quoted\" note"]"#
        ));
        let parsed: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["workload"], "w1");
        assert!(!line.contains('\n'));
        assert!(report.table().contains("p50_ms"));
    }

    #[test]
    fn rounding() {
        assert_eq!(round(1.23456, 3), 1.235);
        assert_eq!(round(f64::NAN, 3), 0.0);
    }
}
