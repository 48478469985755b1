//! The durable outbox: status reports kept in an SQLite file until Graph has them.
//!
//! [`Outbox::enqueue`] validates a report as an update does and commits it before it returns
//! (WAL journal, `synchronous=FULL`), merging it property by property into any report pending for
//! the same user status, or skipping it when it equals what Graph acknowledged recently.
//! [`Outbox::flush`] sends what is due through the client and records each outcome. The outbox
//! stores, merges and schedules; the client does every HTTP request.
//!
//! - [`schema`]: the file, its tables, and how a file is recognised;
//! - [`store`]: every read and write, one transaction each;
//! - [`flush`]: rounds of claim, send, record; [`lock`]: one flush at a time;
//! - [`failure`]: which errors are final, and how they are kept.

mod failure;
mod file_name;
mod flush;
mod lock;
mod schema;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use self::store::{Entry, StoreError, now_ms};
use crate::{ApiVersion, BulkItem, Client, DateTimeOffset, Error, Target, UserStatusPatch};

/// The smallest `maxBytes`: room for the schema and a few reports.
pub const MIN_OUTBOX_BYTES: u64 = 256 * 1024;

/// How an outbox bounds and filters what it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxOptions {
    /// At most this many user statuses pending (default 100,000); a report for another is
    /// refused with [`Error::OutboxFull`].
    pub max_pending: u64,
    /// At most this many bytes in the file (default 64 MiB), enforced through SQLite's page limit;
    /// a report for a new user status is refused with [`Error::OutboxFull`] near it.
    pub max_bytes: u64,
    /// Skip a report whose properties all equal what Graph acknowledged for that user status less
    /// than [`resend_after`](Self::resend_after) ago (default true).
    pub skip_unchanged: bool,
    /// How long an acknowledged state suppresses equal reports (default one day), so a steady
    /// status is still re-asserted daily.
    pub resend_after: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            max_pending: 100_000,
            max_bytes: 64 * 1024 * 1024,
            skip_unchanged: true,
            resend_after: Duration::from_secs(86_400),
        }
    }
}

impl OutboxOptions {
    /// The defaults.
    pub fn new() -> OutboxOptions {
        OutboxOptions::default()
    }

    /// Sets [`max_pending`](Self::max_pending) (at least 1).
    pub fn max_pending(mut self, targets: u64) -> Self {
        self.max_pending = targets;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes) (at least [`MIN_OUTBOX_BYTES`]).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets [`skip_unchanged`](Self::skip_unchanged).
    pub fn skip_unchanged(mut self, skip: bool) -> Self {
        self.skip_unchanged = skip;
        self
    }

    /// Sets [`resend_after`](Self::resend_after).
    pub fn resend_after(mut self, after: Duration) -> Self {
        self.resend_after = after;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.max_pending == 0 {
            return Err(Error::config("maxPending", "must be at least 1"));
        }
        if self.max_bytes < MIN_OUTBOX_BYTES {
            return Err(Error::config(
                "maxBytes",
                format!(
                    "must be at least {MIN_OUTBOX_BYTES}, got {}",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// What an enqueue did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored as a new pending report.
    Stored,
    /// Merged into the report already pending for its user status.
    Merged,
    /// Not stored: every property equals what Graph acknowledged recently.
    Skipped,
}

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Reports handed to the client to send (after a 429, the client may hold the rest of a round
    /// back without sending them; they count here and in `retry_later`).
    pub sent: u64,
    /// Reports Graph applied; removed, their properties now the acknowledged state.
    pub applied: u64,
    /// Reports throttled or failed transiently: kept, with a later next attempt.
    pub retry_later: u64,
    /// Reports Graph refused for good (a 4xx other than 408 and 429): moved to the failed list.
    pub failed: u64,
    /// Reports due but removed unsent: they equal what Graph acknowledged recently.
    pub skipped: u64,
    /// Reports still pending after the flush.
    pub pending: u64,
    /// When the earliest pending report is due (zero: now), if any is pending.
    pub next_attempt_in: Option<Duration>,
}

/// An outbox's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// User statuses with a report pending.
    pub pending: u64,
    /// Reports in the failed list.
    pub failed: u64,
    /// Reports skipped as unchanged since the file was made.
    pub skipped: u64,
    /// Reports applied since the file was made.
    pub applied: u64,
    /// The file's size in bytes (without SQLite's `-wal` and `-shm`).
    pub bytes: u64,
    /// How long the oldest pending report has waited, if any is pending.
    pub oldest_pending: Option<Duration>,
}

/// A report Graph refused for good, as [`Outbox::take_failed`] returns it.
#[derive(Debug)]
#[non_exhaustive]
pub struct FailedReport {
    /// The user status it was for.
    pub target: Target,
    /// The API version it was sent with.
    pub api_version: ApiVersion,
    /// What was sent.
    pub patch: UserStatusPatch,
    /// What Graph answered.
    pub error: Error,
    /// When it failed (UTC).
    pub failed_at: DateTimeOffset,
}

/// A durable queue of status reports in an SQLite file, delivered by [`flush`](Self::flush).
///
/// Every report whose enqueue returned `Ok` survives a crash or `kill -9` and is delivered by a
/// later flush. One outbox may be shared by many threads, and several processes may open the
/// same file; enqueues from all are kept, and one flush runs at a time.
///
/// ```no_run
/// use intune_user_status::{Client, ComplianceStatus, Outbox, OutboxOptions, Target, UserStatusPatch};
/// let client = Client::builder().access_token("eyJ0eXAi...").build()?;
/// let outbox = Outbox::open(&client, "/var/lib/agent/outbox.db", OutboxOptions::new())?;
/// outbox.enqueue(&Target::new("config-id", "status-id"),
///                &UserStatusPatch::new().status(ComplianceStatus::Compliant))?;
/// let report = outbox.flush()?; // offline? the report waits for the next flush
/// println!("{} applied, {} pending", report.applied, report.pending);
/// # Ok::<(), intune_user_status::Error>(())
/// ```
pub struct Outbox {
    client: Client,
    path: PathBuf,
    options: OutboxOptions,
    conn: Mutex<Connection>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`; it sends through its own clone of `client`.
    ///
    /// A missing or unwritable folder, a file that is not SQLite, an SQLite file that is not an
    /// outbox, or one from a newer version of this library is an [`Error::Storage`] naming the
    /// path and the reason, and the file is left as it was; so is, on Windows, a name that is not
    /// valid Unicode (SQLite opens files by UTF-8 names there). Bad options are
    /// [`Error::Config`].
    pub fn open(
        client: &Client,
        path: impl AsRef<Path>,
        options: OutboxOptions,
    ) -> Result<Outbox, Error> {
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        let conn = schema::open(&path, options.max_bytes)?;
        Ok(Outbox {
            client: client.clone(),
            path,
            options,
            conn: Mutex::new(conn),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `patch` for `target` (at the client's API version), durably, before returning.
    ///
    /// Validated exactly as [`Client::update_user_status`] validates it ([`Error::InvalidInput`]
    /// naming the field, and nothing stored). Merged into a report pending for the same target,
    /// or skipped if unchanged (see [`OutboxOptions::skip_unchanged`]); a new target beyond the
    /// bounds is [`Error::OutboxFull`]. A file that cannot be written (a full disk) is
    /// [`Error::Storage`] saying so: nothing of this call is stored, nothing stored before is lost.
    pub fn enqueue(&self, target: &Target, patch: &UserStatusPatch) -> Result<Enqueued, Error> {
        let entry = self.entry(target, patch, None)?;
        let mut done = self.store(&[entry])?;
        Ok(done.pop().unwrap_or(Enqueued::Stored))
    }

    /// Stores every item in one transaction: all of them, or (on any error) none. The items are
    /// those of [`Client::update_user_statuses`]: a target, a patch and optionally the API version
    /// (default: the client's).
    pub fn enqueue_many(&self, items: &[BulkItem]) -> Result<Vec<Enqueued>, Error> {
        let entries = items
            .iter()
            .map(|item| self.entry(item.target(), item.patch(), item.requested_api_version()))
            .collect::<Result<Vec<_>, _>>()?;
        self.store(&entries)
    }

    /// Sends every report that is due and records each outcome (see [`FlushReport`]).
    ///
    /// Returns `Ok` whenever it ran, whatever became of the reports; an error only when it could
    /// not run: the file failed ([`Error::Storage`]), no token could be obtained before anything
    /// was sent ([`Error::Auth`]), or another flush of the same file outlasted the client's total
    /// time budget ([`Error::Storage`]). Waits for another flush of the same file to finish first.
    /// If the outcomes cannot be recorded (a full disk), the reports sent stay pending and a later
    /// flush sends them again (PATCH is idempotent).
    pub fn flush(&self) -> Result<FlushReport, Error> {
        flush::flush(self)
    }

    /// The outbox's figures.
    pub fn stats(&self) -> Result<OutboxStats, Error> {
        let figures = self.with_conn(|conn| store::figures(conn))?;
        Ok(OutboxStats {
            pending: figures.pending,
            failed: figures.failed,
            skipped: figures.skipped,
            applied: figures.applied,
            bytes: figures.bytes,
            oldest_pending: figures
                .oldest_enqueued_at
                .map(|at| Duration::from_millis(u64::try_from(now_ms() - at).unwrap_or(0))),
        })
    }

    /// Removes the failed list from the file and returns it, oldest first.
    pub fn take_failed(&self) -> Result<Vec<FailedReport>, Error> {
        let rows = self.with_conn(store::take_failed)?;
        rows.into_iter()
            .map(|(target, patch, error, failed_at)| {
                let corrupt = |what: &str, why: String| Error::Storage {
                    path: self.path.display().to_string(),
                    reason: format!("a failed report's {what} cannot be read: {why}"),
                };
                let value =
                    serde_json::from_str(&target).map_err(|e| corrupt("target", e.to_string()))?;
                let (target, version) = Target::from_value(value)?;
                Ok(FailedReport {
                    target,
                    api_version: version.unwrap_or_default(),
                    patch: UserStatusPatch::from_json(&patch)
                        .map_err(|e| corrupt("patch", e.to_string()))?,
                    error: failure::from_json(&error),
                    failed_at: DateTimeOffset::parse(&failed_at)
                        .map_err(|e| corrupt("time", e.to_string()))?,
                })
            })
            .collect()
    }

    /// Validates a report as an update would and names its row: API version + request path.
    fn entry(
        &self,
        target: &Target,
        patch: &UserStatusPatch,
        version: Option<ApiVersion>,
    ) -> Result<Entry, Error> {
        let version = version.unwrap_or(self.client.api_version());
        patch.validate_for(target)?;
        let mut key = String::with_capacity(160);
        target.write_url(&mut key, version)?;
        Ok(Entry {
            key,
            target: target.to_value(version).to_string(),
            patch: patch.clone(),
        })
    }

    fn store(&self, entries: &[Entry]) -> Result<Vec<Enqueued>, Error> {
        self.with_conn(|conn| store::enqueue(conn, entries, &self.options))
    }

    /// Runs `job` on the connection; never held across a request.
    fn with_conn<T>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, Error> {
        let mut conn: MutexGuard<'_, Connection> = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        job(&mut conn).map_err(|err| self.error(err))
    }

    fn error(&self, err: StoreError) -> Error {
        let storage = |reason: String| Error::Storage {
            path: self.path.display().to_string(),
            reason,
        };
        match err {
            StoreError::Full(reason) => Error::OutboxFull { reason },
            StoreError::Corrupt(reason) => storage(reason),
            StoreError::Sql(err) => storage(store::reason(&err)),
        }
    }
}
