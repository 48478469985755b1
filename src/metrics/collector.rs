//! The counters of one client, shared by its clones and its outboxes: atomics only, so counting
//! takes no lock and allocates nothing; and the client whose call this thread is running, for the
//! code the pipeline reaches through traits (the token cache, the token sources).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::keys::{
    AnswerClass, BUCKETS, Operation, PerCause, PerClass, PerOperation, RetryCause, bucket_of,
};
use super::{
    BatchItemCounts, ByteCounts, LatencyHistogram, Metrics, RequestCounts, TokenCounts, WaitCounts,
};

/// Why a token was fetched (the cache knows; the pipeline does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenFetch {
    /// There was no token, or it had expired.
    Needed,
    /// The cached token was still valid, but near its end.
    BeforeExpiry,
    /// Graph answered 401 to the cached token.
    After401,
}

/// A count and a total time, in nanoseconds (584 years fit).
#[derive(Default)]
struct Waits {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl Waits {
    fn add(&self, wait: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(nanos(wait), Ordering::Relaxed);
    }

    fn read(&self) -> WaitCounts {
        WaitCounts {
            count: read(&self.count),
            total_ms: read(&self.nanos) / 1_000_000,
        }
    }
}

/// Every counter of one client. Relaxed atomics: each counter is exact, but a snapshot taken
/// while calls are in flight may see one counter of a request and not yet the next.
#[derive(Default)]
pub(crate) struct Collector {
    sent: PerOperation<AtomicU64>,
    answered: PerOperation<PerClass<AtomicU64>>,
    latency: PerOperation<[AtomicU64; BUCKETS]>,
    retries: PerCause<AtomicU64>,
    throttle_holds: Waits,
    pacing_waits: Waits,
    batch_sent: AtomicU64,
    batch_retried: AtomicU64,
    batch_failed: AtomicU64,
    tokens_fetched: AtomicU64,
    tokens_failed: AtomicU64,
    tokens_before_expiry: AtomicU64,
    tokens_after_401: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Collector {
    /// A request of `operation` is being sent.
    pub fn sent(&self, operation: Operation) {
        add(&self.sent[operation], 1);
    }

    /// The request of `operation` sent `took` ago ended as `class`.
    pub fn answered(&self, operation: Operation, class: AnswerClass, took: Duration) {
        add(&self.answered[operation][class], 1);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        add(&self.latency[operation][bucket_of(micros)], 1);
    }

    /// Request and response bodies' bytes.
    pub fn bytes(&self, sent: usize, received: usize) {
        add(&self.bytes_sent, sent as u64);
        add(&self.bytes_received, received as u64);
    }

    /// The pipeline sends a request again, for `cause`.
    pub fn retried(&self, cause: RetryCause) {
        add(&self.retries[cause], 1);
    }

    /// A 429 held the client; `extended` is how much later its hold now ends (zero when an
    /// earlier hold already covered it).
    pub fn held(&self, extended: Duration) {
        self.throttle_holds.add(extended);
    }

    /// A request waited `wait` at the gate for the client's pacing.
    pub fn paced(&self, wait: Duration) {
        self.pacing_waits.add(wait);
    }

    /// `sent` inner requests went in `$batch` envelopes, `retried` of them not for the first
    /// time; `failed` items ended without a 2xx.
    pub fn batch_items(&self, sent: u64, retried: u64, failed: u64) {
        add(&self.batch_sent, sent);
        add(&self.batch_retried, retried);
        add(&self.batch_failed, failed);
    }

    /// The token cache fetched a token, for `why`, and got one or not.
    pub fn token_fetched(&self, why: TokenFetch, ok: bool) {
        add(
            if ok {
                &self.tokens_fetched
            } else {
                &self.tokens_failed
            },
            1,
        );
        match why {
            TokenFetch::Needed => {}
            TokenFetch::BeforeExpiry => add(&self.tokens_before_expiry, 1),
            TokenFetch::After401 => add(&self.tokens_after_401, 1),
        }
    }

    /// What the counters say now.
    pub fn snapshot(&self) -> Metrics {
        Metrics {
            requests: PerOperation::from_fn(|operation| RequestCounts {
                sent: read(&self.sent[operation]),
                answered: PerClass::from_fn(|class| read(&self.answered[operation][class])),
            }),
            retries: PerCause::from_fn(|cause| read(&self.retries[cause])),
            throttle_holds: self.throttle_holds.read(),
            pacing_waits: self.pacing_waits.read(),
            batch_items: BatchItemCounts {
                sent: read(&self.batch_sent),
                retried: read(&self.batch_retried),
                failed: read(&self.batch_failed),
            },
            latency_ms: PerOperation::from_fn(|operation| {
                LatencyHistogram::from_buckets(self.latency[operation].each_ref().map(read))
            }),
            tokens: TokenCounts {
                fetched: read(&self.tokens_fetched),
                failed: read(&self.tokens_failed),
                refreshed_before_expiry: read(&self.tokens_before_expiry),
                after_401: read(&self.tokens_after_401),
            },
            bytes: ByteCounts {
                sent: read(&self.bytes_sent),
                received: read(&self.bytes_received),
            },
        }
    }

    /// Makes this the collector of the call this thread runs until the guard is dropped, so the
    /// token cache and sources count into it.
    pub fn enter(self: &Arc<Self>) -> Entered {
        let previous = CURRENT.with(|current| current.replace(Some(Arc::clone(self))));
        Entered { previous }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Collector>>> = const { RefCell::new(None) };
}

/// The scope of [`Collector::enter`]; dropping it ends the scope.
#[must_use = "the collector is current only until this is dropped"]
pub(crate) struct Entered {
    previous: Option<Arc<Collector>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|current| current.replace(self.previous.take()));
    }
}

/// Counts a token request sent at `started` that ended with HTTP status `answer` (or failed
/// without one) into the collector of the call this thread runs.
pub(crate) fn count_token_request(started: Instant, answer: Result<u16, &ureq::Error>) {
    let class = match answer {
        Ok(status) => AnswerClass::of_status(status),
        Err(ureq::Error::StatusCode(status)) => AnswerClass::of_status(*status),
        Err(ureq::Error::Timeout(_)) => AnswerClass::Timeout,
        Err(_) => AnswerClass::Transport,
    };
    with_current(|collector| {
        collector.sent(Operation::Token);
        collector.answered(Operation::Token, class, started.elapsed());
    });
}

/// Counts into the collector of the call this thread runs, if it runs one (a token provider
/// called outside any call counts nowhere).
pub(crate) fn with_current(count: impl FnOnce(&Collector)) {
    CURRENT.with(|current| {
        if let Ok(current) = current.try_borrow()
            && let Some(collector) = current.as_ref()
        {
            count(collector);
        }
    });
}
