//! The client assertion: a short-lived JWT signed with the app's certificate key, which the token
//! request carries instead of a client secret.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use zeroize::Zeroize;

use crate::Error;
use crate::auth::AuthResult;
use crate::auth_error::AuthError;

/// How long an assertion is valid. Microsoft Entra accepts at most 10 minutes; a fresh one is signed
/// for every token request, so a short life costs nothing.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The signature algorithm of the client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256 (the default; what Microsoft's current libraries send).
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, for tenants or proxies that expect the older algorithm.
    Rs256,
}

impl AssertionAlgorithm {
    /// Every algorithm, for parsing names.
    const ALL: [AssertionAlgorithm; 2] = [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256];

    /// The JWT `alg` name: `PS256` or `RS256`.
    fn jwt_name(self) -> &'static str {
        match self {
            AssertionAlgorithm::Ps256 => "PS256",
            AssertionAlgorithm::Rs256 => "RS256",
        }
    }

    fn padding(self) -> &'static dyn RsaEncoding {
        match self {
            AssertionAlgorithm::Ps256 => &RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256 => &RSA_PKCS1_SHA256,
        }
    }
}

/// Parses the JWT name, `PS256` or `RS256`; anything else is [`Error::Config`] naming
/// `algorithm`.
///
/// ```
/// use intune_user_status::AssertionAlgorithm;
/// assert_eq!("RS256".parse::<AssertionAlgorithm>().unwrap(), AssertionAlgorithm::Rs256);
/// assert!("HS256".parse::<AssertionAlgorithm>().is_err());
/// ```
impl FromStr for AssertionAlgorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AssertionAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.jwt_name() == s)
            .ok_or_else(|| {
                Error::config(
                    "algorithm",
                    format!("must be \"PS256\" or \"RS256\", got \"{s}\""),
                )
            })
    }
}

/// The app's RSA key and the thumbprint of its certificate, checked once at construction.
pub(crate) struct AssertionSigner {
    key: RsaKeyPair,
    rng: SystemRandom,
    /// base64url(SHA-256(certificate DER)): tells Entra which registered certificate to verify with.
    x5t_s256: String,
}

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("x5t#S256", &self.x5t_s256)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(rename = "x5t#S256")]
    x5t_s256: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl AssertionSigner {
    /// Loads the first certificate of `certificate_pem` and the RSA key of `private_key_pem`
    /// (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), and checks that they belong together.
    pub(crate) fn from_pem(
        certificate_pem: &[u8],
        private_key_pem: &[u8],
    ) -> Result<AssertionSigner, Error> {
        let key = load_key(private_key_pem)?;
        let certificate = CertificateDer::from_pem_slice(certificate_pem).map_err(|err| {
            Error::config(
                "certificatePem",
                match err {
                    pem::Error::NoItemsFound => {
                        "no -----BEGIN CERTIFICATE----- section found".to_owned()
                    }
                    other => pem_reason(other),
                },
            )
        })?;
        // The certificate's SubjectPublicKeyInfo embeds the key's RSAPublicKey DER verbatim; a byte
        // search catches a mismatched pair here instead of as an AADSTS error at the first request.
        let public = key.public().as_ref();
        if !certificate
            .windows(public.len())
            .any(|window| window == public)
        {
            return Err(Error::config(
                "certificatePem",
                "the certificate is not for privateKeyPem's key (their public keys differ)",
            ));
        }
        let thumbprint = ring::digest::digest(&ring::digest::SHA256, &certificate);
        Ok(AssertionSigner {
            key,
            rng: SystemRandom::new(),
            x5t_s256: URL_SAFE_NO_PAD.encode(thumbprint),
        })
    }

    /// A signed assertion for `client_id`, addressed to `token_url`, valid from `now`.
    pub(crate) fn sign(
        &self,
        algorithm: AssertionAlgorithm,
        client_id: &str,
        token_url: &str,
        now: SystemTime,
    ) -> AuthResult<String> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Box::new(AuthError::new("the system clock is before 1970")))?
            .as_secs();
        let header = Header {
            alg: algorithm.jwt_name(),
            typ: "JWT",
            x5t_s256: &self.x5t_s256,
        };
        let claims = Claims {
            aud: token_url,
            iss: client_id,
            sub: client_id,
            // Entra rejects a replayed jti, so every assertion (retries included) gets its own.
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: iat,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        let mut jwt = encode_json(&header);
        jwt.push('.');
        jwt.push_str(&encode_json(&claims));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                algorithm.padding(),
                &self.rng,
                jwt.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Box::new(AuthError::new("signing the client assertion failed")))?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

fn encode_json(value: &impl Serialize) -> String {
    // Plain structs of strings and integers always serialize.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JWT parts serialize"))
}

fn load_key(private_key_pem: &[u8]) -> Result<RsaKeyPair, Error> {
    let field = "privateKeyPem";
    let mut der = PrivateKeyDer::from_pem_slice(private_key_pem).map_err(|err| {
        Error::config(
            field,
            match err {
                pem::Error::NoItemsFound if contains(private_key_pem, b"ENCRYPTED PRIVATE KEY") => {
                    "the key is encrypted; give it decrypted (openssl pkcs8 -in key.pem -nocrypt -topk8 -out plain.pem)".to_owned()
                }
                pem::Error::NoItemsFound => {
                    "no -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY----- section found"
                        .to_owned()
                }
                other => pem_reason(other),
            },
        )
    })?;
    let loaded = match &der {
        PrivateKeyDer::Pkcs8(key) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der()),
        _ => {
            der.zeroize();
            return Err(Error::config(
                field,
                "not an RSA key (an EC key?); certificate credentials need RSA, 2048 bits or more",
            ));
        }
    };
    // ring keeps its own copy; the decoded DER is wiped rather than left for the allocator.
    der.zeroize();
    loaded.map_err(|rejected| {
        Error::config(
            field,
            match rejected.to_string().as_str() {
                "WrongAlgorithm" => "not an RSA key (an EC key?); certificate credentials need RSA, 2048 bits or more".to_owned(),
                "TooSmall" => "the RSA key is too small; 2048 bits or more are required".to_owned(),
                other => format!("the RSA key was rejected ({other})"),
            },
        )
    })
}

/// Why a PEM text could not be read; never quotes it, since it may hold a key.
fn pem_reason(err: pem::Error) -> String {
    let why = match err {
        pem::Error::MissingSectionEnd { .. } => "a section has no -----END line",
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section's body is not base64",
        _ => "it cannot be read",
    };
    format!("not valid PEM: {why}")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::signature::{
        RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey,
        VerificationAlgorithm,
    };
    use serde_json::Value;

    pub(crate) const CERT: &str = include_str!("../../tests/fixtures/test-only-rsa-cert.pem");
    pub(crate) const KEY_PKCS8: &str =
        include_str!("../../tests/fixtures/test-only-rsa-key.pkcs8.pem");
    const KEY_PKCS1: &str = include_str!("../../tests/fixtures/test-only-rsa-key.pkcs1.pem");
    const EC_KEY: &str = include_str!("../../tests/fixtures/test-only-ec-key.pem");
    const OTHER_CERT: &str = include_str!("../../tests/fixtures/test-only-other-cert.pem");
    /// The key's RSAPublicKey DER, exported by openssl (not by the code under test).
    const PUBLIC_KEY: &[u8] =
        include_bytes!("../../tests/fixtures/test-only-rsa-public-key.pkcs1.der");
    /// `openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url` of CERT.
    const CERT_X5T_S256: &str = "g3xNtLIPUrN4OcyNRxnnIA4Hr6bvvH6LMg2RxSOGivg";

    /// Checks `jwt`'s signature against the fixture key; returns its header and claims.
    pub(crate) fn verify(
        jwt: &str,
        algorithm: &'static dyn VerificationAlgorithm,
    ) -> (Value, Value) {
        let (signed, signature) = jwt.rsplit_once('.').expect("three parts");
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .expect("base64url signature");
        UnparsedPublicKey::new(algorithm, PUBLIC_KEY)
            .verify(signed.as_bytes(), &signature)
            .expect("signature verifies with the certificate's key");
        let (header, claims) = signed.split_once('.').expect("header.claims");
        let part = |text: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url, no padding"))
                .expect("JSON")
        };
        (part(header), part(claims))
    }

    fn config_error(result: Result<AssertionSigner, Error>) -> (String, String) {
        match result {
            Err(Error::Config { field, reason }) => (field, reason),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn ps256_assertion_has_every_field_and_verifies() {
        let signer = AssertionSigner::from_pem(CERT.as_bytes(), KEY_PKCS8.as_bytes()).unwrap();
        assert_eq!(signer.x5t_s256, CERT_X5T_S256);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let url = "https://login.microsoftonline.us/contoso/oauth2/v2.0/token";
        let jwt = signer
            .sign(AssertionAlgorithm::Ps256, "app-id", url, now)
            .unwrap();
        assert!(!jwt.contains('='), "base64url without padding");
        let (header, claims) = verify(&jwt, &RSA_PSS_2048_8192_SHA256);
        assert_eq!(
            header,
            serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": CERT_X5T_S256})
        );
        assert_eq!(claims["aud"], url);
        assert_eq!(claims["iss"], "app-id");
        assert_eq!(claims["sub"], "app-id");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["nbf"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_300);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(jti).unwrap().get_version_num(), 4);
        assert_eq!(claims.as_object().unwrap().len(), 7, "{claims}");

        let again = signer
            .sign(AssertionAlgorithm::Ps256, "app-id", url, now)
            .unwrap();
        assert_ne!(verify(&again, &RSA_PSS_2048_8192_SHA256).1["jti"], jti);
    }

    #[test]
    fn rs256_and_pkcs1_keys_work() {
        let signer = AssertionSigner::from_pem(CERT.as_bytes(), KEY_PKCS1.as_bytes()).unwrap();
        let jwt = signer
            .sign(AssertionAlgorithm::Rs256, "app", "aud", SystemTime::now())
            .unwrap();
        let (header, _) = verify(&jwt, &RSA_PKCS1_2048_8192_SHA256);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t#S256"], CERT_X5T_S256);
    }

    #[test]
    fn bad_pem_names_the_field_and_the_cause() {
        let cert = CERT.as_bytes();
        let key = KEY_PKCS8.as_bytes();
        let cases: [(&[u8], &[u8], &str, &str); 7] = [
            (cert, b"", "privateKeyPem", "no -----BEGIN PRIVATE KEY"),
            (cert, CERT.as_bytes(), "privateKeyPem", "no -----BEGIN PRIVATE KEY"),
            (cert, EC_KEY.as_bytes(), "privateKeyPem", "not an RSA key"),
            (
                cert,
                b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "privateKeyPem",
                "encrypted",
            ),
            (
                cert,
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n",
                "privateKeyPem",
                "not valid PEM",
            ),
            (key, key, "certificatePem", "no -----BEGIN CERTIFICATE-----"),
            (
                OTHER_CERT.as_bytes(),
                key,
                "certificatePem",
                "not for privateKeyPem's key",
            ),
        ];
        for (cert, key, field, why) in cases {
            let (got_field, reason) = config_error(AssertionSigner::from_pem(cert, key));
            assert_eq!(got_field, field, "{reason}");
            assert!(reason.contains(why), "{field}: {reason}");
            assert!(!reason.contains("MII"), "no key material in {reason}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let signer = AssertionSigner::from_pem(CERT.as_bytes(), KEY_PKCS8.as_bytes()).unwrap();
        let shown = format!("{signer:?}");
        assert!(
            shown.contains("redacted") && shown.contains(CERT_X5T_S256),
            "{shown}"
        );
    }
}
