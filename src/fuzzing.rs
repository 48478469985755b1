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
pub const TARGETS: [(&str, Entry); 8] = [
    ("patch_json", patch_json),
    ("target_json", target_json),
    ("route", route),
    ("config_json", config_json),
    ("graph_response", graph_response),
    ("retry_after", retry_after),
    ("token_response", token_response),
    ("c_api", c_api),
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
    let patch = c_string(br#"{"devicesCount":1}"#);
    update_at(&target, &patch);
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

/// The C entry points fed arbitrary bytes, split at NUL into config, target, patch and two ids:
/// `ius_client_new`, `ius_update_user_status_at`, `ius_update_user_status` and
/// `ius_status_name`. Every out-parameter is NULL or a string of error JSON naming a status.
pub fn c_api(data: &[u8]) {
    let mut parts = data.split(|b| *b == 0).map(c_string);
    let config = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let patch = parts.next().unwrap_or_default();
    let configuration = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    client_new(&config);
    update_at(&target, &patch);
    let (mut response, mut error) = (sentinel(), sentinel());
    // SAFETY: the client is live, the strings NUL-terminated, the out-pointers writable.
    let code = unsafe {
        ius_update_user_status(
            fuzz_client(),
            configuration.as_ptr(),
            status.as_ptr(),
            patch.as_ptr(),
            &mut response,
            &mut error,
        )
    };
    check_outputs(code, response, error);
    let raw = data
        .first_chunk::<4>()
        .map_or(0, |b| u32::from_le_bytes(*b));
    // SAFETY: ius_status_name returns a static NUL-terminated string for any value.
    let name = unsafe { CStr::from_ptr(ius_status_name(raw)) };
    assert!(!name.to_bytes().is_empty());
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

fn update_at(target: &CStr, patch: &CStr) {
    let (mut response, mut error) = (sentinel(), sentinel());
    // SAFETY: the client is live, the strings NUL-terminated, the out-pointers writable.
    let code = unsafe {
        ius_update_user_status_at(
            fuzz_client(),
            target.as_ptr(),
            patch.as_ptr(),
            &mut response,
            &mut error,
        )
    };
    check_outputs(code, response, error);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
