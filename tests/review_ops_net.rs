//! Review probes (ops-report / win-net as merged in 7ae0b26): each test asserts what the docs
//! promise and fails on main, showing a defect. Not fixes.
#![cfg(feature = "outbox")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TOKEN;
use intune_user_status::{
    AccessToken, AuthError, Error, FlushReport, FlushStop, Outbox, OutboxOptions, Target,
    TokenProvider, UserStatusPatch,
};
use ius_emulator::Emulator;
use serde_json::json;

fn emulator_with<I: AsRef<str>>(ids: impl IntoIterator<Item = I>) -> Emulator {
    common::emulator_with_statuses(ids)
}

fn folder(name: &str) -> PathBuf {
    common::fresh_folder("review-on", name)
}

/// Gives the emulator's token `good` times, then fails ("vault sealed"); counts its calls.
struct Sealing {
    good: usize,
    calls: Arc<AtomicUsize>,
}

impl TokenProvider for Sealing {
    fn token(&self) -> Result<AccessToken, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.good {
            Ok(AccessToken::new(TOKEN))
        } else {
            Err(AuthError::new("vault sealed").into())
        }
    }
}

/// DEFECT 1. No token at all (a sealed vault, an expired secret): FlushStop::Auth's doc says
/// this is "the credentials were refused", and hold.rs / `clear_hold` / the C docs say such a
/// stop holds every report back (stats' heldUntil) so the next flush does not try again at once.
/// The first-batch no-token path records with `hold: None` (flush.rs), so nothing is held: every
/// flush fetches a token again and logs another WARN, and `heldUntil` stays null, so an
/// operator's `clear-hold` says `cleared:false` about an outbox that is stopped for auth.
#[test]
fn probe_a_flush_with_no_token_holds_the_outbox_as_a_refused_one_does() {
    let ids: Vec<String> = vec!["a".into()];
    let emu = emulator_with(&ids);
    let dir = folder("no-token-hold");
    let calls = Arc::new(AtomicUsize::new(0));
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(Sealing {
            good: 0,
            calls: calls.clone(),
        })
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new()).unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "a"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    let mut report = FlushReport::default();
    let first = outbox.flush_into(&mut report);
    assert!(matches!(first, Err(Error::Auth(_))), "{first:?}");
    assert_eq!(report.stopped_by, Some(FlushStop::Auth));
    let after_first = calls.load(Ordering::SeqCst);
    let stats = outbox.stats().unwrap();
    // Seen failing on main: held_until None, hold_left None.
    assert!(
        stats.held_until.is_some(),
        "an auth stop leaves no hold: {stats:?}"
    );
    let mut again = FlushReport::default();
    let _ = outbox.flush_into(&mut again);
    assert_eq!(
        again.stopped_by,
        Some(FlushStop::Held),
        "the second flush ran again: {again:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after_first,
        "the token source was asked again"
    );
}

/// DEFECT 2 (report lies about the wire). The token source fails after the first batch went
/// out: the second batch's 20 reports never left (no request carried them; the emulator got one
/// `$batch`), yet the report counts them in `sent` (flush.rs: `sent += batch.len() - unsent`,
/// where `unsent` only counts interrupts). LOW: `FlushReport::sent` is documented as "handed to
/// the client to send", which this keeps to the letter; but reports an interrupt stopped before
/// any request carried them are left out of `sent` (they stay due), and these are not (they get
/// a failure and a backoff): the two rules for "no request carried it" disagree. They also make
/// this stop "auth" with a hold and a WARN when the token source failed transiently (defect 4).
#[test]
fn probe_sent_counts_only_reports_a_request_carried() {
    let ids: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    let emu = emulator_with(&ids);
    let dir = folder("sealed-mid-flush");
    let calls = Arc::new(AtomicUsize::new(0));
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(Sealing {
            good: 1,
            calls: calls.clone(),
        })
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new()).unwrap();
    for id in &ids {
        outbox
            .enqueue(
                &Target::new("c1", id.clone()),
                &UserStatusPatch::new().devices_count(1),
            )
            .unwrap();
    }
    let mut report = FlushReport::default();
    let result = outbox.flush_into(&mut report);
    let batches: Vec<usize> = emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body_str()).unwrap()["requests"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    let carried: u64 = batches.iter().map(|&n| n as u64).sum();
    assert_eq!(
        report.stopped_by,
        Some(FlushStop::Auth),
        "{result:?} {report:?}"
    );
    // Seen failing on main: sent 40, carried 20.
    assert_eq!(
        report.sent, carried,
        "report {report:?}, batches on the wire {batches:?}"
    );
}

unsafe extern "C" {
    fn ius_client_new_with_token_callback(
        config_json: *const std::ffi::c_char,
        callback: Option<
            unsafe extern "C" fn(
                *mut std::ffi::c_void,
                *mut std::ffi::c_char,
                usize,
                *mut i64,
            ) -> i32,
        >,
        user_data: *mut std::ffi::c_void,
        out_client: *mut *mut std::ffi::c_void,
        out_error_json: *mut *mut std::ffi::c_char,
    ) -> u32;
    fn ius_client_free(client: *mut std::ffi::c_void);
    fn ius_outbox_open(
        client: *const std::ffi::c_void,
        path: *const std::ffi::c_char,
        options_json: *const std::ffi::c_char,
        out_outbox: *mut *mut std::ffi::c_void,
        out_error_json: *mut *mut std::ffi::c_char,
    ) -> u32;
    fn ius_outbox_flush(
        outbox: *mut std::ffi::c_void,
        out_report_json: *mut *mut std::ffi::c_char,
        out_error_json: *mut *mut std::ffi::c_char,
    ) -> u32;
    fn ius_outbox_free(outbox: *mut std::ffi::c_void);
    fn ius_string_free(s: *mut std::ffi::c_char);
}

/// A token callback with no token (a sealed vault).
unsafe extern "C" fn no_token(
    _: *mut std::ffi::c_void,
    _: *mut std::ffi::c_char,
    _: usize,
    _: *mut i64,
) -> i32 {
    -1
}

/// DEFECT 3 (doc lie, C and CLI). `ius_outbox_flush`'s doc lists `stoppedBy` `"auth"` as "no
/// token, or Graph answered 401 to a whole batch", and `ius outbox PATH flush`'s help says its
/// stoppedBy names auth. A flush with no token returns `IUS_STATUS_AUTH` with
/// `*out_report_json` NULL (src/ffi/outbox.rs writes the report only on OK and CANCELLED), so
/// no C caller (nor the CLI, which prints only the error) ever sees that `stoppedBy`.
#[test]
fn probe_c_flush_with_no_token_reports_stopped_by_auth() {
    use std::ffi::{CStr, CString};
    let emu = emulator_with(&["a".to_string()]);
    let dir = folder("c-no-token");
    let path = dir.join("outbox.db");
    // Enqueue from Rust (the same file), flush from C.
    Outbox::open(
        &common::client(&emu.base_url()),
        &path,
        OutboxOptions::new(),
    )
    .unwrap()
    .enqueue(
        &Target::new("c1", "a"),
        &UserStatusPatch::new().devices_count(1),
    )
    .unwrap();
    let config = CString::new(json!({ "baseUrl": emu.base_url() }).to_string()).unwrap();
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let (mut client, mut outbox) = (std::ptr::null_mut(), std::ptr::null_mut());
    let mut error = std::ptr::null_mut();
    let mut report = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated inputs, writable outputs; each string freed once.
    let (status, report_json, error_json) = unsafe {
        assert_eq!(
            ius_client_new_with_token_callback(
                config.as_ptr(),
                Some(no_token),
                std::ptr::null_mut(),
                &mut client,
                &mut error,
            ),
            0
        );
        assert_eq!(
            ius_outbox_open(
                client,
                c_path.as_ptr(),
                std::ptr::null(),
                &mut outbox,
                &mut error
            ),
            0
        );
        let status = ius_outbox_flush(outbox, &mut report, &mut error);
        let read = |s: *mut std::ffi::c_char| {
            (!s.is_null()).then(|| CStr::from_ptr(s).to_string_lossy().into_owned())
        };
        let (r, e) = (read(report), read(error));
        ius_string_free(report);
        ius_string_free(error);
        ius_outbox_free(outbox);
        ius_client_free(client);
        (status, r, e)
    };
    // Seen failing on main: status 100 (AUTH), report NULL.
    let report_json = report_json.unwrap_or_else(|| {
        panic!("no report JSON, so no stoppedBy: status {status}, error {error_json:?}")
    });
    let value: serde_json::Value = serde_json::from_str(&report_json).unwrap();
    assert_eq!(value["stoppedBy"], "auth", "{report_json}");
}

/// DEFECT 4 (stoppedBy and WARN lie: "auth" when offline). A client-secret agent whose network
/// is down (the token endpoint refuses the connection: no answer at all) runs a flush: nothing
/// refused its credentials, Graph was simply unreachable, which `FlushStop::Offline` names. The
/// flush's no-token path (flush.rs: every result `e.auth().is_some()`) takes any token-fetch
/// failure, a transient network one included, as "auth", and logs at WARN "the credentials
/// were refused": the operator is told to rotate a secret that is fine.
#[test]
fn probe_a_flush_whose_token_endpoint_is_unreachable_says_offline_not_auth() {
    let logs = common::capture_logs();
    let emu = emulator_with(&["a".to_string()]);
    let dir = folder("token-offline");
    // A loopback port nobody listens on: connection refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .credential(
            intune_user_status::ClientSecretCredential::new(
                "contoso.onmicrosoft.com",
                "app-id",
                "s3cret-7f2e",
            )
            .authority_host(format!("http://{closed}")),
        )
        .retry_policy(
            intune_user_status::RetryPolicy::default()
                .max_retries(0)
                .base_delay(std::time::Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let outbox = Outbox::open(&client, dir.join("outbox.db"), OutboxOptions::new()).unwrap();
    outbox
        .enqueue(
            &Target::new("c1", "a"),
            &UserStatusPatch::new().devices_count(1),
        )
        .unwrap();
    let mut report = FlushReport::default();
    let result = outbox.flush_into(&mut report);
    let warned: Vec<String> = logs
        .text()
        .lines()
        .filter(|line| line.contains("token-offline") && line.contains("credentials were refused"))
        .map(str::to_owned)
        .collect();
    // Seen failing on main: Some(Auth), and a WARN "the credentials were refused".
    assert_eq!(
        report.stopped_by,
        Some(FlushStop::Offline),
        "{result:?} {report:?} WARN: {warned:?}"
    );
    assert!(warned.is_empty(), "{warned:?}");
}
