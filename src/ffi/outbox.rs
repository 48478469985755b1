//! `ius_outbox`: the durable outbox for C. JSON in -> [`Outbox`] calls -> JSON out (the core's
//! serialization of its answers, `outbox_json.rs`).

use std::ffi::{c_char, c_int};

use serde_json::Value;

use super::bulk::{item_from_value as bulk_item, place};
use super::client::{client_ref, ius_client};
use super::error::{FfiError, parse_json};
use super::status::ius_status;
use super::strings::{arg_str, clear_required, require_out, write_json, write_out};
use super::target::target_from_json;
use super::update::parse_patch;
use crate::json::kind;
use crate::{BulkItem, Error, FlushReport, Outbox, OutboxOptions};

/// A durable outbox of status reports in an SQLite file.
///
/// Opaque; open it with `ius_outbox_open` and free it with `ius_outbox_free`. Thread-safe: any
/// number of threads may use one outbox at once, and several processes may open the same file.
#[allow(non_camel_case_types)] // The C name, so cbindgen emits it as is.
pub struct ius_outbox {
    outbox: Outbox,
}

/// # Safety
/// `outbox` must be NULL or a live handle from `ius_outbox_open`.
unsafe fn outbox_ref<'a>(outbox: *const ius_outbox) -> Result<&'a Outbox, FfiError> {
    // SAFETY: NULL or a live handle, per the caller's contract.
    unsafe { outbox.as_ref() }
        .map(|handle| &handle.outbox)
        .ok_or_else(|| FfiError::null_argument("outbox"))
}

/// Opens (or creates) the outbox file at `path`, which sends through a copy of `client` (so the
/// outbox may outlive `client`). A client made by `ius_client_new_with_token_callback` lends the
/// outbox its callback: the callback and its `user_data` stay in use until the client and every
/// outbox opened with it are freed, and are never called after the last of those frees returns.
///
/// `path` is UTF-8 on every platform: on Windows too, not the ANSI code page (convert a wide
/// path with `WideCharToMultiByte(CP_UTF8, ...)`); drive letters, backslashes, forward slashes
/// and `\\?\` paths work.
///
/// `options_json` is NULL (the defaults) or an object with any of `maxPending` (user statuses
/// pending at most, default 100000), `maxBytes` (file size at most, default 67108864, at least
/// 262144), `skipUnchanged` (boolean, default true: a report is not stored when every property it
/// carries was acknowledged by Graph with that value less than `resendAfterSeconds` ago, default
/// 86400, each property by its own time), `flushTimeMs` (default 300000, at most 86400000: a flush
/// starts no batch after running this long, its wait for another flush of the file included,
/// records what finished and returns with the rest pending; a request's wait for the busy file
/// before it leaves ends then too, with `IUS_STATUS_STORAGE`), `maxFailed` (reports in the failed list at most, default 10000: beyond it, or when
/// new reports need the room within `maxBytes`, the oldest are dropped, counted in the stats'
/// `failedDropped` and logged at WARN); unknown keys are refused (`IUS_STATUS_CONFIG`, `field`
/// names the key). Within `maxBytes`, what Graph acknowledged gives way first (expired
/// acknowledgements, then the oldest: each costs at most one resend), then failed reports;
/// pending reports never do.
///
/// A new file, and its `-wal`, `-shm` and `-flush` companions, are readable by their owner only
/// on Unix (mode 0600), and so is an existing empty file (it holds nothing yet); an existing
/// outbox's mode is left as it is, with a WARN log when other users can read it. On Windows the files take their folder's access list. A file written by an
/// older version of this library is migrated, keeping every report. A missing or unwritable
/// folder, a file that is not SQLite, an SQLite file that is not an outbox, or one from a newer
/// version of this library is `IUS_STATUS_STORAGE`, the error JSON's `path` naming the file and
/// `message` the reason; the file is left as it was. So is, on Unix, a file with more than one
/// name (hard links): SQLite names its journal after the name it opens, so two names would corrupt
/// it (open it by one name, or through symbolic links; Windows does not check).
///
/// Ownership: inputs are borrowed for the call. On success `*out_outbox` receives an outbox the
/// caller frees with `ius_outbox_free`; on failure it is set to NULL and `*out_error_json` (if not
/// NULL) receives an error JSON string to free with `ius_string_free`.
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_open(
    client: *const ius_client,
    path: *const c_char,
    options_json: *const c_char,
    out_outbox: *mut *mut ius_outbox,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_outbox], {
        require_out(out_outbox, "out_outbox")?;
        // SAFETY: out_outbox is non-NULL and writable per the contract; cleared first.
        unsafe { write_out(out_outbox, std::ptr::null_mut()) };
        // SAFETY (all three): each pointer is NULL or valid for the call, per the contract.
        let client = unsafe { client_ref(client) }?;
        let path = unsafe { arg_str(path, "path") }?;
        let options = if options_json.is_null() {
            OutboxOptions::new()
        } else {
            options_from_json(unsafe { arg_str(options_json, "options_json") }?)?
        };
        let outbox = Outbox::open(client, path, options)?;
        let handle = Box::into_raw(Box::new(ius_outbox { outbox }));
        // SAFETY: as above.
        unsafe { write_out(out_outbox, handle) };
        Ok(())
    })
}

/// Stores `patch_json` for `target_json` durably (committed before this returns). Both are as
/// for `ius_update_user_status_at` and validated the same way (`IUS_STATUS_INVALID_INPUT` naming
/// the field, and nothing stored). A report pending for the same user status (same route and
/// ids, whichever API version either names) is merged into, property by property, the later
/// value winning; the merged report goes out with the latest report's API version. A report
/// whose every property Graph acknowledged with that value recently is skipped. A new user status when the outbox is full is
/// `IUS_STATUS_OUTBOX_FULL` (nothing stored, nothing dropped). A file that cannot be written (a
/// full disk) is `IUS_STATUS_STORAGE`, the error JSON's `path` naming the file and `message` the
/// reason; nothing of this call is stored and nothing stored before is lost. While another call
/// on this outbox uses the file it waits for its turn (that call is working; its own waits are
/// bounded), and while another connection writes the file up to 10 s (`IUS_STATUS_STORAGE`
/// after that), or until
/// `ius_outbox_interrupt` (`IUS_STATUS_CANCELLED`, nothing stored).
///
/// Ownership: inputs are borrowed for the call; `*out_error_json` (if not NULL) is set to NULL on
/// success, or receives an error JSON string to free with `ius_string_free`.
/// Thread safety: may be called from many threads at once; never waits for a flush's network I/O.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_enqueue(
    outbox: *mut ius_outbox,
    target_json: *const c_char,
    patch_json: *const c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [], {
        // SAFETY (all three): each pointer is NULL or valid for the call, per the contract.
        let outbox = unsafe { outbox_ref(outbox) }?;
        let (target, options) = target_from_json(unsafe { arg_str(target_json, "target_json") }?)?;
        let patch = parse_patch(unsafe { arg_str(patch_json, "patch_json") }?)?;
        let mut item = BulkItem::new(target, patch);
        if let Some(version) = options.api_version {
            item = item.api_version(version);
        }
        outbox.enqueue_many(&[item])?;
        Ok(())
    })
}

/// Stores every report of `items_json`, `[{"target":{...},"patch":{...}},...]` (each as for
/// `ius_outbox_enqueue`), in one transaction: all of them or, on any error, none (an invalid
/// item's error names it, e.g. `field` `items_json[2].devicesCount`).
///
/// Ownership and thread safety as for `ius_outbox_enqueue`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_enqueue_many(
    outbox: *mut ius_outbox,
    items_json: *const c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [], {
        // SAFETY (both): each pointer is NULL or valid for the call, per the contract.
        let outbox = unsafe { outbox_ref(outbox) }?;
        let text = unsafe { arg_str(items_json, "items_json") }?;
        outbox.enqueue_many(&items_from_json(text)?)?;
        Ok(())
    })
}

/// Sends every report that is due through the client and records each outcome, then writes
/// `{"sent","applied","retryLater","failed","skipped","interrupted","pending",
/// "nextAttemptInSeconds","stoppedBy"}` to `*out_report_json` (`nextAttemptInSeconds`: when the
/// earliest pending report is due, null when none is pending, never more than the longest of the
/// client's `retry.maxDelayMs`, its `timeouts.requestMs` (a changed value held back behind a write
/// whose outcome is unknown) and the Retry-After Graph asked, itself at most an hour;
/// `interrupted`: reports of a batch an interrupt abandoned; `stoppedBy`: why the flush stopped
/// before working through what was due, null when it drained or sent all that was due: `"auth"`
/// (the token endpoint or source refused the credentials, or Graph answered 401 to a whole
/// batch: also logged at WARN, without the token; an operator must fix the credentials),
/// `"offline"` (a batch got no answer at all, or the token endpoint could not be reached),
/// `"throttled"` (Graph throttled a batch or asked to wait past `retry.maxDelayMs`), `"paced"`
/// (the client's own gate, its pacing or the hold after another call's 429, could not let a
/// batch leave within the call's budget: nothing held, the rest stays due), `"held"`
/// (an earlier stop's hold was in force: nothing sent; see `ius_outbox_stats`' `heldUntil`),
/// `"time"` (`flushTimeMs` ran out), `"interrupt"`, `"storage"` (the file could not record,
/// before a request left, until when Graph may apply it: that request was kept back and the
/// flush returned `IUS_STATUS_STORAGE`, the round recorded, the reports not sent due as before)).
/// Applied reports are removed; throttled or transiently failed ones (a
/// 401 that a fresh token did not cure included) kept for a later flush (after their
/// Retry-After, or the client's backoff doubling per failed flush, either at most
/// `retry.maxDelayMs`); those Graph refused for good (a 4xx other than 401/408/429, 403
/// included), and any whose stored row cannot be read (a `STORAGE` error naming the row), moved
/// to the failed list. Reports are sent a `$batch` of 20 at a time; the flush stops sending
/// after a batch Graph throttled or asked to wait past `retry.maxDelayMs` (every report held back
/// as long as Graph asked), after a batch that got no answer at all (refused, reset, DNS,
/// connect timeout), no token or only 401s (the rest waits out the same backoff), and after
/// `flushTimeMs`; what a stop holds back is held by one stored time for the whole outbox.
/// A report that changes a value a write with an unknown outcome (no answer, a timeout, a 5xx,
/// an interrupt, a kill) may still set is not sent until that write can no longer land: the
/// time its last request left (or its unknown outcome was recorded) + the `timeouts.requestMs`
/// it was sent with; a retry of the same value goes after the backoff.
/// A stored time is bounded, never trusted: a next attempt later than now + the longer of
/// `retry.maxDelayMs` and `timeouts.requestMs` (left by a clock that ran ahead) is due now, and
/// so is a hold later than now + the longer of `retry.maxDelayMs` and the wait it was set for.
/// A hold lasts at most an hour, whatever Graph asked; `ius_outbox_clear_hold` ends it.
///
/// Returns `IUS_STATUS_OK` whenever the flush ran, whatever became of the reports; a failure
/// status only when it could not run (`STORAGE`, `AUTH` before anything was sent, ...). Waits
/// for a flush of the same file (by any path to it) by another thread or process
/// to end first; that wait spends `flushTimeMs` too, and a flush still waiting when it is spent
/// returns `IUS_STATUS_OK` having sent nothing (`sent` 0, its reports `pending`,
/// `nextAttemptInSeconds` when the earliest is due: 0 unless every one is held back by a backoff
/// or a hold), as any flush out of time.
///
/// `ius_outbox_interrupt` (or `ius_client_interrupt` on its client) ends the flush within half a
/// second, whatever it waits on (the flush lock, the file, the pacing gate, a token, a
/// Retry-After wait, a response: that batch is abandoned and its connection closed):
/// `IUS_STATUS_CANCELLED`, with the report of what was done in `*out_report_json` all the same.
/// The outcomes it has are recorded when the file can be had within the interrupt's bound (50 ms
/// for a turn on a handle another call uses, 200 ms for another connection's write); else those
/// reports stay pending, held back by the backoff their claim stored before sending, and are sent
/// again then (PATCH is idempotent): a report whose outcome is unknown, whatever the reason (an
/// interrupt, a busy or full file, a kill), is never sent again before its backoff. The reports
/// of the abandoned batch (`interrupted`: whether Graph applied them is unknown) stay pending and
/// are sent again after the backoff, as every unknown outcome is; those not sent stay due, and
/// the next flush sends them. The report's `pending` and `nextAttemptInSeconds` are read through
/// a read-only connection of their own, opened by the file's full path as resolved at open (a
/// read never waits for a writer, and waits at most 200 ms for a connection that locks the file
/// whole); should even that read fail, `pending` counts the reports the flush knew were pending
/// (a lower bound) and `nextAttemptInSeconds` is null; `stoppedBy` is `"interrupt"` in every
/// case, so an interrupted flush never reads as drained.
///
/// A flush with no token before anything was sent returns `IUS_STATUS_AUTH` with its report all
/// the same: `stoppedBy` `"auth"` (the credentials refused) or `"offline"` (the token endpoint
/// could not be reached, or failed for a while: no WARN), `pending` and `nextAttemptInSeconds`
/// read after the stop, which holds the whole outbox as any stop does.
///
/// Ownership: `*out_report_json` (required) receives a string to free with `ius_string_free` on
/// every status where the flush ran: `IUS_STATUS_OK`, `IUS_STATUS_CANCELLED`, `IUS_STATUS_AUTH`,
/// and any other status (e.g. `IUS_STATUS_STORAGE` recording the outcomes) once requests went
/// out (`sent` > 0: those reports stay pending), and `IUS_STATUS_STORAGE` with `stoppedBy`
/// `"storage"` even when nothing was sent (the file kept the round's first request back: what is
/// pending and when); else (it could not run: the lock, the file, a record that failed) NULL; `*out_error_json` as for
/// `ius_outbox_enqueue`.
/// Thread safety: may be called from any thread; blocks while reports are sent.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_flush(
    outbox: *mut ius_outbox,
    out_report_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_report_json], {
        // SAFETY (all three): each pointer is NULL or valid for the call, per the contract.
        unsafe { clear_required(out_report_json, "out_report_json") }?;
        let outbox = unsafe { outbox_ref(outbox) }?;
        let mut report = FlushReport::default();
        let flushed = outbox.flush_into(&mut report);
        if report.tells_of(&flushed) {
            // SAFETY: as above.
            unsafe { write_json(out_report_json, &report) }?;
        }
        flushed.map_err(FfiError::from)
    })
}

/// Ends the flush in progress on `outbox`, and every other call on it waiting for its file
/// (another connection writing it, or another call on this outbox using it: an enqueue,
/// `ius_outbox_take_failed`, `ius_outbox_stats`), from any thread, as SQLite's
/// `sqlite3_interrupt` does: each returns `IUS_STATUS_CANCELLED` within half a second, or
/// completes if its turn on the handle came within the 50 ms grace after the interrupt (see
/// `ius_outbox_flush` for what an interrupted flush leaves; an interrupted enqueue stored
/// nothing, an interrupted `ius_outbox_take_failed` took nothing). Calls started afterwards are
/// not affected. NULL is allowed and does nothing.
///
/// Thread safety: may be called from any thread while others use the outbox (not while it is
/// freed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_interrupt(outbox: *mut ius_outbox) {
    ffi_body_or!((), {
        // SAFETY: NULL or a live handle, per the contract.
        if let Ok(outbox) = unsafe { outbox_ref(outbox) } {
            outbox.interrupt();
        }
    })
}

/// Writes `{"pending","failed","skipped","applied","failedDropped","bytes","oldestPendingSeconds",
/// "heldUntil","holdSecondsLeft"}` to `*out_stats_json`: user statuses pending, reports in the
/// failed list, reports skipped and applied since the file was made, failed reports dropped since
/// the file was made (the oldest, beyond `maxFailed` or for room within `maxBytes`), the file's
/// bytes, the age of the oldest pending report (null when none is pending), and when the
/// outbox-wide hold in force ends (RFC 3339, UTC) and in how many seconds (both null when no hold
/// is in force; see `ius_outbox_clear_hold`). While another call on this outbox uses the file
/// it waits for its turn (that call is working; its own waits are bounded), or until
/// `ius_outbox_interrupt` (`IUS_STATUS_CANCELLED`, `*out_stats_json` NULL).
///
/// Ownership as for `ius_outbox_flush`. Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_stats(
    outbox: *mut ius_outbox,
    out_stats_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_stats_json], {
        // SAFETY (all three): each pointer is NULL or valid for the call, per the contract.
        unsafe { clear_required(out_stats_json, "out_stats_json") }?;
        let outbox = unsafe { outbox_ref(outbox) }?;
        unsafe { write_json(out_stats_json, &outbox.stats()?) }
    })
}

/// Ends the outbox-wide hold, so the next `ius_outbox_flush` sends what is due at once. A flush
/// that Graph throttled (or asked to wait past `retry.maxDelayMs`), that could not reach Graph,
/// or whose credentials were refused holds every report back, at most an hour
/// (`ius_outbox_stats`' `heldUntil`): clear it once the cause is fixed (a secret rotated, the
/// network back), not to get round throttling, which Graph answers with another. Each report's
/// own backoff (at most `retry.maxDelayMs`) stays. Clearing an outbox that is not held does
/// nothing and succeeds. Waits for the file as `ius_outbox_enqueue` does; `ius_outbox_interrupt`
/// ends the wait (`IUS_STATUS_CANCELLED`, the hold kept).
///
/// `*out_cleared` (may be NULL) receives 1 when a hold was in force and is now ended, else 0 (on
/// every return, a failure included). Ownership: `*out_error_json` as for `ius_outbox_enqueue`.
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_clear_hold(
    outbox: *mut ius_outbox,
    out_cleared: *mut c_int,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    // SAFETY (both): out_cleared is NULL or writable, per the contract.
    unsafe { write_out(out_cleared, 0) };
    ffi_status_body!(out_error_json, [], {
        // SAFETY: NULL or a live handle, per the contract.
        let outbox = unsafe { outbox_ref(outbox) }?;
        let cleared = outbox.clear_hold()?;
        unsafe { write_out(out_cleared, c_int::from(cleared)) };
        Ok(())
    })
}

/// Removes the failed list from the file and writes it to `*out_failed_json`, oldest first:
/// `[{"target":{...},"patch":{...},"error":{...},"failedAt":"..."}]`, with the target and patch
/// as `ius_outbox_enqueue` takes them and the error as any call's error JSON. A report whose
/// stored row could not be read has an empty patch and a `STORAGE` error naming the row; one
/// whose stored target cannot be read stays in the file (logged at WARN by its row id). Waits
/// for the file as `ius_outbox_enqueue` does; `ius_outbox_interrupt` ends the wait
/// (`IUS_STATUS_CANCELLED`, nothing taken, `*out_failed_json` NULL).
///
/// Ownership as for `ius_outbox_flush`. Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_take_failed(
    outbox: *mut ius_outbox,
    out_failed_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_failed_json], {
        // SAFETY (all three): each pointer is NULL or valid for the call, per the contract.
        unsafe { clear_required(out_failed_json, "out_failed_json") }?;
        let outbox = unsafe { outbox_ref(outbox) }?;
        unsafe { write_json(out_failed_json, &outbox.take_failed()?) }
    })
}

/// Frees an outbox (its file stays). NULL is allowed and does nothing. If it was the last of a
/// callback client and its outboxes, the token callback is never called after this returns.
/// Like `ius_client_free`, it does not wait for a DNS lookup or TCP connect an interrupt left
/// behind (see `ius_client_interrupt` before unloading the library).
///
/// Ownership: takes back an outbox from `ius_outbox_open`; it must not be used or freed again.
/// Thread safety: no other thread may be using the outbox when it is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_outbox_free(outbox: *mut ius_outbox) {
    ffi_body_or!((), {
        if !outbox.is_null() {
            // SAFETY: per the contract, outbox came from Box::into_raw in ius_outbox_open, is not
            // in use and is freed once.
            drop(unsafe { Box::from_raw(outbox) });
        }
    })
}

/// `options_json` -> [`OutboxOptions`], as the core reads it (text that is not JSON is
/// `INVALID_JSON`).
fn options_from_json(text: &str) -> Result<OutboxOptions, FfiError> {
    let value = parse_json(text, "options_json", Error::config)?;
    Ok(crate::outbox_json::options_from_value(value)?)
}

/// `items_json` -> items, all or nothing: each item is read as `ius_update_user_statuses` reads
/// it, and the first bad one is the error, named from the array (`items[2].patch.devicesCount`).
fn items_from_json(text: &str) -> Result<Vec<BulkItem>, FfiError> {
    let value = parse_json(text, "items_json", Error::invalid)?;
    let Value::Array(elements) = value else {
        return Err(Error::invalid(
            "items_json",
            format!("must be a JSON array, got {}", kind(&value)),
        )
        .into());
    };
    elements
        .into_iter()
        .enumerate()
        .map(|(index, element)| bulk_item(element, index).map_err(|err| err.within(&place(index))))
        .collect::<Result<_, Error>>()
        .map_err(FfiError::from)
}
