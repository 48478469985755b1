//! `ius_error_json_get`: one key of an error JSON, read back for callers without a JSON parser.

use std::ffi::c_char;

use serde_json::Value;

use super::error::FfiError;
use super::status::ius_status;
use super::strings::{arg_str, require_out, to_c_string, write_out};
use crate::Error;
use crate::error_json::KEYS;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GraphError;
    use std::time::Duration;

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
        let error = FfiError::from(Error::Graph(Box::new(GraphError {
            status: 429,
            code: Some("TooManyRequests".into()),
            message: Some("slow down".into()),
            request_id: Some("req-1".into()),
            client_request_id: "crid-1".into(),
            date: None,
            retry_after: Some(Duration::from_millis(1500)),
            raw_body: None,
            attempts: 1,
            retry_stopped: None,
        })))
        .to_json();
        assert_eq!(
            get(&error, "code"),
            (ius_status::Ok, Some("TooManyRequests".into()))
        );
        assert_eq!(
            get(&error, "httpStatus"),
            (ius_status::Ok, Some("429".into()))
        );
        assert_eq!(
            get(&error, "retryAfterSeconds"),
            (ius_status::Ok, Some("1.5".into()))
        );
        assert_eq!(get(&error, "field"), (ius_status::Ok, None));
        assert_eq!(get(&error, "bogus"), (ius_status::InvalidInput, None));
        assert_eq!(get("{", "code"), (ius_status::InvalidJson, None));
        assert_eq!(get("[]", "code"), (ius_status::InvalidInput, None));
        let escaped = r#"{"message":"a \"quoted\" \u00e9 \ud83d\ude00 line\nbreak"}"#;
        assert_eq!(
            get(escaped, "message").1.as_deref(),
            Some("a \"quoted\" é 😀 line\nbreak")
        );
    }
}
