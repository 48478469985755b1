//! The status codes every fallible C call returns, their names, and the library version.

use std::ffi::{CStr, CString, c_char};
use std::sync::LazyLock;

/// The outcome of a call. Values are explicit, grouped by who must act, and never renumbered:
/// 1-99 the caller's input or doing, 100-199 the service or the network, 200-299 the library
/// itself.
/// New codes go into the gaps; treat unknown values like the nearest group.
///
/// Every failed call also writes an error JSON object (see `ius_update_user_status`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // The C name, so cbindgen emits it as is.
pub enum ius_status {
    /// The call succeeded.
    Ok = 0,
    /// A required pointer argument was NULL (the error JSON's `field` names it).
    NullArgument = 1,
    /// A string argument was not valid UTF-8 (the error JSON's `field` names it).
    InvalidUtf8 = 2,
    /// A JSON argument was not well-formed JSON (the error JSON's `field` names it).
    InvalidJson = 3,
    /// An argument was well-formed but rejected (unknown or mistyped property, out-of-range
    /// number, bad date, unknown route, empty id); nothing was sent.
    InvalidInput = 4,
    /// `config_json` was rejected (unknown key, two sources of tokens, bad timeout, ...).
    Config = 5,
    /// `ius_set_log_callback`: other code in the process already installed a logger for Rust's
    /// `log` crate, so the callback could not be.
    LoggerInUse = 6,
    /// `ius_outbox_enqueue*`: the outbox holds `maxPending` targets or `maxBytes`, so a report for
    /// a new target was refused and nothing was stored (reports for pending targets still merge).
    /// Flush, or raise the bound.
    OutboxFull = 7,
    /// The outbox file could not be used (the error JSON's `path` names it and `message` says why):
    /// its folder is missing or not writable, it is not SQLite, not an outbox, from a newer version
    /// of this library, or the disk is full. The file was left as it was.
    Storage = 8,
    /// The call was interrupted (`ius_client_interrupt`) before it finished: whatever it waited on
    /// was abandoned, and a request in flight had its connection closed, so whether Graph applied
    /// it is unknown. Calls started after the interrupt are not affected.
    Cancelled = 9,
    /// No access token could be obtained: the token endpoint refused (see `aadsts`, `error`,
    /// `traceId`, `correlationId`, `httpStatus`), could not be reached, or the token callback
    /// failed. Nothing was sent to Graph.
    Auth = 100,
    /// Graph answered with an HTTP error (4xx/5xx other than 429): see `httpStatus`, `code`,
    /// `requestId`.
    Graph = 101,
    /// Graph throttled the call (HTTP 429): wait `retryAfterSeconds` when given.
    Throttled = 102,
    /// Graph answered with something this call cannot accept (e.g. 200 with a body that is not
    /// a deviceConfigurationUserStatus, or a redirect).
    UnexpectedResponse = 103,
    /// No complete response arrived within the configured time.
    Timeout = 104,
    /// The connection could not be opened or broke (DNS, refused, reset).
    Network = 105,
    /// The TLS handshake or certificate check failed.
    Tls = 106,
    /// A bulk call ran and wrote one result per item, and at least one item failed (each
    /// failed item's result carries its own status and error object).
    Partial = 107,
    /// The library panicked; the call was abandoned and the process is intact. Please report it.
    Panic = 200,
    /// The library failed internally (e.g. could not serialize a result). Please report it.
    Internal = 201,
}

impl ius_status {
    /// Every status, for `ius_status_name`. The enum above is the one declaration (number, name,
    /// meaning); a test checks this list against the header cbindgen writes from it.
    pub(crate) const ALL: [ius_status; 20] = [
        ius_status::Ok,
        ius_status::NullArgument,
        ius_status::InvalidUtf8,
        ius_status::InvalidJson,
        ius_status::InvalidInput,
        ius_status::Config,
        ius_status::LoggerInUse,
        ius_status::OutboxFull,
        ius_status::Storage,
        ius_status::Cancelled,
        ius_status::Auth,
        ius_status::Graph,
        ius_status::Throttled,
        ius_status::UnexpectedResponse,
        ius_status::Timeout,
        ius_status::Network,
        ius_status::Tls,
        ius_status::Partial,
        ius_status::Panic,
        ius_status::Internal,
    ];

    /// The name as the error JSON's `status` writes it: `"OK"`, `"INVALID_INPUT"`.
    pub(crate) fn name(self) -> &'static str {
        self.c_name().to_str().unwrap_or_default()
    }

    /// The name, NUL-terminated, made from the variant's name the way cbindgen makes the C
    /// constant's (`InvalidUtf8` -> `INVALID_UTF8`), so the two cannot differ.
    fn c_name(self) -> &'static CStr {
        static NAMES: LazyLock<Vec<(ius_status, CString)>> = LazyLock::new(|| {
            ius_status::ALL
                .iter()
                .map(|status| {
                    let variant = format!("{status:?}");
                    let mut name = String::with_capacity(variant.len() + 4);
                    for (i, c) in variant.char_indices() {
                        if i > 0 && c.is_ascii_uppercase() {
                            name.push('_');
                        }
                        name.push(c.to_ascii_uppercase());
                    }
                    // Variant names hold no NUL, so this never falls back.
                    (*status, CString::new(name).unwrap_or_default())
                })
                .collect()
        });
        NAMES
            .iter()
            .find(|(known, _)| *known == self)
            .map_or(c"INTERNAL", |(_, name)| name.as_c_str())
    }
}

/// The raw value of an `ius_status` as C passes it in. C may pass any 32-bit value, and an
/// out-of-range value in a Rust enum would be undefined behaviour, so arguments are taken raw;
/// cbindgen.toml renames this type to `ius_status` (and does not emit it) so the header shows
/// the enum.
#[allow(non_camel_case_types)]
pub type ius_status_value = u32;

/// Returns the name of `status` without its prefix (`"OK"`, `"INVALID_INPUT"`, ...), or
/// `"UNKNOWN"` for a value this version does not define.
///
/// Ownership: the string is static; never free it. Thread safety: may be called from any thread
/// at any time, even before any other call.
#[unsafe(no_mangle)]
pub extern "C" fn ius_status_name(status: ius_status_value) -> *const c_char {
    ius_status::ALL
        .iter()
        .find(|known| **known as u32 == status)
        .map_or(c"UNKNOWN", |known| known.c_name())
        .as_ptr()
}

/// Returns the library version, e.g. `"0.1.0"`.
///
/// Ownership: the string is static; never free it. Thread safety: may be called from any thread
/// at any time.
#[unsafe(no_mangle)]
pub extern "C" fn ius_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn name_of(value: u32) -> &'static str {
        // SAFETY: ius_status_name always returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(ius_status_name(value)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn every_status_has_a_distinct_name_and_unknown_values_are_named_unknown() {
        let mut names: Vec<_> = ius_status::ALL.iter().map(|s| name_of(*s as u32)).collect();
        assert_eq!(name_of(0), "OK");
        assert_eq!(name_of(102), "THROTTLED");
        assert_eq!(name_of(107), "PARTIAL");
        assert_eq!(name_of(9), "CANCELLED");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ius_status::ALL.len());
        assert!(!names.contains(&"UNKNOWN"));
        for raw in [10, 99, 108, 202, 999, u32::MAX] {
            assert_eq!(name_of(raw), "UNKNOWN");
        }
    }

    #[test]
    fn the_list_and_the_names_are_the_headers_constants() {
        let header = include_str!("../../include/intune_user_status.h");
        let declared: Vec<(String, u32)> = header
            .lines()
            .filter_map(|line| line.trim().strip_prefix("IUS_STATUS_"))
            .filter_map(|rest| rest.trim_end_matches(',').split_once(" = "))
            .map(|(name, value)| (name.to_owned(), value.parse().unwrap()))
            .collect();
        let listed: Vec<(String, u32)> = ius_status::ALL
            .iter()
            .map(|status| (name_of(*status as u32).to_owned(), *status as u32))
            .collect();
        assert_eq!(listed, declared);
    }

    #[test]
    fn version_is_the_crate_version() {
        // SAFETY: ius_version returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(ius_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
