//! The outbox file: how a file is recognised, created and opened, and its tables.
//!
//! A file is an outbox when its header carries [`APPLICATION_ID`]; `PRAGMA user_version` is the
//! schema version. Any other file is inspected through a read-only connection and refused without
//! a single write, so a file that is not ours (or is from a newer version) is left as it was.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::file_name;
use super::store::{now_ms, reason};
use crate::Error;

/// `IUSB` in the SQLite header's application id field: "this file is an intune-user-status outbox".
pub(crate) const APPLICATION_ID: i32 = 0x4955_5342;
/// The schema this version writes and reads. A file with a higher version is refused.
pub(crate) const SCHEMA_VERSION: i32 = 1;
/// How long a statement waits for another connection's write lock (threads, processes).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema version 1. `revision` is the enqueue that last changed a pending row, so a flush removes
/// a row only if nothing was merged into it while its write was in flight.
const CREATE: &str = "
CREATE TABLE pending (
    key TEXT PRIMARY KEY NOT NULL,      -- API version + encoded request path: one row per user status
    target TEXT NOT NULL,               -- target JSON, as the C API's target_json
    patch TEXT NOT NULL,                -- the merged patch JSON, as it goes on the wire
    revision INTEGER NOT NULL,          -- counters.revision of the last enqueue merged in
    enqueued_at INTEGER NOT NULL,       -- unix ms of the first enqueue still pending
    next_attempt_at INTEGER NOT NULL,   -- unix ms; due when <= now
    failures INTEGER NOT NULL DEFAULT 0,-- failed flushes in a row, for the backoff
    last_error TEXT                     -- the last failure's message, for an operator
);
CREATE INDEX pending_due ON pending (next_attempt_at);
CREATE TABLE acknowledged (
    key TEXT PRIMARY KEY NOT NULL,
    fields TEXT NOT NULL,               -- patch JSON: every property Graph acknowledged, merged
    acknowledged_at INTEGER NOT NULL    -- unix ms of the last applied write
);
CREATE TABLE failed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    patch TEXT NOT NULL,
    error TEXT NOT NULL,                -- the error, as JSON
    failed_at TEXT NOT NULL             -- RFC 3339, UTC
);
CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT INTO counters (name, value)
    VALUES ('revision', 0), ('applied', 0), ('skipped', 0), ('pending', 0);
-- The pending count, kept by SQLite itself so the maxPending check never counts the table.
CREATE TRIGGER pending_added AFTER INSERT ON pending
    BEGIN UPDATE counters SET value = value + 1 WHERE name = 'pending'; END;
CREATE TRIGGER pending_removed AFTER DELETE ON pending
    BEGIN UPDATE counters SET value = value - 1 WHERE name = 'pending'; END;
";

/// Opens the outbox at `path`, creating it if the file is missing or empty, and caps it at
/// `max_bytes` through SQLite's page limit.
pub(crate) fn open(path: &Path, max_bytes: u64) -> Result<Connection, Error> {
    let storage = |reason: String| Error::Storage {
        path: path.display().to_string(),
        reason,
    };
    if let Some(why) = file_name::unopenable(path) {
        return Err(storage(why.to_owned()));
    }
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !folder.is_dir()
    {
        return Err(storage(format!(
            "the folder {} does not exist",
            folder.display()
        )));
    }
    if path.is_dir() {
        return Err(storage("is a folder, not a file".into()));
    }
    let exists = path.metadata().is_ok_and(|m| m.len() > 0);
    if exists {
        // Judge the file through a connection that cannot write (not even a WAL checkpoint).
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|err| storage(format!("cannot be opened: {err}")))?;
        reader
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|err| storage(err.to_string()))?;
        identify(&reader).map_err(storage)?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| {
        storage(format!(
            "cannot be opened or created (is the folder writable?): {err}"
        ))
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|err| storage(err.to_string()))?;
    create_if_new(&mut conn).map_err(storage)?;
    let sql = |err: rusqlite::Error| storage(reason(&err));
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(storage(format!(
            "could not switch to the WAL journal (got {mode})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(sql)?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(sql)?;
    let pages = i64::try_from(max_bytes).unwrap_or(i64::MAX) / page_size.max(1);
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        .map_err(sql)?;
    Ok(conn)
}

/// What the file is, by its header: `Ok(true)` an outbox of this schema, `Ok(false)` an empty
/// database (ours to create), `Err` anything else, saying why.
fn identify(conn: &Connection) -> Result<bool, String> {
    let read = |pragma: &str| -> Result<i64, String> {
        conn.query_row(pragma, [], |row| row.get(0))
            .map_err(|err| match err.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => {
                    "is not an SQLite database; it is left untouched".to_owned()
                }
                _ => format!("cannot be read: {err}"),
            })
    };
    let application_id = read("PRAGMA application_id")?;
    let version = read("PRAGMA user_version")?;
    let objects = read("SELECT count(*) FROM sqlite_master")?;
    match (application_id, version) {
        (id, v) if id == i64::from(APPLICATION_ID) && v == i64::from(SCHEMA_VERSION) => Ok(true),
        (id, v) if id == i64::from(APPLICATION_ID) && v > i64::from(SCHEMA_VERSION) => {
            Err(format!(
                "was written by a newer version of this library (outbox schema {v}; this version \
             reads {SCHEMA_VERSION}); it is left untouched"
            ))
        }
        (0, 0) if objects == 0 => Ok(false),
        (id, v) => Err(format!(
            "is an SQLite database but not an outbox (application_id {id}, user_version {v}, \
             {objects} schema objects); it is left untouched"
        )),
    }
}

/// Creates the tables in an empty database. The check is repeated under the write lock, so two
/// processes opening a new file at once create it once.
fn create_if_new(conn: &mut Connection) -> Result<(), String> {
    if identify(conn)? {
        return Ok(());
    }
    let sql = |err: rusqlite::Error| reason(&err);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    if identify(&tx)? {
        return Ok(());
    }
    tx.execute_batch(CREATE).map_err(sql)?;
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ('created_at', ?1)",
        [now_ms()],
    )
    .map_err(sql)?;
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(sql)?;
    tx.commit().map_err(sql)
}
