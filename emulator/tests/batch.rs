//! `POST /{version}/$batch`: Graph's batching rules, inner requests through
//! the same handlers, faults and write throttle as direct ones, and the
//! request log's view of them.

mod common;

use std::time::{Duration, Instant};

use common::{Resp, request};
use ius_emulator::{Config, Emulator, Fault, FaultRule, SeedEntry};
use serde_json::{Value, json};

const TOKEN: &str = "Bearer test-token";
const C1: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";

/// The inner responses of a batch answer, in the order given.
fn responses(resp: &Resp) -> Vec<Value> {
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["responses"].as_array().unwrap().clone()
}

/// The inner response with this id.
fn item(resp: &Resp, id: &str) -> Value {
    responses(resp)
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response '{id}' in {}", resp.body))
}

fn start(config: Config) -> Emulator {
    Emulator::start(Config {
        seed: (0..25)
            .map(|i| SeedEntry {
                collection: C1.into(),
                entity: json!({ "id": format!("u{i}") }),
            })
            .collect(),
        ..config
    })
    .unwrap()
}

fn send(emu: &Emulator, method: &str, path: &str, body: Option<&str>) -> Resp {
    let url = format!("{}{path}", emu.base_url());
    request(method, &url, body, &[("Authorization", TOKEN)])
}

fn batch(emu: &Emulator, requests: Value) -> Resp {
    let body = json!({ "requests": requests }).to_string();
    send(emu, "POST", "/beta/$batch", Some(&body))
}

/// An inner PATCH of user `u{n}` setting `devicesCount`.
fn patch(id: &str, user: usize, devices: i32) -> Value {
    json!({
        "id": id,
        "method": "PATCH",
        "url": format!("{C1}/u{user}"),
        "headers": { "Content-Type": "application/json" },
        "body": { "devicesCount": devices },
    })
}

fn devices(emu: &Emulator, user: usize) -> i64 {
    emu.user_status(C1, &format!("u{user}")).unwrap()["devicesCount"]
        .as_i64()
        .unwrap()
}

#[test]
fn twenty_one_requests_are_refused_whole() {
    let emu = start(Config::default());
    let requests: Vec<Value> = (0..21).map(|i| patch(&i.to_string(), i, 5)).collect();
    let resp = batch(&emu, Value::Array(requests));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["code"], "BadRequest");
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 20")
    );
    // Nothing ran: no inner request recorded, the store untouched.
    assert!(emu.batch_items().is_empty());
    assert_eq!(emu.wire_requests().len(), 1);
    assert_eq!(devices(&emu, 0), 0);
    // Twenty is fine.
    let requests: Vec<Value> = (0..20).map(|i| patch(&i.to_string(), i, 5)).collect();
    assert_eq!(responses(&batch(&emu, Value::Array(requests))).len(), 20);
}

#[test]
fn ids_differing_only_in_case_are_duplicates() {
    let emu = start(Config::default());
    let resp = batch(&emu, json!([patch("a1", 1, 5), patch("A1", 2, 5)]));
    assert_eq!(resp.status, 400, "{}", resp.body);
    let body = resp.json();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'a1' and 'A1'"), "{message}");
    assert_eq!((devices(&emu, 1), devices(&emu, 2)), (0, 0));
}

#[test]
fn other_malformed_batches_are_400_naming_the_problem() {
    let emu = start(Config::default());
    let absolute = json!([{
        "id": "1", "method": "GET",
        "url": "https://graph.microsoft.com/beta/deviceManagement/deviceConfigurations/c1/userStatuses",
    }]);
    let no_type = json!([{
        "id": "1", "method": "PATCH", "url": format!("{C1}/u1"), "body": {"devicesCount": 1},
    }]);
    let no_id = json!([{ "method": "GET", "url": C1 }]);
    for (requests, needle) in [
        (absolute, "relative"),
        (no_type, "Content-Type"),
        (no_id, "requests[0].id"),
    ] {
        let resp = batch(&emu, requests);
        assert_eq!(resp.status, 400, "{}", resp.body);
        let body = resp.json();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(devices(&emu, 1), 0);
    let bad_json = send(&emu, "POST", "/beta/$batch", Some("{"));
    assert_eq!(bad_json.status, 400);
    assert_eq!(send(&emu, "GET", "/beta/$batch", None).status, 405);
}

/// The ids of a batch of ten GETs, in the order answered.
fn answered_order(emu: &Emulator) -> Vec<String> {
    let requests: Vec<Value> = (0..10)
        .map(|i| json!({ "id": format!("r{i}"), "method": "GET", "url": format!("{C1}/u{i}") }))
        .collect();
    responses(&batch(emu, Value::Array(requests)))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn responses_are_shuffled_by_seed_repeatably() {
    let input: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let plain = start(Config::default());
    assert_eq!(answered_order(&plain), input);

    let seeded = |seed| {
        start(Config {
            batch_shuffle_seed: Some(seed),
            ..Config::default()
        })
    };
    let (a, b, other) = (seeded(7), seeded(7), seeded(8));
    let first = answered_order(&a);
    assert_ne!(first, input);
    let mut sorted = first.clone();
    sorted.sort_by_key(|id| id[1..].parse::<u32>().unwrap());
    assert_eq!(sorted, input, "every response exactly once");
    assert_eq!(
        answered_order(&b),
        first,
        "the same seed gives the same order"
    );
    assert_ne!(answered_order(&other), first);
    // Each batch draws on: the second batch of a seed repeats too.
    assert_eq!(answered_order(&a), answered_order(&b));
}

#[test]
fn a_failed_dependency_answers_424_and_does_not_run() {
    let emu = start(Config::default());
    let missing = json!({
        "id": "1", "method": "PATCH", "url": format!("{C1}/nobody"),
        "headers": {"Content-Type": "application/json"}, "body": {"devicesCount": 1},
    });
    let mut dependent = patch("2", 2, 9);
    dependent["dependsOn"] = json!(["1"]);
    let mut chained = patch("3", 3, 9);
    chained["dependsOn"] = json!(["2"]);
    let mut fine = patch("4", 4, 9);
    fine["dependsOn"] = json!(["5"]);
    let resp = batch(
        &emu,
        json!([missing, dependent, chained, fine, patch("5", 5, 9)]),
    );
    assert_eq!(item(&resp, "1")["status"], 404);
    assert_eq!(
        item(&resp, "1")["body"]["error"]["code"],
        "ResourceNotFound"
    );
    for id in ["2", "3"] {
        let item = item(&resp, id);
        assert_eq!(item["status"], 424);
        assert_eq!(item["body"]["error"]["code"], "FailedDependency");
    }
    assert_eq!(item(&resp, "4")["status"], 204);
    assert_eq!(item(&resp, "5")["status"], 204);
    assert_eq!((devices(&emu, 2), devices(&emu, 3)), (0, 0));
    assert_eq!((devices(&emu, 4), devices(&emu, 5)), (9, 9));
    // Only what ran is recorded; "5" ran before "4", which depends on it.
    let ran: Vec<String> = emu
        .batch_items()
        .iter()
        .map(|r| r.batch.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ran, ["1", "5", "4"]);
}

#[test]
fn a_throttled_item_answers_429_with_retry_after_in_its_headers() {
    let emu = start(Config {
        throttle_writes: Some((2, Duration::from_secs(20))),
        ..Config::default()
    });
    let resp = batch(
        &emu,
        json!([patch("1", 1, 3), patch("2", 2, 3), patch("3", 3, 3)]),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(item(&resp, "1")["status"], 204);
    assert_eq!(item(&resp, "2")["status"], 204);
    let throttled = item(&resp, "3");
    assert_eq!(throttled["status"], 429);
    assert_eq!(throttled["headers"]["Retry-After"], "20");
    assert_eq!(throttled["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(
        throttled["body"]["error"]["innerError"]["request-id"],
        throttled["headers"]["request-id"]
    );
    assert_eq!(emu.throttled_count(), 1);
    assert_eq!((devices(&emu, 2), devices(&emu, 3)), (3, 0));
}

#[test]
fn twenty_patches_in_a_batch_count_as_twenty_writes() {
    let emu = start(Config {
        throttle_writes: Some((20, Duration::from_secs(20))),
        ..Config::default()
    });
    let requests: Vec<Value> = (0..20).map(|i| patch(&i.to_string(), i, 1)).collect();
    let resp = batch(&emu, Value::Array(requests));
    assert!(responses(&resp).iter().all(|r| r["status"] == 204));
    let direct = send(
        &emu,
        "PATCH",
        &format!("/beta{C1}/u21"),
        Some(r#"{"devicesCount":1}"#),
    );
    assert_eq!(direct.status, 429);
    assert_eq!(emu.throttled_count(), 1);
}

#[test]
fn fault_rules_reach_inner_requests_and_the_envelope() {
    let emu = start(Config::default());
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 429,
                retry_after: Some("2.5".into()),
            },
        )
        .method("PATCH")
        .path_contains("/userStatuses/u2"),
    );
    let resp = batch(&emu, json!([patch("1", 1, 4), patch("2", 2, 4)]));
    assert_eq!(item(&resp, "1")["status"], 204);
    assert_eq!(item(&resp, "2")["status"], 429);
    assert_eq!(item(&resp, "2")["headers"]["Retry-After"], "2.5");
    assert_eq!((devices(&emu, 1), devices(&emu, 2)), (4, 0));

    // A rule on `/$batch` hits the envelope: nothing inside runs.
    emu.clear_requests();
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("1".into()),
            },
        )
        .path_contains("/$batch"),
    );
    let resp = batch(&emu, json!([patch("1", 1, 8)]));
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(devices(&emu, 1), 4);
    assert_eq!(emu.wire_requests().len(), 1);
    assert!(emu.batch_items().is_empty());

    // A connection fault on an inner request loses the whole answer; the
    // requests before it stay applied.
    emu.add_fault(FaultRule::next(1, Fault::Reset).path_contains("/userStatuses/u3"));
    let body = json!({ "requests": [patch("1", 1, 6), patch("3", 3, 6)] }).to_string();
    let err = ureq::post(format!("{}/beta/$batch", emu.base_url()))
        .header("Authorization", TOKEN)
        .header("Content-Type", "application/json")
        .send(&body);
    assert!(err.is_err(), "{err:?}");
    assert_eq!((devices(&emu, 1), devices(&emu, 3)), (6, 0));

    // A lost answer: the faulted request is applied as well, and the answer is lost all the same.
    emu.add_fault(FaultRule::next(1, Fault::LostAnswer).path_contains("/userStatuses/u3"));
    let body = json!({ "requests": [patch("1", 1, 9), patch("3", 3, 9)] }).to_string();
    let err = ureq::post(format!("{}/beta/$batch", emu.base_url()))
        .header("Authorization", TOKEN)
        .header("Content-Type", "application/json")
        .send(&body);
    assert!(err.is_err(), "{err:?}");
    assert_eq!((devices(&emu, 1), devices(&emu, 3)), (9, 9));
}

#[test]
fn inner_requests_are_applied_and_recorded_as_sent() {
    let emu = start(Config::default());
    let mut first = patch("Item-1", 1, 11);
    first["headers"]["client-request-id"] = json!("c0ffee00-0000-0000-0000-000000000001");
    let body = format!(
        r#"{{"requests":[{},{{"id":"g","method":"GET","url":"{C1}/u1","dependsOn":["Item-1"]}},{{"id":"p","method":"POST","url":"{C1}","headers":{{"content-type":"application/json"}},"body":{{ "id" : "new", "status":"compliant" }}}}]}}"#,
        first
    );
    let resp = send(&emu, "POST", "/beta/$batch", Some(&body));
    assert_eq!(item(&resp, "Item-1")["status"], 204);
    assert!(item(&resp, "Item-1").get("body").is_none());
    assert_eq!(
        item(&resp, "Item-1")["headers"]["client-request-id"],
        "c0ffee00-0000-0000-0000-000000000001"
    );
    let got = item(&resp, "g");
    assert_eq!(got["status"], 200);
    assert_eq!(got["body"]["devicesCount"], 11);
    let created = item(&resp, "p");
    assert_eq!(created["status"], 201);
    assert_eq!(
        created["headers"]["Location"],
        format!("{}/beta{C1}/new", emu.base_url())
    );
    assert_eq!(devices(&emu, 1), 11);
    assert_eq!(emu.user_status(C1, "new").unwrap()["status"], "compliant");

    // The log: the envelope, then each inner request as it stood in the batch.
    let all = emu.requests();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].target, "/beta/$batch");
    assert!(all[0].batch.is_none());
    assert_eq!(emu.wire_requests().len(), 1);
    let items = emu.batch_items();
    assert_eq!(items.len(), 3);
    let patch_item = &items[0];
    let origin = patch_item.batch.as_ref().unwrap();
    assert_eq!(origin.id, "Item-1");
    assert_eq!(origin.url, format!("{C1}/u1"));
    assert_eq!(
        origin.envelope_request_id,
        resp.header("request-id").unwrap()
    );
    assert_eq!(patch_item.method, "PATCH");
    assert_eq!(patch_item.target, format!("/beta{C1}/u1"));
    assert_eq!(patch_item.body_str(), r#"{"devicesCount":11}"#);
    assert_eq!(patch_item.header("content-type"), Some("application/json"));
    // Its own headers only: the envelope's token is not copied into the log.
    assert_eq!(patch_item.header("authorization"), None);
    assert_eq!(items[1].batch.as_ref().unwrap().depends_on, ["Item-1"]);
    assert_eq!(
        items[2].body_str(),
        r#"{ "id" : "new", "status":"compliant" }"#
    );
}

#[test]
fn the_envelope_needs_a_token_and_is_not_a_write() {
    let emu = start(Config {
        token: Some("right".into()),
        throttle_writes: Some((1, Duration::from_secs(20))),
        ..Config::default()
    });
    let resp = batch(&emu, json!([patch("1", 1, 2)]));
    assert_eq!(resp.status, 401);
    assert!(emu.batch_items().is_empty());
    let agent_post = |body: &str| {
        ureq::post(format!("{}/beta/$batch", emu.base_url()))
            .header("Authorization", "Bearer right")
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap()
            .body_mut()
            .read_to_string()
            .map(|text| serde_json::from_str::<Value>(&text).unwrap())
            .unwrap()
    };
    let body = json!({ "requests": [patch("1", 1, 2)] }).to_string();
    // The envelope used no write slot: the one inner PATCH gets it.
    assert_eq!(agent_post(&body)["responses"][0]["status"], 204);
    assert_eq!(agent_post(&body)["responses"][0]["status"], 429);
}

#[test]
fn configured_latency_delays_a_batch_and_latency_rules_each_inner_request() {
    let emu = start(Config {
        latency: Duration::from_millis(150),
        ..Config::default()
    });
    let started = Instant::now();
    let resp = batch(&emu, json!([patch("1", 1, 2), patch("2", 2, 2)]));
    assert_eq!(responses(&resp).len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(150));
    // A latency fault rule, by contrast, matches every inner request too.
    let emu = start(Config {
        faults: vec![FaultRule::always(Fault::Latency(Duration::from_millis(
            100,
        )))],
        ..Config::default()
    });
    let started = Instant::now();
    batch(&emu, json!([patch("1", 1, 2), patch("2", 2, 2)]));
    assert!(started.elapsed() >= Duration::from_millis(300));
}
