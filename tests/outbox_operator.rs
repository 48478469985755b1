//! What an operator does with an agent's outbox file: look at it without writing it
//! ([`OutboxReader`]), read the failed list and keep it ([`Outbox::failed`]), and move it back to
//! pending ([`Outbox::requeue_failed`]), against the emulator.
#![cfg(feature = "outbox")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TOKEN;
use intune_user_status::{Error, Outbox, OutboxOptions, OutboxReader, Target, UserStatusPatch};
use ius_emulator::{Config, Emulator, SeedEntry};
use serde_json::{Value, json};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

fn emulator_with(ids: &[&str]) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed: ids
            .iter()
            .map(|id| SeedEntry {
                collection: DIRECT.into(),
                entity: json!({ "id": id, "devicesCount": 0 }),
            })
            .collect(),
        ..Config::default()
    })
    .expect("start emulator")
}

/// A fresh folder for one test's files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ius-operator-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    let emu = emulator_with(&[]);
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
    let emu = emulator_with(&[]);
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
    let emu = emulator_with(&["u0"]);
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
    let emu = emulator_with(&[]);
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
