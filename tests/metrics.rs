//! `Client::metrics` end to end against the emulator: a known sequence of updates (a 429 with
//! Retry-After, a 404, a 401 answered by a fresh token, successes) checked counter by counter,
//! then bulk calls, an outbox's flush, pacing and the token cache each counted where they belong.

mod common;

use std::time::Duration;

use common::{Scratch, TOKEN};
use intune_user_status::{
    AnswerClass, BulkItem, Client, ClientSecretCredential, Error, Metrics, Operation, Outbox,
    OutboxOptions, Pacing, RetryCause, RetryPolicy, Target, UserStatusPatch,
};
use ius_emulator::{App, Config, Emulator, Fault, FaultRule, PatchReturns, SeedEntry};
use serde_json::{Value, json};

const TENANT: &str = "contoso.onmicrosoft.com";
const APP: &str = "55555555-0000-0000-0000-00000000c0de";
const SECRET: &str = "metrics-test-secret~value";
const CONFIG: &str = "cfg-m";
const COLLECTION: &str = "/deviceManagement/deviceConfigurations/cfg-m/userStatuses";
/// The successes of the known sequence, besides the two updates that succeed on their retry.
const SUCCESSES: usize = 5;
/// The Retry-After of the one 429, in seconds and in milliseconds.
const RETRY_AFTER: &str = "0.2";
const RETRY_AFTER_MS: u64 = 200;

fn status(code: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        status: code,
        retry_after: retry_after.map(str::to_owned),
    }
}

/// Graph (accepting [`TOKEN`] and the tokens it issues) and the app's token endpoint, with the
/// user statuses `ids` under [`CONFIG`], the faults `faults` and tokens living `lifetime`.
fn emulator(ids: &[String], faults: Vec<FaultRule>, lifetime: Duration) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.to_owned()),
        apps: vec![App {
            tenant: TENANT.to_owned(),
            client_id: APP.to_owned(),
            secret: Some(SECRET.to_owned()),
            certificate_pem: None,
        }],
        token_lifetime: lifetime,
        patch_returns: PatchReturns::NoContent,
        seed: ids
            .iter()
            .map(|id| SeedEntry {
                collection: COLLECTION.to_owned(),
                entity: json!({"id": id, "devicesCount": 0}),
            })
            .collect(),
        faults,
        ..Config::default()
    })
    .expect("start the emulator")
}

/// A client of the app's credential on `emu`, with short backoffs.
fn client(emu: &Emulator, secret: &str) -> Client {
    Client::builder()
        .base_url(emu.base_url())
        .credential(ClientSecretCredential::new(TENANT, APP, secret).authority_host(emu.base_url()))
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(10)))
        .build()
        .expect("client")
}

fn patch(count: i32) -> UserStatusPatch {
    UserStatusPatch::new().devices_count(count)
}

fn update(client: &Client, id: &str, count: i32) -> Result<(), Error> {
    client
        .update_user_status(&Target::new(CONFIG, id), &patch(count))
        .map(drop)
}

/// The length of the body Graph answers to a PATCH of `body` at user status `id`.
fn answer_bytes(emu: &Emulator, id: &str, body: &str) -> u64 {
    common::answer_bytes(
        &emu.base_url(),
        &format!("/beta{COLLECTION}/{id}"),
        TOKEN,
        body,
    )
}

/// The histograms' bucket counts add up to their `count`, which is `sent` of its operation.
fn assert_histograms_add_up(metrics: &Metrics) {
    for operation in Operation::ALL {
        let latency = metrics.latency_ms[operation];
        assert_eq!(
            latency.buckets.0.iter().sum::<u64>(),
            latency.count,
            "{operation:?}"
        );
        assert_eq!(
            latency.count, metrics.requests[operation].sent,
            "{operation:?}"
        );
    }
}

/// The known sequence: one 429 with Retry-After, one 404, one 401 answered by a fresh token,
/// and [`SUCCESSES`] plain successes. Every counter is checked, the whole JSON at once.
#[test]
fn a_known_sequence_is_counted_exactly() {
    let ids: Vec<String> = ["throttled", "refused"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..SUCCESSES).map(|n| format!("ok{n}")))
        .collect();
    let on =
        |id: &str, fault| FaultRule::next(1, fault).path_contains(format!("/userStatuses/{id}"));
    let emu = emulator(
        &ids,
        vec![
            on("throttled", status(429, Some(RETRY_AFTER))),
            on("refused", status(401, None)),
        ],
        Duration::from_secs(3599),
    );
    let client = client(&emu, SECRET);
    let started = std::time::Instant::now();
    update(&client, "throttled", 1).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(RETRY_AFTER_MS));
    match update(&client, "missing", 1) {
        Err(Error::Graph(graph)) => assert_eq!(graph.status, 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    update(&client, "refused", 1).unwrap();
    for n in 0..SUCCESSES {
        update(&client, &format!("ok{n}"), 1).unwrap();
    }
    let metrics = client.metrics();
    // Read by a clone too: the clones share the counters.
    assert_eq!(client.clone().metrics(), metrics);
    let text = serde_json::to_string_pretty(&metrics).unwrap();
    println!("the known sequence's metrics:\n{text}");
    // What went over the wire agrees with the counts below: 2 + 1 + 2 + N PATCHes, 2 tokens.
    let patches = emu
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    let updates = 2 + 1 + 2 + SUCCESSES as u64;
    assert_eq!(patches as u64, updates);
    assert_eq!(emu.token_requests().len(), 2);
    // The bodies: each PATCH sent the same one; the 204s answered none, the three others an
    // error body each (asked again of the emulator by a plain client, the faults reinstalled).
    let body = r#"{"devicesCount":1}"#;
    emu.add_fault(on("throttled", status(429, Some(RETRY_AFTER))));
    emu.add_fault(on("refused", status(401, None)));
    let received = answer_bytes(&emu, "throttled", body)
        + answer_bytes(&emu, "missing", body)
        + answer_bytes(&emu, "refused", body);
    assert!(received > 0);

    let zero = Client::builder()
        .base_url(emu.base_url())
        .access_token(TOKEN)
        .build()
        .unwrap();
    let mut expected = serde_json::to_value(zero.metrics()).unwrap();
    let mut answered = |operation: &str, class: &str, n: u64| {
        expected["requests"][operation]["answered"][class] = json!(n);
    };
    answered("update", "2xx", 2 + SUCCESSES as u64);
    answered("update", "429", 1);
    answered("update", "404", 1);
    answered("update", "401", 1);
    answered("token", "2xx", 2);
    expected["requests"]["update"]["sent"] = json!(updates);
    expected["requests"]["token"]["sent"] = json!(2);
    expected["retries"]["429"] = json!(1);
    expected["retries"]["401Refresh"] = json!(1);
    expected["throttleHolds"] = json!({"count": 1, "totalMs": RETRY_AFTER_MS});
    expected["tokens"] =
        json!({"fetched": 2, "failed": 0, "refreshedBeforeExpiry": 0, "after401": 1});
    expected["bytes"] = json!({"sent": updates * body.len() as u64, "received": received});
    // The histograms: their counts here, their buckets checked to add up below.
    let mut actual: Value = serde_json::from_str(&text).unwrap();
    for (operation, count) in [("update", updates), ("token", 2)] {
        assert_eq!(
            actual["latencyMs"][operation]["count"], count,
            "{operation}"
        );
        actual["latencyMs"][operation] = expected["latencyMs"][operation].clone();
    }
    assert_eq!(actual, expected);
    assert_histograms_add_up(&metrics);
    let update = metrics.latency_ms[Operation::Update];
    assert!(update.p50.is_some() && update.p50 <= update.p90 && update.p90 <= update.p99);
    assert_eq!(
        metrics.requests[Operation::Update].answered[AnswerClass::TooManyRequests],
        1
    );
    assert_eq!(metrics.retries[RetryCause::TooManyRequests], 1);
}

/// Bulk calls count their `$batch` requests and their items: sent (each time an envelope carried
/// one), retried (an item sent again after its 429), failed (a final answer not 2xx); a 429 on
/// the envelope itself is a retry of the batch and a throttle hold.
#[test]
fn bulk_calls_count_batches_and_items() {
    let ids: Vec<String> = (0..25).map(|n| format!("b{n}")).collect();
    let emu = emulator(
        &ids,
        vec![
            // The first envelope: a 429 on the whole batch, then its items are answered.
            FaultRule::next(1, status(429, Some("0.1"))).path_contains("$batch"),
            // Inside a later envelope, item b3 once 429 (it goes again alone).
            FaultRule::next(1, status(429, Some("0.05"))).path_contains("/userStatuses/b3"),
        ],
        Duration::from_secs(3599),
    );
    let client = client(&emu, SECRET);
    let items: Vec<BulkItem> = ids
        .iter()
        .map(String::as_str)
        .chain(["nobody"])
        .map(|id| BulkItem::new(Target::new(CONFIG, id), patch(2)))
        .collect();
    let results = client.update_user_statuses(&items);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 25);
    assert!(matches!(&results[25], Err(Error::Graph(graph)) if graph.status == 404));
    let metrics = client.metrics();
    let batch = metrics.requests[Operation::Batch];
    let envelopes = emu
        .wire_requests()
        .iter()
        .filter(|r| r.target.ends_with("/$batch"))
        .count() as u64;
    // 26 items in envelopes of 20 and 6, the first sent twice (its 429), then b3 alone.
    assert_eq!(envelopes, 4);
    assert_eq!(batch.sent, envelopes);
    assert_eq!(batch.answered[AnswerClass::Success], 3);
    assert_eq!(batch.answered[AnswerClass::TooManyRequests], 1);
    assert_eq!(metrics.retries[RetryCause::TooManyRequests], 1);
    let items_sent = emu.batch_items().len() as u64;
    assert_eq!(
        items_sent,
        26 + 1,
        "b3 twice (the 429'd envelope never ran its items)"
    );
    assert_eq!(
        metrics.batch_items.sent,
        20 + 20 + 6 + 1,
        "the 429'd envelope's items too"
    );
    assert_eq!(metrics.batch_items.retried, 20 + 1);
    assert_eq!(metrics.batch_items.failed, 1, "nobody's 404");
    assert_eq!(metrics.throttle_holds.count, 2);
    assert_eq!(metrics.throttle_holds.total_ms, 150);
    assert_eq!(metrics.requests[Operation::Update].sent, 0);
    assert_histograms_add_up(&metrics);
}

/// An outbox's flush counts into the metrics of the client it was opened with.
#[test]
fn an_outbox_flush_counts_into_its_clients_metrics() {
    let ids: Vec<String> = (0..3).map(|n| format!("o{n}")).collect();
    let emu = emulator(&ids, Vec::new(), Duration::from_secs(3599));
    let client = client(&emu, SECRET);
    let dir = Scratch::new("metrics-outbox");
    let outbox = Outbox::open(&client, dir.0.join("outbox.db"), OutboxOptions::new()).unwrap();
    for id in &ids {
        outbox.enqueue(&Target::new(CONFIG, id), &patch(3)).unwrap();
    }
    outbox.flush().unwrap();
    let metrics = client.metrics();
    assert_eq!(metrics.requests[Operation::Batch].sent, 1);
    assert_eq!(
        metrics.requests[Operation::Batch].answered[AnswerClass::Success],
        1
    );
    assert_eq!(metrics.batch_items.sent, 3);
    assert_eq!(
        (metrics.batch_items.retried, metrics.batch_items.failed),
        (0, 0)
    );
    assert_eq!(metrics.tokens.fetched, 1);
    assert_histograms_add_up(&metrics);
}

/// Requests that waited for the pacing window are counted with the time they waited; those that
/// did not wait are not.
#[test]
fn pacing_waits_count_the_requests_the_window_held() {
    let ids = vec!["p0".to_owned()];
    let emu = emulator(&ids, Vec::new(), Duration::from_secs(3599));
    let per = Duration::from_millis(150);
    let client = Client::builder()
        .base_url(emu.base_url())
        .access_token(TOKEN)
        .pacing(Pacing::new(1, per))
        .build()
        .unwrap();
    for n in 0..3 {
        update(&client, "p0", n).unwrap();
    }
    let metrics = client.metrics();
    assert_eq!(metrics.pacing_waits.count, 2, "the second and third waited");
    assert!(
        (250..=400).contains(&metrics.pacing_waits.total_ms),
        "{:?}",
        metrics.pacing_waits
    );
    assert_eq!(metrics.throttle_holds.count, 0);
    // A fixed token is not the token cache's: nothing fetched.
    assert_eq!(metrics.tokens.fetched, 0);
    assert_eq!(metrics.requests[Operation::Token].sent, 0);
}

/// The token cache counts what it fetched and why: a failure, a refresh before expiry (a token
/// living 2 s is refreshed at half its life), and one after Graph's 401 to an expired token.
#[test]
fn tokens_are_counted_by_why_they_were_fetched() {
    let ids = vec!["k0".to_owned()];
    let emu = emulator(&ids, Vec::new(), Duration::from_secs(2));
    let wrong = client(&emu, "not-the-secret");
    assert!(matches!(update(&wrong, "k0", 1), Err(Error::Auth(_))));
    let metrics = wrong.metrics();
    assert_eq!(metrics.tokens.failed, 1);
    assert_eq!(metrics.tokens.fetched, 0);
    assert_eq!(
        metrics.requests[Operation::Token].answered[AnswerClass::Unauthorized],
        1
    );
    assert_eq!(metrics.requests[Operation::Update].sent, 0);

    let client = client(&emu, SECRET);
    update(&client, "k0", 1).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    update(&client, "k0", 2).unwrap();
    emu.expire_issued_tokens();
    update(&client, "k0", 3).unwrap();
    let tokens = client.metrics().tokens;
    assert_eq!(
        (
            tokens.fetched,
            tokens.failed,
            tokens.refreshed_before_expiry,
            tokens.after_401
        ),
        (3, 0, 1, 1)
    );
    let metrics = client.metrics();
    assert_eq!(metrics.retries[RetryCause::TokenRefresh], 1);
    assert_eq!(metrics.requests[Operation::Token].sent, 3);
    assert_eq!(
        metrics.requests[Operation::Update].answered[AnswerClass::Unauthorized],
        1
    );
}

/// A request abandoned by an interrupt is answered `cancelled`: sent, never answered by Graph.
#[test]
fn an_interrupted_request_is_counted_cancelled() {
    let ids = vec!["stall".to_owned()];
    let stall = FaultRule::next(1, Fault::NoAnswer).path_contains("/userStatuses/stall");
    let emu = emulator(&ids, vec![stall], Duration::from_secs(3599));
    let client = Client::builder()
        .base_url(emu.base_url())
        .access_token(TOKEN)
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        let call = scope.spawn(|| update(&client, "stall", 1));
        // Until the PATCH has reached the emulator (bounded: 10 s).
        for _ in 0..1000 {
            if !emu.requests().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        client.interrupt();
        assert!(matches!(call.join().unwrap(), Err(Error::Cancelled { .. })));
    });
    let update = client.metrics().requests[Operation::Update];
    assert_eq!(update.sent, 1);
    assert_eq!(update.answered[AnswerClass::Cancelled], 1);
    assert_eq!(update.answered.iter().map(|(_, n)| n).sum::<u64>(), 1);
}
