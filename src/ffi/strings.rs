//! C strings in and out: borrowed NUL-terminated UTF-8 arguments, library-owned results.
//!
//! Every string handed to C comes from `CString::into_raw` and goes back through
//! [`ius_string_free`]; C's `free()` must never see it (the allocators may differ).

use std::ffi::{CStr, CString, c_char};

use super::error::FfiError;

/// Borrows a C string argument for the duration of the call.
///
/// NULL is `IUS_STATUS_NULL_ARGUMENT` and invalid UTF-8 `IUS_STATUS_INVALID_UTF8`, both naming
/// `name` (the C parameter).
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn arg_str<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null_argument(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|err| FfiError::invalid_utf8(name, &err))
}

/// Checks that a required out-pointer is not NULL.
pub(crate) fn require_out<T>(out: *mut T, name: &'static str) -> Result<(), FfiError> {
    if out.is_null() {
        Err(FfiError::null_argument(name))
    } else {
        Ok(())
    }
}

/// Turns `text` into a string C owns until it calls `ius_string_free`.
///
/// Copied into an allocation of exactly its length and NUL: handing over the buffer it was
/// written in would shrink that buffer in place (`realloc`), which splits a heap chunk, and
/// glibc then merges the freed tail and sweeps its free lists (`malloc_consolidate`) on most
/// calls; a copy of a few hundred bytes costs less (README "Speed").
pub(crate) fn to_c_string(text: impl AsRef<[u8]>) -> Result<*mut c_char, FfiError> {
    // The JSON this layer returns escapes control characters, so an inner NUL is a bug.
    CString::new(text.as_ref())
        .map(CString::into_raw)
        .map_err(|_| FfiError::internal("a returned string contained a NUL byte"))
}

/// Writes `value` through `out` unless `out` is NULL.
///
/// # Safety
/// `out` must be NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable per the caller's contract.
        unsafe { out.write(value) };
    }
}

/// Frees a string returned by this library (a response or error JSON).
///
/// `s` must be NULL (nothing happens) or a string this library returned that has not been freed
/// yet; never pass it to `free()`, and never free a library string with anything else.
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ius_string_free(s: *mut c_char) {
    ffi_body_or!((), {
        if !s.is_null() {
            // SAFETY: per the contract, s came from CString::into_raw and is freed once.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// Checks that the required `out` is not NULL and sets it to NULL, so every failure leaves NULL.
///
/// # Safety
/// `out` must be NULL or valid for a write.
pub(crate) unsafe fn clear_required(
    out: *mut *mut c_char,
    name: &'static str,
) -> Result<(), FfiError> {
    require_out(out, name)?;
    // SAFETY: non-NULL and writable per the caller's contract.
    unsafe { write_out(out, std::ptr::null_mut()) };
    Ok(())
}

/// Serializes `value` and writes it through `out` (which must not be NULL). Serialized before
/// anything is written, so a failure leaves `*out` as it was.
///
/// # Safety
/// `out` must be valid for a write.
pub(crate) unsafe fn write_json(
    out: *mut *mut c_char,
    value: &impl serde::Serialize,
) -> Result<(), FfiError> {
    let text = serde_json::to_string(value)
        .map_err(|err| FfiError::internal(&format!("could not serialize the response: {err}")))?;
    let json = to_c_string(text)?;
    // SAFETY: writable per the caller's contract.
    unsafe { write_out(out, json) };
    Ok(())
}
