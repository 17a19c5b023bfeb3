//! The confirmation page of a bulk action.

use maud::{Markup, html};
use steadfast::ProcessRecord;

use super::list::ListQuery;
use super::{csrf_field, process_url, status_badge};

/// How many of the processes a bulk action touches are listed by id.
const LISTED: usize = 50;

/// Asks to confirm `action` (cancel or retry) on `targets` (those of the
/// `matching` processes it applies to).
pub fn confirm(
    action: &str,
    filters: &ListQuery,
    targets: &[&ProcessRecord],
    matching: usize,
    csrf: &str,
    back: &str,
) -> Markup {
    let verb = if action == "cancel" {
        "Cancel"
    } else {
        "Retry"
    };
    html! {
        h1 { (verb) " " (targets.len()) " processes?" }
        p { (matching) " processes match the filters; " (action) " applies to " (targets.len()) " of them"
            @if action == "cancel" { " (those not finished)." } @else { " (those blocked or failed)." } }
        @if targets.is_empty() {
            p.notice { "Nothing to do." }
            p { a href=(back) { "Back to the list" } }
        } @else {
            ul.bulk-targets {
                @for r in targets.iter().take(LISTED) {
                    li { a href=(process_url(r.id.as_str())) { code { (r.id.as_str()) } } " " (status_badge(r.status)) }
                }
                @if targets.len() > LISTED { li.muted { "and " (targets.len() - LISTED) " more" } }
            }
            form.bulk method="post" action="/actions/bulk" {
                (csrf_field(csrf))
                @for (k, v) in filters.filters() { @if !v.is_empty() { input type="hidden" name=(k) value=(v); } }
                input type="hidden" name="action" value=(action);
                input type="hidden" name="confirm" value="yes";
                @if action == "cancel" { button.danger type="submit" { (verb) " " (targets.len()) " processes" } }
                @else { button type="submit" { (verb) " " (targets.len()) " processes" } }
                " "
                a href=(back) { "Keep them as they are" }
            }
        }
    }
}
