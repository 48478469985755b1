//! The status codes every fallible C call returns, their names, and the library version.

use std::ffi::c_char;

/// The outcome of a call. Values are explicit, grouped by who must act, and never renumbered:
/// 1-99 the caller's input, 100-199 the service or the network, 200-299 the library itself.
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
    /// The library panicked; the call was abandoned and the process is intact. Please report it.
    Panic = 200,
    /// The library failed internally (e.g. could not serialize a result). Please report it.
    Internal = 201,
}

impl ius_status {
    /// Every status, for `ius_status_name` and the tests.
    pub(crate) const ALL: [ius_status; 16] = [
        ius_status::Ok,
        ius_status::NullArgument,
        ius_status::InvalidUtf8,
        ius_status::InvalidJson,
        ius_status::InvalidInput,
        ius_status::Config,
        ius_status::LoggerInUse,
        ius_status::Auth,
        ius_status::Graph,
        ius_status::Throttled,
        ius_status::UnexpectedResponse,
        ius_status::Timeout,
        ius_status::Network,
        ius_status::Tls,
        ius_status::Panic,
        ius_status::Internal,
    ];

    /// The name without the `IUS_STATUS_` prefix, NUL-terminated: `"OK\0"`, `"INVALID_INPUT\0"`.
    const fn c_name(self) -> &'static str {
        match self {
            ius_status::Ok => "OK\0",
            ius_status::NullArgument => "NULL_ARGUMENT\0",
            ius_status::InvalidUtf8 => "INVALID_UTF8\0",
            ius_status::InvalidJson => "INVALID_JSON\0",
            ius_status::InvalidInput => "INVALID_INPUT\0",
            ius_status::Config => "CONFIG\0",
            ius_status::LoggerInUse => "LOGGER_IN_USE\0",
            ius_status::Auth => "AUTH\0",
            ius_status::Graph => "GRAPH\0",
            ius_status::Throttled => "THROTTLED\0",
            ius_status::UnexpectedResponse => "UNEXPECTED_RESPONSE\0",
            ius_status::Timeout => "TIMEOUT\0",
            ius_status::Network => "NETWORK\0",
            ius_status::Tls => "TLS\0",
            ius_status::Panic => "PANIC\0",
            ius_status::Internal => "INTERNAL\0",
        }
    }

    /// The name as the error JSON's `status` writes it.
    pub(crate) fn name(self) -> &'static str {
        let name = self.c_name();
        &name[..name.len() - 1]
    }
}

/// The raw value of an `ius_status` as C passes it in. C may pass any 32-bit value, and an
/// out-of-range value in a Rust enum would be undefined behaviour, so arguments are taken raw;
/// cbindgen.toml renames this type to `ius_status` (and does not emit it) so the header shows
/// the enum.
#[allow(non_camel_case_types)]
pub type ius_status_value = u32;

const UNKNOWN: &str = "UNKNOWN\0";

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
        .map_or(UNKNOWN, |known| known.c_name())
        .as_ptr()
        .cast()
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
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ius_status::ALL.len());
        assert!(!names.contains(&"UNKNOWN"));
        for raw in [7, 99, 107, 202, 999, u32::MAX] {
            assert_eq!(name_of(raw), "UNKNOWN");
        }
    }

    #[test]
    fn version_is_the_crate_version() {
        // SAFETY: ius_version returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(ius_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
