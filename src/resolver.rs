//! DNS answers cached per host for a short while, looked up where an interrupt can end the wait,
//! and the check that plain http reaches only loopback addresses (or the link-local address a
//! managed-identity URL names: `url`'s rule).
//!
//! ureq resolves the host before it looks for a pooled connection: caching the answer keeps
//! requests on a pooled connection free of lookups. A miss looks the name up on a thread of its
//! own (`cancel::off_thread`, as libcurl's threaded resolver does; ureq's own resolver spawns
//! one per lookup too when a timeout is set) and waits for it until the connect timeout, or until
//! the call is interrupted: the wait then ends at once, and the lookup finishes alone; its
//! answer still fills the cache.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::unversioned::transport::time::Duration as UreqDuration;

use crate::abortable::interrupted_unsent;
use crate::cancel::{self, Cancelled, Unanswered};
use crate::url::plain_http_may_connect;

/// How long an answer is reused; short, so a moved service is found again quickly.
const TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct CachingResolver<R = DefaultResolver> {
    /// Shared with the lookups in progress, which may outlive the call that started them.
    lookups: Arc<Lookups<R>>,
    /// The proxy's host and port: its own address is the one plain-http name not held to
    /// loopback (the proxy is trusted as configured; the targets never go through it in clear).
    proxy: Option<(String, u16)>,
}

/// The resolver that looks names up, and the answers it gave.
#[derive(Debug, Default)]
struct Lookups<R> {
    inner: R,
    // A client talks to one or two hosts (Graph, the token endpoint): a short list beats a map.
    cache: Mutex<Vec<Entry>>,
}

impl<R> Lookups<R> {
    /// The cached answer for `scheme` and `authority` as of `now`, if still fresh.
    fn cached(&self, scheme: &str, authority: &str, now: Instant) -> Option<ResolvedSocketAddrs> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .iter()
            .find(|e| {
                e.scheme == scheme
                    && e.authority == authority
                    && now.duration_since(e.resolved_at) < TTL
            })
            .map(|entry| entry.addrs.clone())
    }

    /// Keeps `addrs`, resolved at `now`, in place of any older answer (and drops stale ones).
    fn store(&self, scheme: &str, authority: &str, now: Instant, addrs: &ResolvedSocketAddrs) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|e| {
            !(e.scheme == scheme && e.authority == authority)
                && now.duration_since(e.resolved_at) < TTL
        });
        cache.push(Entry {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            resolved_at: now,
            addrs: addrs.clone(),
        });
    }
}

impl<R> CachingResolver<R> {
    /// A resolver over `inner` for an agent whose proxy (if any) is `proxy` (host, port).
    pub(crate) fn new(inner: R, proxy: Option<(String, u16)>) -> CachingResolver<R> {
        CachingResolver {
            lookups: Arc::new(Lookups {
                inner,
                cache: Mutex::default(),
            }),
            proxy,
        }
    }

    /// Plain http is for loopback only, and a name is not enough: every address it resolved to
    /// must be loopback, or a hosts file or DNS answer could send a token in clear off the machine.
    /// (A link-local address passes only when the URL names it: `url::plain_http_may_connect`.)
    fn check_plain_http(&self, uri: &Uri, addrs: &ResolvedSocketAddrs) -> Result<(), ureq::Error> {
        if uri.scheme_str() != Some("http") {
            return Ok(());
        }
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(80);
        if self
            .proxy
            .as_ref()
            .is_some_and(|(proxy_host, proxy_port)| proxy_host == host && *proxy_port == port)
        {
            return Ok(());
        }
        match addrs
            .iter()
            .find(|addr| !plain_http_may_connect(host, addr.ip()))
        {
            Some(addr) => Err(ureq::Error::RequireHttpsOnly(format!(
                "plain http is allowed only to loopback, but {host} resolved to {}; use https",
                addr.ip()
            ))),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Entry {
    scheme: String,
    authority: String,
    resolved_at: Instant,
    addrs: ResolvedSocketAddrs,
}

impl<R: Resolver> Resolver for CachingResolver<R> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        self.resolve_at(uri, config, timeout, Instant::now())
    }
}

impl<R: Resolver> CachingResolver<R> {
    /// [`Resolver::resolve`] as of `now` (tests move the clock past [`TTL`]).
    fn resolve_at(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
        now: Instant,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let scheme = uri.scheme_str().unwrap_or_default();
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if let Some(addrs) = self.lookups.cached(scheme, authority, now) {
            self.check_plain_http(uri, &addrs)?;
            return Ok(addrs);
        }
        let addrs = self.look_up(uri, config, timeout, now)?;
        self.check_plain_http(uri, &addrs)?;
        Ok(addrs)
    }

    /// Looks `uri`'s host up on a thread of its own, waiting until `timeout` (ureq's error for it,
    /// as its own resolver gives) or an interrupt; the answer fills the cache even when no call
    /// waits for it any more.
    fn look_up(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
        now: Instant,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let until = (!timeout.after.is_not_happening()).then(|| Instant::now() + *timeout.after);
        let lookups = Arc::clone(&self.lookups);
        let (uri, config) = (uri.clone(), config.clone());
        let answer = cancel::off_thread("ius-dns", until, move || {
            // The wait is bounded here: the lookup itself needs no thread of its own.
            let unbounded = NextTimeout {
                after: UreqDuration::NotHappening,
                ..timeout
            };
            let addrs = lookups.inner.resolve(&uri, &config, unbounded)?;
            let scheme = uri.scheme_str().unwrap_or_default();
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            lookups.store(scheme, authority, now, &addrs);
            Ok(addrs)
        });
        match answer {
            Ok(answer) => answer,
            Err(Unanswered::TimedOut) => Err(ureq::Error::Timeout(timeout.reason)),
            Err(Unanswered::Cancelled) => Err(interrupted_unsent(Cancelled)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// Answers every name with one address, as a hosts file or DNS server might, and counts the
    /// lookups.
    #[derive(Debug)]
    struct Answers(SocketAddr, std::sync::atomic::AtomicUsize);

    impl Answers {
        fn new(answer: &str) -> Answers {
            Answers(answer.parse().unwrap(), Default::default())
        }
    }

    impl Resolver for Answers {
        fn resolve(
            &self,
            _: &Uri,
            _: &ureq::config::Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut addrs = ResolvedSocketAddrs::from_fn(|_| self.0);
            addrs.truncate(0);
            addrs.push(self.0);
            Ok(addrs)
        }
    }

    fn no_timeout() -> NextTimeout {
        NextTimeout {
            after: ureq::unversioned::transport::time::Duration::NotHappening,
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        }
    }

    fn resolve(answer: &str, url: &str) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolver = CachingResolver::new(
            Answers::new(answer),
            Some(("proxy.corp.example".to_owned(), 3128)),
        );
        let config = ureq::config::Config::default();
        let timeout = no_timeout();
        // Twice: the cached answer is held to the same rule.
        let _ = resolver.resolve(&url.parse().unwrap(), &config, timeout);
        resolver.resolve(&url.parse().unwrap(), &config, timeout)
    }

    #[test]
    fn plain_http_to_a_name_that_resolves_off_loopback_is_refused() {
        let err = resolve("10.1.2.3:8080", "http://localhost:8080/beta").unwrap_err();
        assert!(
            matches!(&err, ureq::Error::RequireHttpsOnly(why) if why.contains("10.1.2.3")),
            "{err:?}"
        );
        assert!(resolve("127.0.0.1:8080", "http://localhost:8080/beta").is_ok());
        assert!(resolve("[::1]:8080", "http://localhost:8080/beta").is_ok());
        assert!(resolve("[::ffff:127.0.0.1]:8080", "http://localhost:8080/").is_ok());
        // https is protected by TLS; the configured proxy's own address is its own business.
        assert!(resolve("10.1.2.3:443", "https://graph.example/beta").is_ok());
        assert!(resolve("10.1.2.3:3128", "http://proxy.corp.example:3128").is_ok());
        assert!(resolve("10.1.2.3:3129", "http://proxy.corp.example:3129").is_err());
    }

    #[test]
    fn plain_http_reaches_a_link_local_address_only_when_the_url_names_it() {
        // IMDS: the URL is the address (only a managed-identity URL may be one, `url`'s rule).
        let imds = "http://169.254.169.254/metadata/identity/oauth2/token";
        assert!(resolve("169.254.169.254:80", imds).is_ok());
        // A name that resolves there is not the same.
        let err = resolve("169.254.169.254:80", "http://metadata.example/x").unwrap_err();
        assert!(matches!(err, ureq::Error::RequireHttpsOnly(_)), "{err:?}");
    }

    /// An answer is reused for 30 s per scheme and authority, then looked up again.
    #[test]
    fn answers_are_cached_for_30_seconds() {
        let resolver = CachingResolver::new(Answers::new("127.0.0.1:8080"), None);
        let config = ureq::config::Config::default();
        let lookups = || {
            resolver
                .lookups
                .inner
                .1
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        let graph: Uri = "https://graph.example/beta".parse().unwrap();
        let start = Instant::now();
        let at = |uri: &Uri, seconds: f64| {
            let now = start + Duration::from_secs_f64(seconds);
            resolver
                .resolve_at(uri, &config, no_timeout(), now)
                .unwrap();
            lookups()
        };
        assert_eq!(at(&graph, 0.0), 1);
        assert_eq!(at(&graph, 29.9), 1, "reused within 30 s");
        let login: Uri = "https://login.example/t".parse().unwrap();
        assert_eq!(at(&login, 29.9), 2, "another host is looked up");
        assert_eq!(at(&graph, 30.0), 3, "looked up again at 30 s");
        assert_eq!(at(&graph, 59.9), 3, "the new answer is reused");
        assert_eq!(at(&login, 60.0), 4, "the old one expired meanwhile");
    }

    /// Answers every name with 127.0.0.1:8080 after `delay`, as a DNS server that is slow to
    /// answer (or never does, within a call's patience) would; counts the answers given.
    #[derive(Debug)]
    struct Slow {
        delay: Duration,
        answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Resolver for Slow {
        fn resolve(
            &self,
            _: &Uri,
            _: &ureq::config::Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            std::thread::sleep(self.delay);
            let answer: SocketAddr = "127.0.0.1:8080".parse().unwrap();
            let mut addrs = ResolvedSocketAddrs::from_fn(|_| answer);
            addrs.truncate(0);
            addrs.push(answer);
            self.answered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(addrs)
        }
    }

    fn within(seconds: u64, reason: ureq::Timeout) -> NextTimeout {
        NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from_secs(seconds),
            reason,
            per_read: None,
            per_write: None,
        }
    }

    /// A lookup that hangs ends at the interrupt (the call's wait, not the lookup, which goes on
    /// alone and still fills the cache), and a call started afterwards gets the answer.
    #[test]
    fn an_interrupt_ends_the_wait_for_a_hanging_lookup_whose_answer_still_fills_the_cache() {
        use crate::cancel::{Signal, Watch};
        let answered = std::sync::Arc::default();
        let resolver = CachingResolver::new(
            Slow {
                delay: Duration::from_millis(1500),
                answered: std::sync::Arc::clone(&answered),
            },
            None,
        );
        let config = ureq::config::Config::default();
        let uri: Uri = "http://localhost:8080/beta".parse().unwrap();
        let signal = Signal::new();
        let interrupter = {
            let signal = std::sync::Arc::clone(&signal);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                signal.interrupt();
                Instant::now()
            })
        };
        let entered = Watch::new(&signal).enter();
        let result = resolver.resolve(&uri, &config, within(10, ureq::Timeout::Resolve));
        let returned = Instant::now();
        drop(entered);
        let interrupted = interrupter.join().unwrap();
        assert!(
            returned.saturating_duration_since(interrupted) < Duration::from_millis(500),
            "returned {:?} after the interrupt: {result:?}",
            returned.saturating_duration_since(interrupted)
        );
        assert!(
            matches!(&result, Err(ureq::Error::Io(err)) if err.to_string().contains("interrupted")),
            "{result:?}"
        );
        // The lookup finishes on its own; a call started after the interrupt uses its answer.
        let give_up = Instant::now() + Duration::from_secs(10);
        while answered.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(Instant::now() < give_up, "the lookup never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
        let _later = Watch::new(&signal).enter();
        let started = Instant::now();
        let addrs = resolver
            .resolve(&uri, &config, within(10, ureq::Timeout::Resolve))
            .unwrap();
        assert_eq!(
            addrs.iter().copied().collect::<Vec<SocketAddr>>(),
            ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "served from the cache"
        );
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// A lookup slower than the timeout fails with ureq's timeout error, naming the timeout ureq
    /// named, as ureq's own resolver does.
    #[test]
    fn a_lookup_slower_than_its_timeout_is_a_timeout_of_the_reason_given() {
        let resolver = CachingResolver::new(
            Slow {
                delay: Duration::from_millis(1500),
                answered: std::sync::Arc::default(),
            },
            None,
        );
        let config = ureq::config::Config::default();
        let uri: Uri = "https://graph.example/beta".parse().unwrap();
        let mut timeout = within(0, ureq::Timeout::Connect);
        timeout.after = ureq::unversioned::transport::time::Duration::from_millis(100);
        let started = Instant::now();
        let err = resolver.resolve(&uri, &config, timeout).unwrap_err();
        assert!(
            matches!(err, ureq::Error::Timeout(ureq::Timeout::Connect)),
            "{err:?}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    }
}
