//! `list` in every order with offset paging, the text, reason and time
//! filters, and `count` following the same filters.

use steadfast_core::{
    Finish, Lease, ListFilter, ListOrder, NewProcess, SortKey, Status, Timestamp,
};

use crate::fixture::{DynStore, at, claim_ids, completed, finish, host, pid};

/// Five processes of three kinds created at 10..50 s, all claimed at 100 s;
/// then `order-b2` failed (a timeout) at 101, `mail-1` blocked at 102 and
/// `x` completed at 103; `Order-A1` and `mail-2` still run.
async fn world(store: &DynStore) {
    let spawned = [
        ("Order-A1", "order", 10),
        ("order-b2", "order", 20),
        ("mail-1", "mail", 30),
        ("mail-2", "mail", 40),
        ("x", "zeta", 50),
    ];
    for (id, kind, secs) in spawned {
        store
            .spawn(NewProcess {
                id: pid(id),
                kind: kind.to_owned(),
                version: 1,
                input: "{}".to_owned(),
                now: at(secs),
                parent: None,
                traceparent: None,
            })
            .await
            .expect("spawn");
    }
    assert_eq!(
        claim_ids(store, &host("h"), at(100), 100).await.len(),
        5,
        "all five are due"
    );
    let lease = |id: &str| Lease {
        id: pid(id),
        owner: host("h"),
        epoch: 1,
    };
    let failed = Finish::Failed {
        error: "payment TIMEOUT at the bank".into(),
    };
    finish(store, &lease("order-b2"), failed, at(101)).await;
    let blocked = Finish::Blocked {
        step: None,
        reason: "the journal does not fit".into(),
        location: None,
    };
    finish(store, &lease("mail-1"), blocked, at(102)).await;
    finish(store, &lease("x"), completed("1"), at(103)).await;
}

async fn ids(store: &DynStore, filter: &ListFilter) -> Vec<String> {
    store
        .list(filter)
        .await
        .unwrap_or_else(|e| panic!("list({filter:?}) failed: {e:?}"))
        .into_iter()
        .map(|r| r.id().to_owned())
        .collect()
}

fn ordered(by: SortKey, descending: bool) -> ListFilter {
    ListFilter {
        order: ListOrder { by, descending },
        ..ListFilter::default()
    }
}

/// Each sort key in both directions (ties by id in the same direction),
/// and offset paging in an order other than the id's.
pub async fn list_sorts_by_each_key_both_ways(store: DynStore) {
    world(&store).await;
    let cases: [(SortKey, &[&str]); 5] = [
        (
            SortKey::Id,
            &["Order-A1", "mail-1", "mail-2", "order-b2", "x"],
        ),
        (
            SortKey::Created,
            &["Order-A1", "order-b2", "mail-1", "mail-2", "x"],
        ),
        (
            SortKey::Updated,
            &["Order-A1", "mail-2", "order-b2", "mail-1", "x"],
        ),
        (
            SortKey::Kind,
            &["mail-1", "mail-2", "Order-A1", "order-b2", "x"],
        ),
        (
            SortKey::Status,
            &["mail-1", "x", "order-b2", "Order-A1", "mail-2"],
        ),
    ];
    for (by, ascending) in cases {
        assert_eq!(
            ids(&store, &ordered(by, false)).await,
            ascending,
            "sorted by {by:?}, ascending (ties by id)"
        );
        let descending: Vec<&str> = ascending.iter().rev().copied().collect();
        assert_eq!(
            ids(&store, &ordered(by, true)).await,
            descending,
            "sorted by {by:?}, descending (ties by id, descending)"
        );
    }
    let mut pages = Vec::new();
    for offset in [0, 2, 4, 6] {
        let filter = ListFilter {
            order: ListOrder::newest_first(),
            offset,
            limit: 2,
            ..ListFilter::default()
        };
        pages.push(ids(&store, &filter).await);
    }
    assert_eq!(
        pages,
        vec![
            vec!["x", "mail-2"],
            vec!["mail-1", "order-b2"],
            vec!["Order-A1"],
            vec![],
        ],
        "pages of two, newest first"
    );
    let kinds_then_ids = ListFilter {
        status: Some(Status::Running),
        order: ListOrder {
            by: SortKey::Kind,
            descending: true,
        },
        ..ListFilter::default()
    };
    assert_eq!(
        ids(&store, &kinds_then_ids).await,
        ["Order-A1", "mail-2"],
        "the order applies after the filters"
    );
}

/// The per-status counts of `list(filter)`'s rows, as `count` returns them.
fn tally(store_rows: &[String], statuses: &[(&str, Status)]) -> Vec<(Status, u64)> {
    let mut out: Vec<(Status, u64)> = Vec::new();
    for status in Status::ALL {
        let n = store_rows
            .iter()
            .filter(|id| statuses.iter().any(|(i, s)| i == *id && *s == status))
            .count() as u64;
        if n > 0 {
            out.push((status, n));
        }
    }
    out
}

/// Id substring (literal, ASCII letters in either case), reason substring,
/// creation time range, kind and status, alone and combined, in `list`;
/// `count` returns the per-status counts of exactly those rows, whatever the
/// paging fields say.
pub async fn count_follows_every_filter(store: DynStore) {
    world(&store).await;
    let statuses = [
        ("Order-A1", Status::Running),
        ("order-b2", Status::Failed),
        ("mail-1", Status::Blocked),
        ("mail-2", Status::Running),
        ("x", Status::Completed),
    ];
    let text = |id: Option<&str>, reason: Option<&str>| ListFilter {
        id_contains: id.map(str::to_owned),
        reason_contains: reason.map(str::to_owned),
        ..ListFilter::default()
    };
    let between = |from: Option<Timestamp>, before: Option<Timestamp>| ListFilter {
        created_from: from,
        created_before: before,
        ..ListFilter::default()
    };
    let cases: Vec<(ListFilter, &[&str])> = vec![
        (
            ListFilter::default(),
            &["Order-A1", "mail-1", "mail-2", "order-b2", "x"],
        ),
        (text(Some("ORDER"), None), &["Order-A1", "order-b2"]),
        (
            text(Some("-"), None),
            &["Order-A1", "mail-1", "mail-2", "order-b2"],
        ),
        (text(Some("_"), None), &[]),
        (text(Some("%"), None), &[]),
        (text(Some("l-2"), None), &["mail-2"]),
        (text(None, Some("timeout")), &["order-b2"]),
        (text(None, Some("JOURNAL does")), &["mail-1"]),
        (text(Some("mail"), Some("journal")), &["mail-1"]),
        (between(Some(at(20)), Some(at(40))), &["mail-1", "order-b2"]),
        (between(Some(at(41)), None), &["x"]),
        (between(None, Some(at(10))), &[]),
        (
            ListFilter {
                kind: Some("mail".into()),
                status: Some(Status::Running),
                ..ListFilter::default()
            },
            &["mail-2"],
        ),
        (
            ListFilter {
                id_contains: Some("a".into()),
                created_from: Some(at(15)),
                status: Some(Status::Running),
                ..ListFilter::default()
            },
            &["mail-2"],
        ),
    ];
    for (filter, expected) in cases {
        let listed = ids(&store, &filter).await;
        assert_eq!(listed, expected, "list({filter:?})");
        let want = tally(&listed, &statuses);
        let paged = ListFilter {
            order: ListOrder::newest_first(),
            offset: 1,
            limit: 1,
            after: Some(pid("zzz")),
            ..filter.clone()
        };
        for f in [&filter, &paged] {
            let counts = store
                .count(f)
                .await
                .unwrap_or_else(|e| panic!("count({f:?}) failed: {e:?}"));
            let got: Vec<(Status, u64)> = counts
                .by_status
                .iter()
                .map(|c| (c.status, c.count))
                .collect();
            assert_eq!(got, want, "count({f:?}) counts what the filter lists");
            assert_eq!(counts.unreadable, 0, "no unreadable rows here");
        }
    }
}
