//! The durable outbox: status reports kept in an SQLite file until Graph has them.
//!
//! [`Outbox::enqueue`] validates a report as an update does and commits it before it returns
//! (WAL journal, `synchronous=FULL`), merging it property by property into any report pending for
//! the same user status, or skipping it when every property equals what Graph acknowledged
//! recently. [`Outbox::flush`] sends what is due through the client and records each outcome.
//! The outbox stores, merges and schedules; the client does every HTTP request.
//!
//! This file holds the public handle and hands each job to a child; no child imports it.
//! - [`options`], [`report`]: what callers pass and get back;
//! - [`schema`]: the file, its tables, how a file is recognised and migrated;
//! - [`store`]: every read and write, one transaction each, with [`acknowledged`] (what Graph
//!   acknowledged, per property), [`failed_list`] (the bounded failed list), [`room`] (how full
//!   the file is), [`eviction`] (what gives way when it needs room) and [`stored_text`] (a column
//!   read whatever a damaged file holds);
//! - [`flush`]: rounds of claim, send, record; [`hold`]: the one stored time a stopped flush
//!   holds every report back until; [`lock`]: one flush at a time; [`busy`]: how a
//!   statement waits for another connection's write (until an interrupt);
//! - [`reader`]: a file opened to look at only (its figures and failed list), never written;
//! - [`failure`]: which errors are final, which stop a flush, and how they are kept;
//! - [`clock`]: the wall clock, and how stored times are bounded;
//! - [`steady`]: until when the writes the process sent to a file may land, on the steady clock;
//! - [`paths`], [`permissions`]: the platform's part (the file's one name, owner-only files);
//! - `seam` (tests only, feature `test-seams`): a pause at a named point of a flush.

mod acknowledged;
mod busy;
mod clock;
mod eviction;
mod failed_list;
mod failure;
mod file_name;
mod flush;
mod hold;
mod in_doubt;
mod lock;
mod options;
mod paths;
mod permissions;
mod reader;
mod report;
mod room;
mod schema;
#[cfg(any(test, feature = "test-seams"))]
mod seam;
mod steady;
mod store;
mod stored_text;

#[cfg(test)]
mod model_check;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::hold::MAX_OUTBOX_HOLD;
pub use self::options::{MIN_OUTBOX_BYTES, OutboxOptions};
pub use self::reader::OutboxReader;
pub use self::report::{Enqueued, FailedReport, FlushReport, OutboxStats};
#[cfg(any(test, feature = "test-seams"))]
pub use self::seam::FlushSeam;

use self::clock::{Clock, Horizon, rfc3339};
use self::failed_list::StoredRow;
use self::store::{Entry, Store};
use crate::cancel::{Signal, Watch};
use crate::{ApiVersion, BulkItem, Client, Error, Target, UserStatusPatch};

/// A durable queue of status reports in an SQLite file, delivered by [`flush`](Self::flush).
///
/// Every report whose enqueue returned `Ok` survives a crash or `kill -9` and is delivered by a
/// later flush. One outbox may be shared by many threads, and several processes may open the
/// same file; enqueues from all are kept, and one flush runs at a time. To look at a file
/// without writing it (an operator's view of an agent's outbox), open an [`OutboxReader`].
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
    /// The file's canonical path (every link and `..` resolved, absolute).
    canonical: PathBuf,
    /// The flush lock file, named after the file's canonical path.
    lock: PathBuf,
    options: OutboxOptions,
    clock: Clock,
    store: Store,
    /// [`interrupt`](Self::interrupt)'s signal; a flush watches its client's too.
    signal: Arc<Signal>,
    /// Until when the writes this process sent to the file may land, on the steady clock: every
    /// handle of the file in the process shares them (steady.rs).
    steady: Arc<steady::SteadyEnds>,
    #[cfg(any(test, feature = "test-seams"))]
    seam: seam::Seam,
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
    /// A new file (and its `-wal`, `-shm` and `-flush` companions) is readable by its owner only
    /// on Unix (mode 0600), and so is an existing empty file (it holds nothing yet); an existing
    /// outbox's mode is left as it is, with a WARN when other users can read it. A file of an older version of this library is migrated, keeping every
    /// report. A missing or unwritable folder, a file that is not SQLite, an SQLite file that is
    /// not an outbox, one from a newer version of this library, or (on Unix) a file with more
    /// than one name through hard links is an [`Error::Storage`] naming the path and the reason,
    /// and the file is left as it was; so is, on Windows, a name that
    /// is not valid Unicode (SQLite opens files by UTF-8 names there). Bad options are
    /// [`Error::Config`].
    pub fn open(
        client: &Client,
        path: impl AsRef<Path>,
        options: OutboxOptions,
    ) -> Result<Outbox, Error> {
        Outbox::open_with_clock(client, path.as_ref(), options, Clock::default())
    }

    fn open_with_clock(
        client: &Client,
        path: &Path,
        options: OutboxOptions,
        clock: Clock,
    ) -> Result<Outbox, Error> {
        options.validate()?;
        paths::one_name(path)
            .map_err(|reason| Error::storage(path.display().to_string(), reason))?;
        let conn = schema::open(path, options.max_bytes)?;
        let canonical = paths::canonical(path).map_err(|err| {
            Error::storage(
                path.display().to_string(),
                format!("its full path cannot be resolved: {err}"),
            )
        })?;
        let steady = steady::SteadyEnds::of_file(&canonical, &clock);
        Ok(Outbox {
            client: client.clone(),
            path: path.to_path_buf(),
            lock: lock::lock_path(&canonical),
            canonical,
            options,
            clock,
            store: Store::new(path, conn),
            signal: Signal::new(),
            steady,
            #[cfg(any(test, feature = "test-seams"))]
            seam: seam::Seam::default(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `patch` for `target` (at the client's API version), durably, before returning.
    ///
    /// Validated exactly as [`Client::update_user_status`] validates it ([`Error::InvalidInput`]
    /// naming the field, and nothing stored). Merged into a report pending for the same user
    /// status (whichever API version it names: the merged report goes with the latest's), or
    /// skipped if unchanged (see [`OutboxOptions::skip_unchanged`]); a new user status beyond the
    /// bounds is [`Error::OutboxFull`]. A file that cannot be written (a full disk) is
    /// [`Error::Storage`] saying so: nothing of this call is stored, nothing stored before is
    /// lost. While another call on this handle uses the file it waits for its turn (that call is
    /// working; its own waits are bounded), and while another connection writes the file
    /// (another handle's or process's enqueue or flush) up to 10 s ([`Error::Storage`] after
    /// that), or until
    /// [`interrupt`](Self::interrupt): then [`Error::Cancelled`], and nothing of this call is
    /// stored.
    pub fn enqueue(&self, target: &Target, patch: &UserStatusPatch) -> Result<Enqueued, Error> {
        let entry = self.entry(target, patch, None)?;
        let mut done = self.store(&[entry])?;
        Ok(done.pop().unwrap_or(Enqueued::Stored))
    }

    /// Stores every item in one transaction: all of them, or (on any error) none. The items are
    /// those of [`Client::update_user_statuses`]: a target, a patch and optionally the API version
    /// (default: the client's). Waits for the file, and is interrupted, as
    /// [`enqueue`](Self::enqueue).
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
    /// was sent ([`Error::Auth`]), another flush of the same file outlasted the client's total
    /// time budget ([`Error::Storage`]), or it was interrupted ([`Error::Cancelled`]; see
    /// [`interrupt`](Self::interrupt), and [`flush_into`](Self::flush_into) for what such a
    /// flush did). Waits for another flush of the same file (by any path but a hard link, from
    /// any thread or process) to finish first; that wait spends [`OutboxOptions::flush_time`]
    /// too, and a flush still waiting when it is spent returns `Ok` having sent nothing (the
    /// report's `sent` 0, its reports `pending`, due now), as any flush out of time. Stops
    /// sending after a batch Graph throttled (every
    /// report then waits as long as its `Retry-After` asks, even past `retry.maxDelayMs`, at most
    /// [`MAX_OUTBOX_HOLD`]: [`clear_hold`](Self::clear_hold) ends that wait), after
    /// a batch that got no answer at all (Graph unreachable), no token or only 401s (the rest
    /// waits out the same backoff), and after [`OutboxOptions::flush_time`]; a 401 that a fresh
    /// token did not cure keeps the report pending, a 403 moves it to the failed list. If the
    /// outcomes cannot be recorded (a
    /// full disk), the reports sent stay pending and a flush after the backoff their claim stored
    /// sends them again (PATCH is idempotent); a claim the file refuses sends nothing. The
    /// report's [`stopped_by`](FlushReport::stopped_by) says why a flush stopped early; a stop
    /// for refused credentials is also logged at WARN (never the token), once the flush released
    /// its lock, so a logger may call into this outbox. A flush called from a callback of a
    /// flush of the same file on its thread (its token provider, a logger while it sends) is
    /// [`Error::Storage`] at once: it would wait for its own caller.
    pub fn flush(&self) -> Result<FlushReport, Error> {
        let mut report = FlushReport::default();
        self.flush_into(&mut report)?;
        Ok(report)
    }

    /// [`flush`](Self::flush), writing what it did into `report` (reset first) whatever it
    /// returns: after [`Error::Cancelled`] it says what the interrupted flush did (the outcomes it
    /// recorded, the reports of the abandoned batch as `interrupted`, what is still `pending`);
    /// after [`Error::Auth`] (no token before anything was sent) why it stopped (`stopped_by`
    /// auth, or offline when the token endpoint could not be reached), what is `pending` and
    /// when the next attempt is, the hold that stop left included.
    ///
    /// ```no_run
    /// # use intune_user_status::{Client, Error, FlushReport, Outbox, OutboxOptions};
    /// # let client = Client::builder().access_token("eyJ0eXAi...").build()?;
    /// # let outbox = Outbox::open(&client, "/var/lib/agent/outbox.db", OutboxOptions::new())?;
    /// let mut report = FlushReport::default();
    /// match outbox.flush_into(&mut report) {
    ///     Ok(()) => {}
    ///     Err(Error::Cancelled { .. }) => eprintln!("stopped: {} applied, {} left", report.applied, report.pending),
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn flush_into(&self, report: &mut FlushReport) -> Result<(), Error> {
        *report = FlushReport::default();
        flush::flush(
            &flush::Flush {
                client: &self.client,
                store: &self.store,
                options: &self.options,
                clock: &self.clock,
                lock: &self.lock,
                file: &self.canonical,
                signal: &self.signal,
                steady: &self.steady,
                #[cfg(any(test, feature = "test-seams"))]
                seam: &self.seam,
            },
            report,
        )
    }

    /// Ends the flush in progress on this outbox, and every other call on it waiting for the file
    /// (an enqueue, [`take_failed`](Self::take_failed), [`requeue_failed`](Self::requeue_failed),
    /// [`failed`](Self::failed), [`stats`](Self::stats): while another connection writes it, or
    /// queued behind another call on this handle), from any thread, as SQLite's
    /// `sqlite3_interrupt` does: each returns [`Error::Cancelled`] within half a second, or
    /// completes if its turn on the handle came within the 50 ms grace after the interrupt,
    /// whatever it waits on (the flush lock, the file, the pacing gate, a token, a `Retry-After`
    /// wait, a response: that batch is abandoned and its connection closed); an interrupted call
    /// other than a flush stored, took and moved nothing. An interrupted flush records the
    /// outcomes it has when the file can be had within the interrupt's bound; else those reports
    /// stay pending, held back by the backoff their claim stored, and are sent again then. It
    /// keeps the rest pending (the abandoned batch's reports included: whether Graph applied them
    /// is unknown, so they are sent again after the backoff, as every unknown outcome is); [`flush_into`](Self::flush_into) tells
    /// what it did. Calls started afterwards are not affected. [`Client::interrupt`] ends its
    /// outboxes' flushes too (not their other calls).
    ///
    /// ```no_run
    /// # use intune_user_status::{Client, Outbox, OutboxOptions};
    /// # let client = Client::builder().access_token("eyJ0eXAi...").build()?;
    /// let outbox = std::sync::Arc::new(Outbox::open(&client, "/var/lib/agent/outbox.db", OutboxOptions::new())?);
    /// let stopper = std::sync::Arc::clone(&outbox);
    /// std::thread::spawn(move || stopper.interrupt()); // e.g. when the service is told to stop
    /// let flushed = outbox.flush(); // Err(Error::Cancelled { .. }) if the interrupt came first
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn interrupt(&self) {
        self.signal.interrupt();
    }

    /// The outbox's figures, the hold in force included. Waits for its turn on this handle, and
    /// is interrupted, as [`enqueue`](Self::enqueue) (a read never waits for another
    /// connection's write).
    pub fn stats(&self) -> Result<OutboxStats, Error> {
        let horizon = self.horizon();
        self.watched(|| self.store.run(|conn| store::stats(conn, horizon)))
    }

    /// Ends the outbox-wide hold, so the next [`flush`](Self::flush) sends what is due at once;
    /// returns whether a hold was in force. A flush Graph throttled (or asked to wait past
    /// `retry.maxDelayMs`), that could not reach Graph, or whose credentials were refused holds
    /// every report back (at most [`MAX_OUTBOX_HOLD`]; [`OutboxStats::held_until`] says until
    /// when): clear it once the cause is fixed (a secret rotated, the network back), not to get
    /// round throttling, which Graph would answer with another. Reports' own backoffs stay.
    /// Waits for the file, and is interrupted ([`Error::Cancelled`], the hold kept), as
    /// [`enqueue`](Self::enqueue).
    ///
    /// ```no_run
    /// # use intune_user_status::{Client, Outbox, OutboxOptions};
    /// # let client = Client::builder().access_token("eyJ0eXAi...").build()?;
    /// let outbox = Outbox::open(&client, "/var/lib/agent/outbox.db", OutboxOptions::new())?;
    /// if let Some(until) = outbox.stats()?.held_until {
    ///     println!("held until {until}; clearing");
    ///     outbox.clear_hold()?;
    /// }
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn clear_hold(&self) -> Result<bool, Error> {
        let horizon = self.horizon();
        let was = self.watched(|| self.store.run(|conn| Ok(hold::clear(conn, horizon)?)))?;
        if was {
            log::info!("outbox {}: hold cleared", self.store.path());
        }
        Ok(was)
    }

    /// Tests only (feature `test-seams`): calls `hook` on the flush's thread at each
    /// [`FlushSeam`], holding nothing; set once per outbox.
    #[cfg(any(test, feature = "test-seams"))]
    #[doc(hidden)]
    pub fn set_flush_seam(&self, hook: impl Fn(FlushSeam) + Send + Sync + 'static) {
        self.seam.set(hook);
    }

    /// Tests only (feature `test-seams`): holds the handle's connection until the guard is
    /// dropped, as another call on this handle working with it would.
    #[cfg(any(test, feature = "test-seams"))]
    #[doc(hidden)]
    pub fn hold_connection(&self) -> Result<impl Drop + '_, Error> {
        self.store.hold()
    }

    /// Now, and how far a stored time is believed (the client's `retry.maxDelayMs`).
    fn horizon(&self) -> Horizon {
        let max_delay = self.client.retry_policy().max_delay.as_millis();
        Horizon::new(
            self.clock.now_ms(),
            i64::try_from(max_delay).unwrap_or(i64::MAX),
        )
    }

    /// Removes the failed list from the file and returns it, oldest first. Waits for the file,
    /// and is interrupted ([`Error::Cancelled`], nothing taken), as [`enqueue`](Self::enqueue).
    ///
    /// A report whose stored target cannot be read (a file damaged or edited by hand) cannot be
    /// returned: it stays in the file, where `sqlite3` shows it, and is logged at WARN by its row
    /// id; `maxFailed` drops it in time.
    pub fn take_failed(&self) -> Result<Vec<FailedReport>, Error> {
        let (reports, left) = self.watched(|| {
            self.store
                .run(|conn| store::take_failed(conn, failed_list::decode))
        })?;
        failed_list::warn_unreadable(self.store.path(), &left);
        Ok(reports)
    }

    /// The failed list, oldest first, as [`take_failed`](Self::take_failed) returns it, kept in
    /// the file. Waits for its turn on this handle, and is interrupted, as
    /// [`enqueue`](Self::enqueue).
    pub fn failed(&self) -> Result<Vec<FailedReport>, Error> {
        self.watched(|| self.store.failed_list())
    }

    /// Moves the failed list back to pending, in one transaction, and returns how many reports
    /// are pending again; a later [`flush`](Self::flush) sends them (once the cause is fixed: a
    /// user status created, a permission granted).
    ///
    /// Each report is stored by [`enqueue`](Self::enqueue)'s rules, as one made before any
    /// report pending for its user status, so the pending report's properties win where both
    /// set one; a report equal to what Graph acknowledged recently is skipped (see
    /// [`OutboxOptions::skip_unchanged`]). A new user status beyond the bounds is
    /// [`Error::OutboxFull`] and nothing moves. A report whose stored target or patch cannot be
    /// read stays in the failed list (logged at WARN by its row id). Waits for the file, and is
    /// interrupted ([`Error::Cancelled`], nothing moved), as [`enqueue`](Self::enqueue).
    pub fn requeue_failed(&self) -> Result<u64, Error> {
        let now = self.clock.now_ms();
        let done = self.watched(|| {
            self.store.run(|conn| {
                store::requeue_failed(
                    conn,
                    |row| self.stored_entry(row),
                    &self.options,
                    (now, &rfc3339(now)),
                    self.store.path(),
                )
            })
        })?;
        failed_list::warn(
            self.store.path(),
            done.stored.unreadable,
            done.stored.dropped,
        );
        failed_list::warn_unreadable(self.store.path(), &done.left);
        Ok(done.requeued)
    }

    /// Validates a report as an update would and names its row: the user status, i.e. the
    /// request path without the API version (route and ids), so one user status has one row
    /// whichever version names it.
    fn entry(
        &self,
        target: &Target,
        patch: &UserStatusPatch,
        version: Option<ApiVersion>,
    ) -> Result<Entry, Error> {
        let version = version.unwrap_or(self.client.api_version());
        patch.validate_for(target)?;
        let mut url = String::with_capacity(160);
        target.write_url(&mut url, version)?;
        Ok(Entry {
            key: url.split_off(1 + version.as_str().len()),
            target: target.to_value(version).to_string(),
            patch: patch.clone(),
        })
    }

    /// A row of the failed list as a report to store again; `None` when its target or patch
    /// cannot be read, or no longer passes the checks.
    fn stored_entry(&self, row: &StoredRow) -> Option<Entry> {
        let value = serde_json::from_str(row.target.text().ok()?).ok()?;
        let (target, version) = Target::from_value(value).ok()?;
        let patch = UserStatusPatch::from_json(row.patch.text().ok()?).ok()?;
        self.entry(&target, &patch, Some(version.unwrap_or_default()))
            .ok()
    }

    /// Runs `call` as a call on this outbox: its waits for the file (busy.rs) end at an
    /// interrupt of this outbox from now on.
    fn watched<T>(&self, call: impl FnOnce() -> T) -> T {
        let watch = Watch::new(&self.signal);
        let _entered = watch.enter();
        call()
    }

    fn store(&self, entries: &[Entry]) -> Result<Vec<Enqueued>, Error> {
        let now = self.clock.now_ms();
        let done = self.watched(|| {
            self.store.run(|conn| {
                store::enqueue(
                    conn,
                    entries,
                    &self.options,
                    (now, &rfc3339(now)),
                    self.store.path(),
                )
            })
        })?;
        failed_list::warn(self.store.path(), done.unreadable, done.dropped);
        Ok(done.outcomes)
    }
}
