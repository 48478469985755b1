//! How an outbox bounds and filters what it stores, and how long a flush may run.

use std::time::Duration;

use crate::Error;
use crate::limits::check_duration;

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
    /// a report for a new user status is refused with [`Error::OutboxFull`] near it, after what
    /// Graph acknowledged (expired acknowledgements, then the oldest: each costs at most one
    /// resend) and then the oldest failed reports are dropped to make room.
    pub max_bytes: u64,
    /// Skip a report when every property it carries was acknowledged by Graph with that value
    /// less than [`resend_after`](Self::resend_after) ago (default true).
    pub skip_unchanged: bool,
    /// How long a property's acknowledgement suppresses equal reports (default one day), so a
    /// steady status is still re-asserted daily. Each property keeps its own time.
    pub resend_after: Duration,
    /// A flush starts no batch after running this long (default 5 minutes): it records what
    /// finished and returns with the rest pending, so an agent's loop keeps its rhythm. A wait
    /// for another flush of the file counts: past this, the flush sends nothing and returns. A
    /// request's wait for the busy file before it leaves ends here too (then `Error::Storage`).
    pub flush_time: Duration,
    /// At most this many reports in the failed list (default 10,000); beyond it the oldest are
    /// dropped, counted in [`OutboxStats::failed_dropped`](super::OutboxStats::failed_dropped)
    /// and logged at WARN.
    pub max_failed: u64,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            max_pending: 100_000,
            max_bytes: 64 * 1024 * 1024,
            skip_unchanged: true,
            resend_after: Duration::from_secs(86_400),
            flush_time: Duration::from_secs(300),
            max_failed: 10_000,
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

    /// Sets [`flush_time`](Self::flush_time) (more than zero, at most one day).
    pub fn flush_time(mut self, time: Duration) -> Self {
        self.flush_time = time;
        self
    }

    /// Sets [`max_failed`](Self::max_failed) (0 keeps no failed report).
    pub fn max_failed(mut self, reports: u64) -> Self {
        self.max_failed = reports;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
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
        check_duration("flushTimeMs", self.flush_time, false)
    }

    /// [`resend_after`](Self::resend_after) in milliseconds, as the file's times are.
    pub(crate) fn resend_after_ms(&self) -> i64 {
        i64::try_from(self.resend_after.as_millis()).unwrap_or(i64::MAX)
    }
}
