//! An outbox file opened to be looked at only: its figures and its failed list, for an operator
//! looking at an agent's file (`ius outbox PATH stats`, `failed`). Opening it never creates,
//! migrates or writes the file.

use std::fmt;
use std::path::Path;

use super::busy;
use super::clock::{Clock, Horizon};
use super::report::{FailedReport, OutboxStats};
use super::schema;
use super::store::{self, Store};
use crate::Error;

/// An outbox file, read only: [`stats`](Self::stats) and [`failed`](Self::failed) as an
/// [`Outbox`](crate::Outbox) gives them, without a client and without writing the file, so an
/// agent's file can be looked at while the agent runs.
///
/// ```no_run
/// use intune_user_status::OutboxReader;
/// let outbox = OutboxReader::open("/var/lib/agent/outbox.db")?;
/// println!("{} pending, {} failed", outbox.stats()?.pending, outbox.failed()?.len());
/// # Ok::<(), intune_user_status::Error>(())
/// ```
pub struct OutboxReader {
    clock: Clock,
    store: Store,
}

impl fmt::Debug for OutboxReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxReader")
            .field("path", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl OutboxReader {
    /// Opens the outbox at `path` to read it. A missing or empty file, a file that is not an
    /// outbox, and an outbox of an older or newer version of this library are an
    /// [`Error::Storage`] naming the path and the reason: an older file is not migrated (an
    /// [`Outbox::open`](crate::Outbox::open) does that). So is a file whose writer was killed
    /// mid-write, until a writer opens it and recovers its log.
    pub fn open(path: impl AsRef<Path>) -> Result<OutboxReader, Error> {
        let path = path.as_ref();
        let conn = schema::open_read_only(path, busy::BUSY_TIMEOUT)?;
        Ok(OutboxReader {
            clock: Clock::default(),
            store: Store::new(path, conn),
        })
    }

    /// The outbox's figures.
    pub fn stats(&self) -> Result<OutboxStats, Error> {
        // No client, so no maxDelay: a hold is believed up to the wait it was set for.
        let horizon = Horizon::new(self.clock.now_ms(), 0);
        self.store.run(|conn| store::stats(conn, horizon))
    }

    /// The failed list, oldest first, as [`Outbox::failed`](crate::Outbox::failed) returns it. A
    /// report whose stored target cannot be read is left out (logged at WARN by its row id).
    pub fn failed(&self) -> Result<Vec<FailedReport>, Error> {
        self.store.failed_list()
    }
}
