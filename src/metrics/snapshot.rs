//! A snapshot of a client's counters, as callers read it and as the metrics JSON serializes it.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::keys::{
    BUCKETS, LATENCY_BOUNDS_MS, OVERFLOW_KEY, PerCause, PerClass, PerFlushStop, PerOperation,
};

/// A client's counters since it was made, shared by its clones and the outboxes opened with it:
/// [`Client::metrics`](crate::Client::metrics). Serialized (`serde_json::to_string`) it is the
/// metrics JSON the C API's `ius_client_metrics` writes, camelCase keys.
///
/// Each counter is exact. A request is counted once it ended (answered, failed or abandoned), as
/// sent and as how it ended together: one kept back before any of it was written (the outbox
/// could not note when it may land) is not counted.
///
/// ```
/// use intune_user_status::{AnswerClass, Client, Operation};
/// let client = Client::builder().base_url("http://127.0.0.1:9").access_token("t").build()?;
/// let metrics = client.metrics();
/// assert_eq!(metrics.requests[Operation::Update].sent, 0);
/// assert_eq!(metrics.requests[Operation::Update].answered[AnswerClass::TooManyRequests], 0);
/// let json = serde_json::to_value(&metrics).unwrap();
/// assert_eq!(json["requests"]["update"]["answered"]["429"], 0);
/// # Ok::<(), intune_user_status::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Metrics {
    /// Per operation: requests sent (each attempt; a redirect's hops are part of their
    /// attempt) and how each ended.
    pub requests: PerOperation<RequestCounts>,
    /// Requests the pipeline sent again, by cause (a `$batch` item sent again is counted in
    /// `batch_items`, a token request's own retries in `requests[Token]`).
    pub retries: PerCause<u64>,
    /// 429s (direct, or an item's inside a `$batch`) that held every request of the client, and
    /// how long the client was held in all (overlapping holds counted once).
    pub throttle_holds: WaitCounts,
    /// Requests that waited for the client's pacing window, and how long in all (a wait for a
    /// 429's hold alone is not one).
    pub pacing_waits: WaitCounts,
    /// Inner requests of `$batch` envelopes (bulk updates, outbox flushes, reads after 204).
    pub batch_items: BatchItemCounts,
    /// Per operation: how long each attempt took, from sending to the end of the answer.
    pub latency_ms: PerOperation<LatencyHistogram>,
    /// Tokens the client's token cache fetched (credentials, identity sources, the C token
    /// callback; a fixed token or a Rust [`TokenProvider`](crate::TokenProvider) of the caller's
    /// own is not seen).
    pub tokens: TokenCounts,
    /// Bytes of request and response bodies of Graph requests (not their headers, not token
    /// requests).
    pub bytes: ByteCounts,
    /// Outbox flushes (of the outboxes opened with this client) that stopped before working
    /// through what was due, by why; the flush report's `stopped_by` says it for one flush.
    pub flushes_stopped: PerFlushStop<u64>,
}

/// One operation's requests: how many were sent, and how each ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequestCounts {
    /// Requests sent, retries included.
    pub sent: u64,
    /// How they ended; the classes add up to `sent` (a snapshot taken as a request is counted
    /// may see one and not yet the other).
    pub answered: PerClass<u64>,
}

/// How many waits, and how long they took together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WaitCounts {
    /// How many.
    pub count: u64,
    /// Their total in milliseconds.
    pub total_ms: u64,
}

/// Inner requests of `$batch` envelopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BatchItemCounts {
    /// Inner requests sent, counted each time an envelope carried one (a resent envelope's
    /// items again).
    pub sent: u64,
    /// Of those, the ones sent not for the first time: after an inner 429, 503 or 504, or in an
    /// envelope the pipeline sent again.
    pub retried: u64,
    /// Items whose final answer was not a 2xx, or that ended in an error after being sent.
    pub failed: u64,
}

/// What the token cache fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TokenCounts {
    /// Fetches that gave a token.
    pub fetched: u64,
    /// Fetches that failed (the current token, if still valid, stays in use).
    pub failed: u64,
    /// Fetches made while the cached token was still valid, near its end (5 minutes before, or
    /// at half of a short lifetime).
    pub refreshed_before_expiry: u64,
    /// Fetches made because Graph answered 401 to the cached token.
    #[serde(rename = "after401")]
    pub after_401: u64,
}

/// Bytes of bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ByteCounts {
    /// Request bodies sent (each attempt's).
    pub sent: u64,
    /// Response bodies received.
    pub received: u64,
}

/// A fixed-bucket latency histogram: [`LATENCY_BOUNDS_MS`], and the percentiles read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// Attempts counted.
    pub count: u64,
    /// Attempts per bucket (not cumulative): the bucket of bound `b` holds those that took more
    /// than the bound before and at most `b` ms; the last one those over 10000 ms. In JSON an
    /// object keyed by the bound, `"+Inf"` for the last.
    pub buckets: Buckets,
    /// The bound of the bucket holding the median attempt (10000 for one over 10000 ms); `None`
    /// (null) before any attempt.
    pub p50: Option<u64>,
    /// The same for the 90th percentile.
    pub p90: Option<u64>,
    /// The same for the 99th percentile.
    pub p99: Option<u64>,
}

impl LatencyHistogram {
    pub(super) fn from_buckets(buckets: [u64; BUCKETS]) -> LatencyHistogram {
        let count: u64 = buckets.iter().sum();
        let percentile = |percent: u64| {
            // The rank of the percentile's attempt, 1-based, rounded up.
            let rank = count.saturating_mul(percent).div_ceil(100).max(1);
            let mut seen = 0;
            buckets.iter().position(|&n| {
                seen += n;
                seen >= rank
            })
        };
        let bound = |percent| {
            (count > 0).then(|| {
                let last = LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1];
                percentile(percent)
                    .map_or(last, |i| LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(last))
            })
        };
        LatencyHistogram {
            count,
            buckets: Buckets(buckets),
            p50: bound(50),
            p90: bound(90),
            p99: bound(99),
        }
    }
}

/// A histogram's counts per bucket, in the order of [`LATENCY_BOUNDS_MS`] and then the bucket
/// above the last bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets(pub [u64; LATENCY_BOUNDS_MS.len() + 1]);

impl Serialize for Buckets {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(BUCKETS))?;
        for (bound, count) in LATENCY_BOUNDS_MS.iter().zip(&self.0) {
            map.serialize_entry(bound, count)?;
        }
        map.serialize_entry(OVERFLOW_KEY, &self.0[BUCKETS - 1])?;
        map.end()
    }
}
