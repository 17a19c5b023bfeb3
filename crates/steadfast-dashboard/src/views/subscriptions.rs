//! The subscriptions page: what each running subscription saved in the
//! store (per name and host), rows not saved for a while marked stale.

use std::time::Duration;

use maud::{Markup, html};
use steadfast::Timestamp;
use steadfast::core::SubscriptionReport;

use super::{duration, preview, rel_time};

/// A row whose figures were saved longer ago than this is marked stale: a
/// running subscription saves them every second when they change and at
/// least every ten seconds (with the default interval), so its worker has
/// stopped or cannot reach the store.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Whether `report` was saved longer than [`STALE_AFTER`] before `now`.
pub fn is_stale(report: &SubscriptionReport, now: Timestamp) -> bool {
    now.saturating_since(report.updated_at) > STALE_AFTER
}

/// The page body: the table in a self-refreshing box.
pub fn body(reports: &[SubscriptionReport], now: Timestamp) -> Markup {
    html! {
        h1 { "Subscriptions" }
        p.muted {
            "Messages each subscription received from its broker, routed into spawns and signals, and dead-lettered, "
            "and the messages waiting at the broker (the consumer lag), as each worker last saved them. "
            "Counts are per worker since it started the subscription; a row not saved for "
            (duration(STALE_AFTER)) " is stale (the worker stopped or cannot reach the store)."
        }
        (super::live_box("/live/subscriptions", live_part(reports, now)))
    }
}

/// The part that refreshes itself: the table.
pub fn live_part(reports: &[SubscriptionReport], now: Timestamp) -> Markup {
    html! {
        @if reports.is_empty() {
            p.notice { "No subscription has saved its figures in this store yet." }
        } @else {
            table.subscriptions {
                thead { tr {
                    th { "subscription" } th { "source" } th { "host" }
                    th.num { "received" } th.num { "routed" } th.num { "dead-lettered" }
                    th.num { "lag" } th { "last dead-letter reason" } th { "saved" }
                } }
                tbody {
                    @for r in reports {
                        @let stale = is_stale(r, now);
                        tr.stale[stale] data-subscription=(r.name) data-stale=(stale) {
                            td { code { (r.name) } @if stale { " " span.badge.stale title="not saved recently: the worker stopped or cannot reach the store" { "stale" } } }
                            td { (r.source) }
                            td { code { (r.host) } }
                            td.num { (r.received) }
                            td.num { (r.routed) }
                            td.num { (r.dead_lettered) }
                            td.num {
                                @match r.lag {
                                    Some(lag) => { (lag) }
                                    None => { span.muted { "unknown" } }
                                }
                                @if let Some(at) = r.lag_read_at { br; span.muted { "read " (rel_time(at)) } }
                            }
                            td.reason { @if let Some(reason) = &r.last_dead_letter_reason { (preview(reason, 300)) } }
                            td { (rel_time(r.updated_at)) }
                        }
                    }
                }
            }
        }
        (super::clock_note(reports.iter().map(|r| r.updated_at).max(), now))
    }
}
