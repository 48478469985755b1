//! Fault injection and write throttling, observed from raw sockets (so every
//! byte, timeout and reset is visible) and from ureq.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ius_emulator::{Config, Emulator, Fault, FaultRule, SeedEntry};
use serde_json::{Value, json};

const C1: &str = "/beta/deviceManagement/deviceConfigurations/c1/userStatuses";
const U1: &str = "/beta/deviceManagement/deviceConfigurations/c1/userStatuses/u1";

/// An emulator with user status `u1` in `C1`.
fn start(mut config: Config) -> Emulator {
    config.seed.push(SeedEntry {
        collection: "/deviceManagement/deviceConfigurations/c1/userStatuses".into(),
        entity: json!({"id": "u1"}),
    });
    Emulator::start(config).unwrap()
}

fn start_with(rules: Vec<FaultRule>) -> Emulator {
    start(Config {
        faults: rules,
        ..Config::default()
    })
}

/// A raw keep-alive connection whose reads time out after `timeout`.
fn connect(emu: &Emulator, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(emu.addr()).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

/// The bytes of one authenticated request.
fn request(method: &str, target: &str, body: Option<&str>) -> Vec<u8> {
    let body = body.unwrap_or("");
    format!(
        "{method} {target} HTTP/1.1\r\nHost: emu\r\nAuthorization: Bearer t\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A response head as read off the wire.
#[derive(Debug)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> usize {
        self.header("content-length")
            .map_or(0, |v| v.parse().unwrap())
    }
}

/// Reads a response head (status line and headers).
fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<Head> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            return Ok(Head { status, headers });
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.to_owned(), v.trim().to_owned()));
    }
}

/// Reads one whole response (body by Content-Length).
fn read_response(r: &mut BufReader<TcpStream>) -> (Head, Vec<u8>) {
    let head = read_head(r).unwrap();
    let mut body = vec![0; head.content_length()];
    r.read_exact(&mut body).unwrap();
    (head, body)
}

/// Sends one request on a fresh connection and reads the whole response.
fn exchange(emu: &Emulator, method: &str, target: &str, body: Option<&str>) -> (Head, Vec<u8>) {
    let mut s = connect(emu, Duration::from_secs(5));
    s.write_all(&request(method, target, body)).unwrap();
    read_response(&mut BufReader::new(s))
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn status(retry_after: Option<&str>, status: u16) -> Fault {
    Fault::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
    }
}

#[test]
fn status_faults_keep_retry_after_verbatim_and_are_recorded() {
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let emu = start_with(vec![
        FaultRule::next(1, status(Some("2.128"), 429)),
        FaultRule::next(1, status(Some(date), 503)),
        FaultRule::next(1, status(None, 504)),
        FaultRule::next(1, status(Some("2"), 500)),
    ]);
    for (want, code, retry_after) in [
        (429, "TooManyRequests", Some("2.128")),
        (503, "ServiceUnavailable", Some(date)),
        (504, "GatewayTimeout", None),
        (500, "InternalServerError", Some("2")),
    ] {
        let (head, body) = exchange(&emu, "PATCH", U1, Some(r#"{"devicesCount":7}"#));
        assert_eq!(head.status, want);
        assert_eq!(head.header("retry-after"), retry_after);
        let v = json_of(&body);
        assert_eq!(v["error"]["code"], code);
        assert_eq!(
            v["error"]["innerError"]["request-id"].as_str(),
            head.header("request-id")
        );
        assert!(head.header("client-request-id").is_some());
    }
    // Faulted writes were not applied; the next one is.
    assert_eq!(emu.user_status(C1_PLAIN, "u1").unwrap()["devicesCount"], 0);
    let (head, _) = exchange(&emu, "PATCH", U1, Some(r#"{"devicesCount":7}"#));
    assert_eq!(head.status, 204);
    assert_eq!(emu.user_status(C1_PLAIN, "u1").unwrap()["devicesCount"], 7);
    let log = emu.requests();
    assert_eq!(log.len(), 5);
    assert!(
        log.iter()
            .all(|r| r.header("authorization") == Some("Bearer t"))
    );
}

const C1_PLAIN: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

#[test]
fn latency_delays_then_answers_normally() {
    let emu = start_with(vec![FaultRule::next(
        1,
        Fault::Latency(Duration::from_millis(150)),
    )]);
    let started = Instant::now();
    let (head, body) = exchange(&emu, "GET", U1, None);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(head.status, 200);
    assert_eq!(json_of(&body)["id"], "u1");
}

#[test]
fn no_answer_times_the_client_out_and_shutdown_does_not_hang() {
    let emu = start_with(vec![FaultRule::always(Fault::NoAnswer)]);
    let mut s = connect(&emu, Duration::from_millis(150));
    s.write_all(&request("GET", U1, None)).unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    assert_eq!(emu.requests().len(), 1);
    let started = Instant::now();
    emu.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
    // The held connection is closed by the shutdown.
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn stall_sends_headers_but_no_body() {
    let emu = start_with(vec![FaultRule::next(1, Fault::StallAfterHeaders)]);
    let s = connect(&emu, Duration::from_millis(150));
    let mut r = BufReader::new(s);
    r.get_mut().write_all(&request("GET", U1, None)).unwrap();
    let head = read_head(&mut r).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), 500);
    let mut buf = [0u8; 16];
    let err = r.read(&mut buf).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    // Shutting down with the stalled connection open does not hang either.
    let started = Instant::now();
    drop(emu);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn trickle_sends_the_body_byte_by_byte() {
    let emu = start_with(vec![FaultRule::next(
        1,
        Fault::TrickleBody {
            interval: Duration::from_millis(50),
        },
    )]);
    let s = connect(&emu, Duration::from_secs(2));
    let mut r = BufReader::new(s);
    r.get_mut().write_all(&request("GET", U1, None)).unwrap();
    let head = read_head(&mut r).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.content_length() > 4);
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 4 {
        let n = r.read(&mut buf).unwrap();
        assert_eq!(n, 1, "one byte at a time");
        got.push(buf[0]);
    }
    // Four bytes, each after a 50 ms pause.
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(&got, b"{\"@o");
}

#[test]
fn reset_aborts_the_connection() {
    let emu = start_with(vec![FaultRule::next(1, Fault::Reset)]);
    let mut s = connect(&emu, Duration::from_secs(2));
    s.write_all(&request("GET", U1, None)).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}"),
        // A platform may surface the RST as EOF; no bytes either way.
        Ok(n) => assert_eq!(n, 0),
    }
    assert_eq!(emu.requests().len(), 1);
    // The next request, on a new connection, is served.
    assert_eq!(exchange(&emu, "GET", U1, None).0.status, 200);
}

#[test]
fn close_sends_eof_without_an_answer() {
    let emu = start_with(vec![FaultRule::next(1, Fault::Close)]);
    let mut s = connect(&emu, Duration::from_secs(2));
    s.write_all(&request("GET", U1, None)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn truncated_body_is_shorter_than_content_length() {
    let emu = start_with(vec![FaultRule::next(1, Fault::Truncated)]);
    let s = connect(&emu, Duration::from_secs(2));
    let mut r = BufReader::new(s);
    r.get_mut().write_all(&request("GET", U1, None)).unwrap();
    let head = read_head(&mut r).unwrap();
    assert_eq!(head.status, 200);
    let mut body = Vec::new();
    r.read_to_end(&mut body).unwrap();
    assert!(!body.is_empty());
    assert!(body.len() < head.content_length());
}

#[test]
fn non_json_answers_html() {
    let emu = start_with(vec![
        FaultRule::next(1, Fault::NonJson { status: 500 }),
        FaultRule::next(1, Fault::NonJson { status: 200 }),
    ]);
    for want in [500, 200] {
        let (head, body) = exchange(&emu, "GET", U1, None);
        assert_eq!(head.status, want);
        assert!(
            head.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(String::from_utf8(body).unwrap().contains("<html>"));
    }
}

#[test]
fn oversized_body_has_the_requested_length_via_ureq() {
    let emu = start_with(vec![FaultRule::next(
        1,
        Fault::Oversized { bytes: 2_000_000 },
    )]);
    let mut resp = ureq::get(format!("{}{U1}", emu.base_url()))
        .header("Authorization", "Bearer t")
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "2000000");
    let body = resp
        .body_mut()
        .with_config()
        .limit(4_000_000)
        .read_to_vec()
        .unwrap();
    assert_eq!(body.len(), 2_000_000);
    assert!(json_of(&body).is_object());
}

#[test]
fn redirect_answers_location() {
    let emu = start_with(vec![FaultRule::next(
        1,
        Fault::Redirect {
            status: 307,
            location: "http://127.0.0.1:5/x".into(),
        },
    )]);
    let (head, body) = exchange(&emu, "PATCH", U1, Some("{}"));
    assert_eq!(head.status, 307);
    assert_eq!(head.header("location"), Some("http://127.0.0.1:5/x"));
    assert!(body.is_empty());
}

#[test]
fn next_two_faults_exactly_two_then_normal() {
    let emu = start_with(vec![FaultRule::next(2, status(None, 503))]);
    let s = connect(&emu, Duration::from_secs(2));
    let mut r = BufReader::new(s);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        r.get_mut().write_all(&request("GET", U1, None)).unwrap();
        statuses.push(read_response(&mut r).0.status);
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    // All on the one keep-alive connection.
    assert_eq!(emu.connections_accepted(), 1);
}

/// Which of 200 GETs a `Share(0.5)` rule faulted.
fn share_pattern() -> Vec<bool> {
    let emu = start_with(vec![FaultRule::share(0.5, status(None, 503))]);
    let mut r = BufReader::new(connect(&emu, Duration::from_secs(2)));
    (0..200)
        .map(|_| {
            r.get_mut().write_all(&request("GET", U1, None)).unwrap();
            read_response(&mut r).0.status == 503
        })
        .collect()
}

#[test]
fn share_faults_about_half_and_is_repeatable() {
    let first = share_pattern();
    let faulted = first.iter().filter(|f| **f).count();
    assert!((60..=140).contains(&faulted), "{faulted}");
    assert_eq!(first, share_pattern());
}

#[test]
fn method_and_path_filters_select_requests() {
    let emu = start_with(vec![
        FaultRule::always(status(None, 503)).method("patch"),
        FaultRule::always(status(None, 504)).path_contains("/nope"),
    ]);
    assert_eq!(exchange(&emu, "GET", U1, None).0.status, 200);
    assert_eq!(exchange(&emu, "PATCH", U1, Some("{}")).0.status, 503);
    assert_eq!(
        exchange(&emu, "GET", &format!("{C1}/nope"), None).0.status,
        504
    );
    emu.clear_faults();
    assert_eq!(exchange(&emu, "PATCH", U1, Some("{}")).0.status, 204);
}

#[test]
fn admin_endpoint_adds_and_clears_faults_and_reports_stats() {
    let emu = start(Config::default());
    let add = |rule: &str| exchange(&emu, "POST", "/_emulator/faults", Some(rule));
    let (head, _) = add(r#"{"fault":"status","status":503,"retryAfter":"2.5","count":2}"#);
    assert_eq!(head.status, 204);
    let (head, _) =
        add(r#"{"fault":"redirect","status":307,"location":"http://127.0.0.1:5/x","count":1}"#);
    assert_eq!(head.status, 204);
    for _ in 0..2 {
        let (head, _) = exchange(&emu, "GET", U1, None);
        assert_eq!(head.status, 503);
        assert_eq!(head.header("retry-after"), Some("2.5"));
    }
    assert_eq!(exchange(&emu, "GET", U1, None).0.status, 307);
    assert_eq!(exchange(&emu, "GET", U1, None).0.status, 200);

    let (head, body) = add(r#"{"fault":"latency","ms":"slow"}"#);
    assert_eq!(head.status, 400);
    let message = json_of(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("'ms'"), "{message}");
    let (head, body) = add("{not json");
    assert_eq!(head.status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not valid JSON"));

    assert_eq!(add(r#"{"fault":"noAnswer"}"#).0.status, 204);
    assert_eq!(
        exchange(&emu, "DELETE", "/_emulator/faults", None).0.status,
        204
    );
    assert_eq!(exchange(&emu, "GET", U1, None).0.status, 200);

    let (head, body) = exchange(&emu, "GET", "/_emulator/stats", None);
    assert_eq!(head.status, 200);
    let stats = json_of(&body);
    // Admin requests are not recorded; every exchange used its own connection.
    assert_eq!(stats["requests"], 5);
    assert_eq!(stats["throttled"], 0);
    assert_eq!(stats["connectionsAccepted"], 12);
    assert_eq!(emu.connections_accepted(), 12);
}

/// Sends `n` PATCHes to `u1` (devicesCount = index) on one connection.
fn patches(emu: &Emulator, n: usize) -> Vec<Head> {
    let mut r = BufReader::new(connect(emu, Duration::from_secs(2)));
    (0..n)
        .map(|i| {
            let body = format!(r#"{{"devicesCount":{i}}}"#);
            r.get_mut()
                .write_all(&request("PATCH", U1, Some(&body)))
                .unwrap();
            read_response(&mut r).0
        })
        .collect()
}

#[test]
fn throttle_answers_429_beyond_the_limit_until_the_window_passes() {
    let emu = start(Config {
        throttle_writes: Some((5, Duration::from_millis(500))),
        ..Config::default()
    });
    let started = Instant::now();
    let heads = patches(&emu, 8);
    let statuses: Vec<u16> = heads.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [204, 204, 204, 204, 204, 429, 429, 429]);
    for h in &heads[5..] {
        let secs: u64 = h.header("retry-after").unwrap().parse().unwrap();
        assert!(secs >= 1);
    }
    assert_eq!(emu.throttled_count(), 3);
    // Throttled writes are recorded but not applied.
    assert_eq!(emu.requests().len(), 8);
    assert_eq!(emu.user_status(C1_PLAIN, "u1").unwrap()["devicesCount"], 4);
    // Reads are never throttled.
    assert_eq!(exchange(&emu, "GET", U1, None).0.status, 200);

    std::thread::sleep(Duration::from_millis(550).saturating_sub(started.elapsed()));
    let again = patches(&emu, 1);
    assert_eq!(again[0].status, 204);
    assert_eq!(emu.throttled_count(), 3);
}

#[test]
fn throttle_can_omit_retry_after() {
    let emu = start(Config {
        throttle_writes: Some((1, Duration::from_secs(20))),
        throttle_retry_after: false,
        ..Config::default()
    });
    let heads = patches(&emu, 2);
    assert_eq!(heads[1].status, 429);
    assert_eq!(heads[1].header("retry-after"), None);
    let (head, body) = exchange(&emu, "GET", "/_emulator/stats", None);
    assert_eq!(head.status, 200);
    assert_eq!(json_of(&body)["throttled"], 1);
}

#[test]
fn throttle_retry_after_rounds_up_whole_seconds() {
    let emu = start(Config {
        throttle_writes: Some((1, Duration::from_secs(20))),
        ..Config::default()
    });
    let heads = patches(&emu, 2);
    assert_eq!(heads[1].header("retry-after"), Some("20"));
}

#[test]
fn a_broken_connection_is_followed_by_a_new_one() {
    let emu = start_with(vec![FaultRule::next(1, Fault::Close).path_contains("/u1")]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{U1}", emu.base_url());
    // ureq may retry the idempotent GET on a fresh connection by itself;
    // either way the closed connection is not reused.
    let first = agent
        .get(&url)
        .header("Authorization", "Bearer t")
        .call()
        .and_then(|mut r| r.body_mut().read_to_string());
    let after_first = emu.connections_accepted();
    for _ in 0..3 {
        let mut resp = agent
            .get(&url)
            .header("Authorization", "Bearer t")
            .call()
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Read to the end, so the connection goes back to the pool.
        resp.body_mut().read_to_string().unwrap();
    }
    if first.is_ok() {
        // ureq retried on a second connection.
        assert_eq!(after_first, 2);
    }
    let expected_new = usize::from(first.is_err());
    assert_eq!(emu.connections_accepted(), after_first + expected_new);
    assert!(after_first >= 1);
}

#[test]
fn binary_takes_fault_and_throttle_flags() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ius-emulator"))
        .args([
            "--fault",
            r#"{"fault":"status","status":503,"retryAfter":"1","count":1}"#,
            "--throttle-writes",
            "1/20s",
            "--throttle-no-retry-after",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let result = (|| {
        let url = line
            .trim_end()
            .strip_prefix("listening on ")
            .ok_or("bad first line")?
            .to_owned();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let resp = agent
                .post(format!("{url}{C1}"))
                .header("Authorization", "Bearer t")
                .send("{}")
                .map_err(|e| e.to_string())?;
            statuses.push((
                resp.status().as_u16(),
                resp.headers().contains_key("retry-after"),
            ));
        }
        Ok::<_, String>(statuses)
    })();
    child.kill().unwrap();
    child.wait().unwrap();
    let statuses = result.unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(statuses, [(503, true), (201, false), (429, false)]);
}

#[test]
fn lost_answer_applies_the_write_then_resets_the_connection() {
    let emu = start_with(vec![
        FaultRule::from_json(r#"{"fault":"lostAnswer","count":1}"#).unwrap(),
    ]);
    let mut s = connect(&emu, Duration::from_secs(2));
    s.write_all(&request("PATCH", U1, Some(r#"{"devicesCount":7}"#)))
        .unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}"),
        Ok(n) => assert_eq!(n, 0),
    }
    // Applied all the same.
    assert_eq!(
        emu.user_status(
            "/deviceManagement/deviceConfigurations/c1/userStatuses",
            "u1"
        )
        .unwrap()["devicesCount"],
        7
    );
}
