//! What an operator does with an agent's outbox file: look at it without writing it
//! ([`OutboxReader`]), read the failed list and keep it ([`Outbox::failed`]), and move it back to
//! pending ([`Outbox::requeue_failed`]), against the emulator.
#![cfg(feature = "outbox")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use intune_user_status::{Error, Outbox, OutboxOptions, OutboxReader, Target, UserStatusPatch};
use ius_emulator::Emulator;
use serde_json::{Value, json};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

fn emulator_with<I: AsRef<str>>(ids: impl IntoIterator<Item = I>) -> Emulator {
    common::emulator_with_statuses(ids)
}

fn folder(name: &str) -> PathBuf {
    common::fresh_folder("operator", name)
}

/// The file and its companions, byte for byte.
fn snapshot(path: &Path) -> Vec<Option<Vec<u8>>> {
    ["", "-wal", "-shm", "-flush"]
        .iter()
        .map(|suffix| std::fs::read(format!("{}{suffix}", path.display())).ok())
        .collect()
}

fn storage_reason(error: Error) -> String {
    match error {
        Error::Storage { reason, .. } => reason,
        other => panic!("not STORAGE: {other:?}"),
    }
}

/// PATCH bodies the emulator received for `id`.
fn patches_for(emu: &Emulator, id: &str) -> Vec<Value> {
    emu.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path().ends_with(&format!("/{id}")))
        .map(|r| serde_json::from_str(&r.body_str()).unwrap())
        .collect()
}

/// An outbox at `path` holding one 404'd report for `gone`: {userDisplayName, devicesCount 3}.
fn with_a_failed_report(emu: &Emulator, path: &Path) -> Outbox {
    let outbox =
        Outbox::open(&common::client(&emu.base_url()), path, OutboxOptions::new()).unwrap();
    let patch = UserStatusPatch::new()
        .user_display_name("Ada")
        .devices_count(3);
    outbox.enqueue(&Target::new("c1", "gone"), &patch).unwrap();
    assert_eq!(outbox.flush().unwrap().failed, 1);
    outbox
}

#[test]
fn failed_keeps_the_list_that_take_failed_removes() {
    let emu = emulator_with(std::iter::empty::<&str>());
    let dir = folder("kept");
    let outbox = with_a_failed_report(&emu, &dir.join("outbox.db"));
    let first = outbox.failed().unwrap();
    let second = outbox.failed().unwrap();
    assert_eq!(first.len(), 1);
    let json =
        |reports: &[intune_user_status::FailedReport]| serde_json::to_string(reports).unwrap();
    assert_eq!(json(&first), json(&second), "read twice, the same");
    assert_eq!(first[0].target, Target::new("c1", "gone"));
    assert_eq!(first[0].error.graph().unwrap().status, 404);
    assert_eq!(outbox.stats().unwrap().failed, 1);
    let taken = outbox.take_failed().unwrap();
    assert_eq!(json(&taken), json(&first), "what take_failed then removes");
    assert!(outbox.failed().unwrap().is_empty());
}

#[test]
fn requeued_reports_are_sent_by_the_next_flush_under_newer_pending_ones() {
    let emu = emulator_with(std::iter::empty::<&str>());
    let dir = folder("requeue");
    let outbox = with_a_failed_report(&emu, &dir.join("outbox.db"));
    // A newer report for the same user status, pending when the failed one is requeued: its
    // devicesCount wins, the failed report's name is kept.
    emu.insert_user_status(DIRECT, json!({"id": "gone", "devicesCount": 0}))
        .unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "gone"),
            &UserStatusPatch::new().devices_count(9),
        )
        .unwrap();
    emu.clear_requests();
    assert_eq!(outbox.requeue_failed().unwrap(), 1);
    assert!(emu.requests().is_empty(), "requeueing sends nothing");
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.pending, stats.failed), (1, 0), "{stats:?}");
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.applied, report.failed), (1, 1, 0));
    assert_eq!(
        patches_for(&emu, "gone"),
        [json!({"userDisplayName": "Ada", "devicesCount": 9})]
    );
    assert_eq!(outbox.requeue_failed().unwrap(), 0, "nothing left to move");
}

#[test]
fn a_requeue_beyond_the_bounds_moves_nothing() {
    let emu = emulator_with(["u0"]);
    let dir = folder("bounds");
    let path = dir.join("outbox.db");
    drop(with_a_failed_report(&emu, &path));
    let outbox = Outbox::open(
        &common::client(&emu.base_url()),
        &path,
        OutboxOptions::new().max_pending(1),
    )
    .unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "u0"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    let before = serde_json::to_string(&outbox.failed().unwrap()).unwrap();
    match outbox.requeue_failed() {
        Err(Error::OutboxFull { reason }) => assert!(reason.contains("maxPending"), "{reason}"),
        other => panic!("not OUTBOX_FULL: {other:?}"),
    }
    assert_eq!(
        serde_json::to_string(&outbox.failed().unwrap()).unwrap(),
        before
    );
    assert_eq!(outbox.stats().unwrap().pending, 1);
}

#[test]
fn a_reader_sees_what_an_open_outbox_wrote_and_never_writes_the_file() {
    let emu = emulator_with(std::iter::empty::<&str>());
    let dir = folder("reader");
    let path = dir.join("outbox.db");
    let outbox = with_a_failed_report(&emu, &path);
    outbox
        .enqueue(
            &Target::new("c1", "u1"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    // The agent still has the file open: its last writes may be in the WAL only.
    let main_file = std::fs::read(&path).unwrap();
    let reader = OutboxReader::open(&path).unwrap();
    let stats = reader.stats().unwrap();
    let mut own = outbox.stats().unwrap();
    // Read a moment apart: the oldest report's age grows by the milliseconds between the two.
    let (read, later) = (stats.oldest_pending.unwrap(), own.oldest_pending.unwrap());
    assert!(
        read <= later && later - read < Duration::from_secs(1),
        "{read:?} then {later:?}"
    );
    own.oldest_pending = stats.oldest_pending;
    assert_eq!(stats, own);
    assert_eq!((stats.pending, stats.failed), (1, 1));
    assert_eq!(
        serde_json::to_string(&reader.failed().unwrap()).unwrap(),
        serde_json::to_string(&outbox.failed().unwrap()).unwrap()
    );
    drop(reader);
    assert_eq!(std::fs::read(&path).unwrap(), main_file, "not written");
}

#[test]
fn a_reader_refuses_older_missing_and_foreign_files_and_leaves_them_as_they_were() {
    let dir = folder("refused");
    let older = dir.join("schema-1.db");
    rusqlite::Connection::open(&older)
        .unwrap()
        .execute_batch(include_str!("fixtures/outbox-schema-1.sql"))
        .unwrap();
    let before = snapshot(&older);
    let reason = storage_reason(OutboxReader::open(&older).unwrap_err());
    assert!(
        reason.contains("schema 1") && reason.contains("not migrated"),
        "{reason}"
    );
    assert_eq!(snapshot(&older), before, "unchanged, companions included");
    let version: i64 = rusqlite::Connection::open(&older)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);

    let missing = dir.join("missing.db");
    let reason = storage_reason(OutboxReader::open(&missing).unwrap_err());
    assert!(reason.contains("cannot be read"), "{reason}");
    assert!(!missing.exists(), "not created");
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let reason = storage_reason(OutboxReader::open(&empty).unwrap_err());
    assert!(reason.contains("empty"), "{reason}");
    let other = dir.join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x);")
        .unwrap();
    let reason = storage_reason(OutboxReader::open(&other).unwrap_err());
    assert!(reason.contains("not an outbox"), "{reason}");
}

/// The flush report JSON's `stoppedBy`.
fn stopped_by(report: &intune_user_status::FlushReport) -> Value {
    serde_json::to_value(report).unwrap()["stoppedBy"].clone()
}

/// Credentials Graph refuses for good (every request 401, the token fixed): the flush stops after
/// its first batch and says why (`stoppedBy` "auth"), logs it at WARN without the token, counts
/// it in the client's metrics, and the hold it leaves shows in the stats until an operator clears
/// it; then the next flush sends at once.
#[test]
fn a_flush_whose_credentials_are_refused_says_why_warns_and_holds_until_cleared() {
    const REFUSED: &str = "refused-token-7c1d9e";
    let logs = common::capture_logs();
    let emu = emulator_with(["a", "b", "c"]);
    let dir = folder("auth-refused");
    let path = dir.join("outbox.db");
    // A backoff of a second or two: the hold (the batch's longest) outlasts the checks below.
    let client = common::builder(&emu.base_url())
        .access_token(REFUSED)
        .retry_policy(intune_user_status::RetryPolicy::default().base_delay(Duration::from_secs(1)))
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, &path, OutboxOptions::new()).unwrap();
    for id in ["a", "b", "c"] {
        outbox
            .enqueue(
                &Target::new("c1", id),
                &UserStatusPatch::new().devices_count(1),
            )
            .unwrap();
    }
    let report = outbox.flush().unwrap();
    assert_eq!((report.sent, report.retry_later), (3, 3), "{report:?}");
    assert_eq!(
        report.stopped_by,
        Some(intune_user_status::FlushStop::Auth),
        "{report:?}"
    );
    assert_eq!(stopped_by(&report), "auth");
    let text = logs.text();
    let warned: Vec<_> = text
        .lines()
        .filter(|line| {
            // This test's file, whatever the platform's separator (the log is shared).
            line.contains(&format!("refused{}outbox.db", std::path::MAIN_SEPARATOR))
                && line.contains("credentials were refused")
        })
        .collect();
    assert_eq!(warned.len(), 1, "one WARN line: {text}");
    assert!(
        warned[0].starts_with("WARN ") && warned[0].contains("3 reports pending"),
        "{text}"
    );
    assert!(!text.contains(REFUSED), "no token in the logs: {text}");
    assert_eq!(
        client.metrics().flushes_stopped[intune_user_status::FlushStop::Auth],
        1
    );
    // The hold is in force: the stats say until when, and the next flush sends nothing.
    let stats = outbox.stats().unwrap();
    let left = stats.hold_left.expect("a hold in force");
    assert!(
        left > Duration::ZERO && left <= Duration::from_secs(60),
        "{stats:?}"
    );
    assert!(stats.held_until.is_some(), "{stats:?}");
    let json = serde_json::to_value(OutboxReader::open(&path).unwrap().stats().unwrap()).unwrap();
    assert!(json["heldUntil"].is_string(), "{json}");
    assert!(json["holdSecondsLeft"].as_f64().unwrap() > 0.0, "{json}");
    let held = outbox.flush().unwrap();
    assert_eq!((held.sent, held.pending), (0, 3), "{held:?}");
    assert_eq!(stopped_by(&held), "held");
    let sent_before = emu.requests().len();
    // The operator fixes the credentials (here: the agent's next client) and clears the hold.
    assert!(outbox.clear_hold().unwrap(), "a hold was in force");
    assert!(!outbox.clear_hold().unwrap(), "none any more");
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.held_until, stats.hold_left), (None, None));
    let fixed = Outbox::open(
        &common::client(&emu.base_url()),
        &path,
        OutboxOptions::new(),
    )
    .unwrap();
    // The reports' own backoffs still apply (a few seconds at most); then they go.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut report = fixed.flush().unwrap();
    while report.pending > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        report = fixed.flush().unwrap();
    }
    assert_eq!(report.pending, 0, "{report:?}");
    assert_eq!(stopped_by(&report), Value::Null, "drained");
    assert!(emu.requests().len() > sent_before);
}

/// A token source that fails every time: the flush cannot run (`Error::Auth`), and its report
/// says why; WARN, without the secret.
#[test]
fn a_flush_whose_token_source_fails_every_time_says_auth_and_warns() {
    struct Failing;
    impl intune_user_status::TokenProvider for Failing {
        fn token(&self) -> Result<intune_user_status::AccessToken, Error> {
            Err(intune_user_status::AuthError::new("vault sealed").into())
        }
    }
    let logs = common::capture_logs();
    let emu = emulator_with(["a"]);
    let dir = folder("no-token");
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(Failing)
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new()).unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "a"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    let mut report = intune_user_status::FlushReport::default();
    let result = outbox.flush_into(&mut report);
    assert!(matches!(result, Err(Error::Auth(_))), "{result:?}");
    assert_eq!(stopped_by(&report), "auth", "{report:?}");
    assert!(
        logs.text().lines().any(|line| line.starts_with("WARN ")
            && line.contains("no-token")
            && line.contains("credentials were refused")),
        "{}",
        logs.text()
    );
}

/// A `Retry-After` of two hours (past maxDelay) holds the whole outbox at most an hour
/// (`MAX_OUTBOX_HOLD`), and the flush says it was throttled.
#[test]
fn a_retry_after_past_the_cap_holds_the_outbox_an_hour_at_most() {
    let emu = emulator_with(["a"]);
    emu.add_fault(ius_emulator::FaultRule::always(
        ius_emulator::Fault::Status {
            status: 429,
            retry_after: Some("7200".into()),
        },
    ));
    let dir = folder("capped");
    let outbox = Outbox::open(
        &common::client(&emu.base_url()),
        dir.join("outbox.db"),
        OutboxOptions::new(),
    )
    .unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "a"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!(report.retry_later, 1, "{report:?}");
    let next = report.next_attempt_in.expect("pending");
    assert!(
        next > Duration::from_secs(3590) && next <= Duration::from_secs(3600),
        "held an hour, not two: {report:?}"
    );
    assert_eq!(stopped_by(&report), "throttled");
    let left = outbox.stats().unwrap().hold_left.unwrap();
    assert!(left <= Duration::from_secs(3600), "{left:?}");
}

/// A flush whose Graph cannot be reached stops with `stoppedBy` "offline"; one out of
/// `flushTimeMs` with "time".
#[test]
fn offline_and_out_of_time_flushes_say_why() {
    let emu = emulator_with(["a", "b"]);
    emu.add_fault(
        ius_emulator::FaultRule::always(ius_emulator::Fault::Reset).path_contains("/$batch"),
    );
    let dir = folder("offline-time");
    let path = dir.join("outbox.db");
    let client = common::builder(&emu.base_url())
        .retry_policy(
            intune_user_status::RetryPolicy::default()
                .max_retries(0)
                .base_delay(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, &path, OutboxOptions::new()).unwrap();
    for id in ["a", "b"] {
        outbox
            .enqueue(
                &Target::new("c1", id),
                &UserStatusPatch::new().devices_count(1),
            )
            .unwrap();
    }
    let report = outbox.flush().unwrap();
    assert_eq!(stopped_by(&report), "offline", "{report:?}");
    emu.clear_faults();
    // Each batch takes 50 ms, the flush may run 1 ms: it starts no second batch.
    emu.add_fault(
        ius_emulator::FaultRule::always(ius_emulator::Fault::Latency(Duration::from_millis(50)))
            .path_contains("/$batch"),
    );
    let out_of_time = Outbox::open(
        &client,
        &path,
        OutboxOptions::new().flush_time(Duration::from_millis(1)),
    )
    .unwrap();
    out_of_time.clear_hold().unwrap();
    for i in 0..30 {
        out_of_time
            .enqueue(
                &Target::new("c1", format!("x{i}")),
                &UserStatusPatch::new().devices_count(1),
            )
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let report = out_of_time.flush().unwrap();
    assert!(
        report.pending >= 12,
        "at most one batch of 20 went: {report:?}"
    );
    assert_eq!(stopped_by(&report), "time", "{report:?}");
    let metrics = serde_json::to_value(client.metrics()).unwrap();
    assert_eq!(metrics["flushesStopped"]["offline"], 1, "{metrics}");
    assert_eq!(metrics["flushesStopped"]["time"], 1, "{metrics}");
}

/// An operator (or a backup tool) hard-links the agent's outbox: SQLite names its journal after
/// the name it opens, so a second name would fail every write with "disk I/O error". Opening
/// either name is refused, STORAGE naming the path and the hard links; the handle opened before
/// the link keeps working.
#[cfg(unix)]
#[test]
fn a_hard_linked_file_is_refused_by_either_name_saying_why() {
    let emu = emulator_with(["u0"]);
    let dir = folder("hard-linked");
    let (a, b) = (dir.join("a.db"), dir.join("b.db"));
    let client = common::client(&emu.base_url());
    let first = Outbox::open(&client, &a, OutboxOptions::new()).unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    for name in [&b, &a] {
        let Err(error) = Outbox::open(&client, name, OutboxOptions::new()) else {
            panic!("a hard-linked file opened");
        };
        let shown = error.to_string();
        assert!(
            shown.contains(&name.display().to_string()),
            "names the path: {shown}"
        );
        let reason = storage_reason(error);
        assert!(
            reason.contains("2 names (hard links)"),
            "says why: {reason}"
        );
    }
    let patch = UserStatusPatch::new().devices_count(1);
    first.enqueue(&Target::new("c1", "u0"), &patch).unwrap();
    assert_eq!(first.flush().unwrap().applied, 1);
}

/// A flush whose batch the client's OWN pacing gate could not let leave within the call's budget
/// (the agent's direct update took the slot) says `paced`, not `throttled` (Graph answered no
/// 429), holds nothing, counts no failure for a report never sent (it stays due as before), and
/// the metrics count it as `paced`.
#[test]
fn a_flush_the_pacing_gate_held_says_paced_and_holds_nothing() {
    let emu = emulator_with(["u0", "u1"]);
    let dir = folder("paced");
    let path = dir.join("outbox.db");
    let client = common::builder(&emu.base_url())
        .request_timeout(Duration::from_millis(2_000))
        .retry_policy(
            intune_user_status::RetryPolicy::none()
                .base_delay(Duration::from_millis(10))
                .max_total_wait(Duration::from_millis(100)),
        )
        .pacing(intune_user_status::Pacing::new(
            1,
            Duration::from_millis(1_000),
        ))
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, &path, OutboxOptions::new()).unwrap();
    let patch = UserStatusPatch::new().devices_count(1);
    outbox.enqueue(&Target::new("c1", "u0"), &patch).unwrap();
    // The agent's own direct update takes the pacing slot.
    client
        .update_user_status(&Target::new("c1", "u1"), &patch)
        .unwrap();
    let report = outbox.flush().unwrap();
    assert_eq!(emu.throttled_count(), 0);
    assert_eq!(stopped_by(&report), "paced", "{report:?}");
    assert_eq!(
        (report.sent, report.retry_later, report.pending),
        (0, 0, 1),
        "{report:?}"
    );
    let stats = outbox.stats().unwrap();
    assert_eq!(stats.held_until, None, "{stats:?}");
    let failures = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT failures FROM pending", [], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap()
    };
    assert_eq!(failures, 0, "a report never sent failed nothing");
    let metrics = serde_json::to_value(client.metrics()).unwrap();
    assert_eq!(metrics["flushesStopped"]["paced"], 1, "{metrics}");
    assert_eq!(metrics["flushesStopped"]["throttled"], 0, "{metrics}");
    // Once the slot is free, the next flush sends it.
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(outbox.flush().unwrap().applied, 1);
}
