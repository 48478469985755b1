//! DNS answers cached per host for a short while, and the check that plain http reaches only
//! loopback addresses (or the link-local address a managed-identity URL names: `url`'s rule).
//!
//! ureq resolves the host before it looks for a pooled connection, and with a timeout set its
//! default resolver spawns a thread per lookup: a thread per request. Caching the answer keeps
//! requests on a pooled connection free of threads and lookups; a miss still resolves with the
//! timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::url::plain_http_may_connect;

/// How long an answer is reused; short, so a moved service is found again quickly.
const TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct CachingResolver<R = DefaultResolver> {
    inner: R,
    // A client talks to one or two hosts (Graph, the token endpoint): a short list beats a map.
    cache: Mutex<Vec<Entry>>,
    /// The proxy's host and port: its own address is the one plain-http name not held to
    /// loopback (the proxy is trusted as configured; the targets never go through it in clear).
    proxy: Option<(String, u16)>,
}

impl<R> CachingResolver<R> {
    /// A resolver over `inner` for an agent whose proxy (if any) is `proxy` (host, port).
    pub(crate) fn new(inner: R, proxy: Option<(String, u16)>) -> CachingResolver<R> {
        CachingResolver {
            inner,
            cache: Mutex::default(),
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
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = cache.iter().find(|e| {
                e.scheme == scheme
                    && e.authority == authority
                    && now.duration_since(e.resolved_at) < TTL
            }) {
                self.check_plain_http(uri, &entry.addrs)?;
                return Ok(entry.addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        self.check_plain_http(uri, &addrs)?;
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
        Ok(addrs)
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
        let lookups = || resolver.inner.1.load(std::sync::atomic::Ordering::SeqCst);
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
}
