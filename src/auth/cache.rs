//! One token cache per client, shared by every thread that sends through it.
//!
//! A Mutex + Condvar rather than a Mutex held across the fetch: with the lock held, the waiters
//! would queue on it and, after a failed fetch, each would try again in turn (a herd of serial
//! retries against a failing token endpoint). Here exactly one thread fetches, the others wait on the
//! Condvar and all of them get that one fetch's outcome, success or failure.

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crate::Error;
use crate::auth::AuthResult;
use crate::auth::{AccessToken, TokenProvider};
use crate::auth_error::AuthError;
use crate::cancel::{self, Guarded, Waited};
use crate::limits::MAX_DURATION;
use crate::metrics::{self, TokenFetch};

/// A token is refreshed once it has less than this left (what Microsoft's libraries do).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// After a failed refresh while the token is still valid, the next try waits this long.
const RETRY_REFRESH_AFTER: Duration = Duration::from_secs(30);

/// A freshly issued token and how long the issuer said it lives.
pub(crate) struct FreshToken {
    /// The token.
    pub token: AccessToken,
    /// `expires_in`, counted from when the request was sent.
    pub expires_in: Duration,
}

/// Fetches a new token every time it is called; [`TokenCache`] decides when to call it.
pub(crate) trait TokenSource: Send + Sync {
    /// Asks the issuer for a new token (blocking, retries included), giving up at `deadline`.
    fn fetch(&self, deadline: Option<Instant>) -> AuthResult<FreshToken>;
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    /// When the token stops working: until then a failed refresh falls back to it.
    expires_at: Instant,
}

#[derive(Default)]
struct State {
    current: Option<Cached>,
    /// A thread is fetching; the others wait on the state's condvar.
    refreshing: bool,
    /// Bumped by every finished fetch, so a waiter can tell that the one it waited for is done.
    generation: u64,
    /// The outcome of the last finished fetch, handed to every thread that waited for it.
    last: Option<Published>,
    /// Threads that have come to wait for a fetch, ever: the tests wait for a waiter to arrive.
    /// Only counted up, so no bookkeeping on the ways out can go wrong.
    arrived: usize,
    /// Graph answered 401 to the token last dropped: the next fetch is the metrics' `after401`.
    rejected: bool,
}

/// A finished fetch's outcome, as the threads that waited for it see it.
#[derive(Clone)]
struct Published {
    outcome: AuthResult<AccessToken>,
    /// The fetch failed once the fetching call's own budget had run out, or its call was
    /// interrupted: a failure of that call, not of the token source, so a waiter with budget left
    /// fetches again.
    fetcher_out_of_time: bool,
}

/// A [`TokenProvider`] that caches the token of a [`TokenSource`].
pub(crate) struct TokenCache<S> {
    source: S,
    /// Its condvar wakes the threads waiting for a fetch (and an interrupt wakes them too).
    state: Arc<Guarded<State>>,
    margin: Duration,
    clock: Box<dyn Fn() -> Instant + Send + Sync>,
}

impl<S: TokenSource> TokenCache<S> {
    /// A cache over `source`, refreshing 5 minutes before expiry.
    pub(crate) fn new(source: S) -> TokenCache<S> {
        TokenCache::with_clock(source, REFRESH_MARGIN, Box::new(Instant::now))
    }

    fn with_clock(
        source: S,
        margin: Duration,
        clock: Box<dyn Fn() -> Instant + Send + Sync>,
    ) -> TokenCache<S> {
        TokenCache {
            source,
            state: Arc::new(Guarded::new(State::default())),
            margin,
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Fetches on this thread (for `why`, as the metrics count it) and publishes the outcome to
    /// the waiters.
    fn refresh(&self, deadline: Option<Instant>, why: TokenFetch) -> AuthResult<AccessToken> {
        let _wake = WakeWaiters(self);
        let started = (self.clock)();
        let fetched = self.source.fetch(deadline);
        metrics::with_current(|metrics| metrics.token_fetched(why, fetched.is_ok()));
        let outcome = fetched.map(|fresh| {
            // Whatever the endpoint claims, a day is the longest any deadline here may reach.
            let lifetime = fresh.expires_in.min(MAX_DURATION);
            // A token that lives less than twice the margin is refreshed at half its life instead,
            // so a short-lived token is not fetched again on every call.
            let margin = self.margin.min(lifetime / 2);
            (fresh.token, started + lifetime - margin, started + lifetime)
        });
        let fetcher_out_of_time = outcome.is_err()
            && (deadline.is_some_and(|deadline| Instant::now() >= deadline)
                || cancel::current().is_some_and(|watch| watch.cancelled()));
        let mut state = self.lock();
        state.refreshing = false;
        state.generation += 1;
        let now = (self.clock)();
        // Logged after the lock is released: a log callback must never stall token lookups.
        let mut kept_after = None;
        let published = match outcome {
            Ok((token, refresh_at, expires_at)) => {
                state.current = Some(Cached {
                    token: token.clone(),
                    refresh_at,
                    expires_at,
                });
                Ok(token)
            }
            // The refresh started early: while the old token still works, keep using it and try
            // again a little later rather than failing every call during an endpoint blip.
            Err(err) => match state.current.as_mut().filter(|c| now < c.expires_at) {
                Some(cached) => {
                    cached.refresh_at = (now + RETRY_REFRESH_AFTER).min(cached.expires_at);
                    kept_after = Some(err);
                    Ok(cached.token.clone())
                }
                None => Err(err),
            },
        };
        state.last = Some(Published {
            outcome: published.clone(),
            fetcher_out_of_time,
        });
        drop(state);
        if let Some(err) = kept_after {
            log::warn!(
                "token refresh failed ({err}); the current token stays in use until it expires"
            );
        }
        published
    }
}

/// Ends a refresh even when the source panics, so no waiter sleeps forever.
struct WakeWaiters<'a, S: TokenSource>(&'a TokenCache<S>);

impl<S: TokenSource> Drop for WakeWaiters<'_, S> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if state.refreshing {
            state.refreshing = false;
            state.generation += 1;
            state.last = Some(Published {
                outcome: Err(Box::new(AuthError::new("the token source panicked"))),
                fetcher_out_of_time: false,
            });
        }
        drop(state);
        self.0.state.notify_all();
    }
}

impl<S: TokenSource> TokenProvider for TokenCache<S> {
    fn token(&self) -> Result<AccessToken, Error> {
        self.token_before(None)
    }

    fn token_before(&self, deadline: Option<Instant>) -> Result<AccessToken, Error> {
        let mut state = self.lock();
        loop {
            if let Some(cached) = &state.current
                && (self.clock)() < cached.refresh_at
            {
                return Ok(cached.token.clone());
            }
            if !state.refreshing {
                state.refreshing = true;
                let why = if std::mem::take(&mut state.rejected) {
                    TokenFetch::After401
                } else if state
                    .current
                    .as_ref()
                    .is_some_and(|cached| (self.clock)() < cached.expires_at)
                {
                    TokenFetch::BeforeExpiry
                } else {
                    TokenFetch::Needed
                };
                drop(state);
                return self.refresh(deadline, why).map_err(Error::from);
            }
            // Another thread is fetching: wait for its outcome, within this call's own budget,
            // or until this call is interrupted.
            let waited_for = state.generation;
            state.arrived += 1;
            let (woken, waited) = cancel::wait_while(&self.state, state, deadline, |state| {
                state.generation == waited_for
            });
            state = woken;
            match waited {
                Waited::Done => {}
                Waited::TimedOut => {
                    // A spent budget, as everywhere else: TIMEOUT, not a refusal of the token.
                    return Err(Error::Timeout {
                        stage: "another thread's token refresh (the call's total time budget \
                                ran out)"
                            .to_owned(),
                        elapsed: Duration::ZERO,
                        client_request_id: String::new(),
                        attempts: 0,
                        no_answer: false,
                    });
                }
                Waited::Cancelled => {
                    return Err(Error::cancelled(
                        "waiting for another thread's token refresh",
                        "",
                        0,
                    ));
                }
            }
            let last = state
                .last
                .clone()
                .expect("a finished refresh left its outcome");
            match last {
                // The fetching call ran out of its own time: that says nothing about this call,
                // which looks again (and fetches itself if nobody else has started).
                Published {
                    outcome: Err(_),
                    fetcher_out_of_time: true,
                } => continue,
                Published { outcome, .. } => return outcome.map_err(Error::from),
            }
        }
    }

    fn invalidate(&self, token: &AccessToken) {
        let mut state = self.lock();
        // Only the token Graph rejected: another thread may already have replaced it.
        if state
            .current
            .as_ref()
            .is_some_and(|cached| &cached.token == token)
        {
            state.current = None;
            state.rejected = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::{Signal, Watch};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Barrier, Mutex};
    use std::thread;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Counts fetches; each takes `delay` and yields `t1`, `t2`, ... or fails while `failing` is set.
    struct Counting {
        fetches: AtomicUsize,
        delay: Duration,
        failing: AtomicBool,
    }

    impl TokenSource for Arc<Counting> {
        fn fetch(&self, _deadline: Option<Instant>) -> AuthResult<FreshToken> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            thread::sleep(self.delay);
            if self.failing.load(Ordering::SeqCst) {
                return Err(Box::new(
                    AuthError::new(format!("fetch {n} failed")).transient(true),
                ));
            }
            Ok(FreshToken {
                token: AccessToken::new(format!("t{n}")),
                expires_in: HOUR,
            })
        }
    }

    /// The cache, its source (to count fetches) and the clock the test moves by hand.
    type Fixture = (
        Arc<TokenCache<Arc<Counting>>>,
        Arc<Counting>,
        Arc<Mutex<Instant>>,
    );

    fn cache(delay: Duration) -> Fixture {
        let source = Arc::new(Counting {
            fetches: AtomicUsize::new(0),
            delay,
            failing: AtomicBool::new(false),
        });
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = Arc::clone(&now);
        let cache = TokenCache::with_clock(
            Arc::clone(&source),
            REFRESH_MARGIN,
            Box::new(move || *clock.lock().unwrap()),
        );
        (Arc::new(cache), source, now)
    }

    /// `threads` threads start together and call `token()` `calls` times each.
    fn hammer<S: TokenSource + 'static>(
        cache: &Arc<TokenCache<S>>,
        threads: usize,
        calls: usize,
    ) -> Vec<Result<AccessToken, String>> {
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let cache = Arc::clone(cache);
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    start.wait();
                    (0..calls)
                        .map(|_| cache.token().map_err(|err| err.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    }

    fn fetches(source: &Counting) -> usize {
        source.fetches.load(Ordering::SeqCst)
    }

    #[test]
    fn many_threads_share_one_fetch() {
        let (cache, source, _) = cache(Duration::from_millis(50));
        let tokens = hammer(&cache, 8, 50);
        assert_eq!(tokens.len(), 400);
        assert!(tokens.iter().all(|t| t.as_ref().unwrap().secret() == "t1"));
        assert_eq!(fetches(&source), 1);
    }

    #[test]
    fn refreshes_once_five_minutes_before_expiry() {
        let (cache, source, now) = cache(Duration::from_millis(20));
        assert_eq!(cache.token().unwrap().secret(), "t1");
        *now.lock().unwrap() += HOUR - REFRESH_MARGIN - Duration::from_secs(1);
        assert_eq!(
            cache.token().unwrap().secret(),
            "t1",
            "still 5 min + 1 s left"
        );
        *now.lock().unwrap() += Duration::from_secs(2);
        let tokens = hammer(&cache, 8, 10);
        assert!(tokens.iter().all(|t| t.as_ref().unwrap().secret() == "t2"));
        assert_eq!(fetches(&source), 2);
    }

    #[test]
    fn short_lived_tokens_are_refreshed_at_half_life() {
        struct Short;
        impl TokenSource for Short {
            fn fetch(&self, _deadline: Option<Instant>) -> AuthResult<FreshToken> {
                Ok(FreshToken {
                    token: AccessToken::new("short"),
                    expires_in: Duration::from_secs(120),
                })
            }
        }
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = Arc::clone(&now);
        let cache = TokenCache::with_clock(
            Short,
            REFRESH_MARGIN,
            Box::new(move || *clock.lock().unwrap()),
        );
        cache.token().unwrap();
        let refresh_at = cache.lock().current.as_ref().unwrap().refresh_at;
        assert_eq!(refresh_at, *now.lock().unwrap() + Duration::from_secs(60));
    }

    #[test]
    fn invalidate_drops_only_the_rejected_token() {
        let (cache, source, _) = cache(Duration::ZERO);
        let first = cache.token().unwrap();
        cache.invalidate(&first);
        let second = cache.token().unwrap();
        assert_eq!(second.secret(), "t2");
        // A late 401 for the old token must not drop the new one.
        cache.invalidate(&first);
        assert_eq!(cache.token().unwrap(), second);
        assert_eq!(fetches(&source), 2);
    }

    #[test]
    fn a_failed_fetch_reaches_every_waiter_and_the_next_call_tries_again() {
        // Long enough that all eight threads arrive while the one fetch is running.
        let (cache, source, _) = cache(Duration::from_millis(300));
        source.failing.store(true, Ordering::SeqCst);
        let outcomes = hammer(&cache, 8, 1);
        assert_eq!(outcomes.len(), 8);
        for outcome in &outcomes {
            let err = outcome.as_ref().unwrap_err();
            assert!(err.contains("fetch 1 failed"), "{err}");
        }
        assert_eq!(fetches(&source), 1);

        source.failing.store(false, Ordering::SeqCst);
        assert_eq!(cache.token().unwrap().secret(), "t2");
        assert_eq!(fetches(&source), 2);
    }

    /// A source that holds its first fetch until another thread waits for it, so tests about
    /// waiters need no sleeps racing each other; `first` then decides that fetch's outcome.
    struct HeldFirst {
        cache: std::sync::Weak<TokenCache<HeldFirst>>,
        fetches: AtomicUsize,
        first: fn(Option<Instant>) -> AuthResult<FreshToken>,
    }

    impl TokenSource for HeldFirst {
        fn fetch(&self, deadline: Option<Instant>) -> AuthResult<FreshToken> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                let cache = self.cache.upgrade().expect("the cache is alive");
                let give_up = Instant::now() + Duration::from_secs(10);
                while cache.lock().arrived == 0 && Instant::now() < give_up {
                    thread::sleep(Duration::from_millis(1));
                }
                return (self.first)(deadline);
            }
            Ok(FreshToken {
                token: AccessToken::new(format!("t{n}")),
                expires_in: HOUR,
            })
        }
    }

    fn held_first(
        first: fn(Option<Instant>) -> AuthResult<FreshToken>,
    ) -> Arc<TokenCache<HeldFirst>> {
        Arc::new_cyclic(|cache| {
            TokenCache::new(HeldFirst {
                cache: cache.clone(),
                fetches: AtomicUsize::new(0),
                first,
            })
        })
    }

    #[test]
    fn a_panicking_source_does_not_strand_waiters() {
        let cache = held_first(|_| panic!("boom"));
        let first = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || cache.token().map(drop))
        };
        // Once the other thread is fetching, this one can only wait: the source holds that fetch
        // until it does, then panics.
        while !cache.lock().refreshing {
            thread::sleep(Duration::from_millis(1));
        }
        let waiter = cache.token().unwrap_err();
        assert!(waiter.to_string().contains("panicked"), "{waiter}");
        assert!(
            first.join().is_err(),
            "the fetching thread's panic propagates"
        );
        assert_eq!(cache.source.fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_fetch_that_ran_out_of_its_callers_budget_does_not_fail_a_waiter_with_time_left() {
        // The first fetch honours its caller's 100 ms budget and fails when it runs out.
        let cache = held_first(|deadline| {
            let deadline = deadline.expect("the first caller has a budget");
            thread::sleep(deadline.saturating_duration_since(Instant::now()));
            Err(Box::new(
                AuthError::new("token request timed out").transient(true),
            ))
        });
        let hurried = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                cache.token_before(Some(Instant::now() + Duration::from_millis(100)))
            })
        };
        // Wait until the hurried call is fetching, then ask without a budget.
        while !cache.lock().refreshing {
            thread::sleep(Duration::from_millis(1));
        }
        let patient = cache.token_before(None);
        let hurried = hurried.join().unwrap();
        assert!(hurried.is_err(), "the hurried call ran out of its own time");
        assert_eq!(
            patient.expect("the patient call fetched again").secret(),
            "t2"
        );
        assert_eq!(cache.source.fetches.load(Ordering::SeqCst), 2);
    }

    /// A cache whose first fetch (on its own thread, returned) takes 1.5 s and has begun.
    fn a_slow_fetch_in_progress() -> (
        Arc<TokenCache<HeldFirst>>,
        thread::JoinHandle<Result<AccessToken, crate::Error>>,
    ) {
        let cache = held_first(|_| {
            thread::sleep(Duration::from_millis(1500));
            Ok(FreshToken {
                token: AccessToken::new("slow"),
                expires_in: HOUR,
            })
        });
        let fetching = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || cache.token())
        };
        while !cache.lock().refreshing {
            thread::sleep(Duration::from_millis(1));
        }
        (cache, fetching)
    }

    #[test]
    fn a_waiter_gives_up_at_its_own_deadline() {
        // The first fetch takes 1.5 s; a waiter with 200 ms left must not wait for it.
        let (cache, fetching) = a_slow_fetch_in_progress();
        let started = Instant::now();
        let err = cache
            .token_before(Some(started + Duration::from_millis(200)))
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1000), "waited {took:?}");
        assert!(err.to_string().contains("time budget"), "{err}");
        assert!(
            matches!(err, Error::Timeout { .. }),
            "a spent budget: {err:?}"
        );
        assert_eq!(fetching.join().unwrap().unwrap().secret(), "slow");
    }

    #[test]
    fn a_failed_early_refresh_keeps_the_valid_token_and_waits_before_trying_again() {
        let (cache, source, now) = cache(Duration::ZERO);
        assert_eq!(cache.token().unwrap().secret(), "t1");
        // Inside the refresh margin, but the token still works for 4 more minutes.
        *now.lock().unwrap() += HOUR - Duration::from_secs(4 * 60);
        source.failing.store(true, Ordering::SeqCst);
        assert_eq!(
            cache.token().unwrap().secret(),
            "t1",
            "the old token is still good"
        );
        assert_eq!(cache.token().unwrap().secret(), "t1");
        assert_eq!(
            fetches(&source),
            2,
            "no new fetch within RETRY_REFRESH_AFTER"
        );
        *now.lock().unwrap() += RETRY_REFRESH_AFTER;
        source.failing.store(false, Ordering::SeqCst);
        assert_eq!(cache.token().unwrap().secret(), "t3");
        // Past expiry a failure is the caller's.
        *now.lock().unwrap() += 2 * HOUR;
        source.failing.store(true, Ordering::SeqCst);
        assert!(cache.token().is_err());
    }

    #[test]
    fn a_token_is_not_kept_at_the_instant_it_expires() {
        let (cache, source, now) = cache(Duration::ZERO);
        assert_eq!(cache.token().unwrap().secret(), "t1");
        // Exactly at its expiry the old token no longer works: a failed refresh is the caller's.
        *now.lock().unwrap() += HOUR;
        source.failing.store(true, Ordering::SeqCst);
        assert!(cache.token().is_err(), "an expired token was handed out");
    }

    #[test]
    fn a_refresh_is_counted_as_before_expiry_only_while_the_old_token_still_works() {
        let collector = Arc::new(metrics::Collector::default());
        let _counting = collector.enter();
        let (cache, _source, now) = cache(Duration::ZERO);
        cache.token().unwrap();
        // Inside the refresh margin: the old token still works.
        *now.lock().unwrap() += HOUR - Duration::from_secs(60);
        assert_eq!(cache.token().unwrap().secret(), "t2");
        // Exactly when t2 expires: a refresh that was needed, not an early one.
        *now.lock().unwrap() += HOUR;
        assert_eq!(cache.token().unwrap().secret(), "t3");
        let tokens = collector.snapshot().tokens;
        assert_eq!((tokens.fetched, tokens.refreshed_before_expiry), (3, 1));
    }

    #[test]
    fn an_absurd_lifetime_from_the_endpoint_cannot_overflow() {
        struct Forever;
        impl TokenSource for Forever {
            fn fetch(&self, _deadline: Option<Instant>) -> AuthResult<FreshToken> {
                Ok(FreshToken {
                    token: AccessToken::new("t"),
                    expires_in: Duration::MAX,
                })
            }
        }
        let cache = TokenCache::new(Forever);
        assert_eq!(cache.token().unwrap().secret(), "t");
        assert_eq!(cache.token().unwrap().secret(), "t");
    }

    #[test]
    fn an_interrupted_waiter_returns_at_once_and_the_fetch_goes_on() {
        let (cache, fetching) = a_slow_fetch_in_progress();
        let signal = Signal::new();
        let interrupter = {
            let (cache, signal) = (Arc::clone(&cache), Arc::clone(&signal));
            thread::spawn(move || {
                let give_up = Instant::now() + Duration::from_secs(10);
                while cache.lock().arrived == 0 {
                    assert!(Instant::now() < give_up, "no waiter arrived in 10 s");
                    thread::sleep(Duration::from_millis(1));
                }
                signal.interrupt();
            })
        };
        let started = Instant::now();
        let err = {
            let _entered = Watch::new(&signal).enter();
            cache.token_before(None).unwrap_err()
        };
        let took = started.elapsed();
        interrupter.join().unwrap();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(took < Duration::from_millis(1000), "waited {took:?}");
        assert_eq!(fetching.join().unwrap().unwrap().secret(), "slow");
        assert_eq!(
            cache.token().unwrap().secret(),
            "slow",
            "a later call gets the token"
        );
    }
}
