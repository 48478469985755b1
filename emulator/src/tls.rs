//! The byte stream of one connection, plain TCP or TLS (rustls, ring
//! provider), and the TLS configuration built from a [`TlsIdentity`].
//!
//! Reads and writes go through the TLS session when there is one; socket
//! operations (shutdown, linger) act on the TCP stream underneath, so
//! wire faults behave the same over HTTPS.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use rustls::{ServerConnection, StreamOwned};

/// A certificate chain and its private key, for serving HTTPS.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The server certificate first, then any intermediates (PEM).
    pub certificate_chain_pem: String,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of test logs, even test-only ones.
        f.debug_struct("TlsIdentity")
            .field("certificate_chain_pem", &self.certificate_chain_pem)
            .finish_non_exhaustive()
    }
}

/// One accepted connection, plain or TLS. Reads and writes go through the
/// TLS session when there is one; socket operations (shutdown, linger) act
/// on the TCP stream underneath.
pub(crate) enum Stream {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS; boxed because a rustls connection is large.
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// The TCP stream underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Shuts the TCP stream down (after a TLS `close_notify` when closing
    /// the write side, so a TLS client sees a clean end, not a truncation).
    pub(crate) fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let (Stream::Tls(s), Shutdown::Write) = (&mut *self, how) {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        self.tcp().shutdown(how)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A rustls server configuration (ring provider) for `identity`.
pub(crate) fn tls_config(identity: &TlsIdentity) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(identity.certificate_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate chain PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block in the certificate chain PEM".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(identity.private_key_pem.as_bytes())
        .map_err(|e| format!("bad private key PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    Ok(Arc::new(config))
}

/// Wraps an accepted socket; the TLS handshake happens lazily, on the
/// first read. `None` if the TLS session could not be created.
pub(crate) fn wrap(tcp: TcpStream, tls: Option<&Arc<rustls::ServerConfig>>) -> Option<Stream> {
    match tls {
        None => Some(Stream::Plain(tcp)),
        Some(config) => ServerConnection::new(Arc::clone(config))
            .ok()
            .map(|conn| Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))),
    }
}
