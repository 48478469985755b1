//! One flush at a time per outbox file, across threads and processes.
//!
//! A flush holds an exclusive SQLite lock on a companion file, `<outbox>-flush`, for as long as it
//! runs, named after the outbox's canonical path (so a symbolic link or a relative path reaches the
//! same lock). The operating system drops the lock when the process dies, so a flush killed with
//! `kill -9` never blocks the next one, and no clock or lease expiry is involved. Enqueues never
//! touch this file, so they never wait for a flush. A flush waiting for the lock tries it again
//! every 50 ms, in a wait an interrupt of the flush ends, until its `flushTime` is spent (then it
//! sends nothing and returns as any flush out of time) or its client's time budget. A flush
//! called on the thread that holds the lock (from a callback of that flush: a token provider, a
//! logger) would wait for its own caller: it is refused at once instead.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::paths::companion;
use super::permissions::create_owner_only;
use crate::Error;
use crate::cancel::Watch;

/// How often a busy flush lock is tried again.
const POLL: Duration = Duration::from_millis(50);

thread_local! {
    /// The flush locks this thread holds (their paths): a flush of one of them from this thread
    /// is a callback's, which must not wait for its own caller.
    static HELD: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// The held lock; dropping it releases it.
pub(crate) struct FlushLock {
    _conn: Connection,
    path: PathBuf,
}

impl Drop for FlushLock {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|path| *path == self.path) {
                held.remove(at);
            }
        });
    }
}

/// `<outbox>-flush` for the outbox at `canonical`, its canonical path.
pub(crate) fn lock_path(canonical: &Path) -> PathBuf {
    companion(canonical, "-flush")
}

impl FlushLock {
    /// Waits for any other flush of the outbox to end: until `out_of_time` (the end of the
    /// flush's `flushTime`: then `Ok(None)`, and the flush sends nothing), up to `wait` (the
    /// client's time budget, if any: then [`Error::Storage`], unless `out_of_time` comes first),
    /// or until an interrupt of `watch` ([`Error::Cancelled`]); `path` is the lock file, from
    /// [`lock_path`]. [`Error::Storage`] at once when this thread holds it already.
    pub(crate) fn acquire(
        path: &Path,
        wait: Option<Duration>,
        out_of_time: Instant,
        watch: &Watch,
    ) -> Result<Option<FlushLock>, Error> {
        let storage = |reason: String| Error::storage(path.display().to_string(), reason);
        if HELD.with(|held| held.borrow().iter().any(|held| held == path)) {
            return Err(storage(
                "a flush of this outbox is already running on this thread: this flush was called \
                 from one of its callbacks (a token provider or a logger), and would wait for \
                 itself"
                    .into(),
            ));
        }
        create_owner_only(path)
            .map_err(|err| storage(format!("the flush lock cannot be created: {err}")))?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|err| storage(format!("the flush lock cannot be opened: {err}")))?;
        // No busy wait inside SQLite (rusqlite's default is 5 s): a busy lock is tried again
        // here, every POLL, in a wait an interrupt ends. The first try costs what it did.
        conn.busy_timeout(Duration::ZERO)
            .map_err(|err| storage(err.to_string()))?;
        let deadline = wait.map(|wait| Instant::now() + wait);
        loop {
            match conn.execute_batch("BEGIN EXCLUSIVE") {
                Ok(()) => {
                    HELD.with(|held| held.borrow_mut().push(path.to_path_buf()));
                    return Ok(Some(FlushLock {
                        _conn: conn,
                        path: path.to_path_buf(),
                    }));
                }
                Err(err) if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {}
                Err(err) => return Err(storage(format!("the flush lock cannot be taken: {err}"))),
            }
            let now = Instant::now();
            if now >= out_of_time && deadline.is_none_or(|deadline| out_of_time <= deadline) {
                return Ok(None);
            }
            if let (Some(deadline), Some(wait)) = (deadline, wait)
                && now >= deadline
            {
                return Err(storage(format!(
                    "another flush of this outbox ran longer than this flush's time budget ({:.1} s)",
                    wait.as_secs_f64()
                )));
            }
            let next = now + POLL;
            let until = deadline
                .map_or(next, |deadline| deadline.min(next))
                .min(out_of_time);
            if watch.sleep_until(until).is_err() {
                return Err(Error::cancelled(
                    "waiting for the flush lock (another flush of this outbox was running)",
                    "",
                    0,
                ));
            }
        }
    }
}
