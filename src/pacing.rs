//! The pacing gate every request passes before it is sent: an optional client-side rate limit, and
//! the hold that a 429 puts on every thread of the client.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;
use crate::limits::check_duration;

/// A client-side rate limit: at most `requests` requests in any `per` window, shared by every
/// thread using the client.
///
/// Intune allows 100 writes per 20 s per app and tenant; `Pacing::new(100, Duration::from_secs(20))`
/// keeps a bulk updater under that instead of collecting 429s. The limit holds for *every* window
/// of that length (a sliding window), which a token bucket of the same rate does not promise: a
/// full bucket plus its refill can send twice the limit within one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub(crate) requests: u32,
    pub(crate) per: Duration,
}

impl Pacing {
    /// At most `requests` requests per `per`.
    pub fn new(requests: u32, per: Duration) -> Pacing {
        Pacing { requests, per }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        // The window keeps one timestamp per request: bound it.
        if self.requests == 0 || self.requests > MAX_PACED_REQUESTS {
            return Err(Error::config(
                "pacing.requests",
                format!(
                    "must be between 1 and {MAX_PACED_REQUESTS}, got {}",
                    self.requests
                ),
            ));
        }
        check_duration("pacing.perSeconds", self.per, false)
    }
}

/// The largest `requests` a pacing window accepts (Intune's own limits are 100 and 1000).
pub const MAX_PACED_REQUESTS: u32 = 100_000;

/// Shared by all threads of one client.
#[derive(Debug)]
pub(crate) struct Gate {
    pacing: Option<Pacing>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Send times of the last `pacing.requests` requests, oldest first.
    sent: VecDeque<Instant>,
    /// No request leaves before this (set by a 429's wait).
    held_until: Option<Instant>,
}

impl Gate {
    pub fn new(pacing: Option<Pacing>) -> Gate {
        Gate {
            pacing,
            state: Mutex::new(State::default()),
        }
    }

    /// Blocks until a request that counts as `count` requests may be sent (a `$batch` counts
    /// each of its inner requests, as Intune does), counts it as sent and returns how long it
    /// waited. When the wait would pass
    /// `deadline`, returns at once with the wait that was needed instead. A count above the limit
    /// is taken as the limit: the request waits for a whole empty window.
    pub fn admit_many(&self, count: u32, deadline: Option<Instant>) -> Result<Duration, Duration> {
        let count = match self.pacing {
            Some(pacing) => count.clamp(1, pacing.requests) as usize,
            None => 1,
        };
        if self.pacing.is_none() && self.lock().held_until.is_none() {
            return Ok(Duration::ZERO); // the common case costs one uncontended lock
        }
        let started = Instant::now();
        loop {
            let now = Instant::now();
            let wait = {
                let mut state = self.lock();
                let wait = state.wait_needed(self.pacing, count, now);
                if wait.is_zero() {
                    if let Some(pacing) = self.pacing {
                        while state.sent.len() + count > pacing.requests as usize {
                            state.sent.pop_front();
                        }
                        state.sent.extend(std::iter::repeat_n(now, count));
                    }
                    return Ok(now.saturating_duration_since(started));
                }
                wait
            };
            if deadline.is_some_and(|deadline| now + wait > deadline) {
                return Err(wait);
            }
            // Sleep outside the lock; another thread may take the slot first, so check again.
            std::thread::sleep(wait);
        }
    }

    /// The client-side rate limit, if any.
    pub fn pacing(&self) -> Option<Pacing> {
        self.pacing
    }

    /// Holds every thread's next request until `until` (a 429's `Retry-After` has passed).
    pub fn hold_until(&self, until: Instant) {
        let mut state = self.lock();
        if state.held_until.is_none_or(|held| held < until) {
            state.held_until = Some(until);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// How long until `count` more requests fit in every window.
    fn wait_needed(&mut self, pacing: Option<Pacing>, count: usize, now: Instant) -> Duration {
        let mut wait = Duration::ZERO;
        if let Some(until) = self.held_until {
            if until > now {
                wait = until - now;
            } else {
                self.held_until = None;
            }
        }
        // The request may leave once the send that would be the window's oldest has aged out.
        if let Some(pacing) = pacing
            && let Some(excess) = (self.sent.len() + count).checked_sub(pacing.requests as usize)
            && excess > 0
            && let Some(&oldest) = self.sent.get(excess - 1)
        {
            wait = wait.max((oldest + pacing.per).saturating_duration_since(now));
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_window_ever_holds_more_than_the_limit() {
        let gate = Gate::new(Some(Pacing::new(5, Duration::from_millis(100))));
        let mut sent = Vec::new();
        for _ in 0..12 {
            gate.admit_many(1, None).unwrap();
            sent.push(Instant::now());
        }
        for (i, at) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .filter(|later| later.duration_since(*at) < Duration::from_millis(100))
                .count();
            assert!(in_window <= 5, "{in_window} requests within 100 ms");
        }
        // 12 requests at 5 per 100 ms need at least two full windows.
        assert!(sent[11].duration_since(sent[0]) >= Duration::from_millis(200));
    }

    #[test]
    fn a_weighted_request_counts_as_many_and_no_window_overflows() {
        let gate = Gate::new(Some(Pacing::new(10, Duration::from_millis(200))));
        let started = Instant::now();
        gate.admit_many(6, None).unwrap();
        gate.admit_many(4, None).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "10 fit at once"
        );
        // The window is full: 6 more must wait for the first 6 to age out.
        let needed = gate.admit_many(6, Some(Instant::now())).unwrap_err();
        assert!(needed > Duration::from_millis(100), "{needed:?}");
        gate.admit_many(6, None).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        // More than the limit waits for a whole empty window instead of never leaving.
        gate.admit_many(25, None).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[test]
    fn a_hold_delays_the_next_request_and_a_short_deadline_gives_up_at_once() {
        let gate = Gate::new(None);
        let started = Instant::now();
        gate.hold_until(started + Duration::from_millis(80));
        let needed = gate
            .admit_many(1, Some(started + Duration::from_millis(10)))
            .unwrap_err();
        assert!(needed > Duration::from_millis(50));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "no pointless sleep"
        );
        gate.admit_many(1, None).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(80));
    }
}
