//! What the caller sees when things go wrong: invalid input (and nothing sent), Graph's errors with
//! their ids, transport failures, timeouts and responses that are not the entity.

mod common;

use std::time::{Duration, Instant};

use common::{RawServer, TOKEN, builder, client, emulator, http_response, silent_server};
use intune_user_status::{
    Client, Error, RetryPolicy, Route, Target, TransportKind, UpdateOutcome, UserStatusPatch,
};
use ius_emulator::PatchReturns;

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

fn patch() -> UserStatusPatch {
    UserStatusPatch::new().devices_count(1)
}

fn field_of(err: &Error) -> &str {
    match err {
        Error::InvalidInput { field, .. } | Error::Config { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn invalid_input_names_the_field_and_sends_nothing() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = client(&emu.base_url());
    let good = Target::new("cfg-1", "u1");
    let cases: Vec<(Target, UserStatusPatch, &str)> = vec![
        (good.clone(), UserStatusPatch::new(), "patch"),
        (
            good.clone(),
            UserStatusPatch::new().devices_count(-1),
            "devicesCount",
        ),
        (good.clone(), patch().id("someone-else"), "id"),
        (Target::new("", "u1"), patch(), "deviceConfigurationId"),
        (Target::new("cfg-1", ""), patch(), "userStatusId"),
        // Longer than any Graph id, and than a request line may grow.
        (
            Target::new("cfg-1", "u".repeat(1025)),
            patch(),
            "userStatusId",
        ),
        (
            Target::new("é".repeat(513), "u1"),
            patch(),
            "deviceConfigurationId",
        ),
        (
            Target::autopilot_domain_join("", "u1"),
            patch(),
            "windowsAutopilotDeploymentProfileId",
        ),
        (
            Target::with_route(
                "cfg-1",
                Route::IosEnterpriseWiFiRootCertificatesForServerValidation {
                    certificate_id: String::new(),
                },
                "u1",
            ),
            patch(),
            "iosTrustedRootCertificateId",
        ),
    ];
    for (target, patch, field) in cases {
        let err = client.update_user_status(&target, &patch).unwrap_err();
        assert_eq!(field_of(&err), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    // A matching id is fine and goes on the wire.
    client.update_user_status(&good, &patch().id("u1")).unwrap();
    let requests = emu.requests();
    assert_eq!(requests.len(), 1, "only the valid update was sent");
    assert_eq!(requests[0].body_str(), r#"{"id":"u1","devicesCount":1}"#);
}

#[test]
fn json_patches_that_microsofts_python_sdk_would_send_as_empty_are_rejected() {
    for (json, field) in [
        (r#"{"status":"bogus"}"#, "status"),
        (r#"{"devicesCount":"12"}"#, "devicesCount"),
        (r#"{"devicesCount":3000000000}"#, "devicesCount"),
        (
            r#"{"lastReportedDateTime":"2017-01-01T00:00:17"}"#,
            "lastReportedDateTime",
        ),
        (r#"{"userPrincipalName":["a"]}"#, "userPrincipalName"),
        (r#"{"status":"compliant","devicecount":1}"#, "devicecount"),
    ] {
        let err = UserStatusPatch::from_json(json).unwrap_err();
        assert_eq!(field_of(&err), field, "{json}: {err}");
    }
}

#[test]
fn not_found_carries_graphs_code_and_both_request_ids() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let err = client(&emu.base_url())
        .update_user_status(&Target::new("cfg-1", "missing"), &patch())
        .unwrap_err();
    let graph = err.graph().expect("a Graph error");
    assert_eq!(graph.status, 404);
    assert_eq!(graph.code.as_deref(), Some("ResourceNotFound"));
    assert!(graph.message.is_some());
    assert!(graph.date.is_some());
    assert!(
        graph.raw_body.is_none(),
        "Graph JSON is parsed, not kept raw"
    );
    let request_id = graph.request_id.as_deref().expect("request-id");
    assert!(uuid::Uuid::parse_str(request_id).is_ok());
    let sent = &emu.requests()[0];
    assert_eq!(
        Some(graph.client_request_id.as_str()),
        sent.header("client-request-id")
    );
    let shown = err.to_string();
    for part in [
        "404",
        "ResourceNotFound",
        request_id,
        &graph.client_request_id,
    ] {
        assert!(shown.contains(part), "{shown} lacks {part}");
    }
}

#[test]
fn a_rejected_token_is_a_401_that_never_shows_the_token() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let secret = "wrong-token-with-a-secret-tail";
    let client = Client::builder()
        .base_url(emu.base_url())
        .access_token(secret)
        .build()
        .unwrap();
    let err = client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    assert_eq!(
        err.graph().unwrap().code.as_deref(),
        Some("InvalidAuthenticationToken")
    );
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains(TOKEN));
}

#[test]
fn an_html_error_page_is_kept_raw_with_its_status() {
    let server = RawServer::start(http_response(
        "502 Bad Gateway",
        &[("Content-Type", "text/html"), ("request-id", "rid-502")],
        b"<html><body>upstream proxy failed</body></html>",
    ));
    let err = client(&server.base_url)
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    let graph = err.graph().unwrap();
    assert_eq!(graph.status, 502);
    assert_eq!(graph.code, None);
    assert_eq!(graph.request_id.as_deref(), Some("rid-502"));
    assert!(
        graph
            .raw_body
            .as_deref()
            .unwrap()
            .contains("upstream proxy failed")
    );
    assert!(err.to_string().contains("upstream proxy failed"));
}

#[test]
fn throttling_is_reported_with_the_wait_graph_asked_for() {
    let server = RawServer::start(http_response(
        "429 Too Many Requests",
        &[("Retry-After", "2.128"), ("Content-Type", "application/json")],
        br#"{"error":{"code":"TooManyRequests","message":"Too many requests","innerError":{"request-id":"rid-429","date":"2026-11-29T17:00:00"}}}"#,
    ));
    let err = builder(&server.base_url)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    assert!(err.is_throttled());
    let graph = err.graph().unwrap();
    assert_eq!(graph.attempts, 1);
    assert_eq!(graph.retry_after, Some(Duration::from_millis(2128)));
    assert_eq!(
        graph.request_id.as_deref(),
        Some("rid-429"),
        "from innerError"
    );
    assert_eq!(graph.date.as_deref(), Some("2026-11-29T17:00:00"));
}

#[test]
fn a_200_that_is_not_the_entity_is_an_unexpected_response() {
    let server = RawServer::start(http_response(
        "200 OK",
        &[
            ("Content-Type", "application/json"),
            ("request-id", "rid-200"),
        ],
        br#"{"devicesCount":"three"}"#,
    ));
    let err = client(&server.base_url)
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedResponse { status: 200, request_id: Some(id), .. } if id == "rid-200"),
        "{err:?}"
    );
}

#[test]
fn an_oversized_body_is_refused() {
    let mut body = br#"{"id":"u","userDisplayName":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    body.extend_from_slice(br#""}"#);
    let server = RawServer::start(http_response("200 OK", &[], &body));
    let err = client(&server.base_url)
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedResponse { status: 200, reason, .. } if reason.contains("larger")),
        "{err:?}"
    );
}

#[test]
fn connections_are_reused_after_success_and_after_errors() {
    for (response, expected) in [
        (http_response("204 No Content", &[], b""), None),
        (
            http_response(
                "404 Not Found",
                &[("Content-Type", "application/json")],
                br#"{"error":{"code":"ResourceNotFound","message":"gone"}}"#,
            ),
            Some(404),
        ),
    ] {
        let server = RawServer::start(response);
        let client = client(&server.base_url);
        for _ in 0..20 {
            let outcome = client.update_user_status(&Target::new("c", "u"), &patch());
            match (expected, outcome) {
                (None, Ok(outcome)) => assert_eq!(outcome, UpdateOutcome::NoContent),
                (Some(status), Err(err)) => assert_eq!(err.http_status(), Some(status), "{err}"),
                (_, other) => panic!("expected {expected:?}, got {other:?}"),
            }
        }
        assert_eq!(server.connections(), 1, "every body was read to the end");
    }
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&url)
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport { kind: TransportKind::Connect, client_request_id, .. } if !client_request_id.is_empty()),
        "{err:?}"
    );
    assert_eq!(err.attempts(), 4, "a refused connection is retried");
}

#[test]
fn a_server_that_never_answers_times_out_on_time() {
    let (url, _listener) = silent_server();
    let client = builder(&url)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn configuration_errors_name_the_setting() {
    let cases: Vec<(intune_user_status::ClientBuilder, &str)> = vec![
        (
            Client::builder().base_url("http://127.0.0.1:1"),
            "accessToken",
        ),
        (builder("http://graph.microsoft.com"), "baseUrl"),
        (builder("https://graph.microsoft.com/v1.0"), "baseUrl"),
        (
            builder("http://127.0.0.1:1").request_timeout(Duration::ZERO),
            "timeouts.requestMs",
        ),
        (
            builder("http://127.0.0.1:1").user_agent_suffix("bad\nvalue"),
            "userAgent",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(field_of(&err), field, "{err}");
    }
}

#[test]
fn an_unknown_status_from_graph_is_kept_not_an_error() {
    let server = RawServer::start(http_response(
        "200 OK",
        &[("Content-Type", "application/json")],
        br##"{"@odata.type":"#microsoft.graph.deviceConfigurationUserStatus","id":"u","status":"quarantined","devicesCount":1}"##,
    ));
    let outcome = client(&server.base_url)
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap();
    let UpdateOutcome::Updated(entity) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(entity.status.unwrap().as_str(), "quarantined");
}

#[test]
fn a_token_provider_failure_is_an_auth_error_and_nothing_is_sent() {
    struct Broken;
    impl intune_user_status::TokenProvider for Broken {
        fn token(&self) -> Result<intune_user_status::AccessToken, Error> {
            Err(intune_user_status::AuthError::new("the agent's identity store is locked").into())
        }
    }
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = Client::builder()
        .base_url(emu.base_url())
        .token_provider(Broken)
        .build()
        .unwrap();
    let err = client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("identity store is locked"));
    assert!(emu.requests().is_empty());
}

#[test]
fn https_to_a_plain_http_server_is_a_tls_error() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let url = emu.base_url().replace("http://", "https://");
    let err = client(&url)
        .update_user_status(&Target::new("cfg-1", "u1"), &patch())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Tls,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn an_empty_or_malformed_static_token_is_a_config_error() {
    let secretish = "s3cr3t";
    for token in [
        String::new(),
        format!("{secretish}\r\nX-Injected: 1"),
        format!("{secretish} with spaces"),
        format!("{secretish}\ttab"),
        format!("{secretish}é"),
        format!("{secretish}{}", "a".repeat(16 * 1024)),
    ] {
        let err = Client::builder()
            .base_url("http://127.0.0.1:1")
            .access_token(token.as_str())
            .build()
            .unwrap_err();
        assert_eq!(field_of(&err), "accessToken", "{token:?}: {err}");
        assert!(!err.to_string().contains(secretish), "{err}");
    }
}

/// A response that began is an answer: read once, reported, never resent.
fn assert_unexpected_and_sent_once(response: Vec<u8>, what: &str) {
    let server = RawServer::start(response);
    let err = client(&server.base_url)
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedResponse { reason, attempts: 1, .. } if reason.contains("malformed")),
        "{what}: {err:?}"
    );
    assert_eq!(err.http_status(), None, "{what}: no status could be read");
    assert_eq!(server.connections(), 1, "{what}: sent once");
}

#[test]
fn a_malformed_status_line_is_unexpected_and_not_resent() {
    assert_unexpected_and_sent_once(
        b"HTTP/1.1 abc\r\nContent-Length: 0\r\n\r\n".to_vec(),
        "HTTP/1.1 abc",
    );
}

#[test]
fn an_oversized_header_block_is_unexpected_and_not_resent() {
    let huge = "x".repeat(100 * 1024);
    assert_unexpected_and_sent_once(
        http_response("204 No Content", &[("X-Padding", &huge)], b""),
        "a 100 KiB header",
    );
}

#[test]
fn a_header_block_within_16_kib_is_read_and_one_over_it_is_unexpected() {
    // The header limit is 16 KiB (the connection's input buffer is 20 KiB).
    let padding = "x".repeat(12 * 1024);
    let server = RawServer::start(http_response(
        "204 No Content",
        &[("X-Padding", &padding)],
        b"",
    ));
    client(&server.base_url)
        .update_user_status(&Target::new("c", "u"), &patch())
        .expect("a 12 KiB header block is read");
    let padding = "x".repeat(17 * 1024);
    assert_unexpected_and_sent_once(
        http_response("204 No Content", &[("X-Padding", &padding)], b""),
        "a 17 KiB header",
    );
}

#[test]
fn a_token_of_16_kib_and_ids_of_1_kib_are_sent_whole() {
    // The longest token and ids accepted; their lines must fit the connection's output buffer.
    let token = format!("eyJ{}", "a".repeat(16 * 1024 - 3));
    let id = "é".repeat(512);
    let emu = ius_emulator::Emulator::start(ius_emulator::Config {
        token: Some(token.clone()),
        patch_returns: PatchReturns::NoContent,
        seed: vec![ius_emulator::SeedEntry {
            collection: format!("/deviceManagement/deviceConfigurations/{id}/userStatuses"),
            entity: serde_json::json!({ "id": id }),
        }],
        ..ius_emulator::Config::default()
    })
    .unwrap();
    builder(&emu.base_url())
        .access_token(token.clone())
        .build()
        .unwrap()
        .update_user_status(&Target::new(id.as_str(), id.as_str()), &patch())
        .expect("the emulator accepted the token and found the ids");
    let sent = emu.requests()[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    assert_eq!(sent, format!("Bearer {token}"));
}

#[test]
fn a_proxy_refusal_is_reported_at_once_naming_the_proxy() {
    let proxy = RawServer::start(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    );
    let started = Instant::now();
    let err = builder("https://graph.example.invalid")
        .proxy(&proxy.base_url)
        .build()
        .unwrap()
        .update_user_status(&Target::new("c", "u"), &patch())
        .unwrap_err();
    let named = proxy.base_url.trim_start_matches("http://");
    assert!(
        matches!(&err, Error::Transport { kind: TransportKind::Connect, message, attempts: 1, .. }
            if message.contains(named) && message.contains("407")),
        "{err:?}"
    );
    assert_eq!(proxy.connections(), 1, "not retried");
    assert!(started.elapsed() < Duration::from_secs(2));
}
