//! Core [`Error`] -> C status + error JSON, in one place: the status from the error's
//! [`ErrorKind`], the JSON the core's (`error_json`).

use std::str::Utf8Error;

use serde_json::Value;

use super::status::ius_status;
use crate::error_json::ErrorDetails;
use crate::json::ParseError;
use crate::{Error, ErrorKind};

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

/// A failed call as C sees it: a status and the error JSON's fields.
///
/// Boxed so `Result<_, FfiError>` stays one pointer wide on the success path.
#[derive(Debug)]
pub(crate) struct FfiError(Box<(ius_status, ErrorDetails)>);

impl FfiError {
    fn new(status: ius_status, message: String, field: Option<&str>) -> FfiError {
        FfiError(Box::new((
            status,
            ErrorDetails::new(status.name(), message, field),
        )))
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
        self.0.0
    }

    /// `{"status":"...","message":"...",...}` with only the keys that apply, in [`KEYS`] order.
    pub(crate) fn to_json(&self) -> String {
        self.0.1.to_json()
    }

    /// The error JSON as a value.
    #[cfg(test)]
    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(&self.0.1).unwrap_or_default()
    }
}

impl From<Error> for FfiError {
    fn from(error: Error) -> FfiError {
        FfiError(Box::new((error.kind().into(), ErrorDetails::from(&error))))
    }
}

/// The C status of each kind of core error: the one place the two meet.
impl From<ErrorKind> for ius_status {
    fn from(kind: ErrorKind) -> ius_status {
        match kind {
            ErrorKind::InvalidInput => ius_status::InvalidInput,
            ErrorKind::Config => ius_status::Config,
            ErrorKind::OutboxFull => ius_status::OutboxFull,
            ErrorKind::Storage => ius_status::Storage,
            ErrorKind::Auth => ius_status::Auth,
            ErrorKind::Graph => ius_status::Graph,
            ErrorKind::Throttled => ius_status::Throttled,
            ErrorKind::UnexpectedResponse => ius_status::UnexpectedResponse,
            ErrorKind::Timeout => ius_status::Timeout,
            ErrorKind::Network => ius_status::Network,
            ErrorKind::Tls => ius_status::Tls,
            ErrorKind::Cancelled => ius_status::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_json::KEYS;
    use std::time::Duration;

    fn json(error: Error) -> (ius_status, Value) {
        let ffi = FfiError::from(error);
        (ffi.status(), serde_json::from_str(&ffi.to_json()).unwrap())
    }

    #[test]
    fn each_kind_has_the_status_of_its_name() {
        for kind in ErrorKind::ALL {
            assert_eq!(ius_status::from(kind).name(), kind.name(), "{kind:?}");
        }
        let (status, value) = json(Error::Throttled {
            wait: Duration::from_millis(1500),
            client_request_id: "c".into(),
            attempts: 1,
        });
        assert_eq!(
            (status, &value["status"]),
            (ius_status::Throttled, &"THROTTLED".into())
        );
        assert_eq!(value["retryAfterSeconds"], 1.5);
        let (status, value) = json(Error::invalid("devicesCount", "must not be negative"));
        assert_eq!(status, ius_status::InvalidInput);
        assert_eq!(value["field"], "devicesCount");
        let null = FfiError::null_argument("client").to_value();
        assert_eq!(
            (&null["status"], &null["field"]),
            (&"NULL_ARGUMENT".into(), &"client".into())
        );
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
}
