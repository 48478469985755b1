//! The outbox's JSON, declared here once: its options in ([`OutboxOptions::from_json`], the C
//! API's `options_json`), and its answers out: [`OutboxStats`], [`FlushReport`] and
//! [`FailedReport`] serialize (serde) to the objects the C API's `ius_outbox_stats`,
//! `ius_outbox_flush` and `ius_outbox_take_failed` write and the `ius outbox` command prints.
//! Times are seconds, `null` when there is none.

use std::time::Duration;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::Value;

use crate::json::{self, kind};
use crate::{Error, FailedReport, FlushReport, FlushStop, OutboxOptions, OutboxStats};

/// The keys of the options JSON.
const OPTION_KEYS: &str =
    "maxPending, maxBytes, skipUnchanged, resendAfterSeconds, flushTimeMs, maxFailed";

impl OutboxOptions {
    /// Reads the options JSON the C API's `ius_outbox_open` takes: an object with any of
    /// `maxPending`, `maxBytes`, `skipUnchanged`, `resendAfterSeconds`, `flushTimeMs` and
    /// `maxFailed` (the fields of [`OutboxOptions`]); an unknown key, or a value of the wrong
    /// type, is [`Error::Config`] naming the key. The values are checked when the outbox opens.
    ///
    /// ```
    /// use intune_user_status::OutboxOptions;
    /// let options = OutboxOptions::from_json(r#"{"maxPending":500,"skipUnchanged":false}"#)?;
    /// assert_eq!((options.max_pending, options.skip_unchanged), (500, false));
    /// let err = OutboxOptions::from_json(r#"{"maxPendng":5}"#).unwrap_err();
    /// assert!(matches!(err, intune_user_status::Error::Config { field, .. } if field == "maxPendng"));
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<OutboxOptions, Error> {
        options_from_value(json::parse_named(text, "options_json", Error::config)?)
    }
}

/// Parsed options JSON -> [`OutboxOptions`] (see [`OutboxOptions::from_json`]).
pub(crate) fn options_from_value(value: Value) -> Result<OutboxOptions, Error> {
    let Value::Object(map) = value else {
        return Err(Error::config(
            "options_json",
            format!("must be a JSON object, got {}", kind(&value)),
        ));
    };
    let mut options = OutboxOptions::new();
    for (key, value) in map {
        let count = || {
            value.as_u64().ok_or_else(|| {
                Error::config(
                    &key,
                    format!("must be a non-negative integer, got {}", kind(&value)),
                )
            })
        };
        options = match key.as_str() {
            "maxPending" => options.max_pending(count()?),
            "maxBytes" => options.max_bytes(count()?),
            "resendAfterSeconds" => options.resend_after(Duration::from_secs(count()?)),
            "flushTimeMs" => options.flush_time(Duration::from_millis(count()?)),
            "maxFailed" => options.max_failed(count()?),
            "skipUnchanged" => options.skip_unchanged(value.as_bool().ok_or_else(|| {
                Error::config(&key, format!("must be true or false, got {}", kind(&value)))
            })?),
            _ => {
                return Err(Error::config(
                    &key,
                    format!("unknown key; expected one of {OPTION_KEYS}"),
                ));
            }
        };
    }
    Ok(options)
}

fn seconds(duration: Option<Duration>) -> Option<f64> {
    duration.map(|d| d.as_secs_f64())
}

/// `{"sent","applied","retryLater","failed","skipped","interrupted","pending",
/// "nextAttemptInSeconds","stoppedBy"}`; `stoppedBy` is a [`FlushStop`] key or `null`.
impl Serialize for FlushReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FlushReport", 9)?;
        s.serialize_field("sent", &self.sent)?;
        s.serialize_field("applied", &self.applied)?;
        s.serialize_field("retryLater", &self.retry_later)?;
        s.serialize_field("failed", &self.failed)?;
        s.serialize_field("skipped", &self.skipped)?;
        s.serialize_field("interrupted", &self.interrupted)?;
        s.serialize_field("pending", &self.pending)?;
        s.serialize_field("nextAttemptInSeconds", &seconds(self.next_attempt_in))?;
        s.serialize_field("stoppedBy", &self.stopped_by.map(FlushStop::key))?;
        s.end()
    }
}

/// `{"pending","failed","skipped","applied","failedDropped","bytes","oldestPendingSeconds",
/// "heldUntil","holdSecondsLeft"}`.
impl Serialize for OutboxStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("OutboxStats", 9)?;
        s.serialize_field("pending", &self.pending)?;
        s.serialize_field("failed", &self.failed)?;
        s.serialize_field("skipped", &self.skipped)?;
        s.serialize_field("applied", &self.applied)?;
        s.serialize_field("failedDropped", &self.failed_dropped)?;
        s.serialize_field("bytes", &self.bytes)?;
        s.serialize_field("oldestPendingSeconds", &seconds(self.oldest_pending))?;
        s.serialize_field("heldUntil", &self.held_until.as_ref().map(|at| at.as_str()))?;
        s.serialize_field("holdSecondsLeft", &seconds(self.hold_left))?;
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
