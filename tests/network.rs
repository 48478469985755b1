//! Proxies and trust stores: requests reach the service through a proxy, secrets in proxy URLs
//! stay out of errors. A slow network's answer is read whole.

mod common;

use std::time::{Duration, Instant};

use common::{
    RawServer, TEST_CA, TunnelProxy, builder, emulator, http_response, proxied_tls, proxied_url,
};
use intune_user_status::{Error, Target, UserStatusPatch};
use ius_emulator::PatchReturns;

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

#[test]
fn updates_go_through_an_explicit_proxy_with_its_credentials() {
    let emu = ius_emulator::Emulator::start(ius_emulator::Config {
        token: Some(common::TOKEN.into()),
        seed: vec![ius_emulator::SeedEntry {
            collection: DIRECT.into(),
            entity: serde_json::json!({"id": "u1"}),
        }],
        tls: Some(proxied_tls()),
        ..ius_emulator::Config::default()
    })
    .unwrap();
    let proxy = TunnelProxy::start();
    let with_credentials = proxy.url.replace("http://", "http://agent:s3cret@");
    let base_url = proxied_url("graph.proxied.test", &emu);
    let client = builder(&base_url)
        .extra_root_certificates_pem(TEST_CA)
        .proxy(with_credentials)
        .build()
        .unwrap();
    client
        .update_user_status(
            &Target::new("cfg-1", "u1"),
            &UserStatusPatch::new().devices_count(2),
        )
        .unwrap();
    let seen = proxy.seen();
    let authority = base_url.replace("https://", "");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!("CONNECT {authority} ")),
        "{seen:?}"
    );
    // Basic base64("agent:s3cret")
    assert!(seen[0].contains("YWdlbnQ6czNjcmV0"), "{seen:?}");
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 2);
}

#[test]
fn loopback_never_goes_through_a_proxy() {
    // A plain-http emulator URL with a proxy set (as HTTPS_PROXY would): the token must not go
    // through the proxy in clear, for Graph requests and token requests alike.
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let proxy = TunnelProxy::start();
    for base_url in [
        emu.base_url(),
        emu.base_url().replace("127.0.0.1", "localhost"),
    ] {
        builder(&base_url)
            .proxy(&proxy.url)
            .build()
            .unwrap()
            .update_user_status(
                &Target::new("cfg-1", "u1"),
                &UserStatusPatch::new().devices_count(5),
            )
            .unwrap();
    }
    assert_eq!(
        proxy.seen(),
        Vec::<String>::new(),
        "nothing went through the proxy"
    );
    assert_eq!(emu.requests().len(), 2);
}

#[test]
fn a_bad_proxy_url_is_a_config_error_that_hides_its_password() {
    let err = builder("http://127.0.0.1:1")
        .proxy("gopher://agent:hunter2@proxy")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "proxy"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/emulator/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn https_emulator() -> ius_emulator::Emulator {
    ius_emulator::Emulator::start(ius_emulator::Config {
        token: Some(common::TOKEN.into()),
        seed: vec![ius_emulator::SeedEntry {
            collection: DIRECT.into(),
            entity: serde_json::json!({"id": "u1"}),
        }],
        tls: Some(ius_emulator::TlsIdentity {
            certificate_chain_pem: fixture("test-only-server-cert.pem"),
            private_key_pem: fixture("test-only-server-key.pem"),
        }),
        ..ius_emulator::Config::default()
    })
    .unwrap()
}

#[test]
fn https_succeeds_with_the_inspecting_ca_added_and_fails_without_it() {
    let emu = https_emulator();
    assert!(emu.base_url().starts_with("https://"));
    let target = Target::new("cfg-1", "u1");
    let patch = UserStatusPatch::new().devices_count(4);

    let err = builder(&emu.base_url())
        .build()
        .unwrap()
        .update_user_status(&target, &patch)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport { kind: intune_user_status::TransportKind::Tls, message, .. }
            if message.to_lowercase().contains("certificate")),
        "{err:?}"
    );
    assert!(emu.requests().is_empty());

    builder(&emu.base_url())
        .extra_root_certificates_pem(fixture("test-only-ca.pem"))
        .build()
        .unwrap()
        .update_user_status(&target, &patch)
        .unwrap();
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 4);
}

#[test]
fn extra_roots_with_crlf_line_endings_are_trusted() {
    // PEM as Windows tools write it (and as a C agent reads it with fopen in text mode or not).
    let emu = https_emulator();
    let crlf = fixture("test-only-ca.pem")
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    assert!(crlf.contains("-----\r\n"));
    builder(&emu.base_url())
        .extra_root_certificates_pem(crlf)
        .build()
        .unwrap()
        .update_user_status(
            &Target::new("cfg-1", "u1"),
            &UserStatusPatch::new().devices_count(6),
        )
        .unwrap();
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 6);
}

#[test]
fn the_platform_verifier_refuses_a_server_the_systems_store_does_not_trust() {
    // The operating system's verifier (the Windows certificate store under Wine, the system's
    // roots on Linux) decides, and the test CA is in no system store: refused before any request.
    let emu = https_emulator();
    let err = builder(&emu.base_url())
        .tls_platform_verifier(true)
        .build()
        .unwrap()
        .update_user_status(
            &Target::new("cfg-1", "u1"),
            &UserStatusPatch::new().devices_count(5),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Transport {
                kind: intune_user_status::TransportKind::Tls,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(emu.requests().is_empty());
}

/// An answer trickling in slower than a read's 50 ms slice (src/tcp.rs), head and body spread
/// over many reads, is read whole: the entity comes back as sent, after one request.
#[test]
fn an_answer_trickling_in_slower_than_a_read_slice_is_read_whole() {
    let body = br#"{"id":"u1","userPrincipalName":"trickle@contoso.com","userDisplayName":"Slow Network","devicesCount":7}"#;
    let response = http_response(
        "200 OK",
        &[
            ("Content-Type", "application/json"),
            ("request-id", "rid-slow"),
        ],
        body,
    );
    let (piece, gap) = (16, Duration::from_millis(70));
    let pieces = response.len().div_ceil(piece) as u32;
    let server = RawServer::start_trickled(response, piece, gap);
    let client = builder(&server.base_url)
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let outcome = client
        .update_user_status(
            &Target::new("cfg-1", "u1"),
            &UserStatusPatch::new().devices_count(7),
        )
        .unwrap();
    let took = started.elapsed();
    let entity = outcome.entity().expect("the 200's entity");
    assert_eq!(
        entity.user_principal_name.as_deref(),
        Some("trickle@contoso.com")
    );
    assert_eq!(entity.user_display_name.as_deref(), Some("Slow Network"));
    assert_eq!(entity.devices_count, Some(7));
    assert!(
        took >= gap * (pieces - 1),
        "{pieces} pieces {gap:?} apart came in {took:?}"
    );
    assert_eq!(server.requests().len(), 1, "one request, no retry");
}
