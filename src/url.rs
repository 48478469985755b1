//! The secure-URL rule, in one place: a token goes only to `https`, or to plain `http` on a
//! loopback host. The base URL, the authority host and every redirect are checked by it.

use std::net::IpAddr;

use ureq::http::Uri;

/// Why a URL may not carry a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insecure {
    /// The URL names no host.
    NoHost,
    /// Plain `http` to a host that is not loopback.
    PlainHttp,
    /// Neither `https` nor `http`.
    OtherScheme,
}

/// Checks `uri` against the rule; returns whether it is plain http (to a loopback host).
pub(crate) fn check_secure(uri: &Uri) -> Result<bool, Insecure> {
    let host = uri.host().ok_or(Insecure::NoHost)?;
    match uri.scheme_str() {
        Some("https") => Ok(false),
        Some("http") if is_loopback(host) => Ok(true),
        Some("http") => Err(Insecure::PlainHttp),
        _ => Err(Insecure::OtherScheme),
    }
}

/// Whether a request to `uri` must skip any proxy: plain http (which only loopback may use) and
/// loopback hosts never go through one, so a plain-http emulator URL cannot send its token in
/// clear through `HTTPS_PROXY`. (That a plain-http name really is loopback is checked where it is
/// resolved, in `resolver`.)
pub(crate) fn never_proxied(uri: &Uri) -> bool {
    uri.scheme_str() == Some("http") || uri.host().is_some_and(is_loopback)
}

/// Whether `host` (as a URL writes it, IPv6 in brackets) is this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<bool, Insecure> {
        check_secure(&url.parse().unwrap())
    }

    #[test]
    fn https_anywhere_and_plain_http_only_on_loopback() {
        assert_eq!(check("https://graph.example/x"), Ok(false));
        for loopback in ["http://127.0.0.1:1", "http://[::1]:80", "http://LOCALHOST"] {
            assert_eq!(check(loopback), Ok(true), "{loopback}");
        }
        assert_eq!(check("http://10.0.0.1"), Err(Insecure::PlainHttp));
        assert_eq!(check("ftp://127.0.0.1"), Err(Insecure::OtherScheme));
        assert_eq!(check("/relative"), Err(Insecure::NoHost));
    }
}
