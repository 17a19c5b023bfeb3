//! A subscription that runs forever: a schedule bills every 30 days, each
//! invoice awaits a child payment process, and a loyalty counter continues
//! as new every round so its journal stays small. On a clock ten million
//! times faster than real time, a quarter passes in about a second.
//!
//! `cargo run -p steadfast-examples --example long_lived`

use std::time::Duration;

use steadfast::schedule::Schedule;
use steadfast::{
    Host, ListFilter, Process, ScaledClock, SqliteStore, Status, StepFailed, Timestamp,
};

const MONTH: Duration = Duration::from_secs(30 * 86_400);

/// Charges a card (simulated) and returns the amount charged.
#[steadfast::process]
async fn payment(p: Process, cents: i64) -> Result<i64, StepFailed> {
    p.step("charged", || async { Ok(cents) }).await
}

/// One invoice: a child payment, awaited durably.
#[steadfast::process]
async fn invoice(p: Process, cents: i64) -> Result<String, String> {
    let paid: i64 = p
        .child("payment", "payment", &cents)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{} paid {paid} cents", p.id()))
}

/// Counts the months forever, one generation per month.
#[steadfast::process]
async fn loyalty(p: Process, months: u32) -> Result<u32, StepFailed> {
    p.sleep("a month passed", MONTH).await;
    p.step("points added", || async { Ok(months + 1) }).await?;
    p.continue_as_new(&(months + 1)).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("steadfast-long-lived-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(dir.join("steadfast.db")).await?;
    let host = Host::builder(store)
        .clock(ScaledClock::new(Timestamp::now_system(), 1.0e7))
        .register("payment", payment)
        .register("invoice", invoice)
        .register("loyalty", loyalty)
        .build();

    host.schedule(Schedule::every("billing", MONTH).kind("invoice", &1_999)?)
        .await?;
    host.spawn("loyalty", "ada-loyalty", &0u32).await?;

    // Wait for three invoices (three months) to be paid.
    let invoices = loop {
        let done = host
            .store()
            .list(&ListFilter {
                id_prefix: Some("billing@".to_owned()),
                status: Some(Status::Completed),
                ..ListFilter::default()
            })
            .await?;
        // The invoices, not their payment children.
        let done: Vec<_> = done
            .into_iter()
            .filter_map(steadfast::Listed::into_record)
            .filter(|r| r.parent.is_none())
            .collect();
        if done.len() >= 3 {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for record in invoices.iter().take(3) {
        let said: String = host.outcome(record.id.as_str()).await?;
        println!("{said}");
    }
    let loyalty = host.status("ada-loyalty").await?;
    let history = host.store().history(&loyalty.id).await?;
    println!(
        "loyalty counter: generation {}, {} earlier generations kept, current journal {} entries",
        loyalty.generation,
        history.len(),
        host.store().journal(&loyalty.id).await?.len()
    );
    host.unschedule("billing").await?;
    host.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
