//! Reads on the pool. Under PostgreSQL's MVCC they see every committed
//! (acknowledged) write.

use sqlx::{PgPool, QueryBuilder, Row};
use steadfast_core::rules;
use steadfast_core::{
    Counts, JournalEntry, ListFilter, Listed, ParkedCount, ParkedCounts, PendingSignal, ProcessId,
    ProcessRecord, SortKey, SourceLocation, Status, StoreError, Timestamp,
};

use crate::rows::{
    Db, journal_columns, journal_from_row, listed_from_row, process_columns, process_from_row,
    signal_columns, signal_from_row,
};

pub(crate) async fn exists(pool: &PgPool, id: &ProcessId) -> Result<(), StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM processes WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .db()?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(id.clone()))
}

/// [`steadfast_core::Store::get`].
pub(crate) async fn get(pool: &PgPool, id: &ProcessId) -> Result<ProcessRecord, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        process_columns!(),
        " FROM processes WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .db()?
    .ok_or_else(|| StoreError::NotFound(id.clone()))?;
    process_from_row(&row)
}

/// [`steadfast_core::Store::pending_signals`]; `NotFound` for an unknown id.
pub(crate) async fn pending_signals(
    pool: &PgPool,
    id: &ProcessId,
) -> Result<Vec<PendingSignal>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        signal_columns!(),
        " FROM signals WHERE process_id = $1 AND consumed_at IS NULL ORDER BY id"
    ))
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .db()?;
    if rows.is_empty() {
        // An empty result needs telling apart from an unknown id.
        exists(pool, id).await?;
    }
    rows.iter()
        .map(|r| signal_from_row(r).map(|(_, s)| s))
        .collect()
}

/// [`steadfast_core::StoreAdmin::journal`]; `NotFound` for an unknown id.
pub(crate) async fn journal(
    pool: &PgPool,
    id: &ProcessId,
) -> Result<Vec<JournalEntry>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        journal_columns!(),
        " FROM journal WHERE process_id = $1 ORDER BY seq, name"
    ))
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .db()?;
    if rows.is_empty() {
        exists(pool, id).await?;
    }
    rows.iter()
        .map(|r| journal_from_row(r).map(|(_, e)| e))
        .collect()
}

/// [`steadfast_core::Store::next_wake`].
pub(crate) async fn next_wake(pool: &PgPool) -> Result<Option<Timestamp>, StoreError> {
    let min: Option<i64> = sqlx::query_scalar("SELECT min(wake_at) FROM processes")
        .fetch_one(pool)
        .await
        .db()?;
    Ok(min.map(Timestamp::from_micros))
}

/// The smallest string greater than every string starting with `prefix`
/// (ordered bytewise, which for UTF-8 is code-point order): the prefix with
/// its last character replaced by the next one. `None` when there is no
/// such string (the prefix is all `char::MAX`).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// [`steadfast_core::StoreAdmin::list`].
pub(crate) async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<Listed>, StoreError> {
    let mut q = QueryBuilder::new(concat!(
        "SELECT ",
        process_columns!(),
        " FROM processes WHERE true"
    ));
    push_filter(&mut q, filter);
    let column = match filter.order.by {
        SortKey::Created => Some("created_at"),
        SortKey::Updated => Some("updated_at"),
        SortKey::Kind => Some("kind COLLATE \"C\""),
        SortKey::Status => Some("status COLLATE \"C\""),
        _ => None,
    };
    let direction = if filter.order.descending {
        "DESC"
    } else {
        "ASC"
    };
    q.push(" ORDER BY ");
    if let Some(column) = column {
        q.push(format!("{column} {direction}, "));
    }
    q.push(format!("id {direction}"));
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    q.push(" LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    q.push(" OFFSET ")
        .push_bind(i64::try_from(filter.offset).unwrap_or(i64::MAX));
    let rows = q.build().fetch_all(pool).await.db()?;
    rows.iter().map(listed_from_row).collect()
}

/// Appends `filter`'s conditions (all but its paging fields) to `q`, a
/// query over `processes` ending in `WHERE true`.
fn push_filter(q: &mut QueryBuilder<sqlx::Postgres>, filter: &ListFilter) {
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(kind) = &filter.kind {
        q.push(" AND kind = ").push_bind(kind.clone());
    }
    if let Some(prefix) = filter.id_prefix.as_deref().filter(|p| !p.is_empty()) {
        q.push(" AND id >= ").push_bind(prefix.to_owned());
        if let Some(end) = prefix_end(prefix) {
            q.push(" AND id < ").push_bind(end);
        }
    }
    // Under the "C" collation lower() changes ASCII letters only, like the
    // lowering here.
    if let Some(text) = filter.id_contains.as_deref().filter(|t| !t.is_empty()) {
        q.push(" AND strpos(lower(id COLLATE \"C\"), ")
            .push_bind(text.to_ascii_lowercase())
            .push(") > 0");
    }
    if let Some(text) = filter.reason_contains.as_deref().filter(|t| !t.is_empty()) {
        q.push(" AND strpos(lower(error COLLATE \"C\"), ")
            .push_bind(text.to_ascii_lowercase())
            .push(") > 0");
    }
    if let Some(from) = filter.created_from {
        q.push(" AND created_at >= ").push_bind(from.as_micros());
    }
    if let Some(before) = filter.created_before {
        q.push(" AND created_at < ").push_bind(before.as_micros());
    }
    if let Some(after) = &filter.after {
        q.push(" AND id > ").push_bind(after.as_str().to_owned());
    }
    if let Some(parent) = &filter.parent {
        q.push(" AND parent = ")
            .push_bind(parent.as_str().to_owned());
    }
}

/// [`steadfast_core::StoreAdmin::count`], in [`Status::ALL`] order.
pub(crate) async fn count(pool: &PgPool, filter: &ListFilter) -> Result<Counts, StoreError> {
    let filter = ListFilter {
        after: None,
        ..filter.clone()
    };
    let mut q = QueryBuilder::new("SELECT status, count(*) FROM processes WHERE true");
    push_filter(&mut q, &filter);
    q.push(" GROUP BY status");
    let rows = q.build().fetch_all(pool).await.db()?;
    let mut groups = Vec::with_capacity(rows.len());
    for r in &rows {
        let status: Option<String> = r.try_get(0).db()?;
        groups.push((status, r.try_get::<i64, _>(1).db()?));
    }
    Ok(rules::counts(
        groups
            .iter()
            .map(|(status, count)| (status.as_deref(), *count)),
    ))
}

/// [`steadfast_core::StoreAdmin::counts`], in [`Status::ALL`] order.
pub(crate) async fn counts(pool: &PgPool) -> Result<Counts, StoreError> {
    let rows = sqlx::query("SELECT status, count(*) FROM processes GROUP BY status")
        .fetch_all(pool)
        .await
        .db()?;
    let mut groups = Vec::with_capacity(rows.len());
    for r in &rows {
        let status: Option<String> = r.try_get(0).db()?;
        groups.push((status, r.try_get::<i64, _>(1).db()?));
    }
    Ok(rules::counts(
        groups
            .iter()
            .map(|(status, count)| (status.as_deref(), *count)),
    ))
}

/// [`steadfast_core::StoreAdmin::parked_counts`]: every location of every
/// suspended or blocked process of `kind` counts once, ordered by location
/// then status (in [`Status::ALL`] order); processes whose parked arrays
/// differ in length or hold a line out of range are counted apart.
pub(crate) async fn parked_counts(pool: &PgPool, kind: &str) -> Result<ParkedCounts, StoreError> {
    let unreadable: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM processes
         WHERE kind = $1 AND status IN ('suspended', 'blocked') AND parked_files <> '{}'
           AND (cardinality(parked_files) <> cardinality(parked_lines)
                OR EXISTS (SELECT 1 FROM unnest(parked_lines) AS l
                           WHERE l IS NULL OR l < 0 OR l > 4294967295)
                OR EXISTS (SELECT 1 FROM unnest(parked_files) AS f WHERE f IS NULL))",
    )
    .bind(kind)
    .fetch_one(pool)
    .await
    .db()?;
    let rows = sqlx::query(
        "SELECT p.status, u.file, u.line, count(*)
         FROM processes p, unnest(p.parked_files, p.parked_lines) AS u(file, line)
         WHERE p.kind = $1 AND p.status IN ('suspended', 'blocked') AND p.parked_files <> '{}'
           AND cardinality(p.parked_files) = cardinality(p.parked_lines)
           AND NOT EXISTS (SELECT 1 FROM unnest(p.parked_lines) AS l
                           WHERE l IS NULL OR l < 0 OR l > 4294967295)
           AND NOT EXISTS (SELECT 1 FROM unnest(p.parked_files) AS f WHERE f IS NULL)
         GROUP BY p.status, u.file, u.line",
    )
    .bind(kind)
    .fetch_all(pool)
    .await
    .db()?;
    let mut counts = Vec::with_capacity(rows.len());
    for r in &rows {
        let status: String = r.try_get(0).db()?;
        let file: Option<String> = r.try_get(1).db()?;
        let line: Option<i64> = r.try_get(2).db()?;
        let count: i64 = r.try_get(3).db()?;
        let (Ok(status), Some(file), Some(Ok(line))) =
            (status.parse::<Status>(), file, line.map(u32::try_from))
        else {
            continue;
        };
        counts.push(ParkedCount {
            location: SourceLocation { file, line },
            status,
            count: u64::try_from(count).unwrap_or(0),
        });
    }
    counts.sort_by(|a, b| {
        let rank = |s: Status| Status::ALL.iter().position(|x| *x == s);
        (&a.location, rank(a.status)).cmp(&(&b.location, rank(b.status)))
    });
    Ok(ParkedCounts {
        by_location: counts,
        unreadable: u64::try_from(unreadable).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_bound_the_prefix() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{7f}").as_deref(), Some("a\u{80}"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        for p in ["a", "x%", "é", "a\u{7f}"] {
            let end = prefix_end(p).expect("an end");
            assert!(p.as_bytes() < end.as_bytes());
            let longer = format!("{p}\u{10FFFF}\u{10FFFF}");
            assert!(longer.as_bytes() < end.as_bytes());
        }
    }
}
