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

#[test]
fn a_certificate_credential_authenticates() {
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
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap();
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
