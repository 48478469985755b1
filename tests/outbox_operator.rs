//! What an operator does with an agent's outbox file: look at it without writing it
//! ([`OutboxReader`]), read the failed list and keep it ([`Outbox::failed`]), and move it back to
//! pending ([`Outbox::requeue_failed`]), against the emulator.
#![cfg(feature = "outbox")]

mod common;

use common::c_abi::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use intune_user_status::{
    Error, FlushReport, FlushStop, Outbox, OutboxOptions, OutboxReader, Target, UserStatusPatch,
};
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
    let logs = common::capture_logs();
    let emu = emulator_with(["a"]);
    let (outbox, _) = with_tokens_then_none(&emu, "no-token", 0, &["a"]);
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

// Why a flush stopped, as an operator reads it (each found by a review, where it failed).

/// An outbox in folder `name` whose client's token source gives `good` tokens, then none
/// ([`common::TokenThenNone`]), with devicesCount 1 enqueued for each of `ids` under `c1`; and
/// the count of the source's calls.
fn with_tokens_then_none(
    emu: &Emulator,
    name: &str,
    good: usize,
    ids: &[&str],
) -> (Outbox, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(common::TokenThenNone {
            good,
            calls: Arc::clone(&calls),
        })
        .build()
        .unwrap();
    let outbox = Outbox::open(
        &client,
        folder(name).join("outbox.db"),
        OutboxOptions::new(),
    )
    .unwrap();
    for id in ids {
        outbox
            .enqueue(
                &Target::new("c1", *id),
                &UserStatusPatch::new().devices_count(1),
            )
            .unwrap();
    }
    (outbox, calls)
}

/// Was a defect (1 of the review that found it; the test keeps it fixed): No token at all (a sealed vault, an expired secret): FlushStop::Auth's doc says
/// this is "the credentials were refused", and hold.rs / `clear_hold` / the C docs say such a
/// stop holds every report back (stats' heldUntil) so the next flush does not try again at once.
/// The first-batch no-token path records with `hold: None` (flush.rs), so nothing is held: every
/// flush fetches a token again and logs another WARN, and `heldUntil` stays null, so an
/// operator's `clear-hold` says `cleared:false` about an outbox that is stopped for auth.
#[test]
fn a_flush_with_no_token_holds_the_outbox_as_a_refused_one_does() {
    let emu = emulator_with(["a"]);
    let (outbox, calls) = with_tokens_then_none(&emu, "no-token-hold", 0, &["a"]);
    let mut report = FlushReport::default();
    let first = outbox.flush_into(&mut report);
    assert!(matches!(first, Err(Error::Auth(_))), "{first:?}");
    assert_eq!(report.stopped_by, Some(FlushStop::Auth));
    let after_first = calls.load(Ordering::SeqCst);
    let stats = outbox.stats().unwrap();
    // Seen failing before the fix: held_until None, hold_left None.
    assert!(
        stats.held_until.is_some(),
        "an auth stop leaves no hold: {stats:?}"
    );
    let mut again = FlushReport::default();
    let _ = outbox.flush_into(&mut again);
    assert_eq!(
        again.stopped_by,
        Some(FlushStop::Held),
        "the second flush ran again: {again:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after_first,
        "the token source was asked again"
    );
}

/// Was a defect (2 of the review that found it, report lies about the wire; the test keeps it fixed): The token source fails after the first batch went
/// out: the second batch's 20 reports never left (no request carried them; the emulator got one
/// `$batch`), yet the report counts them in `sent` (flush.rs: `sent += batch.len() - unsent`,
/// where `unsent` only counts interrupts). LOW: `FlushReport::sent` is documented as "handed to
/// the client to send", which this keeps to the letter; but reports an interrupt stopped before
/// any request carried them are left out of `sent` (they stay due), and these are not (they get
/// a failure and a backoff): the two rules for "no request carried it" disagree. They also make
/// this stop "auth" with a hold and a WARN when the token source failed transiently (defect 4).
#[test]
fn sent_counts_only_reports_a_request_carried() {
    let ids: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    let emu = emulator_with(&ids);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (outbox, _) = with_tokens_then_none(&emu, "sealed-mid-flush", 1, &ids);
    let mut report = FlushReport::default();
    let result = outbox.flush_into(&mut report);
    let batches: Vec<usize> = emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body_str()).unwrap()["requests"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    let carried: u64 = batches.iter().map(|&n| n as u64).sum();
    assert_eq!(
        report.stopped_by,
        Some(FlushStop::Auth),
        "{result:?} {report:?}"
    );
    // Seen failing before the fix: sent 40, carried 20.
    assert_eq!(
        report.sent, carried,
        "report {report:?}, batches on the wire {batches:?}"
    );
}

/// A token callback with no token (a sealed vault).
unsafe extern "C" fn no_token(
    _: *mut std::ffi::c_void,
    _: *mut std::ffi::c_char,
    _: usize,
    _: *mut i64,
) -> i32 {
    -1
}

/// Was a defect (3 of the review that found it, doc lie, C and CLI; the test keeps it fixed): `ius_outbox_flush`'s doc lists `stoppedBy` `"auth"` as "no
/// token, or Graph answered 401 to a whole batch", and `ius outbox PATH flush`'s help says its
/// stoppedBy names auth. A flush with no token returns `IUS_STATUS_AUTH` with
/// `*out_report_json` NULL (src/ffi/outbox.rs writes the report only on OK and CANCELLED), so
/// no C caller (nor the CLI, which prints only the error) ever sees that `stoppedBy`.
#[test]
fn c_flush_with_no_token_reports_stopped_by_auth() {
    use std::ffi::{CStr, CString};
    let emu = emulator_with(&["a".to_string()]);
    let dir = folder("c-no-token");
    let path = dir.join("outbox.db");
    // Enqueue from Rust (the same file), flush from C.
    Outbox::open(
        &common::client(&emu.base_url()),
        &path,
        OutboxOptions::new(),
    )
    .unwrap()
    .enqueue(
        &Target::new("c1", "a"),
        &UserStatusPatch::new().devices_count(1),
    )
    .unwrap();
    let config = CString::new(json!({ "baseUrl": emu.base_url() }).to_string()).unwrap();
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let (mut client, mut outbox) = (std::ptr::null_mut(), std::ptr::null_mut());
    let mut error = std::ptr::null_mut();
    let mut report = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated inputs, writable outputs; each string freed once.
    let (status, report_json, error_json) = unsafe {
        assert_eq!(
            ius_client_new_with_token_callback(
                config.as_ptr(),
                Some(no_token),
                std::ptr::null_mut(),
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
    // Seen failing before the fix: status 100 (AUTH), report NULL.
    let report_json = report_json.unwrap_or_else(|| {
        panic!("no report JSON, so no stoppedBy: status {status}, error {error_json:?}")
    });
    let value: serde_json::Value = serde_json::from_str(&report_json).unwrap();
    assert_eq!(value["stoppedBy"], "auth", "{report_json}");
}

/// Was a defect (4 of the review that found it, stoppedBy and WARN lie: "auth" when offline; the test keeps it fixed): A client-secret agent whose network
/// is down (the token endpoint refuses the connection: no answer at all) runs a flush: nothing
/// refused its credentials, Graph was simply unreachable, which `FlushStop::Offline` names. The
/// flush's no-token path (flush.rs: every result `e.auth().is_some()`) takes any token-fetch
/// failure, a transient network one included, as "auth", and logs at WARN "the credentials
/// were refused": the operator is told to rotate a secret that is fine.
#[test]
fn a_flush_whose_token_endpoint_is_unreachable_says_offline_not_auth() {
    let logs = common::capture_logs();
    let emu = emulator_with(&["a".to_string()]);
    let dir = folder("token-offline");
    // A loopback port nobody listens on: connection refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .credential(
            intune_user_status::ClientSecretCredential::new(
                "contoso.onmicrosoft.com",
                "app-id",
                "s3cret-7f2e",
            )
            .authority_host(format!("http://{closed}")),
        )
        .retry_policy(
            intune_user_status::RetryPolicy::default()
                .max_retries(0)
                .base_delay(std::time::Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new()).unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "a"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    let mut report = FlushReport::default();
    let result = outbox.flush_into(&mut report);
    let warned: Vec<String> = logs
        .text()
        .lines()
        .filter(|line| line.contains("token-offline") && line.contains("credentials were refused"))
        .map(str::to_owned)
        .collect();
    // Seen failing before the fix: Some(Auth), and a WARN "the credentials were refused".
    assert_eq!(
        report.stopped_by,
        Some(FlushStop::Offline),
        "{result:?} {report:?} WARN: {warned:?}"
    );
    assert!(warned.is_empty(), "{warned:?}");
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
        // One sentence: the message once carried its source's line breaks' indentation.
        assert!(!reason.contains("  "), "{reason:?}");
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
