//! The outbox's file and its SQL: every read and write, each write one transaction.
//!
//! Nothing here sends anything: the flush reads what is due, sends it with no transaction open,
//! then records the outcomes here. Times come in as arguments (the caller's [`Clock`]).
//!
//! [`Clock`]: super::clock::Clock

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::acknowledged;
use super::busy;
use super::clock::{Horizon, rfc3339};
use super::eviction;
use super::failed_list::{self, FailedRow};
use super::failure;
use super::hold;
use super::in_doubt::{self, InDoubt};
use super::options::OutboxOptions;
use super::report::{Enqueued, FailedReport, OutboxStats};
use super::room::{self, at_page_limit, pragma, unsigned, used_bytes};
use super::stored_text::StoredText;
use crate::cancel::{self, Guarded, Waited};
use crate::{ApiVersion, BulkItem, DateTimeOffset, Error, Target, UserStatusPatch};

/// Why a store operation failed.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// SQLite failed (I/O, disk full, locked past the busy timeout, ...).
    Sql(rusqlite::Error),
    /// A bound was reached; nothing was stored.
    Full(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::Sql(err)
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Why a statement run within a deadline (`busy::within`: the departure hook's, within the call's
/// `timeouts.totalMs` and the flush's `flushTimeMs`) failed when the file stayed busy past it.
const OUT_OF_TIME: &str = "the file stayed busy (another connection or call was writing to it) \
     past the time the call had (timeouts.totalMs) or the flush had (the outbox's flushTimeMs)";

/// The open file: one connection, lent to one call at a time and never across a request. A clone
/// shares the connection (a flush's hook run before each request leaves writes through it).
#[derive(Clone)]
pub(crate) struct Store {
    /// The path as the caller gave it, for errors.
    path: String,
    /// The connection, `None` while a call has it: a call waits for its turn in a wait an
    /// interrupt ends (busy.rs).
    conn: Arc<Guarded<Option<Connection>>>,
}

/// The connection lent to one call; dropping it (a panicking job too) gives it back.
struct Lent<'a> {
    slot: &'a Guarded<Option<Connection>>,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        *self.slot.lock() = self.conn.take();
        self.slot.notify_all();
    }
}

impl Store {
    pub(crate) fn new(path: &Path, conn: Connection) -> Store {
        Store {
            path: path.display().to_string(),
            conn: Arc::new(Guarded::new(Some(conn))),
        }
    }

    /// The path as the caller gave it.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Runs `job` on the connection, with its failure as the caller sees it.
    pub(crate) fn run<T>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> std::result::Result<T, Error> {
        let mut lent = self.borrow()?;
        let Some(conn) = lent.conn.as_mut() else {
            return Err(self.storage("the outbox's connection is gone".into()));
        };
        job(conn).map_err(|err| match err {
            StoreError::Full(reason) => Error::OutboxFull { reason },
            // The busy handler (busy.rs) stopped waiting because the call was interrupted.
            StoreError::Sql(err)
                if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && cancel::current().is_some_and(|watch| watch.cancelled()) =>
            {
                Error::cancelled(
                    "waiting for the outbox file (another connection was writing to it)",
                    "",
                    0,
                )
            }
            // The busy handler stopped waiting at the deadline `busy::within` set.
            StoreError::Sql(err)
                if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && busy::out_of_time() =>
            {
                self.storage(OUT_OF_TIME.to_owned())
            }
            StoreError::Sql(err) => self.storage(reason(&err)),
        })
    }

    /// The connection, once no other call on this handle has it (see `busy::wait_for_turn`).
    fn borrow(&self) -> std::result::Result<Lent<'_>, Error> {
        let slot = self.conn.lock();
        let (mut slot, waited) = busy::wait_for_turn(&self.conn, slot, |conn| conn.is_none());
        match waited {
            Waited::Done => {}
            Waited::TimedOut => return Err(self.storage(OUT_OF_TIME.to_owned())),
            Waited::Cancelled => {
                return Err(Error::cancelled(
                    "waiting for the outbox file (another call on this outbox was using it)",
                    "",
                    0,
                ));
            }
        }
        Ok(Lent {
            slot: &self.conn,
            conn: slot.take(),
        })
    }

    /// The failed list, oldest first, kept in the file; a row that cannot be read is left out
    /// (WARN).
    pub(crate) fn failed_list(&self) -> std::result::Result<Vec<FailedReport>, Error> {
        let (reports, left) = self.run(|conn| Ok(failed_list::read_all(conn)?))?;
        failed_list::warn_unreadable(&self.path, &left);
        Ok(reports)
    }

    /// Tests only: the connection, held until the guard is dropped, as another call on this
    /// handle working with it holds it.
    #[cfg(any(test, feature = "test-seams"))]
    pub(crate) fn hold(&self) -> std::result::Result<impl Drop + '_, Error> {
        self.borrow()
    }

    /// A STORAGE error about this file.
    pub(crate) fn storage(&self, reason: String) -> Error {
        Error::storage(self.path.clone(), reason)
    }
}

/// What a failed SQLite call means for the file: the reason of an [`Error::Storage`].
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
    /// The user status: its encoded request path without the API version (route and ids).
    pub key: String,
    /// The target as JSON, with the API version this report names.
    pub target: String,
    pub patch: UserStatusPatch,
}

/// A pending report claimed for sending.
pub(crate) struct Due {
    pub key: String,
    /// The target as stored, for the failed list.
    pub target: String,
    /// What to send: target, merged patch, API version.
    pub item: BulkItem,
    /// The revision sent: the row is removed on success only if it still has it.
    pub revision: i64,
    /// Failed flushes in a row before this one.
    pub failures: u32,
    /// Its next attempt before the claim held it back (unix ms): what a report claimed and not
    /// sent gets back.
    pub due_at: i64,
    /// The write in doubt for its user status before the claim: all that may land once this
    /// one's outcome is known.
    pub in_doubt_before: Option<InDoubt>,
}

impl Due {
    pub(crate) fn version(&self) -> ApiVersion {
        self.item.requested_api_version().unwrap_or_default()
    }
}

/// What became of a sent report.
pub(crate) enum Outcome {
    /// Graph applied it. `known`: by the one request that carried it (after several, what
    /// became of the earlier ones is unknown: they may still land).
    Applied { known: bool },
    /// Keep it; try again at `until` (unix ms). `known`: its one request certainly was not
    /// processed (see `failure::never_processed`); else Graph may still apply it.
    Retry {
        until: i64,
        message: String,
        known: bool,
    },
    /// Never retry it by itself: move it to the failed list with `error` (JSON); `known` as for
    /// `Applied`.
    Failed {
        error: String,
        failed_at: String,
        known: bool,
    },
    /// Claimed and not sent (a stop or an interrupt came first): due when it was before.
    NotSent,
}

impl Outcome {
    /// Whether what became of the write is known: else Graph may still apply it.
    pub(crate) fn known(&self) -> bool {
        match self {
            Outcome::Applied { known }
            | Outcome::Retry { known, .. }
            | Outcome::Failed { known, .. } => *known,
            Outcome::NotSent => true,
        }
    }
}

/// A patch as stored: its wire JSON, as text, so `sqlite3` shows it.
fn text(patch: &UserStatusPatch) -> String {
    String::from_utf8(patch.to_json()).unwrap_or_default()
}

fn write_tx(conn: &mut Connection) -> Result<Transaction<'_>> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn bump(tx: &Transaction<'_>, counter: &str, by: u64) -> Result<()> {
    if by > 0 {
        tx.prepare_cached("UPDATE counters SET value = value + ?2 WHERE name = ?1")?
            .execute(params![counter, i64::try_from(by).unwrap_or(i64::MAX)])?;
    }
    Ok(())
}

fn counter(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// A pending row as the file holds it: every column read whatever it holds, so one damaged row
/// fails alone.
struct PendingRow {
    rowid: i64,
    key: StoredText,
    target: StoredText,
    patch: StoredText,
    revision: Option<i64>,
    failures: Option<i64>,
    enqueued_at: Option<i64>,
    next_attempt_at: Option<i64>,
}

impl PendingRow {
    const COLUMNS: &'static str =
        "rowid, key, target, patch, revision, failures, enqueued_at, next_attempt_at";

    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<PendingRow> {
        // A number column holding anything else reads as `None`.
        let number = |i: usize| row.get::<_, Option<i64>>(i).ok().flatten();
        Ok(PendingRow {
            rowid: row.get(0)?,
            key: row.get(1)?,
            target: row.get(2)?,
            patch: row.get(3)?,
            revision: number(4),
            failures: number(5),
            enqueued_at: number(6),
            next_attempt_at: number(7),
        })
    }

    /// The row with key (or, for a row whose key is damaged, the handle: see [`due_keys`])
    /// `key`.
    fn find(conn: &Connection, key: &str) -> Result<Option<PendingRow>> {
        let (condition, value) = match damaged_key_rowid(key) {
            Some(rowid) => ("rowid = ?1", rusqlite::types::Value::Integer(rowid)),
            None => ("key = ?1", rusqlite::types::Value::Text(key.to_owned())),
        };
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {} FROM pending WHERE {condition}",
                PendingRow::COLUMNS
            ))?
            .query_row([value], PendingRow::read)
            .optional()?)
    }

    /// Its patch, or why it cannot be read.
    fn patch(&self) -> std::result::Result<UserStatusPatch, String> {
        let text = self
            .patch
            .text()
            .map_err(|why| format!("its stored patch {why}"))?;
        UserStatusPatch::from_json(text)
            .map_err(|err| format!("its stored patch cannot be read ({err})"))
    }

    /// What to send, or why the row cannot be sent.
    fn item(&self) -> std::result::Result<(String, BulkItem, i64, u32), String> {
        let key = self.key.text().map_err(|why| format!("its key {why}"))?;
        let target = self
            .target
            .text()
            .map_err(|why| format!("its stored target {why}"))?;
        let patch = self.patch()?;
        let value = serde_json::from_str(target)
            .map_err(|err| format!("its stored target cannot be read ({err})"))?;
        let (target, version) = Target::from_value(value)
            .map_err(|err| format!("its stored target cannot be read ({err})"))?;
        let (Some(revision), Some(failures)) = (self.revision, self.failures) else {
            return Err("its revision or failure count is not a number".into());
        };
        let item = BulkItem::new(target, patch).api_version(version.unwrap_or_default());
        Ok((
            key.to_owned(),
            item,
            revision,
            u32::try_from(failures).unwrap_or(u32::MAX),
        ))
    }
}

/// Removes the pending row `rowid`.
fn delete_pending(tx: &Transaction<'_>, rowid: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM pending WHERE rowid = ?1")?
        .execute([rowid])?;
    Ok(())
}

/// A row whose key the file holds damaged is named in a flush by `#` and its rowid (a key always
/// begins with `/`).
fn damaged_key_rowid(key: &str) -> Option<i64> {
    key.strip_prefix('#')?.parse().ok()
}

/// Moves the pending `row`, which cannot be read or sent, to the failed list with a STORAGE error
/// naming it and saying `why`. Returns the failed reports dropped to make room.
fn fail_unreadable(
    tx: &Transaction<'_>,
    row: &PendingRow,
    why: &str,
    options: &OutboxOptions,
    (now, failed_at): (i64, &str),
    file: &str,
) -> Result<u64> {
    let name = match row.key.text() {
        Ok(key) => key.to_owned(),
        Err(_) => format!("{} (pending row {})", row.key.shown(), row.rowid),
    };
    let error = failure::to_json(&Error::storage(
        file.to_owned(),
        format!("the pending report for {name} cannot be sent: {why}"),
    ));
    let failed = FailedRow {
        target: row.target.shown(),
        patch: row.patch.shown(),
        error: &error,
        failed_at,
    };
    let dropped = keep_failed(tx, &failed, options, now)?;
    delete_pending(tx, row.rowid)?;
    Ok(dropped)
}

/// Records that Graph applied `patch` to `key`, making room first (acknowledgements give way to
/// each other, never a failed report). When there is no room even so, it is left out: an
/// acknowledgement only saves a resend. (A write SQLite's page limit stops may roll back the
/// whole transaction, so room is made beforehand, never tried.)
fn acknowledge(
    tx: &Transaction<'_>,
    key: &str,
    patch: &UserStatusPatch,
    options: &OutboxOptions,
    now: i64,
) -> Result<()> {
    let bytes = acknowledged::bytes(key, patch, unsigned(pragma(tx, "page_size")?));
    if eviction::acknowledgements_give_way(tx, bytes, options, now)? {
        acknowledged::confirm(tx, key, patch, now)?;
    }
    Ok(())
}

/// Adds `row` to the failed list, making room first. Returns the failed reports dropped.
fn keep_failed(
    tx: &Transaction<'_>,
    row: &FailedRow<'_>,
    options: &OutboxOptions,
    now: i64,
) -> Result<u64> {
    let dropped = eviction::make_room(tx, row.bytes(), options, now)?;
    Ok(dropped + failed_list::add(tx, row)?)
}

/// What an enqueue stored, and what it set aside.
pub(crate) struct Enqueue {
    pub outcomes: Vec<Enqueued>,
    /// Pending reports that could not be read, moved to the failed list (WARN).
    pub unreadable: u64,
    /// Failed reports dropped to make room (WARN).
    pub dropped: u64,
}

/// Stores `entries` in one transaction, all or nothing: each merges into its user status's pending
/// report, or is skipped as unchanged, or becomes a new pending report if the bounds allow.
pub(crate) fn enqueue(
    conn: &mut Connection,
    entries: &[Entry],
    options: &OutboxOptions,
    (now, failed_at): (i64, &str),
    file: &str,
) -> Result<Enqueue> {
    let tx = write_tx(conn)?;
    let mut done = Enqueue {
        outcomes: Vec::with_capacity(entries.len()),
        unreadable: 0,
        dropped: 0,
    };
    let put = Put {
        options,
        now,
        failed_at,
        file,
    };
    for entry in entries {
        let outcome = put.one(&tx, entry, Age::Newer, &mut done)?;
        done.outcomes.push(outcome);
    }
    let skipped = done
        .outcomes
        .iter()
        .filter(|outcome| **outcome == Enqueued::Skipped)
        .count() as u64;
    bump(&tx, "skipped", skipped)?;
    bump(&tx, "failed_dropped", done.dropped)?;
    tx.commit()?;
    Ok(done)
}

/// How a report to store relates to one pending for the same user status.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Age {
    /// Reported after it (an enqueue): its properties win, its target's API version goes.
    Newer,
    /// Reported before it (a failed report requeued): the pending report's properties and target
    /// win.
    Older,
}

/// What storing a report needs to know.
struct Put<'a> {
    options: &'a OutboxOptions,
    now: i64,
    failed_at: &'a str,
    file: &'a str,
}

impl Put<'_> {
    /// Stores `entry` inside `tx`: merged into its user status's pending report, skipped as
    /// unchanged, or a new pending report if the bounds allow. What it sets aside is counted in
    /// `done`.
    fn one(
        &self,
        tx: &Transaction<'_>,
        entry: &Entry,
        age: Age,
        done: &mut Enqueue,
    ) -> Result<Enqueued> {
        let (options, now) = (self.options, self.now);
        if let Some(stored) = PendingRow::find(tx, &entry.key)? {
            match stored.patch() {
                Ok(pending) => {
                    let (merged, target) = match (age, stored.target.text()) {
                        // The later report's API version goes with the merged one (which also
                        // replaces a target the file held damaged).
                        (Age::Newer, _) | (Age::Older, Err(_)) => {
                            let mut merged = pending;
                            merged.merge(&entry.patch);
                            (merged, entry.target.as_str())
                        }
                        (Age::Older, Ok(target)) => {
                            let mut merged = entry.patch.clone();
                            merged.merge(&pending);
                            (merged, target)
                        }
                    };
                    let patch = text(&merged);
                    // A merge that grows the row may not take the bytes in use past maxBytes:
                    // checked here, not left to SQLite's page limit, which a flush that passed
                    // maxBytes leaves at the file's size (room::limit).
                    let grows = (patch.len() + target.len())
                        .saturating_sub(stored.patch.shown().len() + stored.target.shown().len())
                        as u64;
                    if grows > 0 && used_bytes(tx)?.saturating_add(grows) > options.max_bytes {
                        done.dropped += eviction::make_room(tx, grows, options, now)?;
                        let used = used_bytes(tx)?;
                        if used.saturating_add(grows) > options.max_bytes {
                            return Err(full_bytes(used, options));
                        }
                    }
                    let revision = next_revision(tx)?;
                    // A first-enqueue time in the future (a clock that ran ahead) is brought
                    // back to now.
                    tx.prepare_cached(
                        "UPDATE pending SET patch = ?2, target = ?3, revision = ?4,
                             enqueued_at = min(enqueued_at, ?5) WHERE rowid = ?1",
                    )?
                    .execute(params![
                        stored.rowid,
                        patch,
                        target,
                        revision,
                        now
                    ])?;
                    return Ok(Enqueued::Merged);
                }
                // It cannot be merged into: it goes to the failed list, and this report is new.
                Err(why) => {
                    done.dropped += fail_unreadable(
                        tx,
                        &stored,
                        &why,
                        options,
                        (now, self.failed_at),
                        self.file,
                    )?;
                    done.unreadable += 1;
                }
            }
        }
        if acknowledged::covers(tx, &entry.key, &entry.patch, options, self.now)? {
            return Ok(Enqueued::Skipped);
        }
        let count = unsigned(counter(tx, "pending")?);
        if count >= options.max_pending {
            return Err(StoreError::Full(format!(
                "{count} targets are pending, the most maxPending ({}) allows",
                options.max_pending
            )));
        }
        let patch = text(&entry.patch);
        // The row's own bytes (its key twice: the table and its index).
        let row = (2 * entry.key.len() + entry.target.len() + patch.len()) as u64;
        // Room is kept for merges and for moving reports to the failed list; acknowledgements
        // and the failed list give way first.
        let reserve = (options.max_bytes / 64).max(32 * 1024);
        let needed = reserve.saturating_add(row);
        let mut used = used_bytes(tx)?;
        if used.saturating_add(needed) > options.max_bytes {
            done.dropped += eviction::make_room(tx, needed, options, now)?;
            used = used_bytes(tx)?;
            if used.saturating_add(needed) > options.max_bytes {
                return Err(full_bytes(used, options));
            }
        }
        let revision = next_revision(tx)?;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO pending (key, target, patch, revision, enqueued_at, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![entry.key, entry.target, patch, revision, self.now]);
        match inserted {
            Err(err) if at_page_limit(&err, tx, row) => return Err(full_bytes(used, options)),
            other => other?,
        };
        Ok(Enqueued::Stored)
    }
}

/// What a requeue moved, and what it set aside.
pub(crate) struct Requeue {
    /// Failed reports now pending again (stored, or merged under a pending report).
    pub requeued: u64,
    /// What storing them set aside, as an enqueue reports it; its outcomes are unused.
    pub stored: Enqueue,
    /// Failed reports that cannot be read (`failed.id`): they stay in the list.
    pub left: Vec<i64>,
}

/// Moves the failed list back to pending in one transaction, all or nothing, oldest first. Each
/// report `entry` reads is stored by an enqueue's rules, as a report older than any pending for
/// its user status (whose properties win where both set one); one that equals what Graph
/// acknowledged recently is skipped. A row `entry` cannot read stays; its id is returned.
pub(crate) fn requeue_failed(
    conn: &mut Connection,
    entry: impl Fn(&failed_list::StoredRow) -> Option<Entry>,
    options: &OutboxOptions,
    (now, failed_at): (i64, &str),
    file: &str,
) -> Result<Requeue> {
    let tx = write_tx(conn)?;
    let mut done = Requeue {
        requeued: 0,
        stored: Enqueue {
            outcomes: Vec::new(),
            unreadable: 0,
            dropped: 0,
        },
        left: Vec::new(),
    };
    let put = Put {
        options,
        now,
        failed_at,
        file,
    };
    let mut skipped = 0;
    for row in failed_list::all(&tx)? {
        let Some(entry) = entry(&row) else {
            done.left.push(row.id);
            continue;
        };
        // Off the list first, so making room never drops the report being moved.
        failed_list::remove(&tx, &[row.id])?;
        match put.one(&tx, &entry, Age::Older, &mut done.stored)? {
            Enqueued::Skipped => skipped += 1,
            Enqueued::Stored | Enqueued::Merged => done.requeued += 1,
        }
    }
    bump(&tx, "skipped", skipped)?;
    bump(&tx, "failed_dropped", done.stored.dropped)?;
    tx.commit()?;
    Ok(done)
}

fn next_revision(tx: &Transaction<'_>) -> Result<i64> {
    Ok(tx
        .prepare_cached(
            "UPDATE counters SET value = value + 1 WHERE name = 'revision' RETURNING value",
        )?
        .query_row([], |row| row.get(0))?)
}

fn full_bytes(used: u64, options: &OutboxOptions) -> StoreError {
    StoreError::Full(format!(
        "{used} bytes are in use, near the most maxBytes ({}) allows",
        options.max_bytes
    ))
}

/// The keys of every report due, the earliest next attempt (as believed) first, then the oldest.
/// A row whose key the file holds damaged (not UTF-8 text) is named `#` and its rowid, for
/// [`claim`] to move it to the failed list.
pub(crate) fn due_keys(conn: &Connection, horizon: Horizon) -> Result<Vec<String>> {
    let next = Horizon::NEXT_ATTEMPT;
    let mut statement = conn.prepare(&format!(
        "SELECT rowid, key FROM pending WHERE next_attempt_at <= ?1 OR next_attempt_at > ?2
         ORDER BY {next}, enqueued_at"
    ))?;
    let keys = statement
        .query_map(params![horizon.now, horizon.latest], |row| {
            let key: StoredText = row.get(1)?;
            Ok(match key.text() {
                Ok(key) => key.to_owned(),
                Err(_) => format!("#{}", row.get::<_, i64>(0)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(keys)
}

/// What a claim found.
pub(crate) struct Claimed {
    /// The reports to send.
    pub due: Vec<Due>,
    /// Removed unsent: they equal what Graph acknowledged recently.
    pub skipped: u64,
    /// Moved to the failed list: their rows could not be read.
    pub unreadable: u64,
    /// Failed reports dropped to make room (WARN).
    pub dropped: u64,
}

/// Reads the reports for `keys` as they are now, to send them, puts their properties'
/// acknowledged state in doubt, notes each as a write Graph may apply until `now` + `request_ms`
/// and the departure slack (in_doubt.rs: added to what was in doubt for its user status), and holds each back until `now` + `backoff(failures)` (ms: the wait after its
/// next failure, at most `maxDelayMs`), in the same transaction. The outcome's unknown until
/// [`record`] runs, and may never be (an interrupt, a busy or full file, a kill): the file then
/// says what is safe, a resend of the same value after the backoff (an equal late write is
/// harmless), and a changed value not before the write in doubt can no longer land. A report
/// that equals what Graph acknowledged recently (a later report set it back) is removed unsent
/// and counted as skipped; one whose row cannot be read goes to the failed list; one that changes
/// a value a write in doubt may still set is not claimed, and waits until that write's end.
///
/// `steady` gives, for a user status this process sent a write for that may still land, that
/// write's end on the steady clock as a wall-clock time (steady.rs): the later of it and the row's
/// end holds, and without a row (another process pruned it) any report of it waits for that end.
///
/// Its writes never fail for want of room (a full file must flush, and so shrink): see
/// `eviction::make_way`.
pub(crate) fn claim(
    conn: &mut Connection,
    keys: &[String],
    options: &OutboxOptions,
    (now, failed_at): (i64, &str),
    file: &str,
    (request_ms, backoff, steady): (i64, impl Fn(u32) -> i64, impl Fn(&str) -> Option<i64>),
) -> Result<Claimed> {
    within_max_bytes(conn, options.max_bytes, |conn| {
        let tx = write_tx(conn)?;
        in_doubt::bound(&tx, now, request_ms)?;
        let page = unsigned(pragma(&tx, "page_size")?);
        let mut claimed = Claimed {
            due: Vec::with_capacity(keys.len()),
            skipped: 0,
            unreadable: 0,
            dropped: 0,
        };
        for key in keys {
            let Some(row) = PendingRow::find(&tx, key)? else {
                continue;
            };
            let (key, item, revision, failures) = match row.item() {
                Ok(read) => read,
                Err(why) => {
                    claimed.dropped +=
                        fail_unreadable(&tx, &row, &why, options, (now, failed_at), file)?;
                    claimed.unreadable += 1;
                    continue;
                }
            };
            if acknowledged::covers(&tx, &key, item.patch(), options, now)? {
                delete_pending(&tx, row.rowid)?;
                claimed.skipped += 1;
                continue;
            }
            let floor = steady(&key);
            let in_doubt_before = match (in_doubt::get(&tx, &key)?, floor) {
                // This process sent it, and its steady end is later than the file's (the wall
                // clock was stepped forward): that end holds, and is written (so no record
                // prunes the row as over).
                (Some(mut before), Some(end)) if end > before.until => {
                    in_doubt::extend(&tx, &key, end, before.window_or(request_ms))?;
                    before.until = end;
                    Some(before)
                }
                (before, _) => before,
            };
            let held = match &in_doubt_before {
                Some(before) => before.holds_back(item.patch(), now, request_ms),
                // This process sent a write that may still land, and the file no longer names it
                // (another process's record pruned it after a forward step): its patch is not
                // known here, so whatever this report sets waits for its end.
                None => floor,
            };
            if let Some(until) = held {
                claimed.dropped += eviction::make_way(&tx, page, options, now)?;
                tx.prepare_cached("UPDATE pending SET next_attempt_at = ?2 WHERE rowid = ?1")?
                    .execute(params![row.rowid, until])?;
                continue;
            }
            acknowledged::put_in_doubt(&tx, &key, item.patch())?;
            let (in_doubt, until, window) = in_doubt::joined(
                in_doubt_before.as_ref(),
                item.patch(),
                now,
                (
                    now.saturating_add(request_ms)
                        .saturating_add(in_doubt::DEPARTURE_SLACK_MS),
                    request_ms,
                ),
            );
            let in_doubt = text(&in_doubt);
            // Its row in doubt, and a page for the index of its next attempt.
            let needed = in_doubt::bytes(&key, &in_doubt, page) + page;
            claimed.dropped += eviction::make_way(&tx, needed, options, now)?;
            in_doubt::set(&tx, &key, &in_doubt, (until, Some(window)))?;
            // A first-enqueue time in the future (a clock that ran ahead) is brought back to now,
            // so the report's age counts from here.
            let enqueued_at = row.enqueued_at.filter(|&at| at <= now).unwrap_or(now);
            tx.prepare_cached(
                "UPDATE pending SET enqueued_at = ?2, next_attempt_at = ?3 WHERE rowid = ?1",
            )?
            .execute(params![
                row.rowid,
                enqueued_at,
                now.saturating_add(backoff(failures))
            ])?;
            claimed.due.push(Due {
                key,
                target: row.target.shown().to_owned(),
                item,
                revision,
                failures,
                due_at: row.next_attempt_at.unwrap_or(now),
                in_doubt_before,
            });
        }
        bump(&tx, "skipped", claimed.skipped)?;
        claimed.dropped += failed_list::trim(&tx, options.max_failed)?;
        bump(&tx, "failed_dropped", claimed.dropped)?;
        tx.commit()?;
        Ok(claimed)
    })
}

/// A request carrying the keys of `ends`, claimed earlier, leaves now: Graph may apply its writes
/// until their `until` (now + `request_ms` + the departure slack), later than their claim noted (a later batch
/// of the round, a retry within the call, a wait at the pacing gate or for a token). In its own
/// small transaction, before the request leaves, so a kill while it is in flight leaves that end
/// on disk.
///
/// Also what a wall clock stepped forward needs: the steady ends of the writes this process sent,
/// each `(key, until)` (steady.rs).
pub(crate) fn leaving<'a>(
    conn: &mut Connection,
    ends: impl IntoIterator<Item = (&'a str, i64)>,
    request_ms: i64,
) -> Result<()> {
    let tx = write_tx(conn)?;
    for (key, until) in ends {
        in_doubt::extend(&tx, key, until, request_ms)?;
    }
    tx.commit()?;
    Ok(())
}

/// Runs `write` (a flush's claim or record), then sets SQLite's page limit back to `max_bytes`:
/// its bookkeeping may have raised it (`eviction::make_way`).
fn within_max_bytes<T>(
    conn: &mut Connection,
    max_bytes: u64,
    write: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    let done = write(conn);
    room::limit(conn, max_bytes)?;
    done
}

/// Expired acknowledgements (and writes no longer in doubt) removed by each [`record`]: more than
/// a round (100 reports) can add, so they never pile up.
const PRUNED_PER_RECORD: u64 = 1_000;

/// Records what became of each sent report, in one transaction. Returns the failed reports
/// dropped (beyond `maxFailed`, or to make room).
///
/// A known outcome (applied or refused by its one request, that request certainly not processed,
/// not sent) leaves in doubt only what was before its claim; an unknown one (no answer once the
/// request was written, a timeout, a 504, an interrupt; or anything after several requests
/// carried it) may land until `now` + `request_ms` (in_doubt.rs).
///
/// `hold` (until, held for: ms), when the round stopped the flush, is the outbox-wide hold
/// (hold.rs), written in the same transaction: a kill leaves the outcomes and the hold, or
/// neither. Its writes never fail for want of room, as the claim's. `steady` gives the ends this
/// process knows on the steady clock, as the claim's does: the prune of writes no longer in doubt
/// keeps each until then (in_doubt.rs `prune`).
pub(crate) fn record(
    conn: &mut Connection,
    outcomes: &[(Due, Outcome)],
    options: &OutboxOptions,
    (now, request_ms, steady): (i64, i64, impl Fn(&str) -> Option<i64>),
    hold: Option<(i64, i64)>,
) -> Result<u64> {
    within_max_bytes(conn, options.max_bytes, |conn| {
        let tx = write_tx(conn)?;
        let page = unsigned(pragma(&tx, "page_size")?);
        let mut applied = 0;
        let mut dropped = 0;
        for (due, outcome) in outcomes {
            // A row in doubt brought back, and a page for the index of a next attempt.
            let before = due.in_doubt_before.as_ref();
            let restored = before.map_or(0, |b| in_doubt::bytes(&due.key, &b.patch, page));
            dropped += eviction::make_way(&tx, restored + page, options, now)?;
            match outcome {
                Outcome::Applied { .. } => {
                    applied += 1;
                    let removed = tx
                        .prepare_cached("DELETE FROM pending WHERE key = ?1 AND revision = ?2")?
                        .execute(params![due.key, due.revision])?;
                    if removed == 0 {
                        due_at_once(&tx, &due.key, now)?;
                    }
                    acknowledge(&tx, &due.key, due.item.patch(), options, now)?;
                }
                Outcome::Retry { until, message, .. } => {
                    tx.prepare_cached(
                        "UPDATE pending SET failures = failures + 1, next_attempt_at = ?2,
                             last_error = ?3 WHERE key = ?1",
                    )?
                    .execute(params![due.key, until, message])?;
                }
                Outcome::Failed {
                    error, failed_at, ..
                } => {
                    let patch = text(due.item.patch());
                    let row = FailedRow {
                        target: &due.target,
                        patch: &patch,
                        error,
                        failed_at,
                    };
                    dropped += keep_failed(&tx, &row, options, now)?;
                    // A report merged in meanwhile stays pending: it is newer than what failed.
                    let removed = tx
                        .prepare_cached("DELETE FROM pending WHERE key = ?1 AND revision = ?2")?
                        .execute(params![due.key, due.revision])?;
                    if removed == 0 {
                        due_at_once(&tx, &due.key, now)?;
                    }
                }
                Outcome::NotSent => {
                    tx.prepare_cached("UPDATE pending SET next_attempt_at = ?2 WHERE key = ?1")?
                        .execute(params![due.key, due.due_at])?;
                }
            }
            if outcome.known() {
                in_doubt::restore(&tx, &due.key, due.in_doubt_before.as_ref())?;
            } else {
                in_doubt::extend(&tx, &due.key, now.saturating_add(request_ms), request_ms)?;
            }
        }
        if outcomes
            .iter()
            .any(|(_, outcome)| matches!(outcome, Outcome::Failed { .. }))
        {
            dropped += failed_list::trim(&tx, options.max_failed)?;
        }
        if applied > 0 {
            // A few at a time as flushes record, so they never pile up to fill the file.
            acknowledged::prune_expired(&tx, options, now, PRUNED_PER_RECORD)?;
        }
        in_doubt::prune(&tx, now, PRUNED_PER_RECORD, steady)?;
        if let Some((until, held_for)) = hold {
            hold::set(&tx, until, held_for)?;
        }
        bump(&tx, "applied", applied)?;
        bump(&tx, "failed_dropped", dropped)?;
        tx.commit()?;
        Ok(dropped)
    })
}

/// The write of `key` that was in flight has a known outcome, and a newer report was merged in
/// meanwhile: it is due at once, with no backoff (it is not a retry).
fn due_at_once(tx: &Transaction<'_>, key: &str, now: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE pending SET failures = 0, last_error = NULL, next_attempt_at = ?2 WHERE key = ?1",
    )?
    .execute(params![key, now])?;
    Ok(())
}

/// Reports pending, and the earliest next attempt as believed (unix ms).
pub(crate) fn remaining(conn: &Connection, horizon: Horizon) -> Result<(u64, Option<i64>)> {
    let next = Horizon::NEXT_ATTEMPT;
    let (count, next) = conn.query_row(
        &format!("SELECT count(*), min({next}) FROM pending"),
        params![horizon.now, horizon.latest],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok((unsigned(count), next))
}

/// The outbox's figures at `horizon` (for the age of the oldest pending report, and the hold in
/// force as believed then).
pub(crate) fn stats(conn: &Connection, horizon: Horizon) -> Result<OutboxStats> {
    let now = horizon.now;
    let held = hold::in_force(conn, horizon)?;
    let (pending, oldest): (i64, Option<i64>) = conn.query_row(
        "SELECT count(*), min(enqueued_at) FROM pending",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let failed: i64 = conn.query_row("SELECT count(*) FROM failed", [], |row| row.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    Ok(OutboxStats {
        pending: unsigned(pending),
        failed: unsigned(failed),
        skipped: unsigned(counter(conn, "skipped")?),
        applied: unsigned(counter(conn, "applied")?),
        failed_dropped: unsigned(counter(conn, "failed_dropped")?),
        bytes: unsigned(pages * page_size),
        // An enqueue time in the future (a clock that ran ahead) counts as just now.
        oldest_pending: oldest.map(|at| Duration::from_millis(unsigned(now - at))),
        held_until: held.and_then(|at| DateTimeOffset::parse(&rfc3339(at)).ok()),
        hold_left: held.map(|at| Duration::from_millis(unsigned(at - now))),
    })
}

/// Removes the failed list from the file and returns it, oldest first, each row as `decode` reads
/// it. A row `decode` cannot read (its target unreadable) stays in the file; its id is returned.
pub(crate) fn take_failed<T>(
    conn: &mut Connection,
    decode: impl Fn(&failed_list::StoredRow) -> Option<T>,
) -> Result<(Vec<T>, Vec<i64>)> {
    let tx = write_tx(conn)?;
    let mut taken = Vec::new();
    let mut taken_ids = Vec::new();
    let mut left = Vec::new();
    for row in failed_list::all(&tx)? {
        match decode(&row) {
            Some(report) => {
                taken.push(report);
                taken_ids.push(row.id);
            }
            None => left.push(row.id),
        }
    }
    failed_list::remove(&tx, &taken_ids)?;
    tx.commit()?;
    Ok((taken, left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{MIN_OUTBOX_BYTES, schema};

    /// The page limit met inside an INSERT (past the reserve check, which a caller's options
    /// normally make first) is the outbox being full, not a storage failure. (SQLite's other
    /// "full", a disk out of space, needs a full file system to show: it stays `Sql`, i.e.
    /// STORAGE, by the same test of `at_page_limit`.)
    #[test]
    fn the_page_limit_inside_an_insert_is_full_not_storage() {
        let path = std::env::temp_dir().join(format!(
            "ius-store-page-limit-{}-{:?}.db",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let mut conn = schema::open(&path, MIN_OUTBOX_BYTES).unwrap();
        // Options that allow far more than the file's page limit, so only SQLite stops it.
        let options = OutboxOptions::default();
        let name = "n".repeat(4000);
        let outcome = (0..1000).find_map(|i| {
            let entry = Entry {
                key: format!("/x/{i}"),
                target: "{}".into(),
                patch: UserStatusPatch::new().user_display_name(format!("{name}{i}")),
            };
            enqueue(&mut conn, &[entry], &options, (0, ""), "file").err()
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
