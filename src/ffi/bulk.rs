//! `ius_update_user_statuses`: parse the items, call [`Client::update_user_statuses_detailed`],
//! write one result per item (each as the core writes it, [`bulk_result_json`]).
//!
//! [`Client::update_user_statuses_detailed`]: crate::Client::update_user_statuses_detailed

use std::ffi::c_char;

use serde_json::Value;

use super::client::{client_ref, ius_client};
use super::error::{FfiError, parse_json};
use super::status::ius_status;
use super::strings::{arg_str, require_out, write_json};
use crate::json::kind;
use crate::{BulkItem, BulkResult, CallOptions, Error, UpdateOutcome, bulk_result_json};

/// Updates many user statuses in `$batch` requests of at most 20 and writes one result per item,
/// in the items' order.
///
/// `items_json` is a JSON array of `{"target": T, "patch": P}`: `T` exactly what
/// `ius_update_user_status_at` takes as `target_json` (any documented path, optional
/// `apiVersion`), `P` a patch as for `ius_update_user_status`. An empty array gives `[]`.
///
/// Each inner request is the PATCH a single update sends (same encoded path, same body); items go
/// in batches of one API version each. An item answered 429, 503 or 504 is sent again in a later
/// batch after its own `Retry-After` (or the backoff), within the client's retry policy counted
/// per item, and a 429 holds the client as a direct one does; other item failures are final. The
/// batch itself is retried whole on 429, 503, 504 and failed connections, and a 401 refreshes the
/// token once. `timeouts.totalMs` bounds the whole call: an item whose next retry would pass it
/// gets `THROTTLED` (after a 429) or `TIMEOUT`, with the wait it was given. Pacing counts every
/// inner request. A retry the client's own pacing gate cannot let leave within the budgets ends
/// its item with the answer it followed (a 503 or 504 stays `GRAPH`, `retryStopped` naming the
/// gate): `THROTTLED` only after Graph's 429, or for an item never sent (`attempts` 0).
///
/// `*out_results_json` receives a JSON array, one element per item:
/// `{"status":"OK","httpStatus":204,"response":null,"attempts":1}`,
/// `{"status":"OK","httpStatus":200,"response":{...entity...},"attempts":2}` (`attempts`: the
/// requests that carried the item, its retries included; with `fetchAfterNoContent`, a 204's
/// entity is read back and written as `response`, `httpStatus` staying 204), or
/// `{"status":"THROTTLED","error":{...}}` where `status` is the item's own status name and
/// `error` has the keys of the single update's error JSON (`status`, `message`, `field`,
/// `httpStatus`, `code`, `requestId` (the inner response's), `clientRequestId`,
/// `retryAfterSeconds`, `attempts`: the requests that carried this item). An item that fails
/// validation (not an object, a bad target or patch, v1.0 with a route only beta serves) gets
/// `INVALID_INPUT` with `field` naming it from the array, e.g. `items[3].patch.devicesCount`, and
/// is not sent; the others are.
///
/// `ius_client_interrupt` ends the call: finished items keep their results, the others get
/// `CANCELLED`, and the call returns `PARTIAL`.
///
/// Ownership: inputs are borrowed for the call. `*out_results_json` and `*out_error_json` (if not
/// NULL) are set to NULL first; free what they receive with `ius_string_free`.
///
/// Returns `IUS_STATUS_OK` when every item succeeded; `IUS_STATUS_PARTIAL` when the results are
/// written and at least one item failed (`*out_error_json` then says how many); otherwise the
/// call's own failure, and then nothing was sent and `*out_results_json` is NULL:
/// `NULL_ARGUMENT` (`client`, `items_json` or `out_results_json`), `INVALID_UTF8`,
/// `INVALID_JSON`, or `INVALID_INPUT` when `items_json` is not an array.
/// Thread safety: may be called from many threads at once with the same client. Blocks until
/// every item has its result.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_update_user_statuses(
    client: *const ius_client,
    items_json: *const c_char,
    out_results_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_results_json], {
        // SAFETY (both): each pointer is NULL or valid for the call, per the contract.
        let client = unsafe { client_ref(client) }?;
        // Watched from the entry: an interrupt while the arguments are read ends the call.
        let watch = client.watch(&CallOptions::new());
        require_out(out_results_json, "out_results_json")?;
        let text = unsafe { arg_str(items_json, "items_json") }?;
        let value = parse_json(text, "items_json", Error::invalid)?;
        let Value::Array(elements) = value else {
            return Err(Error::invalid(
                "items_json",
                format!(
                    "must be a JSON array of {{\"target\",\"patch\"}} objects, got {}",
                    kind(&value)
                ),
            )
            .into());
        };
        let total = elements.len();
        let mut results = Vec::with_capacity(total);
        let mut items = Vec::with_capacity(total);
        let mut slots = Vec::with_capacity(total);
        for (index, element) in elements.into_iter().enumerate() {
            match item_from_value(element, index) {
                Ok(item) => {
                    items.push(item);
                    slots.push(index);
                    results.push(BulkResult::new(Ok(UpdateOutcome::NoContent), 0));
                }
                Err(error) => results.push(result(index, BulkResult::new(Err(error), 0))),
            }
        }
        let outcomes =
            client.update_user_statuses_detailed(&items, &CallOptions::new().watched_by(watch));
        drop(items);
        for (index, outcome) in slots.into_iter().zip(outcomes) {
            results[index] = result(index, outcome);
        }
        let failures = results.iter().filter(|r| r.result.is_err()).count();
        let results: Vec<_> = results.iter().map(bulk_result_json).collect();
        // SAFETY: checked non-NULL above; writable per the contract.
        unsafe { write_json(out_results_json, &results) }?;
        if failures > 0 {
            return Err(FfiError::partial(failures, total));
        }
        Ok(())
    })
}

/// An element of `items_json`, read as the core reads a bulk item; a bad field is named from the
/// item (`patch.devicesCount`), an element that is no object by its place (`items[3]`).
pub(super) fn item_from_value(value: Value, index: usize) -> Result<BulkItem, Error> {
    BulkItem::from_named_value(value, &place(index))
}

/// The item's result, the field of a failure named from the array: `items[3].patch.x`.
fn result(index: usize, item: BulkResult) -> BulkResult {
    BulkResult {
        result: item.result.map_err(|error| error.within(&place(index))),
        ..item
    }
}

pub(super) fn place(index: usize) -> String {
    format!("items[{index}]")
}
