//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpora.
//!
//! Each takes arbitrary bytes, feeds them to one parser or C entry point, and asserts what the
//! library promises about hostile input beyond "no panic": a rejection names a field, a secret is
//! never echoed, a wait is bounded, an id can never become a path segment of its own, an
//! out-parameter is always defined. A failed assertion is a crash to the fuzzer.
//!
//! Compiled only for the crate's own tests and with the `fuzzing` feature (which `fuzz/` turns
//! on); it is not part of the public API.

use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::OnceLock;
use std::time::Duration;

use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use crate::pipeline::Response;
use crate::{ApiVersion, Error, Route, Target, UserStatusPatch};

/// A fuzz target's entry point: arbitrary bytes in, a panic when an invariant fails.
pub type Entry = fn(&[u8]);

/// Every target: its name (the folder of its corpus, the binary in `fuzz/`) and its entry point.
/// A new target is a row here, a `[[bin]]` in `fuzz/Cargo.toml` and a one-line file in
/// `fuzz/fuzz_targets/`; a new C function is a row of its area's call table ([`C_API_CALLS`],
/// [`C_RESOURCE_CALLS`], [`C_OUTBOX_CALLS`]).
pub const TARGETS: &[(&str, Entry)] = &[
    ("patch_json", patch_json),
    ("target_json", target_json),
    ("route", route),
    ("config_json", config_json),
    ("graph_response", graph_response),
    ("retry_after", retry_after),
    ("token_response", token_response),
    ("c_api", c_api),
    ("c_bulk", c_bulk),
    ("c_resource", c_resource),
    ("c_error_json", c_error_json),
    #[cfg(feature = "outbox")]
    ("c_outbox", c_outbox),
];

/// The longest wait any parsed value may ask for (the library's duration limit, one day).
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// A patch as JSON text: parsed, it round-trips through the wire form; rejected, it names a field.
pub fn patch_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match UserStatusPatch::from_json(text) {
        Ok(patch) => {
            let wire = patch.to_json();
            let again = std::str::from_utf8(&wire)
                .ok()
                .and_then(|wire| UserStatusPatch::from_json(wire).ok());
            assert_eq!(again.as_ref(), Some(&patch), "the wire form parses back");
        }
        Err(err) => assert_names_a_field(&err),
    }
}

/// `target_json` through the C entry point: see [`c_api`]; here the whole input is the target.
pub fn target_json(data: &[u8]) {
    let target = c_string(data);
    update_at(target.as_ptr(), c"{\"devicesCount\":1}".as_ptr());
}

/// A route string, a certificate id and two ids: a parsed route builds a URL whose ids stay one
/// percent-encoded segment each, never `.` or `..`.
pub fn route(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let route = parts.next().unwrap_or_default();
    let certificate = parts.next();
    let configuration = parts.next().unwrap_or("cfg");
    let status = parts.next().unwrap_or("status");
    let route = match Route::parse(route, certificate) {
        Ok(route) => route,
        Err(err) => return assert_names_a_field(&err),
    };
    let target = Target::with_route(configuration, route, status);
    for version in [ApiVersion::Beta, ApiVersion::V1_0] {
        let mut url = String::new();
        match target.write_url(&mut url, version) {
            Ok(()) => {
                assert!(url.starts_with('/'), "{url}");
                for segment in url.split('/').skip(1) {
                    assert!(
                        !segment.is_empty() && segment != "." && segment != "..",
                        "segment {segment:?} in {url}"
                    );
                    assert!(
                        segment
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && !b"?#/\\".contains(&b)),
                        "unencoded byte in {url}"
                    );
                }
            }
            Err(err) => assert_names_a_field(&err),
        }
    }
}

/// `config_json` through `ius_client_new`: see [`c_api`]; here the whole input is the config.
pub fn config_json(data: &[u8]) {
    client_new(&c_string(data));
}

/// A response as `status` (two bytes) then header lines, a blank line and the body: the error or
/// entity built from it never panics, keeps at most 4 KiB of a foreign body and a bounded wait.
pub fn graph_response(data: &[u8]) {
    let Some((status, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 200 + u16::from_be_bytes(*status) % 400;
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (&rest[..0], rest),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    let response = Response {
        status,
        headers,
        body: body.to_vec(),
        client_request_id: "fuzz".into(),
        attempts: 1,
        waited: std::time::Duration::ZERO,
        retry_stopped: None,
        redirected_to_get: false,
        earlier_outcome_unknown: false,
    };
    if status < 300 {
        match crate::response::entity(&response) {
            Ok(entity) => drop(serde_json::to_string(&entity).expect("an entity serializes")),
            Err(err) => assert!(matches!(err, Error::UnexpectedResponse { .. }), "{err:?}"),
        }
    }
    let err = crate::response::graph_error(response);
    let graph = err.graph().expect("a 4xx/5xx is a Graph error");
    assert!(
        graph
            .raw_body
            .as_ref()
            .is_none_or(|raw| raw.len() <= 3 * 4096)
    );
    assert!(graph.retry_after.is_none_or(|wait| wait <= LONGEST_WAIT));
    drop(err.to_string());
}

/// A `Retry-After` value: any wait it yields is at most a day, whichever form it takes.
pub fn retry_after(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(wait) = crate::retry::parse_retry_after(text) {
        assert!(wait <= LONGEST_WAIT, "{text:?} -> {wait:?}");
    }
}

/// A token endpoint answer: `status` (two bytes) then the body. The client secret never appears
/// in the error, whatever the service echoes, and neither does a token from a 200 body.
pub fn token_response(data: &[u8]) {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 200 + u16::from_be_bytes(*status) % 400;
    let body = String::from_utf8_lossy(body);
    match crate::auth::read_token_answer(status, &body) {
        Ok(fresh) => assert!(!fresh.token.secret().is_empty()),
        Err(err) => {
            let shown = format!("{err} {err:?}");
            let secret = crate::auth::FUZZ_SECRET;
            assert!(!shown.contains(secret), "the secret was echoed: {shown}");
            if status == 200
                && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&body)
                && let Some(serde_json::Value::String(token)) = map.get("access_token")
                && token.len() >= 8
            {
                assert!(
                    !shown.contains(token.as_str()),
                    "a token was echoed: {shown}"
                );
            }
        }
    }
}

/// One input of a C-API target: its bytes split at NUL into C strings, and its first four bytes
/// as a number (a status, a log level).
pub struct Args {
    parts: Vec<CString>,
    number: u32,
}

impl Args {
    fn new(data: &[u8]) -> Args {
        Args {
            parts: data.split(|b| *b == 0).map(c_string).collect(),
            number: data
                .first_chunk::<4>()
                .map_or(0, |b| u32::from_le_bytes(*b)),
        }
    }

    /// Part `n`, empty when the input has fewer.
    fn str(&self, n: usize) -> &CStr {
        self.parts.get(n).map_or(c"", CString::as_c_str)
    }

    /// Part `n` as an argument: NULL when the part is the single byte 0xFF (never valid UTF-8,
    /// so nothing else is lost), so NULL arguments are fuzzed too.
    fn ptr(&self, n: usize) -> *const c_char {
        let part = self.str(n);
        if part.to_bytes() == [0xFF] {
            std::ptr::null()
        } else {
            part.as_ptr()
        }
    }
}

/// A C function (or a few that go together) called with one input's [`Args`]; each asserts what
/// its function promises.
pub type Call = fn(&Args);

/// Runs every call of `calls` on the input.
fn run_calls(calls: &[Call], data: &[u8]) {
    let args = Args::new(data);
    for call in calls {
        call(&args);
    }
}

/// The client and update calls, on parts 0 config, 1 target, 2 patch, 3 and 4 the direct path's
/// two ids; a log callback at level `number % 7` (0 and 6 are refused) is installed meanwhile
/// and must never receive the token.
pub const C_API_CALLS: &[Call] = &[
    // No call is in progress: the interrupt ends none, and the calls below are not affected.
    |_| {
        // SAFETY: NULL is allowed and does nothing; the client is live.
        unsafe {
            ius_client_interrupt(std::ptr::null());
            ius_client_interrupt(fuzz_client());
        }
    },
    |_| {
        // The shared client's metrics: a JSON object with a count for every operation; a NULL
        // client is refused with every out-parameter defined.
        let (mut metrics, mut error) = (sentinel(), sentinel());
        // SAFETY: the client is live, the out-pointers writable.
        let code = unsafe { ius_client_metrics(fuzz_client(), &mut metrics, &mut error) };
        assert_eq!(code, 0, "metrics of a live client");
        assert!(!metrics.is_null() && error.is_null());
        // SAFETY: a string this library returned.
        let text = unsafe { CStr::from_ptr(metrics) }.to_str().expect("UTF-8");
        let value: serde_json::Value = serde_json::from_str(text).expect("metrics JSON");
        assert!(value["requests"]["update"]["sent"].is_u64(), "{text}");
        check_outputs(code, metrics, error);
        let (mut metrics, mut error) = (sentinel(), sentinel());
        // SAFETY: NULL is refused; the out-pointers are writable.
        let code = unsafe { ius_client_metrics(std::ptr::null(), &mut metrics, &mut error) };
        assert_ne!(code, 0, "a NULL client is refused");
        check_outputs(code, metrics, error);
    },
    |a| client_new(a.str(0)),
    |a| client_new_with_token_callback(a.str(0)),
    |a| update_at(a.ptr(1), a.ptr(2)),
    |a| {
        let (mut response, mut error) = (sentinel(), sentinel());
        // SAFETY: the client is live, the strings NULL or NUL-terminated, the out-pointers
        // writable.
        let code = unsafe {
            ius_update_user_status(
                fuzz_client(),
                a.ptr(3),
                a.ptr(4),
                a.ptr(2),
                &mut response,
                &mut error,
            )
        };
        check_outputs(code, response, error);
    },
    |a| {
        // SAFETY: ius_status_name returns a static NUL-terminated string for any value.
        let name = unsafe { CStr::from_ptr(ius_status_name(a.number)) };
        assert!(!name.to_bytes().is_empty());
        // SAFETY: as above, ius_version's string is static.
        let version = unsafe { CStr::from_ptr(ius_version()) };
        assert_eq!(version.to_bytes(), env!("CARGO_PKG_VERSION").as_bytes());
        // SAFETY: NULL is allowed and does nothing.
        unsafe {
            ius_string_free(std::ptr::null_mut());
            ius_client_free(std::ptr::null_mut());
        }
    },
];

/// The C entry points of a client fed arbitrary bytes: see [`C_API_CALLS`]. Every out-parameter
/// is NULL or a string of error JSON naming a status, and neither an error nor a log message
/// holds the token.
pub fn c_api(data: &[u8]) {
    let level = Args::new(data).number % 7;
    with_log_callback(level, || run_calls(C_API_CALLS, data));
}

/// `ius_update_user_statuses` with part 0 as `items_json`: `OK` or `PARTIAL` give one result per
/// item of the array, each naming a status; any other status no results and an error JSON.
pub fn c_bulk(data: &[u8]) {
    let args = Args::new(data);
    let (mut results, mut error) = (sentinel(), sentinel());
    // SAFETY: the client is live, the string NULL or NUL-terminated, the out-pointers writable.
    let code =
        unsafe { ius_update_user_statuses(fuzz_client(), args.ptr(0), &mut results, &mut error) };
    assert_ne!(results, sentinel(), "out_results_json was left unset");
    assert_ne!(error, sentinel(), "out_error_json was left unset");
    const OK: u32 = 0;
    const PARTIAL: u32 = 107;
    if code != OK && code != PARTIAL {
        return check_outputs(code, results, error);
    }
    assert!(!results.is_null(), "results on {code}");
    assert_eq!(
        error.is_null(),
        code == OK,
        "an error JSON only when PARTIAL"
    );
    // SAFETY: strings this library returned.
    let results_json = unsafe { CStr::from_ptr(results) }.to_str().expect("UTF-8");
    assert!(
        !results_json.contains(FUZZ_TOKEN),
        "the token: {results_json}"
    );
    let results_value: serde_json::Value = serde_json::from_str(results_json).expect("JSON");
    let items: serde_json::Value =
        serde_json::from_str(args.str(0).to_str().expect("accepted as UTF-8")).expect("JSON");
    let (results_array, items_array) = (results_value.as_array(), items.as_array());
    assert_eq!(
        results_array.map(Vec::len),
        items_array.map(Vec::len),
        "one result per item: {results_json}"
    );
    for result in results_array.into_iter().flatten() {
        let status = result["status"]
            .as_str()
            .expect("each result names a status");
        assert_eq!(status == "OK", result.get("error").is_none(), "{result}");
    }
    if code == PARTIAL {
        check_outputs(code, std::ptr::null_mut(), error);
    }
    // SAFETY: a string this library returned, freed once.
    unsafe { ius_string_free(results) };
}

/// Get, list, create and delete on parts 0 target, 1 collection, 2 list options, 3 entity.
pub const C_RESOURCE_CALLS: &[Call] = &[
    |a| {
        let (mut response, mut error) = (sentinel(), sentinel());
        // SAFETY: the client is live, the strings NULL or NUL-terminated, the out-pointers
        // writable.
        let code =
            unsafe { ius_get_user_status(fuzz_client(), a.ptr(0), &mut response, &mut error) };
        check_outputs(code, response, error);
    },
    |a| {
        let (mut response, mut error) = (sentinel(), sentinel());
        // SAFETY: as above.
        let code = unsafe {
            ius_list_user_statuses(fuzz_client(), a.ptr(1), a.ptr(2), &mut response, &mut error)
        };
        check_outputs(code, response, error);
    },
    |a| {
        let (mut response, mut error) = (sentinel(), sentinel());
        // SAFETY: as above.
        let code = unsafe {
            ius_create_user_status(fuzz_client(), a.ptr(1), a.ptr(3), &mut response, &mut error)
        };
        check_outputs(code, response, error);
    },
    |a| {
        let mut error = sentinel();
        // SAFETY: as above.
        let code = unsafe { ius_delete_user_status(fuzz_client(), a.ptr(0), &mut error) };
        check_outputs(code, std::ptr::null_mut(), error);
    },
];

/// The resource calls fed arbitrary bytes: see [`C_RESOURCE_CALLS`].
pub fn c_resource(data: &[u8]) {
    run_calls(C_RESOURCE_CALLS, data);
}

/// `ius_error_json_get` with part 0 as the error JSON and part 1 as the key: on `OK` the value is
/// the key's string, or its JSON text, or NULL when absent or null; on failure it is NULL.
pub fn c_error_json(data: &[u8]) {
    let args = Args::new(data);
    let mut value = sentinel::<c_char>();
    // SAFETY: the strings are NULL or NUL-terminated, the out-pointer writable.
    let code = unsafe { ius_error_json_get(args.ptr(0), args.ptr(1), &mut value) };
    assert_ne!(value, sentinel(), "out_value was left unset");
    if code != 0 {
        assert!(value.is_null(), "no value on failure ({code})");
        return;
    }
    let json: serde_json::Value =
        serde_json::from_str(args.str(0).to_str().expect("accepted as UTF-8")).expect("JSON");
    let key = args.str(1).to_str().expect("accepted as UTF-8");
    let want = match json.get(key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    };
    let got = (!value.is_null()).then(|| {
        // SAFETY: a string this library returned.
        unsafe { CStr::from_ptr(value) }
            .to_str()
            .expect("UTF-8")
            .to_owned()
    });
    assert_eq!(got, want, "{key} of {json}");
    // SAFETY: NULL or a string this library returned, freed once.
    unsafe { ius_string_free(value) };
}
fn client_new(config: &CStr) {
    let (mut client, mut error) = (sentinel::<c_void>(), sentinel());
    // SAFETY: the string is NUL-terminated and the out-pointers writable.
    let code = unsafe { ius_client_new(config.as_ptr(), &mut client, &mut error) };
    if code == 0 {
        assert!(!client.is_null() && error.is_null());
        // SAFETY: a client this call returned, freed once.
        unsafe { ius_client_free(client) };
    } else {
        assert!(client.is_null(), "out_client is NULL on failure");
        check_outputs(code, std::ptr::null_mut(), error);
    }
}

fn update_at(target: *const c_char, patch: *const c_char) {
    let (mut response, mut error) = (sentinel(), sentinel());
    // SAFETY: the client is live, the strings NULL or NUL-terminated, the out-pointers writable.
    let code = unsafe {
        ius_update_user_status_at(fuzz_client(), target, patch, &mut response, &mut error)
    };
    check_outputs(code, response, error);
}

/// `ius_client_new_with_token_callback`: as [`client_new`], with a callback that hands out the
/// fuzz token (never called here: no request is made).
fn client_new_with_token_callback(config: &CStr) {
    unsafe extern "C" fn token(
        _user_data: *mut c_void,
        buffer: *mut c_char,
        len: usize,
        expires_in: *mut i64,
    ) -> i32 {
        let token = FUZZ_TOKEN.as_bytes();
        if len <= token.len() {
            return 1;
        }
        // SAFETY: the library's buffer holds `len` bytes and expires_in is writable.
        unsafe {
            std::ptr::copy_nonoverlapping(token.as_ptr(), buffer.cast::<u8>(), token.len());
            *buffer.add(token.len()) = 0;
            *expires_in = 3600;
        }
        0
    }
    let (mut client, mut error) = (sentinel::<c_void>(), sentinel());
    // SAFETY: the string is NUL-terminated, the callback lives forever, the out-pointers are
    // writable.
    let code = unsafe {
        ius_client_new_with_token_callback(
            config.as_ptr(),
            Some(token),
            std::ptr::null_mut(),
            &mut client,
            &mut error,
        )
    };
    if code == 0 {
        assert!(!client.is_null() && error.is_null());
        // SAFETY: a client this call returned, freed once.
        unsafe { ius_client_free(client) };
    } else {
        assert!(client.is_null(), "out_client is NULL on failure");
        check_outputs(code, std::ptr::null_mut(), error);
    }
}

/// What the log callback of [`with_log_callback`] saw that it must not have: a message with the
/// token.
static LOGGED_TOKEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Runs `body` with a log callback installed at `level` (an invalid level is refused and
/// installs nothing), then removes it and fails if a message held the token. The callback is the
/// process's: the lock keeps this and the log module's tests apart.
fn with_log_callback(level: u32, body: impl FnOnce()) {
    unsafe extern "C" fn record(_user_data: *mut c_void, _level: u32, message: *const c_char) {
        // SAFETY: the message is NUL-terminated for the duration of the call.
        let message = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        if message.contains(FUZZ_TOKEN) {
            *LOGGED_TOKEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.into_owned());
        }
    }
    let _one_callback = crate::ffi::LOG_CALLBACK_USERS
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // SAFETY: `record` is a valid callback for the whole process; user_data is unused.
    let status = unsafe { ius_set_log_callback(Some(record), std::ptr::null_mut(), level) };
    assert_eq!(
        status == 0,
        (1..=5).contains(&level),
        "level {level}: {status}"
    );
    body();
    // SAFETY: NULL turns logging off.
    unsafe { ius_set_log_callback(None, std::ptr::null_mut(), 0) };
    let leaked = LOGGED_TOKEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    assert!(leaked.is_none(), "a log message held the token: {leaked:?}");
}

#[cfg(feature = "outbox")]
pub use outbox_calls::{C_OUTBOX_CALLS, c_outbox};

#[cfg(feature = "outbox")]
mod outbox_calls {
    use super::*;

    /// The outbox calls, on parts 0 options, 1 target, 2 patch, 3 items: open (with the options,
    /// on a file of its own) and free; enqueue and enqueue_many on one outbox that lives as long
    /// as the process, whose pending count a refused report never changes; interrupt (with no
    /// call in progress: the flush after it is not affected), stats, flush (to a port nobody
    /// listens on: its `stoppedBy` null or a known cause) and take_failed; clear_hold (NULL
    /// refused; the hold the offline flush left ends).
    pub const C_OUTBOX_CALLS: &[Call] = &[
        |a| {
            let path = fuzz_dir().join("options.db");
            let path = CString::new(path.to_str().expect("a UTF-8 path")).expect("no NUL");
            let (mut outbox, mut error) = (sentinel::<c_void>(), sentinel());
            // SAFETY: the client is live, the strings NULL or NUL-terminated, the out-pointers
            // writable.
            let code = unsafe {
                ius_outbox_open(
                    fuzz_client(),
                    path.as_ptr(),
                    a.ptr(0),
                    &mut outbox,
                    &mut error,
                )
            };
            if code == 0 {
                assert!(!outbox.is_null() && error.is_null());
            } else {
                assert!(outbox.is_null(), "out_outbox is NULL on failure");
                check_outputs(code, std::ptr::null_mut(), error);
            }
            // SAFETY: NULL or an outbox this call returned, freed once.
            unsafe { ius_outbox_free(outbox) };
        },
        |a| {
            let before = pending();
            let mut error = sentinel();
            // SAFETY: the outbox is live, the strings NULL or NUL-terminated, the out-pointer
            // writable.
            let code = unsafe { ius_outbox_enqueue(fuzz_outbox(), a.ptr(1), a.ptr(2), &mut error) };
            let after = pending();
            if code == 0 {
                assert!(
                    after >= before && after <= before + 1,
                    "{before} -> {after}"
                );
            } else {
                assert_eq!(before, after, "a refused report stored nothing ({code})");
            }
            check_outputs(code, std::ptr::null_mut(), error);
        },
        |a| {
            let before = pending();
            let mut error = sentinel();
            // SAFETY: as above.
            let code = unsafe { ius_outbox_enqueue_many(fuzz_outbox(), a.ptr(3), &mut error) };
            let after = pending();
            if code != 0 {
                assert_eq!(before, after, "a refused batch stored nothing ({code})");
            }
            assert!(after >= before, "{before} -> {after}");
            check_outputs(code, std::ptr::null_mut(), error);
        },
        |_| {
            // No call is in progress: the interrupt ends none, and the flush below runs whole.
            // SAFETY: NULL is allowed and does nothing; the outbox is live.
            unsafe {
                ius_outbox_interrupt(std::ptr::null_mut());
                ius_outbox_interrupt(fuzz_outbox());
            }
            let report = json_of("flush", ius_outbox_flush);
            assert_eq!(report["pending"].as_u64(), Some(pending()), "{report}");
            let why = &report["stoppedBy"];
            assert!(
                why.is_null() || crate::FlushStop::ALL.iter().any(|stop| why == stop.key()),
                "{report}"
            );
            assert!(json_of("take_failed", ius_outbox_take_failed).is_array());
        },
        |_| {
            // The hold an offline flush left ends at ius_outbox_clear_hold; a NULL outbox is
            // refused with the error JSON set.
            let (mut error, mut cleared) = (sentinel(), -1);
            // SAFETY: NULL is refused; the out-pointers are writable.
            let code =
                unsafe { ius_outbox_clear_hold(std::ptr::null_mut(), &mut cleared, &mut error) };
            assert_ne!(code, 0, "a NULL outbox");
            assert_eq!(cleared, 0, "out_cleared defined on a failure");
            check_outputs(code, std::ptr::null_mut(), error);
            let (mut error, mut cleared) = (sentinel(), -1);
            // SAFETY: the outbox is live, the out-pointers writable.
            let code = unsafe { ius_outbox_clear_hold(fuzz_outbox(), &mut cleared, &mut error) };
            assert_eq!(code, 0, "clear_hold of a live outbox");
            assert!(matches!(cleared, 0 | 1), "out_cleared {cleared}");
            check_outputs(code, std::ptr::null_mut(), error);
            // Cleared now: a second clear finds no hold.
            let (mut error, mut cleared) = (sentinel(), -1);
            // SAFETY: as above.
            let code = unsafe { ius_outbox_clear_hold(fuzz_outbox(), &mut cleared, &mut error) };
            assert_eq!((code, cleared), (0, 0), "a second clear_hold");
            check_outputs(code, std::ptr::null_mut(), error);
            let stats = json_of("stats", ius_outbox_stats);
            assert!(
                stats["heldUntil"].is_null() && stats["holdSecondsLeft"].is_null(),
                "{stats}"
            );
        },
    ];

    /// The outbox calls fed arbitrary bytes: see [`C_OUTBOX_CALLS`].
    pub fn c_outbox(data: &[u8]) {
        run_calls(C_OUTBOX_CALLS, data);
    }

    type Getter = unsafe extern "C" fn(*mut c_void, *mut *mut c_char, *mut *mut c_char) -> u32;

    /// What `call` (flush, stats, take_failed) writes, as JSON; it must succeed.
    fn json_of(what: &str, call: Getter) -> serde_json::Value {
        let (mut out, mut error) = (sentinel(), sentinel());
        // SAFETY: the outbox is live, the out-pointers writable.
        let code = unsafe { call(fuzz_outbox(), &mut out, &mut error) };
        assert_eq!(code, 0, "{what} failed");
        assert!(!out.is_null() && error.is_null(), "{what}");
        // SAFETY: a string this library returned.
        let text = unsafe { CStr::from_ptr(out) }.to_str().expect("UTF-8");
        let value = serde_json::from_str(text).expect("JSON");
        // SAFETY: freed once.
        unsafe { ius_string_free(out) };
        value
    }

    /// The shared outbox's pending user statuses.
    fn pending() -> u64 {
        json_of("stats", ius_outbox_stats)["pending"]
            .as_u64()
            .expect("pending is a count")
    }

    /// A folder for this process's outbox files: under `IUS_FUZZ_DIR` when set (`fuzz/run.sh`
    /// and `fuzz/replay.sh` set it and remove it), else in memory (`/dev/shm`) where there is
    /// one, so each commit's fsync costs nothing.
    fn fuzz_dir() -> &'static std::path::Path {
        static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
        DIR.get_or_init(|| {
            let shm = std::path::Path::new("/dev/shm");
            let base = if let Some(dir) = std::env::var_os("IUS_FUZZ_DIR") {
                dir.into()
            } else if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            let dir = base.join(format!("ius-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("the fuzz folder");
            dir
        })
    }

    /// Removes this process's outbox files (the test replaying the corpora does, at its end).
    #[cfg(test)]
    pub(super) fn remove_fuzz_dir() {
        let _ = std::fs::remove_dir_all(fuzz_dir());
    }

    /// One outbox for every input, on [`fuzz_client`].
    fn fuzz_outbox() -> *mut c_void {
        struct Handle(*mut c_void);
        // SAFETY: an ius_outbox may be used from any thread.
        unsafe impl Send for Handle {}
        // SAFETY: as above.
        unsafe impl Sync for Handle {}
        static OUTBOX: OnceLock<Handle> = OnceLock::new();
        OUTBOX
            .get_or_init(|| {
                let path = fuzz_dir().join("outbox.db");
                let path = CString::new(path.to_str().expect("a UTF-8 path")).expect("no NUL");
                let (mut outbox, mut error) = (std::ptr::null_mut(), std::ptr::null_mut());
                // SAFETY: as in the open call above.
                let code = unsafe {
                    ius_outbox_open(
                        fuzz_client(),
                        path.as_ptr(),
                        std::ptr::null(),
                        &mut outbox,
                        &mut error,
                    )
                };
                assert_eq!(code, 0, "the fuzz outbox opens");
                Handle(outbox)
            })
            .0
    }

    unsafe extern "C" {
        fn ius_outbox_open(
            client: *const c_void,
            path: *const c_char,
            options_json: *const c_char,
            out_outbox: *mut *mut c_void,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        fn ius_outbox_enqueue(
            outbox: *mut c_void,
            target_json: *const c_char,
            patch_json: *const c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        fn ius_outbox_enqueue_many(
            outbox: *mut c_void,
            items_json: *const c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        fn ius_outbox_flush(
            outbox: *mut c_void,
            out_report_json: *mut *mut c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        fn ius_outbox_stats(
            outbox: *mut c_void,
            out_stats_json: *mut *mut c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        fn ius_outbox_take_failed(
            outbox: *mut c_void,
            out_failed_json: *mut *mut c_char,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        fn ius_outbox_interrupt(outbox: *mut c_void);
        fn ius_outbox_clear_hold(
            outbox: *mut c_void,
            out_cleared: *mut std::ffi::c_int,
            out_error_json: *mut *mut c_char,
        ) -> u32;
        fn ius_outbox_free(outbox: *mut c_void);
    }
}

/// A failed call leaves no response and an error JSON object whose `status` names `code`; a
/// successful one no error. Frees both.
fn check_outputs(code: u32, response: *mut c_char, error: *mut c_char) {
    assert_ne!(response, sentinel(), "out_response_json was left unset");
    assert_ne!(error, sentinel(), "out_error_json was left unset");
    if code == 0 {
        assert!(error.is_null());
    } else {
        assert!(response.is_null(), "no response on failure");
        assert!(!error.is_null(), "an error JSON on failure");
        // SAFETY: a string this library returned.
        let json = unsafe { CStr::from_ptr(error) }.to_str().expect("UTF-8");
        let value: serde_json::Value = serde_json::from_str(json).expect("error JSON parses");
        // SAFETY: ius_status_name returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(ius_status_name(code)) };
        assert_eq!(value["status"].as_str(), name.to_str().ok(), "{json}");
        assert!(value["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(!json.contains(FUZZ_TOKEN), "the token was echoed: {json}");
    }
    // SAFETY: NULL or strings this library returned, each freed once.
    unsafe {
        ius_string_free(response);
        ius_string_free(error);
    }
}

/// The token of [`fuzz_client`]: it must never appear in an error.
const FUZZ_TOKEN: &str = "fuzz-token-5e1f";

/// One client for every input: a loopback port nobody listens on, no retries, no proxy, so a
/// valid input costs one refused connection.
fn fuzz_client() -> *const c_void {
    struct Handle(*mut c_void);
    // SAFETY: an ius_client may be used from any thread.
    unsafe impl Send for Handle {}
    // SAFETY: as above.
    unsafe impl Sync for Handle {}
    static CLIENT: OnceLock<Handle> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map_or(9, |addr| addr.port());
            let config = c_string(
                format!(
                    r#"{{"baseUrl":"http://127.0.0.1:{port}","accessToken":"{FUZZ_TOKEN}","useEnvProxy":false,"retry":{{"maxRetries":0}},"timeouts":{{"connectMs":1000,"totalMs":2000}}}}"#
                )
                .as_bytes(),
            );
            let (mut client, mut error) = (std::ptr::null_mut(), std::ptr::null_mut());
            // SAFETY: as in client_new.
            let code = unsafe { ius_client_new(config.as_ptr(), &mut client, &mut error) };
            assert_eq!(code, 0, "the fuzz client builds");
            Handle(client)
        })
        .0
}

/// What an out-parameter holds before the call: a value no call may leave behind.
fn sentinel<T>() -> *mut T {
    std::ptr::dangling_mut()
}

/// `bytes` up to its first NUL, as a C string.
fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("no NUL before end")
}

fn assert_names_a_field(err: &Error) {
    match err {
        Error::InvalidInput { field, reason } | Error::Config { field, reason } => {
            assert!(!field.is_empty() && !reason.is_empty(), "{err:?}");
        }
        other => panic!("a rejection must be InvalidInput or Config, got {other:?}"),
    }
}

// The C ABI exactly as C calls it (the definitions are in `ffi`); statuses as their raw values.
unsafe extern "C" {
    fn ius_client_new(
        config_json: *const c_char,
        out_client: *mut *mut c_void,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_client_free(client: *mut c_void);
    fn ius_client_interrupt(client: *const c_void);
    fn ius_client_metrics(
        client: *const c_void,
        out_metrics_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_update_user_status(
        client: *const c_void,
        device_configuration_id: *const c_char,
        user_status_id: *const c_char,
        patch_json: *const c_char,
        out_response_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_update_user_status_at(
        client: *const c_void,
        target_json: *const c_char,
        patch_json: *const c_char,
        out_response_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_string_free(s: *mut c_char);
    fn ius_status_name(status: u32) -> *const c_char;
    fn ius_version() -> *const c_char;
    fn ius_client_new_with_token_callback(
        config_json: *const c_char,
        callback: Option<unsafe extern "C" fn(*mut c_void, *mut c_char, usize, *mut i64) -> i32>,
        user_data: *mut c_void,
        out_client: *mut *mut c_void,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_set_log_callback(
        callback: Option<unsafe extern "C" fn(*mut c_void, u32, *const c_char)>,
        user_data: *mut c_void,
        max_level: u32,
    ) -> u32;
    fn ius_update_user_statuses(
        client: *const c_void,
        items_json: *const c_char,
        out_results_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_get_user_status(
        client: *const c_void,
        target_json: *const c_char,
        out_response_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_list_user_statuses(
        client: *const c_void,
        collection_json: *const c_char,
        options_json: *const c_char,
        out_response_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_create_user_status(
        client: *const c_void,
        collection_json: *const c_char,
        entity_json: *const c_char,
        out_response_json: *mut *mut c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_delete_user_status(
        client: *const c_void,
        target_json: *const c_char,
        out_error_json: *mut *mut c_char,
    ) -> u32;
    fn ius_error_json_get(
        error_json: *const c_char,
        key: *const c_char,
        out_value: *mut *mut c_char,
    ) -> u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function the C header declares is called by a fuzz target: declared in an
    /// `extern "C"` block of this file (a new C function is a row of its area's call table).
    #[test]
    fn every_exported_function_is_fuzzed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let header = std::fs::read_to_string(root.join("include/intune_user_status.h")).unwrap();
        let source = std::fs::read_to_string(root.join("src/fuzzing.rs")).unwrap();
        // Every `ius_name(` in the header: a function (callback typedefs are `(*ius_name)(`).
        let declared: std::collections::BTreeSet<&str> = header
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '('))
            .filter_map(|word| word.split_once('(').map(|(name, _)| name))
            .filter(|name| name.starts_with("ius_"))
            .collect();
        assert!(declared.len() >= 20, "{declared:?}");
        let missing: Vec<&&str> = declared
            .iter()
            .filter(|name| !source.contains(&format!("fn {name}(")))
            .collect();
        assert!(
            missing.is_empty(),
            "not fuzzed: {missing:?}; add each to a call table and an extern block here"
        );
    }

    /// Every corpus file of every target (seeds and the inputs of crashes found, kept as
    /// regressions) through the same entry points as the fuzzer, without it.
    #[test]
    fn every_fuzz_corpus_input_passes_its_target() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (name, entry) in TARGETS {
            let mut count = 0;
            for folder in ["corpus", "regressions"] {
                let Ok(files) = std::fs::read_dir(root.join(folder).join(name)) else {
                    continue;
                };
                for file in files {
                    let path = file.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| entry(&data));
                    assert!(outcome.is_ok(), "{name}: {} fails", path.display());
                    count += 1;
                }
            }
            assert!(count > 0, "{name} has no corpus");
        }
        // The fuzz crate builds a binary for each target, and for nothing else.
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let binaries: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|bin| bin.lines().find_map(|l| l.strip_prefix("name = ")))
            .map(|name| name.trim_matches('"'))
            .collect();
        let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
        assert_eq!(binaries, names, "fuzz/Cargo.toml's [[bin]]s");
        #[cfg(feature = "outbox")]
        outbox_calls::remove_fuzz_dir();
    }
}
