//! Core [`Error`] -> C status + error JSON, in one place.

use std::str::Utf8Error;

use serde_json::{Map, Value};

use super::status::ius_status;
use crate::json::ParseError;
use crate::{Error, TransportKind};

/// Parses the JSON argument `name`. Text that is not JSON is `IUS_STATUS_INVALID_JSON`; an object
/// that names a key twice is `rejected(key path, reason)` (`Error::invalid` or `Error::config`),
/// so the error JSON's `field` names the key.
pub(crate) fn parse_json(
    text: &str,
    name: &'static str,
    rejected: fn(String, &'static str) -> Error,
) -> Result<Value, FfiError> {
    crate::json::parse(text).map_err(|err| match err {
        ParseError::Syntax(err) => FfiError::invalid_json(name, &err),
        ParseError::DuplicateKey(key) => rejected(
            crate::json::unknown_key_field(name, &key),
            ParseError::DUPLICATE,
        )
        .into(),
    })
}

/// A failed call as C sees it: a status and the fields of the error JSON.
///
/// Boxed so `Result<_, FfiError>` stays one pointer wide on the success path.
#[derive(Debug)]
pub(crate) struct FfiError(Box<Details>);

#[derive(Debug)]
struct Details {
    status: ius_status,
    message: String,
    field: Option<String>,
    /// The outbox file, for `IUS_STATUS_STORAGE`.
    path: Option<String>,
    http_status: Option<u16>,
    code: Option<String>,
    request_id: Option<String>,
    client_request_id: Option<String>,
    retry_after_seconds: Option<f64>,
    /// Why retrying stopped before the retries ran out.
    retry_stopped: Option<String>,
    attempts: Option<u32>,
    /// The token endpoint's answer, for `IUS_STATUS_AUTH`.
    aadsts: Option<String>,
    oauth_error: Option<String>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

impl FfiError {
    fn new(status: ius_status, message: String, field: Option<&str>) -> FfiError {
        FfiError(Box::new(Details {
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
        }))
    }

    /// A required pointer argument `name` was NULL.
    pub(crate) fn null_argument(name: &'static str) -> FfiError {
        FfiError::new(
            ius_status::NullArgument,
            format!("{name} must not be NULL"),
            Some(name),
        )
    }

    /// The string argument `name` was not UTF-8.
    pub(crate) fn invalid_utf8(name: &'static str, err: &Utf8Error) -> FfiError {
        FfiError::new(
            ius_status::InvalidUtf8,
            format!("{name} is not valid UTF-8: {err}"),
            Some(name),
        )
    }

    /// The argument `name` was not JSON. serde_json's message gives a line and column, never
    /// the text itself, so a secret in the input is not echoed.
    pub(crate) fn invalid_json(name: &'static str, err: &serde_json::Error) -> FfiError {
        FfiError::new(
            ius_status::InvalidJson,
            format!("{name} is not valid JSON: {err}"),
            Some(name),
        )
    }

    /// The library panicked.
    pub(crate) fn panic(message: String) -> FfiError {
        FfiError::new(ius_status::Panic, message, None)
    }

    /// The library failed in a way no input should cause.
    pub(crate) fn internal(message: &str) -> FfiError {
        FfiError::new(ius_status::Internal, message.to_owned(), None)
    }

    /// A bulk call whose results are written, `failed` of its `total` items having failed.
    pub(crate) fn partial(failed: usize, total: usize) -> FfiError {
        FfiError::new(
            ius_status::Partial,
            format!("{failed} of {total} items failed; each result says why"),
            None,
        )
    }

    /// The status the call returns.
    pub(crate) fn status(&self) -> ius_status {
        self.0.status
    }

    /// `{"status":"...","message":"...",...}` with only the keys that apply, in [`KEYS`] order.
    pub(crate) fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The error JSON as a value, e.g. to embed in a bulk call's results.
    /// The error JSON as a value, to nest in another JSON (the outbox's failed list).
    pub(crate) fn to_value(&self) -> Value {
        let mut map = Map::new();
        for (key, value) in KEYS {
            if let Some(value) = value(&self.0) {
                map.insert(key.into(), value);
            }
        }
        Value::Object(map)
    }
}

/// How a detail is written as JSON: absent (`None`) when it does not apply.
type Writer = fn(&Details) -> Option<Value>;

/// The error JSON's keys, declared once: each key and the detail it writes. The C++ header reads
/// them back (a test checks that it knows every one).
const KEYS: [(&str, Writer); 15] = [
    ("status", |d| Some(d.status.name().into())),
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

/// Whether `key` is a key of the error JSON.
pub(crate) fn is_key(key: &str) -> bool {
    KEYS.iter().any(|(known, _)| *known == key)
}

impl From<Error> for FfiError {
    fn from(error: Error) -> FfiError {
        let (status, field) = match &error {
            Error::InvalidInput { field, .. } => (ius_status::InvalidInput, Some(field.as_str())),
            Error::Config { field, .. } => (ius_status::Config, Some(field.as_str())),
            Error::Auth { .. } => (ius_status::Auth, None),
            Error::Graph(_) if error.is_throttled() => (ius_status::Throttled, None),
            Error::Graph(_) => (ius_status::Graph, None),
            // Exhaustive on purpose: a new transport kind must choose its status here.
            Error::Transport { kind, .. } => match kind {
                TransportKind::Tls => (ius_status::Tls, None),
                TransportKind::Dns | TransportKind::Connect | TransportKind::Io => {
                    (ius_status::Network, None)
                }
            },
            Error::Timeout { .. } => (ius_status::Timeout, None),
            // The client's own hold (pacing, an earlier 429) outlasted the call's budget.
            Error::Throttled { .. } => (ius_status::Throttled, None),
            Error::UnexpectedResponse { .. } => (ius_status::UnexpectedResponse, None),
            Error::Cancelled { .. } => (ius_status::Cancelled, None),
            Error::OutboxFull { .. } => (ius_status::OutboxFull, None),
            Error::Storage { .. } => (ius_status::Storage, None),
        };
        let mut ffi = FfiError::new(status, error.to_string(), field);
        let d = &mut ffi.0;
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
        if let Error::Storage { path, .. } = &error {
            d.path = Some(path.clone());
        }
        if let Some(auth) = error.auth() {
            d.aadsts = auth.aadsts.clone();
            d.oauth_error = auth.error.clone();
            d.trace_id = auth.trace_id.clone();
            d.correlation_id = auth.correlation_id.clone();
        }
        ffi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GraphError;
    use std::time::Duration;

    fn json(error: Error) -> (ius_status, Value) {
        let ffi = FfiError::from(error);
        (ffi.status(), serde_json::from_str(&ffi.to_json()).unwrap())
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
    fn the_cpp_header_reads_back_every_key() {
        let header = include_str!("../../include/intune_user_status.hpp");
        let mut read: Vec<&str> = ["text(\"", "number(\""]
            .into_iter()
            .flat_map(|call| header.split(call).skip(1))
            .filter_map(|rest| rest.split_once('"').map(|(key, _)| key))
            .collect();
        // `status` is the C call's return value, which the C++ Error keeps as it is.
        read.push("status");
        read.sort_unstable();
        let mut declared: Vec<&str> = KEYS.iter().map(|(key, _)| *key).collect();
        declared.sort_unstable();
        assert_eq!(
            read, declared,
            "include/intune_user_status.hpp's make_error and KEYS differ"
        );
    }

    #[test]
    fn throttling_carries_a_fractional_retry_after_and_the_ids() {
        let (status, value) = json(graph(429, Some(Duration::from_millis(1500))));
        assert_eq!(status, ius_status::Throttled);
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
        let (status, value) = json(error);
        assert_eq!(status, ius_status::Throttled);
        assert_eq!(value["retryStopped"], why);
        let message = value["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("not retried: {why}")),
            "{message}"
        );
    }

    #[test]
    fn only_the_keys_that_apply_are_written() {
        let (status, value) = json(graph(503, None));
        assert_eq!(status, ius_status::Graph);
        assert!(value.get("retryAfterSeconds").is_none());

        let (status, value) = json(Error::invalid("devicesCount", "must not be negative"));
        assert_eq!(status, ius_status::InvalidInput);
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 3, "{value}");
        assert_eq!(value["field"], "devicesCount");

        let (status, value) = json(crate::AuthError::new("token endpoint said no").into());
        assert_eq!(status, ius_status::Auth);
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
        let (status, value) = json(auth.into());
        assert_eq!(status, ius_status::Auth);
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
    fn transport_kinds_and_timeouts_map_to_their_statuses() {
        let transport = |kind| Error::Transport {
            kind,
            message: "x".into(),
            client_request_id: "c".into(),
            attempts: 1,
        };
        assert_eq!(json(transport(TransportKind::Tls)).0, ius_status::Tls);
        assert_eq!(json(transport(TransportKind::Dns)).0, ius_status::Network);
        let (status, value) = json(transport(TransportKind::Connect));
        assert_eq!(status, ius_status::Network);
        assert_eq!(value["clientRequestId"], "c");
        let (status, value) = json(Error::Timeout {
            stage: "response".into(),
            elapsed: Duration::from_millis(200),
            client_request_id: "c".into(),
            attempts: 1,
        });
        assert_eq!(status, ius_status::Timeout);
        assert_eq!(value["status"], "TIMEOUT");
        let (status, value) = json(Error::UnexpectedResponse {
            status: 200,
            reason: "body is not an entity".into(),
            request_id: None,
            client_request_id: "c".into(),
            attempts: 1,
        });
        assert_eq!(status, ius_status::UnexpectedResponse);
        assert_eq!(value["httpStatus"], 200);
        let (status, value) = json(Error::Throttled {
            wait: Duration::from_millis(250),
            client_request_id: "c".into(),
            attempts: 0,
        });
        assert_eq!(status, ius_status::Throttled);
        assert_eq!(value["retryAfterSeconds"], 0.25);
        assert!(value.get("httpStatus").is_none());
    }
}
