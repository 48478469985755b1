//! Core [`Error`] -> C status + error JSON, in one place: the status from the error's
//! [`ErrorKind`], the JSON the core's (`error_json`).

use std::ffi::c_char;
use std::str::Utf8Error;

use serde_json::Value;

use super::status::ius_status;
use super::strings::{arg_str, require_out, to_c_string, write_out};
use crate::error_json::{ErrorDetails, KEYS};
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

/// Reads one key of an error JSON object, for callers without a JSON parser (the C++ header uses
/// it): `key` is one of the keys the error JSON documents (`message`, `field`, `path`, `httpStatus`,
/// `code`, `requestId`, `clientRequestId`, `retryAfterSeconds`, `retryStopped`, `attempts`,
/// `aadsts`, `error`,
/// `traceId`, `correlationId`, `status`).
///
/// Ownership: both inputs are borrowed for the call. On success `*out_value` receives the value as
/// text (a string's contents, or a number as the JSON writes it, e.g. `429` or `1.5`), which the
/// caller frees with `ius_string_free`, or NULL when the object does not have the key. On failure
/// `*out_value` is set to NULL.
///
/// Returns `IUS_STATUS_OK`, `IUS_STATUS_NULL_ARGUMENT` (an argument is NULL),
/// `IUS_STATUS_INVALID_UTF8`, `IUS_STATUS_INVALID_JSON` (`error_json` is not JSON) or
/// `IUS_STATUS_INVALID_INPUT` (`error_json` is not an object, or `key` is not an error JSON key).
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_error_json_get(
    error_json: *const c_char,
    key: *const c_char,
    out_value: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(std::ptr::null_mut(), [out_value], {
        require_out(out_value, "out_value")?;
        // SAFETY (both): NULL or NUL-terminated strings valid for the call, per the contract.
        let text = unsafe { arg_str(error_json, "error_json") }?;
        let key = unsafe { arg_str(key, "key") }?;
        if !KEYS.iter().any(|(known, _)| *known == key) {
            return Err(Error::invalid("key", "is not a key of the error JSON").into());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|err| FfiError::invalid_json("error_json", &err))?;
        let Value::Object(mut map) = value else {
            return Err(Error::invalid("error_json", "must be a JSON object").into());
        };
        let text = match map.remove(key) {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(text)) => text,
            Some(other) => other.to_string(),
        };
        let value = to_c_string(text)?;
        // SAFETY: as above.
        unsafe { write_out(out_value, value) };
        Ok(())
    })
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn get(json: &str, key: &str) -> (ius_status, Option<String>) {
        let json = std::ffi::CString::new(json).unwrap();
        let key = std::ffi::CString::new(key).unwrap();
        let mut out: *mut c_char = c"stale".as_ptr().cast_mut();
        // SAFETY: valid strings and a writable out-pointer.
        let status = unsafe { ius_error_json_get(json.as_ptr(), key.as_ptr(), &mut out) };
        let value = (!out.is_null()).then(|| {
            // SAFETY: a string this library returned, freed once.
            let owned = unsafe { std::ffi::CString::from_raw(out) };
            owned.into_string().unwrap()
        });
        (status, value)
    }

    #[test]
    fn one_key_is_read_back_as_text() {
        let error = r#"{"status":"THROTTLED","message":"m","httpStatus":429,"code":"TooManyRequests","retryAfterSeconds":1.5}"#;
        assert_eq!(
            get(error, "code"),
            (ius_status::Ok, Some("TooManyRequests".into()))
        );
        assert_eq!(
            get(error, "httpStatus"),
            (ius_status::Ok, Some("429".into()))
        );
        assert_eq!(
            get(error, "retryAfterSeconds"),
            (ius_status::Ok, Some("1.5".into()))
        );
        assert_eq!(get(error, "field"), (ius_status::Ok, None));
        assert_eq!(get(error, "bogus"), (ius_status::InvalidInput, None));
        assert_eq!(get("{", "code"), (ius_status::InvalidJson, None));
        assert_eq!(get("[]", "code"), (ius_status::InvalidInput, None));
        let escaped = r#"{"message":"a \"quoted\" \u00e9 \ud83d\ude00 line\nbreak"}"#;
        assert_eq!(
            get(escaped, "message").1.as_deref(),
            Some("a \"quoted\" é 😀 line\nbreak")
        );
    }
}
