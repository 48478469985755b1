//! One flush at a time per outbox file, across threads and processes.
//!
//! A flush holds an exclusive SQLite lock on a companion file, `<outbox>-flush`, for as long as it
//! runs, named after the outbox's canonical path (so a symbolic link or a relative path reaches the
//! same lock). The operating system drops the lock when the process dies, so a flush killed with
//! `kill -9` never blocks the next one, and no clock or lease expiry is involved. Enqueues never
//! touch this file, so they never wait for a flush.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::paths::companion;
use super::permissions::create_owner_only;
use crate::Error;

/// The held lock; dropping it releases it.
pub(crate) struct FlushLock {
    _conn: Connection,
}

/// `<outbox>-flush` for the outbox at `canonical`, its canonical path.
pub(crate) fn lock_path(canonical: &Path) -> PathBuf {
    companion(canonical, "-flush")
}

impl FlushLock {
    /// Waits up to `wait` (no bound when `None`) for any other flush of the outbox to end;
    /// `path` is the lock file, from [`lock_path`].
    pub(crate) fn acquire(path: &Path, wait: Option<Duration>) -> Result<FlushLock, Error> {
        let storage = |reason: String| Error::Storage {
            path: path.display().to_string(),
            reason,
        };
        create_owner_only(path)
            .map_err(|err| storage(format!("the flush lock cannot be created: {err}")))?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|err| storage(format!("the flush lock cannot be opened: {err}")))?;
        // SQLite's busy timeout is an int of milliseconds.
        let wait = wait.unwrap_or(Duration::from_millis(i32::MAX as u64));
        conn.busy_timeout(wait)
            .map_err(|err| storage(err.to_string()))?;
        match conn.execute_batch("BEGIN EXCLUSIVE") {
            Ok(()) => Ok(FlushLock { _conn: conn }),
            Err(err) if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                Err(storage(format!(
                    "another flush of this outbox ran longer than this flush's time budget ({:.1} s)",
                    wait.as_secs_f64()
                )))
            }
            Err(err) => Err(storage(format!("the flush lock cannot be taken: {err}"))),
        }
    }
}
