//! `ius_client`: the opaque handle C holds, and its constructor and destructor.

use std::ffi::{c_char, c_void};

use super::config::client_from_json;
use super::error::FfiError;
use super::status::ius_status;
use super::strings::{arg_str, clear_required, require_out, write_json, write_out};
use super::token::{CallbackTokens, ius_token_callback};
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
/// - `cloud` (string): `"global"` (default), `"usGov"`, `"usGovDoD"` or `"china"`: the Graph
///   root, the token authority and the token scope together;
/// - `baseUrl` (string): replaces the cloud's Graph root with this service root (no version
///   segment), e.g. `"http://127.0.0.1:8080"` (plain http only for loopback hosts);
/// - `apiVersion` (string): `"beta"` (default) or `"v1.0"`;
/// - credentials, one of (required; secrets are never echoed in any message):
///   - `accessToken` (string): a bearer token, used as is;
///   - `auth` (object): `{"accessToken"}` (the same), or an app registration's app-only
///     credentials: `{"tenantId","clientId","clientSecret"}` or
///     `{"tenantId","clientId","certificatePem","privateKeyPem"}` (PEM text; the key RSA, not
///     encrypted) with optional `"algorithm"`: `"PS256"` (default) or `"RS256"`. Tokens are
///     fetched from the cloud's Microsoft identity platform on the first update, cached by the
///     client, refreshed 5 minutes before they expire, and fetched again after a 401;
///   - `auth` (object): `{"managedIdentity":{}}`: the machine's system-assigned managed
///     identity, or `{"managedIdentity":{"clientId"}}` (or `"objectId"`, or `"resourceId"`; one
///     of them) a user-assigned one. The endpoint is found from the environment here, as
///     Microsoft's libraries find it: App Service (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`),
///     Azure Arc (`IDENTITY_ENDPOINT` and `IMDS_ENDPOINT`, or the Arc agent installed; system-
///     assigned only), else IMDS (`http://169.254.169.254`, or `AZURE_POD_IDENTITY_AUTHORITY_HOST`).
///     These plain-http endpoints must be on loopback or a link-local address and never go
///     through a proxy. An endpoint that never answered and refuses the connection (IMDS: or
///     does not connect within 1 s) fails the update at once with `IUS_STATUS_AUTH` ("managed
///     identity is unavailable"); once it has answered, such failures are retried under `retry`.
///     IMDS's 410 (being updated) is asked again every 10 s, 7 times, within `timeouts.totalMs`. Arc's key files are read only from its agent's tokens folder
///     (`/var/opt/azcmagent/tokens`; on Windows `%ProgramData%\AzureConnectedMachineAgent\Tokens`);
///     no setting moves it;
///   - `auth` (object): `{"workloadIdentity":{}}`: workload identity federation, exchanging the
///     platform's token in `tokenFile` (read again for every token request) for the app
///     `clientId` of `tenantId`, at `authorityHost`; each absent one is read here from
///     `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
///     `AZURE_AUTHORITY_HOST` (a missing required one is `IUS_STATUS_CONFIG` naming it). An
///     unreadable or empty token file fails the update with `IUS_STATUS_AUTH` naming it;
///   - `auth` and `accessToken` together, or a secret and a certificate together, or an identity
///     source with other `auth` keys, are rejected;
/// - `authorityHost` (string): the identity host to ask instead of the cloud's, e.g.
///   `"https://login.microsoftonline.us"` (http only for loopback hosts); only with an app's
///   `auth` credentials or workload identity (where it replaces
///   `auth.workloadIdentity.authorityHost`), not with managed identity;
/// - `scope` (string): the scope to ask for instead of `{graph root}/.default` (a managed
///   identity asks for its resource, the scope without `/.default`); only with `auth`
///   credentials;
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
/// `timeouts.readMs` or `auth.password`). No request is made here, not even for a token.
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
    ffi_status_body!(out_error_json, [out_client], {
        require_out(out_client, "out_client")?;
        // SAFETY: config_json is NULL or a NUL-terminated string valid for the call.
        let text = unsafe { arg_str(config_json, "config_json") }?;
        let client = client_from_json(text, None)?;
        let handle = Box::into_raw(Box::new(ius_client { client }));
        // SAFETY: as above.
        unsafe { write_out(out_client, handle) };
        Ok(())
    })
}

/// Creates a client that gets its bearer tokens from `callback`, for agents that already have a
/// token source (their own identity stack, a broker). `config_json` takes the keys of
/// `ius_client_new` except the credentials: `accessToken`, `auth`, `authorityHost` and `scope`
/// are rejected (`IUS_STATUS_CONFIG`).
///
/// The client calls `callback(user_data, ...)` when it needs a token (see `ius_token_callback`
/// for the buffer and the return values): not here, but on the thread making an update call,
/// before the first request, again when the lifetime it reported is 5 minutes from its end (at
/// half of it for lifetimes under 10 minutes), and once more when Graph answers 401 to its token.
/// Calls are one at a time per client: threads needing a token meanwhile wait for that call and
/// share its outcome, each for at most what is left of its own `timeouts.totalMs` (then its update
/// returns `IUS_STATUS_TIMEOUT`, as every spent budget does) or until `ius_client_interrupt`
/// (then `IUS_STATUS_CANCELLED`). The thread running the callback cannot be interrupted: its
/// update may outlast its `totalMs`, or an interrupt, by as long as the callback takes. A failure (a negative return, a bad token) makes the update return
/// `IUS_STATUS_AUTH` with the callback's message in the error JSON, and nothing is sent to Graph;
/// the next update calls the callback again.
///
/// Ownership: `config_json` is borrowed for the call. `callback` and `user_data` (which may be
/// NULL) stay in use until this client and every outbox opened with it (`ius_outbox_open`) are
/// freed: keep them valid until the last of those frees returns. They are never called after it
/// returns, so `user_data` may be freed right then. Outputs as for `ius_client_new`.
///
/// Returns `IUS_STATUS_OK`, `IUS_STATUS_NULL_ARGUMENT` (`config_json`, `callback` or
/// `out_client` NULL), `IUS_STATUS_INVALID_UTF8`, `IUS_STATUS_INVALID_JSON` or
/// `IUS_STATUS_CONFIG`.
/// Thread safety: may be called from any thread. The callback may run on any thread that uses
/// the client (so `user_data` must be safe to use from any thread) and must not call into the
/// client it serves (that would deadlock).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_client_new_with_token_callback(
    config_json: *const c_char,
    callback: ius_token_callback,
    user_data: *mut c_void,
    out_client: *mut *mut ius_client,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_client], {
        require_out(out_client, "out_client")?;
        // SAFETY: config_json is NULL or a NUL-terminated string valid for the call.
        let text = unsafe { arg_str(config_json, "config_json") }?;
        let tokens = CallbackTokens::new(callback, user_data)?;
        let client = client_from_json(text, Some(tokens))?;
        let handle = Box::into_raw(Box::new(ius_client { client }));
        // SAFETY: as above.
        unsafe { write_out(out_client, handle) };
        Ok(())
    })
}

/// Ends every call in progress on `client`, from any thread, as SQLite's `sqlite3_interrupt`
/// does: each returns `IUS_STATUS_CANCELLED` within half a second when it is waiting on a DNS
/// lookup or a TCP connect (left to end on a thread of their own; no request was written), a
/// response (the request is abandoned and its connection closed, so whether Graph applied it is
/// unknown), a Retry-After or backoff wait, the pacing gate, or another thread's token refresh or
/// token callback. A call counts as in progress from its entry: one still reading its arguments
/// sends nothing (a bulk call then reads its items and returns them all `CANCELLED`). A bulk call
/// returns the results it has: finished items keep theirs, the others are `CANCELLED`, and the
/// call is `IUS_STATUS_PARTIAL`. The flushes in progress of the outboxes opened with the client
/// end too (`CANCELLED`, see `ius_outbox_flush`; their enqueues are left alone:
/// `ius_outbox_interrupt` ends those). Calls started afterwards are not affected. NULL is allowed
/// and does nothing.
///
/// Not cut short, and then returning `CANCELLED` only when it ends: a token callback already
/// running (the caller's code). A response wait is ended by shutting the socket down and, where
/// that does not wake a blocked wait (Winsock may not: rust-lang/rust#121594), by the read
/// itself, which waits for the socket to be readable in slices of 50 ms and looks for an
/// interrupt between them.
///
/// A DNS lookup or TCP connect the interrupt left behind goes on alone on the library's thread
/// until it ends by itself: a connect within `timeouts.connectMs` (30 s by default), a lookup
/// within the system resolver's own timeouts (glibc: resolv.conf's `timeout` times `attempts`
/// per name server, 5 s x 2 by default). Such a thread holds its own references to what it
/// uses, so `ius_client_free` frees the client at once and does not wait for it; a lookup's
/// answer still fills a cache nobody reads, and its DEBUG log line goes to the log callback
/// set then (`ius_set_log_callback(NULL, ...)` stops that). It runs the library's code, so a
/// host that unloads the library (`dlclose`, `FreeLibrary`) must first let it end: wait those
/// timeouts after the last interrupted call returned, or keep the library loaded (as linking
/// it, rather than loading it, does).
///
/// To stop a service: set your workers' stop flag, call this, join the workers, then
/// `ius_client_free` (`bindings-c/examples/service_stop.c`).
///
/// Thread safety: may be called from any thread while other threads use the client (for
/// example from a signal-watching or service-control thread); not from a signal handler, and not
/// after `ius_client_free` has begun.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_client_interrupt(client: *const ius_client) {
    ffi_body_or!((), {
        // SAFETY: NULL or a live handle, per the contract.
        if let Ok(client) = unsafe { client_ref(client) } {
            client.interrupt();
        }
    })
}

/// Writes the client's metrics to `*out_metrics_json`: counters since the client was made,
/// shared by every outbox opened with it, read without a lock and without sending anything.
/// One JSON object, its keys always present and in this order:
///
/// - `requests`: per operation (`update`, `get`, `list`, `create`, `delete`, `batch` for a
///   `$batch` POST, `token` for a request to a token endpoint), `{"sent":N,"answered":{...}}`:
///   each attempt sent (retries included), and how each ended, by class: `2xx`, `400`, `401`,
///   `403`, `404`, `409`, `412`, `429`, `otherClientError`, `5xx`, `transport` (no usable answer),
///   `timeout`, `cancelled` (abandoned by `ius_client_interrupt`);
/// - `retries`: requests sent again, by cause: `429`, `503`, `504`, `transport`, `401Refresh`
///   (sent once more with a fresh token after a 401);
/// - `throttleHolds`: `{"count","totalMs"}`: 429s that held every request of the client (direct
///   or inside a `$batch`), and how long the client was held in all;
/// - `pacingWaits`: `{"count","totalMs"}`: requests that waited for the pacing window, and how
///   long in all;
/// - `batchItems`: `{"sent","retried","failed"}`: inner requests of `$batch` envelopes, each time
///   an envelope carried one; those sent not for the first time; items whose final answer was
///   not a 2xx;
/// - `latencyMs`: per operation, `{"count","buckets","p50","p90","p99"}`: each attempt's time
///   from sending to the end of its answer, in buckets keyed by their upper bound in ms (`1`,
///   `2`, `5`, `10`, `20`, `50`, `100`, `200`, `500`, `1000`, `2000`, `5000`, `10000`, and `+Inf`;
///   not cumulative), and the bound of the bucket holding each percentile (null before any);
/// - `tokens`: `{"fetched","failed","refreshedBeforeExpiry","after401"}`: what the client's
///   token cache fetched (credentials, identity sources, the token callback; not a fixed
///   `accessToken`);
/// - `bytes`: `{"sent","received"}`: request and response bodies of Graph requests;
/// - `flushesStopped`: `{"auth","offline","throttled","held","paced","time","interrupt","storage"}`: flushes of
///   the outboxes opened with the client that stopped before working through what was due, by
///   why (the flush report's `stoppedBy`; see `ius_outbox_flush`).
///
/// Counters only grow; forward the difference between two readings as rates.
///
/// Ownership: `*out_metrics_json` (required) receives a string to free with `ius_string_free`,
/// or NULL on failure; `*out_error_json` (may be NULL) receives the error JSON on failure, else
/// NULL. Thread safety: may be called from any thread, while other threads use the client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_client_metrics(
    client: *const ius_client,
    out_metrics_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_metrics_json], {
        // SAFETY (all three): each pointer is NULL or valid for the call, per the contract.
        unsafe { clear_required(out_metrics_json, "out_metrics_json") }?;
        let client = unsafe { client_ref(client) }?;
        unsafe { write_json(out_metrics_json, &client.metrics()) }
    })
}

/// Frees a client and closes its connections. NULL is allowed and does nothing.
///
/// An outbox opened with the client keeps working (it holds its own copy), and with it a token
/// callback: the callback and its `user_data` stay in use until the client and every outbox
/// opened with it are freed, and are never called after the last of those frees returns.
///
/// Returns at once: a DNS lookup or TCP connect an interrupt left behind is not waited for. It
/// ends by itself within `timeouts.connectMs` (a connect) or the system resolver's timeouts (a
/// lookup), using nothing this frees, but running the library's code: a host that unloads the
/// library (`dlclose`, `FreeLibrary`) must wait that long first (see `ius_client_interrupt`).
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
