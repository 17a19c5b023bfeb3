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

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use steadfast::{Host, Process, SqliteStore, StepError, StepFailed};
use steadfast_bus::rabbitmq::{DEFAULT_URL, RabbitMqSink, RabbitMqSource, RabbitMqSourceOptions};
use steadfast_bus::route::{Route, Selector};
use steadfast_bus::{Publisher, Subscription};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedUp {
    user_id: String,
    email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EmailVerified {
    code: String,
}

/// The folder the "mails" go to, shared with the web app.
fn mail_dir() -> PathBuf {
    std::env::temp_dir()
        .join("steadfast-example-bus-onboarding")
        .join("mail")
}

async fn onboarding(p: Process, user: SignedUp, bus: Publisher) -> Result<String, StepFailed> {
    let code = p.uuid("code").await.simple().to_string()[..6].to_owned();
    let (email, mail_code) = (user.email.clone(), code.clone());
    p.step("verification mail sent", move || {
        let path = mail_dir().join(format!("{email}.txt"));
        let text = format!("Your code is {mail_code}\n");
        async move { std::fs::write(path, text).map_err(StepError::from) }
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
    p.step("activated", || async { Ok::<_, StepError>(()) })
        .await?;
    let id = bus
        .publish_with_headers(
            &p,
            "user activated",
            "user.activated",
            &[("type", "UserActivated")],
            &serde_json::json!({"user_id": user.user_id, "email": user.email}),
        )
        .await?;
    Ok(id)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    std::fs::create_dir_all(mail_dir())?;
    let dir = mail_dir().parent().map(PathBuf::from).unwrap_or_default();
    let sink = RabbitMqSink::new(DEFAULT_URL, "");
    sink.declare_queue("user.activated").await?;
    let bus = Publisher::new(sink);
    let host = Host::builder(SqliteStore::open(dir.join("steadfast.db")).await?)
        .register("onboarding", move |p: Process, user: SignedUp| {
            onboarding(p, user, bus.clone())
        })
        .build();
    let routes = vec![
        Route::spawn("onboarding", Selector::field("user_id"))
            .when(Selector::header("type"), "UserSignedUp"),
        Route::signal("email verified", Selector::field("user_id"))
            .when(Selector::header("type"), "EmailVerified"),
    ];
    let source = RabbitMqSource::connect(RabbitMqSourceOptions::new("onboarding")).await?;
    let running = Subscription::new("onboarding", host.clone(), routes)
        .map_err(anyhow::Error::msg)?
        .start(source);
    println!(
        "onboarding worker: consuming the queue `onboarding`, mails in {}",
        mail_dir().display()
    );
    println!("Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    let s = running.stats();
    println!(
        "received {}, spawned {}, signalled {}, dead-lettered {}",
        s.received, s.spawned, s.signalled, s.dead_lettered
    );
    running.stop().await;
    host.shutdown().await;
    Ok(())
}
