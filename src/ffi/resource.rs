//! The rest of the resource from C: get, list, create and delete, each parsing its arguments,
//! calling the [`Client`](crate::Client) method of the same name and writing the result.

use std::ffi::c_char;

use serde_json::Value;

use super::client::{client_ref, ius_client};
use super::error::{FfiError, parse_json};
use super::status::ius_status;
use super::strings::{arg_str, require_out, write_json};
use super::target::{collection_from_json, target_from_json};
use crate::json::kind;
use crate::{CallOptions, Client, Collection, Error, ListOptions, Target, UserStatusPatch};

/// Reads the user status named by `target_json` (as for `ius_update_user_status_at`: any
/// documented path, optional `apiVersion`) with a GET through the client's pipeline (retries,
/// pacing, auth).
///
/// Ownership: inputs are borrowed for the call. `*out_response_json` and `*out_error_json` (if
/// not NULL) are set to NULL first; on success `*out_response_json` receives the entity as JSON;
/// on failure `*out_error_json` receives the error JSON (see `ius_update_user_status`). Free both
/// with `ius_string_free`.
///
/// Returns `IUS_STATUS_OK`, or `NULL_ARGUMENT` (`client`, `target_json`, `out_response_json`),
/// `INVALID_UTF8`, `INVALID_JSON`, `INVALID_INPUT`, `GRAPH` (e.g. `httpStatus` 404 with `code`
/// `ResourceNotFound`), `AUTH`, `THROTTLED`, `UNEXPECTED_RESPONSE`, `TIMEOUT`, `NETWORK`, `TLS`,
/// `CANCELLED` (`ius_client_interrupt`).
/// Thread safety: may be called from many threads at once with the same client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_get_user_status(
    client: *const ius_client,
    target_json: *const c_char,
    out_response_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    let call = || {
        // SAFETY: each pointer is NULL or valid for the call, per the contract.
        let (client, target, options) = unsafe { client_and_target(client, target_json) }?;
        Ok(client.get_user_status_with(&target, &options)?)
    };
    // SAFETY: the out-pointers are NULL or writable, per the contract.
    unsafe { answer_json(out_response_json, out_error_json, call) }
}

/// Lists every user status of the collection named by `collection_json` (a `target_json` without
/// `userStatusId`), following `@odata.nextLink` page after page: only to the client's own
/// service root and API version (a link elsewhere is `IUS_STATUS_UNEXPECTED_RESPONSE`, and the
/// token is never sent there), up to `maxPages` pages and `maxItems` entities (more is
/// `UNEXPECTED_RESPONSE` naming the bound, never a truncated list).
///
/// `options_json` may be NULL or
/// `{"top":N,"filter":"...","select":["..."],"maxPages":N,"maxItems":N}` (`top`: entities per
/// page; `filter`: an OData `$filter`, sent percent-encoded; `select`: the properties to return;
/// `maxPages`: default 1000; `maxItems`: default 100000); unknown keys are `INVALID_INPUT`.
///
/// On success `*out_response_json` receives a JSON array of every entity of every page. Outputs,
/// ownership, statuses and thread safety as for `ius_get_user_status` (`collection_json` instead
/// of `target_json`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_list_user_statuses(
    client: *const ius_client,
    collection_json: *const c_char,
    options_json: *const c_char,
    out_response_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    let call = || {
        // SAFETY (both): each pointer is NULL or valid for the call, per the contract.
        let (client, collection, options) =
            unsafe { client_and_collection(client, collection_json) }?;
        let list = if options_json.is_null() {
            ListOptions::new()
        } else {
            list_options(unsafe { arg_str(options_json, "options_json") }?)?
        };
        Ok(client.list_user_statuses_with(&collection, &list, &options)?)
    };
    // SAFETY: the out-pointers are NULL or writable, per the contract.
    unsafe { answer_json(out_response_json, out_error_json, call) }
}

/// Creates a user status in the collection named by `collection_json` (a `target_json` without
/// `userStatusId`) with a POST. `entity_json` is checked like a patch (names, types, ranges,
/// dates; at least one property); its `id` may be given or left to the service.
///
/// On success `*out_response_json` receives the created entity Graph returned (201). A taken id
/// is `GRAPH` with `httpStatus` 409. A create is sent again only when Graph cannot have processed
/// it (429, 503, a connection that failed before the request was written); after a 504 or a
/// connection lost once it was sent, the error JSON says "the outcome is unknown" (`retryStopped`
/// for the 504, `message` for the connection): look it up before creating again. Outputs,
/// ownership, statuses and thread safety as for `ius_get_user_status`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_create_user_status(
    client: *const ius_client,
    collection_json: *const c_char,
    entity_json: *const c_char,
    out_response_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    let call = || {
        // SAFETY (both): each pointer is NULL or valid for the call, per the contract.
        let (client, collection, options) =
            unsafe { client_and_collection(client, collection_json) }?;
        let text = unsafe { arg_str(entity_json, "entity_json") }?;
        let value = parse_json(text, "entity_json", Error::invalid)?;
        let entity = UserStatusPatch::from_value(value)?;
        Ok(client.create_user_status_with(&collection, &entity, &options)?)
    };
    // SAFETY: the out-pointers are NULL or writable, per the contract.
    unsafe { answer_json(out_response_json, out_error_json, call) }
}

/// Deletes the user status named by `target_json` (as for `ius_update_user_status_at`); Graph
/// answers 204. A missing one is `GRAPH` with `httpStatus` 404, unless an earlier attempt of the
/// same call had an unknown outcome (a 504, a connection lost after sending): then that attempt
/// deleted it, and the call succeeds.
///
/// `*out_error_json` (if not NULL) is set to NULL on success and receives the error JSON on
/// failure. Statuses and thread safety as for `ius_get_user_status`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_delete_user_status(
    client: *const ius_client,
    target_json: *const c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [], {
        // SAFETY: each pointer is NULL or valid for the call, per the contract.
        let (client, target, options) = unsafe { client_and_target(client, target_json) }?;
        Ok(client.delete_user_status_with(&target, &options)?)
    })
}

/// The body of a call that answers JSON: `*out` is cleared first and required, then receives
/// what `call` returns, serialized; a failure or panic goes to `*out_error_json`.
///
/// # Safety
/// `out` and `out_error_json` must each be NULL or valid for a write.
unsafe fn answer_json<T: serde::Serialize>(
    out: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
    call: impl FnOnce() -> Result<T, FfiError>,
) -> ius_status {
    ffi_status_body!(out_error_json, [out], {
        require_out(out, "out_response_json")?;
        let answer = call()?;
        // SAFETY: checked non-NULL above; writable per this function's contract.
        unsafe { write_json(out, &answer) }
    })
}

/// The client, the user status a call names and its options, watched for interrupts from now.
///
/// # Safety
/// Each pointer must be NULL or valid for the call (a live handle, a NUL-terminated string).
unsafe fn client_and_target<'a>(
    client: *const ius_client,
    target_json: *const c_char,
) -> Result<(&'a Client, Target, CallOptions), FfiError> {
    // SAFETY: per this function's contract.
    let client = unsafe { client_ref(client) }?;
    // Watched from the entry: an interrupt while the arguments are read ends the call.
    let watch = client.watch(&CallOptions::new());
    let (target, options) = target_from_json(unsafe { arg_str(target_json, "target_json") }?)?;
    Ok((client, target, options.watched_by(watch)))
}

/// The client, the collection a call names and its options, watched for interrupts from now.
///
/// # Safety
/// As for [`client_and_target`].
unsafe fn client_and_collection<'a>(
    client: *const ius_client,
    collection_json: *const c_char,
) -> Result<(&'a Client, Collection, CallOptions), FfiError> {
    // SAFETY: per this function's contract.
    let client = unsafe { client_ref(client) }?;
    // Watched from the entry: an interrupt while the arguments are read ends the call.
    let watch = client.watch(&CallOptions::new());
    let (collection, options) =
        collection_from_json(unsafe { arg_str(collection_json, "collection_json") }?)?;
    Ok((client, collection, options.watched_by(watch)))
}

/// `{"top","filter","select","maxPages","maxItems"}` -> [`ListOptions`]; the core checks the
/// values.
fn list_options(text: &str) -> Result<ListOptions, FfiError> {
    let value = parse_json(text, "options_json", Error::invalid)?;
    let Value::Object(map) = value else {
        return Err(Error::invalid(
            "options_json",
            format!("must be a JSON object or NULL, got {}", kind(&value)),
        )
        .into());
    };
    let mut list = ListOptions::new();
    for (key, value) in map {
        match key.as_str() {
            "top" => list = list.top(count(&key, &value)?),
            "maxPages" => list = list.max_pages(count(&key, &value)?),
            "maxItems" => list = list.max_items(count(&key, &value)?),
            "filter" => match value {
                Value::String(filter) => list = list.filter(filter),
                other => {
                    return Err(Error::invalid(
                        key,
                        format!("must be a string, got {}", kind(&other)),
                    )
                    .into());
                }
            },
            "select" => {
                let Value::Array(names) = value else {
                    return Err(Error::invalid(
                        key,
                        format!("must be an array of property names, got {}", kind(&value)),
                    )
                    .into());
                };
                let names = names
                    .into_iter()
                    .map(|name| match name {
                        Value::String(name) => Ok(name),
                        other => Err(Error::invalid(
                            "select",
                            format!("must hold strings, got {}", kind(&other)),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                list = list.select(names);
            }
            _ => {
                return Err(Error::invalid(
                    key,
                    "unknown key; expected one of top, filter, select, maxPages, maxItems",
                )
                .into());
            }
        }
    }
    // The core's rules (top and maxPages at least 1, ...), named as the C caller wrote them.
    list.validate()?;
    Ok(list)
}

/// A JSON number as a `u32`; whether it is allowed (0 is not) is the core's rule.
fn count(key: &str, value: &Value) -> Result<u32, Error> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            let got = match value {
                Value::Number(n) => n.to_string(),
                other => kind(other).to_owned(),
            };
            Error::invalid(
                key,
                format!("must be an integer from 0 to 4294967295, got {got}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_options_name_the_bad_key() {
        let list = list_options(
            r#"{"top":5,"filter":"status eq 'error'","select":["id"],"maxPages":3,"maxItems":7}"#,
        )
        .unwrap();
        assert_eq!(list.top, Some(5));
        assert_eq!(list.max_pages, 3);
        assert_eq!(list.max_items, 7);
        assert_eq!(list.select, ["id"]);
        for (json, field) in [
            (r#"{"top":0}"#, "top"),
            (r#"{"maxPages":0}"#, "maxPages"),
            (r#"{"maxItems":0}"#, "maxItems"),
            (r#"{"top":4294967296}"#, "top"),
            (r#"{"top":-1}"#, "top"),
            (r#"{"maxPages":"many"}"#, "maxPages"),
            (r#"{"select":"id"}"#, "select"),
            (r#"{"select":[1]}"#, "select"),
            (r#"{"filter":3}"#, "filter"),
            (r#"{"skip":3}"#, "skip"),
            ("[]", "options_json"),
        ] {
            let err = list_options(json).expect_err(json);
            let value: Value = serde_json::from_str(&err.to_json()).unwrap();
            assert_eq!(value["field"], field, "{json}");
            assert_eq!(value["status"], "INVALID_INPUT", "{json}");
        }
        // Zero is refused by the core's rule, with its words.
        let err = list_options(r#"{"top":0}"#).unwrap_err();
        let value: Value = serde_json::from_str(&err.to_json()).unwrap();
        assert!(
            value["message"].as_str().unwrap().contains("at least 1"),
            "{value}"
        );
    }
}
