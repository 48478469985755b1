//! Interruption, and the one way the library waits: with a deadline and a cancel.
//!
//! Modelled on SQLite's `sqlite3_interrupt`: [`Signal::interrupt`] ends the calls running at that
//! moment and no call started afterwards. A signal counts its interrupts (its epoch); a call
//! remembers the count it started at ([`Watch`]) and is cancelled once the count has moved. A
//! call watches its client's signal and, for an outbox's flush, the outbox's too.
//!
//! Whatever a call blocks on is registered with its signals for as long as it blocks, so an
//! interrupt can end the wait at once: a condvar wait ([`Watch::wait_while`], on a [`Guarded`]
//! state) is notified, a sleep ([`Watch::sleep_until`]) is one such wait, and a socket read is
//! shut down (the transport registers its socket with [`block_on`]). What nothing can wake
//! waits otherwise: a blocking system call (a DNS lookup, a connect) runs on a thread of its own
//! that the call waits for ([`off_thread`]), and a socket read waits in short slices, looking for
//! an interrupt between them ([`check`]). Registration and the
//! interrupt take the signal's lock in turn, so an interrupt either sees a registration or the
//! registering call sees the interrupt: no wake-up is lost.
//!
//! Code the library reaches through traits it does not call directly (a token provider, ureq's
//! transports) finds the call's watch through [`Watch::enter`] and [`current`]: the watch of the
//! call this thread is running.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::departure::Departure;

/// Something blocked that an interrupt must wake: a condvar's waiters, a socket's reader.
pub(crate) trait Wake: Send + Sync {
    /// Ends the wait now (the waiter then sees that it was cancelled).
    fn wake(&self);
}

/// One cancellation signal: a client's (shared by its clones) or an outbox's.
#[derive(Default)]
pub(crate) struct Signal {
    /// Interrupts so far.
    epoch: AtomicU64,
    blocked: Mutex<Blocked>,
}

/// What the calls watching a signal are blocked on now.
#[derive(Default)]
struct Blocked {
    next_id: u64,
    waits: Vec<(u64, Weak<dyn Wake>)>,
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Signal {
    /// A signal no interrupt has touched yet.
    pub fn new() -> Arc<Signal> {
        Arc::default()
    }

    /// Cancels every call watching this signal that started before now, and wakes whatever
    /// they are blocked on. Calls started afterwards are not affected.
    pub fn interrupt(&self) {
        let woken: Vec<Arc<dyn Wake>> = {
            let blocked = lock(&self.blocked);
            self.epoch.fetch_add(1, Ordering::SeqCst);
            blocked
                .waits
                .iter()
                .filter_map(|(_, wait)| wait.upgrade())
                .collect()
        };
        // Outside the signal's lock: a waker takes the lock of the state it wakes.
        for wait in woken {
            wait.wake();
        }
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Registers `wait` unless the signal moved past `since` (checked under the same lock the
    /// interrupt takes).
    fn register(&self, since: u64, wait: Weak<dyn Wake>) -> Option<u64> {
        let mut blocked = lock(&self.blocked);
        if self.epoch() != since {
            return None;
        }
        let id = blocked.next_id;
        blocked.next_id += 1;
        blocked.waits.push((id, wait));
        Some(id)
    }

    fn unregister(&self, id: u64) {
        let mut blocked = lock(&self.blocked);
        if let Some(at) = blocked.waits.iter().position(|(known, _)| *known == id) {
            blocked.waits.swap_remove(at);
        }
    }
}

/// The call was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cancelled;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// What it waited for happened.
    Done,
    /// The deadline passed first.
    TimedOut,
    /// An interrupt ended it.
    Cancelled,
}

/// What one call watches: its signals, each with the epoch the call started at.
#[derive(Clone)]
pub(crate) struct Watch {
    first: (Arc<Signal>, u64),
    second: Option<(Arc<Signal>, u64)>,
    /// What the layer above must do before each request of the call leaves (not part of what
    /// the watch is: two watches of the same signals are equal whatever it is).
    departure: Option<Departure>,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("signals", &(1 + usize::from(self.second.is_some())))
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// Two watches are equal when they watch the same signals from the same epochs.
impl PartialEq for Watch {
    fn eq(&self, other: &Watch) -> bool {
        let same =
            |a: &(Arc<Signal>, u64), b: &(Arc<Signal>, u64)| Arc::ptr_eq(&a.0, &b.0) && a.1 == b.1;
        same(&self.first, &other.first)
            && match (&self.second, &other.second) {
                (Some(a), Some(b)) => same(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for Watch {}

impl Watch {
    /// A call starting now that watches `signal`.
    pub fn new(signal: &Arc<Signal>) -> Watch {
        Watch {
            first: (Arc::clone(signal), signal.epoch()),
            second: None,
            departure: None,
        }
    }

    /// This watch, whose call runs `departure` before each of its requests leaves.
    pub(crate) fn before_each_request(mut self, departure: Departure) -> Watch {
        self.departure = Some(departure);
        self
    }

    /// A request of the call, which must end by `deadline`, leaves now: what the layer above must
    /// do first (nothing, for most calls). An error keeps the request from leaving.
    pub(crate) fn leaving(&self, deadline: Option<Instant>) -> Result<(), crate::Error> {
        self.departure
            .as_ref()
            .map_or(Ok(()), |departure| departure.leaving(deadline))
    }

    /// The first byte of the request leaving now is written next: [`Departure::writing`];
    /// `false` when the request must not be written.
    pub(crate) fn writing(&self) -> bool {
        self.departure.as_ref().is_none_or(Departure::writing)
    }

    /// Makes this watch, without its departure hook, the watch of the code this thread runs until
    /// the returned guard is dropped (as [`enter`](Self::enter)): a token fetch is interruptible
    /// as the call, but its connections carry none of the call's requests, and a hook failure
    /// there would come back as an AUTH error instead of the outbox's STORAGE.
    pub(crate) fn enter_without_departure(&self) -> Entered {
        Watch {
            departure: None,
            ..self.clone()
        }
        .enter()
    }

    /// The error that kept the call's request from being written, if any.
    pub(crate) fn take_kept_back(&self) -> Option<crate::Error> {
        self.departure.as_ref().and_then(Departure::take_kept_back)
    }

    /// This watch, also watching `signal` from now on (an outbox's flush watches the outbox's
    /// signal and its client's). A watch holds two signals at most: a third replaces the second.
    pub fn and(mut self, signal: &Arc<Signal>) -> Watch {
        self.second = Some((Arc::clone(signal), signal.epoch()));
        self
    }

    fn signals(&self) -> impl Iterator<Item = &(Arc<Signal>, u64)> {
        std::iter::once(&self.first).chain(self.second.as_ref())
    }

    /// Whether an interrupt came since the call started.
    pub fn cancelled(&self) -> bool {
        self.signals()
            .any(|(signal, since)| signal.epoch() != *since)
    }

    /// `Err(Cancelled)` once an interrupt came since the call started.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Registers `wait` with every signal, or `Cancelled` (and nothing registered) when one has
    /// moved. The returned ids go back through [`unregister`](Self::unregister).
    fn register(&self, wait: &Weak<dyn Wake>) -> Result<Registration, Cancelled> {
        let first = self
            .first
            .0
            .register(self.first.1, Weak::clone(wait))
            .ok_or(Cancelled)?;
        let second = match &self.second {
            Some((signal, since)) => match signal.register(*since, Weak::clone(wait)) {
                Some(id) => Some(id),
                None => {
                    self.first.0.unregister(first);
                    return Err(Cancelled);
                }
            },
            None => None,
        };
        Ok(Registration { first, second })
    }

    fn unregister(&self, registration: Registration) {
        self.first.0.unregister(registration.first);
        if let (Some((signal, _)), Some(id)) = (&self.second, registration.second) {
            signal.unregister(id);
        }
    }

    /// Waits on `on` while `blocked` holds, until `until` (`None`: no deadline) or an interrupt.
    /// `guard` is `on`'s lock, held by the caller; it is held again when this returns. What the
    /// wait was for is checked first: a wait whose condition already holds is `Done`.
    pub fn wait_while<'a, T: Send + 'static>(
        &self,
        on: &'a Arc<Guarded<T>>,
        mut guard: MutexGuard<'a, T>,
        until: Option<Instant>,
        mut blocked: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, Waited) {
        let waker: Weak<dyn Wake> = Arc::downgrade(on) as Weak<dyn Wake>;
        // Registered while `on`'s lock is held: an interrupt's wake-up takes that lock, so it
        // arrives only once this thread waits on the condvar.
        let Ok(registration) = self.register(&waker) else {
            let waited = if blocked(&mut guard) {
                Waited::Cancelled
            } else {
                Waited::Done
            };
            return (guard, waited);
        };
        let (guard, waited) = on.wait_while(guard, until, || self.cancelled(), blocked);
        self.unregister(registration);
        (guard, waited)
    }

    /// Sleeps until `until`, or until an interrupt (`Err(Cancelled)`).
    pub fn sleep_until(&self, until: Instant) -> Result<(), Cancelled> {
        let bed = Arc::new(Guarded::new(()));
        let guard = bed.lock();
        match self.wait_while(&bed, guard, Some(until), |_| true).1 {
            Waited::Cancelled => Err(Cancelled),
            Waited::Done | Waited::TimedOut => Ok(()),
        }
    }

    /// Sleeps for `wait`, or until an interrupt (`Err(Cancelled)`).
    pub fn sleep(&self, wait: Duration) -> Result<(), Cancelled> {
        self.sleep_until(Instant::now() + wait)
    }

    /// Makes this the watch of the code this thread runs until the returned guard is dropped
    /// (see [`current`] and [`block_on`]). Entered scopes nest: the outer watch comes back.
    pub fn enter(&self) -> Entered {
        let previous = CURRENT.with(|current| {
            current.replace(Some(Current {
                watch: self.clone(),
                blocker: None,
            }))
        });
        Entered { previous }
    }
}

/// The ids of one wait's registration with a watch's signals.
struct Registration {
    first: u64,
    second: Option<u64>,
}

/// A state behind a mutex, with the condvar its waiters sleep on, that an interrupt can wake.
pub(crate) struct Guarded<T> {
    state: Mutex<T>,
    changed: Condvar,
}

impl<T> Guarded<T> {
    /// `state`, guarded.
    pub fn new(state: T) -> Guarded<T> {
        Guarded {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Locks the state. It is consistent after every statement of its users, so a panicked
    /// holder leaves nothing half-done and the poison is ignored.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.state)
    }

    /// Wakes every waiter to look at the state again.
    pub fn notify_all(&self) {
        self.changed.notify_all();
    }

    /// Waits while `blocked`, until `until`: a wait no interrupt ends (`Done` or `TimedOut`).
    /// `guard` is this state's lock, held by the caller; it is held again when this returns.
    pub fn wait_until<'a>(
        &'a self,
        guard: MutexGuard<'a, T>,
        until: Instant,
        blocked: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, Waited) {
        self.wait_while(guard, Some(until), || false, blocked)
    }

    /// The one wait loop: while `blocked`, until `until` or `cancelled`.
    fn wait_while<'a>(
        &'a self,
        mut guard: MutexGuard<'a, T>,
        until: Option<Instant>,
        cancelled: impl Fn() -> bool,
        mut blocked: impl FnMut(&mut T) -> bool,
    ) -> (MutexGuard<'a, T>, Waited) {
        loop {
            if !blocked(&mut guard) {
                return (guard, Waited::Done);
            }
            if cancelled() {
                return (guard, Waited::Cancelled);
            }
            guard = match until {
                None => self
                    .changed
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(until) => {
                    let now = Instant::now();
                    if now >= until {
                        return (guard, Waited::TimedOut);
                    }
                    self.changed
                        .wait_timeout(guard, until - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

impl<T: Send> Wake for Guarded<T> {
    fn wake(&self) {
        // Taking the lock first makes sure a waiter between its check and its wait gets this.
        drop(self.lock());
        self.changed.notify_all();
    }
}

/// The watch of the call a thread is running, and the socket it is blocked on.
struct Current {
    watch: Watch,
    /// The blocker registered by [`block_on`] (its key, and its registration), until the scope
    /// ends or another one replaces it.
    blocker: Option<(usize, Registration)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The scope of [`Watch::enter`]; dropping it ends the scope.
#[must_use = "the watch is current only until this is dropped"]
pub(crate) struct Entered {
    previous: Option<Current>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let ended = CURRENT.with(|current| current.replace(self.previous.take()));
        if let Some(Current {
            watch,
            blocker: Some((_, registration)),
        }) = ended
        {
            watch.unregister(registration);
        }
    }
}

/// The watch of the call this thread is running, if it entered one.
pub(crate) fn current() -> Option<Watch> {
    CURRENT.with(|current| {
        current
            .try_borrow()
            .ok()
            .and_then(|current| current.as_ref().map(|c| c.watch.clone()))
    })
}

/// [`Watch::wait_while`] for the call this thread is running; outside any call, a wait that only
/// its condition or its deadline ends.
pub(crate) fn wait_while<'a, T: Send + 'static>(
    on: &'a Arc<Guarded<T>>,
    guard: MutexGuard<'a, T>,
    until: Option<Instant>,
    blocked: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, Waited) {
    match current() {
        Some(watch) => watch.wait_while(on, guard, until, blocked),
        None => on.wait_while(guard, until, || false, blocked),
    }
}

/// Sleeps for `wait` within the current call: `Err(Cancelled)` when it is interrupted, a plain
/// sleep when this thread runs no call.
pub(crate) fn sleep(wait: Duration) -> Result<(), Cancelled> {
    match current() {
        Some(watch) => watch.sleep(wait),
        None => {
            std::thread::sleep(wait);
            Ok(())
        }
    }
}

/// `Err(Cancelled)` once the call this thread is running was interrupted; outside any call,
/// `Ok`. Cheap: what a wait that cannot be woken checks between its slices.
pub(crate) fn check() -> Result<(), Cancelled> {
    CURRENT.with(|current| match current.try_borrow() {
        Ok(current) => current.as_ref().map_or(Ok(()), |c| c.watch.check()),
        Err(_) => Ok(()),
    })
}

/// How a wait for another thread's answer ended without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The deadline passed first.
    TimedOut,
    /// An interrupt ended the wait.
    Cancelled,
}

/// Runs `job` on a thread of its own (named `name`) and waits for its answer as the current call
/// waits: until `until` (`None`: no deadline) or an interrupt, which ends the wait at once. The
/// job then finishes alone and its answer is dropped with it. This is for a blocking system call
/// nothing else can cut short (a DNS lookup, a TCP connect), as libcurl's threaded resolver does.
/// An interrupted call starts nothing; when no thread can be started, `job` runs on this one.
pub(crate) fn off_thread<T: Send + 'static>(
    name: &str,
    until: Option<Instant>,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Unanswered> {
    check().map_err(|Cancelled| Unanswered::Cancelled)?;
    let answer: Arc<Guarded<Option<T>>> = Arc::new(Guarded::new(None));
    // Shared so the job can still run here if the thread is refused.
    let job = Arc::new(Mutex::new(Some(job)));
    let spawned = {
        let (answer, job) = (Arc::clone(&answer), Arc::clone(&job));
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Some(job) = lock(&job).take() {
                    let value = job();
                    *answer.lock() = Some(value);
                    answer.notify_all();
                }
            })
    };
    if spawned.is_err() {
        log::warn!("could not start a thread for {name}: it runs on the caller's thread");
        if let Some(job) = lock(&job).take() {
            return Ok(job());
        }
    }
    let guard = answer.lock();
    let (mut guard, waited) = wait_while(&answer, guard, until, |answer| answer.is_none());
    match (waited, guard.take()) {
        (_, Some(value)) => Ok(value),
        (Waited::Cancelled, None) => Err(Unanswered::Cancelled),
        (_, None) => Err(Unanswered::TimedOut),
    }
}

/// Registers `wake` (a socket, known by `key`) as what the current call is blocked on, until the
/// call's scope ends or it blocks on another one; `Err(Cancelled)` when the call was interrupted.
/// The same key again only checks for an interrupt, so the I/O of one request costs one
/// registration. Outside any call, does nothing.
pub(crate) fn block_on(key: usize, wake: &Weak<dyn Wake>) -> Result<(), Cancelled> {
    CURRENT.with(|current| {
        let Ok(mut current) = current.try_borrow_mut() else {
            return Ok(());
        };
        let Some(current) = current.as_mut() else {
            return Ok(());
        };
        if current
            .blocker
            .as_ref()
            .is_some_and(|(known, _)| *known == key)
        {
            return current.watch.check();
        }
        if let Some((_, registration)) = current.blocker.take() {
            current.watch.unregister(registration);
        }
        let registration = current.watch.register(wake)?;
        current.blocker = Some((key, registration));
        Ok(())
    })
}

/// Ends the registration [`block_on`] made for the current call: its request is done (the
/// response read, the connection perhaps back in the pool), though the call goes on.
pub(crate) fn unblock() {
    CURRENT.with(|current| {
        if let Ok(mut current) = current.try_borrow_mut()
            && let Some(current) = current.as_mut()
            && let Some((_, registration)) = current.blocker.take()
        {
            current.watch.unregister(registration);
        }
    });
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    /// Interrupts `signal` from another thread after `after`.
    fn interrupt_after(signal: &Arc<Signal>, after: Duration) -> thread::JoinHandle<()> {
        let signal = Arc::clone(signal);
        thread::spawn(move || {
            thread::sleep(after);
            signal.interrupt();
        })
    }

    #[test]
    fn an_interrupt_ends_a_sleep_at_once_and_later_calls_are_not_affected() {
        let signal = Signal::new();
        let watch = Watch::new(&signal);
        let started = Instant::now();
        let interrupter = interrupt_after(&signal, Duration::from_millis(50));
        assert_eq!(watch.sleep(Duration::from_secs(30)), Err(Cancelled));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        interrupter.join().unwrap();
        // Still cancelled: the call started before the interrupt.
        assert_eq!(watch.sleep(Duration::from_millis(1)), Err(Cancelled));
        // A call started afterwards sleeps its full time.
        let later = Watch::new(&signal);
        let started = Instant::now();
        assert_eq!(later.sleep(Duration::from_millis(30)), Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_condvar_wait_is_woken_and_a_met_condition_wins() {
        let signal = Signal::new();
        let state = Arc::new(Guarded::new(false));
        let watch = Watch::new(&signal);
        let interrupter = interrupt_after(&signal, Duration::from_millis(50));
        let guard = state.lock();
        let (guard, waited) = watch.wait_while(&state, guard, None, |ready| !*ready);
        assert_eq!(waited, Waited::Cancelled);
        drop(guard);
        interrupter.join().unwrap();
        // Already met: done, even for a cancelled call.
        *state.lock() = true;
        let guard = state.lock();
        assert_eq!(
            watch.wait_while(&state, guard, None, |ready| !*ready).1,
            Waited::Done
        );
        // A deadline still ends a wait of a call no interrupt touched.
        *state.lock() = false;
        let fresh = Watch::new(&signal);
        let guard = state.lock();
        let until = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            fresh
                .wait_while(&state, guard, Some(until), |ready| !*ready)
                .1,
            Waited::TimedOut
        );
    }

    #[test]
    fn either_signal_of_a_watch_cancels_and_each_only_its_own_calls() {
        let client = Signal::new();
        let outbox = Signal::new();
        let flush = Watch::new(&client).and(&outbox);
        let plain = Watch::new(&client);
        outbox.interrupt();
        assert!(flush.cancelled());
        assert!(
            !plain.cancelled(),
            "an outbox's interrupt leaves the client's other calls"
        );
        let flush = Watch::new(&client).and(&outbox);
        client.interrupt();
        assert!(flush.cancelled() && plain.cancelled());
    }

    /// Counts wake-ups, as a socket's shutdown would end a read.
    struct Socket(AtomicUsize);

    impl Wake for Socket {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_blocker_is_woken_while_its_scope_lasts_and_forgotten_after() {
        let signal = Signal::new();
        let socket = Arc::new(Socket(AtomicUsize::new(0)));
        let waker: Weak<dyn Wake> = Arc::downgrade(&socket) as Weak<dyn Wake>;
        assert_eq!(block_on(1, &waker), Ok(()), "outside a call: nothing to do");
        {
            let _entered = Watch::new(&signal).enter();
            assert!(current().is_some());
            assert_eq!(block_on(1, &waker), Ok(()));
            assert_eq!(block_on(1, &waker), Ok(()));
            assert_eq!(
                lock(&signal.blocked).waits.len(),
                1,
                "one registration per key"
            );
            signal.interrupt();
            assert_eq!(socket.0.load(Ordering::SeqCst), 1);
            assert_eq!(block_on(1, &waker), Err(Cancelled));
        }
        assert!(current().is_none());
        assert!(
            lock(&signal.blocked).waits.is_empty(),
            "the scope's end unregisters"
        );
        {
            let _entered = Watch::new(&signal).enter();
            assert_eq!(block_on(2, &waker), Ok(()));
            unblock();
            assert!(
                lock(&signal.blocked).waits.is_empty(),
                "a request done unregisters"
            );
            assert!(current().is_some(), "the call goes on");
        }
        signal.interrupt();
        assert_eq!(
            socket.0.load(Ordering::SeqCst),
            1,
            "not woken after its call"
        );
    }

    #[test]
    fn many_waiters_all_return_and_none_is_lost() {
        // Interrupts land at every point of the waiters' registration: each must return.
        for round in 0..50 {
            let signal = Signal::new();
            let state = Arc::new(Guarded::new(()));
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    let (signal, state) = (Arc::clone(&signal), Arc::clone(&state));
                    let watch = Watch::new(&signal);
                    thread::spawn(move || {
                        let guard = state.lock();
                        watch.wait_while(&state, guard, None, |_| true).1
                    })
                })
                .collect();
            thread::sleep(Duration::from_micros(round * 20));
            signal.interrupt();
            for waiter in waiters {
                assert_eq!(waiter.join().unwrap(), Waited::Cancelled);
            }
        }
    }
}
