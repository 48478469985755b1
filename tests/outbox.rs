//! The durable outbox against the emulator: merging, skipping, offline and throttled flushes, the
//! failed list, bounds, bad files, threads, processes and `kill -9`.
#![cfg(feature = "outbox")]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TOKEN, TokenThenNone, builder};
use intune_user_status::{
    ApiVersion, BulkItem, Client, ComplianceStatus, Enqueued, Error, FlushReport, FlushStop,
    MIN_OUTBOX_BYTES, Outbox, OutboxOptions, RetryPolicy, Route, Target, UserStatusPatch,
};
use ius_emulator::{Config, Emulator, Fault, FaultRule, SeedEntry};
use serde_json::{Value, json};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

/// An emulator with user statuses `ids` under `c1`.
fn emulator_with(ids: impl IntoIterator<Item = String>, config: Config) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed: ids
            .into_iter()
            .map(|id| SeedEntry {
                collection: DIRECT.into(),
                entity: json!({ "id": id, "devicesCount": 0 }),
            })
            .collect(),
        ..config
    })
    .expect("start emulator")
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A fresh folder for one test's files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ius-outbox-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(client: &Client, path: &Path) -> Outbox {
    Outbox::open(client, path, OutboxOptions::new()).expect("open the outbox")
}

fn count(n: i32) -> UserStatusPatch {
    UserStatusPatch::new().devices_count(n)
}

/// PATCH requests the emulator saw, as (path, body).
fn patches(emu: &Emulator) -> Vec<(String, Value)> {
    emu.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            (
                r.path().to_owned(),
                serde_json::from_str(&r.body_str()).unwrap(),
            )
        })
        .collect()
}

fn devices(emu: &Emulator, id: &str) -> i64 {
    emu.user_status(DIRECT, id).expect("seeded")["devicesCount"]
        .as_i64()
        .unwrap()
}

#[test]
fn reports_merge_field_by_field_into_one_write_per_target() {
    let emu = emulator_with(ids("u", 2), Config::default());
    let dir = folder("merge");
    let outbox = open(&common::client(&emu.base_url()), &dir.join("outbox.db"));
    let u0 = Target::new("c1", "u0");
    let first = UserStatusPatch::new()
        .status(ComplianceStatus::NonCompliant)
        .devices_count(1);
    assert_eq!(outbox.enqueue(&u0, &first).unwrap(), Enqueued::Stored);
    assert_eq!(outbox.enqueue(&u0, &count(2)).unwrap(), Enqueued::Merged);
    let named = UserStatusPatch::new().user_display_name("Ada");
    assert_eq!(outbox.enqueue(&u0, &named).unwrap(), Enqueued::Merged);
    outbox.enqueue(&Target::new("c1", "u1"), &count(7)).unwrap();
    assert_eq!(outbox.stats().unwrap().pending, 2);

    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.applied, report.pending), (2, 2, 0));
    assert_eq!(report.next_attempt_in, None);
    let sent = patches(&emu);
    assert_eq!(sent.len(), 2, "{sent:?}");
    // Through the bulk path: one $batch carried both.
    let batches: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
        .collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(sent[0].0, format!("/beta{DIRECT}/u0"));
    assert_eq!(
        sent[0].1,
        json!({"userDisplayName": "Ada", "devicesCount": 2, "status": "nonCompliant"})
    );
    assert_eq!(sent[1].1, json!({"devicesCount": 7}));
    let stored = emu.user_status(DIRECT, "u0").unwrap();
    assert_eq!(
        (&stored["devicesCount"], &stored["status"]),
        (&json!(2), &json!("nonCompliant"))
    );
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.pending, stats.applied), (0, 2));
    // Nothing left: a second flush sends nothing.
    assert_eq!(outbox.flush().unwrap().sent, 0);
    assert_eq!(patches(&emu).len(), 2);
    // The pending count followed the removals: room for one new target, not two.
    let client = common::client(&emu.base_url());
    let one = Outbox::open(
        &client,
        dir.join("outbox.db"),
        OutboxOptions::new().max_pending(1),
    )
    .unwrap();
    assert_eq!(one.enqueue(&u0, &count(8)).unwrap(), Enqueued::Stored);
    let err = one
        .enqueue(&Target::new("c1", "u1"), &count(8))
        .unwrap_err();
    assert!(matches!(err, Error::OutboxFull { .. }), "{err}");
}

#[test]
fn unchanged_reports_are_skipped_until_resend_after() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("skip");
    let client = common::client(&emu.base_url());
    let outbox = open(&client, &dir.join("outbox.db"));
    let u0 = Target::new("c1", "u0");
    let state = UserStatusPatch::new()
        .status(ComplianceStatus::Compliant)
        .devices_count(3);
    outbox.enqueue(&u0, &state).unwrap();
    outbox.flush().unwrap();
    // Equal, or a subset of what Graph acknowledged: nothing stored, nothing sent.
    assert_eq!(outbox.enqueue(&u0, &state).unwrap(), Enqueued::Skipped);
    assert_eq!(outbox.enqueue(&u0, &count(3)).unwrap(), Enqueued::Skipped);
    assert_eq!(outbox.flush().unwrap().sent, 0);
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.pending, stats.skipped, stats.applied), (0, 2, 1));
    // A change is stored and sent.
    assert_eq!(outbox.enqueue(&u0, &count(4)).unwrap(), Enqueued::Stored);
    // Set back to the acknowledged value before the flush: removed unsent, counted as skipped.
    assert_eq!(outbox.enqueue(&u0, &count(3)).unwrap(), Enqueued::Merged);
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.skipped), (0, 1));
    assert_eq!(patches(&emu).len(), 1);
    drop(outbox);

    // resendAfter 0: the acknowledged state never suppresses a report; skipUnchanged false neither.
    for options in [
        OutboxOptions::new().resend_after(Duration::ZERO),
        OutboxOptions::new().skip_unchanged(false),
    ] {
        let outbox = Outbox::open(&client, dir.join("outbox.db"), options).unwrap();
        assert_eq!(outbox.enqueue(&u0, &state).unwrap(), Enqueued::Stored);
        assert_eq!(outbox.flush().unwrap().applied, 1);
    }
    assert_eq!(patches(&emu).len(), 3);
}

#[test]
fn enqueue_validates_as_an_update_does_and_stores_nothing_invalid() {
    let dir = folder("invalid");
    // Nothing listens there: validation needs no service.
    let client = common::client("http://127.0.0.1:9");
    let outbox = open(&client, &dir.join("outbox.db"));
    let field = |err: Error| match err {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let u0 = Target::new("c1", "u0");
    assert_eq!(
        field(outbox.enqueue(&u0, &count(-1)).unwrap_err()),
        "devicesCount"
    );
    assert_eq!(
        field(outbox.enqueue(&u0, &UserStatusPatch::new()).unwrap_err()),
        "patch"
    );
    assert_eq!(
        field(outbox.enqueue(&u0, &count(1).id("other")).unwrap_err()),
        "id"
    );
    assert_eq!(
        field(
            outbox
                .enqueue(&Target::new("", "u0"), &count(1))
                .unwrap_err()
        ),
        "deviceConfigurationId"
    );
    let nested = Target::with_route("c1", Route::RootCertificate, "u0");
    let v1 = BulkItem::new(nested, count(1)).api_version(ApiVersion::V1_0);
    assert_eq!(field(outbox.enqueue_many(&[v1]).unwrap_err()), "route");
    // All or nothing: one bad item stores none of the batch.
    let batch = [
        BulkItem::new(Target::new("c1", "a"), count(1)),
        BulkItem::new(Target::new("c1", "b"), count(-5)),
    ];
    assert_eq!(
        field(outbox.enqueue_many(&batch).unwrap_err()),
        "devicesCount"
    );
    assert_eq!(outbox.stats().unwrap().pending, 0);
    let good = [
        BulkItem::new(Target::new("c1", "a"), count(1)),
        BulkItem::new(Target::new("c1", "a"), count(2)),
        BulkItem::new(Target::new("c1", "b"), count(3)).api_version(ApiVersion::V1_0),
    ];
    assert_eq!(
        outbox.enqueue_many(&good).unwrap(),
        [Enqueued::Stored, Enqueued::Merged, Enqueued::Stored]
    );
}

/// A loopback address where nothing listens (yet).
fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn offline_then_back_delivers_every_status_once_per_target() {
    let addr = free_addr();
    let dir = folder("offline");
    // Each offline call retries (4 requests): the outcome of those is unknown to the outbox (it
    // sees the last one's error only), so a changed value waits requestMs behind them.
    let client = builder(&format!("http://{addr}"))
        .request_timeout(Duration::from_millis(IN_DOUBT_MS))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    // An agent reporting every "minute" while offline: three reports for each of five statuses.
    for round in 1..=3 {
        for id in ids("u", 5) {
            outbox
                .enqueue(&Target::new("c1", id), &count(round))
                .unwrap();
        }
        let report = outbox.flush().unwrap();
        assert_eq!(report.applied, 0);
        assert_eq!(report.pending, 5);
    }
    let stats = outbox.stats().unwrap();
    assert!(stats.oldest_pending.is_some());

    let emu = emulator_with(
        ids("u", 5),
        Config {
            listen: addr,
            ..Config::default()
        },
    );
    // The 3s wait until the offline writes of older values can no longer land.
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.pending), (0, 5), "{report:?}");
    // The client's backoff (10 ms in tests, doubling per failed flush) and that hold have passed.
    std::thread::sleep(Duration::from_millis(IN_DOUBT_MS + 200));
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.applied, report.pending), (5, 5, 0));
    let sent = patches(&emu);
    assert_eq!(sent.len(), 5, "one write per target: {sent:?}");
    for id in ids("u", 5) {
        assert_eq!(devices(&emu, &id), 3);
    }
}

#[test]
fn a_throttled_flush_keeps_the_rest_with_the_retry_after_as_next_attempt() {
    // Two writes per 20 s; the third is answered 429 with Retry-After.
    let emu = emulator_with(
        ids("u", 5),
        Config {
            throttle_writes: Some((2, Duration::from_secs(20))),
            ..Config::default()
        },
    );
    let dir = folder("throttled");
    // Retry-After beyond the call's total budget: the call gives up at once (a next attempt is
    // held to maxDelay, here beyond the Retry-After).
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::default().max_delay(Duration::from_secs(30)))
        .total_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    for id in ids("u", 5) {
        outbox.enqueue(&Target::new("c1", id), &count(9)).unwrap();
    }
    let report = outbox.flush().unwrap();
    assert_eq!(
        (
            report.sent,
            report.applied,
            report.retry_later,
            report.pending
        ),
        (5, 2, 3, 3),
        "{report:?}"
    );
    let next = report.next_attempt_in.expect("pending");
    assert!(
        next > Duration::from_secs(15) && next <= Duration::from_secs(20),
        "{next:?}"
    );
    // Nothing is due before then.
    let sent = patches(&emu).len();
    assert_eq!(outbox.flush().unwrap().sent, 0);
    assert_eq!(patches(&emu).len(), sent);
    assert!(emu.throttled_count() >= 1);
}

#[test]
fn without_retry_after_the_next_attempt_follows_the_clients_backoff_doubling() {
    let emu = emulator_with(ids("u", 1), Config::default());
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 503,
            retry_after: None,
        })
        .method("PATCH"),
    );
    let dir = folder("backoff");
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(400)))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    // baseDelayMs ±20 % jitter after the first failed flush, twice that after the second.
    for (nominal, wait_before) in [(400, 0), (800, 500)] {
        std::thread::sleep(Duration::from_millis(wait_before));
        let started = Instant::now();
        let report = outbox.flush().unwrap();
        assert_eq!((report.sent, report.retry_later), (1, 1), "{report:?}");
        // What is left when the report is read is at most the backoff; with the flush's own time
        // added, at least it (under Wine on a loaded machine the flush took over 80 ms, so the sum
        // alone overran the upper bound).
        let left = report.next_attempt_in.unwrap();
        let next = left + started.elapsed();
        let (low, high) = (nominal * 8 / 10, nominal * 12 / 10 + 50);
        assert!(
            next >= Duration::from_millis(low) && left <= Duration::from_millis(high),
            "{left:?} (+ the flush: {next:?}) outside {low}..{high} ms"
        );
    }
    assert_eq!(patches(&emu).len(), 2);
}

#[test]
fn a_404_goes_to_the_failed_list_with_its_error() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("failed");
    let outbox = open(&common::client(&emu.base_url()), &dir.join("outbox.db"));
    let gone = Target::with_route("c1", Route::IdentityCertificate, "gone");
    outbox.enqueue(&gone, &count(5)).unwrap();
    outbox.enqueue(&Target::new("c1", "u0"), &count(6)).unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!(
        (report.sent, report.applied, report.failed, report.pending),
        (2, 1, 1, 0)
    );
    assert_eq!(outbox.stats().unwrap().failed, 1);
    // Never retried by itself.
    assert_eq!(outbox.flush().unwrap().sent, 0);

    let failed = outbox.take_failed().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].target, gone);
    assert_eq!(failed[0].api_version, ApiVersion::Beta);
    assert_eq!(failed[0].patch, count(5));
    let graph = failed[0].error.graph().expect("a Graph error");
    assert_eq!(graph.status, 404);
    assert_eq!(graph.code.as_deref(), Some("ResourceNotFound"));
    assert!(graph.request_id.is_some());
    assert!(failed[0].failed_at.as_str().ends_with('Z'));
    // Removed from the file as it is returned.
    assert!(outbox.take_failed().unwrap().is_empty());
    assert_eq!(outbox.stats().unwrap().failed, 0);
}

/// A flush on another thread, once its first request reached the emulator (which delays it).
fn flush_with_a_write_in_flight(
    emu: &Emulator,
    outbox: &Arc<Outbox>,
) -> std::thread::JoinHandle<intune_user_status::FlushReport> {
    let flusher = {
        let outbox = Arc::clone(outbox);
        std::thread::spawn(move || outbox.flush().unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.requests().is_empty() {
        assert!(
            Instant::now() < deadline && !flusher.is_finished(),
            "no write in flight"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    flusher
}

#[test]
fn a_report_enqueued_while_its_write_is_in_flight_stays_pending() {
    let emu = emulator_with(ids("u", 1), Config::default());
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(600))).method("PATCH"));
    let dir = folder("inflight");
    let outbox = Arc::new(open(
        &common::client(&emu.base_url()),
        &dir.join("outbox.db"),
    ));
    let u0 = Target::new("c1", "u0");
    outbox.enqueue(&u0, &count(1)).unwrap();
    let flusher = flush_with_a_write_in_flight(&emu, &outbox);
    // The write is in flight: enqueue does not wait for it.
    let started = Instant::now();
    assert_eq!(outbox.enqueue(&u0, &count(2)).unwrap(), Enqueued::Merged);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert!(!flusher.is_finished());
    let report = flusher.join().unwrap();
    assert_eq!((report.applied, report.pending), (1, 1));
    assert_eq!(devices(&emu, "u0"), 1);
    // The later report goes out with the next flush.
    let report = outbox.flush().unwrap();
    assert_eq!((report.applied, report.pending), (1, 0));
    assert_eq!(devices(&emu, "u0"), 2);
}

/// The request's budget (`timeouts.requestMs`) of the clients below that test the hold of a
/// changed value behind a write in doubt.
const IN_DOUBT_MS: u64 = 1_500;

/// A write whose answer was lost (Graph applied it, then the connection reset) may still be held
/// by Graph and land late: a changed value for its user status is not sent until the write's
/// claim + `requestMs` has passed, whatever the (short) backoff says; a report whose value did
/// not change goes again after the backoff (an equal late write is harmless).
#[test]
fn a_changed_value_waits_until_a_write_in_doubt_can_no_longer_land() {
    let emu = emulator_with(ids("u", 2), Config::default());
    let dir = folder("in-doubt");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(IN_DOUBT_MS))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    let (u0, u1) = (Target::new("c1", "u0"), Target::new("c1", "u1"));
    outbox.enqueue(&u0, &count(1)).unwrap();
    outbox.enqueue(&u1, &count(1)).unwrap();
    // u0 is applied, then the answer of the whole batch is lost: both outcomes unknown.
    emu.add_fault(FaultRule::next(1, Fault::LostAnswer).method("PATCH"));
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.retry_later), (2, 2), "{report:?}");
    let claimed = emu.requests()[0].received;
    // u0 changes; u1 does not.
    outbox.enqueue(&u0, &count(2)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let report = outbox.flush().unwrap();
    assert_eq!(
        (report.sent, report.applied, report.pending),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(devices(&emu, "u1"), 1);
    let next = report.next_attempt_in.expect("u0 is pending");
    // The claim's end: requestMs and 250 ms of slack for the request to leave.
    assert!(
        next > Duration::from_millis(IN_DOUBT_MS - 500)
            && next <= Duration::from_millis(IN_DOUBT_MS + 250),
        "{next:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox.stats().unwrap().pending > 0 {
        assert!(Instant::now() < deadline, "u0 never sent");
        std::thread::sleep(Duration::from_millis(50));
        outbox.flush().unwrap();
    }
    let u0_writes: Vec<_> = emu
        .batch_items()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path().ends_with("/u0"))
        .collect();
    assert_eq!(u0_writes.len(), 2);
    let waited = u0_writes[1].received - claimed;
    assert!(waited >= Duration::from_millis(IN_DOUBT_MS), "{waited:?}");
    assert_eq!(devices(&emu, "u0"), 2);
}

/// A write Graph refused (403: not applied, a known outcome) goes to the failed list; a report
/// merged in while it was in flight stays pending and is due at once, not held back by the
/// claim's backoff (as after a write Graph applied).
#[test]
fn a_report_merged_while_a_refused_write_was_in_flight_is_due_at_once() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("refused-inflight");
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_secs(5)))
        .build()
        .unwrap();
    let outbox = Arc::new(open(&client, &dir.join("outbox.db")));
    let u0 = Target::new("c1", "u0");
    outbox.enqueue(&u0, &count(1)).unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(600))).method("POST"));
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 403,
                retry_after: None,
            },
        )
        .method("PATCH"),
    );
    let flusher = flush_with_a_write_in_flight(&emu, &outbox);
    assert_eq!(outbox.enqueue(&u0, &count(2)).unwrap(), Enqueued::Merged);
    let report = flusher.join().unwrap();
    assert_eq!((report.failed, report.pending), (1, 1), "{report:?}");
    assert_eq!(report.next_attempt_in, Some(Duration::ZERO), "{report:?}");
    let report = outbox.flush().unwrap();
    assert_eq!(
        (report.sent, report.applied, report.pending),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(devices(&emu, "u0"), 2);
}

#[test]
fn a_full_outbox_refuses_new_targets_but_still_merges() {
    let dir = folder("full");
    let client = common::client("http://127.0.0.1:9");
    let outbox = Outbox::open(
        &client,
        dir.join("count.db"),
        OutboxOptions::new().max_pending(3),
    )
    .unwrap();
    for id in ids("u", 3) {
        outbox.enqueue(&Target::new("c1", id), &count(1)).unwrap();
    }
    let err = outbox
        .enqueue(&Target::new("c1", "u3"), &count(1))
        .unwrap_err();
    assert!(
        matches!(&err, Error::OutboxFull { reason } if reason.contains("maxPending")),
        "{err}"
    );
    assert_eq!(
        outbox.enqueue(&Target::new("c1", "u0"), &count(2)).unwrap(),
        Enqueued::Merged
    );
    let batch = [
        BulkItem::new(Target::new("c1", "u1"), count(5)),
        BulkItem::new(Target::new("c1", "u9"), count(5)),
    ];
    assert!(matches!(
        outbox.enqueue_many(&batch),
        Err(Error::OutboxFull { .. })
    ));
    assert_eq!(outbox.stats().unwrap().pending, 3);

    // By bytes: long names fill the smallest file allowed.
    let path = dir.join("bytes.db");
    let outbox = Outbox::open(
        &client,
        &path,
        OutboxOptions::new().max_bytes(MIN_OUTBOX_BYTES),
    )
    .unwrap();
    let name = "n".repeat(2000);
    let mut stored = 0;
    let refused = loop {
        let patch = UserStatusPatch::new().user_display_name(name.clone());
        match outbox.enqueue(&Target::new("c1", format!("u{stored}")), &patch) {
            Ok(_) => stored += 1,
            Err(err) => break err,
        }
        assert!(stored < 1000, "never full");
    };
    assert!(
        matches!(&refused, Error::OutboxFull { reason } if reason.contains("maxBytes")),
        "{refused}"
    );
    assert!(stored > 20, "{stored}");
    let longer = UserStatusPatch::new().user_principal_name("x".repeat(1500));
    assert_eq!(
        outbox.enqueue(&Target::new("c1", "u0"), &longer).unwrap(),
        Enqueued::Merged
    );
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.pending, stored);
    assert!(stats.bytes <= MIN_OUTBOX_BYTES, "{}", stats.bytes);

    // One report larger than the room left is refused as full too, not as a storage failure.
    for (file, size) in [("huge.db", 300_000), ("large.db", 200_000)] {
        let outbox = Outbox::open(
            &client,
            dir.join(file),
            OutboxOptions::new().max_bytes(MIN_OUTBOX_BYTES),
        )
        .unwrap();
        outbox
            .enqueue(&Target::new("c1", "small"), &count(1))
            .unwrap();
        let patch = UserStatusPatch::new().user_display_name("n".repeat(size));
        let refused = outbox
            .enqueue(&Target::new("c1", "big"), &patch)
            .unwrap_err();
        assert!(
            matches!(&refused, Error::OutboxFull { reason } if reason.contains("maxBytes")),
            "{size} bytes: {refused:?}"
        );
        assert_eq!(
            outbox.stats().unwrap().pending,
            1,
            "nothing stored, nothing lost"
        );
    }
}

fn storage_reason(result: Result<Outbox, Error>) -> (String, String) {
    match result.unwrap_err() {
        Error::Storage { path, reason, .. } => (path, reason),
        other => panic!("expected Storage, got {other:?}"),
    }
}

#[test]
fn bad_files_are_refused_with_the_path_and_reason_and_left_as_they_were() {
    let dir = folder("bad");
    let client = common::client("http://127.0.0.1:9");
    let options = OutboxOptions::new;

    let missing = dir.join("no-such-folder").join("outbox.db");
    let (path, reason) = storage_reason(Outbox::open(&client, &missing, options()));
    assert_eq!(path, missing.display().to_string());
    assert!(reason.contains("does not exist"), "{reason}");
    assert!(!missing.parent().unwrap().exists());

    #[cfg(target_os = "linux")]
    {
        // Not writable even for root.
        let (_, reason) = storage_reason(Outbox::open(&client, "/proc/outbox.db", options()));
        assert!(reason.contains("cannot be opened or created"), "{reason}");
    }

    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a database, just notes\n".repeat(200)).unwrap();
    let (_, reason) = storage_reason(Outbox::open(&client, &text, options()));
    assert!(reason.contains("not an SQLite database"), "{reason}");

    let other = dir.join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');")
        .unwrap();
    let (_, reason) = storage_reason(Outbox::open(&client, &other, options()));
    assert!(reason.contains("not an outbox"), "{reason}");

    let newer = dir.join("newer.db");
    open(&client, &newer)
        .enqueue(&Target::new("c1", "u0"), &count(1))
        .unwrap();
    {
        let conn = rusqlite::Connection::open(&newer).unwrap();
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 4;")
            .unwrap();
    }
    let (_, reason) = storage_reason(Outbox::open(&client, &newer, options()));
    assert!(reason.contains("newer version"), "{reason}");

    for file in [&text, &other, &newer] {
        let before = std::fs::read(file).unwrap();
        let _ = Outbox::open(&client, file, options());
        assert_eq!(std::fs::read(file).unwrap(), before, "{}", file.display());
    }
    // Bad options are configuration errors.
    let err = Outbox::open(&client, dir.join("x.db"), options().max_pending(0)).unwrap_err();
    assert!(matches!(err, Error::Config { field, .. } if field == "maxPending"));
}

#[test]
fn a_reopened_outbox_keeps_what_was_enqueued() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("reopen");
    let client = common::client(&emu.base_url());
    let path = dir.join("outbox.db");
    open(&client, &path)
        .enqueue(&Target::new("c1", "u0"), &count(4))
        .unwrap();
    // The schema an operator reads with sqlite3.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (target, patch): (String, String) = conn
        .query_row("SELECT target, patch FROM pending", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&target).unwrap(),
        json!({"deviceConfigurationId": "c1", "userStatusId": "u0", "apiVersion": "beta"})
    );
    assert_eq!(patch, r#"{"devicesCount":4}"#);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    // As a file of schema 2 (before the writes in doubt were kept): migrated when opened, it
    // keeps its report and flushes it.
    conn.execute_batch("DROP TABLE in_doubt; PRAGMA user_version = 2;")
        .unwrap();
    drop(conn);
    let report = open(&client, &path).flush().unwrap();
    assert_eq!(report.applied, 1);
    assert_eq!(devices(&emu, "u0"), 4);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

#[test]
fn threads_share_one_outbox_and_two_handles_flush_one_at_a_time() {
    let emu = emulator_with(ids("t", 40), Config::default());
    emu.add_fault(FaultRule::always(Fault::Latency(Duration::from_millis(5))).method("PATCH"));
    let dir = folder("threads");
    let client = common::client(&emu.base_url());
    let path = dir.join("outbox.db");
    let outbox = Arc::new(open(&client, &path));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let outbox = Arc::clone(&outbox);
            std::thread::spawn(move || {
                for round in 1..=5 {
                    for t in (w * 10)..(w * 10 + 10) {
                        outbox
                            .enqueue(&Target::new("c1", format!("t{t}")), &count(round))
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(outbox.stats().unwrap().pending, 40);
    // Two handles on the file flush at once: one sends everything, the other waits for it and
    // then finds nothing due (two flushes splitting the work would not be one at a time).
    let second = Arc::new(open(&client, &path));
    let flushes: Vec<_> = [Arc::clone(&outbox), second]
        .into_iter()
        .map(|outbox| std::thread::spawn(move || outbox.flush().unwrap()))
        .collect();
    let mut applied: Vec<u64> = flushes
        .into_iter()
        .map(|f| f.join().unwrap().applied)
        .collect();
    applied.sort();
    assert_eq!(applied, [0, 40]);
    assert_eq!(patches(&emu).len(), 40, "every target sent exactly once");
    for t in 0..40 {
        assert_eq!(devices(&emu, &format!("t{t}")), 5);
    }
}

/// Another handle's flush of t0 = 1 (another process's, as far as the flush lock goes), holding
/// the lock while Graph takes `answer_after` to answer its write; returned once the write arrived.
fn a_flush_holding_the_lock(
    emu: &Emulator,
    path: &Path,
    answer_after: Duration,
) -> std::thread::JoinHandle<intune_user_status::FlushReport> {
    emu.add_fault(FaultRule::next(1, Fault::Latency(answer_after)).method("PATCH"));
    let holder = open(&common::client(&emu.base_url()), path);
    holder.enqueue(&Target::new("c1", "t0"), &count(1)).unwrap();
    let holding = std::thread::spawn(move || holder.flush().unwrap());
    wait_for("the holder's write", || !emu.requests().is_empty());
    holding
}

#[test]
fn a_flush_waiting_longer_than_its_budget_for_another_is_storage_and_sends_nothing() {
    let emu = emulator_with(ids("t", 2), Config::default());
    let dir = folder("held-lock");
    let path = dir.join("outbox.db");
    let holding = a_flush_holding_the_lock(&emu, &path, Duration::from_millis(1500));
    // A second process's flush, whose budget (300 ms) is shorter than the holder's flush.
    let impatient = builder(&emu.base_url())
        .total_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let waiter = open(&impatient, &path);
    waiter.enqueue(&Target::new("c1", "t1"), &count(2)).unwrap();
    let started = Instant::now();
    let err = waiter.flush().unwrap_err();
    let waited = started.elapsed();
    match &err {
        Error::Storage { reason, .. } => assert!(reason.contains("another flush"), "{reason}"),
        other => panic!("not STORAGE: {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1200),
        "{waited:?}"
    );
    assert!(!holding.is_finished(), "the holder still held the lock");
    assert_eq!(holding.join().unwrap().applied, 1);
    assert!(
        !patches(&emu).iter().any(|(path, _)| path.ends_with("/t1")),
        "the waiter sent nothing"
    );
    assert_eq!(waiter.flush().unwrap().applied, 1);
}

/// `flushTimeMs` bounds the wait for another flush's lock too: the waiter returns `Ok` by then,
/// as any flush out of time, with nothing sent and its reports still due.
#[test]
fn a_flush_waiting_for_another_returns_by_its_flush_time_having_sent_nothing() {
    let emu = emulator_with(ids("t", 2), Config::default());
    let dir = folder("held-lock-flush-time");
    let path = dir.join("outbox.db");
    let holding = a_flush_holding_the_lock(&emu, &path, Duration::from_millis(2000));
    // Another handle (another process's, as far as the lock goes), 300 ms to flush, no budget.
    let options = OutboxOptions::new().flush_time(Duration::from_millis(300));
    let waiter = Outbox::open(&common::client(&emu.base_url()), &path, options).unwrap();
    waiter.enqueue(&Target::new("c1", "t1"), &count(2)).unwrap();
    let started = Instant::now();
    let report = waiter.flush().expect("out of time is not an error");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    // t1 due now, and t0 of the holder's flush still in flight.
    assert_eq!(
        (report.sent, report.applied, report.pending),
        (0, 0, 2),
        "{report:?}"
    );
    assert_eq!(report.next_attempt_in, Some(Duration::ZERO), "{report:?}");
    assert!(!holding.is_finished(), "the holder still held the lock");
    assert_eq!(holding.join().unwrap().applied, 1);
    assert!(
        !patches(&emu).iter().any(|(path, _)| path.ends_with("/t1")),
        "the waiter sent nothing"
    );
    assert_eq!(waiter.flush().unwrap().applied, 1);
}

/// What a nested flush returned, and how long it took.
type Nested = Arc<std::sync::Mutex<Option<(Result<FlushReport, Error>, Duration)>>>;

/// A token provider that, the first time the flush asks it for a token, flushes the same outbox
/// (a callback of the flush calling back into it), and keeps what that nested flush returned.
struct FlushesFromItsCallback {
    /// Weak: the outbox holds the client, which holds this.
    outbox: Arc<std::sync::OnceLock<std::sync::Weak<Outbox>>>,
    nested: Nested,
}

impl intune_user_status::TokenProvider for FlushesFromItsCallback {
    fn token(&self) -> Result<intune_user_status::AccessToken, Error> {
        if let Some(outbox) = self.outbox.get().and_then(std::sync::Weak::upgrade)
            && self.nested.lock().unwrap().is_none()
        {
            let started = Instant::now();
            let nested = outbox.flush();
            *self.nested.lock().unwrap() = Some((nested, started.elapsed()));
        }
        Ok(intune_user_status::AccessToken::new(TOKEN))
    }
}

/// A flush called from a callback of a flush of the same outbox, on its thread (a token provider
/// or a logger), cannot wait for the lock its own caller holds: it is `STORAGE` at once, saying
/// so, and the outer flush goes on. Before, it waited out its `flushTimeMs` (then `Ok`, out of
/// time), stalling the outer flush as long.
#[test]
fn a_flush_from_inside_a_flushs_callback_is_refused_at_once() {
    let emu = emulator_with(ids("t", 1), Config::default());
    let dir = folder("nested-flush");
    let slot = Arc::new(std::sync::OnceLock::new());
    let nested = Arc::new(std::sync::Mutex::new(None));
    let client = Client::builder()
        .base_url(emu.base_url())
        .token_provider(FlushesFromItsCallback {
            outbox: Arc::clone(&slot),
            nested: Arc::clone(&nested),
        })
        .build()
        .unwrap();
    let options = OutboxOptions::new().flush_time(Duration::from_secs(3));
    let outbox = Arc::new(Outbox::open(&client, dir.join("outbox.db"), options).unwrap());
    outbox.enqueue(&Target::new("c1", "t0"), &count(7)).unwrap();
    assert!(slot.set(Arc::downgrade(&outbox)).is_ok());
    let report = outbox.flush().unwrap();
    assert_eq!((report.applied, report.pending), (1, 0), "{report:?}");
    let (nested, took) = nested.lock().unwrap().take().expect("the provider flushed");
    match nested {
        Err(Error::Storage { reason, .. }) => {
            assert!(
                reason.contains("already running on this thread"),
                "{reason}"
            )
        }
        other => panic!("not STORAGE: {other:?}"),
    }
    assert!(
        took < Duration::from_secs(1),
        "the nested flush took {took:?}"
    );
    assert_eq!(devices(&emu, "t0"), 7);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_throttle_in_round_two_holds_round_three_back() {
    // 150 writes per minute: the flush of 250 trips it halfway through its second round of 100.
    let emu = emulator_with(
        ids("r", 250),
        Config {
            throttle_writes: Some((150, Duration::from_secs(60))),
            ..Config::default()
        },
    );
    let dir = folder("rounds");
    let client = builder(&emu.base_url())
        .total_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    let items: Vec<_> = ids("r", 250)
        .into_iter()
        .map(|id| BulkItem::new(Target::new("c1", id), count(1)))
        .collect();
    outbox.enqueue_many(&items).unwrap();
    let report = outbox.flush().unwrap();
    // Rounds 1 and 2 (r0..r199) in batches of 20: the eighth batch (r140..r159) is throttled
    // after ten writes, and the flush stops there.
    assert_eq!(
        (
            report.sent,
            report.applied,
            report.retry_later,
            report.pending
        ),
        (160, 150, 10, 100),
        "{report:?}"
    );
    let sent: BTreeSet<String> = patches(&emu)
        .into_iter()
        .map(|(path, _)| path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 160);
    for n in 160..250 {
        assert!(!sent.contains(&format!("r{n}")), "r{n} was sent");
    }
    // Held back as long as the throttle asked (Retry-After: the rest of the minute).
    let next = report.next_attempt_in.expect("pending");
    assert!(next > Duration::from_secs(50), "{next:?}");
    assert_eq!(outbox.flush().unwrap().sent, 0);
    assert_eq!(patches(&emu).len(), 160);
}

// ---- Several processes -------------------------------------------------------------------------

/// Runs this test binary's `child` test as a separate process, in `mode`.
fn spawn_child(
    mode: &str,
    base_url: &str,
    path: &Path,
    vars: &[(&str, String)],
) -> std::process::Child {
    child_command(mode, base_url, path, vars)
        .spawn()
        .expect("spawn the child")
}

/// The command for [`spawn_child`]: stdout piped, stderr dropped.
fn child_command(mode: &str, base_url: &str, path: &Path, vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("IUS_OUTBOX_CHILD", mode)
        .env("IUS_OUTBOX_URL", base_url)
        .env("IUS_OUTBOX_PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// The client of the process tests' children, and of the flush that drains their file: a changed
/// value waits `requestMs` behind a write whose outcome is unknown (a kill leaves them), so it is
/// short here (the emulator's slow writes take 30 ms).
fn child_client(base_url: &str) -> Client {
    builder(base_url)
        .request_timeout(Duration::from_millis(IN_DOUBT_MS))
        .build()
        .expect("client")
}

/// Values that go up and come back: a kill test's reports must land in order even when a value
/// repeats (an equal value may be skipped, never sent after a newer one).
const CYCLE: [i32; 6] = [0, 1, 2, 3, 2, 1];
/// The kill test's user statuses `k0..` below this carry their step as a sequence number, so the
/// order they were sent in can be checked exactly; the others can be skipped as unchanged (a
/// sequence number never repeats), so a value set back after an unknown outcome is met there.
const SEQUENCED: usize = 7;
/// Statuses the second process of the multi-process test cycles through.
const STATUSES: [ComplianceStatus; 3] = [
    ComplianceStatus::Compliant,
    ComplianceStatus::NonCompliant,
    ComplianceStatus::Error,
];

/// The child process, by `IUS_OUTBOX_CHILD`:
/// - `enqueue`: rounds 1..=`IUS_OUTBOX_COUNT` of reports for targets `s0..s9`, then exits; as
///   `IUS_OUTBOX_WRITER` `a` it sets `devicesCount` to the round, as `b` `status` (cycling),
///   and both `userDisplayName` to `a{round}` / `b{round}`;
/// - `agent`: two threads, forever: one enqueues `CYCLE` values for `k0..k9` from step
///   `IUS_OUTBOX_START` (those of `k0..` below [`SEQUENCED`] with `userDisplayName` `seq-STEP`),
///   printing `attempt ID VALUE STEP` before and `enqueued ID VALUE STEP` after each enqueue
///   that returned OK; the other flushes (the emulator delays some writes, so a kill lands
///   between claim, send and record, and reports merge while their write is in flight);
/// - `fulldisk`: [`fill_the_disk`];
/// - `open`: prints `opening`, opens the outbox (migrating a file of an older schema), prints
///   `opened PENDING` and exits.
#[test]
#[ignore = "a child process of the process and kill tests"]
fn child() {
    let Ok(mode) = std::env::var("IUS_OUTBOX_CHILD") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let client = child_client(&var("IUS_OUTBOX_URL"));
    if mode == "open" {
        println!("opening");
        let options = OutboxOptions::new().max_bytes(256 << 20);
        let outbox = Outbox::open(&client, var("IUS_OUTBOX_PATH"), options).unwrap();
        println!("opened {}", outbox.stats().unwrap().pending);
        return;
    }
    let outbox = Arc::new(open(&client, Path::new(&var("IUS_OUTBOX_PATH"))));
    match mode.as_str() {
        "enqueue" => {
            let writer = var("IUS_OUTBOX_WRITER");
            for round in 1..=var("IUS_OUTBOX_COUNT").parse::<i32>().unwrap() {
                for t in 0..10 {
                    let patch = match writer.as_str() {
                        "a" => count(round),
                        _ => UserStatusPatch::new().status(STATUSES[round as usize % 3]),
                    }
                    .user_display_name(format!("{writer}{round}"));
                    outbox
                        .enqueue(&Target::new("c1", format!("s{t}")), &patch)
                        .unwrap();
                }
            }
        }
        "agent" => {
            let flusher = {
                let outbox = Arc::clone(&outbox);
                std::thread::spawn(move || {
                    loop {
                        let _ = outbox.flush();
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            };
            let mut out = std::io::stdout();
            let mut say = |line: String| {
                use std::io::Write;
                writeln!(out, "{line}").unwrap();
                out.flush().unwrap();
            };
            let start: usize = var("IUS_OUTBOX_START").parse().unwrap();
            for step in start.. {
                for t in 0..10 {
                    let value = CYCLE[(step + t) % CYCLE.len()];
                    let mut patch = count(value);
                    if t < SEQUENCED {
                        patch = patch.user_display_name(format!("seq-{step}"));
                    }
                    say(format!("attempt k{t} {value} {step}"));
                    outbox
                        .enqueue(&Target::new("c1", format!("k{t}")), &patch)
                        .unwrap();
                    say(format!("enqueued k{t} {value} {step}"));
                }
                say(format!("step {step}"));
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(flusher);
        }
        #[cfg(unix)]
        "fulldisk" => fill_the_disk(&outbox, Path::new(&var("IUS_OUTBOX_PATH"))),
        other => panic!("unknown child mode {other}"),
    }
}

/// Whether `sent`, in order, could have been sent from `enqueued` (in order) without going back:
/// each value sent matches an enqueue no earlier than the previous one's. Returns the first value
/// that breaks it.
fn first_step_back<T: PartialEq + Clone>(enqueued: &[T], sent: &[T]) -> Option<T> {
    let mut from = 0;
    for value in sent {
        match enqueued[from..].iter().position(|e| e == value) {
            Some(at) => from += at,
            None => return Some(value.clone()),
        }
    }
    None
}

/// The PATCH bodies the emulator saw for user status `id`, in order.
fn bodies_for(emu: &Emulator, id: &str) -> Vec<Value> {
    patches(emu)
        .into_iter()
        .filter(|(path, _)| path.rsplit('/').next() == Some(id))
        .map(|(_, body)| body)
        .collect()
}

#[test]
fn two_processes_write_the_same_statuses_while_a_third_flushes() {
    let emu = emulator_with(ids("s", 10), Config::default());
    emu.add_fault(FaultRule::share(0.3, Fault::Latency(Duration::from_millis(15))).method("PATCH"));
    let dir = folder("processes");
    let path = dir.join("outbox.db");
    let client = common::client(&emu.base_url());
    let outbox = open(&client, &path);
    let rounds = 20;
    let mut children: Vec<_> = ["a", "b"]
        .iter()
        .map(|writer| {
            spawn_child(
                "enqueue",
                &emu.base_url(),
                &path,
                &[
                    ("IUS_OUTBOX_WRITER", (*writer).into()),
                    ("IUS_OUTBOX_COUNT", rounds.to_string()),
                ],
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flushes_while_writing = 0;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert!(Instant::now() < deadline, "the children did not finish");
        if outbox.flush().unwrap().sent > 0 {
            flushes_while_writing += 1;
        }
    }
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(outbox.flush().unwrap().pending, 0);
    assert!(flushes_while_writing > 0, "no flush overlapped the writers");
    let statuses: Vec<Value> = (1..=rounds as usize)
        .map(|round| json!(STATUSES[round % 3]))
        .collect();
    for id in ids("s", 10) {
        let held = emu.user_status(DIRECT, &id).unwrap();
        // Each property holds its writer's last value; the shared one, either writer's last.
        assert_eq!(held["devicesCount"], rounds, "{id}");
        assert_eq!(held["status"], statuses[rounds as usize - 1], "{id}");
        let name = held["userDisplayName"].as_str().unwrap();
        assert!(
            name == format!("a{rounds}") || name == format!("b{rounds}"),
            "{id}: {name}"
        );
        // And no property of it was ever sent an older value after a newer one.
        let bodies = bodies_for(&emu, &id);
        let sent = |key: &str| -> Vec<Value> {
            bodies.iter().filter_map(|b| b.get(key).cloned()).collect()
        };
        let counts: Vec<Value> = (1..=rounds).map(|n| json!(n)).collect();
        assert_eq!(
            first_step_back(&counts, &sent("devicesCount")),
            None,
            "{id}"
        );
        assert_eq!(first_step_back(&statuses, &sent("status")), None, "{id}");
    }
}

/// A small PRNG for kill moments; the seed is printed so a failure can be replayed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// What the parent knows of one target after the kills: every value it saw attempted, in order,
/// with its step, and the values the file may hold: the last one whose enqueue returned OK
/// (`None` before the first), and any attempted after it (which may have committed before the
/// kill).
struct Known {
    attempted: Vec<(i64, u64)>,
    may_hold: Vec<Option<i64>>,
}

/// The PATCHes `sent` to a user status whose reports carry their step (value, step), against the
/// reports `attempted` (value, step): the steps never go down, and each PATCH carries the value
/// enqueued at its step. `Err` says what broke it.
fn check_sequence(attempted: &[(i64, u64)], sent: &[(i64, u64)]) -> Result<(), String> {
    let mut last = 0;
    for &(value, step) in sent {
        if step < last {
            return Err(format!("step {step} ({value}) was sent after step {last}"));
        }
        last = step;
        match attempted.iter().find(|(_, s)| *s == step) {
            Some(&(enqueued, _)) if enqueued == value => {}
            other => {
                return Err(format!(
                    "step {step} was sent with {value}, enqueued with {other:?}"
                ));
            }
        }
    }
    Ok(())
}

/// A flusher that sends an old report again after a newer one (a test double of the wire log):
/// the step check catches it; matching each value to any later enqueue of it, as the kill test
/// did before, cannot, since every value comes back.
#[test]
fn the_kill_tests_order_check_catches_an_old_report_sent_again() {
    let attempted: Vec<(i64, u64)> = (0..12)
        .map(|step| (i64::from(CYCLE[step % CYCLE.len()]), step as u64))
        .collect();
    let values = |log: &[(i64, u64)]| log.iter().map(|(v, _)| *v).collect::<Vec<_>>();
    let good = [attempted[1], attempted[1], attempted[4], attempted[9]];
    assert_eq!(check_sequence(&attempted, &good), Ok(()));
    let again = [attempted[1], attempted[4], attempted[2], attempted[9]];
    assert_eq!(first_step_back(&values(&attempted), &values(&again)), None);
    let err = check_sequence(&attempted, &again).unwrap_err();
    assert!(err.contains("step 2 (2) was sent after step 4"), "{err}");
    let mixed = [(1, 3)];
    let err = check_sequence(&attempted, &mixed).unwrap_err();
    assert!(err.contains("step 3 was sent with 1"), "{err}");
}

impl Default for Known {
    fn default() -> Known {
        Known {
            attempted: Vec::new(),
            may_hold: vec![None],
        }
    }
}

/// The file's view of `k0..`: the pending patch's `devicesCount`, else the acknowledged one.
fn held_in_file(path: &Path) -> HashMap<String, Option<i64>> {
    let (pending, acknowledged) = rows(path);
    (0..10)
        .map(|t| {
            let id = format!("k{t}");
            let value = pending
                .get(&id)
                .or_else(|| acknowledged.get(&id))
                .and_then(|patch| patch["devicesCount"].as_i64());
            (id, value)
        })
        .collect()
}

/// Waits until the emulator has received nothing for 100 ms: every request it got is finished.
fn quiet(emu: &Emulator) {
    let mut seen = emu.requests().len();
    let mut still_since = Instant::now();
    wait_for("the emulator to finish its requests", || {
        let now = emu.requests().len();
        if now != seen {
            (seen, still_since) = (now, Instant::now());
        }
        still_since.elapsed() >= Duration::from_millis(100)
    });
}

/// Whether the child ended by `Child::kill`: SIGKILL on Unix, `TerminateProcess` with exit code 1
/// on Windows.
fn killed(status: std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    }
    #[cfg(windows)]
    {
        status.code() == Some(1)
    }
}

#[test]
fn kill_9_at_random_moments_loses_no_enqueue_that_returned_ok() {
    let emu = emulator_with(ids("k", 10), Config::default());
    // Some writes are slow, so kills land while reports are claimed, in flight or being recorded.
    emu.add_fault(FaultRule::share(0.5, Fault::Latency(Duration::from_millis(30))).method("PATCH"));
    let dir = folder("kill");
    let path = dir.join("outbox.db");
    let mut seed = std::env::var("IUS_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("IUS_KILL_SEED={seed}");
    let mut known: HashMap<String, Known> = HashMap::new();
    let mut next_step = 0usize;
    for run in 0..20 {
        let mut child = child_command(
            "agent",
            &emu.base_url(),
            &path,
            &[("IUS_OUTBOX_START", next_step.to_string())],
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The random moment counts from the first line: a process may take longer than the
        // longest delay to start (under Wine, on a loaded machine, it did).
        let first = lines.next().and_then(Result::ok);
        let reader = std::thread::spawn(move || {
            first
                .into_iter()
                .chain(lines.map_while(Result::ok))
                .collect::<Vec<_>>()
        });
        let mut stderr = child.stderr.take().unwrap();
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        std::thread::sleep(Duration::from_millis(30 + next_random(&mut seed) % 220));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            killed(status),
            "run {run}: the child died by SIGKILL: {status:?}\n{}",
            errors.join().unwrap()
        );
        for line in reader.join().unwrap() {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("attempt"), Some(id), Some(value), Some(step)) => {
                    let known = known.entry(id.to_owned()).or_default();
                    let value = value.parse().unwrap();
                    known.attempted.push((value, step.parse().unwrap()));
                    known.may_hold.push(Some(value));
                }
                (Some("enqueued"), Some(id), Some(value), Some(_)) => {
                    known.get_mut(id).unwrap().may_hold = vec![Some(value.parse().unwrap())];
                }
                (Some("step"), Some(step), None, None) => {
                    next_step = step.parse::<usize>().unwrap() + 1
                }
                _ => {}
            }
        }
        // A step begun and cut off: the next run starts after it.
        next_step += 1;
        // Graph finishes what it received before the agent is back (the emulator's delayed
        // writes from the dead child would otherwise land after the next child's newer ones).
        quiet(&emu);
        if known.is_empty() {
            continue; // killed before its first enqueue (perhaps while making the file)
        }
        // After every kill, the file holds every value whose enqueue returned OK (pending, or
        // acknowledged when it was applied or skipped as equal).
        for (id, held) in held_in_file(&path) {
            let Some(known) = known.get(&id) else {
                continue;
            };
            assert!(
                known.may_hold.contains(&held),
                "run {run}: {id}: the file holds {held:?}, the last OK enqueue was one of {:?}",
                known.may_hold
            );
        }
    }
    assert!(
        known.values().filter(|k| !k.attempted.is_empty()).count() == 10,
        "the children made progress"
    );
    let outbox = open(&child_client(&emu.base_url()), &path);
    // A changed value waits out the writes the last child left in doubt (requestMs).
    let deadline = Instant::now() + Duration::from_millis(IN_DOUBT_MS) * 4;
    let report = loop {
        let report = outbox.flush().unwrap();
        if report.pending == 0 || Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report.pending, 0, "{report:?}");
    assert!(outbox.take_failed().unwrap().is_empty());
    for (id, known) in &known {
        // Exact: Graph holds the last value whose enqueue returned OK (or one under way then).
        let held = devices(&emu, id);
        // The seeded value (0) until a report's enqueue returned OK.
        assert!(
            known.may_hold.iter().any(|v| v.unwrap_or(0) == held),
            "{id}: Graph holds {held}, the last OK enqueue was one of {:?}",
            known.may_hold
        );
        // And never went back: the steps sent never go down, each with its own value.
        let t: usize = id[1..].parse().unwrap();
        if t < SEQUENCED {
            let sent: Vec<(i64, u64)> = bodies_for(&emu, id)
                .iter()
                .map(|b| {
                    let step = b["userDisplayName"].as_str().unwrap()["seq-".len()..].parse();
                    (b["devicesCount"].as_i64().unwrap(), step.unwrap())
                })
                .collect();
            if let Err(err) = check_sequence(&known.attempted, &sent) {
                panic!("{id}: {err}; sent {sent:?}");
            }
        }
    }
}

/// A token source that always fails, as a broken credential would.
struct NoToken;

impl intune_user_status::TokenProvider for NoToken {
    fn token(&self) -> Result<intune_user_status::AccessToken, Error> {
        Err(intune_user_status::AuthError::new("the credential was revoked").into())
    }
}

#[test]
fn a_flush_without_a_token_fails_and_keeps_every_report() {
    let emu = emulator_with(ids("u", 2), Config::default());
    let dir = folder("notoken");
    let client = Client::builder()
        .base_url(emu.base_url())
        .token_provider(NoToken)
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    for id in ids("u", 2) {
        outbox.enqueue(&Target::new("c1", id), &count(1)).unwrap();
    }
    let mut report = FlushReport::default();
    let err = outbox.flush_into(&mut report).unwrap_err();
    assert!(err.auth().is_some(), "{err}");
    assert!(emu.requests().is_empty(), "nothing reached Graph");
    // The report says why, what is pending and when it is tried again (the hold's end).
    assert_eq!(
        (report.stopped_by, report.pending, report.sent),
        (Some(FlushStop::Auth), 2, 0),
        "{report:?}"
    );
    assert!(report.next_attempt_in.is_some(), "{report:?}");
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.pending, stats.failed), (2, 0));
    // Held, as after any auth stop: once the credentials are fixed, clearing the hold sends them.
    assert!(stats.held_until.is_some(), "{stats:?}");
    let outbox = open(&common::client(&emu.base_url()), &dir.join("outbox.db"));
    assert!(outbox.clear_hold().unwrap());
    assert_eq!(outbox.flush().unwrap().applied, 2);
}

#[test]
fn a_token_that_fails_mid_flush_is_asked_once_and_the_rest_waits_out_the_backoff() {
    let emu = emulator_with(ids("u", 60), Config::default());
    let dir = folder("token-mid-flush");
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = Client::builder()
        .base_url(emu.base_url())
        .token_provider(TokenThenNone {
            good: 1,
            calls: Arc::clone(&calls),
        })
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(2000)))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    for id in ids("u", 60) {
        outbox.enqueue(&Target::new("c1", id), &count(1)).unwrap();
    }
    // Three batches: the first has a token, the second none; the third is not tried.
    let mut report = FlushReport::default();
    let flushed = outbox.flush_into(&mut report);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one token attempt after the failure: {report:?}"
    );
    // The flush could not go on for want of a token: it says so, as when the first batch has none.
    assert!(
        flushed.as_ref().is_err_and(|e| e.auth().is_some()),
        "{flushed:?}"
    );
    assert_eq!(
        (
            report.sent,
            report.applied,
            report.retry_later,
            report.failed
        ),
        // Sent: only the 20 a request carried; the 20 without a token were never sent, and
        // failed nothing (no failure counted, no backoff grown).
        (20, 20, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.pending, 40, "{report:?}");
    assert_eq!(
        read_number(&dir.join("outbox.db"), "SELECT max(failures) FROM pending"),
        0
    );
    assert!(
        report
            .next_attempt_in
            .is_some_and(|next| next > Duration::from_millis(1000))
    );
    // Held back by the backoff: a flush at once asks for no token and sends nothing.
    assert_eq!(outbox.flush().unwrap().sent, 0);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(outbox.stats().unwrap().failed, 0);
}

#[test]
fn a_401_that_survives_a_fresh_token_keeps_the_reports_pending_and_a_403_fails_them() {
    let emu = emulator_with(ids("u", 25), Config::default());
    let dir = folder("graph-401");
    // Graph refuses the credentials (a secret rotated, consent pending) for a while.
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 401,
            retry_after: None,
        })
        .method("PATCH"),
    );
    // Each 401 was answered after a fresh token's retry: two requests, whose outcome the outbox
    // counts as unknown, so a changed value waits requestMs behind them.
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(300)))
        .request_timeout(Duration::from_millis(IN_DOUBT_MS))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    for id in ids("u", 25) {
        outbox.enqueue(&Target::new("c1", id), &count(4)).unwrap();
    }
    let report = outbox.flush().unwrap();
    // Kept pending, and the flush stops after the first batch: the next would fare the same.
    assert_eq!(
        (
            report.sent,
            report.retry_later,
            report.failed,
            report.pending
        ),
        (20, 20, 0, 25),
        "{report:?}"
    );
    assert_eq!(outbox.stats().unwrap().failed, 0);
    assert_eq!(outbox.flush().unwrap().sent, 0, "held back by the backoff");
    // Once Graph takes the credentials again, every report goes.
    emu.clear_faults();
    std::thread::sleep(Duration::from_millis(500));
    let report = outbox.flush().unwrap();
    assert_eq!((report.applied, report.pending), (25, 0), "{report:?}");
    std::thread::sleep(Duration::from_millis(IN_DOUBT_MS));
    for id in ids("u", 25) {
        assert_eq!(devices(&emu, &id), 4);
    }
    // A 403 (the app lacks the permission: no wait fixes it) goes to the failed list.
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 403,
            retry_after: None,
        })
        .method("PATCH"),
    );
    outbox.enqueue(&Target::new("c1", "u0"), &count(5)).unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!((report.failed, report.pending), (1, 0), "{report:?}");
    assert_eq!(
        outbox.failed().unwrap()[0].error.graph().unwrap().status,
        403
    );
}

// ---- A full disk -------------------------------------------------------------------------------

/// Caps the size every file of this process may reach (`RLIMIT_FSIZE`; `None`: back to the hard
/// limit). A write past the cap fails with `EFBIG` as a write to a full disk fails with `ENOSPC`
/// (SIGXFSZ, which would kill the process instead, is ignored). Only for the child process: the
/// limit is the whole process's.
#[cfg(unix)]
fn limit_file_size(bytes: Option<u64>) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct; nothing else in the child runs meanwhile.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.map_or(limit.rlim_max, |b| b as libc::rlim_t);
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// How a child reports a call's result: `ok WHAT`, `storage WHAT\tPATH\tREASON`, `other WHAT\tERR`.
#[cfg(unix)]
fn describe<T>(what: &str, result: Result<T, Error>) -> String {
    match result {
        Ok(_) => format!("ok {what}"),
        Err(Error::Storage { path, reason, .. }) => format!("storage {what}\t{path}\t{reason}"),
        Err(other) => format!("other {what}\t{other:?}"),
    }
}

/// The `fulldisk` child. With room: `d0..d4 = 1` enqueued and flushed (the acknowledged state),
/// then `d0..d4 = 2` enqueued (pending). Then the file size cap is set a little above the WAL's
/// size, and new statuses are enqueued until one is refused; a merge, an `enqueue_many` and a
/// flush are tried on the full disk. It prints `full` and waits for a line on stdin (the parent
/// inspects the file meanwhile), lifts the cap (space is back), enqueues two reports and flushes
/// with the same `Outbox`.
#[cfg(unix)]
fn fill_the_disk(outbox: &Outbox, path: &Path) {
    use std::io::Write;
    let say = |line: String| {
        let mut out = std::io::stdout();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    let enqueue = |i: i32, value: i32| {
        let result = outbox.enqueue(&Target::new("c1", format!("d{i}")), &count(value));
        if result.is_ok() {
            say(format!("enqueued d{i} {value}"));
        }
        result
    };
    for i in 0..5 {
        outbox
            .enqueue(&Target::new("c1", format!("d{i}")), &count(1))
            .unwrap();
    }
    say(format!("flushed {}", outbox.flush().unwrap().applied));
    for i in 0..5 {
        enqueue(i, 2).unwrap();
    }
    let wal = std::fs::metadata(format!("{}-wal", path.display()))
        .unwrap()
        .len();
    let slack: u64 = std::env::var("IUS_OUTBOX_SLACK").unwrap().parse().unwrap();
    limit_file_size(Some(wal + slack));
    say(format!("limit {}", wal + slack));
    let mut next = 5;
    let refused = loop {
        match enqueue(next, next) {
            Ok(_) => next += 1,
            Err(err) => break err,
        }
        assert!(next < 100, "the cap never filled");
    };
    say(describe("enqueue", Err::<(), _>(refused)));
    say(describe("merge", enqueue(0, 3)));
    let batch = [
        BulkItem::new(Target::new("c1", "d1"), count(3)),
        BulkItem::new(Target::new("c1", format!("d{}", next + 1)), count(3)),
    ];
    say(describe("enqueue_many", outbox.enqueue_many(&batch)));
    say(describe("flush", outbox.flush()));
    say(format!("pending {}", outbox.stats().unwrap().pending));
    say("full".into());
    std::io::stdin().read_line(&mut String::new()).unwrap();
    limit_file_size(None);
    enqueue(0, 4).unwrap();
    enqueue(next, next).unwrap();
    let report = outbox.flush().unwrap();
    say(format!("recovered {} {}", report.applied, report.pending));
}

/// The outbox's rows as read with `sqlite3`: `pending` and `acknowledged`, each user status id
/// to its patch JSON; fails unless `PRAGMA integrity_check` is `ok`.
fn rows(path: &Path) -> (HashMap<String, Value>, HashMap<String, Value>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let id_of = |key: String| key.rsplit('/').next().unwrap().to_owned();
    let mut statement = conn.prepare("SELECT key, patch FROM pending").unwrap();
    let pending = statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (key, patch) = row.unwrap();
            (id_of(key), serde_json::from_str(&patch).unwrap())
        })
        .collect();
    // One row per property: gathered into one object per user status.
    let mut acknowledged: HashMap<String, Value> = HashMap::new();
    let mut statement = conn
        .prepare("SELECT key, property, value FROM acknowledged")
        .unwrap();
    let properties = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in properties {
        let (key, property, value) = row.unwrap();
        acknowledged.entry(id_of(key)).or_insert_with(|| json!({}))[property] =
            serde_json::from_str(&value).unwrap();
    }
    (pending, acknowledged)
}

/// Marked, not left out, where it cannot run: the count of such tests is printed under Wine.
#[cfg(not(unix))]
#[test]
#[ignore = "the full disk is a file size limit (RLIMIT_FSIZE), which only Unix has; under Wine test_c_outbox fills a small disk instead"]
fn a_full_disk_is_storage_keeps_every_ok_enqueue_and_the_file_works_once_space_is_back() {}

#[cfg(unix)]
#[test]
fn a_full_disk_is_storage_keeps_every_ok_enqueue_and_the_file_works_once_space_is_back() {
    use std::io::Write;
    let emu = emulator_with(ids("d", 100), Config::default());
    let dir = folder("fulldisk");
    let path = dir.join("outbox.db");
    let mut child = child_command(
        "fulldisk",
        &emu.base_url(),
        &path,
        &[("IUS_OUTBOX_SLACK", "40000".into())],
    )
    .stdin(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("spawn the child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut next_line = |seen: &mut Vec<String>| {
        let line = lines.next().map(Result::unwrap);
        assert!(line.is_some(), "the child stopped early after {seen:#?}");
        seen.push(line.clone().unwrap());
        line.unwrap()
    };
    let mut last_ok: HashMap<String, i64> = HashMap::new();
    let mut failures: HashMap<String, String> = HashMap::new();
    loop {
        let line = next_line(&mut seen);
        let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match word {
            "enqueued" => {
                let (id, value) = rest.split_once(' ').unwrap();
                last_ok.insert(id.into(), value.parse().unwrap());
            }
            "full" => break,
            "storage" | "other" | "ok" => {
                let (what, detail) = rest.split_once('\t').unwrap_or((rest, ""));
                failures.insert(what.into(), format!("{word}\t{detail}"));
            }
            _ => {}
        }
    }
    assert!(seen.contains(&"flushed 5".to_owned()), "{seen:#?}");
    // Every call on the full disk: STORAGE, naming the file and saying the disk is full.
    for what in ["enqueue", "merge", "enqueue_many", "flush"] {
        let outcome = &failures[what];
        let parts: Vec<&str> = outcome.split('\t').collect();
        assert_eq!(parts[0], "storage", "{what}: {outcome}");
        assert_eq!(parts[1], path.display().to_string(), "{what}: {outcome}");
        let reason = parts[2];
        assert!(
            reason.contains("disk") && reason.contains("full"),
            "{what}: the reason names the full disk: {failures:#?}"
        );
    }
    // The file while the disk is full: intact, holding exactly what returned OK.
    let (pending, acknowledged) = rows(&path);
    let expected: HashMap<String, Value> = last_ok
        .iter()
        .map(|(id, value)| (id.clone(), json!({ "devicesCount": value })))
        .collect();
    assert_eq!(
        pending, expected,
        "pending = every enqueue that returned OK"
    );
    // Room for about ten WAL frames under the cap: the disk filled during enqueues.
    assert!(pending.len() > 5, "{pending:?}");
    assert!(
        seen.contains(&format!("pending {}", pending.len())),
        "{seen:#?}"
    );
    // The flush's claim writes every row it claims (its next attempt, its write in doubt, its
    // acknowledged state set aside) in one transaction, more pages than the merge that the full
    // disk refused just before (one row): its commit cannot be written either, so nothing was
    // sent and the acknowledged state of the last good flush stands.
    assert_eq!(devices(&emu, "d0"), 1, "the flush sent nothing");
    assert_eq!(acknowledged.len(), 5, "{acknowledged:?}");

    // Space is back: the same outbox enqueues and flushes.
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let mut recovered = None;
    while recovered.is_none() {
        let line = next_line(&mut seen);
        if let Some(rest) = line.strip_prefix("enqueued ") {
            let (id, value) = rest.split_once(' ').unwrap();
            last_ok.insert(id.into(), value.parse().unwrap());
        }
        recovered = line.strip_prefix("recovered ").map(str::to_owned);
    }
    assert!(child.wait().unwrap().success());
    let n = last_ok.len();
    assert_eq!(recovered.unwrap(), format!("{n} 0"), "{seen:#?}");
    for (id, value) in &last_ok {
        assert_eq!(devices(&emu, id), *value, "{id}");
    }
    let (pending, acknowledged) = rows(&path);
    assert!(pending.is_empty(), "{pending:?}");
    assert_eq!(acknowledged.len(), n);
}

// ---- Issue 18: field defects --------------------------------------------------------------------

/// Runs `statement` on the outbox file as an operator's `sqlite3` would (or as a process with
/// another clock left it).
fn edit(path: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch(statement).unwrap();
}

/// One number read from the file by `query`.
fn read_number(path: &Path, query: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(query, [], |row| row.get(0)).unwrap()
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `done` for up to 10 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_value_set_back_after_an_unknown_outcome_is_sent_not_skipped() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("unknown");
    // One try per flush, and 300 ms for the answer: a slower answer is an unknown outcome.
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    let u0 = Target::new("c1", "u0");
    outbox.enqueue(&u0, &count(1)).unwrap();
    assert_eq!(outbox.flush().unwrap().applied, 1, "A is acknowledged");
    outbox.enqueue(&u0, &count(2)).unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(800))).method("PATCH"));
    let report = outbox.flush().unwrap();
    assert_eq!((report.applied, report.retry_later), (0, 1), "{report:?}");
    // Graph applies B after the client stopped waiting for the answer.
    wait_for("B to be applied", || devices(&emu, "u0") == 2);
    // A again, merged into the pending B: it must go out, whatever Graph acknowledged before.
    assert_eq!(outbox.enqueue(&u0, &count(1)).unwrap(), Enqueued::Merged);
    std::thread::sleep(Duration::from_millis(50));
    let report = outbox.flush().unwrap();
    assert_eq!(
        (report.sent, report.applied, report.skipped),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(
        devices(&emu, "u0"),
        1,
        "Graph holds the last value enqueued"
    );
}

#[test]
fn one_user_status_through_beta_and_v1_0_is_one_report_and_one_acknowledged_state() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("versions");
    let outbox = open(&common::client(&emu.base_url()), &dir.join("outbox.db"));
    let u0 = Target::new("c1", "u0");
    let beta = BulkItem::new(u0.clone(), count(1).status(ComplianceStatus::NonCompliant));
    let v1 = BulkItem::new(u0.clone(), count(2)).api_version(ApiVersion::V1_0);
    assert_eq!(outbox.enqueue_many(&[beta]).unwrap(), [Enqueued::Stored]);
    assert_eq!(outbox.enqueue_many(&[v1]).unwrap(), [Enqueued::Merged]);
    assert_eq!(outbox.stats().unwrap().pending, 1);
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.applied), (1, 1), "{report:?}");
    // Sent once, with the version of the latest report.
    assert_eq!(
        patches(&emu),
        [(
            format!("/v1.0{DIRECT}/u0"),
            json!({"devicesCount": 2, "status": "nonCompliant"})
        )]
    );
    // Acknowledged once for the user status, whichever version names it.
    assert_eq!(outbox.enqueue(&u0, &count(2)).unwrap(), Enqueued::Skipped);
}

#[test]
fn a_file_of_schema_1_is_migrated_and_keeps_its_pending_acknowledged_and_failed_reports() {
    let emu = emulator_with(ids("u", 3), Config::default());
    let client = common::client(&emu.base_url());
    // u2, in doubt: 6 acknowledged; 9 enqueued and applied by Graph, its answer lost; 6 enqueued
    // again, merged into the pending 9. Schema 1 kept no record of the claim.
    client
        .update_user_status(&Target::new("c1", "u2"), &count(9))
        .unwrap();
    emu.clear_requests();
    let dir = folder("schema1");
    let path = dir.join("outbox.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("fixtures/outbox-schema-1.sql"))
            .unwrap();
        // Acknowledged an hour ago (beta) and 36 ms later (v1.0): fresh under the default
        // resendAfter, and the v1.0 acknowledgement the later one.
        conn.execute(
            "UPDATE acknowledged SET acknowledged_at = ?1 + acknowledged_at
                 - (SELECT max(acknowledged_at) FROM acknowledged)",
            [unix_ms() - 3_600_000],
        )
        .unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO acknowledged VALUES('/v1.0{DIRECT}/u2', '{{\"devicesCount\":6}}', {acked});
             INSERT INTO pending VALUES('/v1.0{DIRECT}/u2',
               '{{\"apiVersion\":\"v1.0\",\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"u2\"}}',
               '{{\"devicesCount\":6}}', 9, {sent}, {sent}, 1, 'connection reset');",
            acked = unix_ms() - 600_000,
            sent = unix_ms() - 300_000,
        ))
        .unwrap();
    }
    let outbox = open(&client, &path);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (stats.pending, stats.failed, stats.applied),
        (2, 1, 2),
        "{stats:?}"
    );
    // u1's acknowledged state: devicesCount from the later (v1.0) write, status from beta's.
    let u1 = Target::new("c1", "u1");
    assert_eq!(outbox.enqueue(&u1, &count(6)).unwrap(), Enqueued::Skipped);
    let compliant = UserStatusPatch::new().status(ComplianceStatus::Compliant);
    assert_eq!(outbox.enqueue(&u1, &compliant).unwrap(), Enqueued::Skipped);
    assert_eq!(outbox.enqueue(&u1, &count(5)).unwrap(), Enqueued::Stored);
    let report = outbox.flush().unwrap();
    assert_eq!((report.applied, report.pending), (3, 0), "{report:?}");
    // The write to u2 whose answer was lost puts its acknowledgement in doubt: 6 is sent.
    assert_eq!(
        devices(&emu, "u2"),
        6,
        "Graph holds the last value enqueued"
    );
    let mut sent = patches(&emu);
    sent.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        sent,
        [
            (format!("/beta{DIRECT}/u1"), json!({"devicesCount": 5})),
            // u0's two rows, merged in the order they were enqueued, sent with the later version.
            (
                format!("/v1.0{DIRECT}/u0"),
                json!({"userDisplayName": "Ada", "devicesCount": 2, "status": "nonCompliant"})
            ),
            (format!("/v1.0{DIRECT}/u2"), json!({"devicesCount": 6})),
        ]
    );
    let failed = outbox.take_failed().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error.graph().unwrap().status, 404);
}

#[test]
fn times_stored_by_a_clock_that_ran_ahead_are_bounded_by_max_delay() {
    let emu = emulator_with(ids("u", 2), Config::default());
    let dir = folder("clock");
    let path = dir.join("outbox.db");
    let max_delay = Duration::from_secs(2);
    let client = builder(&emu.base_url())
        .retry_policy(
            RetryPolicy::none()
                .base_delay(Duration::from_millis(10))
                .max_delay(max_delay),
        )
        .build()
        .unwrap();
    let outbox = open(&client, &path);
    let (u0, u1) = (Target::new("c1", "u0"), Target::new("c1", "u1"));
    outbox.enqueue(&u0, &count(1)).unwrap();
    outbox.enqueue(&u1, &count(2)).unwrap();
    // As a process whose clock ran ten years ahead left them.
    let ahead = unix_ms() + 10 * 365 * 86_400_000;
    edit(
        &path,
        &format!("UPDATE pending SET next_attempt_at = {ahead} WHERE key LIKE '%/u0'"),
    );
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.applied), (2, 2), "{report:?}");
    // An acknowledgement dated in the future has expired: an equal report is stored and sent.
    edit(
        &path,
        &format!("UPDATE acknowledged SET acknowledged_at = {ahead}"),
    );
    assert_eq!(outbox.enqueue(&u0, &count(1)).unwrap(), Enqueued::Stored);
    // A failure while the stored next attempt is years away: due now, and due again within
    // maxDelay, not years.
    edit(
        &path,
        &format!("UPDATE pending SET next_attempt_at = {ahead}"),
    );
    emu.add_fault(FaultRule::always(Fault::Status {
        status: 503,
        retry_after: None,
    }));
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.retry_later), (1, 1), "{report:?}");
    assert!(report.next_attempt_in.unwrap() <= max_delay, "{report:?}");
    // A Retry-After beyond maxDelay is honoured in full: the whole outbox is held that long.
    emu.clear_faults();
    emu.add_fault(FaultRule::always(Fault::Status {
        status: 429,
        retry_after: Some("3600".into()),
    }));
    std::thread::sleep(max_delay);
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.retry_later), (1, 1), "{report:?}");
    let next = report.next_attempt_in.unwrap();
    assert!(
        next > Duration::from_secs(3590) && next <= Duration::from_secs(3600),
        "{report:?}"
    );
    emu.clear_faults();
    std::thread::sleep(max_delay + Duration::from_millis(100));
    let report = outbox.flush().unwrap();
    assert_eq!(
        (report.sent, report.pending),
        (0, 1),
        "still held: {report:?}"
    );
    // A hold left by a clock that ran ahead (past now + the wait asked) is over now.
    edit(
        &path,
        &format!("UPDATE counters SET value = {ahead} WHERE name = 'held_until'"),
    );
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.applied), (1, 1), "{report:?}");
}

#[test]
fn an_offline_flush_stops_after_a_batch_that_got_no_answer() {
    let emu = emulator_with(Vec::new(), Config::default());
    // Every $batch is reset before any answer, as an unreachable Graph would be.
    emu.add_fault(FaultRule::always(Fault::Reset).path_contains("/$batch"));
    let dir = folder("offline-stop");
    let client = builder(&emu.base_url())
        .retry_policy(
            RetryPolicy::default()
                .max_retries(1)
                // Long enough that the flush at once below falls inside the stored backoff (at
                // least 800 ms) even under Wine, where 240 ms was seen to pass in between.
                .base_delay(Duration::from_millis(1000)),
        )
        .build()
        .unwrap();
    let path = dir.join("outbox.db");
    let outbox = open(&client, &path);
    let items: Vec<_> = ids("p", 400)
        .into_iter()
        .map(|id| BulkItem::new(Target::new("c1", id), count(1)))
        .collect();
    outbox.enqueue_many(&items).unwrap();
    let started = Instant::now();
    let report = outbox.flush().unwrap();
    let took = started.elapsed();
    let envelopes = emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
        .count();
    // One batch and its one retry: not twenty batches paying theirs.
    assert_eq!(envelopes, 2, "{report:?} in {took:?}");
    assert_eq!(
        (report.sent, report.retry_later, report.pending),
        (20, 20, 400),
        "{report:?}"
    );
    // One retry wait (at most 1.2 s), not twenty.
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The rest waits out the same backoff, held by one stored time, not by a write to each of
    // the 380 rows not sent (which keep their first next attempt).
    let untouched = read_number(
        &path,
        "SELECT count(*) FROM pending WHERE failures = 0 AND next_attempt_at <= enqueued_at",
    );
    assert_eq!(untouched, 380);
    // A flush at once sends nothing, and a report enqueued meanwhile waits too.
    outbox
        .enqueue(&Target::new("c1", "late"), &count(1))
        .unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.pending), (0, 401), "{report:?}");
    let next = report.next_attempt_in.expect("pending");
    assert!(
        next > Duration::ZERO && next <= Duration::from_millis(1200),
        "{next:?}"
    );
}

#[test]
fn the_failed_list_never_makes_a_flush_fail_or_a_new_report_outbox_full() {
    warnings();
    let emu = emulator_with(Vec::new(), Config::default());
    let dir = folder("failed-full");
    let client = common::client(&emu.base_url());
    let outbox = Outbox::open(
        &client,
        dir.join("outbox.db"),
        OutboxOptions::new().max_bytes(MIN_OUTBOX_BYTES),
    )
    .unwrap();
    let name = "n".repeat(2000);
    // Every report refused (404): ~2 KB each into the failed list of a 256 KiB file.
    for round in 0..10 {
        let items: Vec<_> = (0..20)
            .map(|i| {
                let patch = UserStatusPatch::new().user_display_name(format!("{name}{round}-{i}"));
                BulkItem::new(Target::new("c1", format!("gone{round}-{i}")), patch)
            })
            .collect();
        outbox
            .enqueue_many(&items)
            .unwrap_or_else(|err| panic!("round {round}: {err}"));
        let report = outbox
            .flush()
            .unwrap_or_else(|err| panic!("round {round}: {err}"));
        assert_eq!(report.failed, 20, "round {round}: {report:?}");
    }
    let stats = outbox.stats().unwrap();
    assert!(
        stats.failed < 200 && stats.bytes <= MIN_OUTBOX_BYTES,
        "{stats:?}"
    );
    assert_eq!(stats.failed + stats.failed_dropped, 200, "{stats:?}");
    assert!(
        warnings()
            .iter()
            .any(|w| w.contains("failed-full") && w.contains("dropped")),
        "a WARN says so: {:?}",
        warnings()
    );
    // The newest failures are the ones kept.
    let failed = outbox.take_failed().unwrap();
    assert_eq!(failed.last().unwrap().target, Target::new("c1", "gone9-19"));
}

#[test]
fn two_paths_to_one_file_flush_one_at_a_time() {
    let emu = emulator_with(ids("t", 40), Config::default());
    emu.add_fault(FaultRule::always(Fault::Latency(Duration::from_millis(5))).method("PATCH"));
    let dir = folder("paths");
    let client = common::client(&emu.base_url());
    let path = dir.join("outbox.db");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let outbox = open(&client, &path);
    for t in 0..40 {
        outbox
            .enqueue(&Target::new("c1", format!("t{t}")), &count(1))
            .unwrap();
    }
    // The same file by a path with `..` in it, and (on Unix) through a symbolic link.
    let mut others = Vec::new();
    others.push(dir.join("sub").join("..").join("outbox.db"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&path, dir.join("link.db")).unwrap();
        others.push(dir.join("link.db"));
    }
    for (round, other) in others.iter().enumerate() {
        let handles = [
            Arc::new(open(&client, &path)),
            Arc::new(open(&client, other)),
        ];
        if round > 0 {
            for t in 0..40 {
                handles[0]
                    .enqueue(
                        &Target::new("c1", format!("t{t}")),
                        &count(round as i32 + 1),
                    )
                    .unwrap();
            }
        }
        let before = patches(&emu).len();
        let flushes: Vec<_> = handles
            .into_iter()
            .map(|outbox| std::thread::spawn(move || outbox.flush().unwrap()))
            .collect();
        let mut applied: Vec<u64> = flushes
            .into_iter()
            .map(|f| f.join().unwrap().applied)
            .collect();
        applied.sort();
        assert_eq!(applied, [0, 40], "{}", other.display());
        assert_eq!(patches(&emu).len() - before, 40, "{}", other.display());
    }
}

#[test]
fn a_report_is_skipped_only_while_each_of_its_properties_was_acknowledged_recently() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("per-property");
    let client = common::client(&emu.base_url());
    let resend_after = Duration::from_secs(2);
    let outbox = Outbox::open(
        &client,
        dir.join("outbox.db"),
        OutboxOptions::new().resend_after(resend_after),
    )
    .unwrap();
    let u0 = Target::new("c1", "u0");
    let compliant = UserStatusPatch::new().status(ComplianceStatus::Compliant);
    outbox
        .enqueue(&u0, &compliant.clone().devices_count(1))
        .unwrap();
    assert_eq!(outbox.flush().unwrap().applied, 1);
    // Taken once the flush returned: its acknowledgement was recorded before (under Wine on a
    // loaded machine a flush took more than the 300 ms margin below).
    let first = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    // Only devicesCount is acknowledged anew; status keeps its first acknowledgement.
    outbox.enqueue(&u0, &count(2)).unwrap();
    let second = Instant::now();
    assert_eq!(outbox.flush().unwrap().applied, 1);
    std::thread::sleep(
        (first + resend_after + Duration::from_millis(300))
            .saturating_duration_since(Instant::now()),
    );
    assert!(
        second.elapsed() < resend_after - Duration::from_millis(200),
        "the machine is too slow for this test"
    );
    assert_eq!(outbox.enqueue(&u0, &count(2)).unwrap(), Enqueued::Skipped);
    // status was last acknowledged more than resendAfter ago: re-asserted.
    assert_eq!(outbox.enqueue(&u0, &compliant).unwrap(), Enqueued::Stored);
}

#[cfg(unix)]
#[test]
fn the_file_and_its_companions_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("modes");
    let path = dir.join("outbox.db");
    let outbox = open(&common::client(&emu.base_url()), &path);
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    outbox.flush().unwrap();
    let mode = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display()))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|err| panic!("{suffix}: {err}"))
    };
    for suffix in ["", "-wal", "-shm", "-flush"] {
        assert_eq!(mode(suffix), 0o600, "{}{suffix}", path.display());
    }
    drop(outbox);
}

#[test]
fn a_file_left_by_a_killed_writer_opens_and_keeps_its_reports() {
    let dir = folder("crash-image");
    let client = common::client("http://127.0.0.1:9");
    let path = dir.join("outbox.db");
    let outbox = open(&client, &path);
    for id in ids("u", 3) {
        outbox.enqueue(&Target::new("c1", id), &count(7)).unwrap();
    }
    // The files as a process killed now leaves them: its WAL not checkpointed, and the WAL's
    // index (-shm) stale or gone, so the next opener must recover the WAL.
    for (name, shm) in [("gone", None), ("stale", Some(vec![0u8; 32768]))] {
        let image = dir.join(format!("{name}.db"));
        std::fs::copy(&path, &image).unwrap();
        std::fs::copy(
            format!("{}-wal", path.display()),
            format!("{}-wal", image.display()),
        )
        .unwrap();
        if let Some(bytes) = shm {
            std::fs::write(format!("{}-shm", image.display()), bytes).unwrap();
        }
        let reopened = Outbox::open(&client, &image, OutboxOptions::new())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(reopened.stats().unwrap().pending, 3, "{name}");
    }
    drop(outbox);
}

/// The WARN lines logged by this test process (every test's: filter by the test's folder). The
/// first call installs the logger.
fn warnings() -> Vec<String> {
    struct Capture(std::sync::Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::Level::Warn
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                self.0.lock().unwrap().push(record.args().to_string());
            }
        }
        fn flush(&self) {}
    }
    static CAPTURE: std::sync::OnceLock<&'static Capture> = std::sync::OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Default::default())));
        let _ = log::set_logger(capture);
        log::set_max_level(log::LevelFilter::Warn);
        capture
    });
    capture.0.lock().unwrap().clone()
}

#[test]
fn max_failed_keeps_the_newest_failures_and_counts_and_logs_the_rest() {
    warnings();
    let emu = emulator_with(Vec::new(), Config::default());
    let dir = folder("max-failed");
    let outbox = Outbox::open(
        &common::client(&emu.base_url()),
        dir.join("outbox.db"),
        OutboxOptions::new().max_failed(3),
    )
    .unwrap();
    let items: Vec<_> = ids("gone", 5)
        .into_iter()
        .map(|id| BulkItem::new(Target::new("c1", id), count(1)))
        .collect();
    outbox.enqueue_many(&items).unwrap();
    assert_eq!(outbox.flush().unwrap().failed, 5);
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.failed, stats.failed_dropped), (3, 2), "{stats:?}");
    assert!(
        warnings()
            .iter()
            .any(|w| w.contains("max-failed") && w.contains("2 failed report(s) dropped")),
        "{:?}",
        warnings()
    );
    let kept: Vec<String> = outbox
        .take_failed()
        .unwrap()
        .into_iter()
        .map(|f| f.target.user_status_id().to_owned())
        .collect();
    assert_eq!(kept, ["gone2", "gone3", "gone4"]);
    // A bad value of the new option is a configuration error naming it.
    let err = Outbox::open(
        &common::client(&emu.base_url()),
        dir.join("x.db"),
        OutboxOptions::new().flush_time(Duration::ZERO),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "flushTimeMs"),
        "{err}"
    );
}

#[test]
fn a_flush_starts_no_batch_after_flush_time_and_leaves_the_rest_due() {
    let emu = emulator_with(ids("f", 100), Config::default());
    // Every batch takes 200 ms.
    emu.add_fault(
        FaultRule::always(Fault::Latency(Duration::from_millis(200))).path_contains("/$batch"),
    );
    let dir = folder("flush-time");
    let outbox = Outbox::open(
        &common::client(&emu.base_url()),
        dir.join("outbox.db"),
        OutboxOptions::new().flush_time(Duration::from_millis(300)),
    )
    .unwrap();
    let items: Vec<_> = ids("f", 100)
        .into_iter()
        .map(|id| BulkItem::new(Target::new("c1", id), count(1)))
        .collect();
    outbox.enqueue_many(&items).unwrap();
    let started = Instant::now();
    let report = outbox.flush().unwrap();
    let took = started.elapsed();
    // Two batches began within 300 ms (one, on a loaded machine); none after it.
    assert!(
        [20, 40].contains(&report.sent)
            && report.applied == report.sent
            && report.pending == 100 - report.sent,
        "{report:?}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert_eq!(
        report.next_attempt_in,
        Some(Duration::ZERO),
        "the rest is due now"
    );
    // The next flush goes on where it stopped.
    assert!(outbox.flush().unwrap().sent >= 20);
}

#[cfg(unix)]
#[test]
fn an_existing_files_mode_is_left_as_it_is_with_a_warning_when_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    warnings();
    let dir = folder("loose-mode");
    let path = dir.join("outbox.db");
    let client = common::client("http://127.0.0.1:9");
    drop(open(&client, &path));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(open(&client, &path));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "left as it was");
    let path_text = path.display().to_string();
    assert!(
        warnings()
            .iter()
            .any(|w| w.contains(&path_text) && w.contains("can be read by other users")),
        "{:?}",
        warnings()
    );
}

// ---- Review of the outbox rewrite ---------------------------------------------------------------

/// A damaged file: one pending row's column holds JSON that does not parse, bytes that are not
/// UTF-8, or a BLOB, where the outbox wrote text (as a flipped byte or an operator's edit leaves
/// it): (the column, the damage, what the STORAGE error says besides the column and the row).
const DAMAGES: [(&str, &str, &str); 5] = [
    (
        "patch",
        r#"patch = '{"devicesCount":"many"}'"#,
        "cannot be read",
    ),
    (
        "patch",
        "patch = CAST(X'7B2264657669636573436F756E74223AFF7D' AS TEXT)",
        "not UTF-8",
    ),
    ("patch", "patch = X'7B7D'", "BLOB"),
    ("target", "target = CAST(target || X'FF' AS BLOB)", "BLOB"),
    ("key", "key = CAST(key || X'FF' AS TEXT)", "not UTF-8"),
];

#[test]
fn a_damaged_byte_or_a_blob_in_one_row_fails_that_row_only() {
    for (column, damage, why) in DAMAGES {
        // Flushed first: the row goes to the failed list, the others are sent; then a new
        // report for the user status is stored and sent.
        for enqueue_first in [false, true] {
            let case = format!("{damage} (enqueue first: {enqueue_first})");
            let emu = emulator_with(ids("u", 3), Config::default());
            let dir = folder("damaged");
            let path = dir.join("outbox.db");
            let outbox = open(&common::client(&emu.base_url()), &path);
            for (i, id) in ids("u", 3).iter().enumerate() {
                outbox
                    .enqueue(&Target::new("c1", id), &count(i as i32 + 1))
                    .unwrap();
            }
            edit(
                &path,
                &format!("UPDATE pending SET {damage} WHERE key LIKE '%/u1'"),
            );
            let u1 = Target::new("c1", "u1");
            if enqueue_first {
                // A damaged patch is replaced; a damaged target too, by the merge (the key says
                // which user status it was); a damaged key is not found: a new row.
                let done = outbox.enqueue(&u1, &count(7));
                let merged = column == "target";
                let want = if merged {
                    Enqueued::Merged
                } else {
                    Enqueued::Stored
                };
                assert_eq!(done.ok(), Some(want), "{case}");
                let report = outbox.flush().unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(
                    (report.applied, report.failed, report.pending),
                    (3, u64::from(column == "key"), 0),
                    "{case}: {report:?}"
                );
                if merged {
                    assert_eq!(devices(&emu, "u1"), 7, "{case}");
                    assert_eq!(outbox.stats().unwrap().failed, 0, "{case}");
                    continue;
                }
            } else {
                let report = outbox.flush().unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(
                    (report.sent, report.applied, report.failed, report.pending),
                    (2, 2, 1, 0),
                    "{case}: {report:?}"
                );
                assert_eq!(outbox.enqueue(&u1, &count(7)).ok(), Some(Enqueued::Stored));
                assert_eq!(outbox.flush().unwrap().applied, 1, "{case}");
            }
            assert_eq!(
                (
                    devices(&emu, "u0"),
                    devices(&emu, "u1"),
                    devices(&emu, "u2")
                ),
                (1, 7, 3),
                "{case}"
            );
            let stats = outbox.stats().unwrap();
            assert_eq!((stats.pending, stats.failed), (0, 1), "{case}: {stats:?}");
            let reason = match outbox.take_failed() {
                // A row whose target cannot be read stays in the file; its reason is there.
                Ok(failed) if column == "target" => {
                    assert!(failed.is_empty(), "{case}: {failed:?}");
                    let conn = rusqlite::Connection::open(&path).unwrap();
                    let error: String = conn
                        .query_row("SELECT error FROM failed", [], |r| r.get(0))
                        .unwrap();
                    let error: Value = serde_json::from_str(&error).unwrap();
                    assert_eq!(error["path"], path.display().to_string(), "{case}");
                    error["reason"].as_str().unwrap().to_owned()
                }
                Ok(failed) => {
                    assert_eq!(failed.len(), 1, "{case}: {failed:?}");
                    match &failed[0].error {
                        Error::Storage {
                            path: file, reason, ..
                        } => {
                            assert_eq!(file, &path.display().to_string(), "{case}");
                            reason.clone()
                        }
                        other => panic!("{case}: not STORAGE: {other:?}"),
                    }
                }
                Err(err) => panic!("{case}: {err}"),
            };
            assert!(
                reason.contains("/deviceConfigurations/c1/userStatuses/u1")
                    && reason.contains(column)
                    && reason.contains(why),
                "{case}: {reason}"
            );
        }
    }
}

#[test]
fn take_failed_returns_what_it_can_read_of_a_damaged_failed_list() {
    let emu = emulator_with(Vec::new(), Config::default());
    let dir = folder("damaged-failed");
    let path = dir.join("outbox.db");
    let outbox = open(&common::client(&emu.base_url()), &path);
    let items: Vec<_> = ids("gone", 3)
        .into_iter()
        .map(|id| BulkItem::new(Target::new("c1", id), count(1)))
        .collect();
    outbox.enqueue_many(&items).unwrap();
    assert_eq!(outbox.flush().unwrap().failed, 3);
    edit(
        &path,
        "UPDATE failed SET patch = CAST(X'7BFF7D' AS TEXT) WHERE target LIKE '%gone0%';
         UPDATE failed SET target = CAST(target AS BLOB) WHERE target LIKE '%gone1%';",
    );
    let failed = outbox.take_failed().expect("the readable reports");
    let got: Vec<(String, bool)> = failed
        .iter()
        .map(|f| {
            (
                f.target.user_status_id().to_owned(),
                f.patch == UserStatusPatch::new(),
            )
        })
        .collect();
    // gone0 without its patch, gone2 whole; gone1 (its target unreadable) stays in the file.
    assert_eq!(got, [("gone0".into(), true), ("gone2".into(), false)]);
    assert_eq!(outbox.stats().unwrap().failed, 1);
}

/// `n` reports for `prefix0..`, each with a display name of `len` bytes, so a few hundred fill a
/// file.
fn big_reports(prefix: &str, n: usize, len: usize) -> Vec<BulkItem> {
    ids(prefix, n)
        .into_iter()
        .map(|id| {
            let name = format!("{id} {}", "n".repeat(len));
            BulkItem::new(Target::new("c1", id), count(1).user_display_name(name))
        })
        .collect()
}

/// A file filled to `maxBytes` (new reports up to the enqueue's bound, then merges that grow
/// them until SQLite's page limit refuses one) still flushes: the claim's writes (the rows in
/// doubt, the index) find room, and the file drains.
#[test]
fn a_file_at_max_bytes_still_flushes_and_drains() {
    let n = 400;
    let emu = emulator_with(ids("f", n), Config::default());
    let dir = folder("at-max-bytes");
    let path = dir.join("outbox.db");
    let outbox = Outbox::open(
        &common::client(&emu.base_url()),
        &path,
        OutboxOptions::new().max_bytes(MIN_OUTBOX_BYTES),
    )
    .unwrap();
    let name =
        |i: usize, len: usize| count(1).user_display_name(format!("f{i} {}", "n".repeat(len)));
    let target = |i: usize| Target::new("c1", format!("f{i}"));
    let stored = (0..n)
        .take_while(|&i| outbox.enqueue(&target(i), &name(i, 200)).is_ok())
        .count();
    assert!(stored > 10 && stored < n, "{stored}");
    let mut last = vec![200; stored];
    let full = 'fill: {
        for len in (400..4000).step_by(200) {
            for (i, last) in last.iter_mut().enumerate() {
                match outbox.enqueue(&target(i), &name(i, len)) {
                    Ok(_) => *last = len,
                    Err(err) => break 'fill err,
                }
            }
        }
        panic!("the file never filled");
    };
    let (pages, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let pages = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        (
            pages,
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap(),
        )
    };
    assert!(
        (pages * page_size) as u64 + 2 * page_size as u64 >= MIN_OUTBOX_BYTES,
        "{pages} pages of {page_size}: not full; {full}"
    );
    let mut flushes = 0;
    while outbox.stats().unwrap().pending > 0 {
        flushes += 1;
        assert!(flushes < 50, "never drained");
        let report = outbox
            .flush()
            .unwrap_or_else(|err| panic!("a full file's flush: {err}"));
        assert!(report.sent > 0 || report.pending == 0, "{report:?}");
    }
    assert_eq!(outbox.stats().unwrap().applied, stored as u64);
    for (i, len) in last.iter().enumerate() {
        let held = emu.user_status(DIRECT, &format!("f{i}")).unwrap();
        assert_eq!(
            held["userDisplayName"],
            json!(format!("f{i} {}", "n".repeat(*len)))
        );
    }
    // maxBytes, SQLite's 64 KiB spare, and the root page of the index on the writes in doubt'
    // ends (in_doubt_until), which every file has, even with none in doubt.
    let stats = outbox.stats().unwrap();
    assert!(
        stats.bytes <= MIN_OUTBOX_BYTES + 64 * 1024 + page_size as u64,
        "{stats:?}"
    );
}

#[test]
fn acknowledgements_give_way_and_never_fill_the_file() {
    let n = 600;
    let emu = emulator_with(ids("a", n), Config::default());
    let dir = folder("acks-fill");
    let outbox = Outbox::open(
        &common::client(&emu.base_url()),
        dir.join("outbox.db"),
        OutboxOptions::new().max_bytes(1 << 20),
    )
    .unwrap();
    // Every acknowledgement fresh (resendAfter: a day), a page or two each: 3 MB for 1 MiB.
    let items = big_reports("a", n, 2000);
    for (round, chunk) in items.chunks(100).enumerate() {
        outbox
            .enqueue_many(chunk)
            .unwrap_or_else(|err| panic!("round {round}: {err}"));
        let report = outbox.flush().unwrap();
        assert_eq!(report.applied, 100, "round {round}: {report:?}");
    }
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.pending, stats.applied), (0, n as u64), "{stats:?}");
    assert!(stats.bytes <= 1 << 20, "{stats:?}");
    // The newest acknowledgements are the ones kept.
    let last = &items[n - 1];
    assert_eq!(
        outbox.enqueue(last.target(), last.patch()).unwrap(),
        Enqueued::Skipped
    );
}

#[test]
fn expired_acknowledgements_give_way_before_failed_reports_and_are_pruned_as_flushes_record() {
    let emu = emulator_with(
        ids("a", 80).into_iter().chain(ids("new", 80)),
        Config::default(),
    );
    let dir = folder("acks-expired");
    let path = dir.join("outbox.db");
    let outbox = Outbox::open(
        &common::client(&emu.base_url()),
        &path,
        OutboxOptions::new()
            .max_bytes(MIN_OUTBOX_BYTES)
            .resend_after(Duration::from_millis(300)),
    )
    .unwrap();
    // 80 KB of failed reports (404), then 80 KB of acknowledgements, in a 256 KiB file.
    outbox.enqueue_many(&big_reports("gone", 80, 400)).unwrap();
    assert_eq!(outbox.flush().unwrap().failed, 80);
    outbox.enqueue_many(&big_reports("a", 80, 400)).unwrap();
    assert_eq!(outbox.flush().unwrap().applied, 80);
    std::thread::sleep(Duration::from_millis(400));
    // 80 KB more pending: the expired acknowledgements make the room, not the failed list.
    outbox.enqueue_many(&big_reports("new", 80, 400)).unwrap();
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (stats.pending, stats.failed, stats.failed_dropped),
        (80, 80, 0),
        "{stats:?}"
    );
    let acknowledged = |path: &Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut statement = conn
            .prepare("SELECT DISTINCT key FROM acknowledged ORDER BY key")
            .unwrap();
        statement
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|k| k.unwrap().rsplit('/').next().unwrap().to_owned())
            .collect()
    };
    // The normal path: a flush prunes what expired (and what is dated in the future) as it records.
    let (a0, a1) = (Target::new("c1", "a0"), Target::new("c1", "a1"));
    outbox.enqueue(&a0, &count(2)).unwrap();
    outbox.enqueue(&a1, &count(2)).unwrap();
    assert_eq!(outbox.flush().unwrap().applied, 82);
    edit(
        &path,
        &format!(
            "UPDATE acknowledged SET acknowledged_at = {} WHERE key LIKE '%/a0'",
            unix_ms() + 86_400_000
        ),
    );
    std::thread::sleep(Duration::from_millis(400));
    outbox.enqueue(&a1, &count(3)).unwrap();
    assert_eq!(outbox.flush().unwrap().applied, 1);
    assert_eq!(acknowledged(&path), ["a1"]);
}

#[test]
fn oldest_pending_counts_from_when_a_report_dated_in_the_future_is_next_seen() {
    let emu = emulator_with(ids("u", 1), Config::default());
    emu.add_fault(FaultRule::always(Fault::Status {
        status: 503,
        retry_after: None,
    }));
    let dir = folder("oldest-ahead");
    let path = dir.join("outbox.db");
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap();
    let outbox = open(&client, &path);
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    // Enqueued while the clock ran ten years ahead.
    edit(
        &path,
        &format!(
            "UPDATE pending SET enqueued_at = {}",
            unix_ms() + 10 * 365 * 86_400_000
        ),
    );
    assert_eq!(outbox.flush().unwrap().retry_later, 1);
    std::thread::sleep(Duration::from_millis(1100));
    let oldest = outbox.stats().unwrap().oldest_pending.unwrap();
    assert!(oldest >= Duration::from_secs(1), "{oldest:?}");
}

/// Windows: who may read the file is its folder's access list; the outbox changes nothing and
/// warns about nothing, whether it made the file or found it empty (an installer's placeholder).
#[cfg(windows)]
#[test]
fn on_windows_a_file_made_beforehand_is_used_as_it_is_and_nothing_is_warned_about_its_readers() {
    warnings();
    let dir = folder("touched-windows");
    let path = dir.join("outbox.db");
    std::fs::write(&path, b"").unwrap();
    let client = common::client("http://127.0.0.1:9");
    let outbox = open(&client, &path);
    let target = Target::new("c1", "u1");
    assert_eq!(
        outbox.enqueue(&target, &count(1)).unwrap(),
        Enqueued::Stored
    );
    drop(outbox);
    let outbox = open(&client, &path);
    assert_eq!(outbox.stats().unwrap().pending, 1, "kept across a reopen");
    let path_text = path.display().to_string();
    assert!(
        !warnings().iter().any(|w| w.contains(&path_text)),
        "{:?}",
        warnings()
    );
}

#[cfg(unix)]
#[test]
fn an_empty_file_made_beforehand_becomes_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    warnings();
    let dir = folder("touched");
    let path = dir.join("outbox.db");
    // As an installer's `touch` leaves it.
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let outbox = open(&common::client("http://127.0.0.1:9"), &path);
    outbox.enqueue(&Target::new("c1", "u1"), &count(1)).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let mode = std::fs::metadata(format!("{}{suffix}", path.display()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}{suffix}", path.display());
    }
    let path_text = path.display().to_string();
    assert!(
        !warnings().iter().any(|w| w.contains(&path_text)),
        "{:?}",
        warnings()
    );
}

/// A schema-1 file (the fixture's tables and failed report) whose pending reports are `rows`
/// reports for `rows / 2` user statuses `m0..`, each through beta then v1.0: beta's
/// `{userDisplayName: "Name N", devicesCount: 2N}`, v1.0's `{devicesCount: 2N+1, status}`. In
/// WAL mode, as the schema-1 code left its files.
fn schema_1_backlog(path: &Path, rows: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(include_str!("fixtures/outbox-schema-1.sql"))
        .unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         DELETE FROM pending;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO pending SELECT
           (CASE WHEN i % 2 = 0 THEN '/beta' ELSE '/v1.0' END) || '{DIRECT}/m' || (i / 2),
           '{{\"apiVersion\":\"' || (CASE WHEN i % 2 = 0 THEN 'beta' ELSE 'v1.0' END) ||
             '\",\"deviceConfigurationId\":\"c1\",\"userStatusId\":\"m' || (i / 2) || '\"}}',
           CASE WHEN i % 2 = 0
             THEN '{{\"userDisplayName\":\"Name ' || (i / 2) || '\",\"devicesCount\":' || i || '}}'
             ELSE '{{\"devicesCount\":' || i || ',\"status\":\"compliant\"}}' END,
           i + 10, 1000 + i, 1000 + i, 0, NULL FROM n;",
        last = rows - 1
    ))
    .unwrap();
}

/// The file holds every report of [`schema_1_backlog`] as schema 2 (and 3) holds it: one row per user
/// status, merged, at v1.0 (the later report's version), and the fixture's failed report.
fn assert_backlog_migrated(path: &Path, rows: usize, case: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3, "{case}");
    let mut statement = conn
        .prepare("SELECT key, target, patch FROM pending ORDER BY revision")
        .unwrap();
    let pending: Vec<(String, String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pending.len(), rows / 2, "{case}");
    for (n, (key, target, patch)) in pending.iter().enumerate() {
        assert_eq!(key, &format!("{DIRECT}/m{n}"), "{case}");
        let target: Value = serde_json::from_str(target).unwrap();
        assert_eq!(target["apiVersion"], "v1.0", "{case}: {key}");
        let patch: Value = serde_json::from_str(patch).unwrap();
        let want = json!({
            "userDisplayName": format!("Name {n}"),
            "devicesCount": 2 * n + 1,
            "status": "compliant",
        });
        assert_eq!(patch, want, "{case}: {key}");
    }
    let failed: i64 = conn
        .query_row("SELECT count(*) FROM failed", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failed, 1, "{case}");
}

#[test]
fn two_processes_opening_a_schema_1_file_at_once_migrate_it_once() {
    let dir = folder("migrate-two");
    let path = dir.join("outbox.db");
    let rows = 4000;
    schema_1_backlog(&path, rows);
    let url = "http://127.0.0.1:9";
    let children: Vec<_> = (0..2)
        .map(|_| spawn_child("open", url, &path, &[]))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{:?}: {text}", out.status);
        assert!(
            text.contains(&format!("opened {}", rows / 2)),
            "each sees every report: {text}"
        );
    }
    assert_backlog_migrated(&path, rows, "two openers");
}

/// The migration is one transaction: a process killed in the middle of it leaves the file of
/// schema 1 as it was (SQLite rolls the WAL's uncommitted pages back), and the next open migrates
/// it whole.
#[test]
fn a_kill_during_the_migration_loses_no_report() {
    let dir = folder("migrate-kill");
    let original = dir.join("schema1.db");
    // Large enough that the migration writes pages to the WAL before it commits.
    let rows = 12_000;
    schema_1_backlog(&original, rows);
    let wal = |path: &Path| {
        std::fs::metadata(format!("{}-wal", path.display()))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    assert_eq!(wal(&original), 0);
    let mut mid_migration = 0;
    for run in 0..5 {
        let path = dir.join(format!("outbox-{run}.db"));
        std::fs::copy(&original, &path).unwrap();
        let mut child = child_command("open", "http://127.0.0.1:9", &path, &[])
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|line| line.is_ok_and(|line| line == "opening")),
            "run {run}: the child never began"
        );
        // Kill as soon as the migration's pages reach the WAL.
        wait_for("the migration to write", || wal(&path) > 0);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(killed(status), "run {run}: {status:?}");
        // What a killed migration leaves: schema 1, every row as it was.
        let version: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        if version == 1 {
            mid_migration += 1;
            let rows_left: i64 = rusqlite::Connection::open(&path)
                .unwrap()
                .query_row("SELECT count(*) FROM pending", [], |r| r.get(0))
                .unwrap();
            assert_eq!(rows_left as usize, rows, "run {run}");
        }
        let outbox = Outbox::open(
            &common::client("http://127.0.0.1:9"),
            &path,
            OutboxOptions::new().max_bytes(256 << 20),
        )
        .unwrap_or_else(|err| panic!("run {run}: {err}"));
        assert_eq!(outbox.stats().unwrap().pending as usize, rows / 2);
        drop(outbox);
        assert_backlog_migrated(&path, rows, &format!("run {run}"));
        if mid_migration > 0 {
            break;
        }
    }
    assert!(mid_migration > 0, "no kill landed inside the migration");
}

#[test]
fn a_flush_through_a_proxy_that_cannot_reach_graph_stops_after_one_batch() {
    // The proxy answers the CONNECT with 502 (it cannot reach Graph): nothing reached Graph, as
    // with a refused connect, so the flush stops after one batch and holds the rest back.
    let proxy = common::TunnelProxy::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = folder("proxy-cannot-reach");
    let client = builder(&format!("https://graph.proxied.test:{port}"))
        .proxy(proxy.url.clone())
        .retry_policy(
            RetryPolicy::default()
                .max_retries(1)
                .base_delay(Duration::from_millis(1000)),
        )
        .build()
        .unwrap();
    let outbox = open(&client, &dir.join("outbox.db"));
    let items: Vec<_> = ids("p", 60)
        .into_iter()
        .map(|id| BulkItem::new(Target::new("c1", id), count(1)))
        .collect();
    outbox.enqueue_many(&items).unwrap();
    let report = outbox.flush().unwrap();
    let connects = proxy.seen();
    assert_eq!(
        connects.len(),
        1,
        "one batch's CONNECT: {connects:?} {report:?}"
    );
    assert_eq!(
        (report.sent, report.retry_later, report.pending),
        (20, 20, 60),
        "{report:?}"
    );
}

// The writes in doubt (in_doubt.rs), end to end: each test below is a sequence a device agent can
// meet, found by a review of the claim-hold merge, where it failed (a changed value overtaken by
// a late write, a doubt forgotten, a file past maxBytes, a file that never flushed).

/// A client with one try per call and a short request budget.
fn one_try_client(emu: &Emulator, request_ms: u64) -> Client {
    builder(&emu.base_url())
        .request_timeout(Duration::from_millis(request_ms))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap()
}

/// Waits until `at`, then flushes until nothing is pending (bounded).
fn drain_after(outbox: &Outbox, at: Instant) {
    while Instant::now() < at {
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox.stats().unwrap().pending > 0 {
        assert!(Instant::now() < deadline, "never drained");
        let _ = outbox.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Was a defect (1 of the review that found it; the test keeps it fixed): `in_doubt` keeps ONE patch per user status, and a claim overwrites it. A write W1
/// {devicesCount 1} whose answer timed out is in doubt until its record + requestMs. Its retry is
/// applied (a known outcome: W1 is restored as in doubt, correctly). Then a report with another
/// property only ({status}) is claimed: its claim replaces W1's row, and its outcome is unknown
/// (answer lost), so `extend` keeps only {status}: W1 is forgotten while it may still land. A
/// later {devicesCount 2} is then sent at once, and W1 lands after it: Graph ends with 1.
#[test]
fn a_write_of_other_properties_must_not_end_an_earlier_writes_doubt() {
    const R: u64 = 1_500;
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("overwrite");
    let outbox = Outbox::open(
        &one_try_client(&emu, R),
        dir.join("o.db"),
        OutboxOptions::new(),
    )
    .unwrap();
    let u0 = Target::new("c1", "u0");
    outbox.enqueue(&u0, &count(1)).unwrap();
    // W1: Graph holds it 2.5 s, then applies it: within the documented window (its record, at
    // about 1.5 s, + requestMs 1.5 s = 3 s).
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(2_500))).method("PATCH"));
    let sent_w1 = Instant::now();
    let report = outbox.flush().unwrap();
    assert_eq!(report.retry_later, 1, "W1 times out: {report:?}");
    std::thread::sleep(Duration::from_millis(100));
    let report = outbox.flush().unwrap();
    assert_eq!(
        report.applied, 1,
        "W1's retry (same value) is applied: {report:?}"
    );
    // Another property only: a new pending row, claimed while W1 may still land.
    outbox
        .enqueue(
            &u0,
            &UserStatusPatch::new().status(ComplianceStatus::Compliant),
        )
        .unwrap();
    emu.add_fault(FaultRule::next(1, Fault::LostAnswer).method("PATCH"));
    let report = outbox.flush().unwrap();
    assert_eq!(report.retry_later, 1, "{report:?}");
    // The changed value.
    outbox.enqueue(&u0, &count(2)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let report = outbox.flush().unwrap();
    let early = sent_w1.elapsed();
    // W1 has landed by then; the hold (if kept) is over by 3 s + a margin.
    drain_after(&outbox, sent_w1 + Duration::from_millis(3_600));
    assert_eq!(
        devices(&emu, "u0"),
        2,
        "Graph ends with the older value: devicesCount 2 was sent {early:?} after W1 (report \
         {report:?}), before W1 could no longer land (2.5 s), and W1 landed after it"
    );
}

/// Was a defect (2 of the review that found it; the test keeps it fixed): an end of doubt later than now + the CURRENT client's requestMs is taken for a
/// clock that ran ahead and dropped. An agent that reopens its outbox with a shorter requestMs
/// (a config change, an upgrade, a second tool on the same file: `ius` CLI with another budget)
/// drops every write in doubt written under the longer budget, and a changed value goes at once.
/// (A wall clock stepped back by NTP by more than requestMs drops them the same way: the safe
/// reading of such an end is now + requestMs, not "over".)
#[test]
fn a_shorter_request_ms_after_reopening_must_not_drop_a_write_in_doubt() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("shorter");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    let sent_w1 = Instant::now();
    {
        let outbox =
            Outbox::open(&one_try_client(&emu, 1_500), &path, OutboxOptions::new()).unwrap();
        outbox.enqueue(&u0, &count(1)).unwrap();
        // Applied by Graph after 2.5 s: within this client's documented window (3 s).
        emu.add_fault(
            FaultRule::next(1, Fault::Latency(Duration::from_millis(2_500))).method("PATCH"),
        );
        let report = outbox.flush().unwrap();
        assert_eq!(report.retry_later, 1, "W1 times out: {report:?}");
    }
    // Reopened with a 300 ms budget.
    let outbox = Outbox::open(&one_try_client(&emu, 300), &path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&u0, &count(2)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let report = outbox.flush().unwrap();
    let early = sent_w1.elapsed();
    drain_after(&outbox, sent_w1 + Duration::from_millis(3_600));
    assert_eq!(
        devices(&emu, "u0"),
        2,
        "devicesCount 2 was sent {early:?} after W1 ({report:?}), W1 landed after it"
    );
}

/// Was a defect (3 of the review that found it; the test keeps it fixed): what a kill leaves. The claim notes each report's write as in doubt until CLAIM +
/// requestMs, but a round's later batches leave after the earlier ones answered (each may take up
/// to requestMs, plus Retry-After and pacing waits). Here batch 1 (20 reports) takes 1.2 s of a
/// 1.5 s budget; batch 2 is then in flight, and the file (what `kill -9` now leaves) says its
/// writes can land only until claim + 1.5 s, i.e. 0.3 s after they left, though Graph may apply
/// them until they left + 1.5 s.
#[test]
fn the_file_must_hold_a_later_batchs_write_in_doubt_for_requestms_after_it_left() {
    const R: u64 = 1_500;
    let emu = emulator_with(ids("k", 25), Config::default());
    let dir = folder("late-batch");
    let path = dir.join("o.db");
    let outbox =
        Arc::new(Outbox::open(&one_try_client(&emu, R), &path, OutboxOptions::new()).unwrap());
    for id in ids("k", 25) {
        outbox.enqueue(&Target::new("c1", id), &count(1)).unwrap();
    }
    // Batch 1's envelope answered after 1.2 s; batch 2's held 1.3 s (it times out).
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(1_200))).method("POST"));
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(1_300))).method("POST"));
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || outbox.flush())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu
        .wire_requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "batch 2 never left");
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = unix_ms();
    // The user statuses batch 2 carries (batch 1's left at the claim: claim + requestMs is right
    // for them).
    let second = emu
        .wire_requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .nth(1)
        .expect("batch 2");
    let body: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    let in_flight: Vec<String> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|request| {
            let url = request["url"].as_str().unwrap();
            url.rsplit('/').next().unwrap().to_owned()
        })
        .collect();
    assert!(!in_flight.is_empty(), "{body}");
    // What the file holds now for them, as a kill would leave it.
    let ends: Vec<i64> = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut statement = conn.prepare("SELECT key, until FROM in_doubt").unwrap();
        statement
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<(String, i64)>, _>>()
            .unwrap()
            .into_iter()
            .filter(|(key, _)| in_flight.iter().any(|id| key.ends_with(&format!("/{id}"))))
            .map(|(_, until)| until)
            .collect()
    };
    assert_eq!(
        ends.len(),
        in_flight.len(),
        "batch 2's writes in doubt: {in_flight:?}"
    );
    let _ = flusher.join();
    let earliest = *ends.iter().min().expect("writes in doubt");
    assert!(
        earliest >= left + R as i64 - 100,
        "a write that left at {left} may land until {}, but the file holds it in doubt only \
         until {earliest} ({} ms after it left)",
        left + R as i64,
        earliest - left
    );
}

/// Was a defect (4 of the review that found it, maxBytes; the test keeps it fixed): docs/outbox.md says a full file's claim "may take the file past it by
/// the round's writes in doubt". A flush of a full file whose every write gets a 504 (an
/// answer: the flush goes on) claims round after round, and every round's writes stay in doubt
/// (until record + requestMs, 100 s): the file passes maxBytes by the whole backlog's writes in
/// doubt, not one round's.
#[test]
fn a_full_files_flush_passes_max_bytes_by_one_rounds_writes_in_doubt_at_most() {
    let n = 2_000;
    let emu = emulator_with(ids("f", n), Config::default());
    let dir = folder("overshoot");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap();
    let outbox = Outbox::open(
        &client,
        &path,
        OutboxOptions::new().max_bytes(MIN_OUTBOX_BYTES),
    )
    .unwrap();
    let target = |i: usize| Target::new("c1", format!("f{i}"));
    let patch = |i: usize| count(1).user_display_name(format!("f{i} {}", "n".repeat(200)));
    let stored = (0..n)
        .take_while(|&i| outbox.enqueue(&target(i), &patch(i)).is_ok())
        .count();
    assert!(stored > 300, "{stored} reports: fewer than 4 rounds");
    let before = outbox.stats().unwrap().bytes;
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 504,
            retry_after: None,
        })
        .method("PATCH"),
    );
    let report = outbox.flush().unwrap();
    let after = outbox.stats().unwrap().bytes;
    // The bound docs/outbox.md states (the review's "one round" is not one the design can keep:
    // every round's unknown outcomes stay in doubt for requestMs, and must, or a changed value
    // could overtake a late write): past maxBytes by at most the writes in doubt, one row per
    // user status, each no larger than its pending report, so under 2 x maxBytes and SQLite's
    // spare (64 KiB).
    let bound = 2 * MIN_OUTBOX_BYTES + 64 * 1024;
    assert!(
        after <= bound,
        "maxBytes {MIN_OUTBOX_BYTES}: {before} bytes before the flush, {after} after ({} past \
         maxBytes; the documented bound is {bound}); {report:?}",
        after.saturating_sub(MIN_OUTBOX_BYTES)
    );
}

/// Was a defect (5 of the review that found it; the test keeps it fixed): an `Auth` error carries no attempt count (`Error::attempts()` is 0 for it, and
/// `set_attempts` ignores it). A write whose first request was answered 504 (Graph may still
/// apply it: an unknown outcome, by docs/outbox.md) and whose retry found no token (the network
/// that failed Graph also failed the token endpoint) comes back as `Auth` with attempts 0: the
/// flush takes it for "nothing went out" (`Outcome::NotSent`), brings back what was in doubt
/// before its claim (nothing) and makes it due at once. docs/outbox.md promises the opposite
/// ("carried by several requests of one call ... the earlier ones count as in doubt even when the
/// last was ... never written"). A changed value is then sent at once, while the 504'd write may
/// still land (end-to-end as in the probes above when Graph applies it late).
#[test]
fn a_retry_without_a_token_must_not_end_the_doubt_of_the_request_before_it() {
    const R: u64 = 1_500;
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("auth-retry");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flaky = Client::builder()
        .base_url(emu.base_url())
        .token_provider(TokenThenNone {
            good: 1,
            calls: Arc::clone(&calls),
        })
        .request_timeout(Duration::from_millis(R))
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap();
    let first = {
        let outbox = Outbox::open(&flaky, &path, OutboxOptions::new()).unwrap();
        outbox.enqueue(&u0, &count(1)).unwrap();
        emu.add_fault(
            FaultRule::next(
                1,
                Fault::Status {
                    status: 504,
                    retry_after: None,
                },
            )
            .method("PATCH"),
        );
        outbox.flush()
    };
    let tokens = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        tokens >= 2,
        "the retry asked for a token: {tokens} calls; {first:?}"
    );
    let w1 = emu.batch_items()[0].received;
    let in_doubt: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM in_doubt", [], |row| row.get(0))
        .unwrap();
    // The token is back; the value changes.
    let outbox = Outbox::open(&one_try_client(&emu, R), &path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&u0, &count(2)).unwrap();
    drain_after(&outbox, Instant::now());
    let items = emu.batch_items();
    let w2 = items.last().unwrap().received;
    assert!(
        w2 - w1 >= Duration::from_millis(R),
        "the first flush ({first:?}) left {in_doubt} writes in doubt after a 504; devicesCount 2 \
         went {:?} after the 504'd write, which may land until its record + {R} ms ({} \
         requests)",
        w2 - w1,
        items.len()
    );
}

/// Was a defect (4b of the review that found it, maxBytes, lasting; the test keeps it fixed): after a full file's flush took it past maxBytes (probe above),
/// `room::limit` cannot set SQLite's page limit back below the file's size, so once the writes in
/// doubt expire and are pruned, merges (which only the page limit bounds) fill the freed pages
/// with pending reports: the outbox holds more than maxBytes of reports, for good. docs/outbox.md
/// says the file passes maxBytes only by a round's writes in doubt, "for that transaction only".
#[test]
fn after_an_overshoot_merges_must_not_fill_the_file_past_max_bytes() {
    let n = 2_000;
    let emu = emulator_with(ids("g", n), Config::default());
    let dir = folder("sticky");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(300))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .build()
        .unwrap();
    let outbox = Outbox::open(
        &client,
        &path,
        OutboxOptions::new().max_bytes(MIN_OUTBOX_BYTES),
    )
    .unwrap();
    let target = |i: usize| Target::new("c1", format!("g{i}"));
    let patch =
        |i: usize, len: usize| count(1).user_display_name(format!("g{i} {}", "n".repeat(len)));
    let stored = (0..n)
        .take_while(|&i| outbox.enqueue(&target(i), &patch(i, 200)).is_ok())
        .count();
    // Every write a 504 (in doubt), then, once they expired, every write a 503 (certainly not
    // processed: nothing in doubt), whose records prune the expired ones.
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 504,
            retry_after: None,
        })
        .method("PATCH"),
    );
    let _ = outbox.flush();
    emu.clear_faults();
    std::thread::sleep(Duration::from_millis(400));
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 503,
            retry_after: None,
        })
        .method("PATCH"),
    );
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        let _ = outbox.flush();
    }
    let in_doubt: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM in_doubt", [], |row| row.get(0))
        .unwrap();
    // Merges that grow every report until the file refuses one.
    let mut len = 200;
    'fill: while len < 4_000 {
        len += 100;
        for i in 0..stored {
            if outbox.enqueue(&target(i), &patch(i, len)).is_err() {
                break 'fill;
            }
        }
    }
    let used = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let number = |q: &str| -> i64 { conn.query_row(q, [], |row| row.get(0)).unwrap() };
        (number("PRAGMA page_count") - number("PRAGMA freelist_count")) * number("PRAGMA page_size")
    } as u64;
    assert!(
        used <= MIN_OUTBOX_BYTES + 64 * 1024,
        "maxBytes {MIN_OUTBOX_BYTES}: {used} bytes in use by {stored} pending reports (display \
         names grown to {len} bytes) after an overshoot; {in_doubt} writes still in doubt"
    );
}

/// Was a defect (6 of the review that found it, low; the test keeps it fixed): a schema-3 file whose `in_doubt` table is missing (an operator's `sqlite3`, a
/// restore of the tables the docs list) opens without a word, and then every flush fails STORAGE
/// ("no such table"), forever: nothing is delivered again. Open should recreate it (nothing in
/// doubt is the same as schema 2's migration assumes) or refuse the file naming the table.
#[test]
fn a_file_without_its_in_doubt_table_still_flushes_or_is_refused_at_open() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("no-table");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    {
        let outbox =
            Outbox::open(&one_try_client(&emu, 1_000), &path, OutboxOptions::new()).unwrap();
        outbox.enqueue(&u0, &count(1)).unwrap();
    }
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE in_doubt")
        .unwrap();
    let Ok(outbox) = Outbox::open(&one_try_client(&emu, 1_000), &path, OutboxOptions::new()) else {
        return; // refused at open, naming why: acceptable
    };
    let flushes: Vec<_> = (0..3).map(|_| outbox.flush()).collect();
    assert!(
        flushes.iter().any(Result::is_ok) && devices(&emu, "u0") == 1,
        "every flush fails and nothing is delivered: {:?}",
        flushes.last()
    );
}

/// A write in doubt whose end a clock ten years ahead wrote: once the clock is right, a changed
/// value waits about one requestMs (the claim writes the end back as now + requestMs), not ten
/// years in requestMs steps.
#[test]
fn a_write_in_doubt_left_by_a_clock_that_ran_ahead_holds_a_changed_value_one_request_ms() {
    const R: u64 = 300;
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("ran-ahead");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    let outbox = Outbox::open(&one_try_client(&emu, R), &path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&u0, &count(1)).unwrap();
    // Applied 400 ms after it left, once the client gave up (an unknown outcome).
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(400))).method("PATCH"));
    let report = outbox.flush().unwrap();
    assert_eq!(report.retry_later, 1, "W1 times out: {report:?}");
    let ahead = unix_ms() + 10 * 365 * 86_400_000;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch(&format!("UPDATE in_doubt SET until = {ahead}"))
        .unwrap();
    outbox.enqueue(&u0, &count(2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while outbox.stats().unwrap().pending > 0 {
        assert!(
            Instant::now() < deadline,
            "the changed value is still held back 5 s on: {:?}",
            outbox.flush()
        );
        let _ = outbox.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(devices(&emu, "u0"), 2, "the newer value lands last");
}

// Writes in doubt: what the file holds while a write may still land (review18).

/// The writes in doubt the file holds now (what `kill -9` would leave): (key, until).
fn in_doubt_rows(path: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut statement = conn.prepare("SELECT key, until FROM in_doubt").unwrap();
    statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// What an agent does: flush every 50 ms until nothing is pending (bounded).
fn drain_every_50_ms(outbox: &Outbox) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox.stats().unwrap().pending > 0 {
        assert!(Instant::now() < deadline, "never drained");
        let _ = outbox.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A retry the pacing gate refuses (`Throttled`, attempts 1: the request before it) tells nothing
/// of that request: W1 {devicesCount 1} leaves, Graph gets it and the answer is lost, the retry
/// cannot pass the gate within `maxTotalMs`. The file keeps W1 in doubt (a changed value must
/// wait for it), as after any unknown outcome. (The emulator applies a lost-answer write at once,
/// so this checks the file.)
#[test]
fn a_retry_refused_at_the_gate_keeps_the_request_before_it_in_doubt() {
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("doubt-gate-throttled");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(2_000))
        .retry_policy(
            RetryPolicy::none()
                .max_retries(1)
                .base_delay(Duration::from_millis(10))
                .max_total_wait(Duration::from_millis(100)),
        )
        .pacing(intune_user_status::Pacing::new(
            1,
            Duration::from_millis(500),
        ))
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, &path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&u0, &count(1)).unwrap();
    emu.add_fault(FaultRule::next(1, Fault::LostAnswer).method("POST"));
    let report = outbox.flush().unwrap();
    let rows = in_doubt_rows(&path);
    let now = unix_ms();
    assert!(
        rows.iter()
            .any(|(key, until)| key.ends_with("/u0") && *until > now),
        "W1's answer was lost after Graph got it, yet the file holds nothing in doubt for u0: \
         {rows:?}; flush {report:?}; requests {:?}",
        emu.requests()
            .iter()
            .map(|r| (r.method.clone(), r.path().to_owned()))
            .collect::<Vec<_>>()
    );
}

/// The agent flushes every 50 ms until {devicesCount 2} went; W1 (sent at `sent_w1`, applied by
/// Graph 2.5 s after it left) lands; the agent flushes again: Graph must end with 2.
fn drain_and_let_w1_land(emu: &Emulator, outbox: &Outbox, sent_w1: Instant) {
    drain_every_50_ms(outbox);
    let sent_2 = sent_w1.elapsed();
    while sent_w1.elapsed() < Duration::from_millis(3_200) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drain_every_50_ms(outbox);
    assert_eq!(
        devices(emu, "u0"),
        2,
        "Graph ends with the older value: devicesCount 2 was applied {sent_2:?} after W1, which \
         may land until ~3 s (it did at 2.5 s); stats {:?}",
        outbox.stats().unwrap()
    );
}

/// A write in doubt keeps the window it was sent with: W1 {devicesCount 1} sent with requestMs
/// 1.5 s times out, and Graph applies it 2.5 s after it left (within its record + 1.5 s). The file
/// is reopened with requestMs 300 ms (a config change, the `ius` CLI), {devicesCount 2} is
/// enqueued and the agent flushes every 50 ms: 2 waits for W1's own end, and Graph ends with 2.
#[test]
fn a_shorter_request_ms_after_reopening_does_not_cut_a_write_in_doubt_short() {
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("doubt-cut-short");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    let sent_w1 = Instant::now();
    {
        let outbox =
            Outbox::open(&one_try_client(&emu, 1_500), &path, OutboxOptions::new()).unwrap();
        outbox.enqueue(&u0, &count(1)).unwrap();
        emu.add_fault(
            FaultRule::next(1, Fault::Latency(Duration::from_millis(2_500))).method("PATCH"),
        );
        let report = outbox.flush().unwrap();
        assert_eq!(report.retry_later, 1, "W1 times out: {report:?}");
    }
    let outbox = Outbox::open(&one_try_client(&emu, 300), &path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&u0, &count(2)).unwrap();
    drain_and_let_w1_land(&emu, &outbox, sent_w1);
}

/// A file whose `in_doubt` table predates the window each row keeps (`request_ms`) opens, gets
/// the column, and keeps its writes in doubt, read with the current `requestMs`.
#[test]
fn a_file_whose_writes_in_doubt_keep_no_window_opens_and_keeps_them() {
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("doubt-no-window");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    drop(Outbox::open(&one_try_client(&emu, 1_000), &path, OutboxOptions::new()).unwrap());
    let until = unix_ms() + 60_000;
    edit(
        &path,
        &format!(
            "DROP TABLE in_doubt;
             CREATE TABLE in_doubt (key TEXT PRIMARY KEY NOT NULL, patch TEXT NOT NULL,
                 until INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO in_doubt VALUES ('/deviceManagement/deviceConfigurations/c1/userStatuses/u0',
                 '{{\"devicesCount\":1}}', {until});"
        ),
    );
    let outbox = Outbox::open(&one_try_client(&emu, 1_000), &path, OutboxOptions::new()).unwrap();
    assert_eq!(
        read_number(
            &path,
            "SELECT count(*) FROM pragma_table_info('in_doubt') WHERE name = 'request_ms'"
        ),
        1
    );
    outbox.enqueue(&u0, &count(2)).unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!(
        (report.sent, emu.wire_requests().len()),
        (0, 0),
        "held back: {report:?}"
    );
    let left = report.next_attempt_in.expect("pending");
    assert!(
        left <= Duration::from_millis(1_250) && left > Duration::from_millis(500),
        "read with the current requestMs (+ 250 ms of departure slack): {left:?}"
    );
}

/// Flushes `outbox` on a thread until `requests` requests are on the wire (the one of interest
/// left last), reads what the file holds in doubt for `id` then (what a kill leaves while it is
/// in flight), and checks that the end is at least when it left + `request_ms`.
fn assert_in_doubt_after_it_left(
    emu: &Emulator,
    outbox: &Arc<Outbox>,
    requests: usize,
    id: &str,
    request_ms: i64,
) {
    let flusher = {
        let outbox = Arc::clone(outbox);
        std::thread::spawn(move || outbox.flush())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    // A lone report goes as a PATCH or in a `$batch`: count what went on the wire.
    while emu.wire_requests().len() < requests {
        assert!(Instant::now() < deadline, "the request never left");
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = unix_ms();
    let rows = in_doubt_rows(outbox.path());
    let _ = flusher.join();
    let until = rows
        .iter()
        .filter(|(key, _)| key.ends_with(&format!("/{id}")))
        .map(|(_, until)| *until)
        .min()
        .expect("in doubt");
    assert!(
        until >= left + request_ms - 100,
        "{id}'s write left at {left} and may land until {}, but the file holds it in doubt only \
         until {until} ({} ms after it left)",
        left + request_ms,
        until - left
    );
}

/// An outbox in folder `name` whose client waits `request_ms` for a request and retries once
/// after 800 ms, with devicesCount 1 pending for u0; Graph answers its first PATCH 504 and takes
/// `latency_ms` over the next: (the outbox, its file).
fn a_504_then_a_slow_retry(
    emu: &Emulator,
    name: &str,
    request_ms: i64,
    latency_ms: u64,
) -> (Arc<Outbox>, PathBuf) {
    let path = folder(name).join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(request_ms as u64))
        .retry_policy(
            RetryPolicy::none()
                .max_retries(1)
                .base_delay(Duration::from_millis(800)),
        )
        .build()
        .unwrap();
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 504,
                retry_after: None,
            },
        )
        .method("PATCH"),
    );
    emu.add_fault(
        FaultRule::next(1, Fault::Latency(Duration::from_millis(latency_ms))).method("PATCH"),
    );
    (outbox, path)
}

/// A retry within one call (after a 504, an unknown outcome) leaves ~800 ms after the claim: the
/// file holds it in doubt until it left + requestMs before it leaves, so a kill while it is in
/// flight leaves an end true for it.
#[test]
fn the_file_holds_a_retry_within_the_call_in_doubt_for_request_ms_after_it_left() {
    const R: i64 = 1_000;
    let emu = common::emulator_with_statuses(ids("u", 1));
    let (outbox, _) = a_504_then_a_slow_retry(&emu, "doubt-retry-left", R, 2_000);
    // The retry is the second request.
    assert_in_doubt_after_it_left(&emu, &outbox, 2, "u0", R);
}

/// A retry's departure may wait for the file (another process's write holds it ~1.5 s; SQLite
/// busy-waits up to 10 s): the end it writes counts from when the retry left, not from before the
/// wait (the hook writes again after a wait that ate the slack, before its first byte goes).
#[test]
fn a_retry_whose_departure_waited_for_the_file_is_held_in_doubt_after_it_left() {
    const R: i64 = 1_000;
    let emu = common::emulator_with_statuses(ids("u", 1));
    let (outbox, path) = a_504_then_a_slow_retry(&emu, "doubt-retry-busy", R, 2_500);
    // Another connection takes the file's write lock once the first request left (the claim is
    // written), and holds it across the retry's departure (~800 ms later).
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while emu.wire_requests().is_empty() {
                assert!(Instant::now() < deadline, "the first request never left");
                std::thread::sleep(Duration::from_millis(2));
            }
            let other = rusqlite::Connection::open(&path).unwrap();
            other.busy_timeout(Duration::from_secs(5)).unwrap();
            other.execute_batch("BEGIN IMMEDIATE").unwrap();
            std::thread::sleep(Duration::from_millis(1_500));
            other.execute_batch("COMMIT").unwrap();
        });
        // The retry is the second request.
        assert_in_doubt_after_it_left(&emu, &outbox, 2, "u0", R);
    });
}

/// A token fetched for a flush's request goes out on a fresh connection of the client's own agent:
/// it carries none of the flush's requests, so it must not run the outbox's departure hook (which
/// would wait here for the busy file, and past `BUSY_TIMEOUT` turn the outbox's STORAGE error into
/// a transient AUTH one for every waiter of the token cache). The token lives 1 s (refreshed after
/// 0.5 s); the flush's batch waits ~1.5 s at the pacing gate, then needs a fresh token while
/// another connection holds the file's write lock: the token request reaches the endpoint before
/// the lock is released.
#[test]
fn a_token_fetched_for_a_flush_does_not_wait_for_the_outbox_file() {
    const R: i64 = 1_000;
    let emu = common::emulator_with_statuses(ids("u", 2));
    let login = common::RawServer::start(common::http_response(
        "200 OK",
        &[
            ("Content-Type", "application/json"),
            ("Connection", "close"),
        ],
        format!(
            r#"{{"token_type":"Bearer","expires_in":1,"access_token":"{}"}}"#,
            common::TOKEN
        )
        .as_bytes(),
    ));
    let dir = folder("token-busy-file");
    let path = dir.join("o.db");
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .credential(
            intune_user_status::ClientSecretCredential::new("contoso.onmicrosoft.com", "app", "s")
                .authority_host(&login.base_url),
        )
        .request_timeout(Duration::from_millis(R as u64))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .pacing(intune_user_status::Pacing::new(
            1,
            Duration::from_millis(1_500),
        ))
        .build()
        .unwrap();
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    // The agent's own direct update takes the pacing slot (and the first token).
    client
        .update_user_status(&Target::new("c1", "u1"), &count(5))
        .unwrap();
    assert_eq!(login.requests().len(), 1);
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || outbox.flush())
    };
    // Once the claim is written, another connection holds the write lock until well after the
    // gate opened (~1.5 s after the direct update).
    std::thread::sleep(Duration::from_millis(600));
    let other = rusqlite::Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::sleep(Duration::from_millis(1_800));
    let fetched_while_busy = login.requests().len();
    other.execute_batch("COMMIT").unwrap();
    let report = flusher.join().unwrap().unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(
        fetched_while_busy, 2,
        "the flush's token request waited for the outbox file (the departure hook ran on the \
         token endpoint's connection)"
    );
}

/// A round's first batch may wait before it leaves (here ~1.5 s at the pacing gate the agent's
/// direct update filled; a 429 hold or a token fetch alike): the file holds it in doubt until it
/// left + requestMs before it leaves.
#[test]
fn the_file_holds_a_first_batch_that_waited_at_the_gate_in_doubt_after_it_left() {
    const R: i64 = 1_000;
    let emu = common::emulator_with_statuses(ids("u", 2));
    let dir = folder("doubt-gate-left");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(R as u64))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .pacing(intune_user_status::Pacing::new(
            1,
            Duration::from_millis(1_500),
        ))
        .build()
        .unwrap();
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    // The agent's own direct update takes the pacing slot.
    client
        .update_user_status(&Target::new("c1", "u1"), &count(5))
        .unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(2_000))).method("PATCH"));
    // The flush's batch is the second request, after the direct update.
    assert_in_doubt_after_it_left(&emu, &outbox, 2, "u0", R);
}

/// A wall clock stepped forward (NTP after a resume, a VM restored) must not end a write in doubt
/// early in the process that sent it: W1 {devicesCount 1} times out (Graph applies it 2.5 s after
/// it left, within its record + requestMs 1.5 s); the clock steps forward 2 s (simulated: the
/// stored ends moved back 2 s, which is what the file then looks like against the clock);
/// {devicesCount 2} is enqueued and flushed every 50 ms. The handle's steady end holds it back
/// until W1 can no longer land: Graph ends with 2.
#[test]
fn a_clock_stepped_forward_does_not_end_a_write_in_doubt_early_in_the_same_process() {
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("doubt-forward");
    let path = dir.join("o.db");
    let u0 = Target::new("c1", "u0");
    let sent_w1 = Instant::now();
    let outbox = Outbox::open(&one_try_client(&emu, 1_500), &path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&u0, &count(1)).unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(2_500))).method("PATCH"));
    let report = outbox.flush().unwrap();
    assert_eq!(report.retry_later, 1, "W1 times out: {report:?}");
    // The wall clock steps forward 2 s: the stored end is 2 s nearer.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("UPDATE in_doubt SET until = until - 2000")
        .unwrap();
    conn.execute_batch("UPDATE pending SET next_attempt_at = next_attempt_at - 2000")
        .unwrap();
    drop(conn);
    outbox.enqueue(&u0, &count(2)).unwrap();
    drain_and_let_w1_land(&emu, &outbox, sent_w1);
}

/// The departure hook (flush.rs `departure`) cannot write the end in doubt before a request
/// leaves (an operator's `sqlite3` holds the write lock past BUSY_TIMEOUT): that request does not
/// leave, so its report is not sent, not counted in `retryLater`, not in doubt, and the flush
/// returns STORAGE. Sequence: 21 reports due; the first `$batch` (20) leaves at the claim and
/// Graph answers 600 ms later; meanwhile the lock is held 11 s, so the hook of the second
/// request (u20, leaving > 250 ms after the claim) waits 10 s and fails.
#[test]
fn a_request_the_departure_hook_kept_from_leaving_is_not_sent_nor_in_doubt() {
    let ids: Vec<String> = (0..21).map(|i| format!("u{i}")).collect();
    let emu = common::emulator_with_statuses(&ids);
    let dir = folder("departure-hook-busy");
    let path = dir.join("o.db");
    let outbox = Arc::new(
        Outbox::open(
            &builder(&emu.base_url())
                .request_timeout(Duration::from_millis(5_000))
                .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
                .build()
                .unwrap(),
            &path,
            OutboxOptions::new(),
        )
        .unwrap(),
    );
    for id in &ids {
        outbox
            .enqueue(
                &Target::new("c1", id),
                &UserStatusPatch::new().devices_count(7),
            )
            .unwrap();
    }
    emu.add_fault(FaultRule::next(
        1,
        Fault::Latency(Duration::from_millis(600)),
    ));
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || {
            let mut report = FlushReport::default();
            let flushed = outbox.flush_into(&mut report);
            (flushed, report)
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while emu.wire_requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing left");
        std::thread::sleep(Duration::from_millis(2));
    }
    // The operator's write lock, taken while the first batch waits for its answer.
    let operator = rusqlite::Connection::open(&path).unwrap();
    operator.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::sleep(Duration::from_secs(11));
    operator.execute_batch("COMMIT").unwrap();
    let (flushed, report) = flusher.join().unwrap();
    let requests = emu.wire_requests().len();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let u20_in_doubt: i64 = conn
        .query_row(
            "SELECT count(*) FROM in_doubt WHERE key LIKE '%/u20'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        matches!(flushed, Err(Error::Storage { .. })),
        "the hook's STORAGE: {flushed:?}"
    );
    assert_eq!(
        requests, 1,
        "u20's request left after all: {flushed:?} {report:?}"
    );
    assert_eq!(
        (
            report.sent,
            report.applied,
            report.retry_later,
            u20_in_doubt
        ),
        (20, 20, 0, 0),
        "u20 never left, yet: {flushed:?} {report:?}, u20 rows in doubt {u20_in_doubt}"
    );
}

/// Flushes `outbox` on a thread while another connection holds the file's write lock from 0.4 s
/// after the flush started, for `hold`, or (`None`) until the flush's call returned (12 s at most).
/// The flush's result, its report, and when its call returned (it records next: the
/// `BeforeRecord` seam) after the flush started.
fn flush_while_another_holds_the_file(
    outbox: &Arc<Outbox>,
    path: &Path,
    hold: Option<Duration>,
) -> (Result<(), Error>, FlushReport, Duration) {
    // When the flush's call returned: it records next.
    let returned = Arc::new(std::sync::Mutex::new(None));
    {
        let returned = Arc::clone(&returned);
        outbox.set_flush_seam(move |seam| {
            if seam == intune_user_status::FlushSeam::BeforeRecord {
                returned.lock().unwrap().get_or_insert_with(Instant::now);
            }
        });
    }
    let started = Instant::now();
    let flusher = {
        let outbox = Arc::clone(outbox);
        std::thread::spawn(move || {
            let mut report = FlushReport::default();
            let flushed = outbox.flush_into(&mut report);
            (flushed, report)
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    let other = rusqlite::Connection::open(path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    match hold {
        Some(hold) => std::thread::sleep(hold),
        None => {
            let give_up = started + Duration::from_secs(12);
            while returned.lock().unwrap().is_none() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    other.execute_batch("COMMIT").unwrap();
    let (flushed, report) = flusher.join().unwrap();
    let took = returned
        .lock()
        .unwrap()
        .expect("the flush recorded")
        .duration_since(started);
    (flushed, report, took)
}

/// The departure hook's wait for the file counts against the call's time budget: a request
/// that may leave only once the file can say until when it may land, while another connection
/// holds the file's write lock for longer than `totalMs`, stays back, and the call ends within
/// `totalMs`, not when the lock is released. Sequence: pacing 1 request per 1.5 s, which the
/// agent's direct update fills; the flush claims u0 at t0, and its batch waits ~1.5 s at the
/// gate; another connection holds the write lock from t0 + 0.4 s to t0 + 6 s; totalMs 2.5 s.
#[test]
fn the_departure_hooks_wait_for_the_file_ends_with_the_calls_budget() {
    let emu = common::emulator_with_statuses(ids("u", 2));
    let dir = folder("departure-budget");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(5_000))
        .total_timeout(Duration::from_millis(2_500))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .pacing(intune_user_status::Pacing::new(
            1,
            Duration::from_millis(1_500),
        ))
        .build()
        .unwrap();
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    // The agent's own direct update takes the pacing slot.
    client
        .update_user_status(&Target::new("c1", "u1"), &count(5))
        .unwrap();
    let before = emu.wire_requests().len();
    let (flushed, report, took) =
        flush_while_another_holds_the_file(&outbox, &path, Some(Duration::from_millis(5_600)));
    assert_eq!(
        emu.wire_requests().len(),
        before,
        "u0's request left: {flushed:?} {report:?}"
    );
    println!("the flush's call returned after {took:?}: {flushed:?}");
    assert!(
        took < Duration::from_millis(2_500 + 1_000),
        "the call waited for the file {took:?}, past totalMs 2.5 s: {flushed:?}"
    );
    match &flushed {
        Err(Error::Storage { reason, .. }) => {
            assert!(reason.contains("totalMs"), "{reason}")
        }
        other => panic!("the hook's STORAGE, naming the budget: {other:?}"),
    }
    assert_eq!((report.sent, report.pending), (0, 1), "{report:?}");
}

/// Was a defect (R2 of the departure hook's review; the test keeps it fixed): without
/// `timeouts.totalMs` (the default) nothing but `BUSY_TIMEOUT` (10 s) bounded the departure hook's
/// wait for the file, and after its STORAGE the bulk call sent its next envelope, which waited
/// again, far past `flushTimeMs`. Now the hook's waits end with the flush's `flushTime`, and the
/// bulk call sends nothing after the hook's STORAGE. Sequence: pacing 2 requests per 1.5 s
/// (so envelopes of 2), which the agent's direct updates fill; 6 reports due; the flush claims
/// them at t0 and its first envelope waits ~1.5 s at the gate; another connection holds the write
/// lock from t0 + 0.4 s until the flush's call returned (12 s at most); no totalMs, flushTime 3 s.
#[test]
fn the_departure_hooks_wait_for_the_file_ends_with_the_flush_time_and_ends_the_bulk_call() {
    let emu = common::emulator_with_statuses(ids("u", 8));
    let dir = folder("departure-flush-time");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(5_000))
        .retry_policy(RetryPolicy::none().base_delay(Duration::from_millis(10)))
        .pacing(intune_user_status::Pacing::new(
            2,
            Duration::from_millis(1_500),
        ))
        .build()
        .unwrap();
    let outbox = Arc::new(
        Outbox::open(
            &client,
            &path,
            OutboxOptions::new().flush_time(Duration::from_millis(3_000)),
        )
        .unwrap(),
    );
    for i in 0..6 {
        outbox
            .enqueue(&Target::new("c1", format!("u{i}")), &count(1))
            .unwrap();
    }
    // The agent's own direct updates take both pacing slots.
    for id in ["u6", "u7"] {
        client
            .update_user_status(&Target::new("c1", id), &count(5))
            .unwrap();
    }
    let before = emu.wire_requests().len();
    let (flushed, report, took) = flush_while_another_holds_the_file(&outbox, &path, None);
    println!("the flush's call returned after {took:?}: {flushed:?} {report:?}");
    assert_eq!(
        emu.wire_requests().len(),
        before,
        "an envelope left: {flushed:?} {report:?}"
    );
    assert!(
        took < Duration::from_millis(3_000 + 1_000),
        "the call waited for the file {took:?}, past flushTimeMs 3 s: {flushed:?}"
    );
    assert!(
        matches!(&flushed, Err(Error::Storage { .. })),
        "the hook's STORAGE: {flushed:?}"
    );
    assert_eq!((report.sent, report.pending), (0, 6), "{report:?}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let in_doubt: i64 = conn
        .query_row("SELECT count(*) FROM in_doubt", [], |row| row.get(0))
        .unwrap();
    assert_eq!(in_doubt, 0, "a report never sent is not in doubt");
}

/// A `$batch` whose first envelope got a 504 (an unknown outcome: Graph may apply it late) and
/// whose retry the departure hook kept back (another connection holds the file's write lock past
/// the call's budget): the hook's STORAGE counts the request that carried the reports before it,
/// so the reports stay in doubt (a changed value enqueued next waits until the 504'd envelope can
/// no longer land), the flush's error says one request carried them, and the metrics count the
/// envelope's two items as sent. Sequence: u0, u1 pending; requestMs 10 s, totalMs 2 s, one
/// retry after ~500 ms; the lock is taken once the envelope is on the wire, held 2.8 s.
#[test]
fn a_504_batch_whose_retry_the_departure_hook_kept_back_stays_in_doubt() {
    let emu = common::emulator_with_statuses(ids("u", 2));
    let dir = folder("departure-504-batch");
    let path = dir.join("o.db");
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_millis(10_000))
        .total_timeout(Duration::from_millis(2_000))
        .retry_policy(
            RetryPolicy::none()
                .max_retries(1)
                .base_delay(Duration::from_millis(500)),
        )
        .build()
        .unwrap();
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    for id in ["u0", "u1"] {
        outbox.enqueue(&Target::new("c1", id), &count(1)).unwrap();
    }
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 504,
                retry_after: None,
            },
        )
        .method("POST"),
    );
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || {
            let mut report = FlushReport::default();
            let flushed = outbox.flush_into(&mut report);
            (flushed, report)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.wire_requests().is_empty() {
        assert!(Instant::now() < deadline, "the envelope never left");
        std::thread::sleep(Duration::from_millis(2));
    }
    let other = rusqlite::Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::sleep(Duration::from_millis(2_800));
    other.execute_batch("COMMIT").unwrap();
    let (flushed, report) = flusher.join().unwrap();
    let wire = emu.wire_requests();
    assert_eq!(
        wire.iter()
            .map(|r| (r.method.as_str(), r.path().ends_with("$batch")))
            .collect::<Vec<_>>(),
        [("POST", true)],
        "one envelope, its retry kept back: {flushed:?} {report:?}"
    );
    let error = flushed.expect_err("the hook's STORAGE");
    assert!(matches!(error, Error::Storage { .. }), "{error:?}");
    assert_eq!(error.attempts(), 1, "one request carried them: {error:?}");
    assert_eq!(report.sent, 2, "{report:?}");
    // The 504'd envelope may still land: a changed value waits for it.
    for id in ["u0", "u1"] {
        outbox.enqueue(&Target::new("c1", id), &count(2)).unwrap();
    }
    let again = outbox.flush().unwrap();
    assert_eq!(
        (again.sent, emu.wire_requests().len()),
        (0, 1),
        "a changed value went out while the 504'd envelope may land: {again:?}"
    );
    assert!(
        again.next_attempt_in > Some(Duration::from_secs(5)),
        "{again:?}"
    );
    let metrics = client.metrics();
    assert_eq!(
        (
            metrics.requests[intune_user_status::Operation::Batch].sent,
            metrics.batch_items.sent
        ),
        (1, 2),
        "one envelope carried two items: {metrics:?}"
    );
}

/// What the token callback of
/// [`c_flush_whose_first_request_the_departure_hook_kept_back_reports_the_round`] works with.
struct SlowTokenThenAFailingFile {
    path: PathBuf,
    calls: std::sync::atomic::AtomicUsize,
}

/// A token that takes 400 ms (past the departure slack, 250 ms, after the claim); the first call
/// also makes the file refuse every write that extends an end in doubt, as a full disk or an
/// I/O error would, so the departure hook of the flush's first request fails.
unsafe extern "C" fn slow_token_then_a_failing_file(
    user_data: *mut std::ffi::c_void,
    buffer: *mut std::ffi::c_char,
    len: usize,
    expires: *mut i64,
) -> i32 {
    // SAFETY: `user_data` is the test's `SlowTokenThenAFailingFile`, alive for the flush.
    let state = unsafe { &*(user_data as *const SlowTokenThenAFailingFile) };
    if state
        .calls
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        let conn = rusqlite::Connection::open(&state.path).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER the_disk_is_full BEFORE UPDATE OF until ON in_doubt
             WHEN NEW.until > OLD.until BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(400));
    let token = TOKEN.as_bytes();
    assert!(token.len() < len);
    // SAFETY: the library's buffer holds `len` bytes, all zero: the token and its NUL fit.
    unsafe {
        std::ptr::copy_nonoverlapping(token.as_ptr(), buffer as *mut u8, token.len());
        *expires = 3_600;
    }
    0
}

/// The departure hook keeps back the very first request of a flush (it could not write until
/// when that request may land: here the file refuses the write): nothing was sent, the flush
/// returns STORAGE, and the round it ran is recorded (the report due as before its claim). The
/// agent (C, the CLI) still gets the report: `stoppedBy` "storage", `sent` 0, what is pending.
#[test]
fn c_flush_whose_first_request_the_departure_hook_kept_back_reports_the_round() {
    use common::c_abi::*;
    use std::ffi::{CStr, CString};
    let emu = common::emulator_with_statuses(["u0"]);
    let dir = folder("departure-hook-first");
    let path = dir.join("o.db");
    Outbox::open(
        &common::client(&emu.base_url()),
        &path,
        OutboxOptions::new(),
    )
    .unwrap()
    .enqueue(
        &Target::new("c1", "u0"),
        &UserStatusPatch::new().devices_count(1),
    )
    .unwrap();
    let state = SlowTokenThenAFailingFile {
        path: path.clone(),
        calls: Default::default(),
    };
    let config = CString::new(
        json!({"baseUrl": emu.base_url(), "timeouts": {"requestMs": 1000},
               "retry": {"maxRetries": 0, "baseDelayMs": 10}})
        .to_string(),
    )
    .unwrap();
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let (mut client, mut outbox) = (std::ptr::null_mut(), std::ptr::null_mut());
    let (mut report, mut error) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: valid NUL-terminated inputs, writable outputs, `state` outlives the client; each
    // string freed once.
    let (status, report_json, error_json) = unsafe {
        assert_eq!(
            ius_client_new_with_token_callback(
                config.as_ptr(),
                Some(slow_token_then_a_failing_file),
                &state as *const SlowTokenThenAFailingFile as *mut std::ffi::c_void,
                &mut client,
                &mut error,
            ),
            0
        );
        assert_eq!(
            ius_outbox_open(
                client,
                c_path.as_ptr(),
                std::ptr::null(),
                &mut outbox,
                &mut error
            ),
            0
        );
        let status = ius_outbox_flush(outbox, &mut report, &mut error);
        let read = |s: *mut std::ffi::c_char| {
            (!s.is_null()).then(|| CStr::from_ptr(s).to_string_lossy().into_owned())
        };
        let (r, e) = (read(report), read(error));
        ius_string_free(report);
        ius_string_free(error);
        ius_outbox_free(outbox);
        ius_client_free(client);
        (status, r, e)
    };
    assert_eq!(status, 8, "IUS_STATUS_STORAGE: {error_json:?}");
    assert!(
        emu.wire_requests().is_empty(),
        "the request left: {error_json:?}"
    );
    // Seen failing before the fix: status 8 (STORAGE), report NULL.
    let report_json = report_json.unwrap_or_else(|| {
        panic!("no report JSON for the round the flush ran: error {error_json:?}")
    });
    let value: Value = serde_json::from_str(&report_json).unwrap();
    assert_eq!(
        (&value["stoppedBy"], &value["sent"], &value["pending"]),
        (&json!("storage"), &json!(0), &json!(1)),
        "{report_json}"
    );
    assert_eq!(
        value["nextAttemptInSeconds"].as_f64(),
        Some(0.0),
        "due as before its claim: {report_json}"
    );
}

/// An outbox at `path` whose client's own pacing gate lets 1 request a second through and whose
/// calls wait 100 ms at most in all (`retry.maxTotalMs`), so a retry meets the gate and is
/// refused; {devicesCount 1} to u0 pending.
fn paced_with_one_pending(client: intune_user_status::ClientBuilder, path: &Path) -> Outbox {
    let client = client
        .request_timeout(Duration::from_millis(2_000))
        .retry_policy(
            RetryPolicy::default()
                .max_retries(2)
                .base_delay(Duration::from_millis(10))
                .max_total_wait(Duration::from_millis(100)),
        )
        .pacing(intune_user_status::Pacing::new(
            1,
            Duration::from_millis(1_000),
        ))
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    outbox
}

/// A retry the client's own pacing gate refuses after a 503 is not Graph throttling: Graph
/// answered one 503 and throttled nothing, so the flush neither stops as throttled nor holds the
/// outbox; the report waits out its backoff. The 503 keeps its rule (failure.rs never_processed:
/// Graph's front door refused it), so nothing of it is in doubt. Sequence: pacing 1 request per
/// 1 s, retry.maxTotalMs 100 ms; the PATCH gets a 503 (no Retry-After); its retry would wait
/// ~1 s at the gate.
#[test]
fn a_retry_the_own_pacing_gate_refused_after_a_503_is_not_graph_throttling() {
    let emu = common::emulator_with_statuses(["u0"]);
    let path = folder("paced-after-a-503").join("o.db");
    let outbox = paced_with_one_pending(builder(&emu.base_url()), &path);
    emu.add_fault(FaultRule::next(
        1,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    ));
    let mut report = FlushReport::default();
    let flushed = outbox.flush_into(&mut report);
    let stats = outbox.stats().unwrap();
    assert_eq!(emu.throttled_count(), 0, "Graph throttled nothing");
    assert_eq!(emu.wire_requests().len(), 1, "the retry left: {report:?}");
    assert!(
        report.stopped_by != Some(FlushStop::Throttled) && stats.held_until.is_none(),
        "Graph answered one 503, yet: {flushed:?} {report:?}, heldUntil {:?}",
        stats.held_until
    );
    assert_eq!(
        (report.sent, report.retry_later, stats.pending),
        (1, 1, 1),
        "the 503'd report is retried later: {report:?}"
    );
    assert!(in_doubt_rows(&path).is_empty(), "a 503 was not processed");
}

/// As above, with the 503 inside the `$batch` (the envelope answered 200): the scheduler queues
/// the item's retry (`Retry-After: 0.05`, within the budget) and its next envelope is refused at
/// the client's own pacing gate (1 request per second, the call's waits capped at 100 ms). Graph
/// throttled nothing: the item's error is Graph's 503 saying the gate stopped its retry, the
/// flush does not stop as throttled and holds nothing, so the next flush is not refused for a
/// hold.
#[test]
fn an_inner_503_whose_retry_the_own_pacing_gate_refused_neither_throttles_nor_holds() {
    let emu = common::emulator_with_statuses(["u0"]);
    let path = folder("paced-after-an-inner-503").join("o.db");
    let outbox = paced_with_one_pending(builder(&emu.base_url()), &path);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("0.05".into()),
            },
        )
        .method("PATCH"),
    );
    let mut report = FlushReport::default();
    let flushed = outbox.flush_into(&mut report);
    let stats = outbox.stats().unwrap();
    assert_eq!(
        emu.wire_requests().len(),
        1,
        "the retry was refused at the gate"
    );
    assert_eq!(emu.batch_items().len(), 1, "{report:?}");
    // Seen failing before the fix: stoppedBy throttled, heldUntil set, the error THROTTLED.
    assert!(
        flushed.is_ok()
            && report.stopped_by != Some(FlushStop::Throttled)
            && stats.held_until.is_none(),
        "Graph answered one inner 503, yet: {flushed:?} {report:?}, heldUntil {:?}",
        stats.held_until
    );
    assert_eq!(
        (report.sent, report.retry_later, stats.pending),
        (1, 1, 1),
        "the 503'd report is retried later: {report:?}"
    );
    let last_error: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT last_error FROM pending", [], |row| row.get(0))
        .unwrap();
    assert!(
        last_error.contains("503") && last_error.contains("own pacing gate"),
        "the report's error: {last_error}"
    );
    // Once its Retry-After has passed, the next flush meets no hold (at most the gate again).
    std::thread::sleep(Duration::from_millis(60));
    let next = outbox.flush().unwrap();
    assert_ne!(next.stopped_by, Some(FlushStop::Held), "{next:?}");
}

/// A request delayed by a slow proxy CONNECT is in doubt from when it left, not from the claim:
/// the departure hook runs again once the connection is made, so a kill while it is in flight
/// leaves an end of at least its leaving + `requestMs`. Sequence: one report claimed at t0, the
/// proxy answers CONNECT 2 s later, the PATCH reaches Graph at ~t0 + 2 s and is answered 3 s
/// later; the file is read while it is in flight.
#[test]
fn a_request_delayed_by_a_slow_proxy_connect_is_in_doubt_from_when_it_left() {
    let emu = Emulator::start(Config {
        token: Some(TOKEN.into()),
        tls: Some(common::proxied_tls()),
        seed: vec![SeedEntry {
            collection: DIRECT.into(),
            entity: json!({ "id": "u0", "devicesCount": 0 }),
        }],
        ..Config::default()
    })
    .unwrap();
    let client = builder(&common::proxied_url("graph.proxied.test", &emu))
        .proxy(slow_connect_proxy(Duration::from_secs(2)))
        .extra_root_certificates_pem(common::TEST_CA)
        .request_timeout(Duration::from_millis(5_000))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let dir = folder("slow-connect");
    let path = dir.join("o.db");
    let outbox = Arc::new(Outbox::open(&client, &path, OutboxOptions::new()).unwrap());
    outbox
        .enqueue(
            &Target::new("c1", "u0"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    // Graph answers 3 s after the request arrived, so it is in flight when the file is read.
    emu.add_fault(FaultRule::next(
        1,
        Fault::Latency(Duration::from_millis(3_000)),
    ));
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || outbox.flush())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while emu.wire_requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never left"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = unix_ms();
    // What a kill leaves now.
    let until: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT max(until) FROM in_doubt", [], |row| row.get(0))
        .unwrap();
    let flushed = flusher.join().unwrap();
    assert!(
        until >= left + 5_000 - 300,
        "the PATCH reached Graph at {left} and may land until {}, but the file holds it in \
         doubt only until {until} ({} ms short): {flushed:?}",
        left + 5_000,
        left + 5_000 - until
    );
}

/// A loopback HTTP proxy that answers each `CONNECT` only after `delay` (a slow or far proxy, a
/// captive network), then tunnels `*.test` hosts to loopback: (its URL).
fn slow_connect_proxy(delay: Duration) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            std::thread::spawn(move || {
                let mut writer = client.try_clone().unwrap();
                let mut reader = BufReader::new(client);
                let mut first = String::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if first.is_empty() {
                        first = line.clone();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let port = first
                    .split(' ')
                    .nth(1)
                    .and_then(|t| t.rsplit_once(':'))
                    .unwrap()
                    .1;
                std::thread::sleep(delay);
                let upstream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
                writer
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let mut up_writer = upstream.try_clone().unwrap();
                let mut up_reader = upstream;
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = up_reader.read(&mut buf) {
                        if n == 0 || writer.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                let mut client_reader = reader.into_inner();
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = client_reader.read(&mut buf) {
                    if n == 0 || up_writer.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}

/// A build from before each write in doubt kept its window (rolled back, then forward) writes an
/// end with its own requestMs (30 s) and leaves the column as the newer build's earlier write set
/// it (1 s): the window read is the longer of the column and the current requestMs, so the
/// changed value waits for the older build's write (seen failing: held back only 1.244 s).
#[test]
fn an_older_builds_write_in_doubt_keeps_its_own_window_after_a_roll_forward() {
    let emu = emulator_with(ids("u", 1), Config::default());
    let dir = folder("older-build");
    let path = dir.join("o.db");
    // The newer build, requestMs 1 s, once sent a write for u0 whose end has passed (not pruned).
    drop(Outbox::open(&one_try_client(&emu, 1_000), &path, OutboxOptions::new()).unwrap());
    let now = unix_ms();
    edit(
        &path,
        &format!(
            "INSERT INTO in_doubt (key, patch, until, request_ms)
                 VALUES ('/deviceManagement/deviceConfigurations/c1/userStatuses/u0', '{{\"devicesCount\":0}}', {}, 1000);",
            now - 5_000
        ),
    );
    // The older build (rolled back, requestMs 30 s): its {devicesCount 1} timed out; it records
    // it with its own statement (010b5da src/outbox/in_doubt.rs `set`).
    let older_until = unix_ms() + 30_000;
    edit(
        &path,
        &format!(
            "INSERT INTO in_doubt (key, patch, until) VALUES ('/deviceManagement/deviceConfigurations/c1/userStatuses/u0', '{{\"devicesCount\":1}}', {older_until})
             ON CONFLICT (key) DO UPDATE SET patch = excluded.patch, until = excluded.until;"
        ),
    );
    // Rolled forward, requestMs 30 s again.
    let outbox = Outbox::open(&one_try_client(&emu, 30_000), &path, OutboxOptions::new()).unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "u0"),
            &UserStatusPatch::new().devices_count(2),
        )
        .unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!(report.sent, 0, "2 went out at once: {report:?}");
    let left = report.next_attempt_in.expect("pending");
    assert!(
        left >= Duration::from_secs(25),
        "2 is held back only {left:?}, though the older build's 1 may land for ~30 s"
    );
}

/// W1 {devicesCount 1} to u0 leaves through a handle of `path` (requestMs 1.5 s); Graph holds it
/// 2.5 s, so it times out and lands 2.5 s after it left. The handle, and when W1 left.
fn w1_in_doubt(emu: &Emulator, path: &Path) -> (Outbox, Instant) {
    let sent_w1 = Instant::now();
    let outbox = Outbox::open(&one_try_client(emu, 1_500), path, OutboxOptions::new()).unwrap();
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(2_500))).method("PATCH"));
    let report = outbox.flush().unwrap();
    assert_eq!(report.retry_later, 1, "W1 times out: {report:?}");
    (outbox, sent_w1)
}

/// The wall clock steps forward 2 s: every stored end and next attempt is 2 s nearer. `also`
/// runs in the same transaction.
fn step_forward_2s(path: &Path, also: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         UPDATE in_doubt SET until = until - 2000;
         UPDATE pending SET next_attempt_at = next_attempt_at - 2000;
         {also}
         COMMIT;"
    ))
    .unwrap();
}

/// A forward step while another user status's request is in flight: W1 {devicesCount 1} to u0
/// is in doubt; {devicesCount 2} for u0 is held back behind it, and a flush sends u1's report,
/// which Graph holds 600 ms. The wall clock steps forward 2 s meanwhile, so the end stored for W1
/// has passed when that flush records u1's outcome (its prune runs). The handle's steady end
/// still holds: 2 waits until W1 can no longer land, and Graph ends with 2.
#[test]
fn a_clock_stepped_forward_while_another_report_is_sent_does_not_end_a_write_in_doubt_early() {
    let emu = common::emulator_with_statuses(ids("u", 2));
    let dir = folder("doubt-forward-mid-flush");
    let path = dir.join("o.db");
    let (outbox, sent_w1) = w1_in_doubt(&emu, &path);
    let outbox = Arc::new(outbox);
    outbox.enqueue(&Target::new("c1", "u0"), &count(2)).unwrap();
    outbox.enqueue(&Target::new("c1", "u1"), &count(5)).unwrap();
    emu.add_fault(FaultRule::next(1, Fault::Latency(Duration::from_millis(600))).method("PATCH"));
    let flusher = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || outbox.flush())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while emu.wire_requests().len() < 2 {
        assert!(Instant::now() < deadline, "u1's report never left");
        std::thread::sleep(Duration::from_millis(2));
    }
    step_forward_2s(&path, "");
    let report = flusher.join().unwrap().unwrap();
    assert_eq!(
        (report.sent, report.applied),
        (1, 1),
        "u1 alone: {report:?}"
    );
    // On disk too (a kill now keeps it): W1's row was given its steady end, not pruned.
    let until: Option<i64> = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT until FROM in_doubt WHERE key LIKE '%/u0'",
            [],
            |row| row.get(0),
        )
        .ok();
    assert!(
        until.is_some_and(|until| until > unix_ms() + 300),
        "W1 may land until ~0.9 s from now; its row ends {until:?}"
    );
    drain_and_let_w1_land(&emu, &outbox, sent_w1);
}

/// Another process's record prunes W1's row once a forward step made its stored end pass (that
/// process cannot know this one's steady end). The process that sent W1 still knows it: a changed
/// value waits for it, though the file no longer names W1's patch, and Graph ends with 2.
#[test]
fn a_write_in_doubt_another_process_pruned_after_a_forward_step_still_holds_a_change_back() {
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("doubt-forward-pruned");
    let path = dir.join("o.db");
    let (outbox, sent_w1) = w1_in_doubt(&emu, &path);
    step_forward_2s(&path, "DELETE FROM in_doubt;");
    outbox.enqueue(&Target::new("c1", "u0"), &count(2)).unwrap();
    drain_and_let_w1_land(&emu, &outbox, sent_w1);
}

/// The steady ends are the process's, per file: a handle that sent W1 is freed, the wall clock
/// steps forward 2 s, and the file is opened again (through another spelling of its path), as an
/// agent that opens, flushes and frees its outbox each cycle does. {devicesCount 2} still waits
/// for W1, and Graph ends with 2.
#[test]
fn a_clock_stepped_forward_does_not_end_a_write_in_doubt_early_for_the_next_handle_of_the_file() {
    let emu = common::emulator_with_statuses(ids("u", 1));
    let dir = folder("doubt-forward-reopened");
    let path = dir.join("o.db");
    let (outbox, sent_w1) = w1_in_doubt(&emu, &path);
    drop(outbox);
    step_forward_2s(&path, "");
    let name = dir.file_name().unwrap();
    let again = dir.join("..").join(name).join(".").join("o.db");
    let outbox = Outbox::open(&one_try_client(&emu, 1_500), &again, OutboxOptions::new()).unwrap();
    outbox.enqueue(&Target::new("c1", "u0"), &count(2)).unwrap();
    drain_and_let_w1_land(&emu, &outbox, sent_w1);
}

/// Was a defect (F3 of the departure hook's review; the test keeps it fixed): the pipeline
/// follows a redirect itself, and the second hop, on the pooled connection, left with the first
/// hop's end (the hook ran before hop 1 and once a fresh connection was made). Graph answers
/// every request 1 s late, hop 1 of the `$batch` with a 307 to the same URL; requestMs 3 s: hop 2 leaves ~1 s
/// after the claim, and the file must hold u0 in doubt until at least hop 2 left + requestMs.
/// (Seen failing: held only 2.2 s after hop 2 left.)
#[test]
fn a_redirect_hop_on_the_pooled_connection_is_held_in_doubt_for_request_ms_after_it_left() {
    const R: i64 = 3_000;
    let emu = emulator_with(
        ids("u", 1),
        Config {
            latency: Duration::from_millis(1_000),
            ..Config::default()
        },
    );
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Redirect {
                status: 307,
                location: "/beta/$batch".into(),
            },
        )
        .path_contains("/$batch"),
    );
    let path = folder("doubt-redirect-hop").join("o.db");
    let outbox = Arc::new(
        Outbox::open(&one_try_client(&emu, R as u64), &path, OutboxOptions::new()).unwrap(),
    );
    outbox.enqueue(&Target::new("c1", "u0"), &count(1)).unwrap();
    // Hop 2 is the second request on the wire.
    assert_in_doubt_after_it_left(&emu, &outbox, 2, "u0", R);
    assert_eq!(
        emu.connections_accepted(),
        1,
        "hop 2 went on the pooled connection (else this proves nothing)"
    );
    assert_eq!(devices(&emu, "u0"), 1, "hop 2 was applied");
    let paths: Vec<String> = emu
        .wire_requests()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(paths, ["/beta/$batch", "/beta/$batch"], "hop 1 and hop 2");
}

/// A resend after Graph's 401 that the client's own pacing gate refused never tried the fresh
/// token: the credentials were not refused. The flush neither stops for refused credentials
/// (`auth`, its backoff on the whole outbox) nor logs that WARN; the report is retried later, and
/// the 401 (not processed) leaves nothing in doubt. Sequence: a token provider that hands a new
/// token after each invalidation, pacing 1 request per 1 s, the call's waits capped at 100 ms; the
/// `$batch` envelope gets one 401. (Seen failing before failure.rs read `retryStopped`: stoppedBy
/// `auth` and the WARN.)
#[test]
fn a_401_whose_fresh_token_resend_the_own_pacing_gate_refused_refuses_no_credentials() {
    warnings();
    let emu = common::emulator_with_statuses(["u0"]);
    let path = folder("paced-after-a-401").join("o.db");
    let client = Client::builder()
        .base_url(emu.base_url())
        .token_provider(common::Rotating::default());
    let outbox = paced_with_one_pending(client, &path);
    emu.add_fault(FaultRule::next(
        1,
        Fault::Status {
            status: 401,
            retry_after: None,
        },
    ));
    let mut report = FlushReport::default();
    let flushed = outbox.flush_into(&mut report);
    assert_eq!(emu.wire_requests().len(), 1, "the resend left: {report:?}");
    assert!(
        report.stopped_by != Some(FlushStop::Auth),
        "the fresh token was never tried, yet: {flushed:?} {report:?}"
    );
    let refused: Vec<String> = warnings()
        .into_iter()
        .filter(|line| line.contains("paced-after-a-401"))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(
        (
            report.sent,
            report.retry_later,
            outbox.stats().unwrap().pending
        ),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(in_doubt_rows(&path).is_empty(), "a 401 was not processed");
}
