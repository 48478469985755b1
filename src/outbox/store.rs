//! The outbox's SQL: every read and write of the file, each write one transaction.
//!
//! Nothing here sends anything: the flush reads what is due, sends it with no transaction open,
//! then records the outcomes here.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{Enqueued, OutboxOptions};
use crate::UserStatusPatch;

/// Milliseconds since the Unix epoch: the file's clock, shared by every process using it.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why a store operation failed.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// SQLite failed (I/O, disk full, locked past the busy timeout, ...).
    Sql(rusqlite::Error),
    /// A bound was reached; nothing was stored.
    Full(String),
    /// A stored value could not be read back.
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::Sql(err)
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// What a failed SQLite call means for the file: the reason of an [`Error::Storage`](crate::Error).
///
/// SQLite reports a write refused for lack of space (`ENOSPC`) as "database or disk is full" but
/// every other failed write (a full disk quota, the process's file size limit, a failing device)
/// as a bare "disk I/O error", so the reason says what such a write failure can be.
pub(crate) fn reason(err: &rusqlite::Error) -> String {
    let Some(code) = err.sqlite_error_code() else {
        return err.to_string();
    };
    let extended = match err {
        rusqlite::Error::SqliteFailure(failure, _) => failure.extended_code,
        _ => 0,
    };
    use rusqlite::ffi;
    match (code, extended) {
        (ErrorCode::DiskFull, _) => {
            format!("the disk is full, or the file reached maxBytes: {err}")
        }
        (
            _,
            ffi::SQLITE_IOERR_WRITE
            | ffi::SQLITE_IOERR_FSYNC
            | ffi::SQLITE_IOERR_TRUNCATE
            | ffi::SQLITE_IOERR_SHMSIZE,
        ) => format!(
            "cannot write to the file: the disk or the disk quota may be full, the file may be at \
             the process's file size limit (RLIMIT_FSIZE), or the device failed ({err})"
        ),
        _ => err.to_string(),
    }
}

/// One validated report to store.
pub(crate) struct Entry {
    /// The canonical key: API version and encoded request path.
    pub key: String,
    /// The target as JSON.
    pub target: String,
    pub patch: UserStatusPatch,
}

/// A pending report claimed for sending.
pub(crate) struct Due {
    pub key: String,
    pub target: String,
    pub patch: UserStatusPatch,
    /// The revision sent: the row is removed on success only if it still has it.
    pub revision: i64,
    /// Failed flushes in a row before this one.
    pub failures: u32,
}

/// What became of a sent report.
pub(crate) enum Outcome {
    /// Graph applied it.
    Applied,
    /// Keep it; try again at `until` (unix ms).
    Retry { until: i64, message: String },
    /// Never retry it by itself: move it to the failed list with `error` (JSON).
    Failed { error: String, failed_at: String },
}

fn parse_patch(text: &str) -> Result<UserStatusPatch> {
    UserStatusPatch::from_json(text)
        .map_err(|err| StoreError::Corrupt(format!("a stored patch cannot be read: {err}")))
}

/// A patch as stored: its wire JSON, as text, so `sqlite3` shows it.
fn text(patch: &UserStatusPatch) -> String {
    String::from_utf8(patch.to_json()).unwrap_or_default()
}

fn write_tx(conn: &mut Connection) -> Result<Transaction<'_>> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn bump(tx: &Transaction<'_>, counter: &str, by: i64) -> Result<i64> {
    Ok(tx.query_row(
        "UPDATE counters SET value = value + ?2 WHERE name = ?1 RETURNING value",
        params![counter, by],
        |row| row.get(0),
    )?)
}

fn counter(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn
        .query_row(
            "SELECT value FROM counters WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// What Graph acknowledged for `key`, if it is recent enough to skip a report that equals it.
fn fresh_acknowledged(
    conn: &Connection,
    key: &str,
    options: &OutboxOptions,
    now: i64,
) -> Result<Option<UserStatusPatch>> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT fields, acknowledged_at FROM acknowledged WHERE key = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let window = i64::try_from(options.resend_after.as_millis()).unwrap_or(i64::MAX);
    match row {
        Some((fields, at)) if now.saturating_sub(at) < window => Ok(Some(parse_patch(&fields)?)),
        _ => Ok(None),
    }
}

/// Bytes in use (pages not on the free list).
fn used_bytes(conn: &Connection) -> Result<u64> {
    let used = pragma(conn, "page_count")? - pragma(conn, "freelist_count")?;
    Ok(unsigned(used * pragma(conn, "page_size")?))
}

/// The value of a read-only pragma such as `page_count`.
fn pragma(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))?)
}

/// Whether the pages `maxBytes` still allows (SQLite's `max_page_count`, and the free pages)
/// hold a row of `row` bytes with room to spare for the pages SQLite adds around it. A failed
/// statement is rolled back, so this is the room the row had.
fn room_for(conn: &Connection, row: u64) -> Result<bool> {
    const SPARE: u64 = 64 * 1024;
    let free_pages = pragma(conn, "max_page_count")? - pragma(conn, "page_count")?
        + pragma(conn, "freelist_count")?;
    let room = unsigned(free_pages * pragma(conn, "page_size")?);
    Ok(room >= row.saturating_add(SPARE))
}

/// Stores `entries` in one transaction, all or nothing: each merges into its target's pending
/// report, or is skipped as unchanged, or becomes a new pending report if the bounds allow.
pub(crate) fn enqueue(
    conn: &mut Connection,
    entries: &[Entry],
    options: &OutboxOptions,
) -> Result<Vec<Enqueued>> {
    let now = now_ms();
    let tx = write_tx(conn)?;
    let mut skipped = 0;
    let mut outcomes = Vec::with_capacity(entries.len());
    for entry in entries {
        let stored: Option<String> = tx
            .query_row(
                "SELECT patch FROM pending WHERE key = ?1",
                [&entry.key],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(stored) = stored {
            let mut merged = parse_patch(&stored)?;
            merged.merge(&entry.patch);
            let revision = bump(&tx, "revision", 1)?;
            tx.execute(
                "UPDATE pending SET patch = ?2, revision = ?3 WHERE key = ?1",
                params![entry.key, text(&merged), revision],
            )?;
            outcomes.push(Enqueued::Merged);
            continue;
        }
        if options.skip_unchanged
            && fresh_acknowledged(&tx, &entry.key, options, now)?
                .is_some_and(|acknowledged| entry.patch.is_within(&acknowledged))
        {
            skipped += 1;
            outcomes.push(Enqueued::Skipped);
            continue;
        }
        let count = unsigned(counter(&tx, "pending")?);
        if count >= options.max_pending {
            return Err(StoreError::Full(format!(
                "{count} targets are pending, the most maxPending ({}) allows",
                options.max_pending
            )));
        }
        let patch = text(&entry.patch);
        // The row's own bytes (its key twice: the table and its index).
        let row = (2 * entry.key.len() + entry.target.len() + patch.len()) as u64;
        // Room is kept for merges and for moving reports to the failed list.
        let reserve = (options.max_bytes / 64).max(32 * 1024);
        let used = used_bytes(&tx)?;
        if used.saturating_add(reserve).saturating_add(row) > options.max_bytes {
            return Err(full_bytes(used, options));
        }
        let revision = bump(&tx, "revision", 1)?;
        let inserted = tx.execute(
            "INSERT INTO pending (key, target, patch, revision, enqueued_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![entry.key, entry.target, patch, revision, now],
        );
        match inserted {
            // SQLite says "full" for its page limit (maxBytes) and for a full disk alike; only
            // the first is the outbox being full, the second is STORAGE.
            Err(err)
                if err.sqlite_error_code() == Some(ErrorCode::DiskFull) && !room_for(&tx, row)? =>
            {
                return Err(full_bytes(used, options));
            }
            other => other?,
        };
        outcomes.push(Enqueued::Stored);
    }
    if skipped > 0 {
        bump(&tx, "skipped", skipped)?;
    }
    tx.commit()?;
    Ok(outcomes)
}

fn full_bytes(used: u64, options: &OutboxOptions) -> StoreError {
    StoreError::Full(format!(
        "{used} bytes are in use, near the most maxBytes ({}) allows",
        options.max_bytes
    ))
}

/// The keys of every report due at `now`, oldest first.
pub(crate) fn due_keys(conn: &Connection, now: i64) -> Result<Vec<String>> {
    let mut statement = conn.prepare(
        "SELECT key FROM pending WHERE next_attempt_at <= ?1 ORDER BY next_attempt_at, enqueued_at",
    )?;
    let keys = statement
        .query_map([now], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(keys)
}

/// Reads the reports for `keys` as they are now, to send them. A report that equals what Graph
/// acknowledged recently (a later report set it back) is removed unsent and counted as skipped.
pub(crate) fn claim(
    conn: &mut Connection,
    keys: &[String],
    options: &OutboxOptions,
) -> Result<(Vec<Due>, usize)> {
    let now = now_ms();
    let tx = write_tx(conn)?;
    let mut due = Vec::with_capacity(keys.len());
    let mut skipped = 0;
    for key in keys {
        let row: Option<(String, String, i64, u32)> = tx
            .query_row(
                "SELECT target, patch, revision, failures FROM pending WHERE key = ?1",
                [key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let Some((target, patch, revision, failures)) = row else {
            continue;
        };
        let patch = parse_patch(&patch)?;
        if options.skip_unchanged
            && fresh_acknowledged(&tx, key, options, now)?
                .is_some_and(|acknowledged| patch.is_within(&acknowledged))
        {
            tx.execute("DELETE FROM pending WHERE key = ?1", [key])?;
            skipped += 1;
            continue;
        }
        due.push(Due {
            key: key.clone(),
            target,
            patch,
            revision,
            failures,
        });
    }
    if skipped > 0 {
        bump(&tx, "skipped", i64::try_from(skipped).unwrap_or(i64::MAX))?;
    }
    tx.commit()?;
    Ok((due, skipped))
}

/// Records what became of each sent report, in one transaction.
pub(crate) fn record(conn: &mut Connection, outcomes: &[(Due, Outcome)]) -> Result<()> {
    let now = now_ms();
    let tx = write_tx(conn)?;
    let mut applied = 0;
    for (due, outcome) in outcomes {
        match outcome {
            Outcome::Applied => {
                applied += 1;
                let removed = tx.execute(
                    "DELETE FROM pending WHERE key = ?1 AND revision = ?2",
                    params![due.key, due.revision],
                )?;
                if removed == 0 {
                    // Merged into while in flight: the newer report stays, due, with no backoff.
                    tx.execute(
                        "UPDATE pending SET failures = 0, last_error = NULL WHERE key = ?1",
                        [&due.key],
                    )?;
                }
                let known: Option<String> = tx
                    .query_row(
                        "SELECT fields FROM acknowledged WHERE key = ?1",
                        [&due.key],
                        |row| row.get(0),
                    )
                    .optional()?;
                let mut fields = match known {
                    Some(text) => parse_patch(&text)?,
                    None => UserStatusPatch::new(),
                };
                fields.merge(&due.patch);
                tx.execute(
                    "INSERT INTO acknowledged (key, fields, acknowledged_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET fields = excluded.fields,
                         acknowledged_at = excluded.acknowledged_at",
                    params![due.key, text(&fields), now],
                )?;
            }
            Outcome::Retry { until, message } => {
                tx.execute(
                    "UPDATE pending SET failures = failures + 1, next_attempt_at = ?2,
                         last_error = ?3 WHERE key = ?1",
                    params![due.key, until, message],
                )?;
            }
            Outcome::Failed { error, failed_at } => {
                tx.execute(
                    "INSERT INTO failed (target, patch, error, failed_at) VALUES (?1, ?2, ?3, ?4)",
                    params![due.target, text(&due.patch), error, failed_at],
                )?;
                // A report merged in meanwhile stays pending: it is newer than what failed.
                tx.execute(
                    "DELETE FROM pending WHERE key = ?1 AND revision = ?2",
                    params![due.key, due.revision],
                )?;
            }
        }
    }
    if applied > 0 {
        bump(&tx, "applied", applied)?;
    }
    tx.commit()?;
    Ok(())
}

/// Holds `keys` back until `until` (unix ms) without counting a failure: the flush stopped
/// because Graph throttled it, and sending them sooner would only be throttled too.
pub(crate) fn defer(conn: &mut Connection, keys: &[String], until: i64) -> Result<()> {
    let tx = write_tx(conn)?;
    for key in keys {
        tx.execute(
            "UPDATE pending SET next_attempt_at = max(next_attempt_at, ?2) WHERE key = ?1",
            params![key, until],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Reports pending and the earliest next attempt (unix ms).
pub(crate) fn remaining(conn: &Connection) -> Result<(u64, Option<i64>)> {
    let (count, next) = conn.query_row(
        "SELECT count(*), min(next_attempt_at) FROM pending",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok((unsigned(count), next))
}

/// SQLite integers are signed; counts and sizes never are.
fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The figures [`Outbox::stats`](super::Outbox::stats) returns, raw.
pub(crate) struct Figures {
    pub pending: u64,
    pub failed: u64,
    pub skipped: u64,
    pub applied: u64,
    pub bytes: u64,
    pub oldest_enqueued_at: Option<i64>,
}

pub(crate) fn figures(conn: &Connection) -> Result<Figures> {
    let (pending, oldest): (i64, Option<i64>) = conn.query_row(
        "SELECT count(*), min(enqueued_at) FROM pending",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let failed: i64 = conn.query_row("SELECT count(*) FROM failed", [], |row| row.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    Ok(Figures {
        pending: unsigned(pending),
        failed: unsigned(failed),
        skipped: unsigned(counter(conn, "skipped")?),
        applied: unsigned(counter(conn, "applied")?),
        bytes: unsigned(pages * page_size),
        oldest_enqueued_at: oldest,
    })
}

/// A row of the failed list: target JSON, patch JSON, error JSON, failed-at.
pub(crate) type FailedRow = (String, String, String, String);

/// Removes and returns the whole failed list, oldest first.
pub(crate) fn take_failed(conn: &mut Connection) -> Result<Vec<FailedRow>> {
    let tx = write_tx(conn)?;
    let rows = {
        let mut statement =
            tx.prepare("SELECT target, patch, error, failed_at FROM failed ORDER BY id")?;
        statement
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<rusqlite::Result<Vec<FailedRow>>>()?
    };
    tx.execute("DELETE FROM failed", [])?;
    tx.commit()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page limit met inside an INSERT (past the reserve check, which a caller's options
    /// normally make first) is the outbox being full, not a storage failure. (SQLite's other
    /// "full", a disk out of space, needs a full file system to show: it stays `Sql`, i.e.
    /// STORAGE, by the same test of `at_page_limit`.)
    #[test]
    fn the_page_limit_inside_an_insert_is_full_not_storage() {
        let path = std::env::temp_dir().join(format!(
            "ius-store-page-limit-{}-{}.db",
            std::process::id(),
            now_ms()
        ));
        let mut conn = super::super::schema::open(&path, super::super::MIN_OUTBOX_BYTES).unwrap();
        // Options that allow far more than the file's page limit, so only SQLite stops it.
        let options = OutboxOptions::default();
        let name = "n".repeat(4000);
        let outcome = (0..1000).find_map(|i| {
            let entry = Entry {
                key: format!("/beta/x/{i}"),
                target: "{}".into(),
                patch: UserStatusPatch::new().user_display_name(format!("{name}{i}")),
            };
            enqueue(&mut conn, &[entry], &options).err()
        });
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        match outcome {
            Some(StoreError::Full(reason)) => assert!(reason.contains("maxBytes"), "{reason}"),
            Some(other) => panic!("not Full: {other:?}"),
            None => panic!("never full"),
        }
    }
}
