//! The token endpoint (client secret and client assertion flows), tokens on
//! Graph requests, and HTTPS.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ius_emulator::{App, Config, Emulator, Fault, FaultRule, TlsIdentity};
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const SECRET_APP: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const CERT_APP: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const SECRET: &str = "test-only~secret.value";
const SCOPE: &str = "https://graph.microsoft.com/.default";
const C1: &str = "/beta/deviceManagement/deviceConfigurations/c1/userStatuses";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn apps() -> Vec<App> {
    vec![
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
            certificate_pem: Some(fixture("test-only-app-cert.pem")),
        },
    ]
}

fn start() -> Emulator {
    start_with(Config::default())
}

fn start_with(config: Config) -> Emulator {
    Emulator::start(Config {
        apps: apps(),
        ..config
    })
    .unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A response read in full: status and JSON body (Null if not JSON).
struct Resp {
    status: u16,
    body: Value,
    client_request_id: Option<String>,
}

fn read(mut resp: ureq::http::Response<ureq::Body>) -> Resp {
    let client_request_id = resp
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.body_mut().read_to_string().unwrap();
    Resp {
        status: resp.status().as_u16(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        client_request_id,
    }
}

fn token_url(emu: &Emulator) -> String {
    format!("{}/{TENANT}/oauth2/v2.0/token", emu.base_url())
}

fn post_form(emu: &Emulator, pairs: &[(&str, &str)]) -> Resp {
    post_form_to(&agent(), &token_url(emu), pairs)
}

fn post_form_to(agent: &ureq::Agent, url: &str, pairs: &[(&str, &str)]) -> Resp {
    read(
        agent
            .post(url)
            .header("client-request-id", "0f0e0d0c-0b0a-0908-0706-050403020100")
            .send_form(pairs.iter().copied())
            .unwrap(),
    )
}

fn secret_form<'a>(client_id: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", client_id),
        ("scope", SCOPE),
        ("grant_type", "client_credentials"),
        ("client_secret", secret),
    ]
}

fn get_graph(emu: &Emulator, token: &str) -> Resp {
    read(
        agent()
            .get(format!("{}{C1}", emu.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap(),
    )
}

/// Asserts an Entra-shaped error; returns its description.
fn aad_error(resp: &Resp, status: u16, error: &str, code: u32) -> String {
    let b = &resp.body;
    assert_eq!(resp.status, status, "{b}");
    assert_eq!(b["error"], error, "{b}");
    assert_eq!(b["error_codes"], json!([code]), "{b}");
    let description = b["error_description"].as_str().unwrap().to_owned();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    let trace = b["trace_id"].as_str().unwrap();
    let correlation = b["correlation_id"].as_str().unwrap();
    uuid_like(trace);
    uuid_like(correlation);
    assert!(description.contains(&format!("\r\nTrace ID: {trace}\r\n")));
    assert!(description.contains(&format!("Correlation ID: {correlation}\r\n")));
    assert!(description.contains(&format!("Timestamp: {}", b["timestamp"].as_str().unwrap())));
    assert_eq!(
        b["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
    description
}

fn uuid_like(s: &str) {
    assert_eq!(s.len(), 36, "{s}");
    assert_eq!(s.matches('-').count(), 4, "{s}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// base64url(SHA-256(DER)) of the first certificate in a PEM fixture.
fn x5t_s256(cert_fixture: &str) -> String {
    let der = CertificateDer::from_pem_slice(fixture(cert_fixture).as_bytes()).unwrap();
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &der))
}

/// A client assertion signed with the fixture key.
fn sign(alg: &str, header: Value, claims: Value) -> String {
    let key_pem = fixture("test-only-app-key.pkcs8.pem");
    let der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let padding: &dyn signature::RsaEncoding = match alg {
        "PS256" => &signature::RSA_PSS_SHA256,
        _ => &signature::RSA_PKCS1_SHA256,
    };
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut sig)
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "x5t#S256": x5t_s256("test-only-app-cert.pem")})
}

fn claims(emu: &Emulator) -> Value {
    let t = now();
    json!({
        "aud": token_url(emu),
        "iss": CERT_APP,
        "sub": CERT_APP,
        "jti": uuid(),
        "nbf": t,
        "iat": t,
        "exp": t + 600,
    })
}

fn uuid() -> String {
    // Unique enough per test run without another dependency.
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn post_assertion(emu: &Emulator, assertion: &str) -> Resp {
    post_form(
        emu,
        &[
            ("client_id", CERT_APP),
            ("scope", SCOPE),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ],
    )
}

#[test]
fn secret_flow_issues_a_token_that_graph_accepts() {
    let emu = start();
    let resp = post_form(&emu, &secret_form(SECRET_APP, SECRET));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["token_type"], "Bearer");
    assert_eq!(resp.body["expires_in"], 3599);
    assert_eq!(resp.body["ext_expires_in"], 3599);
    let token = resp.body["access_token"].as_str().unwrap().to_owned();
    assert!(token.len() > 40);
    assert_eq!(emu.issued_tokens(), 1);

    assert_eq!(get_graph(&emu, &token).status, 200);
    // Token requests are logged apart from Graph requests.
    assert_eq!(emu.requests().len(), 1);
    let logged = emu.token_requests();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].method, "POST");
    assert_eq!(logged[0].path(), format!("/{TENANT}/oauth2/v2.0/token"));
    assert!(
        logged[0]
            .body_str()
            .contains("grant_type=client_credentials")
    );
    emu.clear_token_requests();
    assert!(emu.token_requests().is_empty());
}

#[test]
fn secret_errors_are_entra_shaped() {
    let emu = start();
    let resp = post_form(&emu, &secret_form(SECRET_APP, "wrong"));
    let d = aad_error(&resp, 401, "invalid_client", 7_000_215);
    assert!(d.contains("Invalid client secret"), "{d}");
    // The client's client-request-id (a GUID) becomes the correlation id.
    assert_eq!(
        resp.body["correlation_id"].as_str(),
        resp.client_request_id.as_deref()
    );
    // An app without a secret rejects any secret the same way.
    let resp = post_form(&emu, &secret_form(CERT_APP, SECRET));
    aad_error(&resp, 401, "invalid_client", 7_000_215);

    let resp = post_form(
        &emu,
        &secret_form("aaaaaaaa-0000-0000-0000-00000000dead", SECRET),
    );
    aad_error(&resp, 400, "unauthorized_client", 700_016);

    let url = format!("{}/other-tenant/oauth2/v2.0/token", emu.base_url());
    let resp = post_form_to(&agent(), &url, &secret_form(SECRET_APP, SECRET));
    aad_error(&resp, 400, "invalid_request", 90_002);

    let mut form = secret_form(SECRET_APP, SECRET);
    form[2].1 = "password";
    aad_error(
        &post_form(&emu, &form),
        400,
        "unsupported_grant_type",
        70_003,
    );

    let mut form = secret_form(SECRET_APP, SECRET);
    form.remove(3);
    aad_error(&post_form(&emu, &form), 401, "invalid_client", 7_000_218);
    form.remove(0);
    let d = aad_error(&post_form(&emu, &form), 400, "invalid_request", 900_144);
    assert!(d.contains("'client_id'"), "{d}");

    let resp = read(agent().get(token_url(&emu)).call().unwrap());
    aad_error(&resp, 400, "invalid_request", 900_561);

    assert_eq!(emu.issued_tokens(), 0);
    assert_eq!(emu.token_requests().len(), 8);
    assert!(emu.requests().is_empty());
}

#[test]
fn scope_must_match_the_cloud() {
    let emu = start();
    let mut form = secret_form(SECRET_APP, SECRET);
    form[1].1 = "https://graph.microsoft.us/.default";
    aad_error(&post_form(&emu, &form), 400, "invalid_scope", 70_011);
    form[1].1 = "https://graph.microsoft.com/User.Read";
    aad_error(&post_form(&emu, &form), 400, "invalid_scope", 1_002_012);

    let us = start_with(Config {
        expected_scope: "https://graph.microsoft.us/.default".into(),
        token_lifetime: Duration::from_secs(60),
        ..Config::default()
    });
    form[1].1 = "https://graph.microsoft.us/.default";
    let resp = post_form(&us, &form);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["expires_in"], 60);
    form[1].1 = SCOPE;
    aad_error(&post_form(&us, &form), 400, "invalid_scope", 70_011);
}

#[test]
fn certificate_flow_accepts_ps256_and_rs256() {
    let emu = start();
    for alg in ["PS256", "RS256"] {
        let resp = post_assertion(&emu, &sign(alg, header(alg), claims(&emu)));
        assert_eq!(resp.status, 200, "{alg}: {}", resp.body);
        let token = resp.body["access_token"].as_str().unwrap();
        assert_eq!(get_graph(&emu, token).status, 200);
    }
    assert_eq!(emu.issued_tokens(), 2);
    // `aud` may also be an array holding the endpoint; `nbf` may be absent
    // when `iat` is there.
    let mut c = claims(&emu);
    c["aud"] = json!(["https://example.invalid/", token_url(&emu)]);
    c.as_object_mut().unwrap().remove("nbf");
    let resp = post_assertion(&emu, &sign("PS256", header("PS256"), c));
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[test]
fn tampered_or_foreign_signatures_are_rejected() {
    let emu = start();
    let good = sign("PS256", header("PS256"), claims(&emu));
    // Flip one bit of the signature.
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 1;
    let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    let d = aad_error(
        &post_assertion(&emu, &tampered),
        401,
        "invalid_client",
        700_027,
    );
    assert!(d.contains("did not match the expected signature"), "{d}");
    // Claims changed after signing.
    let (h, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut c = claims(&emu);
    c["iss"] = json!(CERT_APP);
    c["exp"] = json!(now() + 300);
    let swapped = format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(c.to_string()));
    aad_error(
        &post_assertion(&emu, &swapped),
        401,
        "invalid_client",
        700_027,
    );
    // A signature by the right key, but RS256 announced as PS256.
    let mismatched = sign("RS256", header("PS256"), claims(&emu));
    aad_error(
        &post_assertion(&emu, &mismatched),
        401,
        "invalid_client",
        700_027,
    );
    // x5t#S256 of a certificate the app does not have.
    let mut h = header("PS256");
    h["x5t#S256"] = json!(x5t_s256("test-only-other-cert.pem"));
    let d = aad_error(
        &post_assertion(&emu, &sign("PS256", h, claims(&emu))),
        401,
        "invalid_client",
        700_027,
    );
    assert!(d.contains("The key was not found"), "{d}");
    // The rejected assertions did not use up their jti: the good one works.
    assert_eq!(post_assertion(&emu, &good).status, 200);
}

#[test]
fn assertion_claims_are_checked() {
    let emu = start();
    let t = now();
    let check = |c: Value, code: u32, needle: &str| {
        let resp = post_assertion(&emu, &sign("PS256", header("PS256"), c));
        let d = aad_error(&resp, 401, "invalid_client", code);
        assert!(d.contains(needle), "{d}");
    };
    let with = |key: &str, value: Value| {
        let mut c = claims(&emu);
        c[key] = value;
        c
    };
    check(
        with("exp", json!(t - 60)),
        700_024,
        "The assertion has expired",
    );
    check(with("nbf", json!(t + 3600)), 700_024, "not yet valid");
    let mut long = claims(&emu);
    // Set together: claims() reads the clock again, maybe a second later.
    long["nbf"] = json!(t);
    long["iat"] = json!(t);
    long["exp"] = json!(t + 601);
    check(long, 700_024, "10 minutes");
    let mut no_start = claims(&emu);
    no_start.as_object_mut().unwrap().remove("nbf");
    no_start.as_object_mut().unwrap().remove("iat");
    no_start["exp"] = json!(t + 3600);
    check(no_start, 700_024, "10 minutes");
    check(
        with(
            "aud",
            json!("https://login.microsoftonline.com/x/oauth2/v2.0/token"),
        ),
        50_013,
        "audience",
    );
    check(with("iss", json!("someone-else")), 700_021, "'iss'");
    check(with("sub", json!("someone-else")), 700_021, "'sub'");
    let mut no_jti = claims(&emu);
    no_jti.as_object_mut().unwrap().remove("jti");
    check(no_jti, 50_027, "'jti'");

    // Replay: the same assertion twice.
    let once = sign("RS256", header("RS256"), claims(&emu));
    assert_eq!(post_assertion(&emu, &once).status, 200);
    let d = aad_error(&post_assertion(&emu, &once), 401, "invalid_client", 50_013);
    assert!(d.contains("already been used"), "{d}");
    assert_eq!(emu.issued_tokens(), 1);
}

#[test]
fn malformed_assertions_are_rejected() {
    let emu = start();
    let c = claims(&emu);
    let mut hs = header("PS256");
    hs["alg"] = json!("HS256");
    let mut no_x5t = header("PS256");
    no_x5t.as_object_mut().unwrap().remove("x5t#S256");
    let mut typ = header("PS256");
    typ["typ"] = json!("at+jwt");
    let good = sign("PS256", header("PS256"), c.clone());
    let padded = format!("{good}==");
    for bad in [
        "not-a-jwt".to_owned(),
        "a.b".to_owned(),
        "e30.e30.".to_owned(),
        padded,
        sign("PS256", hs, c.clone()),
        sign("PS256", no_x5t, c.clone()),
        sign("PS256", typ, c),
    ] {
        aad_error(&post_assertion(&emu, &bad), 401, "invalid_client", 50_027);
    }
    // A wrong or missing client_assertion_type.
    let resp = post_form(
        &emu,
        &[
            ("client_id", CERT_APP),
            ("scope", SCOPE),
            ("grant_type", "client_credentials"),
            ("client_assertion", &good),
        ],
    );
    aad_error(&resp, 400, "invalid_request", 900_144);
}

#[test]
fn graph_rejects_expired_and_unknown_tokens() {
    let emu = start();
    let token = post_form(&emu, &secret_form(SECRET_APP, SECRET)).body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get_graph(&emu, &token).status, 200);
    emu.expire_issued_tokens();
    let resp = get_graph(&emu, &token);
    assert_eq!(resp.status, 401);
    assert_eq!(resp.body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        resp.body["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
    let resp = get_graph(&emu, "made-up");
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.body["error"]["message"],
        "Access token validation failure."
    );
    // A fresh token works again; the expired one stays expired.
    let fresh = post_form(&emu, &secret_form(SECRET_APP, SECRET)).body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get_graph(&emu, &fresh).status, 200);
    assert_eq!(get_graph(&emu, &token).status, 401);
    assert_eq!(emu.issued_tokens(), 2);
}

#[test]
fn a_static_token_still_works_beside_issued_ones() {
    let emu = start_with(Config {
        token: Some("static".into()),
        ..Config::default()
    });
    assert_eq!(get_graph(&emu, "static").status, 200);
    let token = post_form(&emu, &secret_form(SECRET_APP, SECRET)).body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get_graph(&emu, &token).status, 200);
    assert_eq!(get_graph(&emu, "other").status, 401);
}

#[test]
fn faults_reach_the_token_endpoint_only_with_a_path_filter() {
    let emu = start();
    // No path filter: about Graph only, so the token request is untouched.
    emu.add_fault(FaultRule::next(
        1,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
    ));
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("1".into()),
            },
        )
        .path_contains("/oauth2/"),
    );
    assert_eq!(
        post_form(&emu, &secret_form(SECRET_APP, SECRET)).status,
        503
    );
    let resp = post_form(&emu, &secret_form(SECRET_APP, SECRET));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(emu.token_requests().len(), 2);
    assert_eq!(emu.issued_tokens(), 1);
    let token = resp.body["access_token"].as_str().unwrap();
    assert_eq!(get_graph(&emu, token).status, 500);
    assert_eq!(get_graph(&emu, token).status, 200);
}

#[test]
fn admin_endpoints_cover_tokens() {
    let emu = start();
    let token = post_form(&emu, &secret_form(SECRET_APP, SECRET)).body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = emu.base_url();
    let stats = read(
        agent()
            .get(format!("{base}/_emulator/stats"))
            .call()
            .unwrap(),
    );
    assert_eq!(stats.body["tokenRequests"], 1);
    assert_eq!(stats.body["issuedTokens"], 1);
    let logged = read(
        agent()
            .get(format!("{base}/_emulator/token-requests"))
            .call()
            .unwrap(),
    );
    assert_eq!(logged.body.as_array().unwrap().len(), 1);
    let expire = agent()
        .post(format!("{base}/_emulator/tokens/expire"))
        .send_empty()
        .unwrap();
    assert_eq!(expire.status(), 204);
    assert_eq!(get_graph(&emu, &token).status, 401);
    let cleared = agent()
        .delete(format!("{base}/_emulator/token-requests"))
        .call()
        .unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(emu.token_requests().is_empty());
}

#[test]
fn bad_app_certificates_fail_start() {
    let bad = |pem: &str| {
        Emulator::start(Config {
            apps: vec![App {
                tenant: "t".into(),
                client_id: "c".into(),
                secret: None,
                certificate_pem: Some(pem.into()),
            }],
            ..Config::default()
        })
        .unwrap_err()
    };
    assert_eq!(bad("nothing").kind(), std::io::ErrorKind::InvalidInput);
    // The key file is no certificate.
    bad(&fixture("test-only-app-key.pkcs8.pem"));
}

// ---- HTTPS ----

fn tls_config() -> Config {
    Config {
        tls: Some(TlsIdentity {
            certificate_chain_pem: fixture("test-only-server-cert.pem"),
            private_key_pem: fixture("test-only-server-key.pem"),
        }),
        ..Config::default()
    }
}

fn trusting_agent() -> ureq::Agent {
    let ca = ureq::tls::Certificate::from_pem(fixture("test-only-ca.pem").as_bytes()).unwrap();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
                .build(),
        )
        .build()
        .into()
}

#[test]
fn https_serves_graph_and_tokens() {
    let emu = start_with(tls_config());
    let base = emu.base_url();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let agent = trusting_agent();

    // Certificate flow over HTTPS: the audience is the https URL.
    let resp = post_assertion_with(&agent, &emu);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let token = resp.body["access_token"].as_str().unwrap();

    let created = agent
        .post(format!("{base}{C1}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(json!({"id": "u1", "userDisplayName": "User One"}).to_string())
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{base}{C1}/u1"));
    let resp = read(
        agent
            .get(&location)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap(),
    );
    assert_eq!(resp.status, 200);
    assert!(
        resp.body["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    // Also by name: the certificate covers localhost.
    let by_name = base.replace("127.0.0.1", "localhost");
    let resp = agent
        .get(format!("{by_name}/_emulator/health"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn post_assertion_with(agent: &ureq::Agent, emu: &Emulator) -> Resp {
    let assertion = sign("PS256", header("PS256"), claims(emu));
    post_form_to(
        agent,
        &token_url(emu),
        &[
            ("client_id", CERT_APP),
            ("scope", SCOPE),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ],
    )
}

#[test]
fn https_is_refused_by_a_client_with_default_roots() {
    let emu = start_with(tls_config());
    let err = agent()
        .get(format!("{}/_emulator/health", emu.base_url()))
        .call()
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("certificate") || text.contains("Certificate"),
        "{text}"
    );
    // The failed handshake does not take the server down.
    let ok = trusting_agent()
        .get(format!("{}/_emulator/health", emu.base_url()))
        .call()
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[test]
fn faults_work_over_https() {
    let emu = start_with(Config {
        token: Some("t".into()),
        ..tls_config()
    });
    emu.add_fault(FaultRule::next(
        1,
        Fault::Status {
            status: 503,
            retry_after: Some("1".into()),
        },
    ));
    emu.add_fault(FaultRule::next(1, Fault::Truncated));
    emu.add_fault(FaultRule::next(1, Fault::Close));
    let agent = trusting_agent();
    let get = || {
        agent
            .get(format!("{}{C1}", emu.base_url()))
            .header("Authorization", "Bearer t")
            .call()
    };
    assert_eq!(get().unwrap().status(), 503);
    // Truncated: the head arrives, the body falls short.
    let truncated = get().and_then(|mut r| r.body_mut().read_to_string());
    assert!(truncated.is_err(), "{truncated:?}");
    assert!(get().is_err());
    assert_eq!(get().unwrap().status(), 200);
    assert_eq!(emu.requests().len(), 4);
}

#[test]
fn bad_tls_identity_fails_start() {
    let err = Emulator::start(Config {
        tls: Some(TlsIdentity {
            certificate_chain_pem: fixture("test-only-server-cert.pem"),
            private_key_pem: fixture("test-only-app-key.pkcs8.pem"),
        }),
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn binary_serves_https_and_tokens() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ius-emulator"))
        .args(["--listen", "127.0.0.1:0", "--token-lifetime", "120"])
        .arg("--app")
        .arg(format!("{TENANT}:{SECRET_APP}:{SECRET}"))
        .arg("--app-cert")
        .arg(format!("{TENANT}:{CERT_APP}:{dir}/test-only-app-cert.pem"))
        .arg("--tls-cert")
        .arg(format!("{dir}/test-only-server-cert.pem"))
        .arg("--tls-key")
        .arg(format!("{dir}/test-only-server-key.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let result = (|| {
        let port: u16 = line
            .strip_suffix('\n')
            .and_then(|l| l.strip_prefix("listening on https://127.0.0.1:"))
            .ok_or(format!("bad first line {line:?}"))?
            .parse()
            .map_err(|_| "bad port")?;
        let url = format!("https://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token");
        let resp = post_form_to(&trusting_agent(), &url, &secret_form(SECRET_APP, SECRET));
        Ok::<_, String>((resp.status, resp.body))
    })();
    child.kill().unwrap();
    let _ = child.wait();
    let (status, body) = result.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 120);
}
