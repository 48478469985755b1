//! The pacing gate every request passes before it is sent: an optional client-side rate limit, and
//! the hold that a 429 puts on every thread of the client.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crate::Error;
use crate::cancel::{Guarded, Waited, Watch};
use crate::limits::check_duration;

/// A client-side rate limit: at most `requests` requests in any `per` window, shared by every
/// thread using the client.
///
/// Intune allows 100 writes per 20 s per app and tenant; `Pacing::new(100, Duration::from_secs(20))`
/// keeps a bulk updater under that instead of collecting 429s. The limit holds for *every* window
/// of that length (a sliding window), which a token bucket of the same rate does not promise: a
/// full bucket plus its refill can send twice the limit within one window. A request's place in
/// the window lasts from when it leaves until `per` after its answer, so the service, which
/// counts arrivals, never sees more than the limit either, whatever the network's latency.
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
///
/// A request holds its slot from the moment it is admitted until its answer is back (or it
/// failed), and for `per` after that: the service counts a request when it arrives, which is
/// after it left and before its answer, so a window measured from answers on the client can never
/// hold more requests than the service's window of the same length, whatever the network's
/// latency and its jitter. (Measured from sends, a request delayed on the way and one sent `per`
/// later but delivered at once arrive closer together than `per`.)
pub(crate) struct Gate {
    pacing: Option<Pacing>,
    /// Its condvar is signalled when a request's slot starts ageing (its answer is back); an
    /// interrupt wakes it too.
    state: Arc<Guarded<State>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("pacing", &self.pacing)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Slots of requests admitted and not yet answered.
    in_flight: usize,
    /// When each answered request still inside a window was answered, oldest first.
    answered: VecDeque<Instant>,
    /// No request leaves before this (set by a 429's wait).
    held_until: Option<Instant>,
}

/// A request admitted by the gate; its slots start ageing when it is dropped (the request was
/// answered, failed, or was never sent).
#[must_use = "the slot is released when the admission is dropped"]
#[derive(Debug)]
pub(crate) struct Admission<'a> {
    gate: &'a Gate,
    /// Slots taken in the window (0 without pacing).
    slots: usize,
    /// How long the request waited at the gate.
    pub waited: Duration,
    /// The part of `waited` the pacing window imposed (the rest was a 429's hold).
    pub paced: Duration,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.slots == 0 {
            return;
        }
        let mut state = self.gate.lock();
        state.in_flight -= self.slots;
        let now = Instant::now();
        state.answered.extend(std::iter::repeat_n(now, self.slots));
        drop(state);
        self.gate.state.notify_all();
    }
}

/// Why the gate did not admit a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The wait needed would pass the deadline: this long (at least `per` when every slot waits
    /// for an answer).
    Wait(Duration),
    /// The call was interrupted while it waited.
    Cancelled,
}

/// Why a retry stopped when the gate refused it ([`Refused::Wait`]) after an answer that was not
/// Graph's 429: the `retry_stopped` of that answer, which the call ends with (Graph throttled
/// nothing), in a direct call (pipeline.rs) and for a bulk item (scheduler.rs) alike.
pub(crate) fn refused_retry(wait: Duration) -> String {
    format!(
        "its retry would wait {:.3} s at the client's own pacing gate, past the call's budget",
        wait.as_secs_f64()
    )
}

/// What a request must wait for before it may leave.
enum Wait {
    None,
    /// This long; `paced`: the pacing window, not only a 429's hold, needs it.
    For {
        wait: Duration,
        paced: bool,
    },
    /// Every slot is taken by requests not yet answered: until one is (then `per` more).
    Answer(Duration),
}

impl Gate {
    pub fn new(pacing: Option<Pacing>) -> Gate {
        Gate {
            pacing,
            state: Arc::new(Guarded::new(State::default())),
        }
    }

    /// Blocks until a request that counts as `count` requests may be sent (a `$batch` counts
    /// each of its inner requests, as Intune does) and admits it: the returned admission holds
    /// its slots until it is dropped. When the wait would pass `deadline`, returns at once with
    /// the wait that was needed instead (at least `per` when every slot waits for an answer); an
    /// interrupt of `watch` ends the wait. A count above the limit is taken as the limit: the
    /// request waits for a whole empty window.
    pub fn admit_many(
        &self,
        count: u32,
        deadline: Option<Instant>,
        watch: &Watch,
    ) -> Result<Admission<'_>, Refused> {
        let slots = match self.pacing {
            Some(pacing) => count.clamp(1, pacing.requests) as usize,
            None => 0,
        };
        let mut state = self.lock();
        if slots == 0 && state.held_until.is_none() {
            // The common case costs one uncontended lock.
            return Ok(Admission {
                gate: self,
                slots,
                waited: Duration::ZERO,
                paced: Duration::ZERO,
            });
        }
        let started = Instant::now();
        // Time spent in waits the pacing window imposed, and whether the last one was such.
        let (mut paced, mut pacing_bound, mut looked) = (Duration::ZERO, false, started);
        let mut now = started;
        loop {
            if pacing_bound {
                paced += now.saturating_duration_since(looked);
            }
            looked = now;
            let until = match state.wait_needed(self.pacing, slots, now) {
                Wait::None => {
                    state.in_flight += slots;
                    return Ok(Admission {
                        gate: self,
                        slots,
                        waited: now.saturating_duration_since(started),
                        paced,
                    });
                }
                Wait::For { wait, .. }
                    if deadline.is_some_and(|deadline| now + wait > deadline) =>
                {
                    return Err(Refused::Wait(wait));
                }
                Wait::For { wait, paced } => {
                    pacing_bound = paced;
                    Some(now + wait)
                }
                // A slot an answer frees opens `per` after it: no sooner than `needed` from now.
                Wait::Answer(needed)
                    if deadline.is_some_and(|deadline| now + needed > deadline) =>
                {
                    return Err(Refused::Wait(needed));
                }
                Wait::Answer(_) => {
                    pacing_bound = true;
                    deadline
                }
            };
            // One wake-up (an answer, the time, an interrupt), then look again: the lock is
            // released while waiting, and another thread may take the slot first.
            let mut first = true;
            let (woken, waited) = watch.wait_while(&self.state, state, until, |_| {
                std::mem::replace(&mut first, false)
            });
            state = woken;
            if waited == Waited::Cancelled {
                return Err(Refused::Cancelled);
            }
            now = Instant::now();
        }
    }

    /// The client-side rate limit, if any.
    pub fn pacing(&self) -> Option<Pacing> {
        self.pacing
    }

    /// Holds every thread's next request from `now` until `until` (a 429's `Retry-After` has
    /// passed), and returns how much later the hold now ends than it did (zero when an earlier
    /// hold already lasts as long).
    pub fn hold_until(&self, now: Instant, until: Instant) -> Duration {
        let mut state = self.lock();
        let held = state.held_until.map_or(now, |held| held.max(now));
        if state.held_until.is_none_or(|held| held < until) {
            state.held_until = Some(until);
        }
        until.saturating_duration_since(held)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl State {
    /// What `slots` more requests wait for before they fit in every window.
    fn wait_needed(&mut self, pacing: Option<Pacing>, slots: usize, now: Instant) -> Wait {
        let mut wait = Duration::ZERO;
        if let Some(until) = self.held_until {
            if until > now {
                wait = until - now;
            } else {
                self.held_until = None;
            }
        }
        let Some(pacing) = pacing else {
            return if wait.is_zero() {
                Wait::None
            } else {
                Wait::For { wait, paced: false }
            };
        };
        let held = wait;
        while self
            .answered
            .front()
            .is_some_and(|&at| at + pacing.per <= now)
        {
            self.answered.pop_front();
        }
        let taken = self.in_flight + self.answered.len();
        let excess = (taken + slots).saturating_sub(pacing.requests as usize);
        if excess > self.answered.len() {
            return Wait::Answer(wait.max(pacing.per));
        }
        // The request may leave once the answer that would be the window's oldest has aged out.
        if let Some(&oldest) = excess.checked_sub(1).and_then(|i| self.answered.get(i)) {
            wait = wait.max((oldest + pacing.per).saturating_duration_since(now));
        }
        if wait.is_zero() {
            Wait::None
        } else {
            Wait::For {
                wait,
                paced: wait > held,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::Signal;
    use std::sync::Mutex;

    /// A call no interrupt touches.
    fn watch() -> Watch {
        Watch::new(&Signal::new())
    }

    /// Admits a request that is answered at once.
    fn answered(gate: &Gate, count: u32) {
        drop(gate.admit_many(count, None, &watch()).unwrap());
    }

    #[test]
    fn pacing_accepts_one_to_the_largest_window_and_names_the_field_past_it() {
        let per = Duration::from_secs(1);
        assert!(Pacing::new(1, per).validate().is_ok());
        assert!(Pacing::new(MAX_PACED_REQUESTS, per).validate().is_ok());
        for requests in [0, MAX_PACED_REQUESTS + 1, u32::MAX] {
            let err = Pacing::new(requests, per)
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("pacing.requests") && err.contains(&requests.to_string()),
                "{requests}: {err}"
            );
        }
    }

    #[test]
    fn no_window_ever_holds_more_than_the_limit() {
        let gate = Gate::new(Some(Pacing::new(5, Duration::from_millis(100))));
        let mut sent = Vec::new();
        for _ in 0..12 {
            answered(&gate, 1);
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
    fn the_service_never_sees_more_than_the_limit_whatever_the_latency() {
        // 4 threads send through a gate of 3 per 150 ms; each request reaches the "service"
        // 0 or 60 ms after it leaves (alternating), and is answered 20 ms after that. Measured
        // from sends, a delayed request and one sent 150 ms later but delivered at once would
        // arrive 90 ms apart.
        let per = Duration::from_millis(150);
        let gate = Arc::new(Gate::new(Some(Pacing::new(3, per))));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let (gate, arrivals) = (Arc::clone(&gate), Arc::clone(&arrivals));
                std::thread::spawn(move || {
                    for n in 0..3 {
                        let admission = gate.admit_many(1, None, &watch()).unwrap();
                        let delay = if (thread + n) % 2 == 0 { 60 } else { 0 };
                        std::thread::sleep(Duration::from_millis(delay));
                        arrivals.lock().unwrap().push(Instant::now());
                        std::thread::sleep(Duration::from_millis(20));
                        drop(admission);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let mut arrivals = arrivals.lock().unwrap().clone();
        arrivals.sort();
        assert_eq!(arrivals.len(), 12);
        for pair in arrivals.windows(4) {
            let span = pair[3] - pair[0];
            assert!(
                span >= per,
                "4 arrivals within {span:?}: more than 3 per {per:?}"
            );
        }
    }

    #[test]
    fn a_slot_ages_from_its_answer_not_from_its_send() {
        let per = Duration::from_millis(100);
        let gate = Arc::new(Gate::new(Some(Pacing::new(1, per))));
        let first = gate.admit_many(1, None, &watch()).unwrap();
        // Every slot waits for an answer, and a slot opens `per` after its answer: a deadline
        // sooner than that is given up at once.
        let started = Instant::now();
        let needed = gate
            .admit_many(1, Some(started + Duration::from_millis(60)), &watch())
            .unwrap_err();
        let Refused::Wait(needed) = needed else {
            panic!("{needed:?}")
        };
        assert!(needed >= per, "{needed:?}");
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "no pointless wait"
        );
        let second = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                drop(gate.admit_many(1, None, &watch()).unwrap());
                Instant::now()
            })
        };
        std::thread::sleep(Duration::from_millis(150));
        let answered_at = Instant::now();
        drop(first);
        let second_left = second.join().unwrap();
        assert!(
            second_left >= answered_at + per,
            "left {:?} after the answer",
            second_left - answered_at
        );
    }

    #[test]
    fn a_weighted_request_counts_as_many_and_no_window_overflows() {
        let gate = Gate::new(Some(Pacing::new(10, Duration::from_millis(200))));
        let started = Instant::now();
        answered(&gate, 6);
        answered(&gate, 4);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "10 fit at once"
        );
        // The window is full: 6 more must wait for the first 6 to age out.
        let needed = gate
            .admit_many(6, Some(Instant::now()), &watch())
            .unwrap_err();
        let Refused::Wait(needed) = needed else {
            panic!("{needed:?}")
        };
        assert!(needed > Duration::from_millis(100), "{needed:?}");
        answered(&gate, 6);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // More than the limit waits for a whole empty window instead of never leaving.
        answered(&gate, 25);
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[test]
    fn a_hold_delays_the_next_request_and_a_short_deadline_gives_up_at_once() {
        let gate = Gate::new(None);
        let started = Instant::now();
        let extended = gate.hold_until(started, started + Duration::from_millis(80));
        assert_eq!(extended, Duration::from_millis(80), "what the hold added");
        let covered = gate.hold_until(started, started + Duration::from_millis(50));
        assert_eq!(covered, Duration::ZERO, "an earlier hold already covers it");
        let needed = gate
            .admit_many(1, Some(started + Duration::from_millis(10)), &watch())
            .unwrap_err();
        let Refused::Wait(needed) = needed else {
            panic!("{needed:?}")
        };
        assert!(needed > Duration::from_millis(50));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "no pointless sleep"
        );
        answered(&gate, 1);
        assert!(started.elapsed() >= Duration::from_millis(80));
    }

    /// The metrics' pacingWaits count what the window imposed, not what a 429's hold did.
    #[test]
    fn a_longer_hold_extends_the_one_in_force() {
        // A second 429 asking longer than the first: every thread waits for the later one.
        let gate = Gate::new(None);
        let now = Instant::now();
        gate.hold_until(now, now + Duration::from_secs(10));
        let extended = gate.hold_until(now, now + Duration::from_secs(30));
        assert_eq!(
            extended,
            Duration::from_secs(20),
            "what the second hold added"
        );
        let Err(Refused::Wait(needed)) = gate.admit_many(1, Some(now), &watch()) else {
            panic!("admitted during the hold")
        };
        assert!(needed > Duration::from_secs(29), "{needed:?}");
    }

    #[test]
    fn an_admission_says_which_part_of_its_wait_the_window_imposed() {
        let per = Duration::from_millis(100);
        let gate = Gate::new(Some(Pacing::new(1, per)));
        let first = gate.admit_many(1, None, &watch()).unwrap();
        assert_eq!(
            (first.waited, first.paced),
            (Duration::ZERO, Duration::ZERO)
        );
        drop(first);
        let second = gate.admit_many(1, None, &watch()).unwrap();
        assert!(second.paced >= Duration::from_millis(90), "{second:?}");
        assert_eq!(second.paced, second.waited, "only the window made it wait");
        drop(second);
        // A hold longer than the window: the wait is the hold's.
        std::thread::sleep(per);
        let now = Instant::now();
        gate.hold_until(now, now + Duration::from_millis(150));
        let third = gate.admit_many(1, None, &watch()).unwrap();
        assert!(third.waited >= Duration::from_millis(140), "{third:?}");
        assert_eq!(third.paced, Duration::ZERO, "{third:?}");
    }

    #[test]
    fn an_interrupt_ends_a_wait_at_the_gate_and_later_calls_still_wait_their_turn() {
        let gate = Gate::new(Some(Pacing::new(1, Duration::from_secs(60))));
        answered(&gate, 1);
        let signal = Signal::new();
        let watch = Watch::new(&signal);
        let interrupter = {
            let signal = Arc::clone(&signal);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                signal.interrupt();
            })
        };
        let started = Instant::now();
        let refused = gate.admit_many(1, None, &watch).unwrap_err();
        assert_eq!(refused, Refused::Cancelled);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        interrupter.join().unwrap();
        let later = gate.admit_many(1, Some(Instant::now()), &Watch::new(&signal));
        assert!(matches!(later, Err(Refused::Wait(_))), "{later:?}");
    }
}
