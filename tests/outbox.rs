//! The durable outbox against the emulator: merging, skipping, offline and throttled flushes, the
//! failed list, bounds, bad files, threads, processes and `kill -9`.
#![cfg(feature = "outbox")]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TOKEN, builder};
use intune_user_status::{
    ApiVersion, BulkItem, Client, ComplianceStatus, Enqueued, Error, MIN_OUTBOX_BYTES, Outbox,
    OutboxOptions, RetryPolicy, Route, Target, UserStatusPatch,
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
    let client = common::client(&format!("http://{addr}"));
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
    // The client's backoff (10 ms in tests, doubling per failed flush) has passed by now.
    std::thread::sleep(Duration::from_millis(200));
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
    // Retry-After beyond the client's one-wait limit: the call gives up at once, and the client's
    // hold after that 429 outlasts the calls' budget, so the rest give up without sending.
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::default().max_delay(Duration::from_secs(1)))
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
        let next = report.next_attempt_in.unwrap() + started.elapsed();
        let (low, high) = (nominal * 8 / 10, nominal * 12 / 10 + 50);
        assert!(
            next >= Duration::from_millis(low) && next <= Duration::from_millis(high),
            "{next:?} outside {low}..{high} ms"
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
    let flusher = {
        let outbox = Arc::clone(&outbox);
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
        Error::Storage { path, reason } => (path, reason),
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
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 2;")
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
    assert_eq!(version, 1);
    drop(conn);
    let report = open(&client, &path).flush().unwrap();
    assert_eq!(report.applied, 1);
    assert_eq!(devices(&emu, "u0"), 4);
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
    // Two handles on the file flush at once: the second waits, then finds nothing due.
    let second = Arc::new(open(&client, &path));
    let flushes: Vec<_> = [Arc::clone(&outbox), second]
        .into_iter()
        .map(|outbox| std::thread::spawn(move || outbox.flush().unwrap()))
        .collect();
    let reports: Vec<_> = flushes.into_iter().map(|f| f.join().unwrap()).collect();
    assert_eq!(
        reports.iter().map(|r| r.applied).sum::<u64>(),
        40,
        "{reports:?}"
    );
    assert_eq!(patches(&emu).len(), 40, "every target sent exactly once");
    for t in 0..40 {
        assert_eq!(devices(&emu, &format!("t{t}")), 5);
    }
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

/// The child process: `enqueue` writes `IUS_OUTBOX_COUNT` values for targets `PREFIX0..` and
/// exits; `agent` enqueues increasing values for 50 targets and flushes every 10, forever, printing
/// `enqueued ID VALUE` after each enqueue returns OK; `fulldisk` is [`fill_the_disk`].
#[test]
#[ignore = "a child process of the process and kill tests"]
fn child() {
    let Ok(mode) = std::env::var("IUS_OUTBOX_CHILD") else {
        return;
    };
    use std::io::Write;
    let var = |name: &str| std::env::var(name).unwrap();
    let client = common::client(&var("IUS_OUTBOX_URL"));
    let outbox = open(&client, Path::new(&var("IUS_OUTBOX_PATH")));
    let mut out = std::io::stdout();
    match mode.as_str() {
        "enqueue" => {
            let prefix = var("IUS_OUTBOX_PREFIX");
            for round in 1..=var("IUS_OUTBOX_COUNT").parse::<i32>().unwrap() {
                for t in 0..10 {
                    outbox
                        .enqueue(&Target::new("c1", format!("{prefix}{t}")), &count(round))
                        .unwrap();
                }
            }
        }
        "agent" => {
            let mut value: i32 = var("IUS_OUTBOX_START").parse().unwrap();
            loop {
                for t in 0..50 {
                    let id = format!("k{t}");
                    outbox
                        .enqueue(&Target::new("c1", &id), &count(value))
                        .unwrap();
                    writeln!(out, "enqueued {id} {value}").unwrap();
                    out.flush().unwrap();
                    value += 1;
                    if t % 10 == 9 {
                        let _ = outbox.flush();
                    }
                }
            }
        }
        #[cfg(unix)]
        "fulldisk" => fill_the_disk(&outbox, Path::new(&var("IUS_OUTBOX_PATH"))),
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn two_processes_enqueue_into_one_file_while_a_third_flushes() {
    let emu = emulator_with(
        ids("a", 10).into_iter().chain(ids("b", 10)),
        Config::default(),
    );
    let dir = folder("processes");
    let path = dir.join("outbox.db");
    let client = common::client(&emu.base_url());
    let outbox = open(&client, &path);
    let mut children: Vec<_> = ["a", "b"]
        .iter()
        .map(|prefix| {
            spawn_child(
                "enqueue",
                &emu.base_url(),
                &path,
                &[
                    ("IUS_OUTBOX_PREFIX", (*prefix).into()),
                    ("IUS_OUTBOX_COUNT", "20".into()),
                ],
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flushes = 0;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert!(Instant::now() < deadline, "the children did not finish");
        outbox.flush().unwrap();
        flushes += 1;
    }
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    let report = outbox.flush().unwrap();
    assert_eq!(report.pending, 0);
    assert!(flushes > 0);
    for id in ids("a", 10).into_iter().chain(ids("b", 10)) {
        assert_eq!(devices(&emu, &id), 20, "{id}");
    }
}

/// A small PRNG for kill moments; the seed is printed so a failure can be replayed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill_9_at_random_moments_loses_no_enqueue_that_returned_ok() {
    let emu = emulator_with(ids("k", 50), Config::default());
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
    let mut last_ok: HashMap<String, i64> = HashMap::new();
    for run in 0..20 {
        let start = run * 100_000 + 1;
        let mut child = spawn_child(
            "agent",
            &emu.base_url(),
            &path,
            &[("IUS_OUTBOX_START", start.to_string())],
        );
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The random moment counts from the first enqueue: a process may take longer than the
        // longest delay to start (under Wine, on a loaded machine, it did).
        let first = lines.next().and_then(Result::ok);
        let reader = std::thread::spawn(move || {
            first
                .into_iter()
                .chain(lines.map_while(Result::ok))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(20 + next_random(&mut seed) % 230));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            let mut parts = line.split(' ');
            if parts.next() == Some("enqueued") {
                let (id, value) = (parts.next().unwrap(), parts.next().unwrap());
                last_ok.insert(id.to_owned(), value.parse().unwrap());
            }
        }
    }
    assert!(
        last_ok.len() >= 10,
        "the children made progress: {}",
        last_ok.len()
    );
    let outbox = open(&common::client(&emu.base_url()), &path);
    let report = outbox.flush().unwrap();
    assert_eq!(report.pending, 0, "{report:?}");
    assert!(outbox.take_failed().unwrap().is_empty());
    for (id, value) in &last_ok {
        let held = devices(&emu, id);
        assert!(
            held >= *value,
            "{id}: Graph holds {held}, the last OK enqueue was {value}"
        );
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
    let err = outbox.flush().unwrap_err();
    assert!(err.auth().is_some(), "{err}");
    assert!(emu.requests().is_empty(), "nothing reached Graph");
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.pending, stats.failed), (2, 0));
    // Still due: the next flush with a working token sends them.
    let outbox = open(&common::client(&emu.base_url()), &dir.join("outbox.db"));
    assert_eq!(outbox.flush().unwrap().applied, 2);
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
        Err(Error::Storage { path, reason }) => format!("storage {what}\t{path}\t{reason}"),
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
#[cfg(unix)]
fn rows(path: &Path) -> (HashMap<String, Value>, HashMap<String, Value>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let read = |sql: &str| {
        let mut statement = conn.prepare(sql).unwrap();
        statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(|row| {
                let (key, patch) = row.unwrap();
                let id = key.rsplit('/').next().unwrap().to_owned();
                (id, serde_json::from_str(&patch).unwrap())
            })
            .collect::<HashMap<String, Value>>()
    };
    (
        read("SELECT key, patch FROM pending"),
        read("SELECT key, fields FROM acknowledged"),
    )
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
    // The flush's writes reached Graph; only its bookkeeping failed, so they are still pending
    // (and sent again: PATCH is idempotent), and the acknowledged state is the last good flush's.
    assert_eq!(devices(&emu, "d0"), 2);
    let ones = (0..5).map(|i| (format!("d{i}"), json!({"devicesCount": 1})));
    assert_eq!(acknowledged, ones.collect());

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
