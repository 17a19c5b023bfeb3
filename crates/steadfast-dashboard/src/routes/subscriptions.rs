//! The subscriptions page: the figures running subscriptions saved in the
//! store.

use axum::extract::State;
use axum::http::HeaderMap;

use super::pages::{PageResult, full, live, store_error};
use crate::AppState;
use crate::views::subscriptions;

async fn view(app: &AppState, headers: Option<&HeaderMap>) -> PageResult {
    let reports = app
        .inner
        .store
        .subscriptions()
        .await
        .map_err(|e| store_error(app, &e))?;
    let now = app.inner.clock.now();
    Ok(match headers {
        Some(headers) => live(headers, subscriptions::live_part(&reports, now)),
        None => full(app, "Subscriptions", subscriptions::body(&reports, now)),
    })
}

/// `GET /subscriptions`: every subscription's saved figures.
pub async fn page(State(app): State<AppState>) -> PageResult {
    view(&app, None).await
}

/// `GET /live/subscriptions`: the table, refreshing itself.
pub async fn page_live(State(app): State<AppState>, headers: HeaderMap) -> PageResult {
    view(&app, Some(&headers)).await
}
