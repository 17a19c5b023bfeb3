//! Reads what hosts report through the `metrics` facade: the test binary
//! installs the Prometheus exporter once as its recorder, and tests read the
//! series of their own host (by its `host` label) from the rendered text.
#![allow(dead_code)]

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The test binary's recorder (installed on first use: call it before
/// building a host whose metrics the test reads).
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(&[0.001, 0.01, 0.1, 1.0, 10.0, 100.0])
            .expect("buckets")
            .install_recorder()
            .expect("no other recorder in this test binary")
    })
}

/// The sum over the series of `name` carrying `host="HOST"` and every
/// `label="value"` of `with` (0 when there is none).
pub fn sum(host: &str, name: &str, with: &[(&str, &str)]) -> f64 {
    let text = install().render();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let has = |k: &str, v: &str| labels.split(',').any(|kv| kv == format!("{k}=\"{v}\""));
            (has("host", host) && with.iter().all(|(k, v)| has(k, v)))
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Everything the recorder holds, for failure messages.
pub fn text() -> String {
    install().render()
}
