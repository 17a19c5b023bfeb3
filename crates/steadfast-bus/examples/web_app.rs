//! The "web app" of the onboarding example: a separate program.
//!
//! `cargo run -p steadfast-bus --example web_app -- ada@example.com`
//!
//! Signs the user up (`UserSignedUp`, under a new user id), reads the code
//! from the mail the onboarding process sent (as the user would), sends it
//! back (`EmailVerified`), and waits for `UserActivated` — skipping any
//! message whose id it has seen (the at-least-once publish may deliver one
//! twice).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use steadfast_bus::rabbitmq::{DEFAULT_URL, RabbitMqSink, RabbitMqSource, RabbitMqSourceOptions};
use steadfast_bus::{MessageSink, MessageSource, OutgoingMessage};

/// Signs `email` up through the queue `inbox`, answers the mail that
/// arrives in `mail_dir`, and returns the `UserActivated` message's body
/// once it arrives on the queue `activated`.
pub async fn run(
    inbox: &str,
    activated: &str,
    mail_dir: &Path,
    email: &str,
) -> anyhow::Result<serde_json::Value> {
    // A new user id per sign-up, as a web app assigns one.
    let user_id = format!(
        "user-{}-{}",
        email.replace(['@', '.'], "-"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let mail = mail_dir.join(format!("{user_id}.txt"));
    let sink = RabbitMqSink::new(DEFAULT_URL, "");
    sink.declare_queue(inbox).await?;
    let mut activations = RabbitMqSource::connect(RabbitMqSourceOptions::new(activated)).await?;

    let signed_up = serde_json::json!({"user_id": user_id, "email": email});
    sink.publish(
        &OutgoingMessage::json(inbox, format!("web/{user_id}/signed-up"), &signed_up)?
            .header("type", "UserSignedUp"),
    )
    .await?;
    println!("web app: {email} signs up; the app calls them {user_id} (UserSignedUp)");

    // The user checks their mail (a file the worker writes whole).
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
    println!("web app: the mail says {code:?}; {email} clicks the link (EmailVerified)");
    sink.publish(
        &OutgoingMessage::json(
            inbox,
            format!("web/{user_id}/verified"),
            &serde_json::json!({"user_id": user_id, "code": code}),
        )?
        .header("type", "EmailVerified"),
    )
    .await?;

    let mut seen = BTreeSet::new();
    loop {
        let d = activations.receive().await?;
        let id = d.message.id.clone().unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&d.message.body)?;
        d.ack().await?;
        if !seen.insert(id.clone()) {
            println!("web app: skipping {id:?}, seen before");
            continue;
        }
        if body["user_id"] == user_id.as_str() {
            println!("web app: UserActivated for {user_id} (message id {id:?}); welcome aboard");
            return Ok(body);
        }
    }
}

/// The folder the onboarding worker mails into.
fn mail_dir() -> PathBuf {
    std::env::temp_dir()
        .join("steadfast-example-bus-onboarding")
        .join("mail")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let email = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ada@example.com".to_owned());
    run("onboarding", "user.activated", &mail_dir(), &email).await?;
    Ok(())
}
