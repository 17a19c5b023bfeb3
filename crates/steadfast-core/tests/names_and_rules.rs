//! The stored names of statuses, entry kinds and signal states, the rules
//! that classify them, ids as text, and the clocks' rates.

use std::time::{Duration, Instant};

use steadfast_core::{
    Clock, EntryKind, EntryStatus, HostId, ProcessId, ScaledClock, SignalState, Status, StoreError,
    SystemClock, Timestamp,
};

#[test]
fn statuses_have_their_stored_names_and_parse_back() {
    let names = [
        "running",
        "suspended",
        "blocked",
        "completed",
        "failed",
        "cancelled",
    ];
    for (status, name) in Status::ALL.into_iter().zip(names) {
        assert_eq!(status.as_str(), name);
        assert_eq!(status.to_string(), name);
        assert_eq!(name.parse::<Status>(), Ok(status));
    }
    let err = "done".parse::<Status>().expect_err("unknown");
    assert_eq!(err.0, "done");
}

#[test]
fn only_completed_failed_and_cancelled_are_finished() {
    let finished: Vec<Status> = Status::ALL
        .into_iter()
        .filter(|s| s.is_finished())
        .collect();
    assert_eq!(
        finished,
        [Status::Completed, Status::Failed, Status::Cancelled]
    );
}

#[test]
fn entry_kinds_and_statuses_have_their_stored_names_and_parse_back() {
    for (kind, name) in [
        (EntryKind::Step, "step"),
        (EntryKind::Value, "value"),
        (EntryKind::Timer, "timer"),
        (EntryKind::Wait, "wait"),
    ] {
        assert_eq!(kind.as_str(), name);
        assert_eq!(EntryKind::parse(name), Some(kind));
    }
    assert_eq!(EntryKind::parse("sleep"), None);
    for (status, name) in [
        (EntryStatus::Scheduled, "scheduled"),
        (EntryStatus::Completed, "completed"),
        (EntryStatus::Failed, "failed"),
    ] {
        assert_eq!(status.as_str(), name);
        assert_eq!(EntryStatus::parse(name), Some(status));
    }
    assert_eq!(EntryStatus::parse("running"), None);
}

#[test]
fn signal_states_have_their_stored_names_and_parse_back() {
    for (state, name) in [
        (SignalState::Pending, "pending"),
        (SignalState::Consumed, "consumed"),
        (SignalState::Rejected, "rejected"),
        (SignalState::Discarded, "discarded"),
    ] {
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
        assert_eq!(SignalState::parse(name), Some(state));
    }
    assert_eq!(SignalState::parse("sent"), None);
}

#[test]
fn only_a_backend_error_marked_retryable_is_retryable() {
    let backend = |retryable| StoreError::Backend {
        message: "busy".to_owned(),
        retryable,
        source: None,
    };
    assert!(backend(true).is_retryable());
    assert!(!backend(false).is_retryable());
    assert!(!StoreError::Closed.is_retryable());
    let id = ProcessId::new("p").expect("id");
    assert!(!StoreError::NotFound(id).is_retryable());
}

#[test]
fn ids_show_as_their_text() {
    let id = ProcessId::new("order-17").expect("id");
    assert_eq!(id.to_string(), "order-17");
    assert_eq!(format!("{id:?}"), "\"order-17\"");
    assert_eq!(String::from(id), "order-17");
    let host = HostId::new("worker-a");
    assert_eq!(host.as_str(), "worker-a");
    assert_eq!(host.to_string(), "worker-a");
}

#[test]
fn clocks_report_their_rate() {
    assert_eq!(SystemClock.rate(), 1.0);
    let clock = ScaledClock::new(Timestamp::now_system(), 3600.0);
    assert_eq!(clock.scale(), 3600.0);
    assert_eq!(clock.rate(), 3600.0);
}

#[test]
fn a_scaled_clock_runs_scale_times_faster_from_its_origin() {
    let real = Instant::now();
    let origin = Timestamp::now_system();
    let clock = ScaledClock::new(origin, 2.0);
    let now = clock.now();
    let elapsed = real.elapsed();
    // At most twice the real time passed since the origin (plus a
    // microsecond of rounding), and never less than none.
    assert!(now >= origin, "{now} before {origin}");
    assert!(
        now.saturating_since(origin) <= elapsed * 2 + Duration::from_micros(1),
        "{:?} of clock time in {elapsed:?} of real time",
        now.saturating_since(origin)
    );
}

#[test]
fn timestamps_show_dates_across_centuries_and_before_1970() {
    for (secs, shown) in [
        (4_107_456_000_i64, "2100-02-28T00:00:00.000000Z"),
        (4_107_542_400, "2100-03-01T00:00:00.000000Z"),
        (-2_203_977_600, "1900-02-28T00:00:00.000000Z"),
        (-2_203_891_200, "1900-03-01T00:00:00.000000Z"),
        (13_574_563_200, "2400-02-29T00:00:00.000000Z"),
        (-11_670_912_000, "1600-03-01T00:00:00.000000Z"),
        (-1, "1969-12-31T23:59:59.000000Z"),
    ] {
        assert_eq!(
            Timestamp::from_micros(secs * 1_000_000).to_string(),
            shown,
            "{secs}"
        );
    }
}

#[test]
fn system_times_before_1970_are_negative_and_spans_saturate() {
    let before = std::time::UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(Timestamp::from(before), Timestamp::from_micros(-1_000_000));
    let after = std::time::UNIX_EPOCH + Duration::from_micros(5);
    assert_eq!(Timestamp::from(after), Timestamp::from_micros(5));
    let (early, late) = (Timestamp::from_micros(10), Timestamp::from_micros(25));
    assert_eq!(late.saturating_since(early), Duration::from_micros(15));
    assert_eq!(early.saturating_since(late), Duration::ZERO);
}

#[test]
fn a_function_source_contains_exactly_its_own_lines() {
    let source = steadfast_core::FunctionSource {
        name: "order".to_owned(),
        file: "src/order.rs".to_owned(),
        first_line: 10,
        text: "async fn order() {\n    step();\n}".to_owned(),
    };
    let at = |file: &str, line| steadfast_core::SourceLocation {
        file: file.to_owned(),
        line,
    };
    for (location, inside) in [
        (at("src/order.rs", 9), false),
        (at("src/order.rs", 10), true),
        (at("src/order.rs", 11), true),
        (at("src/order.rs", 12), true),
        (at("src/order.rs", 13), false),
        (at("src/other.rs", 11), false),
    ] {
        assert_eq!(source.contains(&location), inside, "{location:?}");
    }
    // An empty text still covers its first line.
    let empty = steadfast_core::FunctionSource {
        text: String::new(),
        ..source
    };
    assert!(empty.contains(&at("src/order.rs", 10)));
    assert!(!empty.contains(&at("src/order.rs", 11)));
}

/// A clock standing at a fixed time that records the deadlines it is asked
/// to sleep until.
struct Recording {
    now: Timestamp,
    deadlines: std::sync::Mutex<Vec<Timestamp>>,
}

impl Clock for Recording {
    fn now(&self) -> Timestamp {
        self.now
    }

    fn sleep_until(
        &self,
        deadline: Timestamp,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        self.deadlines.lock().expect("lock").push(deadline);
        Box::pin(std::future::ready(()))
    }
}

#[test]
fn sleeping_for_a_duration_sleeps_until_now_plus_it() {
    let clock = Recording {
        now: Timestamp::from_micros(1_000_000),
        deadlines: std::sync::Mutex::default(),
    };
    drop(clock.sleep(Duration::from_secs(5)));
    assert_eq!(clock.rate(), 1.0, "the default rate is real time");
    assert_eq!(
        *clock.deadlines.lock().expect("lock"),
        [Timestamp::from_micros(6_000_000)]
    );
}

#[test]
fn counts_per_status_and_in_total_include_unreadable_rows() {
    let counts = steadfast_core::Counts {
        by_status: vec![
            steadfast_core::StatusCount {
                status: Status::Running,
                count: 3,
            },
            steadfast_core::StatusCount {
                status: Status::Completed,
                count: 5,
            },
        ],
        unreadable: 2,
    };
    assert_eq!(counts.of(Status::Running), 3);
    assert_eq!(counts.of(Status::Completed), 5);
    assert_eq!(counts.of(Status::Failed), 0);
    assert_eq!(counts.total(), 10);
}

#[test]
fn listed_rows_give_their_id_and_record_when_readable() {
    let error = steadfast_core::RowError {
        table: "processes".to_owned(),
        row: "bad".to_owned(),
        column: "status".to_owned(),
        detail: "unknown status \"done\"".to_owned(),
    };
    assert_eq!(
        error.to_string(),
        "processes row \"bad\", column status: unknown status \"done\""
    );
    let unreadable = steadfast_core::Listed::Unreadable {
        id: "bad".to_owned(),
        error,
    };
    assert_eq!(unreadable.id(), "bad");
    assert_eq!(unreadable.record(), None);
    assert_eq!(unreadable.into_record(), None);
}
