//! The outbox's answers as JSON: [`OutboxStats`], [`FlushReport`] and [`FailedReport`] serialize
//! (serde) to the objects the C API's `ius_outbox_stats`, `ius_outbox_flush` and
//! `ius_outbox_take_failed` write and the `ius outbox` command prints, declared here once. Times
//! are seconds, `null` when there is none.

use std::time::Duration;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::Value;

use crate::{FailedReport, FlushReport, OutboxStats};

fn seconds(duration: Option<Duration>) -> Option<f64> {
    duration.map(|d| d.as_secs_f64())
}

/// `{"sent","applied","retryLater","failed","skipped","interrupted","pending",
/// "nextAttemptInSeconds"}`.
impl Serialize for FlushReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FlushReport", 8)?;
        s.serialize_field("sent", &self.sent)?;
        s.serialize_field("applied", &self.applied)?;
        s.serialize_field("retryLater", &self.retry_later)?;
        s.serialize_field("failed", &self.failed)?;
        s.serialize_field("skipped", &self.skipped)?;
        s.serialize_field("interrupted", &self.interrupted)?;
        s.serialize_field("pending", &self.pending)?;
        s.serialize_field("nextAttemptInSeconds", &seconds(self.next_attempt_in))?;
        s.end()
    }
}

/// `{"pending","failed","skipped","applied","failedDropped","bytes","oldestPendingSeconds"}`.
impl Serialize for OutboxStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("OutboxStats", 7)?;
        s.serialize_field("pending", &self.pending)?;
        s.serialize_field("failed", &self.failed)?;
        s.serialize_field("skipped", &self.skipped)?;
        s.serialize_field("applied", &self.applied)?;
        s.serialize_field("failedDropped", &self.failed_dropped)?;
        s.serialize_field("bytes", &self.bytes)?;
        s.serialize_field("oldestPendingSeconds", &seconds(self.oldest_pending))?;
        s.end()
    }
}

/// `{"target","patch","error","failedAt"}`: the target and patch as an enqueue takes them, the
/// error as any call's error JSON.
impl Serialize for FailedReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let patch: Value = serde_json::from_slice(&self.patch.to_json()).unwrap_or(Value::Null);
        let mut s = serializer.serialize_struct("FailedReport", 4)?;
        s.serialize_field("target", &self.target.to_value(self.api_version))?;
        s.serialize_field("patch", &patch)?;
        s.serialize_field("error", &self.error)?;
        s.serialize_field("failedAt", self.failed_at.as_str())?;
        s.end()
    }
}
