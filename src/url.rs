//! The secure-URL rule, in one place: a token goes only to `https`, or to plain `http` on a
//! loopback host. The base URL, the authority host and every redirect are checked by it. The
//! machine's own managed-identity endpoints are plain http by design, on loopback or on a
//! link-local address (IMDS is `http://169.254.169.254`): that one wider rule is here too.

use std::net::IpAddr;

use ureq::http::Uri;

/// Why a URL may not carry a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insecure {
    /// The URL names no host.
    NoHost,
    /// Plain `http` to a host the endpoint kind may not reach in clear.
    PlainHttp,
    /// Neither `https` nor `http`.
    OtherScheme,
}

/// What a URL is for, which decides where plain `http` may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Graph, the Microsoft identity platform and every redirect: plain http only on loopback.
    Service,
    /// The machine's managed-identity endpoint (IMDS, Azure Arc's agent, App Service's): plain
    /// http on loopback or on a link-local address written as one (169.254.0.0/16, fe80::/10),
    /// which routers never forward off the machine's link.
    ManagedIdentity,
}

/// Checks `uri` against the rule for Graph and the identity platform; returns whether it is
/// plain http (to a loopback host).
pub(crate) fn check_secure(uri: &Uri) -> Result<bool, Insecure> {
    check_endpoint(uri, Endpoint::Service)
}

/// Checks `uri` against the rule for an endpoint of kind `endpoint`; returns whether it is
/// plain http.
pub(crate) fn check_endpoint(uri: &Uri, endpoint: Endpoint) -> Result<bool, Insecure> {
    let host = uri.host().ok_or(Insecure::NoHost)?;
    let in_clear = match endpoint {
        Endpoint::Service => is_loopback(host),
        Endpoint::ManagedIdentity => is_loopback(host) || link_local_ip(host).is_some(),
    };
    match uri.scheme_str() {
        Some("https") => Ok(false),
        Some("http") if in_clear => Ok(true),
        Some("http") => Err(Insecure::PlainHttp),
        _ => Err(Insecure::OtherScheme),
    }
}

/// Whether a plain-http request to `host` may connect to `ip`: a loopback address, whatever the
/// name; a link-local one only when the host is that very address (only a managed-identity URL
/// passes [`check_endpoint`] with one), so no DNS answer or hosts entry can lead there.
pub(crate) fn plain_http_may_connect(host: &str, ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback() || link_local_ip(host) == Some(ip.to_canonical())
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
    host.eq_ignore_ascii_case("localhost") || ip_literal(host).is_some_and(|ip| ip.is_loopback())
}

/// `host` as a link-local IP address, if it is written as one.
fn link_local_ip(host: &str) -> Option<IpAddr> {
    ip_literal(host).filter(|ip| match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    })
}

/// `host` as an IP address (IPv6 in brackets, as a URL writes it), if it is one.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<bool, Insecure> {
        check_secure(&url.parse().unwrap())
    }

    fn check_identity(url: &str) -> Result<bool, Insecure> {
        check_endpoint(&url.parse().unwrap(), Endpoint::ManagedIdentity)
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
        // IMDS's address is for managed identity only.
        assert_eq!(check("http://169.254.169.254"), Err(Insecure::PlainHttp));
    }

    #[test]
    fn managed_identity_endpoints_may_also_be_link_local_addresses() {
        for local in [
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://169.254.129.2:8081/msi/token",
            "http://[fe80::1]:40342/x",
            "http://127.0.0.1:40342/metadata/identity/oauth2/token",
            "http://localhost:8081/msi/token",
        ] {
            assert_eq!(check_identity(local), Ok(true), "{local}");
        }
        assert_eq!(check_identity("https://identity.example/x"), Ok(false));
        for remote in [
            "http://10.0.0.1/msi/token",
            "http://169.254.169.254.nip.io/x",
            "http://metadata.example/x",
        ] {
            assert_eq!(check_identity(remote), Err(Insecure::PlainHttp), "{remote}");
        }
    }

    #[test]
    fn a_link_local_address_is_reached_only_when_written_as_the_host() {
        let imds: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(plain_http_may_connect("169.254.169.254", imds));
        assert!(plain_http_may_connect(
            "localhost",
            "127.0.0.1".parse().unwrap()
        ));
        // A name, or another address, that resolves there is not enough.
        assert!(!plain_http_may_connect("metadata.example", imds));
        assert!(!plain_http_may_connect("169.254.169.253", imds));
        assert!(!plain_http_may_connect(
            "localhost",
            "10.0.0.1".parse().unwrap()
        ));
    }
}
