//! The outbox's wall clock, and how the times it stored are read back.
//!
//! Stored times are wall-clock (Unix milliseconds) because they outlive the process and are shared
//! by every process using the file. A wall clock jumps (no RTC battery, before NTP, a sleeping
//! laptop), so a stored time is bounded when it is read, never trusted: a next attempt later than
//! now + the longer of the retry policy's `maxDelayMs` and the request's `requestMs` (a changed
//! value held back behind a write in doubt, in_doubt.rs) is due now, and so is the outbox-wide hold once it ends
//! later than now + the longer of `maxDelayMs` and the wait it was set for ([`Horizon`]); an
//! acknowledgement dated in the future has expired ([`is_fresh`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// Where "now" comes from: the system clock, or (in this crate's tests) a clock the test sets.
#[derive(Clone, Debug, Default)]
pub(crate) struct Clock {
    #[cfg(test)]
    set: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
    /// A set clock's steady time: (the set time last read, the steady time then).
    #[cfg(test)]
    steady: std::sync::Arc<std::sync::Mutex<Option<(i64, i64)>>>,
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        #[cfg(test)]
        if let Some(set) = &self.set {
            return set.load(std::sync::atomic::Ordering::SeqCst);
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Milliseconds on the steady (monotonic) clock since an origin of this process: never
    /// stepped, unlike the wall clock (steady.rs). A test's set clock moving forward is time
    /// passing, and moving back a step of the wall clock alone: its steady time counts the
    /// forward moves only.
    pub(crate) fn steady_ms(&self) -> i64 {
        #[cfg(test)]
        if let Some(set) = &self.set {
            let now = set.load(std::sync::atomic::Ordering::SeqCst);
            let mut steady = self
                .steady
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (last, at) = steady.unwrap_or((now, 0));
            let at = at + (now - last).max(0);
            *steady = Some((now, at));
            return at;
        }
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let elapsed = ORIGIN.get_or_init(std::time::Instant::now).elapsed();
        i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether this is the system's clock, whose steady time every handle in the process shares
    /// (a test's set clock counts its own).
    pub(crate) fn is_system(&self) -> bool {
        #[cfg(test)]
        if self.set.is_some() {
            return false;
        }
        true
    }

    /// A clock that reads `at` until the test stores another time in it.
    #[cfg(test)]
    pub(crate) fn fixed(at: i64) -> (Clock, std::sync::Arc<std::sync::atomic::AtomicI64>) {
        let set = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(at));
        (
            Clock {
                set: Some(std::sync::Arc::clone(&set)),
                steady: std::sync::Arc::default(),
            },
            set,
        )
    }
}

/// "Now" and the latest next attempt believed: now + the longer of `maxDelayMs` and `requestMs`.
/// A stored next attempt past it was written by a clock that ran ahead, and is due now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Horizon {
    pub now: i64,
    pub latest: i64,
}

impl Horizon {
    pub(crate) fn new(now: i64, latest_ms: i64) -> Horizon {
        Horizon {
            now,
            latest: now.saturating_add(latest_ms),
        }
    }

    /// Whether a stored time `at`, set for a wait of `asked` ms, is believed: no later than now +
    /// the longer of `maxDelayMs` and `asked` (a `Retry-After` Graph asked may be longer than
    /// `maxDelayMs`, and is honoured in full).
    pub(crate) fn believes(&self, at: i64, asked: i64) -> bool {
        at <= self.latest.max(self.now.saturating_add(asked))
    }

    /// The SQL for a row's next attempt as believed (`?1` now, `?2` the latest believed).
    pub(crate) const NEXT_ATTEMPT: &'static str =
        "(CASE WHEN next_attempt_at > ?2 THEN ?1 ELSE next_attempt_at END)";
}

/// Whether an acknowledgement at `at` still suppresses an equal report at `now`: less than
/// `window` ago, and not in the future.
pub(crate) fn is_fresh(at: i64, now: i64, window: i64) -> bool {
    at <= now && now.saturating_sub(at) < window
}

/// `ms` as RFC 3339 in UTC, to the second: the failed list's `failed_at`.
pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::is_fresh;

    /// An acknowledgement suppresses an equal report for less than its window: at exactly the
    /// window it has expired (docs/outbox.md: re-asserted once `resendAfter` has passed), and one
    /// dated in the future has expired too.
    #[test]
    fn an_acknowledgement_is_fresh_for_less_than_its_window() {
        assert!(is_fresh(1_000, 1_000, 2_000));
        assert!(is_fresh(1_000, 2_999, 2_000));
        assert!(!is_fresh(1_000, 3_000, 2_000), "exactly the window ago");
        assert!(!is_fresh(1_001, 1_000, 2_000), "in the future");
    }
}
