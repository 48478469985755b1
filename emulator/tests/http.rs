//! Behaviour over real loopback HTTP, as a client (or the SDK) sees it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::{Resp, agent, request};

use ius_emulator::{Config, Emulator, PatchReturns, SeedEntry};
use serde_json::{Value, json};

const TOKEN: &str = "Bearer test-token";
const C1: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";
const P10: &str = "/deviceManagement/deviceConfigurations/c%2F1/microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/r1/userStatuses";
const P15: &str = "/deviceManagement/windowsAutopilotDeploymentProfiles/p1/microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile/domainJoinConfiguration/userStatuses";
const JSON_CT: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

impl Resp {
    /// Asserts a Graph error with this status and code; returns its message.
    fn graph_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{}", self.body);
        assert_eq!(
            v["error"]["innerError"]["request-id"].as_str(),
            self.header("request-id")
        );
        v["error"]["message"].as_str().unwrap().to_owned()
    }
}

/// Sends one request with the test bearer token.
fn send(emu: &Emulator, method: &str, path: &str, body: Option<&str>) -> Resp {
    send_with(emu, method, path, body, &[("Authorization", TOKEN)])
}

fn send_with(
    emu: &Emulator,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    request(method, &format!("{}{path}", emu.base_url()), body, headers)
}

fn start(config: Config) -> Emulator {
    Emulator::start(config).unwrap()
}

/// Create, PATCH, GET through one collection; returns the final GET body.
fn round_trip(emu: &Emulator, version: &str, collection: &str, id: &str) -> Value {
    let coll = format!("/{version}{collection}");
    let created = send(
        emu,
        "POST",
        &coll,
        Some(&json!({"id": id, "userDisplayName": "Ann", "status": "compliant"}).to_string()),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("content-type"), Some(JSON_CT));
    let location = created.header("location").unwrap().to_owned();
    assert_eq!(location, format!("{}{coll}/{id}", emu.base_url()));
    let c = created.json();
    assert_eq!(c["id"], id);
    assert_eq!(c["devicesCount"], 0);
    assert_eq!(c["lastReportedDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(c["userPrincipalName"], Value::Null);

    let item = format!("{coll}/{id}");
    let patched = send(
        emu,
        "PATCH",
        &item,
        Some(
            r##"{"@odata.type":"#microsoft.graph.deviceConfigurationUserStatus","devicesCount":3,"status":"nonCompliant"}"##,
        ),
    );
    assert_eq!(patched.status, 204, "{}", patched.body);
    assert_eq!(patched.body, "");

    let got = send(emu, "GET", &item, None);
    assert_eq!(got.status, 200);
    let v = got.json();
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/{version}/$metadata#", emu.base_url()))
    );
    v
}

#[test]
fn create_patch_get_on_paths_1_10_and_15() {
    let emu = start(Config::default());
    for (collection, id) in [(C1, "u1"), (P10, "u10"), (P15, "u15")] {
        let v = round_trip(&emu, "beta", collection, id);
        assert_eq!(v["userDisplayName"], "Ann");
        assert_eq!(v["devicesCount"], 3);
        assert_eq!(v["status"], "nonCompliant");
        assert_eq!(
            v["@odata.type"],
            "#microsoft.graph.deviceConfigurationUserStatus"
        );
        let stored = emu.user_status(collection, id).unwrap();
        assert_eq!(stored["devicesCount"], 3);
    }
    // Path 10's encoded configuration id is one decoded key.
    assert!(emu.user_status(P10, "u10").is_some());
    assert!(emu.user_status(P10, "nope").is_none());
}

#[test]
fn entity_json_has_graph_property_order() {
    let emu = start(Config::default());
    send(&emu, "POST", &format!("/beta{C1}"), Some(r#"{"id":"o"}"#));
    let body = send(&emu, "GET", &format!("/beta{C1}/o"), None).body;
    let keys = [
        "@odata.context",
        "@odata.type",
        "\"id\"",
        "userDisplayName",
        "devicesCount",
        "\"status\"",
        "lastReportedDateTime",
        "userPrincipalName",
    ];
    let positions: Vec<usize> = keys.iter().map(|k| body.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{body}");
}

#[test]
fn v1_serves_path_1_only_and_shares_the_store_with_beta() {
    let emu = start(Config::default());
    round_trip(&emu, "v1.0", C1, "u1");
    let beta = send(&emu, "GET", &format!("/beta{C1}/u1"), None);
    assert_eq!(beta.json()["devicesCount"], 3);

    let p2 = "/v1.0/deviceManagement/deviceConfigurations/c1/rootCertificate/userStatuses";
    let msg = send(&emu, "GET", p2, None).graph_error(400, "BadRequest");
    assert_eq!(msg, "Resource not found for the segment 'rootCertificate'.");
    let beta_p2 = send(&emu, "GET", &p2.replace("/v1.0", "/beta"), None);
    assert_eq!(beta_p2.status, 200);
}

#[test]
fn fixed_segments_are_case_insensitive() {
    let emu = start(Config::default());
    let created = send(
        &emu,
        "POST",
        "/BETA/DeviceManagement/deviceconfigurations/c1/USERSTATUSES",
        Some(r#"{"id":"u"}"#),
    );
    assert_eq!(created.status, 201);
    assert!(emu.user_status(C1, "u").is_some());
}

#[test]
fn patch_returns_200_with_entity_when_configured() {
    let emu = start(Config {
        patch_returns: PatchReturns::Ok,
        ..Config::default()
    });
    send(&emu, "POST", &format!("/beta{C1}"), Some(r#"{"id":"u1"}"#));
    let r = send(
        &emu,
        "PATCH",
        &format!("/beta{C1}/u1"),
        Some(r#"{"userPrincipalName":"ann@contoso.com"}"#),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["userPrincipalName"], "ann@contoso.com");
    assert_eq!(v["id"], "u1");
    assert!(v["@odata.context"].as_str().unwrap().ends_with("/$entity"));
}

#[test]
fn every_validation_rule_gives_400_naming_the_property() {
    let emu = start(Config::default());
    let coll = format!("/beta{C1}");
    let item = format!("{coll}/u1");
    send(
        &emu,
        "POST",
        &coll,
        Some(r#"{"id":"u1","status":"compliant","devicesCount":1}"#),
    );
    let before = emu.user_status(C1, "u1").unwrap();
    let cases = [
        ("not json", "JSON"),
        ("[1]", "object"),
        (r#"{"colour":"red"}"#, "'colour'"),
        (r#"{"@odata.etag":"x"}"#, "'@odata.etag'"),
        (
            r##"{"@odata.type":"#microsoft.graph.user"}"##,
            "'@odata.type'",
        ),
        (r#"{"userDisplayName":1}"#, "'userDisplayName'"),
        (r#"{"userPrincipalName":[]}"#, "'userPrincipalName'"),
        (r#"{"devicesCount":"2"}"#, "'devicesCount'"),
        (r#"{"devicesCount":1.5}"#, "'devicesCount'"),
        (r#"{"devicesCount":2147483648}"#, "'devicesCount'"),
        (r#"{"status":"great"}"#, "'status'"),
        (r#"{"status":null}"#, "'status'"),
        (
            r#"{"lastReportedDateTime":"2024-01-01"}"#,
            "'lastReportedDateTime'",
        ),
        (
            r#"{"lastReportedDateTime":"2024-01-01T10:00:00"}"#,
            "'lastReportedDateTime'",
        ),
        (r#"{"id":7}"#, "'id'"),
        (r#"{"id":"other"}"#, "'id'"),
    ];
    for (body, needle) in cases {
        let r = send(&emu, "PATCH", &item, Some(body));
        let msg = r.graph_error(400, "BadRequest");
        assert!(msg.contains(needle), "PATCH {body}: {msg}");
        if body != r#"{"id":"other"}"# {
            let r = send(&emu, "POST", &coll, Some(body));
            let msg = r.graph_error(400, "BadRequest");
            assert!(msg.contains(needle), "POST {body}: {msg}");
        }
    }
    assert_eq!(emu.user_status(C1, "u1").unwrap(), before);
    // Nothing was created by the failed POSTs.
    let list = send(&emu, "GET", &coll, None).json();
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    // Negative Int32 values are accepted, as by Graph.
    let r = send(
        &emu,
        "PATCH",
        &item,
        Some(r#"{"devicesCount":-2147483648}"#),
    );
    assert_eq!(r.status, 204);
}

#[test]
fn seven_digit_fractional_seconds_survive_byte_for_byte() {
    let emu = start(Config::default());
    let date = "2024-05-06T07:08:09.1234567+02:00";
    let body = format!(r#"{{"id":"d","lastReportedDateTime":"{date}"}}"#);
    send(&emu, "POST", &format!("/beta{C1}"), Some(&body));
    let z = "2025-01-02T03:04:05.9876500Z";
    let r = send(&emu, "GET", &format!("/beta{C1}/d"), None);
    assert!(r.body.contains(date), "{}", r.body);
    send(
        &emu,
        "PATCH",
        &format!("/beta{C1}/d"),
        Some(&format!(r#"{{"lastReportedDateTime":"{z}"}}"#)),
    );
    let r = send(&emu, "GET", &format!("/beta{C1}"), None);
    assert!(r.body.contains(&format!("\"{z}\"")), "{}", r.body);
}

#[test]
fn auth_is_required_and_the_configured_token_enforced() {
    let emu = start(Config {
        token: Some("test-token".into()),
        ..Config::default()
    });
    let item = format!("/beta{C1}/u1");
    let none = send_with(&emu, "GET", &item, None, &[]);
    let msg = none.graph_error(401, "InvalidAuthenticationToken");
    assert_eq!(msg, "Access token is empty.");
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let wrong = send_with(
        &emu,
        "GET",
        &item,
        None,
        &[("Authorization", "Bearer nope")],
    );
    wrong.graph_error(401, "InvalidAuthenticationToken");
    assert!(wrong.header("www-authenticate").is_some());
    let basic = send_with(
        &emu,
        "GET",
        &item,
        None,
        &[("Authorization", "Basic dGVzdA==")],
    );
    basic.graph_error(401, "InvalidAuthenticationToken");
    // Right token: past auth, to the 404 of an absent status.
    send(&emu, "GET", &item, None).graph_error(404, "ResourceNotFound");

    // Without a configured token any non-empty bearer passes, empty does not.
    let open = start(Config::default());
    send_with(&open, "GET", &item, None, &[("Authorization", "Bearer x")])
        .graph_error(404, "ResourceNotFound");
    send_with(&open, "GET", &item, None, &[("Authorization", "Bearer ")])
        .graph_error(401, "InvalidAuthenticationToken");
}

#[test]
fn not_found_carries_matching_request_ids_and_echoes_client_request_id() {
    let emu = start(Config::default());
    let item = format!("/beta{C1}/ghost");
    let r = send_with(
        &emu,
        "GET",
        &item,
        None,
        &[("Authorization", TOKEN), ("client-request-id", "my-id-42")],
    );
    r.graph_error(404, "ResourceNotFound");
    let v = r.json();
    assert_eq!(r.header("client-request-id"), Some("my-id-42"));
    assert_eq!(v["error"]["innerError"]["client-request-id"], "my-id-42");
    assert!(
        r.body
            .starts_with(r#"{"error":{"code":"ResourceNotFound","message":"#),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#""innerError":{"date":"#), "{}", r.body);
    let date = v["error"]["innerError"]["date"].as_str().unwrap();
    assert_eq!(date.len(), 19, "{date}");
    assert!(r.header("date").unwrap().ends_with(" GMT"));
    assert_eq!(r.header("content-type"), Some(JSON_CT));
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));

    // Without one, a fresh GUID is generated, distinct from request-id.
    let r = send(&emu, "DELETE", &item, None);
    r.graph_error(404, "ResourceNotFound");
    let crid = r.header("client-request-id").unwrap();
    assert_eq!(crid.len(), 36);
    assert_ne!(Some(crid), r.header("request-id"));
    send(&emu, "PATCH", &item, Some("{}")).graph_error(404, "ResourceNotFound");
}

#[test]
fn unknown_paths_are_400_and_wrong_methods_405() {
    let emu = start(Config::default());
    let msg = send(
        &emu,
        "GET",
        "/beta/deviceManagement/bogus/c1/userStatuses",
        None,
    )
    .graph_error(400, "BadRequest");
    assert_eq!(msg, "Resource not found for the segment 'bogus'.");
    send(
        &emu,
        "GET",
        "/beta/deviceManagement/deviceConfigurations//userStatuses",
        None,
    )
    .graph_error(400, "BadRequest");
    send(&emu, "GET", "/v2/deviceManagement", None).graph_error(400, "BadRequest");

    let r = send(&emu, "PUT", &format!("/beta{C1}"), Some("{}"));
    r.graph_error(405, "MethodNotAllowed");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = send(&emu, "POST", &format!("/beta{C1}/u"), Some("{}"));
    r.graph_error(405, "MethodNotAllowed");
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE"));
}

#[test]
fn post_conflict_delete_and_generated_ids() {
    let emu = start(Config::default());
    let coll = format!("/beta{C1}");
    assert_eq!(send(&emu, "POST", &coll, Some(r#"{"id":"u"}"#)).status, 201);
    send(&emu, "POST", &coll, Some(r#"{"id":"u"}"#)).graph_error(409, "Conflict");
    let r = send(&emu, "POST", &coll, Some("{}"));
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(r.json()["status"], "unknown");
    assert_eq!(
        send(&emu, "DELETE", &format!("{coll}/{id}"), None).status,
        204
    );
    assert!(emu.user_status(C1, &id).is_none());
    send(&emu, "DELETE", &format!("{coll}/{id}"), None).graph_error(404, "ResourceNotFound");
}

#[test]
fn collection_get_pages_with_top_and_next_link() {
    let emu = start(Config::default());
    for i in 0..5 {
        emu.insert_user_status(C1, json!({"id": format!("u{i}")}))
            .unwrap();
    }
    let mut ids = Vec::new();
    let mut path = format!("/beta{C1}?$top=2");
    let mut pages = 0;
    loop {
        let v = send(&emu, "GET", &path, None).json();
        pages += 1;
        assert!(
            v["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("/userStatuses")
        );
        for e in v["value"].as_array().unwrap() {
            ids.push(e["id"].as_str().unwrap().to_owned());
        }
        match v["@odata.nextLink"].as_str() {
            Some(next) => path = next.strip_prefix(&emu.base_url()).unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, ["u0", "u1", "u2", "u3", "u4"]);
    let all = send(&emu, "GET", &format!("/beta{C1}"), None).json();
    assert_eq!(all["value"].as_array().unwrap().len(), 5);
    assert!(all.get("@odata.nextLink").is_none());
    send(&emu, "GET", &format!("/beta{C1}?$top=x"), None).graph_error(400, "BadRequest");
    let count = send(&emu, "GET", &format!("/beta{C1}/$count"), None);
    assert_eq!((count.status, count.body.as_str()), (200, "5"));
}

#[test]
fn percent_encoded_ids_round_trip() {
    let emu = start(Config::default());
    let encoded = "a%2Fb%3F%23%25%20%C3%A9";
    let decoded = "a/b?#% é";
    let coll = format!("/beta/deviceManagement/deviceConfigurations/{encoded}/userStatuses");
    let r = send(
        &emu,
        "POST",
        &coll,
        Some(&json!({"id": decoded}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.header("location").unwrap(),
        format!("{}{coll}/{encoded}", emu.base_url())
    );
    let item = format!("{coll}/{encoded}");
    assert_eq!(
        send(&emu, "PATCH", &item, Some(r#"{"devicesCount":9}"#)).status,
        204
    );
    let v = send(&emu, "GET", &item, None).json();
    assert_eq!(v["id"], decoded);
    assert_eq!(v["devicesCount"], 9);
    let collection = format!("/deviceManagement/deviceConfigurations/{encoded}/userStatuses");
    assert_eq!(
        emu.user_status(&collection, decoded).unwrap()["devicesCount"],
        9
    );
    // The log keeps the target exactly as sent.
    let last = emu.requests().pop().unwrap();
    assert_eq!(last.target, item);
    assert_eq!(last.path(), item);
}

#[test]
fn requests_are_recorded_with_query_and_headers_admin_excluded() {
    let emu = start(Config::default());
    let target = format!("/beta{C1}?$top=1&x=%20");
    send_with(
        &emu,
        "GET",
        &target,
        None,
        &[("Authorization", TOKEN), ("X-Custom", "one")],
    );
    let health = send_with(&emu, "GET", "/_emulator/health", None, &[]);
    assert_eq!(health.status, 200);
    let log = send_with(&emu, "GET", "/_emulator/requests", None, &[]).json();
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["target"], target);
    assert_eq!(log[0]["method"], "GET");
    let reqs = emu.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path(), format!("/beta{C1}"));
    assert_eq!(reqs[0].header("x-custom"), Some("one"));
    assert_eq!(reqs[0].header_all("X-CUSTOM"), vec!["one"]);
    assert_eq!(
        send_with(&emu, "DELETE", "/_emulator/requests", None, &[]).status,
        204
    );
    assert!(emu.requests().is_empty());
    send(&emu, "POST", &format!("/beta{C1}"), Some(r#"{"id":"z"}"#));
    assert_eq!(emu.requests()[0].body_str(), r#"{"id":"z"}"#);
    emu.clear_requests();
    assert!(emu.requests().is_empty());
}

#[test]
fn seed_and_insert_user_status() {
    let emu = start(Config {
        seed: vec![SeedEntry {
            collection: P15.into(),
            entity: json!({"id": "s1", "status": "error"}),
        }],
        ..Config::default()
    });
    assert_eq!(emu.user_status(P15, "s1").unwrap()["status"], "error");
    assert!(emu.insert_user_status(P15, json!({"id": "s1"})).is_err());
    assert!(
        emu.insert_user_status(C1, json!({"status": "bad"}))
            .is_err()
    );
    assert!(
        emu.insert_user_status("/nope/userStatuses", json!({}))
            .is_err()
    );
    emu.insert_user_status(C1, json!({"id": "i1", "devicesCount": 4}))
        .unwrap();
    let r = send(&emu, "GET", &format!("/beta{C1}/i1"), None);
    assert_eq!(r.json()["devicesCount"], 4);

    let bad = Emulator::start(Config {
        seed: vec![SeedEntry {
            collection: C1.into(),
            entity: json!({"bogus": 1}),
        }],
        ..Config::default()
    });
    assert_eq!(bad.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

/// Reads one response from a raw connection (Content-Length framed).
fn read_raw(reader: &mut BufReader<TcpStream>) -> Resp {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(": ").unwrap();
        headers.push((n.to_owned(), v.to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let emu = start(Config::default());
    let stream = TcpStream::connect(emu.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let body = r#"{"id":"k1"}"#;
    write!(
        writer,
        "POST /beta{C1} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let first = read_raw(&mut reader);
    assert_eq!(first.status, 201);
    assert_eq!(first.header("connection"), None);
    // Chunked request body on the same connection.
    write!(
        writer,
        "PATCH /beta{C1}/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"dev\r\n10;ext=1\r\nicesCount\":12}}  \r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    .unwrap();
    let second = read_raw(&mut reader);
    assert_eq!(second.status, 204, "{}", second.body);
    assert_eq!(emu.user_status(C1, "k1").unwrap()["devicesCount"], 12);
    write!(
        writer,
        "GET /beta{C1}/k1 HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let third = read_raw(&mut reader);
    assert_eq!(third.status, 200);
    assert_eq!(third.header("connection"), Some("close"));
    assert!(
        third.json()["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with("http://x/beta/$metadata#")
    );
    // The server closed its side after `Connection: close`.
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(emu.requests().len(), 3);
    assert_eq!(emu.requests()[1].body_str(), r#"{"devicesCount":12}  "#);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let emu = start(Config::default());
    let stream = TcpStream::connect(emu.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let one = "GET /_emulator/health HTTP/1.1\r\nHost: x\r\n\r\n";
    let two = format!("GET /beta{C1}/nope HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n\r\n");
    writer.write_all(format!("{one}{two}").as_bytes()).unwrap();
    assert_eq!(read_raw(&mut reader).status, 200);
    assert_eq!(read_raw(&mut reader).status, 404);
}

#[test]
fn malformed_request_gets_400_and_close() {
    let emu = start(Config::default());
    let stream = TcpStream::connect(emu.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"POST /beta HTTP/1.1\r\nContent-Length: zz\r\n\r\n")
        .unwrap();
    let r = read_raw(&mut reader);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn shutdown_with_open_idle_connection_does_not_hang() {
    let emu = start(Config::default());
    let idle = TcpStream::connect(emu.addr()).unwrap();
    // Make sure the connection thread is running before shutting down.
    assert_eq!(
        send_with(&emu, "GET", "/_emulator/health", None, &[]).status,
        200
    );
    let started = std::time::Instant::now();
    emu.shutdown();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    drop(idle);
}

#[test]
fn binary_prints_listening_line_first() {
    let seed = std::env::temp_dir().join(format!("ius-seed-{}.json", std::process::id()));
    std::fs::write(
        &seed,
        json!([{"collection": C1, "entity": {"id": "seeded"}}]).to_string(),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ius-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t",
            "--patch-returns",
            "200",
        ])
        .arg("--seed")
        .arg(&seed)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = std::fs::remove_file(&seed);
    let url = line
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix("listening on http://127.0.0.1:"))
        .map(|port| port.parse::<u16>().map(|p| format!("http://127.0.0.1:{p}")));
    let result = (|| {
        let url = url.ok_or("bad first line")?.map_err(|_| "bad port")?;
        let mut r = agent()
            .get(format!("{url}/beta{C1}/seeded"))
            .header("Authorization", "Bearer t")
            .call()
            .map_err(|e| e.to_string())?;
        let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok::<_, String>((r.status().as_u16(), body))
    })();
    child.kill().unwrap();
    child.wait().unwrap();
    let (status, body) = result.unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn binary_rejects_bad_flags_with_exit_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ius-emulator"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    assert!(out.stdout.is_empty());
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let emu = start(Config::default());
    let stream = TcpStream::connect(emu.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let body = r#"{"id":"e1"}"#;
    write!(
        writer,
        "POST /beta{C1} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let interim = read_raw(&mut reader);
    assert_eq!(interim.status, 100);
    writer.write_all(body.as_bytes()).unwrap();
    assert_eq!(read_raw(&mut reader).status, 201);
    assert!(emu.user_status(C1, "e1").is_some());
}
