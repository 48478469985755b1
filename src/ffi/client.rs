//! `ius_client`: the opaque handle C holds, and its constructor and destructor.

use std::ffi::c_char;

use super::config::builder_from_json;
use super::error::FfiError;
use super::status::ius_status;
use super::strings::{arg_str, require_out, write_out};
use crate::Client;

/// A Graph client: one connection pool and configuration, shared by every call made with it.
///
/// Opaque; create it with `ius_client_new` and free it with `ius_client_free`. Thread-safe: any
/// number of threads may call `ius_update_user_status*` with the same client at once.
#[allow(non_camel_case_types)] // The C name, so cbindgen emits it as is.
pub struct ius_client {
    pub(crate) client: Client,
}

/// Borrows the client behind a handle for the duration of a call.
///
/// # Safety
/// `client` must be NULL or a live handle from `ius_client_new`.
pub(crate) unsafe fn client_ref<'a>(client: *const ius_client) -> Result<&'a Client, FfiError> {
    // SAFETY: NULL or a live handle, per the caller's contract.
    unsafe { client.as_ref() }
        .map(|handle| &handle.client)
        .ok_or_else(|| FfiError::null_argument("client"))
}

/// Creates a client from `config_json`, a JSON object (camelCase keys):
///
/// - `baseUrl` (string): the service root without a version segment, e.g.
///   `"http://127.0.0.1:8080"` (plain http only for loopback hosts); or
/// - `cloud` (string): `"global"` (default), `"usGov"`, `"usGovDoD"` or `"china"` (not both);
/// - `apiVersion` (string): `"beta"` (default) or `"v1.0"`;
/// - `accessToken` (string, required): the bearer token; never echoed in any message;
/// - `timeouts` (object): `connectMs` (default 30000), `requestMs` (one attempt, default 100000),
///   `totalMs` (the whole call: attempts, redirects and waits; default none); positive integers,
///   at most one day;
/// - `retry` (object): how 429, 503, 504 and failed connections are retried: `maxRetries` (0-10,
///   default 3), `baseDelayMs` (backoff without Retry-After, default 3000), `maxDelayMs` (one
///   wait, default 180000), `maxTotalMs` (all waits, default 180000); a wait past a budget ends
///   the call at once;
/// - `pacing` (object): `requests` and `perSeconds`: at most that many requests in any window of
///   that length, shared by every thread using the client (e.g. 100 per 20 for Intune writes);
/// - `proxy` (string): a proxy URL, e.g. `"http://user:password@proxy:3128"`; never echoed;
/// - `useEnvProxy` (boolean): honour HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY (default true);
/// - `tls` (object): `platformVerifier` (boolean: the operating system's verifier instead of the
///   bundled Mozilla roots) or `extraRootsPem` (string: CA certificates trusted in addition);
/// - `userAgent` (string): appended to the User-Agent header, e.g. `"contoso-agent/4.2"`;
/// - `fetchAfterNoContent` (boolean): after a 204, GET the object so updates return it.
///
/// Unknown keys are rejected (`IUS_STATUS_CONFIG`, the error JSON's `field` names the key, e.g.
/// `timeouts.readMs`). No request is made here.
///
/// Ownership: `config_json` is borrowed for the call. On success `*out_client` receives a client
/// the caller owns and frees with `ius_client_free`, and `*out_error_json` (if not NULL) is set to
/// NULL. On failure `*out_client` is set to NULL and `*out_error_json` (if not NULL) receives an
/// error JSON string the caller frees with `ius_string_free`.
///
/// Returns `IUS_STATUS_OK`, `IUS_STATUS_NULL_ARGUMENT` (`config_json` or `out_client` NULL),
/// `IUS_STATUS_INVALID_UTF8`, `IUS_STATUS_INVALID_JSON` or `IUS_STATUS_CONFIG`.
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_client_new(
    config_json: *const c_char,
    out_client: *mut *mut ius_client,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, {
        require_out(out_client, "out_client")?;
        // SAFETY: out_client is non-NULL and writable per the contract; cleared first so every
        // failure leaves NULL behind.
        unsafe { write_out(out_client, std::ptr::null_mut()) };
        // SAFETY: config_json is NULL or a NUL-terminated string valid for the call.
        let text = unsafe { arg_str(config_json, "config_json") }?;
        let client = builder_from_json(text)?.build()?;
        let handle = Box::into_raw(Box::new(ius_client { client }));
        // SAFETY: as above.
        unsafe { write_out(out_client, handle) };
        Ok(())
    })
}

/// Frees a client and closes its connections. NULL is allowed and does nothing.
///
/// Ownership: takes back a client from `ius_client_new`; it must not be used or freed again.
/// Thread safety: no other thread may be using the client when it is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_client_free(client: *mut ius_client) {
    ffi_body_or!((), {
        if !client.is_null() {
            // SAFETY: per the contract, client came from Box::into_raw in ius_client_new, is not
            // in use and is freed once.
            drop(unsafe { Box::from_raw(client) });
        }
    })
}
