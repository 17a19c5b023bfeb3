//! Schedules under virtual time: one run per tick, no double-firing across a
//! crash, catch-up after a real stop of the host (once or all), overlap skip
//! and queue.

use std::time::Duration;

use steadfast::schedule::{CatchUp, Overlap, Schedule};
use steadfast::testing::TestHost;
use steadfast::{HostBuilder, ListFilter, Process, Status, StepError, StepFailed};

const HOUR: Duration = Duration::from_secs(3600);

#[steadfast::process]
async fn job(p: Process, (): ()) -> Result<(), StepFailed> {
    p.step("done", || async { Ok::<_, StepError>(()) }).await
}

#[steadfast::process]
async fn slow_job(p: Process, (): ()) -> Result<(), StepFailed> {
    p.wait::<()>("finish").await;
    Ok(())
}

fn kinds(b: HostBuilder) -> HostBuilder {
    b.register("job", job).register("slow job", slow_job)
}

async fn runs(t: &TestHost, name: &str) -> Vec<(String, Status)> {
    let list = t
        .host()
        .store()
        .list(&ListFilter {
            id_prefix: Some(format!("{name}@")),
            limit: 1000,
            ..ListFilter::default()
        })
        .await
        .expect("list");
    list.into_iter()
        .filter_map(steadfast::Listed::into_record)
        .map(|r| (r.id.to_string(), r.status))
        .collect()
}

/// Waits until `name` has `n` runs and its schedule sleeps again.
async fn ticked(t: &TestHost, name: &str, n: usize) -> Vec<(String, Status)> {
    for _ in 0..2000 {
        let got = runs(t, name).await;
        let schedule = t.status(&Schedule::process_id(name)).await;
        if got.len() >= n && schedule.status == Status::Suspended {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{name} never reached {n} runs: {:?}", runs(t, name).await);
}

/// Waits until the schedule `name` sleeps again, due after `due`: it has
/// handled the tick that was due at `due`.
async fn passed(t: &TestHost, name: &str, due: steadfast::Timestamp) {
    for _ in 0..2000 {
        let schedule = t.status(&Schedule::process_id(name)).await;
        if schedule.status == Status::Suspended && schedule.wake_at.is_some_and(|w| w > due) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{name} never handled its tick due at {due}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_spawns_exactly_once_even_across_a_crash() {
    let t = TestHost::start(kinds).await;
    let s = Schedule::every("hourly", HOUR)
        .kind("job", &())
        .expect("kind");
    t.host().schedule(s.clone()).await.expect("schedule");
    assert_eq!(
        t.host().schedule(s).await.expect("again"),
        steadfast::Spawned::Existing
    );
    ticked(&t, "hourly", 0).await;
    t.advance(HOUR).await;
    ticked(&t, "hourly", 1).await;
    t.crash_and_restart().await;
    t.advance(HOUR).await;
    let got = ticked(&t, "hourly", 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    // The schedule's own journal stays small: it continues as new each tick.
    let journal = t.journal(&Schedule::process_id("hourly")).await;
    assert!(journal.len() <= 3, "{journal:?}");

    t.host().unschedule("hourly").await.expect("remove");
    // A schedule still in place shows when the host has acted on the hours
    // that pass; the removed one must not have ticked by then.
    let marker = Schedule::every("marker", HOUR)
        .kind("job", &())
        .expect("kind");
    t.host()
        .schedule(marker)
        .await
        .expect("schedule the marker");
    ticked(&t, "marker", 0).await;
    t.advance(3 * HOUR).await;
    ticked(&t, "marker", 1).await;
    assert_eq!(runs(&t, "hourly").await.len(), 2, "no ticks after removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_is_caught_up_once_or_for_every_tick() {
    let t = TestHost::start(kinds).await;
    let once = Schedule::every("once", HOUR)
        .kind("job", &())
        .expect("kind");
    let all = Schedule::every("all", HOUR)
        .kind("job", &())
        .expect("kind")
        .catch_up(CatchUp::All)
        // Catch-up spawns the missed ticks back to back: with the default
        // overlap (skip) a tick whose predecessor is still running is skipped.
        .overlap(Overlap::Allow);
    t.host().schedule(once).await.expect("schedule");
    t.host().schedule(all).await.expect("schedule");
    ticked(&t, "once", 0).await;
    ticked(&t, "all", 0).await;
    let first = t
        .status(&Schedule::process_id("all"))
        .await
        .wake_at
        .expect("first tick");
    // The host really stops; five and a half hours pass with no host
    // running; a new host starts on the same store.
    t.stop().await;
    t.advance(5 * HOUR + HOUR / 2).await;
    t.start_again().await;
    let tick = |k: u32| Schedule::run_id("x", first + k * HOUR);
    let ids = |got: Vec<(String, Status)>, name: &str| -> Vec<String> {
        let mut ids: Vec<String> = got
            .into_iter()
            .map(|(id, _)| id.replacen(&format!("{name}@"), "x@", 1))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(ticked(&t, "once", 1).await, "once"),
        [tick(4)],
        "once: only the latest missed tick"
    );
    let mut every: Vec<String> = (0..5).map(tick).collect();
    every.sort();
    assert_eq!(
        ids(ticked(&t, "all", 5).await, "all"),
        every,
        "all: every missed tick"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_queue_starts_the_tick_once_the_previous_run_finished() {
    let t = TestHost::start(kinds).await;
    let s = Schedule::every("queued", HOUR)
        .kind("slow job", &())
        .expect("kind")
        .overlap(Overlap::Queue);
    t.host().schedule(s).await.expect("schedule");
    ticked(&t, "queued", 0).await;
    t.advance(HOUR).await;
    let first = ticked(&t, "queued", 1).await;
    let second_tick = t
        .status(&Schedule::process_id("queued"))
        .await
        .wake_at
        .expect("next tick");
    t.advance(HOUR).await;
    // At the second tick the first run is still waiting: the schedule
    // neither skips the tick nor starts it, but checks again a second later.
    let recheck = second_tick + Duration::from_secs(1);
    for _ in 0..2000 {
        let schedule = t.status(&Schedule::process_id("queued")).await;
        if schedule.status == Status::Suspended && schedule.wake_at == Some(recheck) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let schedule = t.status(&Schedule::process_id("queued")).await;
    assert_eq!(
        (schedule.status, schedule.wake_at),
        (Status::Suspended, Some(recheck)),
        "queued behind the unfinished run"
    );
    assert_eq!(runs(&t, "queued").await.len(), 1, "not started alongside");
    t.host()
        .signal(&first[0].0, "finish", &())
        .await
        .expect("signal");
    let () = t.host().outcome(&first[0].0).await.expect("first run");
    t.advance(Duration::from_secs(1)).await;
    let got = ticked(&t, "queued", 2).await;
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        ids.contains(&Schedule::run_id("queued", second_tick).as_str()),
        "the queued tick ran, under its own tick's id: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_skips_while_the_previous_run_is_unfinished() {
    let t = TestHost::start(kinds).await;
    let s = Schedule::every("slow", HOUR)
        .kind("slow job", &())
        .expect("kind")
        .overlap(Overlap::Skip);
    t.host().schedule(s).await.expect("schedule");
    ticked(&t, "slow", 0).await;
    t.advance(HOUR).await;
    let first = ticked(&t, "slow", 1).await;
    let due = t
        .status(&Schedule::process_id("slow"))
        .await
        .wake_at
        .expect("next tick");
    t.advance(HOUR).await;
    // The schedule handled the second tick once it sleeps until a later one.
    passed(&t, "slow", due).await;
    assert_eq!(
        runs(&t, "slow").await.len(),
        1,
        "the second tick was skipped"
    );
    t.host()
        .signal(&first[0].0, "finish", &())
        .await
        .expect("signal");
    // The next tick must find the first run finished.
    let () = t.host().outcome(&first[0].0).await.expect("first run");
    t.advance(HOUR).await;
    assert_eq!(ticked(&t, "slow", 2).await.len(), 2);
}

/// Runs are named `<name>@<tick in RFC 3339>`; a schedule added by an
/// earlier version (its stored state has no `readable_ids`) keeps the µs ids
/// in the generation its journal names them in, and reads well from the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ids_are_readable_and_old_schedules_keep_theirs_until_their_next_generation() {
    let t = TestHost::start(kinds).await;
    let readable = Schedule::every("new", HOUR).kind("job", &()).expect("kind");
    t.host().schedule(readable).await.expect("schedule");
    // The state an earlier version stored: no `readable_ids`.
    let old = Schedule::every("old", HOUR).kind("job", &()).expect("kind");
    let state = serde_json::json!({
        "schedule": old,
        "origin": t.host().clock().now(),
        "last_tick": null,
        "last_run": null,
    });
    t.host()
        .spawn(
            steadfast::schedule::SCHEDULE_KIND,
            &Schedule::process_id("old"),
            &state,
        )
        .await
        .expect("spawn an old-format schedule");
    ticked(&t, "new", 0).await;
    ticked(&t, "old", 0).await;
    let first = t
        .status(&Schedule::process_id("old"))
        .await
        .wake_at
        .expect("first tick");
    t.advance(HOUR).await;
    let new_runs = ticked(&t, "new", 1).await;
    assert!(
        new_runs[0].0.starts_with("new@") && new_runs[0].0.ends_with('Z'),
        "{new_runs:?}"
    );
    assert_eq!(
        ticked(&t, "old", 1).await[0].0,
        format!("old@{}", first.as_micros()),
        "the generation the old code started keeps its ids"
    );
    t.advance(HOUR).await;
    let ids: Vec<String> = ticked(&t, "old", 2)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(
        ids.contains(&Schedule::run_id("old", first + HOUR)),
        "{ids:?}"
    );
}
