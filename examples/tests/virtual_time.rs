//! The classic processes under `steadfast::testing`: virtual time, signals
//! and a crash of the host in the middle of a process.

use std::sync::Arc;
use std::time::Duration;

use steadfast::Status;
use steadfast::testing::TestHost;
use steadfast_examples::credit_card::{self, Card};
use steadfast_examples::onboarding::{self, Onboarded, Signup, Verification};
use steadfast_examples::{Services, mail_flow, register_all};

const DAY: Duration = Duration::from_secs(86_400);

async fn start() -> (TestHost, Arc<Services>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let services = Arc::new(Services::open(dir.path()).expect("services"));
    let s = Arc::clone(&services);
    let t = TestHost::start(move |b| register_all(b, Arc::clone(&s))).await;
    (t, services, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_flow_year_with_a_crash_in_the_middle() {
    let (t, services, _dir) = start().await;
    t.host()
        .spawn(mail_flow::KIND, "mf", "eve@example.com")
        .await
        .expect("spawn");
    let first = t.settle("mf").await;
    assert_eq!(first.status, Status::Suspended);
    assert_eq!(first.wake_at, Some(first.created_at + 30 * DAY));
    assert_eq!(services.mail.sent().expect("mails").len(), 1);

    t.advance(29 * DAY).await;
    t.crash_and_restart().await;
    assert_eq!(
        t.settle("mf").await.wake_at,
        Some(first.created_at + 30 * DAY),
        "timer kept"
    );
    assert_eq!(
        services.mail.sent().expect("mails").len(),
        1,
        "nothing sent early"
    );

    t.advance(DAY).await;
    for _ in 0..1000 {
        if services.mail.sent().expect("mails").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let second = t.settle("mf").await;
    assert_eq!(second.status, Status::Suspended);
    assert_eq!(second.wake_at, Some(first.created_at + 365 * DAY));

    t.advance(335 * DAY).await;
    let () = t.host().outcome("mf").await.expect("outcome");
    assert_eq!(
        t.steps("mf").await,
        [
            "welcome sent",
            "first month passed",
            "first month mail sent",
            "first year passed",
            "first year mail sent"
        ]
    );
    assert_eq!(
        services.mail.sent().expect("mails").len(),
        3,
        "each mail exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_survives_a_crash_while_waiting() {
    let (t, services, _dir) = start().await;
    let signup = Signup {
        email: "fay@example.com".into(),
    };
    t.host()
        .spawn(onboarding::KIND, "ob", &signup)
        .await
        .expect("spawn");
    assert_eq!(t.settle("ob").await.status, Status::Suspended);
    let secret: uuid::Uuid = {
        let journal = t.journal("ob").await;
        let entry = journal
            .iter()
            .find(|e| e.name == "secret generated")
            .expect("secret");
        serde_json::from_str(entry.outcome.as_deref().expect("outcome")).expect("uuid")
    };
    t.crash_and_restart().await;
    t.host()
        .signal("ob", onboarding::VERIFIED, &Verification { secret })
        .await
        .expect("signal");
    let done: Onboarded = t.host().outcome("ob").await.expect("outcome");
    assert_eq!(done.user_id, 1);
    assert_eq!(
        services.mail.sent().expect("mails").len(),
        1,
        "one verification mail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_card_timer_fires_only_when_time_passes() {
    let (t, services, _dir) = start().await;
    let card = Card {
        email: "gus@example.com".into(),
    };
    t.host()
        .spawn(credit_card::KIND, "cc", &card)
        .await
        .expect("spawn");
    assert_eq!(t.settle("cc").await.status, Status::Suspended);
    t.advance(Duration::from_secs(4 * 60)).await;
    assert_eq!(t.settle("cc").await.status, Status::Suspended);
    assert_eq!(
        services.mail.sent().expect("mails").len(),
        1,
        "not yet inactive"
    );
    t.advance(Duration::from_secs(60)).await;
    // The mail is sent by the step's closure before its entry is journaled:
    // wait for the journal, which is what the test is about.
    for _ in 0..2000 {
        if t.steps("cc")
            .await
            .contains(&"inactive card mail sent".to_owned())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        t.steps("cc")
            .await
            .contains(&"inactive card mail sent".to_owned())
    );
    assert_eq!(services.mail.sent().expect("mails").len(), 2);
    t.host()
        .signal("cc", credit_card::CARD_DELETED, &())
        .await
        .expect("signal");
    let () = t.host().outcome("cc").await.expect("outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_card_replays_the_branches_in_the_order_they_happened() {
    let (t, services, _dir) = start().await;
    let card = Card {
        email: "hal@example.com".into(),
    };
    t.host()
        .spawn(credit_card::KIND, "cc", &card)
        .await
        .expect("spawn");
    assert_eq!(t.settle("cc").await.status, Status::Suspended);
    // The timer fires first, then the first transaction arrives: on every
    // later replay the timer branch must still come first.
    t.advance(credit_card::INACTIVITY).await;
    for _ in 0..1000 {
        if t.steps("cc")
            .await
            .contains(&"inactive card mail sent".to_owned())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(t.settle("cc").await.status, Status::Suspended);
    let tx = credit_card::Transaction {
        amount: 5,
        merchant: "Kiosk".into(),
    };
    t.host()
        .signal("cc", credit_card::FIRST_TRANSACTION, &tx)
        .await
        .expect("signal");
    for _ in 0..1000 {
        if t.steps("cc")
            .await
            .contains(&"first transaction mail sent".to_owned())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    t.crash_and_restart().await;
    t.host()
        .signal("cc", credit_card::CARD_DELETED, &())
        .await
        .expect("signal");
    let () = t
        .host()
        .outcome("cc")
        .await
        .expect("completes, not blocked");
    assert_eq!(
        t.steps("cc").await,
        [
            "welcome sent",
            "5 minutes passed",
            "inactive card mail sent",
            "first transaction",
            "first transaction mail sent",
            "card deleted",
            "card deleted mail sent"
        ]
    );
    assert_eq!(services.mail.sent().expect("mails").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_finished_processes_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let services = Arc::new(Services::open(dir.path()).expect("services"));
    let s = Arc::clone(&services);
    let t = TestHost::start(move |b| register_all(b, Arc::clone(&s)).retention(30 * DAY)).await;
    t.host()
        .spawn(mail_flow::KIND, "sleeper", "a@example.com")
        .await
        .expect("spawn");
    t.host()
        .spawn(steadfast_examples::workload::KIND, "older", &())
        .await
        .expect("spawn");
    let _: Vec<String> = t.host().outcome("older").await.expect("outcome");
    assert_eq!(t.settle("sleeper").await.status, Status::Suspended);
    // A second finished process, two days younger.
    t.advance(2 * DAY).await;
    t.host()
        .spawn(steadfast_examples::workload::KIND, "younger", &())
        .await
        .expect("spawn");
    let _: Vec<String> = t.host().outcome("younger").await.expect("outcome");
    let older = t.status("older").await.updated_at;
    let younger = t.status("younger").await.updated_at;
    assert_eq!(younger, older + 2 * DAY);

    // 31 days after the older one finished, 29 after the younger one: the
    // purge pass that removes the older one (the observable event) keeps
    // the younger one, which is still within its retention.
    t.advance(29 * DAY).await;
    // The purge runs every tenth of the retention on the host's clock; on a
    // loaded machine its next run may be planned from a later moment than
    // the advance, so move on an hour at a time, at most 23 hours (the
    // younger one stays under 30 days old).
    let mut hours = 0;
    for _ in 0..2000 {
        if t.host().status("older").await.is_err() {
            break;
        }
        if hours < 23 {
            t.advance(Duration::from_secs(3_600)).await;
            hours += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(t.host().status("older").await.is_err(), "purged at 31 days");
    assert_eq!(
        t.status("younger").await.status,
        Status::Completed,
        "kept at 29 days (and under 30)"
    );
    // Two days later the younger one is over 31 days old too.
    t.advance(2 * DAY).await;
    for _ in 0..2000 {
        if t.host().status("younger").await.is_err() {
            break;
        }
        t.advance(Duration::from_secs(3_600)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        t.host().status("younger").await.is_err(),
        "purged at 31 days"
    );
    // The mail flow woke up at day 30 and sleeps again: never purged.
    assert_ne!(t.status("sleeper").await.status, Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_saga_compensates_under_the_harness() {
    let (t, services, _dir) = start().await;
    services
        .bank
        .open_account("ann", 5_000)
        .await
        .expect("account");
    let t_in = steadfast_examples::transfer::Transfer {
        from: "ann".into(),
        to: "closed".into(),
        amount: 2_000,
    };
    t.host()
        .spawn(steadfast_examples::transfer::KIND, "tx", &t_in)
        .await
        .expect("spawn");
    let err = t.host().outcome::<()>("tx").await.expect_err("compensated");
    assert!(err.to_string().contains("compensated"), "{err}");
    assert_eq!(
        t.steps("tx").await,
        ["debit started", "credit started", "debit rolled back"]
    );
    t.crash_and_restart().await;
    assert_eq!(t.status("tx").await.status, Status::Failed, "stays failed");
    assert_eq!(services.bank.balance("ann").await.expect("balance"), 5_000);
}
