//! The counters of one client, shared by its clones and its outboxes: atomics only, so counting
//! takes no lock and allocates nothing; and the client whose call this thread is running, for the
//! code the pipeline reaches through traits (the token cache, the token sources).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::keys::{
    AnswerClass, BUCKETS, FlushStop, Operation, PerCause, PerClass, PerFlushStop, PerOperation,
    RetryCause, bucket_of,
};
use super::snapshot::{
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
    flushes_stopped: PerFlushStop<AtomicU64>,
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

    /// An outbox flush stopped early, for `why`.
    pub fn flush_stopped(&self, why: FlushStop) {
        add(&self.flushes_stopped[why], 1);
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
            flushes_stopped: PerFlushStop::from_fn(|why| read(&self.flushes_stopped[why])),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::metrics::LATENCY_BOUNDS_MS;

    #[test]
    fn percentiles_are_the_bounds_of_the_buckets_holding_them() {
        let collector = Collector::default();
        let took = |ms: u64, times: usize| {
            for _ in 0..times {
                collector.answered(
                    Operation::Update,
                    AnswerClass::Success,
                    Duration::from_millis(ms),
                );
            }
        };
        took(3, 50); // the 5 ms bucket
        took(40, 40); // 50 ms
        took(150, 9); // 200 ms
        took(60_000, 1); // over 10 s
        let latency = collector.snapshot().latency_ms[Operation::Update];
        assert_eq!(latency.count, 100);
        assert_eq!(
            (latency.p50, latency.p90, latency.p99),
            (Some(5), Some(50), Some(200))
        );
        took(60_000, 100);
        let latency = collector.snapshot().latency_ms[Operation::Update];
        assert_eq!(
            latency.p99,
            Some(10000),
            "the overflow reports the last bound"
        );
        let json = serde_json::to_value(latency).unwrap();
        assert_eq!(json["buckets"]["5"], 50);
        assert_eq!(json["buckets"]["+Inf"], 101);
        assert_eq!(json["count"], 200);
        let idle = collector.snapshot().latency_ms[Operation::Get];
        assert_eq!(
            serde_json::to_value(idle).unwrap()["p50"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn the_json_has_every_key_of_every_table_in_order() {
        let metrics = Collector::default().snapshot();
        let text = serde_json::to_string(&metrics).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Each key appears in the text after the one before it.
        let in_order = |keys: &[&str]| {
            let mut from = 0;
            for key in keys {
                let quoted = format!("\"{key}\":");
                let at = text[from..]
                    .find(&quoted)
                    .unwrap_or_else(|| panic!("{key} in {text}"));
                from += at + quoted.len();
            }
        };
        in_order(&[
            "requests",
            "retries",
            "throttleHolds",
            "pacingWaits",
            "batchItems",
            "latencyMs",
            "tokens",
            "bytes",
        ]);
        let operations = Operation::ALL.map(Operation::key);
        in_order(&operations);
        in_order(&AnswerClass::ALL.map(AnswerClass::key));
        in_order(&RetryCause::ALL.map(RetryCause::key));
        let count = |value: &serde_json::Value| value.as_object().unwrap().len();
        assert_eq!(count(&json["requests"]), operations.len());
        assert_eq!(count(&json["latencyMs"]), operations.len());
        assert_eq!(
            count(&json["requests"]["token"]["answered"]),
            AnswerClass::ALL.len()
        );
        assert_eq!(count(&json["retries"]), RetryCause::ALL.len());
        assert_eq!(
            json["tokens"],
            json!({"fetched": 0, "failed": 0, "refreshedBeforeExpiry": 0, "after401": 0})
        );
        assert_eq!(json["throttleHolds"], json!({"count": 0, "totalMs": 0}));
        assert_eq!(
            json["batchItems"],
            json!({"sent": 0, "retried": 0, "failed": 0})
        );
        assert_eq!(json["bytes"], json!({"sent": 0, "received": 0}));
        assert_eq!(
            count(&json["latencyMs"]["batch"]["buckets"]),
            LATENCY_BOUNDS_MS.len() + 1
        );
    }
}
