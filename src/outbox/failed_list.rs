//! The failed list: reports that are never sent again by themselves (Graph refused them for
//! good, or their row could not be read), kept for [`failed`](super::Outbox::failed),
//! [`take_failed`](super::Outbox::take_failed) and
//! [`requeue_failed`](super::Outbox::requeue_failed).
//!
//! It is bounded, so it can never fill the file: at most `maxFailed` reports, and within
//! `maxBytes` it gives way to new reports (after the acknowledgements: see `eviction`). Beyond
//! either, the oldest are dropped; every function here returns how many it dropped, for the
//! `failed_dropped` counter and a WARN.

use rusqlite::{Connection, params};

use super::failure;
use super::report::FailedReport;
use super::room::at_page_limit;
use super::stored_text::StoredText;
use crate::{DateTimeOffset, Target, UserStatusPatch};

/// One report to keep: its target and patch as stored, its error as JSON, when (RFC 3339).
pub(crate) struct FailedRow<'a> {
    pub target: &'a str,
    pub patch: &'a str,
    pub error: &'a str,
    pub failed_at: &'a str,
}

impl FailedRow<'_> {
    /// About the room it takes.
    pub(crate) fn bytes(&self) -> u64 {
        (self.target.len() + self.patch.len() + self.error.len() + self.failed_at.len() + 16) as u64
    }
}

/// Adds `row` (make room for it first: `eviction::make_room`). Should SQLite's page limit
/// (`maxBytes`) still refuse it, the other failed reports make way, and if that is not enough,
/// this one is dropped: the failed list never makes a write fail.
pub(crate) fn add(conn: &Connection, row: &FailedRow<'_>) -> rusqlite::Result<u64> {
    let insert = |conn: &Connection| {
        conn.prepare_cached(
            "INSERT INTO failed (target, patch, error, failed_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![row.target, row.patch, row.error, row.failed_at])
    };
    match insert(conn) {
        Ok(_) => Ok(0),
        Err(err) if at_page_limit(&err, conn, row.bytes()) => {
            let mut dropped = drop_oldest(conn, u64::MAX)?;
            match insert(conn) {
                Ok(_) => {}
                Err(err) if at_page_limit(&err, conn, row.bytes()) => dropped += 1,
                Err(err) => return Err(err),
            }
            Ok(dropped)
        }
        Err(err) => Err(err),
    }
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

/// Drops the `n` oldest reports; returns how many.
pub(crate) fn drop_oldest(conn: &Connection, n: u64) -> rusqlite::Result<u64> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let removed = conn.execute(
        "DELETE FROM failed WHERE id IN (SELECT id FROM failed ORDER BY id LIMIT ?1)",
        [n],
    )?;
    Ok(removed as u64)
}

/// A row of the list as stored, each column as the file holds it (a damaged file may hold
/// something other than text: see [`StoredText`]).
pub(crate) struct StoredRow {
    pub id: i64,
    /// The target JSON.
    pub target: StoredText,
    /// The patch JSON.
    pub patch: StoredText,
    /// The error JSON.
    pub error: StoredText,
    /// RFC 3339.
    pub failed_at: StoredText,
}

/// Every row, oldest first.
pub(crate) fn all(conn: &Connection) -> rusqlite::Result<Vec<StoredRow>> {
    let mut statement =
        conn.prepare("SELECT id, target, patch, error, failed_at FROM failed ORDER BY id")?;
    statement
        .query_map([], |row| {
            Ok(StoredRow {
                id: row.get(0)?,
                target: row.get(1)?,
                patch: row.get(2)?,
                error: row.get(3)?,
                failed_at: row.get(4)?,
            })
        })?
        .collect()
}

/// A row as a [`FailedReport`]; `None` when its target cannot be read. A patch that cannot be read
/// comes back empty, beside the STORAGE error that says so.
pub(crate) fn decode(row: &StoredRow) -> Option<FailedReport> {
    let value = serde_json::from_str(row.target.text().ok()?).ok()?;
    let (target, version) = Target::from_value(value).ok()?;
    let patch = row.patch.text().ok().map(UserStatusPatch::from_json);
    Some(FailedReport {
        target,
        api_version: version.unwrap_or_default(),
        patch: patch.and_then(Result::ok).unwrap_or_default(),
        error: failure::from_json(row.error.shown()),
        failed_at: row
            .failed_at
            .text()
            .ok()
            .and_then(|at| DateTimeOffset::parse(at).ok())
            .or_else(|| DateTimeOffset::parse("1970-01-01T00:00:00Z").ok())?,
    })
}

/// Every row that [`decode`] reads, oldest first, and the ids of those it cannot.
pub(crate) fn read_all(conn: &Connection) -> rusqlite::Result<(Vec<FailedReport>, Vec<i64>)> {
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for row in all(conn)? {
        match decode(&row) {
            Some(report) => reports.push(report),
            None => unreadable.push(row.id),
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
    let mut statement = conn.prepare_cached("DELETE FROM failed WHERE id = ?1")?;
    for id in ids {
        statement.execute([id])?;
    }
    Ok(())
}

/// Logs what a transaction set aside (call it with no lock held: the log may call into the
/// caller).
pub(crate) fn warn(file: &str, unreadable: u64, dropped: u64) {
    for warning in warnings(file, unreadable, dropped) {
        log::warn!("{warning}");
    }
}

/// The WARNs of [`warn`], for a caller that logs them later: a flush, once it let go of its lock.
pub(crate) fn warnings(file: &str, unreadable: u64, dropped: u64) -> Vec<String> {
    let mut warnings = Vec::new();
    if unreadable > 0 {
        warnings.push(format!(
            "outbox {file}: {unreadable} pending report(s) could not be read and were moved to \
             the failed list"
        ));
    }
    if dropped > 0 {
        warnings.push(format!(
            "outbox {file}: {dropped} failed report(s) dropped, the oldest first (beyond \
             maxFailed, or to make room for new reports within maxBytes)"
        ));
    }
    warnings
}
