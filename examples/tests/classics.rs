//! The four classic processes, end to end on SQLite, with a fast clock so
//! month-long sleeps pass in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use steadfast::{Error, Host, ScaledClock, SqliteStore, Status, Timestamp};
use steadfast_examples::credit_card::{self, Card, Transaction};
use steadfast_examples::onboarding::{self, Onboarded, Signup, Verification};
use steadfast_examples::transfer::{self, Transfer};
use steadfast_examples::{Services, mail_flow, register_all};
use tempfile::TempDir;

struct World {
    _dir: TempDir,
    host: Host,
    services: Arc<Services>,
}

/// A host running every example kind; `speed` clock seconds pass per real second.
async fn world(speed: f64) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let services = Arc::new(Services::open(dir.path().join("services")).expect("services"));
    let store = SqliteStore::open(dir.path().join("classics.db"))
        .await
        .expect("store");
    let host = register_all(Host::builder(store), Arc::clone(&services))
        .clock(ScaledClock::new(Timestamp::now_system(), speed))
        .poll_interval(Duration::from_millis(20))
        .build();
    World {
        _dir: dir,
        host,
        services,
    }
}

async fn until(host: &Host, id: &str, status: Status) {
    for _ in 0..2000 {
        if host.status(id).await.expect("status").status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never became {status}");
}

fn subjects(services: &Services) -> Vec<String> {
    services
        .mail
        .sent()
        .expect("mails")
        .into_iter()
        .map(|(_, text)| {
            text.lines()
                .nth(1)
                .unwrap_or_default()
                .trim_start_matches("Subject: ")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_waits_for_the_right_secret() {
    let w = world(1.0).await;
    let signup = Signup {
        email: "ada@example.com".into(),
    };
    w.host
        .spawn(onboarding::KIND, "onboard-ada", &signup)
        .await
        .expect("spawn");
    until(&w.host, "onboard-ada", Status::Suspended).await;

    let mails = w.services.mail.sent().expect("mails");
    assert_eq!(mails.len(), 1);
    let code = mails[0].1.rsplit(' ').next().expect("code").trim();
    let secret: uuid::Uuid = code.parse().expect("secret in mail");

    let wrong = Verification {
        secret: uuid::Uuid::nil(),
    };
    w.host
        .signal("onboard-ada", onboarding::VERIFIED, &wrong)
        .await
        .expect("signal");
    // The wrong secret is taken (no signal pending) and the process waits
    // again, with the user still inactive.
    let id = steadfast::ProcessId::new("onboard-ada").expect("id");
    let started = std::time::Instant::now();
    loop {
        let pending = w.host.store().pending_signals(&id).await.expect("pending");
        let record = w.host.status("onboard-ada").await.expect("status");
        if pending.is_empty() && record.status == Status::Suspended {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the wrong secret was never handled: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let journal = w.host.store().journal(&id).await.expect("journal");
    let taken: Vec<&str> = journal
        .iter()
        .filter(|e| e.consumed_signal.is_some())
        .filter_map(|e| e.outcome.as_deref())
        .collect();
    assert_eq!(taken.len(), 1, "{journal:?}");
    assert!(
        taken[0].contains(&uuid::Uuid::nil().to_string()),
        "the wrong secret was the one taken: {taken:?}"
    );
    let user = w
        .services
        .users
        .get("ada@example.com")
        .await
        .expect("users")
        .expect("user");
    assert!(!user.active, "a wrong secret must not activate the user");
    w.host
        .signal(
            "onboard-ada",
            onboarding::VERIFIED,
            &Verification { secret },
        )
        .await
        .expect("signal");
    let done: Onboarded = w.host.outcome("onboard-ada").await.expect("outcome");
    let user = w
        .services
        .users
        .get("ada@example.com")
        .await
        .expect("users")
        .expect("user");
    assert_eq!(user.id, done.user_id);
    assert!(user.active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_flow_spans_a_year_in_milliseconds() {
    let w = world(3.0e8).await;
    w.host
        .spawn(mail_flow::KIND, "mails-bob", "bob@example.com")
        .await
        .expect("spawn");
    let () = w.host.outcome("mails-bob").await.expect("outcome");
    assert_eq!(
        subjects(&w.services),
        [
            "Your 1st month with us",
            "Your 1st year with us",
            "Welcome!"
        ]
    );
    let journal = w
        .host
        .store()
        .journal(&"mails-bob".try_into().expect("id"))
        .await
        .expect("journal");
    let month = journal
        .iter()
        .find(|e| e.name == "first month passed")
        .expect("timer");
    let waited = month
        .due_at
        .expect("due")
        .saturating_since(month.started_at);
    assert_eq!(
        waited,
        Duration::from_secs(30 * 86_400),
        "the duration is not shortened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_completes_or_compensates() {
    let w = world(1.0).await;
    w.services
        .bank
        .open_account("alice", 10_000)
        .await
        .expect("account");
    w.services
        .bank
        .open_account("bob", 0)
        .await
        .expect("account");
    let ok = Transfer {
        from: "alice".into(),
        to: "bob".into(),
        amount: 3_000,
    };
    w.host
        .spawn(transfer::KIND, "transfer-1", &ok)
        .await
        .expect("spawn");
    let () = w.host.outcome("transfer-1").await.expect("transfer 1");
    assert_eq!(
        w.services.bank.balance("alice").await.expect("balance"),
        7_000
    );
    assert_eq!(
        w.services.bank.balance("bob").await.expect("balance"),
        3_000
    );

    let too_much = Transfer {
        from: "bob".into(),
        to: "alice".into(),
        amount: 100_000,
    };
    w.host
        .spawn(transfer::KIND, "transfer-2", &too_much)
        .await
        .expect("spawn");
    let err = w
        .host
        .outcome::<()>("transfer-2")
        .await
        .expect_err("insufficient funds");
    assert!(
        matches!(&err, Error::Failed { error, .. } if error.contains("compensated") && error.contains("insufficient funds")),
        "{err}"
    );
    assert_eq!(
        w.services.bank.balance("alice").await.expect("balance"),
        7_000
    );
    assert_eq!(
        w.services.bank.balance("bob").await.expect("balance"),
        3_000
    );

    // The credit side fails (no such account): the started debit is rolled back.
    let nowhere = Transfer {
        from: "alice".into(),
        to: "nobody".into(),
        amount: 1_000,
    };
    w.host
        .spawn(transfer::KIND, "transfer-3", &nowhere)
        .await
        .expect("spawn");
    w.host
        .outcome::<()>("transfer-3")
        .await
        .expect_err("unknown account");
    let journal = w
        .host
        .store()
        .journal(&"transfer-3".try_into().expect("id"))
        .await
        .expect("journal");
    let names: Vec<&str> = journal.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["debit started", "credit started", "debit rolled back"]
    );
    assert_eq!(
        w.services.bank.balance("alice").await.expect("balance"),
        7_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_card_inactive_then_deleted() {
    let w = world(1.0e6).await;
    let card = Card {
        email: "cy@example.com".into(),
    };
    w.host
        .spawn(credit_card::KIND, "card-1", &card)
        .await
        .expect("spawn");
    // At this speed the five minutes pass at once; wait for the mail.
    for _ in 0..2000 {
        if subjects(&w.services).iter().any(|s| s.contains("not used")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.host
        .signal("card-1", credit_card::CARD_DELETED, &())
        .await
        .expect("signal");
    let () = w.host.outcome("card-1").await.expect("outcome");
    assert_eq!(
        subjects(&w.services),
        [
            "Your card was deleted",
            "Your card is not used yet",
            "Your new card"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_card_first_transaction_then_deleted() {
    let w = world(1.0).await;
    let card = Card {
        email: "di@example.com".into(),
    };
    w.host
        .spawn(credit_card::KIND, "card-2", &card)
        .await
        .expect("spawn");
    until(&w.host, "card-2", Status::Suspended).await;
    let tx = Transaction {
        amount: 1_250,
        merchant: "Coffee Corner".into(),
    };
    w.host
        .signal("card-2", credit_card::FIRST_TRANSACTION, &tx)
        .await
        .expect("signal");
    for _ in 0..2000 {
        if subjects(&w.services).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until(&w.host, "card-2", Status::Suspended).await;
    let waiting = w.host.status("card-2").await.expect("status");
    assert_eq!(
        waiting.waiting_for,
        [credit_card::CARD_DELETED],
        "the timer was dropped"
    );
    assert_eq!(waiting.wake_at, None);
    w.host
        .signal("card-2", credit_card::CARD_DELETED, &())
        .await
        .expect("signal");
    let () = w.host.outcome("card-2").await.expect("outcome");
    assert_eq!(
        subjects(&w.services),
        [
            "Your card was deleted",
            "First transaction received: 1250 at Coffee Corner",
            "Your new card"
        ]
    );
}
