//! The update calls: parse the C arguments, call [`Client::update_user_status_with`], write the
//! result.

use std::ffi::c_char;

use super::client::{client_ref, ius_client};
use super::error::FfiError;
use super::status::ius_status;
use super::strings::{arg_str, to_c_string, write_out};
use super::target::target_from_json;
use crate::patch::ParseError;
use crate::{CallOptions, Target, UpdateOutcome, UserStatusPatch};

/// Updates the user status at the direct path
/// `/deviceManagement/deviceConfigurations/{device_configuration_id}/userStatuses/{user_status_id}`
/// with `patch_json`, a JSON object of deviceConfigurationUserStatus properties
/// (`userDisplayName`, `devicesCount`, `status`, `lastReportedDateTime`, `userPrincipalName`,
/// optionally `id` and `@odata.type`), e.g. `{"status":"compliant","devicesCount":3}`.
///
/// The ids are sent percent-encoded as one path segment each. The patch is checked (names, types,
/// ranges, dates) before anything is sent.
///
/// Ownership: every input is borrowed, NUL-terminated UTF-8, for the call only. On success
/// `*out_response_json` (if `out_response_json` is not NULL) receives the updated object as JSON
/// when Graph returned it (200) or the client fetched it after a 204 (`fetchAfterNoContent`), else
/// NULL (Graph answered 204); `*out_error_json` (if not NULL) is set to NULL. On failure
/// `*out_response_json` (if not NULL) is NULL and `*out_error_json` (if not NULL) receives
/// `{"status":"...","message":"...","field":...,"httpStatus":...,"code":...,"requestId":...,
/// "clientRequestId":...,"retryAfterSeconds":...,"retryStopped":...,"attempts":...}` with only
/// the keys that apply (`retryStopped`: why retrying stopped before the retries ran out, e.g. a
/// `Retry-After` past `retry.maxDelayMs`; `attempts`: requests actually sent, retries included). Both out-parameters are set to NULL
/// at entry, so after any return each holds NULL or a string the caller owns (a pointer left
/// from an earlier call is never kept). Free every returned string with `ius_string_free`.
///
/// Returns `IUS_STATUS_OK` or the failure's status: `NULL_ARGUMENT`, `INVALID_UTF8`,
/// `INVALID_JSON`, `INVALID_INPUT` (nothing was sent), or `AUTH`, `GRAPH`, `THROTTLED`,
/// `UNEXPECTED_RESPONSE`, `TIMEOUT`, `NETWORK`, `TLS`, `CANCELLED` (`ius_client_interrupt`).
/// Thread safety: may be called from many threads at once with the same client. Blocks until
/// Graph answers, the request timeout expires or `ius_client_interrupt` is called.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_update_user_status(
    client: *const ius_client,
    device_configuration_id: *const c_char,
    user_status_id: *const c_char,
    patch_json: *const c_char,
    out_response_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_response_json], {
        // SAFETY (all four): each pointer is NULL or valid for the call, per the contract.
        let client = unsafe { client_ref(client) }?;
        // Watched from the entry: an interrupt while the arguments are read ends the call.
        let watch = client.watch(&CallOptions::new());
        let configuration = unsafe { arg_str(device_configuration_id, "device_configuration_id") }?;
        let status = unsafe { arg_str(user_status_id, "user_status_id") }?;
        let patch = parse_patch(unsafe { arg_str(patch_json, "patch_json") }?)?;
        let target = Target::new(configuration, status);
        let outcome = client.update_user_status_with(
            &target,
            &patch,
            &CallOptions::new().watched_by(watch),
        )?;
        // SAFETY: out_response_json is NULL or writable, per the contract.
        unsafe { write_response(out_response_json, outcome) }
    })
}

/// Updates the user status named by `target_json`, on any documented path:
///
/// - `{"deviceConfigurationId":"..","userStatusId":".."}`: the direct path;
/// - add `"route"`, written as the documentation page writes it, e.g.
///   `"identityCertificate/rootCertificate"` or
///   `"microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/{windows81TrustedRootCertificateId}"`
///   (the trailing placeholder may be left out), and `"certificateId"` for the routes that end in a
///   certificate collection; an absent or empty route is the direct path;
/// - `{"windowsAutopilotDeploymentProfileId":"..","userStatusId":".."}`: the Autopilot domain join
///   path (`"route"` absent or equal to that path's template);
/// - `"apiVersion"`: `"beta"` or `"v1.0"` for this call (v1.0 serves the direct path only).
///
/// Unknown keys are rejected (`IUS_STATUS_INVALID_INPUT`, `field` names the key). Otherwise the
/// same as `ius_update_user_status`: the same patch, outputs, ownership and thread rules.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_update_user_status_at(
    client: *const ius_client,
    target_json: *const c_char,
    patch_json: *const c_char,
    out_response_json: *mut *mut c_char,
    out_error_json: *mut *mut c_char,
) -> ius_status {
    ffi_status_body!(out_error_json, [out_response_json], {
        // SAFETY (all three): each pointer is NULL or valid for the call, per the contract.
        let client = unsafe { client_ref(client) }?;
        // Watched from the entry: an interrupt while the arguments are read ends the call.
        let watch = client.watch(&CallOptions::new());
        let (target, options) = target_from_json(unsafe { arg_str(target_json, "target_json") }?)?;
        let patch = parse_patch(unsafe { arg_str(patch_json, "patch_json") }?)?;
        let outcome =
            client.update_user_status_with(&target, &patch, &options.watched_by(watch))?;
        // SAFETY: out_response_json is NULL or writable, per the contract.
        unsafe { write_response(out_response_json, outcome) }
    })
}

/// Room for the response JSON of a typical deviceConfigurationUserStatus (about 280 to 350 bytes).
const RESPONSE_CAPACITY: usize = 512;

/// Parses `patch_json` (also the outbox's).
pub(crate) fn parse_patch(text: &str) -> Result<UserStatusPatch, FfiError> {
    UserStatusPatch::parse(text).map_err(|err| match err {
        ParseError::Syntax(err) => FfiError::invalid_json("patch_json", &err),
        ParseError::Invalid(err) => err.into(),
    })
}

/// Writes the entity (or leaves the NULL set at entry, for a bare 204).
///
/// # Safety
/// `out` must be NULL or valid for a write.
unsafe fn write_response(out: *mut *mut c_char, outcome: UpdateOutcome) -> Result<(), FfiError> {
    if out.is_null() {
        return Ok(());
    }
    let json = match outcome.entity() {
        Some(entity) => {
            // Sized for a typical entity, so the buffer does not grow while the JSON is written.
            let mut text = Vec::with_capacity(RESPONSE_CAPACITY);
            serde_json::to_writer(&mut text, entity).map_err(|err| {
                FfiError::internal(&format!("could not serialize the response: {err}"))
            })?;
            to_c_string(text)?
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY: non-NULL and writable per the caller's contract.
    unsafe { write_out(out, json) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::client::{ius_client_free, ius_client_new};
    use crate::ffi::strings::ius_string_free;
    use ius_emulator::{Config, Emulator, PatchReturns, SeedEntry};
    use std::ffi::CString;

    /// The README quick start in a loop: a success, the caller frees the response, then a
    /// failure. The out-parameter must not still point at the freed string.
    #[test]
    fn a_failure_after_a_success_leaves_no_stale_response_pointer() {
        let emu = Emulator::start(Config {
            token: Some("t".into()),
            patch_returns: PatchReturns::Ok,
            seed: vec![SeedEntry {
                collection: "/deviceManagement/deviceConfigurations/cfg/userStatuses".into(),
                entity: serde_json::json!({"id": "u1"}),
            }],
            ..Config::default()
        })
        .unwrap();
        let config = CString::new(format!(
            r#"{{"baseUrl":"{}","accessToken":"t","useEnvProxy":false}}"#,
            emu.base_url()
        ))
        .unwrap();
        let (mut client, mut error) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: NUL-terminated input, writable outputs.
        let status = unsafe { ius_client_new(config.as_ptr(), &mut client, &mut error) };
        assert_eq!(status, ius_status::Ok);
        let (cfg, user) = (c"cfg", c"u1");
        let mut response: *mut c_char = std::ptr::null_mut();
        for (patch, expected) in [
            (
                CString::new(r#"{"devicesCount":3}"#).unwrap(),
                ius_status::Ok,
            ),
            (
                CString::new(r#"{"devicesCount":-1}"#).unwrap(),
                ius_status::InvalidInput,
            ),
        ] {
            // SAFETY: a live client, NUL-terminated inputs, writable outputs.
            let status = unsafe {
                ius_update_user_status(
                    client,
                    cfg.as_ptr(),
                    user.as_ptr(),
                    patch.as_ptr(),
                    &mut response,
                    &mut error,
                )
            };
            assert_eq!(status, expected);
            if expected == ius_status::Ok {
                assert!(!response.is_null(), "PatchReturns::Ok answers the entity");
            } else {
                assert!(
                    response.is_null(),
                    "the freed response pointer was left behind"
                );
            }
            // SAFETY: strings this library returned (or NULL), freed once, as the README does.
            unsafe {
                ius_string_free(response);
                ius_string_free(error);
            }
        }
        // SAFETY: the client from ius_client_new, freed once.
        unsafe { ius_client_free(client) };
    }
}
