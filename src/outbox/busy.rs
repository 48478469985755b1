//! How an outbox call waits for the file, in the two places it can: for the handle's one
//! connection while another call on the same handle uses it ([`wait_for_turn`]), and for another
//! connection's write (another process's or handle's enqueue or flush: SQLite's busy handler,
//! [`wait`]). Both wait through the watch of the outbox call running on this thread, so an
//! interrupt ends them. The wait for another connection is bounded by [`BUSY_TIMEOUT`]; the wait
//! for a turn is not (the call holding the connection is working, its own waits bounded), and
//! ends early by an interrupt only. Both end by a deadline too where one is set ([`within`]: the
//! departure hook's writes, which run inside a call and spend its `totalMs`, and end with the
//! flush's `flushTime`). The busy handler
//! runs only when the file is busy: an uncontended statement never calls it.

use std::cell::Cell;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crate::cancel::{self, Guarded, Waited};

/// How long a statement waits in all for another connection's write to end.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a statement of an interrupted call may still wait, from its first try: long enough
/// for another connection's transaction (milliseconds) to end, so the outcomes an interrupted
/// flush has are recorded, short enough to return within half a second.
pub(crate) const AFTER_INTERRUPT: Duration = Duration::from_millis(200);

/// How long a call interrupted while it waits for its turn on the handle's connection may still
/// wait: long enough for another call's transaction (milliseconds) to end, so an interrupted
/// flush still records its outcomes; short enough that its record and its last read, both
/// queued, return within half a second.
const TURN_AFTER_INTERRUPT: Duration = Duration::from_millis(50);

/// The pause before each try, as SQLite's own busy timeout spaces them (ms); then the last.
const PAUSES_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

fn pause(tries: u64) -> u64 {
    PAUSES_MS[usize::try_from(tries)
        .unwrap_or(usize::MAX)
        .min(PAUSES_MS.len() - 1)]
}

/// The pauses before try `tries` (at least the time waited so far: a pause cut short by an
/// interrupt counts whole).
fn waited_before(tries: u64) -> Duration {
    let listed = PAUSES_MS.len() as u64;
    let head: u64 = PAUSES_MS.iter().take(tries.min(listed) as usize).sum();
    let tail = tries.saturating_sub(listed) * PAUSES_MS[PAUSES_MS.len() - 1];
    Duration::from_millis(head + tail)
}

thread_local! {
    /// The deadline this thread's waits for the file end by, if [`within`] set one.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `job` with this thread's waits for the file ending by `deadline` too (`None`: their own
/// bounds only); the deadline before comes back after.
pub(crate) fn within<T>(deadline: Option<Instant>, job: impl FnOnce() -> T) -> T {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(|current| current.replace(deadline)));
    job()
}

/// True when a deadline set by [`within`] has passed: a wait for the file gave up for it.
pub(crate) fn out_of_time() -> bool {
    DEADLINE
        .with(Cell::get)
        .is_some_and(|deadline| Instant::now() >= deadline)
}

/// SQLite's busy handler (`tries`: how often it was called for this lock so far): `true` to try
/// again after a pause, `false` to give up (the statement fails as busy; `Store::run` reports it
/// as `Cancelled` when the call was interrupted).
pub(crate) fn wait(tries: i32) -> bool {
    let tries = u64::try_from(tries).unwrap_or(0);
    let waited = waited_before(tries);
    let pause = Duration::from_millis(pause(tries));
    if cancel::current().is_some_and(|watch| watch.cancelled()) {
        if waited >= AFTER_INTERRUPT {
            return false;
        }
        std::thread::sleep(pause);
        return true;
    }
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    let pause = match DEADLINE.with(Cell::get) {
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pause.min(left)
        }
        None => pause,
    };
    // An interrupt cuts the pause short; the next try sees it (above).
    let _ = cancel::sleep(pause);
    true
}

/// Waits on `on` while `blocked` (another call on the same handle has the connection), with no
/// time limit of its own but the deadline [`within`] set: the call holding it is working, and
/// each of its statements' waits for another connection is bounded ([`wait`]), so the turn
/// comes. Once the call is interrupted, it waits up to `TURN_AFTER_INTERRUPT` more. `Done`: the
/// turn came (interrupted or not: the call then runs, and its statements wait for another
/// connection as [`wait`] lets an interrupted call); `Cancelled`: interrupted, and no turn within
/// the grace; `TimedOut`: the deadline passed first.
pub(crate) fn wait_for_turn<'a, T: Send + 'static>(
    on: &'a Arc<Guarded<T>>,
    guard: MutexGuard<'a, T>,
    mut blocked: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, Waited) {
    let deadline = DEADLINE.with(Cell::get);
    let (guard, waited) = cancel::wait_while(on, guard, deadline, &mut blocked);
    if waited != Waited::Cancelled {
        return (guard, waited);
    }
    let grace = Instant::now() + TURN_AFTER_INTERRUPT;
    let (guard, waited) = on.wait_until(guard, grace, &mut blocked);
    let waited = match waited {
        Waited::Done => Waited::Done,
        Waited::TimedOut | Waited::Cancelled => Waited::Cancelled,
    };
    (guard, waited)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cancel::{Signal, Watch};
    use std::thread;

    /// A turn that comes within `TURN_AFTER_INTERRUPT` of the interrupt is taken (so an
    /// interrupted flush still records its outcomes); one that does not is refused, soon. The
    /// waiter says when it waits (its turn is only taken once its interrupt was seen), so no
    /// sleep decides what the test sees.
    #[test]
    fn an_interrupted_wait_for_a_turn_takes_one_that_comes_soon_and_gives_up_after() {
        for freed in [true, false] {
            // Taken by "another call" to begin with.
            let slot = Arc::new(Guarded::new(true));
            let signal = Signal::new();
            let (ready, waiting) = std::sync::mpsc::channel();
            let waiter = {
                let (slot, signal) = (Arc::clone(&slot), Arc::clone(&signal));
                thread::spawn(move || {
                    let watch = Watch::new(&signal);
                    let _entered = watch.enter();
                    let guard = slot.lock();
                    ready.send(()).unwrap();
                    let got = wait_for_turn(&slot, guard, |taken| *taken).1 == Waited::Done;
                    (got, Instant::now())
                })
            };
            waiting.recv().unwrap();
            // The waiter holds the lock until it waits: taking it here means it waits.
            drop(slot.lock());
            let interrupted = Instant::now();
            signal.interrupt();
            if freed {
                // Freed right after the interrupt: well within the 50 ms grace.
                *slot.lock() = false;
                slot.notify_all();
            }
            let (got, returned) = waiter.join().unwrap();
            assert_eq!(got, freed, "freed {freed}");
            let took = returned.duration_since(interrupted);
            assert!(took < Duration::from_secs(2), "returned {took:?} after");
        }
    }

    /// Within a deadline (the departure hook's: the call's budget), a turn that does not come
    /// ends the wait at the deadline, as `TimedOut` (not an interrupt); outside one, the wait
    /// has no time limit, and the deadline before comes back after.
    #[test]
    fn a_wait_for_a_turn_within_a_deadline_ends_at_it() {
        // Taken by "another call" for good.
        let slot = Arc::new(Guarded::new(true));
        let started = Instant::now();
        let deadline = started + Duration::from_millis(150);
        let waited = within(Some(deadline), || {
            let guard = slot.lock();
            wait_for_turn(&slot, guard, |taken| *taken).1
        });
        let took = started.elapsed();
        assert_eq!(waited, Waited::TimedOut);
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(!out_of_time(), "the deadline outlived its scope");
        within(Some(Instant::now()), || {
            assert!(
                out_of_time() && !wait(0),
                "a busy wait past the deadline gives up"
            );
        });
    }

    #[test]
    fn pauses_add_up_to_the_bounds() {
        assert_eq!(waited_before(0), Duration::ZERO);
        assert_eq!(waited_before(3), Duration::from_millis(8));
        assert_eq!(waited_before(12), Duration::from_millis(328));
        assert_eq!(waited_before(14), Duration::from_millis(528));
        let tries = (0..).find(|&n| waited_before(n) >= BUSY_TIMEOUT).unwrap();
        assert_eq!(tries, 109, "about 10 s of pauses");
    }
}
