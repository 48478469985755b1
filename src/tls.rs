//! The TLS crypto provider every connection uses: rustls' ring provider with the AES-GCM cipher
//! suites only.
//!
//! AES-GCM is mandatory in TLS 1.3 (RFC 8446, 9.1) and is what Graph, the identity endpoints and
//! TLS-inspecting proxies negotiate in TLS 1.2 as well, so ChaCha20-Poly1305 would never be
//! chosen; leaving it out keeps about 50 KB of code out of the library. The provider is assembled
//! here because `rustls::crypto::ring::default_provider()` names every suite, so calling it at all
//! links them. Key exchange groups and signature algorithms are ring's defaults, which a test
//! compares with rustls' own.

use std::sync::{Arc, LazyLock};

use rustls::SignatureScheme;
use rustls::crypto::ring::{cipher_suite as suite, kx_group};
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use webpki::ring as alg;

/// The provider, shared by every client of the process.
pub(crate) static PROVIDER: LazyLock<Arc<CryptoProvider>> = LazyLock::new(|| {
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &Ring,
        key_provider: &Ring,
    })
});

/// What ring's default provider verifies certificates and handshakes with (rustls'
/// `SUPPORTED_SIG_ALGS`, which is private; `same_algorithms_as_the_default_provider` keeps the
/// two equal).
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        // For TLS 1.2 the curve is not fixed by the scheme; for TLS 1.3 it is.
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[alg::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[alg::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// ring's randomness and key loading, as the default provider has them.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| GetRandomFailed)
    }
}

impl KeyProvider for Ring {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_supported_type(&key_der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (public key, signature) algorithm identifiers: what identifies a verification algorithm.
    fn ids(
        algs: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
    ) -> Vec<(
        rustls::pki_types::AlgorithmIdentifier,
        rustls::pki_types::AlgorithmIdentifier,
    )> {
        algs.iter()
            .map(|a| (a.public_key_alg_id(), a.signature_alg_id()))
            .collect()
    }

    #[test]
    fn same_algorithms_as_the_default_provider() {
        let default = rustls::crypto::ring::default_provider();
        let (ours, theirs) = (
            &PROVIDER.signature_verification_algorithms,
            &default.signature_verification_algorithms,
        );
        assert_eq!(ids(ours.all), ids(theirs.all));
        assert_eq!(ours.mapping.len(), theirs.mapping.len());
        for ((scheme, algs), (their_scheme, their_algs)) in ours.mapping.iter().zip(theirs.mapping)
        {
            assert_eq!(scheme, their_scheme);
            assert_eq!(ids(algs), ids(their_algs), "{scheme:?}");
        }
        let names = |groups: &[&dyn rustls::crypto::SupportedKxGroup]| -> Vec<_> {
            groups.iter().map(|g| g.name()).collect()
        };
        assert_eq!(names(&PROVIDER.kx_groups), names(&default.kx_groups));
    }

    #[test]
    fn every_default_suite_but_chacha20() {
        let default = rustls::crypto::ring::default_provider();
        let expected: Vec<_> = default
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .filter(|s| !format!("{s:?}").contains("CHACHA20"))
            .collect();
        let ours: Vec<_> = PROVIDER.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(ours, expected);
        let mut random = [0u8; 32];
        PROVIDER.secure_random.fill(&mut random).unwrap();
        assert_ne!(random, [0u8; 32]);
    }
}
