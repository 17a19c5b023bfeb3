//! The "web app" of the onboarding example: a separate program.
//!
//! `cargo run -p steadfast-bus --example web_app -- ada@example.com`
//!
//! Publishes `UserSignedUp`, reads the code from the mail the onboarding
//! process sent (as the user would), publishes `EmailVerified`, and waits
//! for `UserActivated` — skipping any message whose id it has seen (the
//! at-least-once publish may deliver one twice).

use std::collections::BTreeSet;
use std::time::Duration;

use steadfast_bus::rabbitmq::{DEFAULT_URL, RabbitMqSink, RabbitMqSource, RabbitMqSourceOptions};
use steadfast_bus::{MessageSink, MessageSource, OutgoingMessage};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let email = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ada@example.com".to_owned());
    let user_id = format!("user-{}", email.replace(['@', '.'], "-"));
    let mail = std::env::temp_dir()
        .join("steadfast-example-bus-onboarding")
        .join("mail")
        .join(format!("{email}.txt"));
    let _ = std::fs::remove_file(&mail);
    let sink = RabbitMqSink::new(DEFAULT_URL, "");
    sink.declare_queue("onboarding").await?;
    let mut activated =
        RabbitMqSource::connect(RabbitMqSourceOptions::new("user.activated")).await?;

    let signed_up = serde_json::json!({"user_id": user_id, "email": email});
    sink.publish(
        &OutgoingMessage::json("onboarding", format!("web/{user_id}/signed-up"), &signed_up)?
            .header("type", "UserSignedUp"),
    )
    .await?;
    println!("{email} signed up as {user_id}; waiting for the mail…");

    let code = loop {
        if let Ok(text) = std::fs::read_to_string(&mail) {
            break text
                .trim()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("the mail says {code:?}; clicking the link");
    sink.publish(
        &OutgoingMessage::json(
            "onboarding",
            format!("web/{user_id}/verified"),
            &serde_json::json!({"user_id": user_id, "code": code}),
        )?
        .header("type", "EmailVerified"),
    )
    .await?;

    let mut seen = BTreeSet::new();
    loop {
        let d = activated.receive().await?;
        let id = d.message.id.clone().unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&d.message.body)?;
        d.ack().await?;
        if !seen.insert(id.clone()) {
            println!("skipping {id}: seen before");
            continue;
        }
        if body["user_id"] == user_id.as_str() {
            println!("UserActivated {body} (message id {id:?})");
            return Ok(());
        }
    }
}
