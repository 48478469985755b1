//! What a client counts: requests per operation and how they ended, retries, 429 holds, pacing
//! waits, outbox flushes that stopped early by why, `$batch` items, latency histograms, tokens and bytes, since the client was made and
//! shared by its clones and outboxes ([`Client::metrics`](crate::Client::metrics)).
//!
//! `keys` declares the tables (operations, answer classes, retry causes, flush stops, latency
//! bounds) once;
//! `collector` holds the atomics the pipeline, the bulk scheduler and the token cache count
//! into; `snapshot` holds what callers read, serialized as the metrics JSON.

mod collector;
mod keys;
mod snapshot;

pub(crate) use collector::{Collector, TokenFetch, count_token_request, with_current};
pub use keys::{
    AnswerClass, FlushStop, LATENCY_BOUNDS_MS, Operation, PerCause, PerClass, PerFlushStop,
    PerOperation, RetryCause,
};
pub use snapshot::{
    BatchItemCounts, Buckets, ByteCounts, LatencyHistogram, Metrics, RequestCounts, TokenCounts,
    WaitCounts,
};
