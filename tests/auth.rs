//! App-only credentials end to end (a loopback token endpoint, the emulator as Graph), and the
//! pipeline's answer to a 401: drop the token, try once more with a fresh one.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{RawServer, TOKEN, emulator, http_response};
use intune_user_status::{
    AccessToken, ClientCertificateCredential, ClientSecretCredential, Error, Target, TokenProvider,
    UserStatusPatch,
};
use ius_emulator::PatchReturns;

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";
const CERT: &str = include_str!("fixtures/test-only-rsa-cert.pem");
const KEY: &str = include_str!("fixtures/test-only-rsa-key.pkcs1.pem");

fn patch() -> UserStatusPatch {
    UserStatusPatch::new().devices_count(1)
}

/// A token endpoint that issues [`TOKEN`] on a fresh connection per request, so its connection
/// count is its request count.
fn token_endpoint(status: &str, body: &str) -> RawServer {
    RawServer::start(http_response(
        status,
        &[
            ("Content-Type", "application/json"),
            ("Connection", "close"),
        ],
        body.as_bytes(),
    ))
}

fn issued() -> String {
    format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{TOKEN}"}}"#)
}

#[test]
fn a_client_secret_gets_one_token_for_many_updates() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let login = token_endpoint("200 OK", &issued());
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .credential(
            ClientSecretCredential::new("contoso.onmicrosoft.com", "app-id", "s3cret")
                .authority_host(&login.base_url),
        )
        .build()
        .unwrap();
    for _ in 0..3 {
        client
            .update_user_status(&Target::new("cfg-1", "u1"), &patch())
            .unwrap();
    }
    assert_eq!(login.connections(), 1);
    assert_eq!(emu.requests().len(), 3);
}

/// The form fields of a token request body (`application/x-www-form-urlencoded`).
fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// One base64url (no padding) JWT part as JSON.
fn jwt_part(text: &str) -> serde_json::Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url without padding");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn a_certificate_credential_authenticates() {
    use base64::Engine;
    use rustls_pki_types::pem::PemObject;

    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let login = token_endpoint("200 OK", &issued());
    let credential =
        ClientCertificateCredential::from_pem("contoso.onmicrosoft.com", "app-id", CERT, KEY)
            .unwrap()
            .authority_host(&login.base_url);
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .credential(credential)
        .build()
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap();
    assert_eq!(
        emu.requests()[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}")),
        "the issued token went to Graph"
    );

    // One token request: client credentials with a signed assertion, no secret.
    let requests = login.requests();
    assert_eq!(requests.len(), 1);
    let (line, body) = &requests[0];
    let path = "/contoso.onmicrosoft.com/oauth2/v2.0/token";
    assert_eq!(line, &format!("POST {path} HTTP/1.1"));
    let form = form(body);
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "app-id");
    assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(!form.contains_key("client_secret"));

    // The assertion: PS256 over header.claims with the certificate's key, naming the
    // certificate by its SHA-256 thumbprint, for this endpoint, issued by and about the app.
    let assertion = &form["client_assertion"];
    let (signed, signature) = assertion.rsplit_once('.').expect("header.claims.signature");
    let (header, claims) = signed.split_once('.').expect("header.claims");
    let (header, claims) = (jwt_part(header), jwt_part(claims));
    let der = rustls_pki_types::CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, &der));
    assert_eq!(header["alg"], "PS256", "{header}");
    assert_eq!(header["typ"], "JWT", "{header}");
    assert_eq!(header["x5t#S256"], thumbprint.as_str(), "{header}");
    assert_eq!(
        claims["aud"],
        format!("{}{path}", login.base_url),
        "{claims}"
    );
    assert_eq!(claims["iss"], "app-id");
    assert_eq!(claims["sub"], "app-id");
    assert!(
        claims["jti"].as_str().is_some_and(|jti| jti.len() >= 32),
        "{claims}"
    );
    let (nbf, exp) = (
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(
        nbf >= before.saturating_sub(1) && nbf <= before + 60,
        "{claims}"
    );
    assert_eq!(exp - nbf, 300, "five minutes: {claims}");
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url signature");
    let cert = webpki::EndEntityCert::try_from(&der).unwrap();
    cert.verify_signature(
        webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        signed.as_bytes(),
        &signature,
    )
    .expect("the signature verifies with the certificate's key");
}

#[test]
fn a_refused_secret_is_an_auth_error_with_the_aadsts_code_and_nothing_reaches_graph() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let login = token_endpoint(
        "401 Unauthorized",
        r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215],"trace_id":"tr-1","correlation_id":"co-1"}"#,
    );
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .credential(
            ClientSecretCredential::new("contoso.onmicrosoft.com", "app-id", "wrong-s3cret")
                .authority_host(&login.base_url),
        )
        .build()
        .unwrap();
    let err = client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap_err();
    let auth = err.auth().expect("an auth error");
    assert_eq!(auth.aadsts.as_deref(), Some("AADSTS7000215"));
    assert_eq!(auth.trace_id.as_deref(), Some("tr-1"));
    assert_eq!(auth.http_status, Some(401));
    assert!(!err.to_string().contains("wrong-s3cret"), "{err}");
    assert!(emu.requests().is_empty());
    assert_eq!(
        login.connections(),
        1,
        "a 4xx from the token endpoint is not retried"
    );
}

/// Hands out a stale token until told to drop it, then the one the emulator accepts.
struct Rotating {
    current: Mutex<&'static str>,
    invalidated: AtomicUsize,
}

impl TokenProvider for Rotating {
    fn token(&self) -> Result<AccessToken, Error> {
        Ok(AccessToken::new(*self.current.lock().unwrap()))
    }

    fn invalidate(&self, token: &AccessToken) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
        let mut current = self.current.lock().unwrap();
        if token.secret() == *current {
            *current = TOKEN;
        }
    }
}

#[test]
fn a_401_drops_the_token_and_retries_once_with_a_fresh_one() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let provider = std::sync::Arc::new(Rotating {
        current: Mutex::new("revoked-token"),
        invalidated: AtomicUsize::new(0),
    });
    struct Shared(std::sync::Arc<Rotating>);
    impl TokenProvider for Shared {
        fn token(&self) -> Result<AccessToken, Error> {
            self.0.token()
        }
        fn invalidate(&self, token: &AccessToken) {
            self.0.invalidate(token)
        }
    }
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(Shared(provider.clone()))
        .build()
        .unwrap();
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap();
    assert_eq!(emu.requests().len(), 2);
    assert_eq!(provider.invalidated.load(Ordering::SeqCst), 1);
}

#[test]
fn a_static_token_401_is_not_sent_twice() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .access_token("not-the-emulators-token")
        .build()
        .unwrap();
    let err = client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    assert_eq!(emu.requests().len(), 1);
}
