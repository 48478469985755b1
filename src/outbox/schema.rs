//! The outbox file: how a file is recognised, created, opened and brought to this version's
//! schema, and its tables.
//!
//! A file is an outbox when its header carries [`APPLICATION_ID`]; `PRAGMA user_version` is the
//! schema version. Any other file is inspected through a read-only connection and refused without
//! a single write, so a file that is not ours (or is from a newer version) is left as it was. A
//! file of an older schema is migrated in one transaction when it is opened, keeping every report.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params};
use serde_json::Value;

use super::acknowledged;
use super::busy::{self, BUSY_TIMEOUT};
use super::clock::{Clock, rfc3339};
use super::failed_list::{self, FailedRow};
use super::failure;
use super::file_name;
use super::paths::sqlite_uri;
use super::permissions::{create_owner_only, make_owner_only, readable_by_others};
use super::room;
use super::store::reason;
use super::stored_text::StoredText;
use crate::{Error, UserStatusPatch};

/// `IUSB` in the SQLite header's application id field: "this file is an intune-user-status outbox".
pub(crate) const APPLICATION_ID: i32 = 0x4955_5342;
/// The schema this version writes and reads. A file with a higher version is refused; one with a
/// lower version is migrated.
pub(crate) const SCHEMA_VERSION: i32 = 3;

/// The pending and failed tables and the counters (unchanged since schema 2). `revision` is the enqueue that last changed a pending row, so a flush removes
/// a row only if nothing was merged into it while its write was in flight.
const CREATE: &str = "
CREATE TABLE pending (
    key TEXT PRIMARY KEY NOT NULL,      -- the user status: encoded request path without the API
                                        -- version (route and ids); one row per user status
    target TEXT NOT NULL,               -- target JSON, as the C API's target_json, with the API
                                        -- version of the latest report merged in
    patch TEXT NOT NULL,                -- the merged patch JSON, as it goes on the wire
    revision INTEGER NOT NULL,          -- counters.revision of the last enqueue merged in
    enqueued_at INTEGER NOT NULL,       -- unix ms of the first enqueue still pending
    next_attempt_at INTEGER NOT NULL,   -- unix ms; due when <= now (or past now + maxDelayMs)
    failures INTEGER NOT NULL DEFAULT 0,-- failed flushes in a row, for the backoff
    last_error TEXT                     -- the last failure's message, for an operator
);
CREATE INDEX pending_due ON pending (next_attempt_at);
CREATE TABLE failed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    patch TEXT NOT NULL,
    error TEXT NOT NULL,                -- the error, as JSON
    failed_at TEXT NOT NULL             -- RFC 3339, UTC
);
-- Counters by name; also the outbox-wide hold (hold.rs): 'held_until' (unix ms) and
-- 'held_for' (ms), written by a flush that stopped, absent until then.
CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT INTO counters (name, value)
    VALUES ('revision', 0), ('applied', 0), ('skipped', 0), ('pending', 0), ('failed_dropped', 0);
-- The pending count, kept by SQLite itself so the maxPending check never counts the table.
CREATE TRIGGER pending_added AFTER INSERT ON pending
    BEGIN UPDATE counters SET value = value + 1 WHERE name = 'pending'; END;
CREATE TRIGGER pending_removed AFTER DELETE ON pending
    BEGIN UPDATE counters SET value = value - 1 WHERE name = 'pending'; END;
";

/// Schema version 2's acknowledged table (also made by the migration from schema 1).
const ACKNOWLEDGED: &str = "
CREATE TABLE acknowledged (
    key TEXT NOT NULL,                  -- the user status, as pending.key
    property TEXT NOT NULL,             -- a property as on the wire, e.g. devicesCount
    value TEXT NOT NULL,                -- its JSON value Graph acknowledged
    acknowledged_at INTEGER NOT NULL,   -- unix ms of the applied write that set it
    PRIMARY KEY (key, property)
) WITHOUT ROWID;
";

/// Schema version 3's writes in doubt (in_doubt.rs; added to a file of schema 2 or 1 when it is
/// migrated: none was recorded there, so none is in doubt). A file of schema 3 without it (an
/// operator's `sqlite3`, a partial restore) gets it back, empty, at open, on the same reading;
/// one without its index (written before the index was added) gets the index at open, with no
/// new schema version: a version that does not know the index reads and writes the file as well.
const IN_DOUBT: &str = "
CREATE TABLE IF NOT EXISTS in_doubt (
    key TEXT PRIMARY KEY NOT NULL,      -- the user status, as pending.key
    patch TEXT NOT NULL,                -- the patch last sent whose outcome is unknown
    until INTEGER NOT NULL,             -- unix ms: Graph may apply it until then
    request_ms INTEGER                  -- the requestMs it was sent with (NULL: not kept)
) WITHOUT ROWID;
-- Each record prunes the ended through this, not a scan.
CREATE INDEX IF NOT EXISTS in_doubt_until ON in_doubt (until);
";

/// A file of schema 3 whose `in_doubt` predates the window each row keeps gets the column at open
/// (NULL: the current `requestMs` is read for those rows). Nullable, so a version that does not
/// know it still reads and writes the table: the schema stays 3.
const IN_DOUBT_WINDOW: &str = "ALTER TABLE in_doubt ADD COLUMN request_ms INTEGER;";

/// Statements kept prepared on the connection: more than the outbox's per-row statements.
const STATEMENTS_KEPT: usize = 64;

/// Opens the outbox at `path`, creating it (owner-only) if the file is missing or empty,
/// migrating it if it is of an older schema, and caps it at `max_bytes` through SQLite's page
/// limit.
pub(crate) fn open(path: &Path, max_bytes: u64) -> Result<Connection, Error> {
    let storage = |reason: String| Error::storage(path.display().to_string(), reason);
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
    let size = path.metadata().map(|m| m.len()).ok();
    // An empty file (an installer's `touch`) holds nothing yet: it becomes the outbox as a new
    // file would, owner-only (and so do the -wal and -shm SQLite makes with its mode).
    if size == Some(0)
        && let Err(err) = make_owner_only(path)
    {
        log::warn!(
            "the outbox {} is an empty file whose mode cannot be made owner-only ({err}): it will \
             hold user names; `chmod 600` it (its -wal and -shm too) unless others may read it",
            path.display()
        );
    }
    if size.is_some_and(|size| size > 0) {
        judge(path).map_err(storage)?;
        if let Some(mode) = readable_by_others(path) {
            log::warn!(
                "the outbox {} can be read by other users (mode {mode:o}): it holds user names; \
                 `chmod 600` it (its -wal and -shm too) unless that is meant",
                path.display()
            );
        }
    }
    // SQLite gives the -wal and -shm files the mode of the file it opens.
    create_owner_only(path).map_err(|err| {
        storage(format!(
            "cannot be opened or created (is the folder writable?): {err}"
        ))
    })?;
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| {
        storage(format!(
            "cannot be opened or created (is the folder writable?): {err}"
        ))
    })?;
    // Waits for another connection's write, until an interrupt of the call on this thread.
    conn.busy_handler(Some(busy::wait))
        .map_err(|err| storage(err.to_string()))?;
    // Room for every statement a flush or an enqueue runs per row (store.rs prepares them once).
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    create_or_migrate(&mut conn, path).map_err(storage)?;
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
    room::limit(&conn, max_bytes).map_err(sql)?;
    Ok(conn)
}

/// Opens the outbox at `path` to read it only: nothing is created, migrated or written (the
/// connection cannot write; SQLite may make its `-shm` and `-wal` companions to read a WAL file
/// safely while another process writes it). A missing or empty file, one that is not an outbox,
/// and one of another schema version are refused, saying why. Each statement waits up to `busy`
/// for a connection that locks the file whole (a WAL read waits for no writer otherwise): 10 s
/// ([`BUSY_TIMEOUT`]) for an operator's look, less for an interrupted flush's last read.
pub(crate) fn open_read_only(path: &Path, busy: std::time::Duration) -> Result<Connection, Error> {
    let storage = |reason: String| Error::storage(path.display().to_string(), reason);
    if let Some(why) = file_name::unopenable(path) {
        return Err(storage(why.to_owned()));
    }
    match path.metadata() {
        Err(err) => return Err(storage(format!("cannot be read: {err}"))),
        Ok(meta) if meta.is_dir() => return Err(storage("is a folder, not a file".into())),
        Ok(meta) if meta.len() == 0 => {
            return Err(storage("is empty: no outbox was made in it yet".into()));
        }
        Ok(_) => {}
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| storage(format!("cannot be opened: {err}")))?;
    conn.busy_timeout(busy)
        .map_err(|err| storage(err.to_string()))?;
    if let Err(err) = conn.query_row("PRAGMA application_id", [], |row| row.get::<_, i64>(0))
        && err.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly)
    {
        return Err(storage(
            "has a write-ahead log to recover (a process writing it ended without closing it), \
             which only a connection that may write can do: open it for writing once (an \
             enqueue or a flush), then look again"
                .into(),
        ));
    }
    match identify(&conn).map_err(storage)? {
        Kind::Current => Ok(conn),
        Kind::Older(v) => Err(storage(format!(
            "has outbox schema {v}, older than this version's {SCHEMA_VERSION}; it is not \
             migrated when opened to be read only (opening it for writing, as an enqueue or a \
             flush does, migrates it); it is left untouched"
        ))),
        Kind::Empty => Err(storage(
            "is an empty SQLite database: no outbox was made in it yet".into(),
        )),
    }
}

/// Judges an existing file through a connection that cannot write (not even a WAL checkpoint):
/// `Err` says why it is not ours to open.
fn judge(path: &Path) -> Result<(), String> {
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| format!("cannot be opened: {err}"))?;
    reader
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|err| err.to_string())?;
    // A process killed while it wrote leaves a WAL to recover, which a connection that cannot
    // write may not do: then the file's own header says whose it is.
    if let Err(err) = reader.query_row("PRAGMA application_id", [], |row| row.get::<_, i64>(0))
        && err.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly)
    {
        return header_says_ours(path);
    }
    identify(&reader).map(drop)
}

/// Whether the file's SQLite header carries [`APPLICATION_ID`] (set when the outbox was made,
/// never changed; the schema version is checked again once the WAL is recovered). Read through
/// SQLite as an immutable file: its own pages only, no WAL, no lock, no write (and SQLite keeps
/// this process's locks on the file, which closing a file descriptor of our own would drop).
fn header_says_ours(path: &Path) -> Result<(), String> {
    let uri = sqlite_uri(path, "immutable=1")
        .ok_or_else(|| "cannot be read: its path is not valid Unicode".to_owned())?;
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| format!("cannot be opened: {err}"))?;
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(|err| match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                "is not an SQLite database; it is left untouched".to_owned()
            }
            _ => format!("cannot be read: {err}"),
        })?;
    if application_id == i64::from(APPLICATION_ID) {
        Ok(())
    } else {
        Err(format!(
            "is an SQLite database but not an outbox (application_id {application_id}); it is \
             left untouched"
        ))
    }
}

/// What a file is, by its header.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// An empty database: ours to create.
    Empty,
    /// An outbox of this schema.
    Current,
    /// An outbox of an older schema, to migrate.
    Older(i64),
}

/// What the file is, by its header; `Err` for anything that is not ours to open, saying why.
fn identify(conn: &Connection) -> Result<Kind, String> {
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
    let ours = application_id == i64::from(APPLICATION_ID);
    match version {
        v if ours && v == i64::from(SCHEMA_VERSION) => Ok(Kind::Current),
        v if ours && v > i64::from(SCHEMA_VERSION) => Err(format!(
            "was written by a newer version of this library (outbox schema {v}; this version \
             reads {SCHEMA_VERSION}); it is left untouched"
        )),
        v if ours && v >= 1 => Ok(Kind::Older(v)),
        0 if application_id == 0 && objects == 0 => Ok(Kind::Empty),
        v => Err(format!(
            "is an SQLite database but not an outbox (application_id {application_id}, \
             user_version {v}, {objects} schema objects); it is left untouched"
        )),
    }
}

/// Creates the tables in an empty database, or migrates an older schema. The check is repeated
/// under the write lock, so two processes opening a file at once create or migrate it once.
fn create_or_migrate(conn: &mut Connection, path: &Path) -> Result<(), String> {
    let sql = |err: rusqlite::Error| reason(&err);
    if identify(conn)? == Kind::Current && in_doubt_table(conn).map_err(sql)? == Table::Complete {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    match identify(&tx)? {
        Kind::Current => match in_doubt_table(&tx).map_err(sql)? {
            Table::Complete => return Ok(()),
            Table::WithoutWindow => {
                tx.execute_batch(IN_DOUBT_WINDOW).map_err(sql)?;
                tx.execute_batch(IN_DOUBT).map_err(sql)?;
            }
            Table::WithoutIndex | Table::Missing => tx.execute_batch(IN_DOUBT).map_err(sql)?,
        },
        Kind::Empty => {
            tx.execute_batch(CREATE).map_err(sql)?;
            tx.execute_batch(ACKNOWLEDGED).map_err(sql)?;
            tx.execute_batch(IN_DOUBT).map_err(sql)?;
            tx.execute(
                "INSERT INTO counters (name, value) VALUES ('created_at', ?1)",
                [Clock::default().now_ms()],
            )
            .map_err(sql)?;
            tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))
                .map_err(sql)?;
        }
        Kind::Older(1) => {
            migrate_from_1(&tx, path).map_err(sql)?;
            tx.execute_batch(IN_DOUBT).map_err(sql)?;
        }
        Kind::Older(2) => tx.execute_batch(IN_DOUBT).map_err(sql)?,
        Kind::Older(v) => return Err(format!("has outbox schema {v}, which no version wrote")),
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
        .map_err(sql)?;
    tx.commit().map_err(sql)
}

/// What the file has of its table of writes in doubt.
#[derive(PartialEq)]
enum Table {
    Missing,
    /// Made before each row kept its window (`request_ms`).
    WithoutWindow,
    /// Made before its index.
    WithoutIndex,
    Complete,
}

/// What the file has of its table of writes in doubt.
fn in_doubt_table(conn: &Connection) -> rusqlite::Result<Table> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('in_doubt')")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Ok(Table::Missing);
    }
    if !columns.iter().any(|name| name == "request_ms") {
        return Ok(Table::WithoutWindow);
    }
    let indexed: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'in_doubt_until'",
        [],
        |row| row.get(0),
    )?;
    Ok(if indexed == 1 {
        Table::Complete
    } else {
        Table::WithoutIndex
    })
}

/// Schema 1 named a user status by API version and path, and kept one acknowledgement time per
/// user status. Schema 2 names it by path alone (route and ids), so the rows of one user status
/// through beta and v1.0 merge, in the order they were enqueued, and its acknowledgements merge
/// property by property, the later winning; each property keeps its row's time.
///
/// Schema 1 kept no record of which pending reports were sent: any of them may have been, its
/// answer lost (a timeout, a kill), so the acknowledgements of every user status with a pending
/// report are in doubt, and dropped. A row the file holds damaged goes to the failed list.
fn migrate_from_1(tx: &Transaction<'_>, path: &Path) -> rusqlite::Result<()> {
    let now = Clock::default().now_ms();
    let failed_at = rfc3339(now);
    let fail = |target: &str, patch: &str, reason: String| {
        let error = failure::to_json(&Error::storage(path.display().to_string(), reason));
        let row = FailedRow {
            target,
            patch,
            error: &error,
            failed_at: &failed_at,
        };
        failed_list::add(tx, &row).map(drop)
    };
    // Pending: one row per user status.
    let stored: Vec<(StoredText, StoredText, StoredText, PendingTimes)> = tx
        .prepare(
            "SELECT key, target, patch, revision, enqueued_at, next_attempt_at, failures,
                 last_error FROM pending ORDER BY revision",
        )?
        .query_map([], |row| {
            let number = |i: usize| row.get::<_, Option<i64>>(i).ok().flatten().unwrap_or(0);
            let last_error: StoredText = row.get(7)?;
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                PendingTimes {
                    revision: number(3),
                    enqueued_at: number(4),
                    next_attempt_at: number(5),
                    failures: number(6),
                    last_error: last_error.text().ok().map(str::to_owned),
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut merged: BTreeMap<String, PendingRow> = BTreeMap::new();
    for (key, target, patch, times) in stored {
        let (Ok(key), Ok(target), Ok(patch)) = (key.text(), target.text(), patch.text()) else {
            let why = [("key", &key), ("target", &target), ("patch", &patch)]
                .into_iter()
                .find_map(|(column, value)| {
                    value.text().err().map(|why| format!("its {column} {why}"))
                })
                .unwrap_or_default();
            fail(
                target.shown(),
                patch.shown(),
                format!(
                    "the pending report for {} could not be migrated: {why}",
                    key.shown()
                ),
            )?;
            continue;
        };
        let row = PendingRow {
            key: user_status_key(key).to_owned(),
            target: target.to_owned(),
            patch: patch.to_owned(),
            times,
        };
        let Some(earlier) = merged.remove(&row.key) else {
            merged.insert(row.key.clone(), row);
            continue;
        };
        let combined = match (
            UserStatusPatch::from_json(&earlier.patch),
            UserStatusPatch::from_json(&row.patch),
        ) {
            (Ok(mut patch), Ok(later)) => {
                patch.merge(&later);
                PendingRow {
                    patch: String::from_utf8(patch.to_json()).unwrap_or_default(),
                    times: PendingTimes {
                        enqueued_at: earlier.times.enqueued_at.min(row.times.enqueued_at),
                        next_attempt_at: earlier
                            .times
                            .next_attempt_at
                            .min(row.times.next_attempt_at),
                        failures: earlier.times.failures.min(row.times.failures),
                        ..row.times
                    },
                    ..row
                }
            }
            // One of them cannot be read: the later one stays pending, the unreadable one (or
            // the earlier) goes to the failed list, naming its row.
            (earlier_read, _) => {
                let (kept, failed) = if earlier_read.is_err() {
                    (row, earlier)
                } else {
                    (earlier, row)
                };
                fail(
                    &failed.target,
                    &failed.patch,
                    format!(
                        "the pending report for {} could not be merged with the other API \
                         version's when the file was migrated: a stored patch cannot be read",
                        failed.key
                    ),
                )?;
                kept
            }
        };
        merged.insert(combined.key.clone(), combined);
    }
    tx.execute("DELETE FROM pending", [])?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO pending (key, target, patch, revision, enqueued_at, next_attempt_at,
                 failures, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for row in merged.values() {
            let times = &row.times;
            insert.execute(params![
                row.key,
                row.target,
                row.patch,
                times.revision,
                times.enqueued_at,
                times.next_attempt_at,
                times.failures,
                times.last_error
            ])?;
        }
    }
    // Acknowledged: one row per user status and property, the later acknowledgement winning;
    // none for a user status with a pending report (in doubt, above).
    let acknowledged: Vec<(StoredText, StoredText, Option<i64>)> = tx
        .prepare("SELECT key, fields, acknowledged_at FROM acknowledged ORDER BY acknowledged_at")?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2).ok().flatten()))
        })?
        .collect::<rusqlite::Result<_>>()?;
    tx.execute_batch("DROP TABLE acknowledged;")?;
    tx.execute_batch(ACKNOWLEDGED)?;
    for (key, fields, at) in acknowledged {
        // An acknowledgement that cannot be read only costs a resend: it is left out.
        let (Ok(key), Ok(fields), Some(at)) = (key.text(), fields.text(), at) else {
            continue;
        };
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) else {
            continue;
        };
        let key = user_status_key(key);
        if !merged.contains_key(key) {
            acknowledged::record(tx, key, &acknowledged::properties_of(fields), at)?;
        }
    }
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ('failed_dropped', 0)
         ON CONFLICT (name) DO NOTHING",
        [],
    )?;
    Ok(())
}

/// A pending row as schema 1 and 2 both hold it.
struct PendingRow {
    key: String,
    target: String,
    patch: String,
    times: PendingTimes,
}

/// A pending row's bookkeeping (a number the file holds damaged reads as 0).
struct PendingTimes {
    revision: i64,
    enqueued_at: i64,
    next_attempt_at: i64,
    failures: i64,
    last_error: Option<String>,
}

/// Schema 1's key (`/beta/deviceManagement/...`) without its API version.
fn user_status_key(key: &str) -> &str {
    ["/beta/", "/v1.0/"]
        .iter()
        .find_map(|version| key.strip_prefix(&version[..version.len() - 1]))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::{header_says_ours, open, user_status_key};

    /// The judge's way round a WAL it may not recover: the header, read as an immutable file,
    /// through any path (an SQLite URI escapes `%`, `?` and `#`; Windows allows no `?` in a name).
    #[test]
    fn the_header_alone_tells_an_outbox_from_other_files() {
        let dir = std::env::temp_dir().join(format!("ius-header-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let name = if cfg!(windows) {
            "odd %41#name.db"
        } else {
            "odd %41?name#.db"
        };
        let outbox = dir.join(name);
        drop(open(&outbox, super::super::MIN_OUTBOX_BYTES).unwrap());
        assert_eq!(header_says_ours(&outbox), Ok(()));
        let other = dir.join("other.db");
        rusqlite::Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); PRAGMA application_id = 7;")
            .unwrap();
        let refused = header_says_ours(&other).unwrap_err();
        assert!(
            refused.contains("not an outbox (application_id 7)"),
            "{refused}"
        );
        let text = dir.join("notes.txt");
        std::fs::write(&text, "not a database\n".repeat(20)).unwrap();
        let refused = header_says_ours(&text).unwrap_err();
        assert!(refused.contains("not an SQLite database"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An interrupted flush's last read (`busy::AFTER_INTERRUPT`) gives up on a file another
    /// connection locks whole within its bound, not after an operator's 10 s.
    #[test]
    fn a_read_only_open_waits_no_longer_than_it_is_told() {
        let dir = std::env::temp_dir().join(format!("ius-locked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let outbox = dir.join("outbox.db");
        drop(open(&outbox, super::super::MIN_OUTBOX_BYTES).unwrap());
        let other = rusqlite::Connection::open(&outbox).unwrap();
        other
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;
                 UPDATE counters SET value = value WHERE name = 'applied'",
            )
            .unwrap();
        let started = std::time::Instant::now();
        let refused = super::open_read_only(&outbox, super::busy::AFTER_INTERRUPT);
        let took = started.elapsed();
        assert!(refused.is_err(), "the file is locked whole");
        assert!(took < std::time::Duration::from_secs(1), "waited {took:?}");
        drop(other);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn schema_1_keys_lose_their_api_version_only() {
        let path = "/deviceManagement/deviceConfigurations/c1/userStatuses/u%2F1";
        assert_eq!(user_status_key(&format!("/beta{path}")), path);
        assert_eq!(user_status_key(&format!("/v1.0{path}")), path);
        assert_eq!(user_status_key(path), path);
        assert_eq!(user_status_key("/betaX/a"), "/betaX/a");
    }
}
