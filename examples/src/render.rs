//! Tables, relative times and short previews for the terminal.

use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets};
use steadfast::{Counts, ProcessRecord, Status, Timestamp};

/// A table with the house style.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_HORIZONTAL_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    // A terminal too narrow to be real (some pseudo-terminals report a
    // width of zero) would squeeze every cell into a column of letters.
    if table.width().is_some_and(|w| w < 60) {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
    table
}

/// A spinner on standard error with `message`, for work that may take more
/// than a second; hidden when standard error is not a terminal (a pipe, a
/// file, a test), so no control characters end up in logs.
pub fn spinner(message: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A duration in its two largest units: `3s`, `5m 12s`, `2h 3m`, `29d 23h`;
/// under a second in milliseconds (`250ms`) or microseconds.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {}s", secs % 60)
    } else if secs >= 10 || (secs > 0 && d.subsec_millis() == 0) {
        format!("{secs}s")
    } else if secs > 0 {
        format!("{:.1}s", d.as_secs_f64())
    } else if d.as_millis() > 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    }
}

/// `ts` relative to `now`: `3s ago`, `in 29d 23h`, `just now`.
pub fn relative(ts: Timestamp, now: Timestamp) -> String {
    if ts <= now {
        let ago = now.saturating_since(ts);
        if ago < Duration::from_secs(1) {
            "just now".to_owned()
        } else {
            format!("{} ago", coarse(ago))
        }
    } else {
        let ahead = ts.saturating_since(now);
        if ahead < Duration::from_secs(1) {
            "now".to_owned()
        } else {
            format!("in {}", coarse(ahead))
        }
    }
}

/// Like [`duration`] but in whole seconds at least (for relative times).
fn coarse(d: Duration) -> String {
    duration(Duration::from_secs(d.as_secs().max(1)))
}

/// What a process waits for or what it is doing, in a few words:
/// `signal: email verified`, `timer in 29d 23h`, `runnable`, ...
pub fn waits(record: &ProcessRecord, now: Timestamp) -> String {
    match record.status {
        Status::Suspended => {
            let mut parts = Vec::new();
            if !record.waiting_for.is_empty() {
                let plural = if record.waiting_for.len() > 1 {
                    "s"
                } else {
                    ""
                };
                parts.push(format!("signal{plural}: {}", record.waiting_for.join(", ")));
            }
            if let Some(wake) = record.wake_at {
                if wake > now {
                    parts.push(format!("timer {}", relative(wake, now)));
                } else {
                    // A timer came due or a signal arrived: a worker picks
                    // it up at its next look at the store.
                    parts.push("wakes now".to_owned());
                }
            }
            if parts.is_empty() {
                "nothing (suspended)".to_owned()
            } else {
                parts.join(" · ")
            }
        }
        Status::Running => match &record.owner {
            Some(owner) => format!("running on host {}", short_host(owner)),
            None => "runnable".to_owned(),
        },
        Status::Blocked => match &record.blocked_step {
            Some(step) => format!("retry (blocked at {step:?})"),
            None => "retry (blocked)".to_owned(),
        },
        _ => {
            if record.cancel_requested && !record.status.is_finished() {
                "cancellation".to_owned()
            } else {
                String::new()
            }
        }
    }
}

/// A note for output whose timestamps lie ahead of this machine's clock,
/// as they do when a worker ran with `--time-scale` (the demo does).
pub fn future_note(latest: Option<Timestamp>, now: Timestamp) -> Option<String> {
    let latest = latest?;
    (latest > now + Duration::from_secs(60)).then(|| {
        format!(
            "note: times run up to {} ahead of this machine's clock (written on a scaled clock, e.g. by `steadfast demo`)",
            coarse(latest.saturating_since(now))
        )
    })
}

/// The first 8 characters of a host id (UUIDs are long).
fn short_host(owner: &str) -> &str {
    owner.get(..8).unwrap_or(owner)
}

/// `s` on one line, at most `max` characters (an ellipsis marks a cut).
pub fn preview(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// `running 2 · suspended 1 · completed 5 (8 in total)`.
pub fn counts(counts: &Counts) -> String {
    let total = counts.total();
    if total == 0 {
        return "no processes".to_owned();
    }
    let mut parts = Vec::new();
    for status in Status::ALL {
        if let Some(c) = counts.by_status.iter().find(|c| c.status == status) {
            parts.push(format!("{status} {}", c.count));
        }
    }
    if counts.unreadable > 0 {
        parts.push(format!("unreadable {}", counts.unreadable));
    }
    format!("{} ({total} in total)", parts.join(" · "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_secs(3)), "3s");
        assert_eq!(duration(Duration::from_millis(3200)), "3.2s");
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(312)), "5m 12s");
        assert_eq!(
            duration(Duration::from_secs(29 * 86_400 + 23 * 3600)),
            "29d 23h"
        );
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn relative_times() {
        let now = Timestamp::from_micros(1_000_000_000_000);
        assert_eq!(relative(now - Duration::from_secs(3), now), "3s ago");
        assert_eq!(
            relative(now + Duration::from_secs(30 * 86_400 - 5), now),
            "in 29d 23h"
        );
        assert_eq!(relative(now, now), "just now");
    }

    #[test]
    fn previews() {
        assert_eq!(preview("a\n  b", 60), "a b");
        assert_eq!(preview("abcdef", 4), "abc…");
    }
}
