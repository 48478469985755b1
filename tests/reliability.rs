//! The fault matrix (docs/reliability.md): one test per fault, through the Rust API, against the
//! emulator's fault injection. Each asserts what the caller sees, the attempts and headers the
//! emulator received, and how long it took, bounded on both sides: a wait between attempts is
//! measured between the emulator's recorded arrivals, a budget from the request's arrival to the
//! call's return. Each bound is the matrix's figure, plus [`MARGIN`] above it.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{TOKEN, builder};
use intune_user_status::{
    CallOptions, Client, Error, Pacing, RetryPolicy, Target, TransportKind, UpdateOutcome,
    UserStatusPatch,
};
use ius_emulator::{Config, Emulator, Fault, FaultRule, PatchReturns, SeedEntry};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

fn seeded(config: Config) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed: vec![SeedEntry {
            collection: DIRECT.into(),
            entity: serde_json::json!({"id": "u1"}),
        }],
        ..config
    })
    .expect("start emulator")
}

/// An emulator whose next PATCHes meet `faults`, in order.
fn faulty(faults: Vec<FaultRule>) -> Emulator {
    seeded(Config {
        faults,
        ..Config::default()
    })
}

fn patch_once(client: &Client) -> Result<UpdateOutcome, Error> {
    client.update_user_status(
        &Target::new("cfg-1", "u1"),
        &UserStatusPatch::new().devices_count(9),
    )
}

fn next_patch(n: u32, fault: Fault) -> FaultRule {
    FaultRule::next(n, fault).method("PATCH")
}

fn status(status: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
    }
}

/// The requests the emulator saw, and that they were one call: same client-request-id, and
/// `Retry-Attempt: N` on the Nth retry only.
fn assert_one_call_of(emu: &Emulator, attempts: usize) {
    let requests = emu.requests();
    assert_eq!(requests.len(), attempts, "attempts sent");
    let id = requests[0].header("client-request-id").unwrap();
    for (n, request) in requests.iter().enumerate() {
        assert_eq!(request.header("client-request-id"), Some(id));
        let retry_attempt = n.to_string();
        assert_eq!(
            request.header("retry-attempt"),
            (n > 0).then_some(retry_attempt.as_str()),
            "request {n}"
        );
        assert_eq!(
            request.body_str(),
            r#"{"devicesCount":9}"#,
            "same bytes resent"
        );
    }
}

/// How far past its stated figure a measured time may run: the emulator's reading and recording,
/// loopback, and the client's and emulator's threads waking up on a loaded 2-core machine. Over
/// 50 runs of this file on the development machine (load average 4 to 6: other builds and a
/// fuzzer), the excess over the stated figures had a median of 0.9 ms, a 95th percentile of 36 ms
/// and a maximum of 138 ms (the unpaced throttling row; 76 ms for a single wait or budget): the
/// margin is that maximum with room to spare, and a `Retry-After: 0.25` taken as 1 s still fails.
/// `examples/fault_margins.sh` measures it again (docs/reliability.md, "The fault matrix").
const MARGIN: Duration = Duration::from_millis(250);

/// What the rows that move much data or many requests (r18's 2 MiB body, r25's and r26's 200
/// writes) may take beyond their stated figure under Wine, besides [`MARGIN`]: every socket call
/// goes through Wine's server, so there the work itself takes time the figure does not count.
/// Over 10 runs of this file under Wine 8 (load average 2.5 to 6) their excess reached 358, 176
/// and 777 ms, where Linux's stays under 140; r26's reached 1422 ms at load 7 to 10 (beside a
/// clean Windows build). r26 counts its holds from the gaps between requests, so this bounds
/// the work alone. Nothing on Linux; the waits and budgets keep the one margin everywhere.
const WINE_WORK: Duration = Duration::from_millis(if cfg!(windows) { 1500 } else { 0 });

/// Asserts that `took` lies within `low ..= high + MARGIN`, and prints how far it ran past `high`
/// (`examples/fault_margins.sh` collects these lines).
fn assert_took(row: &str, took: Duration, low: Duration, high: Duration) {
    let excess = took.as_secs_f64() - high.as_secs_f64();
    println!("timing {row} excess_ms={:.1}", excess * 1e3);
    assert!(
        took >= low && took <= high + MARGIN,
        "{row}: took {took:?}, want {low:?} ..= {high:?} + {MARGIN:?}"
    );
}

/// The time from each recorded request's arrival to the next one's.
fn gaps(emu: &Emulator) -> Vec<Duration> {
    let requests = emu.requests();
    requests
        .windows(2)
        .map(|pair| pair[1].received.duration_since(pair[0].received))
        .collect()
}

/// The time from the first request's arrival to `returned`, the call's return.
fn since_arrival(emu: &Emulator, returned: Instant) -> Duration {
    let requests = emu.requests();
    let first = requests.first().expect("a request arrived");
    returned.duration_since(first.received)
}

/// Runs `call` and asserts that it returned at once: at most [`MARGIN`] after the first request
/// arrived (nothing waited on a backoff, a budget or a hold).
fn at_once<T>(row: &str, emu: &Emulator, call: impl FnOnce() -> T) -> T {
    let outcome = call();
    let took = since_arrival(emu, Instant::now());
    assert_took(row, took, Duration::ZERO, Duration::ZERO);
    outcome
}

/// Polls `done` until it holds; fails the test if it does not within `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

fn applied(emu: &Emulator) -> bool {
    emu.user_status(DIRECT, "u1").unwrap()["devicesCount"] == 9
}

#[test]
fn r01_429_with_fractional_retry_after_is_waited_out_then_succeeds() {
    let emu = faulty(vec![next_patch(2, status(429, Some("0.25")))]);
    let outcome = patch_once(&builder(&emu.base_url()).build().unwrap()).unwrap();
    assert_eq!(outcome, UpdateOutcome::NoContent);
    assert_one_call_of(&emu, 3);
    for gap in gaps(&emu) {
        assert_took("r01 Retry-After 0.25", gap, MS(250), MS(250));
    }
    assert!(applied(&emu));
}

#[test]
fn r02_503_with_integer_retry_after_is_retried() {
    let emu = faulty(vec![next_patch(1, status(503, Some("1")))]);
    patch_once(&builder(&emu.base_url()).build().unwrap()).unwrap();
    assert_one_call_of(&emu, 2);
    assert_took("r02 Retry-After 1", gaps(&emu)[0], MS(1000), MS(1000));
    assert!(applied(&emu));
}

#[test]
fn r03_retry_after_as_an_http_date_is_honoured() {
    let (now, now_instant) = (SystemTime::now(), Instant::now());
    let when = httpdate::fmt_http_date(now + Duration::from_secs(2));
    // The date has one-second resolution: the retry is due at that second, 1 to 2 s from now.
    let due = now_instant
        + httpdate::parse_http_date(&when)
            .unwrap()
            .duration_since(now)
            .unwrap();
    let emu = faulty(vec![next_patch(1, status(429, Some(&when)))]);
    patch_once(&builder(&emu.base_url()).build().unwrap()).unwrap();
    assert_one_call_of(&emu, 2);
    // Measured from `due`, with 5 ms for the system clock's steps against the monotonic one.
    let retried = emu.requests()[1].received;
    let late = retried.saturating_duration_since(due);
    assert!(retried + MS(5) >= due, "retried before the date");
    assert_took("r03 Retry-After date", late, Duration::ZERO, Duration::ZERO);
    assert!(applied(&emu));
}

#[test]
fn r04_504_without_retry_after_backs_off_exponentially() {
    let emu = faulty(vec![next_patch(2, status(504, None))]);
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::default().base_delay(MS(100)))
        .build()
        .unwrap();
    patch_once(&client).unwrap();
    assert_one_call_of(&emu, 3);
    // 100 ms then 200 ms, each within ±20% jitter.
    let gaps = gaps(&emu);
    assert_took("r04 backoff 100 ms", gaps[0], MS(80), MS(120));
    assert_took("r04 backoff 200 ms", gaps[1], MS(160), MS(240));
    assert!(applied(&emu));
}

#[test]
fn r05_500_is_not_retried() {
    let emu = faulty(vec![next_patch(1, status(500, None))]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r05 500", &emu, || patch_once(&client)).unwrap_err();
    let graph = err.graph().unwrap();
    assert_eq!((graph.status, graph.attempts), (500, 1));
    assert_eq!(graph.code.as_deref(), Some("InternalServerError"));
    assert_one_call_of(&emu, 1);
    assert!(!applied(&emu));
}

#[test]
fn r06_persistent_429_gives_up_after_the_last_retry_keeping_graphs_answer() {
    let emu = faulty(vec![FaultRule::always(status(429, Some("0.05")))]);
    let err = patch_once(&builder(&emu.base_url()).build().unwrap()).unwrap_err();
    let returned = Instant::now();
    assert!(err.is_throttled());
    let graph = err.graph().unwrap();
    assert_eq!(graph.attempts, 4, "1 + 3 retries");
    assert_eq!(graph.code.as_deref(), Some("TooManyRequests"));
    assert!(graph.request_id.is_some());
    assert_eq!(graph.retry_after, Some(MS(50)));
    assert_one_call_of(&emu, 4);
    for gap in gaps(&emu) {
        assert_took("r06 Retry-After 0.05", gap, MS(50), MS(50));
    }
    // Giving up after the last 429 waits for nothing.
    let last = emu.requests().last().unwrap().received;
    assert_took("r06 after the last 429", returned - last, MS(0), MS(0));
}

#[test]
fn r07_a_retry_after_longer_than_one_wait_may_be_gives_up_at_once() {
    let emu = faulty(vec![next_patch(1, status(429, Some("30")))]);
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::default().max_delay(Duration::from_secs(10)))
        .build()
        .unwrap();
    let err = at_once("r07 Retry-After 30 over maxDelay", &emu, || {
        patch_once(&client).unwrap_err()
    });
    assert!(err.is_throttled());
    let graph = err.graph().unwrap();
    assert_eq!(graph.retry_after, Some(Duration::from_secs(30)));
    assert!(
        graph
            .retry_stopped
            .as_deref()
            .unwrap()
            .contains("maxDelayMs")
    );
    assert!(err.to_string().contains("30.000 s"), "{err}");
    assert!(
        err.to_string().contains("not retried: ") && err.to_string().contains("maxDelayMs"),
        "the reason is in the message: {err}"
    );
    assert_eq!(err.retry_stopped(), graph.retry_stopped.as_deref());
    assert_one_call_of(&emu, 1);
}

#[test]
fn r08_a_wait_past_the_total_budget_gives_up_at_once() {
    let emu = faulty(vec![next_patch(1, status(503, Some("3")))]);
    let client = builder(&emu.base_url())
        .total_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = at_once("r08 Retry-After 3 over totalMs", &emu, || {
        patch_once(&client).unwrap_err()
    });
    let graph = err.graph().unwrap();
    assert_eq!(graph.status, 503);
    assert!(graph.retry_stopped.as_deref().unwrap().contains("totalMs"));
    assert_one_call_of(&emu, 1);
}

#[test]
fn r09_a_reset_connection_is_retried() {
    let emu = faulty(vec![next_patch(1, Fault::Reset)]);
    let client = builder(&emu.base_url()).build().unwrap();
    at_once("r09 reset", &emu, || patch_once(&client)).unwrap();
    assert_one_call_of(&emu, 2);
    assert!(applied(&emu));
}

#[test]
fn r10_a_pooled_connection_closed_by_the_server_is_retried() {
    let emu = faulty(vec![]);
    let client = builder(&emu.base_url()).build().unwrap();
    patch_once(&client).unwrap(); // leaves a pooled connection
    emu.clear_requests();
    emu.add_fault(next_patch(1, Fault::Close));
    at_once("r10 pooled connection closed", &emu, || patch_once(&client)).unwrap();
    assert_one_call_of(&emu, 2);
    assert!(applied(&emu));
}

#[test]
fn r11_a_server_that_never_answers_times_out_per_attempt_and_is_not_retried() {
    let emu = faulty(vec![FaultRule::always(Fault::NoAnswer).method("PATCH")]);
    let client = builder(&emu.base_url())
        .request_timeout(MS(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = patch_once(&client).unwrap_err();
    let (returned, took) = (Instant::now(), started.elapsed());
    assert!(matches!(err, Error::Timeout { attempts: 1, .. }), "{err:?}");
    assert!(took >= MS(300), "the budget ran out first: {took:?}");
    assert_took(
        "r11 requestMs 300",
        since_arrival(&emu, returned),
        MS(0),
        MS(300),
    );
    assert_one_call_of(&emu, 1);
}

#[test]
fn r12_headers_then_a_stall_is_bounded_by_the_total_budget() {
    let emu = faulty(vec![
        FaultRule::always(Fault::StallAfterHeaders).method("PATCH"),
    ]);
    let client = builder(&emu.base_url())
        .total_timeout(MS(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = patch_once(&client).unwrap_err();
    let (returned, took) = (Instant::now(), started.elapsed());
    assert!(
        matches!(&err, Error::Timeout { stage, .. } if stage.contains("total")),
        "{err:?}"
    );
    assert!(took >= MS(500), "the budget ran out first: {took:?}");
    assert_took(
        "r12 totalMs 500",
        since_arrival(&emu, returned),
        MS(0),
        MS(500),
    );
    assert_one_call_of(&emu, 1);
}

#[test]
fn r13_a_trickled_body_is_bounded_by_the_total_budget() {
    let emu = faulty(vec![
        FaultRule::always(Fault::TrickleBody { interval: MS(100) }).method("PATCH"),
    ]);
    let client = builder(&emu.base_url())
        .total_timeout(MS(600))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = patch_once(&client).unwrap_err();
    let (returned, took) = (Instant::now(), started.elapsed());
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // The whole body would take 4.7 s; the budget ends the call first.
    assert!(took >= MS(600), "the budget ran out first: {took:?}");
    assert_took(
        "r13 totalMs 600",
        since_arrival(&emu, returned),
        MS(0),
        MS(600),
    );
    assert_one_call_of(&emu, 1);
}

#[test]
fn r14_slow_answers_within_the_timeout_succeed() {
    let emu = faulty(vec![next_patch(1, Fault::Latency(MS(200)))]);
    let client = builder(&emu.base_url())
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    patch_once(&client).unwrap();
    let took = since_arrival(&emu, Instant::now());
    assert_took("r14 latency 200 ms", took, MS(200), MS(200));
    assert_one_call_of(&emu, 1);
    assert!(applied(&emu));
}

#[test]
fn r15_a_truncated_body_is_an_error_and_the_connection_is_not_reused() {
    let emu = seeded(Config {
        patch_returns: PatchReturns::Ok,
        faults: vec![next_patch(1, Fault::Truncated)],
        ..Config::default()
    });
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r15 truncated body", &emu, || patch_once(&client)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Io,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_one_call_of(&emu, 1);
    let before = emu.connections_accepted();
    patch_once(&client).unwrap();
    assert_eq!(emu.connections_accepted(), before + 1, "a fresh connection");
}

#[test]
fn r16_an_html_error_page_is_kept_raw() {
    let emu = faulty(vec![next_patch(1, Fault::NonJson { status: 500 })]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r16 HTML 500", &emu, || patch_once(&client)).unwrap_err();
    let graph = err.graph().unwrap();
    assert_eq!((graph.status, graph.code.as_deref()), (500, None));
    assert!(graph.raw_body.as_deref().unwrap().contains("<"));
    assert_one_call_of(&emu, 1);
    assert!(!applied(&emu));
}

#[test]
fn r17_a_200_that_is_not_the_entity_is_unexpected() {
    let emu = faulty(vec![next_patch(1, Fault::NonJson { status: 200 })]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r17 HTML 200", &emu, || patch_once(&client)).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedResponse { status: 200, .. }),
        "{err:?}"
    );
    assert_one_call_of(&emu, 1);
}

#[test]
fn r18_an_oversized_body_is_refused() {
    let emu = faulty(vec![next_patch(1, Fault::Oversized { bytes: 2 << 20 })]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = patch_once(&client).unwrap_err();
    let took = since_arrival(&emu, Instant::now());
    assert_took("r18 2 MiB body", took, Duration::ZERO, WINE_WORK);
    assert!(
        matches!(&err, Error::UnexpectedResponse { reason, .. } if reason.contains("larger")),
        "{err:?}"
    );
    assert_one_call_of(&emu, 1);
}

#[test]
fn r19_a_redirect_on_the_same_origin_keeps_the_method_body_and_token() {
    let emu = faulty(vec![]);
    let path = format!("/beta{DIRECT}/u1");
    emu.add_fault(next_patch(
        1,
        Fault::Redirect {
            status: 307,
            location: path.clone(),
        },
    ));
    let client = builder(&emu.base_url()).build().unwrap();
    at_once("r19 307", &emu, || patch_once(&client)).unwrap();
    let requests = emu.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[1].method.as_str(), requests[1].target.as_str()),
        ("PATCH", path.as_str())
    );
    assert_eq!(
        requests[1].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(requests[1].body_str(), r#"{"devicesCount":9}"#);
    assert!(applied(&emu));
}

#[test]
fn r20_a_redirect_to_another_port_drops_the_token() {
    let elsewhere = seeded(Config::default());
    let emu = faulty(vec![next_patch(
        1,
        Fault::Redirect {
            status: 308,
            location: format!("{}/beta{DIRECT}/u1", elsewhere.base_url()),
        },
    )]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r20 308 to another port", &emu, || patch_once(&client)).unwrap_err();
    assert_eq!(
        err.http_status(),
        Some(401),
        "the other listener wants a token"
    );
    assert_one_call_of(&emu, 1);
    let seen = elsewhere.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[0].body_str(), r#"{"devicesCount":9}"#);
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "no token to another origin"
    );
}

#[test]
fn r21_a_303_turns_into_a_get_and_is_unexpected_for_an_update() {
    let emu = faulty(vec![next_patch(
        1,
        Fault::Redirect {
            status: 303,
            location: format!("/beta{DIRECT}/u1"),
        },
    )]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r21 303", &emu, || patch_once(&client)).unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedResponse { reason, .. } if reason.contains("303")),
        "{err:?}"
    );
    let requests = emu.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].method, "GET");
    assert!(requests[1].body.is_empty());
    assert!(!applied(&emu));
}

#[test]
fn r22_more_than_five_redirects_are_not_followed() {
    let emu = faulty(vec![FaultRule::always(Fault::Redirect {
        status: 302,
        location: format!("/beta{DIRECT}/u1"),
    })]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r22 302 forever", &emu, || patch_once(&client)).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedResponse { status: 302, .. }),
        "{err:?}"
    );
    assert_eq!(emu.requests().len(), 6, "the request and 5 redirects");
    assert!(!applied(&emu));
}

#[test]
fn r23_a_429_holds_every_thread_of_the_client() {
    let emu = faulty(vec![next_patch(1, status(429, Some("0.6")))]);
    let client = builder(&emu.base_url()).build().unwrap();
    let first = {
        let client = client.clone();
        std::thread::spawn(move || patch_once(&client))
    };
    // Once the 429 has been answered, send from another thread.
    wait_for("the first request", Duration::from_secs(5), || {
        !emu.requests().is_empty()
    });
    // Time for the first thread to read the 429 (a loaded machine, or Wine, took over 50 ms).
    std::thread::sleep(MS(150));
    patch_once(&client).unwrap();
    first.join().unwrap().unwrap();
    // Both later requests (this thread's, the first thread's retry) waited for the hold.
    let requests = emu.requests();
    assert_eq!(requests.len(), 3);
    for later in &requests[1..] {
        let waited = later.received.duration_since(requests[0].received);
        assert_took("r23 hold of Retry-After 0.6", waited, MS(600), MS(600));
        assert_eq!(later.body_str(), r#"{"devicesCount":9}"#);
    }
    let retry = requests[1..]
        .iter()
        .find(|r| r.header("retry-attempt") == Some("1"))
        .expect("the first thread's retry");
    assert_eq!(
        retry.header("client-request-id"),
        requests[0].header("client-request-id")
    );
}

#[test]
fn r24_retries_can_be_turned_off_per_call() {
    let emu = faulty(vec![next_patch(1, status(503, Some("0.05")))]);
    let client = builder(&emu.base_url()).build().unwrap();
    let err = at_once("r24 retries off", &emu, || {
        client.update_user_status_with(
            &Target::new("cfg-1", "u1"),
            &UserStatusPatch::new().devices_count(9),
            &CallOptions::new().retry(RetryPolicy::none()),
        )
    })
    .unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    assert_one_call_of(&emu, 1);
}

/// Intune's write limit (100 per 20 s), scaled to keep the test short: 50 writes per 500 ms.
fn throttling() -> Emulator {
    let collections: Vec<SeedEntry> = (0..4)
        .map(|t| SeedEntry {
            collection: format!("/deviceManagement/deviceConfigurations/cfg-{t}/userStatuses"),
            entity: serde_json::json!({"id": "u1"}),
        })
        .collect();
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed: collections,
        throttle_writes: Some((50, MS(500))),
        ..Config::default()
    })
    .unwrap()
}

/// 200 updates: 4 threads x 50 on one client; every update must land, each thread's in order.
fn bulk_update(client: &Client, emu: &Emulator) {
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for n in 1..=50 {
                    client
                        .update_user_status(
                            &Target::new(format!("cfg-{t}"), "u1"),
                            &UserStatusPatch::new().devices_count(n),
                        )
                        .unwrap();
                }
            });
        }
    });
    for t in 0..4 {
        let collection = format!("/deviceManagement/deviceConfigurations/cfg-{t}/userStatuses");
        assert_eq!(
            emu.user_status(&collection, "u1").unwrap()["devicesCount"],
            50
        );
    }
}

/// From the first request's arrival to the last one's.
fn span(emu: &Emulator) -> Duration {
    let requests = emu.requests();
    let (first, last) = (requests.first().unwrap(), requests.last().unwrap());
    last.received.duration_since(first.received)
}

#[test]
fn r25_a_paced_client_never_meets_the_write_limit() {
    let emu = throttling();
    let client = builder(&emu.base_url())
        // Exactly the emulator's limit: the client's window runs from answers, so latency and
        // scheduling jitter cannot squeeze two windows' requests into one of the emulator's.
        .pacing(Pacing::new(50, MS(500)))
        .build()
        .unwrap();
    bulk_update(&client, &emu);
    assert_eq!(emu.throttled_count(), 0);
    assert_eq!(emu.requests().len(), 200);
    // Requests 51, 101 and 151 each wait a window after an answer: at least 1.5 s (less 10 ms:
    // a request is recorded on arrival, a moment before the window counts it).
    assert_took(
        "r25 paced, 4 windows",
        span(&emu),
        MS(1490),
        MS(1500) + WINE_WORK,
    );
}

#[test]
fn r26_an_unpaced_client_meets_429s_retries_them_and_applies_everything() {
    let emu = throttling();
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::default().max_retries(10))
        .build()
        .unwrap();
    bulk_update(&client, &emu);
    assert!(emu.throttled_count() > 0, "the limit was met");
    assert_eq!(emu.requests().len(), 200 + emu.throttled_count());
    // Each round of 429s holds the client for the emulator's whole-second Retry-After, 1 s; the
    // 200 writes take three such rounds after the first 50. The holds are the gaps between
    // arrivals of half a second or more (the writes between them come milliseconds apart, tens
    // under Wine): exactly three, each a whole second.
    let holds: Vec<Duration> = gaps(&emu)
        .into_iter()
        .filter(|gap| *gap >= MS(500))
        .collect();
    assert_eq!(holds.len(), 3, "holds: {holds:?}");
    for hold in holds {
        assert_took("r26 a hold", hold, MS(990), MS(1000));
    }
    assert_took(
        "r26 unpaced, 3 holds",
        span(&emu),
        MS(1490),
        MS(3000) + WINE_WORK,
    );
}

#[test]
fn r27_a_429_holds_the_client_even_when_the_call_does_not_retry() {
    let emu = faulty(vec![next_patch(1, status(429, Some("0.5")))]);
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    assert!(patch_once(&client).unwrap_err().is_throttled());
    patch_once(&client).unwrap();
    let requests = emu.requests();
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0].header("client-request-id"),
        requests[1].header("client-request-id"),
        "two calls"
    );
    assert_took(
        "r27 hold of Retry-After 0.5",
        gaps(&emu)[0],
        MS(500),
        MS(500),
    );
    assert!(applied(&emu));
}

#[test]
fn r28_a_failed_read_back_after_a_204_still_reports_the_applied_update() {
    let emu = faulty(vec![FaultRule::next(1, status(500, None)).method("GET")]);
    let client = builder(&emu.base_url())
        .fetch_after_no_content(true)
        .build()
        .unwrap();
    let outcome = at_once("r28 read-back 500", &emu, || patch_once(&client)).unwrap();
    assert_eq!(outcome, UpdateOutcome::NoContent);
    assert!(applied(&emu));
    let methods: Vec<String> = emu.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["PATCH", "GET"]);
}

/// Runs `call` on another thread and waits at most `limit` for it: a hold of centuries must show
/// as a failed test, not a hung one.
fn within<T: Send + 'static>(limit: Duration, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(call());
    });
    finished
        .recv_timeout(limit)
        .expect("the call returned in time")
}

#[test]
fn r29_a_retry_after_date_centuries_away_holds_the_client_no_longer_than_max_delay() {
    for (retry_after, total) in [
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),
        (
            "Fri, 31 Dec 9999 23:59:59 GMT",
            Some(Duration::from_secs(2)),
        ),
        ("31536000", None),
    ] {
        let emu = faulty(vec![next_patch(1, status(429, Some(retry_after)))]);
        let mut builder =
            builder(&emu.base_url()).retry_policy(RetryPolicy::default().max_delay(MS(300)));
        if let Some(total) = total {
            builder = builder.total_timeout(total);
        }
        let client = builder.build().unwrap();
        let err = patch_once(&client).unwrap_err();
        assert!(err.is_throttled(), "{retry_after}: {err}");
        assert!(
            err.retry_stopped()
                .is_some_and(|why| why.contains("maxDelayMs")),
            "{retry_after}: {err}"
        );
        // The next call waits out the hold, capped at maxDelayMs, and goes through.
        let next = within(Duration::from_secs(5), move || patch_once(&client));
        assert!(next.is_ok(), "{retry_after} {total:?}: {next:?}");
        assert_eq!(emu.requests().len(), 2, "{retry_after}");
        assert_took(
            "r29 hold capped at maxDelay 300 ms",
            gaps(&emu)[0],
            MS(300),
            MS(300),
        );
        assert!(applied(&emu));
    }
}

#[test]
fn r30_a_wait_on_another_threads_hold_counts_against_max_total_wait() {
    // One 429 asks for 0.8 s; this client may wait 0.3 s in all: the next call gives up at once
    // instead of waiting out a hold its policy would never wait.
    let emu = faulty(vec![next_patch(1, status(429, Some("0.8")))]);
    let client = builder(&emu.base_url())
        .retry_policy(
            RetryPolicy::none()
                .max_delay(Duration::from_secs(1))
                .max_total_wait(MS(300)),
        )
        .build()
        .unwrap();
    assert!(patch_once(&client).unwrap_err().is_throttled());
    // Nothing is sent, so the call is timed from its start.
    let started = Instant::now();
    let err = patch_once(&client).unwrap_err();
    assert_took("r30 hold over maxTotalMs", started.elapsed(), MS(0), MS(0));
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert_eq!(emu.requests().len(), 1, "nothing more was sent");
}

/// A 401 answered by a fresh token is resent once; when the client's own pacing gate then keeps
/// that resend back past the call's budget (pacing 1 request per 2 s, totalMs 500 ms), the call
/// ends with the 401 the resend followed (Graph's answer, retryStopped naming the gate), not
/// THROTTLED: Graph throttled nothing.
#[test]
fn r31_a_resend_after_a_401_the_own_pacing_gate_refused_ends_with_the_401() {
    // Any token is refused once: the fault answers the first PATCH 401.
    let emu = faulty(vec![next_patch(1, status(401, None))]);
    let client = Client::builder()
        .base_url(emu.base_url())
        .token_provider(common::Rotating::default())
        .pacing(Pacing::new(1, Duration::from_secs(2)))
        .total_timeout(MS(500))
        .build()
        .unwrap();
    let err = patch_once(&client).unwrap_err();
    assert_eq!(emu.requests().len(), 1, "the resend left: {err:?}");
    assert_eq!(err.http_status(), Some(401), "{err:?}");
    assert!(!err.is_throttled(), "{err:?}");
    assert!(
        err.retry_stopped()
            .is_some_and(|why| why.contains("pacing gate")),
        "{err:?}"
    );
    assert_eq!(err.attempts(), 1, "{err:?}");
}
