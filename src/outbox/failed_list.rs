//! The failed list: reports that are never sent again by themselves (Graph refused them for
//! good, or their row could not be read), kept for [`failed`](super::Outbox::failed),
//! [`take_failed`](super::Outbox::take_failed) and
//! [`requeue_failed`](super::Outbox::requeue_failed).
//!
//! It is bounded, so it can never fill the file: at most `maxFailed` reports, and within
//! `maxBytes` it gives way to new reports. Beyond either, the oldest are dropped; every function
//! here returns how many it dropped, for the `failed_dropped` counter and a WARN.

use rusqlite::{Connection, params};

use super::failure;
use super::report::FailedReport;
use super::room::{at_page_limit, used_bytes};
use crate::{DateTimeOffset, Target, UserStatusPatch};

/// One report to keep: its target and patch as stored, its error as JSON, when (RFC 3339).
pub(crate) struct FailedRow<'a> {
    pub target: &'a str,
    pub patch: &'a str,
    pub error: &'a str,
    pub failed_at: &'a str,
}

impl FailedRow<'_> {
    fn bytes(&self) -> u64 {
        (self.target.len() + self.patch.len() + self.error.len() + self.failed_at.len() + 16) as u64
    }
}

/// Adds `row`. When `maxBytes` has no room for it, the oldest failed reports make way, and if none
/// is left, this one is dropped: the failed list never makes a write fail.
pub(crate) fn add(conn: &Connection, row: &FailedRow<'_>, max_bytes: u64) -> rusqlite::Result<u64> {
    let mut dropped = make_room(conn, row.bytes(), max_bytes)?;
    let insert = |conn: &Connection| {
        conn.prepare(
            "INSERT INTO failed (target, patch, error, failed_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![row.target, row.patch, row.error, row.failed_at])
    };
    match insert(conn) {
        Ok(_) => {}
        Err(err) if at_page_limit(&err, conn, row.bytes()) => {
            dropped += drop_oldest(conn, u64::MAX)?;
            match insert(conn) {
                Ok(_) => {}
                Err(err) if at_page_limit(&err, conn, row.bytes()) => dropped += 1,
                Err(err) => return Err(err),
            }
        }
        Err(err) => return Err(err),
    }
    Ok(dropped)
}

/// Drops the oldest failed reports until `needed` more bytes fit within `max_bytes`, or none is
/// left.
pub(crate) fn make_room(conn: &Connection, needed: u64, max_bytes: u64) -> rusqlite::Result<u64> {
    let mut dropped = 0;
    while used_bytes(conn)?.saturating_add(needed) > max_bytes {
        let removed = drop_oldest(conn, 16)?;
        if removed == 0 {
            break;
        }
        dropped += removed;
    }
    Ok(dropped)
}

/// Drops the oldest reports beyond `max_failed`.
pub(crate) fn trim(conn: &Connection, max_failed: u64) -> rusqlite::Result<u64> {
    let count: i64 = conn.query_row("SELECT count(*) FROM failed", [], |row| row.get(0))?;
    let excess = u64::try_from(count).unwrap_or(0).saturating_sub(max_failed);
    if excess == 0 {
        return Ok(0);
    }
    drop_oldest(conn, excess)
}

fn drop_oldest(conn: &Connection, n: u64) -> rusqlite::Result<u64> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let removed = conn.execute(
        "DELETE FROM failed WHERE id IN (SELECT id FROM failed ORDER BY id LIMIT ?1)",
        [n],
    )?;
    Ok(removed as u64)
}

/// A row of the list as stored: id, target JSON, patch JSON, error JSON, failed-at.
pub(crate) type StoredRow = (i64, String, String, String, String);

/// Every row, oldest first.
pub(crate) fn all(conn: &Connection) -> rusqlite::Result<Vec<StoredRow>> {
    let mut statement =
        conn.prepare("SELECT id, target, patch, error, failed_at FROM failed ORDER BY id")?;
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?
        .collect()
}

/// A row as a [`FailedReport`]; `None` when its target cannot be read. A patch that cannot be read
/// comes back empty, beside the STORAGE error that says so.
pub(crate) fn decode((_, target, patch, error, failed_at): &StoredRow) -> Option<FailedReport> {
    let value = serde_json::from_str(target).ok()?;
    let (target, version) = Target::from_value(value).ok()?;
    Some(FailedReport {
        target,
        api_version: version.unwrap_or_default(),
        patch: UserStatusPatch::from_json(patch).unwrap_or_default(),
        error: failure::from_json(error),
        failed_at: DateTimeOffset::parse(failed_at)
            .or_else(|_| DateTimeOffset::parse("1970-01-01T00:00:00Z"))
            .ok()?,
    })
}

/// Every row that [`decode`] reads, oldest first, and the ids of those it cannot.
pub(crate) fn read_all(conn: &Connection) -> rusqlite::Result<(Vec<FailedReport>, Vec<i64>)> {
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for row in all(conn)? {
        match decode(&row) {
            Some(report) => reports.push(report),
            None => unreadable.push(row.0),
        }
    }
    Ok((reports, unreadable))
}

/// Logs the rows (`failed.id`) that could not be read and stay in the file (call it with no lock
/// held).
pub(crate) fn warn_unreadable(file: &str, ids: &[i64]) {
    if !ids.is_empty() {
        log::warn!(
            "outbox {file}: failed report(s) {ids:?} (failed.id) cannot be read and stay in the \
             file"
        );
    }
}

/// Removes the rows `ids`.
pub(crate) fn remove(conn: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let mut statement = conn.prepare("DELETE FROM failed WHERE id = ?1")?;
    for id in ids {
        statement.execute([id])?;
    }
    Ok(())
}

/// Logs what a transaction set aside (call it with no lock held: the log may call into the
/// caller).
pub(crate) fn warn(file: &str, unreadable: u64, dropped: u64) {
    if unreadable > 0 {
        log::warn!(
            "outbox {file}: {unreadable} pending report(s) could not be read and were moved to \
             the failed list"
        );
    }
    if dropped > 0 {
        log::warn!(
            "outbox {file}: {dropped} failed report(s) dropped, the oldest first (beyond \
             maxFailed, or to make room for new reports within maxBytes)"
        );
    }
}
