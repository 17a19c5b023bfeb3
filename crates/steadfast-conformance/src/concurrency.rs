//! Many callers at once: concurrent appends, competing claimers and racing
//! spawns of one id.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::{Lease, NewProcess, SpawnOutcome};

use crate::fixture::{DynStore, T0, at, at_micros, host, journal, pid, spawn, step};

const PROCESSES: usize = 50;
const APPENDS: usize = 20;

/// 50 processes × 20 appends issued all at once from separate tasks: every
/// acknowledged append is in the journal afterwards, with distinct seqs.
pub async fn concurrent_appends_are_all_journaled(store: DynStore) {
    for p in 0..PROCESSES {
        spawn(&store, &format!("p{p:02}"), at_micros(p as u64)).await;
    }
    let claimed = store
        .claim(&host("h"), at(1), Duration::from_secs(3600), PROCESSES)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), PROCESSES, "every process is claimed");
    let leases: Vec<Arc<Lease>> = claimed.into_iter().map(|c| Arc::new(c.lease)).collect();

    let mut tasks = Vec::new();
    for step_no in 0..APPENDS {
        for lease in &leases {
            let (store, lease) = (store.clone(), lease.clone());
            tasks.push(tokio::spawn(async move {
                let name = format!("step-{step_no:02}");
                let entry = step(step_no as i64, &name, at(2));
                let result = store.append(&lease, entry).await;
                (lease.id.as_str().to_owned(), name, result)
            }));
        }
    }
    let mut acknowledged = BTreeSet::new();
    let mut failures = Vec::new();
    for task in tasks {
        let (id, name, result) = task.await.expect("append task panicked");
        match result {
            Ok(()) => {
                acknowledged.insert((id, name));
            }
            Err(e) => failures.push(format!("{id}/{name}: {e}")),
        }
    }

    for lease in &leases {
        let id = lease.id.as_str();
        let entries = journal(&store, id).await;
        let seqs: BTreeSet<i64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs.len(),
            entries.len(),
            "{id}: seqs must be distinct: {entries:?}"
        );
        let names: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        for (_, name) in acknowledged.iter().filter(|(p, _)| p == id) {
            assert!(
                names.contains(name.as_str()),
                "{id}: acknowledged append {name:?} is missing from the journal"
            );
        }
        for entry in &entries {
            assert_eq!(
                entry.name,
                format!("step-{:02}", entry.seq),
                "{id}: entry stored with the wrong seq"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} concurrent appends failed (all must succeed): {:?}",
        failures.len(),
        PROCESSES * APPENDS,
        &failures[..failures.len().min(5)]
    );
}

/// Two hosts claiming in loops over 200 due processes never get the same
/// process: their claims are disjoint and together cover all 200.
pub async fn concurrent_claims_are_disjoint(store: DynStore) {
    const COUNT: usize = 200;
    let all: BTreeSet<String> = (0..COUNT).map(|i| format!("p{i:03}")).collect();
    for (i, id) in all.iter().enumerate() {
        spawn(&store, id, at_micros(i as u64)).await;
    }
    let claimer = |name: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let owner = host(name);
            let mut got = Vec::new();
            let mut empty_rounds = 0;
            // Stop after a few empty rounds in a row: a claim may come back
            // empty while the other host's transaction holds the rows.
            while empty_rounds < 3 {
                let claimed = store
                    .claim(&owner, at(10), Duration::from_secs(3600), 3)
                    .await
                    .unwrap_or_else(|e| panic!("claim by {name} failed: {e:?}"));
                if claimed.is_empty() {
                    empty_rounds += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                empty_rounds = 0;
                for c in claimed {
                    assert_eq!(c.lease.epoch, 1, "{name} claimed {:?} twice", c.lease.id);
                    assert_eq!(c.lease.owner, owner, "lease owner");
                    got.push(c.record.id.as_str().to_owned());
                }
            }
            got
        })
    };
    let (a, b) = (claimer("a"), claimer("b"));
    let a = a.await.expect("claimer a panicked");
    let b = b.await.expect("claimer b panicked");

    let set_a: BTreeSet<String> = a.iter().cloned().collect();
    let set_b: BTreeSet<String> = b.iter().cloned().collect();
    assert_eq!(set_a.len(), a.len(), "host a got a process twice");
    assert_eq!(set_b.len(), b.len(), "host b got a process twice");
    let both: Vec<&String> = set_a.intersection(&set_b).collect();
    assert!(both.is_empty(), "both hosts claimed {both:?}");
    let union: BTreeSet<String> = set_a.union(&set_b).cloned().collect();
    assert_eq!(
        union, all,
        "together the hosts must claim every due process"
    );
    for id in &all {
        let record = crate::fixture::get(&store, id).await;
        let owner = if set_a.contains(id) { "a" } else { "b" };
        assert_eq!(record.owner.as_deref(), Some(owner), "{id}: stored owner");
        assert_eq!(record.epoch, 1, "{id}: claimed exactly once");
    }
}

/// Twenty tasks spawning the same id at once: exactly one `Created`, every
/// other call returns `Existing`.
pub async fn concurrent_spawns_of_one_id_create_once(store: DynStore) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .spawn(NewProcess {
                        id: pid("once"),
                        kind: "k".to_owned(),
                        version: 1,
                        input: "{\"x\":1}".to_owned(),
                        now: T0,
                        parent: None,
                        traceparent: None,
                    })
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.expect("spawn task panicked") {
            Ok(SpawnOutcome::Created) => created += 1,
            Ok(SpawnOutcome::Existing(record)) => {
                assert_eq!(record.input, "{\"x\":1}", "existing record");
            }
            Err(e) => panic!("a concurrent spawn of the same id must not fail: {e:?}"),
        }
    }
    assert_eq!(
        created, 1,
        "exactly one concurrent spawn creates the process"
    );
}
