//! DNS answers cached per host for a short while.
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

/// How long an answer is reused; short, so a moved service is found again quickly.
const TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    inner: DefaultResolver,
    // A client talks to one or two hosts (Graph, the token endpoint): a short list beats a map.
    cache: Mutex<Vec<Entry>>,
}

#[derive(Debug)]
struct Entry {
    scheme: String,
    authority: String,
    resolved_at: Instant,
    addrs: ResolvedSocketAddrs,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let scheme = uri.scheme_str().unwrap_or_default();
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let now = Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = cache.iter().find(|e| {
                e.scheme == scheme
                    && e.authority == authority
                    && now.duration_since(e.resolved_at) < TTL
            }) {
                return Ok(entry.addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
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
