//! Typed kinds and handles: `#[steadfast::process]` emits a kind type, hosts
//! register it by type, start its processes with typed inputs, and read
//! typed outcomes; values beyond the input come from `provide`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use steadfast::testing::TestHost;
use steadfast::{Error, Process, ProcessKind, Spawned, SqliteStore, Status, StepError, StepFailed};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receipt {
    total: u64,
    note: String,
}

/// A service the host provides to the function.
#[derive(Clone)]
struct Prices {
    unit: u64,
    calls: Arc<AtomicU32>,
}

#[steadfast::process(name = "checkout order")]
async fn checkout(p: Process, order: Order, prices: Prices) -> Result<Receipt, StepFailed> {
    let total = p
        .step("priced", || async {
            prices.calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, StepError>(prices.unit * u64::from(order.quantity))
        })
        .await?;
    let note: String = p.wait("note").await;
    Ok(Receipt { total, note })
}

#[steadfast::process]
async fn echo(_p: Process, text: String) -> Result<String, String> {
    Ok(text)
}

fn prices() -> Prices {
    Prices {
        unit: 7,
        calls: Arc::default(),
    }
}

#[test]
fn the_macro_emits_the_kind_type() {
    assert_eq!(Checkout::NAME, "checkout order");
    assert_eq!(Checkout::VERSION, 1);
    assert_eq!(Echo::NAME, "echo");
    let _: <Checkout as ProcessKind>::Input = Order {
        item: "tea".into(),
        quantity: 1,
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_handle_signals_and_reads_a_typed_outcome() {
    let prices = prices();
    let calls = Arc::clone(&prices.calls);
    let t = TestHost::start(move |b| b.provide(prices.clone()).register_kind::<Checkout>()).await;
    let order = Order {
        item: "tea".into(),
        quantity: 3,
    };
    let handle = t
        .host()
        .start::<Checkout>("order-1", &order)
        .await
        .expect("start");
    assert_eq!(handle.spawned(), Spawned::Created);
    assert_eq!(handle.id().as_str(), "order-1");
    assert_eq!(t.settle("order-1").await.status, Status::Suspended);
    assert_eq!(
        handle.status().await.expect("status").kind,
        "checkout order"
    );
    handle.signal("note", &"thanks").await.expect("signal");
    let receipt: Receipt = handle.outcome().await.expect("outcome");
    assert_eq!(
        receipt,
        Receipt {
            total: 21,
            note: "thanks".into()
        }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let names: Vec<String> = handle
        .journal()
        .await
        .expect("journal")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["priced", "note"]);

    // Starting again is idempotent and gives a handle on the same process.
    let again = t
        .host()
        .start::<Checkout>("order-1", &order)
        .await
        .expect("again");
    assert_eq!(again.spawned(), Spawned::Existing);
    assert_eq!(again.outcome().await.expect("outcome"), receipt);

    // The string API still sees the same kind.
    let via_strings: Receipt = t.host().outcome("order-1").await.expect("outcome");
    assert_eq!(via_strings, receipt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_of_the_wrong_kind_is_refused() {
    let t = TestHost::start(|b| {
        b.register_kind::<Echo>()
            .provide(prices())
            .register_kind::<Checkout>()
    })
    .await;
    t.host()
        .start::<Echo>("e-1", &"hi".to_owned())
        .await
        .expect("start");
    assert_eq!(
        t.host()
            .handle::<Echo>("e-1")
            .await
            .expect("handle")
            .outcome()
            .await
            .expect("outcome"),
        "hi"
    );
    match t.host().handle::<Checkout>("e-1").await {
        Err(Error::WrongKind {
            expected, found, ..
        }) => {
            assert_eq!(expected, "checkout order");
            assert_eq!(found, "echo");
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_a_handle() {
    let t = TestHost::start(|b| b.provide(prices()).register_kind::<Checkout>()).await;
    let handle = t
        .host()
        .start::<Checkout>(
            "order-2",
            &Order {
                item: "tea".into(),
                quantity: 1,
            },
        )
        .await
        .expect("start");
    assert_eq!(t.settle("order-2").await.status, Status::Suspended);
    assert_eq!(handle.cancel().await.expect("cancel"), Status::Cancelled);
    assert!(matches!(
        handle.outcome().await,
        Err(Error::Cancelled { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "needs a value this host was not given")]
async fn a_running_host_without_a_provided_value_does_not_build() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("p.db"))
        .await
        .expect("store");
    let _host = steadfast::Host::builder(store)
        .register_kind::<Checkout>()
        .build();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_host_checks_inputs_without_the_provided_values() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("c.db"))
        .await
        .expect("store");
    let client = steadfast::Host::builder(store)
        .register_kind::<Checkout>()
        .build_client();
    let handle = client
        .start::<Checkout>(
            "order-3",
            &Order {
                item: "tea".into(),
                quantity: 2,
            },
        )
        .await
        .expect("start on a client");
    assert_eq!(
        handle.status().await.expect("status").status,
        Status::Running
    );
    // The string API with a wrong input still gets a typed error.
    let err = client
        .spawn("checkout order", "order-4", &42)
        .await
        .expect_err("bad input");
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}
