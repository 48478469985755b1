//! How the client reaches the network: the proxy and the TLS trust store. Graph requests and
//! token requests share these settings because they share one agent.

use std::fmt;
use std::sync::{Arc, LazyLock};

use ureq::Proxy;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, parse_pem};

use crate::Error;

/// Network settings of a [`ClientBuilder`](crate::ClientBuilder).
#[derive(Clone)]
pub(crate) struct NetworkSettings {
    /// An explicit proxy URL, e.g. `http://user:password@proxy.contoso.example:3128`.
    pub proxy: Option<String>,
    /// Honour `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` when no proxy is given.
    pub use_env_proxy: bool,
    /// Verify servers with the operating system's verifier instead of the bundled Mozilla roots.
    pub platform_verifier: bool,
    /// CA certificates (PEM) trusted in addition to the bundled Mozilla roots, for networks that
    /// inspect TLS.
    pub extra_roots_pem: Option<String>,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            proxy: None,
            use_env_proxy: true,
            platform_verifier: false,
            extra_roots_pem: None,
        }
    }
}

impl fmt::Debug for NetworkSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A proxy URL may carry a password: show only whether one is set.
        f.debug_struct("NetworkSettings")
            .field("proxy", &self.proxy.as_ref().map(|_| "<set>"))
            .field("use_env_proxy", &self.use_env_proxy)
            .field("platform_verifier", &self.platform_verifier)
            .field(
                "extra_roots_pem",
                &self.extra_roots_pem.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

impl NetworkSettings {
    /// The proxy to use, if any: an http(s) CONNECT proxy. A SOCKS proxy given is an error; one
    /// in the environment is not used (the agent's connectors have no SOCKS support, and ureq
    /// passed such a proxy by as well). Errors never repeat the URL, which may hold a password.
    pub fn proxy(&self) -> Result<Option<Proxy>, Error> {
        match &self.proxy {
            Some(url) => {
                let proxy = Proxy::new(url).map_err(|err| {
                    Error::config(
                        "proxy",
                        format!(
                            "is not a usable proxy URL ({}); expected e.g. http://user:password@host:3128",
                            redact_proxy_error(err)
                        ),
                    )
                })?;
                if is_socks(&proxy) {
                    return Err(Error::config(
                        "proxy",
                        "is a SOCKS proxy, which is not supported; use an http:// proxy",
                    ));
                }
                Ok(Some(proxy))
            }
            None if self.use_env_proxy => Ok(Proxy::try_from_env().filter(|proxy| {
                if is_socks(proxy) {
                    log::warn!("the SOCKS proxy in the environment is not supported: not used");
                }
                !is_socks(proxy)
            })),
            None => Ok(None),
        }
    }

    /// The TLS configuration: bundled Mozilla roots (the default), the platform verifier, or the
    /// Mozilla roots plus the caller's CAs; always rustls with the ring provider.
    pub fn tls(&self) -> Result<TlsConfig, Error> {
        let roots = match (&self.extra_roots_pem, self.platform_verifier) {
            (Some(_), true) => {
                return Err(Error::config(
                    "tls",
                    "platformVerifier and extraRootsPem cannot be combined; add the CA to the \
                     operating system's store instead",
                ));
            }
            (Some(pem), false) => {
                let mut all = MOZILLA_ROOTS.as_ref().clone();
                all.extend(parse_roots(pem)?);
                RootCerts::Specific(Arc::new(all))
            }
            (None, true) => RootCerts::PlatformVerifier,
            (None, false) => RootCerts::Specific(Arc::clone(&MOZILLA_ROOTS)),
        };
        Ok(TlsConfig::builder()
            .root_certs(roots)
            .unversioned_rustls_crypto_provider(Arc::clone(&crate::tls::PROVIDER))
            .build())
    }
}

/// Mozilla's root certificates, shared by every client of the process.
static MOZILLA_ROOTS: LazyLock<Arc<Vec<Certificate<'static>>>> = LazyLock::new(|| {
    Arc::new(
        webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()))
            .collect(),
    )
});

/// The CA certificates in a PEM bundle; at least one, and nothing unreadable.
fn parse_roots(pem: &str) -> Result<Vec<Certificate<'static>>, Error> {
    let field = "tls.extraRootsPem";
    let mut certs = Vec::new();
    for item in parse_pem(pem.as_bytes()) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {} // keys and other blocks are not roots; ignore them
            Err(err) => {
                return Err(Error::config(field, format!("is not valid PEM: {err}")));
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::config(
            field,
            "holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)",
        ));
    }
    Ok(certs)
}

fn is_socks(proxy: &Proxy) -> bool {
    use ureq::ProxyProtocol::{Socks4, Socks4A, Socks5, Socks5h};
    matches!(proxy.protocol(), Socks4 | Socks4A | Socks5 | Socks5h)
}

/// ureq's proxy errors are generic, but keep only the error kind, never the URL.
fn redact_proxy_error(err: ureq::Error) -> &'static str {
    match err {
        ureq::Error::InvalidProxyUrl => "invalid proxy URL",
        _ => "unsupported proxy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_errors_never_echo_the_url() {
        let settings = NetworkSettings {
            proxy: Some("ftp://user:hunter2@proxy:21".into()),
            ..NetworkSettings::default()
        };
        let err = settings.proxy().unwrap_err().to_string();
        assert!(err.contains("proxy") && !err.contains("hunter2"), "{err}");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    /// The agent cannot speak SOCKS: a SOCKS proxy given is refused when the client is built,
    /// not bypassed by a direct connection.
    #[test]
    fn a_socks_proxy_is_refused_by_name() {
        let settings = NetworkSettings {
            proxy: Some("socks5://user:hunter2@proxy:1080".into()),
            ..NetworkSettings::default()
        };
        let err = settings.proxy().unwrap_err().to_string();
        assert!(err.contains("SOCKS") && !err.contains("hunter2"), "{err}");
        let http = NetworkSettings {
            proxy: Some("http://proxy:3128".into()),
            ..NetworkSettings::default()
        };
        assert!(http.proxy().unwrap().is_some());
    }

    #[test]
    fn extra_roots_must_hold_a_certificate_and_exclude_the_platform_verifier() {
        let empty = NetworkSettings {
            extra_roots_pem: Some("not pem".into()),
            ..NetworkSettings::default()
        };
        assert!(
            empty
                .tls()
                .unwrap_err()
                .to_string()
                .contains("extraRootsPem")
        );
        let both = NetworkSettings {
            extra_roots_pem: Some(String::new()),
            platform_verifier: true,
            ..NetworkSettings::default()
        };
        assert!(
            both.tls()
                .unwrap_err()
                .to_string()
                .contains("platformVerifier")
        );
    }
}
