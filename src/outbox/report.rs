//! What the outbox's calls return: an enqueue's outcome, a flush's report, the figures, and a
//! report of the failed list.

use std::time::Duration;

use crate::{ApiVersion, DateTimeOffset, Error, FlushStop, Target, UserStatusPatch};

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
    /// Reports a request carried to Graph. Reports no request carried are never counted here nor
    /// in `retry_later`: those an interrupt or the pacing gate stopped first (they stay due), and
    /// those no token could be had for (the flush stops, returns the [`Error::Auth`], and holds
    /// them for their backoff, no failure counted). So `sent` is at most
    /// `applied + retry_later + failed + interrupted` (`failed` also counts rows that could not
    /// be read, never sent), except after a flush that could not record its last round (the
    /// file busy when interrupted): those reports are counted as sent only, and stay pending.
    pub sent: u64,
    /// Reports Graph applied; removed, their properties now the acknowledged state.
    pub applied: u64,
    /// Reports throttled or failed transiently: kept, with a later next attempt.
    pub retry_later: u64,
    /// Reports moved to the failed list: Graph refused them for good (a 4xx other than 408 and
    /// 429), or the file's row could not be read ([`Error::Storage`] naming the row).
    pub failed: u64,
    /// Reports due but removed unsent: they equal what Graph acknowledged recently.
    pub skipped: u64,
    /// Reports whose sending an interrupt abandoned ([`Outbox::interrupt`](super::Outbox::interrupt)):
    /// whether Graph applied them is unknown, so they stay pending and are sent again after the
    /// backoff (as every unknown outcome is: a late write cannot land after a newer one).
    /// Reports the interrupt stopped before any request carrying them left (at the pacing gate,
    /// waiting for a token) are not counted here nor in `sent`: they stay due.
    pub interrupted: u64,
    /// Reports still pending after the flush. After an interrupt whose file could not be read
    /// at all (another connection locking it whole), the reports the flush knew were pending: a
    /// lower bound, with `stopped_by` saying the flush did not drain.
    pub pending: u64,
    /// When the earliest pending report is due (zero: now), if any is pending; never more than
    /// the longer of the client's `retry.maxDelayMs` and the `Retry-After` Graph asked (which
    /// holds every report, at most [`MAX_OUTBOX_HOLD`](crate::MAX_OUTBOX_HOLD): see
    /// [`Outbox::flush`](crate::Outbox::flush)). `None` with reports pending only after an
    /// interrupt whose file could not be read: not known.
    pub next_attempt_in: Option<Duration>,
    /// Why the flush stopped before working through what was due; `None` when it drained, or
    /// sent everything that was due (what is left waits for its own next attempt).
    pub stopped_by: Option<FlushStop>,
}

impl FlushReport {
    /// Whether this report, filled by [`Outbox::flush_into`](super::Outbox::flush_into), says
    /// what a flush that ended with `flushed` did: when it ran (`Ok`), was interrupted
    /// ([`Error::Cancelled`]), stopped for want of a token ([`Error::Auth`]), ended with any
    /// other error after requests went out (`sent` > 0, e.g. [`Error::Storage`] recording their
    /// outcomes: those reports stay pending), or ended with the [`Error::Storage`] of a request
    /// the file kept back, its round recorded (`stopped_by` [`FlushStop::Storage`], even when
    /// nothing was sent: the agent sees what is pending and when). Not when it could not run at
    /// all (the lock, the file, a record that failed). The C API and the `ius` CLI hand the
    /// report back exactly then.
    pub fn tells_of(&self, flushed: &Result<(), Error>) -> bool {
        match flushed {
            Ok(()) => true,
            Err(error) => {
                error.is_cancelled()
                    || error.auth().is_some()
                    || self.sent > 0
                    || self.stopped_by == Some(FlushStop::Storage)
            }
        }
    }
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
    /// Failed reports dropped since the file was made: the oldest, beyond
    /// [`max_failed`](super::OutboxOptions::max_failed) or to make room within `maxBytes`.
    pub failed_dropped: u64,
    /// The file's size in bytes (without SQLite's `-wal` and `-shm`).
    pub bytes: u64,
    /// How long the oldest pending report has waited, if any is pending.
    pub oldest_pending: Option<Duration>,
    /// When the outbox-wide hold in force ends (UTC), if one is: a flush that Graph throttled
    /// (or could not reach, or whose credentials it refused) holds every report back until then
    /// ([`Outbox::clear_hold`](super::Outbox::clear_hold) ends it).
    pub held_until: Option<DateTimeOffset>,
    /// How long the hold in force still lasts, if one is.
    pub hold_left: Option<Duration>,
}

/// A report Graph refused for good, as [`Outbox::take_failed`](super::Outbox::take_failed)
/// returns it.
#[derive(Debug)]
#[non_exhaustive]
pub struct FailedReport {
    /// The user status it was for.
    pub target: Target,
    /// The API version it was sent with.
    pub api_version: ApiVersion,
    /// What was sent (empty when the stored report could not be read: then `error` is
    /// [`Error::Storage`] saying why).
    pub patch: UserStatusPatch,
    /// What Graph answered, or why the stored report could not be sent.
    pub error: Error,
    /// When it failed (UTC).
    pub failed_at: DateTimeOffset,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_tells_of_a_flush_that_ran_or_sent_and_not_of_one_that_could_not_run() {
        let storage = || Err(Error::storage("/var/lib/o.db", "disk I/O error"));
        let nothing_sent = FlushReport::default();
        assert!(nothing_sent.tells_of(&Ok(())));
        assert!(nothing_sent.tells_of(&Err(Error::cancelled("between rounds", "", 0))));
        assert!(nothing_sent.tells_of(&Err(crate::AuthError::new("no token").into())));
        // Could not run (the lock, the file): no report.
        assert!(!nothing_sent.tells_of(&storage()));
        // Requests went out, then the record failed: what was sent is said.
        let sent = FlushReport {
            sent: 3,
            ..FlushReport::default()
        };
        assert!(sent.tells_of(&storage()));
        // The file kept the round's first request back: nothing sent, the round recorded.
        let kept_back = FlushReport {
            pending: 1,
            stopped_by: Some(FlushStop::Storage),
            ..FlushReport::default()
        };
        assert!(kept_back.tells_of(&storage()));
    }
}
