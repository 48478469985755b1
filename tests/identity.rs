//! App-only authentication end to end against the emulator's token endpoint: secret and
//! certificate flows, one token for many threads, refresh on expiry and on a 401, the AADSTS code
//! of a refused secret, national-cloud scopes, a proxy for both kinds of request, and logs and
//! errors that never carry a secret, a token or an assertion.

mod common;

use std::time::Duration;

use common::{TunnelProxy, update};
use intune_user_status::{
    Client, ClientBuilder, ClientCertificateCredential, ClientSecretCredential, Cloud, Credential,
};
use ius_emulator::{App, Config, Emulator};

const TENANT: &str = "contoso.onmicrosoft.com";
const SECRET_APP: &str = "11111111-1111-1111-1111-111111111111";
const CERT_APP: &str = "22222222-2222-2222-2222-222222222222";
const SECRET: &str = "s3cret~value+with/odd=chars";
const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";
const CERT: &str = include_str!("../emulator/tests/fixtures/test-only-app-cert.pem");
const KEY: &str = include_str!("../emulator/tests/fixtures/test-only-app-key.pkcs8.pem");

/// An emulator with both apps registered, no static token, and 8 seeded user statuses.
fn identity_emulator(token_lifetime: Duration, scope: &str) -> Emulator {
    Emulator::start(Config {
        apps: vec![
            App {
                tenant: TENANT.into(),
                client_id: SECRET_APP.into(),
                secret: Some(SECRET.into()),
                certificate_pem: None,
            },
            App {
                tenant: TENANT.into(),
                client_id: CERT_APP.into(),
                secret: None,
                certificate_pem: Some(CERT.into()),
            },
        ],
        token_lifetime,
        expected_scope: scope.into(),
        seed: common::eight_statuses(),
        ..Config::default()
    })
    .unwrap()
}

fn emulator() -> Emulator {
    identity_emulator(
        Duration::from_secs(3599),
        "https://graph.microsoft.com/.default",
    )
}

fn secret_credential(emu: &Emulator, secret: &str) -> Credential {
    ClientSecretCredential::new(TENANT, SECRET_APP, secret)
        .authority_host(emu.base_url())
        .into()
}

fn client_with(emu: &Emulator, credential: Credential) -> ClientBuilder {
    Client::builder()
        .base_url(emu.base_url())
        .credential(credential)
}

/// 50 updates from 8 threads sharing one client.
fn fifty_updates_from_eight_threads(client: &Client) {
    std::thread::scope(|scope| {
        for t in 0..8 {
            scope.spawn(move || {
                for n in 0..50 / 8 + usize::from(t < 50 % 8) {
                    update(client, t, n as i32 + 1).unwrap();
                }
            });
        }
    });
}

#[test]
fn a_client_secret_fetches_one_token_for_fifty_updates_from_eight_threads() {
    let emu = emulator();
    let client = client_with(&emu, secret_credential(&emu, SECRET))
        .build()
        .unwrap();
    fifty_updates_from_eight_threads(&client);
    assert_eq!(emu.requests().len(), 50);
    let tokens = emu.token_requests();
    assert_eq!(tokens.len(), 1, "one token request for all threads");
    let form = tokens[0].body_str();
    assert_eq!(tokens[0].target, format!("/{TENANT}/oauth2/v2.0/token"));
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains(&format!("client_id={SECRET_APP}")), "{form}");
    assert!(
        form.contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
        "{form}"
    );
    // Every Graph request carried the issued token, not anything else.
    for request in emu.requests() {
        assert!(
            request
                .header("authorization")
                .unwrap()
                .starts_with("Bearer ius-emulator-at.")
        );
    }
}

#[test]
fn a_certificate_credential_signs_an_assertion_the_endpoint_accepts() {
    let emu = emulator();
    let credential = ClientCertificateCredential::from_pem(TENANT, CERT_APP, CERT, KEY)
        .unwrap()
        .authority_host(emu.base_url());
    let client = client_with(&emu, credential.into()).build().unwrap();
    update(&client, 0, 5).unwrap();
    let form = emu.token_requests()[0].body_str();
    assert!(
        form.contains(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        ),
        "{form}"
    );
    assert!(!form.contains("client_secret"));
    assert_eq!(
        emu.user_status(DIRECT.replace("cfg-1", "cfg-0").as_str(), "u1")
            .unwrap()["devicesCount"],
        5
    );
}

#[test]
fn an_expiring_token_is_refreshed_exactly_once_for_all_threads() {
    // A 6 s token is refreshed at half its life: 3 s for the fifty updates before a second
    // refresh would be due (under Wine on a loaded machine they took more than 1 s).
    let emu = identity_emulator(
        Duration::from_secs(6),
        "https://graph.microsoft.com/.default",
    );
    let client = client_with(&emu, secret_credential(&emu, SECRET))
        .build()
        .unwrap();
    update(&client, 0, 1).unwrap();
    assert_eq!(emu.token_requests().len(), 1);
    std::thread::sleep(Duration::from_millis(3100));
    fifty_updates_from_eight_threads(&client);
    assert_eq!(emu.token_requests().len(), 2, "exactly one refresh");
}

#[test]
fn a_401_on_a_cached_token_refreshes_once_and_retries_once() {
    let emu = emulator();
    let client = client_with(&emu, secret_credential(&emu, SECRET))
        .build()
        .unwrap();
    update(&client, 0, 1).unwrap();
    emu.expire_issued_tokens(); // the cached token is now refused by Graph
    emu.clear_requests();
    update(&client, 0, 2).unwrap();
    assert_eq!(emu.token_requests().len(), 2, "one refresh");
    let requests = emu.requests();
    assert_eq!(requests.len(), 2, "the refused request and one retry");
    assert_ne!(
        requests[0].header("authorization"),
        requests[1].header("authorization")
    );
}

#[test]
fn a_wrong_secret_is_an_auth_error_with_the_aadsts_code_and_graph_sees_nothing() {
    let emu = emulator();
    let client = client_with(&emu, secret_credential(&emu, "wrong-secret-value"))
        .build()
        .unwrap();
    let err = update(&client, 0, 1).unwrap_err();
    let auth = err.auth().expect("an Auth error");
    assert_eq!(auth.aadsts.as_deref(), Some("AADSTS7000215"));
    assert_eq!(auth.error.as_deref(), Some("invalid_client"));
    assert!(auth.trace_id.is_some() && auth.correlation_id.is_some());
    assert!(!auth.transient, "a refused secret is not retried");
    assert_eq!(emu.token_requests().len(), 1);
    assert!(emu.requests().is_empty());
    assert!(!format!("{err} {err:?}").contains("wrong-secret-value"));
}

#[test]
fn the_cloud_chooses_the_scope_even_with_a_base_url() {
    let emu = identity_emulator(
        Duration::from_secs(3599),
        "https://graph.microsoft.us/.default",
    );
    let client = client_with(&emu, secret_credential(&emu, SECRET))
        .cloud(Cloud::UsGov)
        .build()
        .unwrap();
    update(&client, 0, 1).unwrap();
    let form = emu.token_requests()[0].body_str();
    assert!(
        form.contains("scope=https%3A%2F%2Fgraph.microsoft.us%2F.default"),
        "{form}"
    );
}

/// [`identity_emulator`] serving HTTPS as `graph.proxied.test` / `login.proxied.test`.
fn proxied_emulator() -> Emulator {
    let config = Config {
        apps: vec![App {
            tenant: TENANT.into(),
            client_id: SECRET_APP.into(),
            secret: Some(SECRET.into()),
            certificate_pem: None,
        }],
        seed: common::eight_statuses(),
        tls: Some(common::proxied_tls()),
        ..Config::default()
    };
    Emulator::start(config).unwrap()
}

#[test]
fn token_and_graph_requests_both_go_through_the_proxy() {
    // Loopback never goes through a proxy, so both hosts have names the proxy maps to loopback.
    let graph = proxied_emulator();
    let login = proxied_emulator(); // a separate authority host, so the proxy sees both
    let (graph_url, login_url) = (
        common::proxied_url("graph.proxied.test", &graph),
        common::proxied_url("login.proxied.test", &login),
    );
    let proxy = TunnelProxy::start();
    let client = Client::builder()
        .base_url(&graph_url)
        .credential(
            ClientSecretCredential::new(TENANT, SECRET_APP, SECRET).authority_host(&login_url),
        )
        .extra_root_certificates_pem(common::TEST_CA)
        .proxy(&proxy.url)
        .build()
        .unwrap();
    // The token comes from `login`, which `graph` does not know: Graph answers 401 (after one
    // refresh and retry), but only after both hosts were reached through the proxy.
    let err = update(&client, 0, 1).unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    let seen = proxy.seen().join("\n");
    for host in [&login_url, &graph_url] {
        let authority = host.trim_start_matches("https://");
        assert!(seen.contains(&format!("CONNECT {authority} ")), "{seen}");
    }
    assert_eq!(
        login.token_requests().len(),
        2,
        "the first token, and one after the 401"
    );
    assert_eq!(graph.requests().len(), 2);
    // The proxy carried both hosts' traffic, and never a token or the secret in the clear:
    // both travelled inside the TLS tunnels.
    let carried = proxy.carried();
    let tokens: Vec<String> = graph
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert!(
        tokens.iter().all(|t| t.starts_with("Bearer ")),
        "{tokens:?}"
    );
    let contains = |needle: &[u8]| carried.windows(needle.len()).any(|w| w == needle);
    for token in &tokens {
        let token = token.trim_start_matches("Bearer ").as_bytes();
        assert!(!contains(token), "the proxy saw a token");
    }
    assert!(!contains(SECRET.as_bytes()), "the proxy saw the secret");
    assert!(
        !contains(b"Bearer"),
        "the proxy saw an Authorization header"
    );
    assert!(
        contains(b"CONNECT graph.proxied.test"),
        "the proxy's log is complete"
    );
    assert!(
        carried.len() > 4096,
        "the TLS traffic went through: {}",
        carried.len()
    );
}

#[test]
fn token_requests_to_a_loopback_authority_never_go_through_a_proxy() {
    let emu = emulator();
    let proxy = TunnelProxy::start();
    let client = client_with(&emu, secret_credential(&emu, SECRET))
        .proxy(&proxy.url)
        .build()
        .unwrap();
    update(&client, 0, 1).unwrap();
    assert_eq!(emu.token_requests().len(), 1);
    assert_eq!(
        proxy.seen(),
        Vec::<String>::new(),
        "nothing went through the proxy"
    );
}

#[test]
fn logs_and_errors_of_a_whole_run_never_hold_a_secret_token_or_assertion() {
    let captured = common::capture_logs();
    let emu = emulator();
    let mut shown = Vec::new();

    let secret_client = client_with(&emu, secret_credential(&emu, SECRET))
        .build()
        .unwrap();
    update(&secret_client, 0, 1).unwrap();
    emu.expire_issued_tokens();
    update(&secret_client, 0, 2).unwrap(); // 401, refresh, retry
    let err = update(&secret_client, 99, 1).unwrap_err(); // 404
    shown.push(format!("{err} {err:?}"));

    let cert = ClientCertificateCredential::from_pem(TENANT, CERT_APP, CERT, KEY)
        .unwrap()
        .authority_host(emu.base_url());
    shown.push(format!("{cert:?}"));
    let cert_client = client_with(&emu, cert.into()).build().unwrap();
    update(&cert_client, 1, 1).unwrap();
    shown.push(format!("{cert_client:?}"));

    let wrong = client_with(&emu, secret_credential(&emu, "wrong-secret-value"))
        .build()
        .unwrap();
    let err = update(&wrong, 0, 1).unwrap_err();
    shown.push(format!("{err} {err:?}"));

    let logs = captured.text();
    assert!(logs.contains("HTTP 204"), "attempts are logged: {logs}");
    assert!(logs.contains("401"), "the refresh is logged: {logs}");
    let everything = format!("{logs}\n{}", shown.join("\n"));
    // Issued tokens start with this prefix; assertions are JWTs (base64 of `{"` is `eyJ`).
    for secret in [
        SECRET,
        "wrong-secret-value",
        "ius-emulator-at.",
        "eyJ",
        "PRIVATE KEY",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[test]
fn a_stalled_token_endpoint_cannot_outlast_the_calls_total_budget() {
    let emu = emulator();
    emu.add_fault(
        ius_emulator::FaultRule::always(ius_emulator::Fault::NoAnswer).path_contains("/oauth2/"),
    );
    let client = client_with(&emu, secret_credential(&emu, SECRET))
        .total_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = update(&client, 0, 1).unwrap_err();
    let took = started.elapsed();
    assert!(err.auth().is_some(), "{err:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(emu.requests().is_empty(), "nothing reached Graph");
}

#[test]
fn a_resend_after_reauthentication_is_not_a_retry() {
    let emu = emulator();
    let client = client_with(&emu, secret_credential(&emu, SECRET))
        .retry_policy(intune_user_status::RetryPolicy::none())
        .build()
        .unwrap();
    update(&client, 0, 1).unwrap();
    emu.expire_issued_tokens();
    emu.clear_requests();
    // Retries are off, yet the 401 still earns its one resend with a fresh token.
    update(&client, 0, 2).unwrap();
    let requests = emu.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("retry-attempt"), None);
}
