//! The kind page: a kind's function with where its processes wait.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use steadfast::core::ParkedCounts;
use steadfast::{ListFilter, Listed, SourceLocation, Status};

use super::pages::{PageResult, error_page, full, store_error};
use crate::AppState;
use crate::views::{self, kind};

/// `?name=` of the kind routes.
#[derive(Deserialize)]
pub struct KindQuery {
    /// The kind.
    pub name: String,
}

pub use crate::views::list::KIND_COUNT_CAP;

/// How many processes of `kind` are in `status`, counted by the store;
/// `(count, capped)` (never capped).
async fn count_in(
    app: &AppState,
    kind: &str,
    status: Status,
) -> Result<(usize, bool), steadfast::StoreError> {
    let filter = ListFilter {
        status: Some(status),
        kind: Some(kind.to_owned()),
        ..ListFilter::default()
    };
    let counts = app.inner.store.count(&filter).await?;
    Ok((
        usize::try_from(counts.of(status)).unwrap_or(usize::MAX),
        false,
    ))
}

async fn kind_view(app: &AppState, name: &str, live: Option<&HeaderMap>) -> PageResult {
    let store = &app.inner.store;
    let ParkedCounts {
        by_location: parked,
        unreadable,
    } = store
        .parked_counts(name)
        .await
        .map_err(|e| store_error(app, &e))?;
    let sources = store.sources().await.map_err(|e| e.to_string());
    // One process's journal tells where the kind's function is even when
    // nothing waits now (one indexed query of at most one row).
    let filter = ListFilter {
        kind: Some(name.to_owned()),
        limit: 1,
        ..ListFilter::default()
    };
    let first = store
        .list(&filter)
        .await
        .map_err(|e| store_error(app, &e))?
        .into_iter()
        .find_map(Listed::into_record);
    let named = sources.as_ref().is_ok_and(|all| {
        let names = views::source::names_for_kind(name);
        all.iter().any(|s| names.contains(&s.name))
    });
    if first.is_none() && parked.is_empty() && !named {
        return Err(error_page(
            app,
            StatusCode::NOT_FOUND,
            &format!(
                "No such kind: no process of kind “{name}” is stored, and no captured function has that name."
            ),
        ));
    }
    let mut sample: Vec<SourceLocation> = Vec::new();
    if parked.is_empty()
        && let Some(first) = first
        && let Ok(journal) = store.journal(&first.id).await
    {
        sample = journal.into_iter().filter_map(|e| e.location).collect();
    }
    let mut waiting = kind::Waiting::default();
    for status in [Status::Suspended, Status::Blocked] {
        let (n, capped) = count_in(app, name, status)
            .await
            .map_err(|e| store_error(app, &e))?;
        waiting.processes += n;
        waiting.capped |= capped;
    }
    let view = kind::KindView {
        kind: name,
        parked: &parked,
        unreadable,
        sources: &sources,
        sample: &sample,
        waiting,
    };
    Ok(if let Some(headers) = live {
        super::pages::live(headers, kind::live_part(&view))
    } else {
        full(app, name, kind::body(&view))
    })
}

/// `GET /kind?name=`: a kind's function with where its processes wait.
pub async fn kind(State(app): State<AppState>, Query(q): Query<KindQuery>) -> PageResult {
    kind_view(&app, &q.name, None).await
}

/// `GET /live/kind?name=`: the kind page's self-refreshing part.
pub async fn kind_live(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<KindQuery>,
) -> PageResult {
    kind_view(&app, &q.name, Some(&headers)).await
}
