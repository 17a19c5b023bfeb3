//! Onboarding on RabbitMQ (127.0.0.1:5672): the worker side.
//!
//! `cargo run -p steadfast-bus --example onboarding_worker` in one terminal,
//! `cargo run -p steadfast-bus --example web_app -- ada@example.com` in
//! another (the web app the user signs up and clicks in).
//!
//! `UserSignedUp` on the queue `onboarding` starts an onboarding process,
//! which mails a code (a text file in the mail folder); `EmailVerified`
//! with the code moves it on; it activates the user and publishes
//! `UserActivated` to the queue `user.activated`.

use std::future::Future;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use steadfast::{Host, Process, SqliteStore, StepError, StepFailed};
use steadfast_bus::rabbitmq::{DEFAULT_URL, RabbitMqSink, RabbitMqSource, RabbitMqSourceOptions};
use steadfast_bus::route::{Route, Selector};
use steadfast_bus::{Publisher, StatsSnapshot, Subscription};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedUp {
    user_id: String,
    email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EmailVerified {
    code: String,
}

/// Where the worker reads and writes: the queues (after a prefix: empty
/// from the README, a test's own in tests) and the folder of its database
/// and of the "mails" the web app reads.
#[derive(Debug, Clone)]
pub struct Place {
    /// The queue the web app's events come in on.
    pub inbox: String,
    /// The queue `UserActivated` goes to.
    pub activated: String,
    /// The folder.
    pub dir: PathBuf,
}

impl Place {
    /// `onboarding` and `user.activated` after `prefix`, in `dir`.
    pub fn new(prefix: &str, dir: &Path) -> Self {
        Place {
            inbox: format!("{prefix}onboarding"),
            activated: format!("{prefix}user.activated"),
            dir: dir.to_owned(),
        }
    }

    /// Where the mail to `user_id` goes.
    pub fn mail(&self, user_id: &str) -> PathBuf {
        self.dir.join("mail").join(format!("{user_id}.txt"))
    }
}

/// The process: mail a code, wait for it to come back, activate, announce.
async fn onboarding(
    p: Process,
    user: SignedUp,
    bus: Publisher,
    place: Place,
) -> Result<String, StepFailed> {
    let code = p.uuid("code").await.simple().to_string()[..6].to_owned();
    let who = user.user_id.clone();
    p.step("verification mail sent", || async {
        // Written whole and then renamed, so the reader never sees half a mail.
        let path = place.mail(&user.user_id);
        let part = path.with_extension("part");
        std::fs::write(&part, format!("Your code is {code}\n"))?;
        std::fs::rename(&part, &path)?;
        println!("{who}: signed up as {}; mailed the code {code}", user.email);
        Ok::<_, StepError>(())
    })
    .await?;
    // Until the right code comes back (a wrong one is just ignored).
    let mut round = 0u32;
    loop {
        let verified: EmailVerified = p
            .wait("email verified")
            .name(format!("verified #{round}"))
            .await;
        if verified.code == code {
            break;
        }
        round += 1;
    }
    p.step("activated", || async {
        println!("{who}: email verified with the right code; user activated");
        Ok::<_, StepError>(())
    })
    .await?;
    let id = bus
        .publish_with_headers(
            &p,
            "user activated",
            &place.activated,
            &[("type", "UserActivated")],
            &serde_json::json!({"user_id": user.user_id, "email": user.email}),
        )
        .await?;
    Ok(id)
}

/// Runs the worker until `stop` completes; returns its subscription's counts.
pub async fn run(place: &Place, stop: impl Future<Output = ()>) -> anyhow::Result<StatsSnapshot> {
    std::fs::create_dir_all(place.dir.join("mail"))?;
    let sink = RabbitMqSink::new(DEFAULT_URL, "");
    sink.declare_queue(&place.activated).await?;
    let bus = Publisher::new(sink);
    let host = Host::builder(SqliteStore::open(place.dir.join("steadfast.db")).await?)
        .register("onboarding", {
            let place = place.clone();
            move |p: Process, user: SignedUp| onboarding(p, user, bus.clone(), place.clone())
        })
        .build();
    let routes = vec![
        Route::spawn("onboarding", Selector::field("user_id"))
            .when(Selector::header("type"), "UserSignedUp"),
        Route::signal("email verified", Selector::field("user_id"))
            .when(Selector::header("type"), "EmailVerified"),
    ];
    let source = RabbitMqSource::connect(RabbitMqSourceOptions::new(&place.inbox)).await?;
    let running = Subscription::new("onboarding", host.clone(), routes)
        .map_err(anyhow::Error::msg)?
        .start(source);
    println!(
        "The onboarding worker takes UserSignedUp and EmailVerified from the RabbitMQ queue \
         `{}` and mails codes into {} (Ctrl-C to stop)",
        place.inbox,
        place.dir.join("mail").display()
    );
    stop.await;
    let stats = running.stats_handle();
    running.stop().await;
    host.shutdown().await;
    let s = stats.snapshot();
    println!(
        "Stopped: {} messages received, {} started a process, {} signalled one, {} dead-lettered",
        s.received, s.spawned, s.signalled, s.dead_lettered
    );
    Ok(s)
}

/// The example's folder, shared with the web app.
fn example_dir() -> PathBuf {
    std::env::temp_dir().join("steadfast-example-bus-onboarding")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let place = Place::new("", &example_dir());
    run(&place, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
