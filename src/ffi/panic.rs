//! The panic boundary every exported function body runs inside.
//!
//! A Rust panic must never unwind into C (in an `extern "C"` function it aborts the process), so
//! each body runs under `catch_unwind`; a panic becomes `IUS_STATUS_PANIC` plus an error JSON.
//! The macros wrap the body, not the signature, so cbindgen still reads the signature.

use std::any::Any;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::error::FfiError;
use super::status::ius_status;
use super::strings;

/// Runs the body of a fallible exported function: `Ok(())` returns `IUS_STATUS_OK` and sets
/// `*out_error_json` to NULL; an error or a panic returns its status and writes the error JSON.
///
/// Every out-parameter is listed (`[out_response_json, ...]`, `out_error_json` apart) and set to
/// NULL before the body runs, so each is defined on every return whatever the body does.
macro_rules! ffi_status_body {
    ($out_error_json:expr, [$($out:expr),* $(,)?], $body:block) => {{
        $(
            // SAFETY: every out-parameter is NULL or writable, per the exported function's
            // contract; write_out skips NULL.
            unsafe { $crate::ffi::strings::write_out($out, ::std::ptr::null_mut()) };
        )*
        $crate::ffi::panic::status_boundary(
            $out_error_json,
            || -> ::std::result::Result<(), $crate::ffi::error::FfiError> { $body },
        )
    }};
}

/// Runs the body of an infallible exported function, returning `$on_panic` if it panics.
macro_rules! ffi_body_or {
    ($on_panic:expr, $body:block) => {
        $crate::ffi::panic::boundary_or($on_panic, || $body)
    };
}

/// See [`ffi_status_body!`].
///
/// `out_error_json` must be NULL or valid for a write (the exported function's contract).
pub(crate) fn status_boundary(
    out_error_json: *mut *mut c_char,
    body: impl FnOnce() -> Result<(), FfiError>,
) -> ius_status {
    // SAFETY: out_error_json is NULL or writable, per the exported function's contract. Set at
    // entry, so it is defined even if building the error JSON fails below.
    unsafe { strings::write_out(out_error_json, std::ptr::null_mut()) };
    // The body only touches its own locals and the caller's pointers; nothing it leaves half-done
    // is observed after a panic, so asserting unwind safety is sound.
    let error = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            // SAFETY: out_error_json is NULL or writable, per the exported function's contract.
            unsafe { strings::write_out(out_error_json, std::ptr::null_mut()) };
            return ius_status::Ok;
        }
        Ok(Err(error)) => error,
        Err(payload) => FfiError::panic(panic_message(payload.as_ref())),
    };
    let status = error.status();
    if out_error_json.is_null() {
        // The caller wants the status only; building the string would leak it.
        return status;
    }
    // Building the JSON allocates; even that must not unwind into C.
    let written = catch_unwind(AssertUnwindSafe(|| {
        let json = strings::to_c_string(error.to_json()).unwrap_or(std::ptr::null_mut());
        // SAFETY: out_error_json is NULL or writable, per the exported function's contract.
        unsafe { strings::write_out(out_error_json, json) };
    }));
    if written.is_err() {
        // SAFETY: as above.
        unsafe { strings::write_out(out_error_json, std::ptr::null_mut()) };
    }
    status
}

/// See [`ffi_body_or!`].
pub(crate) fn boundary_or<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("the library panicked: {what}; the call was abandoned, please report this")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn take(ptr: *mut c_char) -> serde_json::Value {
        assert!(!ptr.is_null());
        // SAFETY: the boundary wrote a string from CString::into_raw.
        let text = unsafe { CString::from_raw(ptr) }.into_string().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_panic_becomes_a_status_and_error_json() {
        let mut out: *mut c_char = std::ptr::dangling_mut();
        let status = ffi_status_body!(&mut out, [], { panic!("boom") });
        assert_eq!(status, ius_status::Panic);
        let json = take(out);
        assert_eq!(json["status"], "PANIC");
        assert!(json["message"].as_str().unwrap().contains("boom"));
    }

    #[test]
    fn success_clears_the_error_pointer_and_null_error_pointer_is_fine() {
        let mut out: *mut c_char = std::ptr::dangling_mut();
        assert_eq!(ffi_status_body!(&mut out, [], { Ok(()) }), ius_status::Ok);
        assert!(out.is_null());
        let status = ffi_status_body!(std::ptr::null_mut(), [], { panic!("no out pointer") });
        assert_eq!(status, ius_status::Panic);
        assert_eq!(ffi_body_or!(7, { panic!("x") }), 7);
    }
}
