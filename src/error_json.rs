//! The error JSON: an [`Error`] as the C API writes it and the `ius` command prints it, its keys
//! declared once in [`KEYS`].

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::error::Error;

/// The fields of an error JSON object. The C layer makes some of its own (a NULL argument, a
/// panic) with [`ErrorDetails::new`]; every other one comes from an [`Error`].
#[derive(Debug)]
pub(crate) struct ErrorDetails {
    /// The kind's name (`INVALID_INPUT`), or the C status's name for the C layer's own errors.
    status: &'static str,
    message: String,
    field: Option<String>,
    /// The outbox file, for `STORAGE`.
    path: Option<String>,
    http_status: Option<u16>,
    code: Option<String>,
    request_id: Option<String>,
    client_request_id: Option<String>,
    retry_after_seconds: Option<f64>,
    /// Why retrying stopped before the retries ran out.
    retry_stopped: Option<String>,
    attempts: Option<u32>,
    /// The token endpoint's answer, for `AUTH`.
    aadsts: Option<String>,
    oauth_error: Option<String>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

impl ErrorDetails {
    /// An error with only a status, a message and maybe a field.
    pub(crate) fn new(status: &'static str, message: String, field: Option<&str>) -> ErrorDetails {
        ErrorDetails {
            status,
            message,
            field: field.map(str::to_owned),
            path: None,
            http_status: None,
            code: None,
            request_id: None,
            client_request_id: None,
            retry_after_seconds: None,
            retry_stopped: None,
            attempts: None,
            aadsts: None,
            oauth_error: None,
            trace_id: None,
            correlation_id: None,
        }
    }
}

impl From<&Error> for ErrorDetails {
    fn from(error: &Error) -> ErrorDetails {
        let field = match error {
            Error::InvalidInput { field, .. } | Error::Config { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let mut d = ErrorDetails::new(error.kind().name(), error.to_string(), field);
        // An AUTH error's status is the token endpoint's, when it answered.
        d.http_status = error
            .http_status()
            .or_else(|| error.auth().and_then(|auth| auth.http_status));
        d.request_id = error.request_id().map(str::to_owned);
        d.client_request_id = error.client_request_id().map(str::to_owned);
        d.code = error.graph().and_then(|graph| graph.code.clone());
        d.retry_after_seconds = error.retry_after().map(|wait| wait.as_secs_f64());
        d.retry_stopped = error.retry_stopped().map(str::to_owned);
        // Requests actually sent; absent when nothing was (invalid input, configuration).
        d.attempts = Some(error.attempts()).filter(|&n| n > 0);
        if let Error::Storage { path, .. } = error {
            d.path = Some(path.clone());
        }
        if let Some(auth) = error.auth() {
            d.aadsts = auth.aadsts.clone();
            d.oauth_error = auth.error.clone();
            d.trace_id = auth.trace_id.clone();
            d.correlation_id = auth.correlation_id.clone();
        }
        d
    }
}

/// How a detail is written as JSON: absent (`None`) when it does not apply.
type Writer = fn(&ErrorDetails) -> Option<Value>;

/// The error JSON's keys, declared once: each key and the detail it writes, in the order written.
/// The C layer's `ius_error_json_get` accepts exactly these, and the C++ header reads them back
/// (a test checks that it knows every one).
pub(crate) const KEYS: [(&str, Writer); 15] = [
    ("status", |d| Some(d.status.into())),
    ("message", |d| Some(d.message.clone().into())),
    ("field", |d| d.field.clone().map(Value::from)),
    ("path", |d| d.path.clone().map(Value::from)),
    ("httpStatus", |d| d.http_status.map(Value::from)),
    ("code", |d| d.code.clone().map(Value::from)),
    ("requestId", |d| d.request_id.clone().map(Value::from)),
    ("clientRequestId", |d| {
        d.client_request_id.clone().map(Value::from)
    }),
    // A NaN or infinite wait cannot be written as JSON; leave it out rather than lie.
    ("retryAfterSeconds", |d| {
        d.retry_after_seconds
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
    }),
    ("retryStopped", |d| d.retry_stopped.clone().map(Value::from)),
    ("attempts", |d| d.attempts.map(Value::from)),
    ("aadsts", |d| d.aadsts.clone().map(Value::from)),
    ("error", |d| d.oauth_error.clone().map(Value::from)),
    ("traceId", |d| d.trace_id.clone().map(Value::from)),
    ("correlationId", |d| {
        d.correlation_id.clone().map(Value::from)
    }),
];

impl ErrorDetails {
    /// The error JSON as text, its keys in [`KEYS`] order, `status` first. Serialized straight
    /// to text: a `serde_json::Value` in between would sort the keys alphabetically.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            // Unreachable (every value is a JSON scalar), but the status is never lost.
            format!(r#"{{"status":"{}"}}"#, self.status)
        })
    }
}

/// `{"status":"...","message":"...",...}` with only the keys that apply, in [`KEYS`] order.
impl Serialize for ErrorDetails {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, write) in KEYS {
            if let Some(value) = write(self) {
                map.serialize_entry(key, &value)?;
            }
        }
        map.end()
    }
}

/// The error JSON (see [`Error`]).
impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ErrorDetails::from(self).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, GraphError, TransportKind};
    use std::time::Duration;

    fn json(error: Error) -> (ErrorKind, Value) {
        (error.kind(), serde_json::to_value(&error).unwrap())
    }

    fn graph(status: u16, retry_after: Option<Duration>) -> Error {
        Error::Graph(Box::new(GraphError {
            status,
            code: Some("TooManyRequests".into()),
            message: Some("slow down".into()),
            request_id: Some("req-1".into()),
            client_request_id: "crid-1".into(),
            date: None,
            retry_after,
            raw_body: None,
            attempts: 1,
            retry_stopped: None,
        }))
    }

    #[test]
    fn throttling_carries_a_fractional_retry_after_and_the_ids() {
        let (kind, value) = json(graph(429, Some(Duration::from_millis(1500))));
        assert_eq!(kind, ErrorKind::Throttled);
        assert_eq!(value["status"], "THROTTLED");
        assert_eq!(value["httpStatus"], 429);
        assert_eq!(value["code"], "TooManyRequests");
        assert_eq!(value["requestId"], "req-1");
        assert_eq!(value["clientRequestId"], "crid-1");
        assert_eq!(value["retryAfterSeconds"], 1.5);
        assert_eq!(value["attempts"], 1);
        assert!(value.get("field").is_none());
    }

    #[test]
    fn why_retrying_stopped_is_in_the_message_and_its_own_key() {
        let why = "the service asked to wait 30.000 s, more than the 10.000 s allowed for one wait (retry.maxDelayMs)";
        let mut error = graph(429, Some(Duration::from_secs(30)));
        if let Error::Graph(graph) = &mut error {
            graph.retry_stopped = Some(why.into());
        }
        let (kind, value) = json(error);
        assert_eq!(kind, ErrorKind::Throttled);
        assert_eq!(value["retryStopped"], why);
        let message = value["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("not retried: {why}")),
            "{message}"
        );
    }

    #[test]
    fn only_the_keys_that_apply_are_written() {
        let (kind, value) = json(graph(503, None));
        assert_eq!(kind, ErrorKind::Graph);
        assert!(value.get("retryAfterSeconds").is_none());

        let (kind, value) = json(Error::invalid("devicesCount", "must not be negative"));
        assert_eq!(kind, ErrorKind::InvalidInput);
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 3, "{value}");
        assert_eq!(value["field"], "devicesCount");

        let (kind, value) = json(crate::AuthError::new("token endpoint said no").into());
        assert_eq!(kind, ErrorKind::Auth);
        assert_eq!(value.as_object().unwrap().len(), 2);
    }

    #[test]
    fn auth_errors_carry_the_token_endpoints_ids() {
        let auth = crate::AuthError {
            error: Some("invalid_client".into()),
            error_description: Some("AADSTS7000215: Invalid client secret provided.".into()),
            aadsts: Some("AADSTS7000215".into()),
            trace_id: Some("trace-1".into()),
            correlation_id: Some("corr-1".into()),
            http_status: Some(401),
            ..crate::AuthError::new("token request for client app failed")
        };
        let (kind, value) = json(auth.into());
        assert_eq!(kind, ErrorKind::Auth);
        assert_eq!(value["status"], "AUTH");
        assert_eq!(value["aadsts"], "AADSTS7000215");
        assert_eq!(value["error"], "invalid_client");
        assert_eq!(value["traceId"], "trace-1");
        assert_eq!(value["correlationId"], "corr-1");
        assert_eq!(value["httpStatus"], 401);
        assert!(value.get("attempts").is_none(), "nothing reached Graph");
        assert!(value["message"].as_str().unwrap().contains("AADSTS7000215"));
    }

    #[test]
    fn transport_kinds_and_timeouts_map_to_their_kinds() {
        let transport = |kind| Error::Transport {
            kind,
            message: "x".into(),
            client_request_id: "c".into(),
            attempts: 1,
            no_answer: true,
        };
        assert_eq!(json(transport(TransportKind::Tls)).0, ErrorKind::Tls);
        assert_eq!(json(transport(TransportKind::Dns)).0, ErrorKind::Network);
        let (kind, value) = json(transport(TransportKind::Connect));
        assert_eq!(kind, ErrorKind::Network);
        assert_eq!(value["clientRequestId"], "c");
        let (kind, value) = json(Error::Timeout {
            stage: "response".into(),
            elapsed: Duration::from_millis(200),
            client_request_id: "c".into(),
            attempts: 1,
            no_answer: false,
        });
        assert_eq!(kind, ErrorKind::Timeout);
        assert_eq!(value["status"], "TIMEOUT");
        let (kind, value) = json(Error::UnexpectedResponse {
            status: 200,
            reason: "body is not an entity".into(),
            request_id: None,
            client_request_id: "c".into(),
            attempts: 1,
        });
        assert_eq!(kind, ErrorKind::UnexpectedResponse);
        assert_eq!(value["httpStatus"], 200);
        let (kind, value) = json(Error::Throttled {
            wait: Duration::from_millis(250),
            client_request_id: "c".into(),
            attempts: 0,
        });
        assert_eq!(kind, ErrorKind::Throttled);
        assert_eq!(value["retryAfterSeconds"], 0.25);
        assert!(value.get("httpStatus").is_none());
    }

    #[test]
    fn the_text_has_the_keys_in_their_declared_order_status_first() {
        let error = graph(429, Some(Duration::from_millis(1500)));
        let text = ErrorDetails::from(&error).to_json();
        assert!(
            text.starts_with(r#"{"status":"THROTTLED","message":"#),
            "{text}"
        );
        let at: Vec<usize> = KEYS
            .iter()
            .filter_map(|(key, _)| text.find(&format!("\"{key}\":")))
            .collect();
        assert_eq!(at.len(), 8, "{text}");
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            text,
            "Error serializes the same"
        );
    }

    #[test]
    fn the_status_is_the_kinds_name_and_storage_names_its_file() {
        let (kind, value) = json(Error::storage("/var/lib/agent/outbox.db", "disk full"));
        assert_eq!(value["status"], kind.name());
        assert_eq!(value["path"], "/var/lib/agent/outbox.db");
        assert!(value.get("attempts").is_none(), "{value}");
        // The outbox's departure hook keeps a retry back: the requests before it are counted,
        // as every other kind counts them.
        let mut kept_back = Error::storage("/var/lib/agent/outbox.db", "busy");
        kept_back.set_attempts(1);
        let (_, value) = json(kept_back);
        assert_eq!(
            (&value["status"], &value["attempts"]),
            (&"STORAGE".into(), &1.into())
        );
    }
}
