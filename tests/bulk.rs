//! Bulk updates through `$batch` against the emulator: the envelopes on the wire (chunking, the
//! single update's bytes, one version per batch), results in input order against shuffled
//! answers, per-item retries and final failures, batch-level retries, invalid items, budgets and
//! pacing.

mod common;

use std::time::{Duration, Instant};

use common::{TOKEN, builder, client};
use intune_user_status::{
    ApiVersion, BulkItem, CallOptions, ComplianceStatus, Error, Pacing, RetryPolicy, Route, Target,
    UpdateOutcome, UserStatusPatch,
};
use ius_emulator::{Config, Emulator, Fault, FaultRule, PatchReturns, RecordedRequest, SeedEntry};
use serde_json::{Value, json};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";
const NESTED: &str = "/deviceManagement/deviceConfigurations/cfg-1/rootCertificate/userStatuses";

/// An emulator holding `s0` .. `s{count-1}` in the direct collection and `r0` under
/// `rootCertificate`, answering batches in an order shuffled by a seed.
fn emulator_with(count: usize, patch_returns: PatchReturns) -> Emulator {
    let mut seed: Vec<SeedEntry> = (0..count)
        .map(|n| SeedEntry {
            collection: DIRECT.to_owned(),
            entity: json!({"id": format!("s{n}"), "devicesCount": 0}),
        })
        .collect();
    seed.push(SeedEntry {
        collection: NESTED.to_owned(),
        entity: json!({"id": "r0", "devicesCount": 0}),
    });
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        patch_returns,
        seed,
        batch_shuffle_seed: Some(7),
        ..Config::default()
    })
    .expect("start the emulator")
}

/// Five user statuses, the first PATCH of `s3` answered 429 with `Retry-After: 0.2`.
fn s3_throttled_once() -> Emulator {
    let emu = emulator_with(5, PatchReturns::NoContent);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 429,
                retry_after: Some("0.2".into()),
            },
        )
        .method("PATCH")
        .path_contains("/userStatuses/s3"),
    );
    emu
}

fn item(n: usize) -> BulkItem {
    BulkItem::new(
        Target::new("cfg-1", format!("s{n}")),
        UserStatusPatch::new()
            .status(ComplianceStatus::Compliant)
            .devices_count(n as i32),
    )
}

fn items(count: usize) -> Vec<BulkItem> {
    (0..count).map(item).collect()
}

/// The `$batch` POSTs the emulator received, in order.
fn batches(emu: &Emulator) -> Vec<RecordedRequest> {
    emu.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
        .collect()
}

/// The inner requests of a recorded `$batch` POST.
fn inner(batch: &RecordedRequest) -> Vec<Value> {
    let envelope: Value = serde_json::from_slice(&batch.body).expect("the envelope is JSON");
    envelope["requests"].as_array().expect("requests").clone()
}

/// The user status ids an envelope carried, in its order.
fn ids_in(batch: &RecordedRequest) -> Vec<String> {
    inner(batch)
        .iter()
        .map(|r| {
            let url = r["url"].as_str().unwrap();
            url.rsplit('/').next().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn forty_five_items_go_as_twenty_twenty_and_five_with_the_single_updates_bytes() {
    let emu = emulator_with(46, PatchReturns::NoContent);
    let client = client(&emu.base_url());
    let results = client.update_user_statuses(&items(45));
    assert_eq!(results.len(), 45);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(UpdateOutcome::NoContent)))
    );
    let sent = batches(&emu);
    assert_eq!(
        emu.wire_requests().len(),
        3,
        "nothing but the three batches"
    );
    assert_eq!(emu.batch_items().len(), 45, "every inner request ran");
    let sizes: Vec<usize> = sent.iter().map(|b| inner(b).len()).collect();
    assert_eq!(sizes, [20, 20, 5]);
    let ids: Vec<String> = sent.iter().flat_map(ids_in).collect();
    let expected: Vec<String> = (0..45).map(|n| format!("s{n}")).collect();
    assert_eq!(ids, expected, "every item once, in input order");
    for batch in &sent {
        assert_eq!(batch.target, "/beta/$batch");
        assert_eq!(
            batch.header("authorization"),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(batch.header("content-type"), Some("application/json"));
        let mut inner_ids: Vec<String> = Vec::new();
        for request in inner(batch) {
            assert_eq!(request["method"], "PATCH");
            assert_eq!(
                request["headers"],
                json!({"Content-Type": "application/json"})
            );
            inner_ids.push(request["id"].as_str().unwrap().to_lowercase());
        }
        let mut unique = inner_ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), inner_ids.len(), "ids unique in a batch");
    }
    for n in [0, 19, 20, 44] {
        assert_eq!(
            emu.user_status(DIRECT, &format!("s{n}")).unwrap()["devicesCount"],
            n
        );
    }

    // The inner request is the single update's request: same encoded path, same body bytes.
    emu.clear_requests();
    let odd = BulkItem::new(
        Target::new("cfg-1", "s45"),
        UserStatusPatch::new()
            .user_display_name("Zoë / \"quoted\"")
            .devices_count(3),
    );
    assert!(client.update_user_statuses(std::slice::from_ref(&odd))[0].is_ok());
    client
        .update_user_status(odd.target(), odd.patch())
        .unwrap();
    let wire = emu.wire_requests();
    let single = &wire[1];
    let batched = &emu.batch_items()[0];
    assert_eq!(
        (batched.method.as_str(), single.method.as_str()),
        ("PATCH", "PATCH")
    );
    assert_eq!(batched.target, single.target, "the same encoded path");
    assert_eq!(batched.body_str(), single.body_str(), "the same body bytes");
    assert!(
        wire[0]
            .body_str()
            .contains(&format!("\"body\":{}", single.body_str())),
        "the envelope carries the body as the single update sends it"
    );
}

#[test]
fn results_follow_the_input_order_against_shuffled_answers() {
    let emu = emulator_with(40, PatchReturns::Ok);
    let client = client(&emu.base_url());
    let results = client.update_user_statuses(&items(40));
    for (n, result) in results.into_iter().enumerate() {
        let entity = result.unwrap().into_entity().expect("200 with the entity");
        assert_eq!(entity.id.as_deref(), Some(&*format!("s{n}")));
        assert_eq!(entity.devices_count, Some(n as i32));
    }
}

#[test]
fn a_throttled_item_goes_again_in_a_later_batch_and_the_others_are_not_resent() {
    let emu = s3_throttled_once();
    let client = client(&emu.base_url());
    let started = Instant::now();
    let results = client.update_user_statuses(&items(5));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "waited Retry-After"
    );
    let sent = batches(&emu);
    assert_eq!(sent.len(), 2);
    assert_eq!(ids_in(&sent[0]), ["s0", "s1", "s2", "s3", "s4"]);
    assert_eq!(
        ids_in(&sent[1]),
        ["s3"],
        "only the throttled item went again"
    );
    assert_eq!(
        inner(&sent[0])[3]["body"],
        inner(&sent[1])[0]["body"],
        "the same body"
    );
    assert_eq!(emu.user_status(DIRECT, "s3").unwrap()["devicesCount"], 3);
}

#[test]
fn progress_counts_invalid_items_as_done_and_tells_the_throttling() {
    let emu = s3_throttled_once();
    let client = client(&emu.base_url());
    let mut all = items(5);
    all.insert(
        1,
        BulkItem::new(
            Target::new("cfg-1", ""),
            UserStatusPatch::new().devices_count(1),
        ),
    );
    let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = CallOptions::new().on_progress({
        let told = told.clone();
        move |progress| told.lock().unwrap().push(progress)
    });
    let results = client.update_user_statuses_with(&all, &options);
    assert!(results[1].is_err() && results.iter().filter(|r| r.is_ok()).count() == 5);
    let seen: Vec<_> = told
        .lock()
        .unwrap()
        .iter()
        .map(|p| (p.done, p.total, p.throttled, p.throttle_wait))
        .collect();
    let wait = Duration::from_millis(200);
    assert_eq!(
        seen,
        [(1, 6, 0, Duration::ZERO), (5, 6, 1, wait), (6, 6, 1, wait)],
        "the invalid item is done from the start; s3 was throttled once, for 0.2 s"
    );
    // Other calls take the same options and ignore them.
    client
        .update_user_status_with(&Target::new("cfg-1", "s0"), all[0].patch(), &options)
        .unwrap();
    assert_eq!(told.lock().unwrap().len(), 3);
}

#[test]
fn a_throttled_item_whose_retries_run_out_reports_graphs_429_with_its_wait() {
    let emu = emulator_with(3, PatchReturns::NoContent);
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 429,
            retry_after: Some("0.05".into()),
        })
        .method("PATCH")
        .path_contains("/userStatuses/s1"),
    );
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::default().max_retries(2))
        .build()
        .unwrap();
    let results = client.update_user_statuses(&items(3));
    assert!(results[0].is_ok() && results[2].is_ok());
    let err = results[1].as_ref().unwrap_err();
    let graph = err.graph().expect("Graph's answer");
    assert_eq!(graph.status, 429);
    assert_eq!(graph.retry_after, Some(Duration::from_millis(50)));
    assert_eq!(graph.attempts, 3, "1 + 2 retries, counted for this item");
    assert!(err.is_throttled());
    assert_eq!(batches(&emu).len(), 3);
}

#[test]
fn a_missing_user_status_is_a_final_404_with_graphs_code_and_inner_request_id() {
    let emu = emulator_with(2, PatchReturns::NoContent);
    let client = client(&emu.base_url());
    let mut all = items(2);
    all.insert(
        1,
        BulkItem::new(
            Target::new("cfg-1", "nobody"),
            UserStatusPatch::new().devices_count(1),
        ),
    );
    let results = client.update_user_statuses(&all);
    assert!(results[0].is_ok() && results[2].is_ok());
    let graph = results[1].as_ref().unwrap_err().graph().unwrap().clone();
    assert_eq!(graph.status, 404);
    assert_eq!(graph.code.as_deref(), Some("ResourceNotFound"));
    assert!(
        graph.request_id.as_deref().is_some_and(|id| !id.is_empty()),
        "the inner request-id"
    );
    assert_eq!(graph.attempts, 1);
    assert_eq!(batches(&emu).len(), 1, "a 404 is not retried");
}

#[test]
fn a_batch_answered_503_is_sent_again_whole() {
    let emu = emulator_with(3, PatchReturns::NoContent);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("0.05".into()),
            },
        )
        .method("POST")
        .path_contains("$batch"),
    );
    let client = client(&emu.base_url());
    let results = client.update_user_statuses(&items(3));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let sent = batches(&emu);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].body, sent[1].body,
        "the same envelope, byte for byte"
    );
    assert_eq!(sent[1].header("retry-attempt"), Some("1"));
    assert_eq!(
        sent[0].header("client-request-id"),
        sent[1].header("client-request-id")
    );
}

#[test]
fn invalid_items_are_not_sent_and_name_their_field_from_the_item() {
    let emu = emulator_with(4, PatchReturns::NoContent);
    let client = client(&emu.base_url());
    let all = vec![
        item(0),
        BulkItem::new(
            Target::new("cfg-1", "s1"),
            UserStatusPatch::new().devices_count(-1),
        ),
        BulkItem::new(
            Target::with_route("cfg-1", Route::RootCertificate, "r0"),
            UserStatusPatch::new().devices_count(1),
        )
        .api_version(ApiVersion::V1_0),
        BulkItem::new(
            Target::new("cfg-1", "s3"),
            UserStatusPatch::new().id("other").devices_count(1),
        ),
        BulkItem::new(
            Target::new("cfg-1", ""),
            UserStatusPatch::new().devices_count(1),
        ),
        item(2),
    ];
    let results = client.update_user_statuses(&all);
    let field = |n: usize| match &results[n] {
        Err(Error::InvalidInput { field, .. }) => field.clone(),
        other => panic!("item {n}: {other:?}"),
    };
    assert_eq!(field(1), "patch.devicesCount");
    assert_eq!(field(2), "target.route");
    assert_eq!(field(3), "patch.id");
    assert_eq!(field(4), "target.userStatusId");
    assert!(results[0].is_ok() && results[5].is_ok());
    let sent = batches(&emu);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        ids_in(&sent[0]),
        ["s0", "s2"],
        "only the valid items were sent"
    );
}

#[test]
fn both_api_versions_in_one_call_go_in_their_own_batches() {
    let emu = emulator_with(4, PatchReturns::NoContent);
    let client = client(&emu.base_url());
    let all: Vec<BulkItem> = (0..4)
        .map(|n| {
            if n % 2 == 1 {
                item(n).api_version(ApiVersion::V1_0)
            } else {
                item(n)
            }
        })
        .chain(std::iter::once(BulkItem::new(
            Target::with_route("cfg-1", Route::RootCertificate, "r0"),
            UserStatusPatch::new().devices_count(5),
        )))
        .collect();
    let results = client.update_user_statuses(&all);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let sent = batches(&emu);
    assert_eq!(sent.len(), 2);
    let by_version = |version: &str| {
        sent.iter()
            .find(|b| b.target == format!("/{version}/$batch"))
            .map(ids_in)
            .unwrap_or_else(|| panic!("no {version} batch"))
    };
    assert_eq!(by_version("beta"), ["s0", "s2", "r0"]);
    assert_eq!(by_version("v1.0"), ["s1", "s3"]);
    assert_eq!(emu.user_status(NESTED, "r0").unwrap()["devicesCount"], 5);
}

#[test]
fn the_emulator_refuses_duplicate_ids_without_regard_to_case() {
    let emu = emulator_with(1, PatchReturns::NoContent);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let body = json!({"requests": [
        {"id": "a", "method": "GET", "url": format!("{DIRECT}/s0")},
        {"id": "A", "method": "GET", "url": format!("{DIRECT}/s0")},
    ]});
    let mut response = agent
        .post(format!("{}/beta/$batch", emu.base_url()))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "BadRequest");
}

#[test]
fn an_item_still_waiting_when_the_total_budget_runs_out_is_throttled_with_its_wait() {
    let emu = emulator_with(2, PatchReturns::NoContent);
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 429,
            retry_after: Some("5".into()),
        })
        .method("PATCH")
        .path_contains("/userStatuses/s1"),
    );
    let client = client(&emu.base_url());
    let started = Instant::now();
    let results = client.update_user_statuses_with(
        &items(2),
        &CallOptions::new().total_timeout(Duration::from_secs(1)),
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "no wait in vain"
    );
    assert!(results[0].is_ok());
    match &results[1] {
        Err(Error::Throttled { wait, .. }) => assert_eq!(*wait, Duration::from_secs(5)),
        other => panic!("{other:?}"),
    }
    assert_eq!(results[1].as_ref().unwrap_err().attempts(), 1);
}

#[test]
fn pacing_counts_every_inner_request_and_sizes_batches_to_the_window() {
    let emu = emulator_with(30, PatchReturns::NoContent);
    let client = builder(&emu.base_url())
        .pacing(Pacing::new(10, Duration::from_millis(400)))
        .build()
        .unwrap();
    let started = Instant::now();
    let results = client.update_user_statuses(&items(30));
    assert!(results.iter().all(Result::is_ok));
    let sizes: Vec<usize> = batches(&emu).iter().map(|b| inner(b).len()).collect();
    assert_eq!(sizes, [10, 10, 10], "a batch fits the pacing window");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "30 requests at 10 per 400 ms need three windows: {:?}",
        started.elapsed()
    );
}

#[test]
fn fetch_after_no_content_reads_the_objects_back_in_batches() {
    let emu = emulator_with(3, PatchReturns::NoContent);
    let client = builder(&emu.base_url())
        .fetch_after_no_content(true)
        .build()
        .unwrap();
    let results = client.update_user_statuses(&items(3));
    for (n, result) in results.into_iter().enumerate() {
        match result.unwrap() {
            UpdateOutcome::Fetched(entity) => assert_eq!(entity.devices_count, Some(n as i32)),
            other => panic!("{other:?}"),
        }
    }
    let sent = batches(&emu);
    assert_eq!(sent.len(), 2);
    assert!(
        inner(&sent[1])
            .iter()
            .all(|r| r["method"] == "GET" && r.get("body").is_none())
    );
}

#[test]
fn an_empty_input_sends_nothing() {
    let emu = emulator_with(0, PatchReturns::NoContent);
    let client = client(&emu.base_url());
    assert!(client.update_user_statuses(&[]).is_empty());
    assert!(emu.requests().is_empty());
}

#[test]
fn a_batch_whose_connection_was_reset_is_sent_again_whole() {
    let emu = emulator_with(2, PatchReturns::NoContent);
    emu.add_fault(FaultRule::next(1, Fault::Reset).path_contains("/$batch"));
    let client = client(&emu.base_url());
    let results = client.update_user_statuses(&items(2));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let sent = batches(&emu);
    assert_eq!(sent.len(), 2, "the reset envelope, then the same again");
    assert_eq!(sent[0].body, sent[1].body);
    assert_eq!(emu.batch_items().len(), 2, "the items ran once");
}

/// Every log line of this test binary (tests run in parallel, so each test picks its own lines).
fn log_lines() -> &'static std::sync::Mutex<Vec<String>> {
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            log_lines()
                .lock()
                .unwrap()
                .push(format!("{} {}", record.level(), record.args()));
        }
        fn flush(&self) {}
    }
    static LINES: std::sync::OnceLock<std::sync::Mutex<Vec<String>>> = std::sync::OnceLock::new();
    static CAPTURE: Capture = Capture;
    LINES.get_or_init(|| {
        log::set_logger(&CAPTURE).expect("no other logger");
        log::set_max_level(log::LevelFilter::Info);
        std::sync::Mutex::default()
    })
}

#[test]
fn the_log_has_one_line_per_batch_and_one_per_item_retry() {
    let lines = log_lines();
    let emu = emulator_with(3, PatchReturns::NoContent);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 429,
                retry_after: Some("0.05".into()),
            },
        )
        .method("PATCH")
        .path_contains("/userStatuses/s1"),
    );
    let client = client(&emu.base_url());
    assert!(
        client
            .update_user_statuses(&items(3))
            .iter()
            .all(Result::is_ok)
    );
    let envelopes: Vec<String> = emu
        .batch_items()
        .iter()
        .map(|r| r.batch.as_ref().unwrap().envelope_request_id.clone())
        .collect();
    let lines = lines.lock().unwrap().clone();
    let batch_line = |request_id: &str| {
        lines
            .iter()
            .filter(|line| line.contains(request_id))
            .cloned()
            .collect::<Vec<_>>()
    };
    let first = batch_line(&envelopes[0]);
    assert_eq!(first.len(), 1, "one line for the first batch: {first:?}");
    assert!(
        first[0].contains("POST /beta/$batch: 3 requests -> HTTP 200: 204x2 429x1"),
        "{}",
        first[0]
    );
    let second = batch_line(envelopes.last().unwrap());
    assert!(
        second[0].contains("1 requests -> HTTP 200: 204x1"),
        "{second:?}"
    );
    let retry: Vec<_> = lines
        .iter()
        .filter(|line| {
            line.contains("/cfg-1/userStatuses/s1: HTTP 429 in $batch; retry 1 of 3 in 0.050 s")
        })
        .collect();
    assert!(!retry.is_empty(), "the item's retry is logged");
    assert!(
        lines.iter().all(|line| !line.contains(TOKEN)),
        "no token in the log"
    );
}

#[test]
fn a_batch_answered_401_is_sent_once_more_with_a_fresh_token() {
    use intune_user_status::{AccessToken, TokenProvider};
    /// Hands out a revoked token until Graph refuses it, then the good one.
    struct Rotating(std::sync::atomic::AtomicBool);
    impl TokenProvider for Rotating {
        fn token(&self) -> Result<AccessToken, Error> {
            Ok(AccessToken::new(
                if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                    TOKEN
                } else {
                    "revoked-token"
                },
            ))
        }
        fn invalidate(&self, _: &AccessToken) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let emu = emulator_with(2, PatchReturns::NoContent);
    let client = intune_user_status::Client::builder()
        .base_url(emu.base_url())
        .token_provider(Rotating(std::sync::atomic::AtomicBool::new(false)))
        .build()
        .unwrap();
    let results = client.update_user_statuses(&items(2));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let sent = batches(&emu);
    assert_eq!(
        sent.len(),
        2,
        "refused once, then sent with the fresh token"
    );
    assert_eq!(
        sent[0].header("authorization"),
        Some("Bearer revoked-token")
    );
    assert_eq!(
        sent[1].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(sent[0].body, sent[1].body);
    assert_eq!(emu.batch_items().len(), 2, "only the accepted batch ran");
}

#[test]
fn an_inner_retry_after_as_an_http_date_is_waited_for() {
    let emu = emulator_with(3, PatchReturns::NoContent);
    // Whole seconds: the wait is over 1 s and at most 2 s.
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 429,
                retry_after: Some(when),
            },
        )
        .method("PATCH")
        .path_contains("/userStatuses/s1"),
    );
    // A backoff of 10 s or more would show the date was not read.
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_secs(10)))
        .build()
        .unwrap();
    let started = Instant::now();
    let results = client.update_user_statuses(&items(3));
    let elapsed = started.elapsed();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "waited {elapsed:?} for a date 1 to 2 s away"
    );
    let sent = batches(&emu);
    assert_eq!(sent.len(), 2);
    assert_eq!(ids_in(&sent[1]), ["s1"]);
    assert_eq!(emu.user_status(DIRECT, "s1").unwrap()["devicesCount"], 1);
}

#[test]
fn the_next_call_waits_out_the_hold_an_inner_429_set_even_when_not_retried() {
    let emu = emulator_with(2, PatchReturns::NoContent);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 429,
                retry_after: Some("1".into()),
            },
        )
        .method("PATCH")
        .path_contains("/userStatuses/s1"),
    );
    let client = builder(&emu.base_url())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let results = client.update_user_statuses(&items(2));
    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().unwrap_err().http_status(), Some(429));
    let before = emu.requests().len();
    let started = Instant::now();
    client
        .update_user_status(
            &Target::new("cfg-1", "s0"),
            &UserStatusPatch::new().devices_count(9),
        )
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "the next call left after {waited:?}, inside the 1 s hold"
    );
    assert_eq!(
        emu.requests().len(),
        before + 1,
        "one PATCH, sent after the hold"
    );
    assert_eq!(emu.user_status(DIRECT, "s0").unwrap()["devicesCount"], 9);
}

/// The client's own pacing gate (1 request per second, the call's waits capped at 100 ms)
/// refuses the retry of an item Graph answered 503 with `Retry-After: 0.05` inside a `$batch`:
/// Graph throttled nothing, so the item ends with Graph's 503, `retryStopped` naming the gate,
/// as a direct update ends (never `THROTTLED`); in Rust and in the C API's bulk results alike.
#[test]
fn an_inner_503_whose_retry_the_own_gate_refused_ends_with_the_503_in_rust_and_c() {
    let emu = emulator_with(1, PatchReturns::NoContent);
    let inner_503 = || {
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("0.05".into()),
            },
        )
        .method("PATCH")
    };
    let assert_the_503 = |what: &str, error: &Value| {
        assert_eq!(
            (&error["status"], &error["httpStatus"], &error["attempts"]),
            (&json!("GRAPH"), &json!(503), &json!(1)),
            "{what}: {error}"
        );
        let why = error["retryStopped"].as_str().unwrap_or_default();
        assert!(why.contains("own pacing gate"), "{what}: {error}");
    };
    emu.add_fault(inner_503());
    let client = builder(&emu.base_url())
        .retry_policy(
            RetryPolicy::default()
                .max_retries(2)
                .base_delay(Duration::from_millis(10))
                .max_total_wait(Duration::from_millis(100)),
        )
        .pacing(Pacing::new(1, Duration::from_secs(1)))
        .build()
        .unwrap();
    let results = client.update_user_statuses(&items(1));
    assert_eq!(batches(&emu).len(), 1, "the retry was refused at the gate");
    // Seen failing before the fix: THROTTLED (wait 1 s, attempts 1).
    let error = results[0].as_ref().unwrap_err();
    assert_the_503(
        "Rust",
        &serde_json::to_value(error).expect("the error JSON"),
    );

    emu.add_fault(inner_503());
    let config = std::ffi::CString::new(
        json!({"baseUrl": emu.base_url(), "accessToken": TOKEN,
               "retry": {"maxRetries": 2, "baseDelayMs": 10, "maxTotalMs": 100},
               "pacing": {"requests": 1, "perSeconds": 1}})
        .to_string(),
    )
    .unwrap();
    let items = std::ffi::CString::new(
        json!([{"target": {"deviceConfigurationId": "cfg-1", "userStatusId": "s0"},
                "patch": {"devicesCount": 1}}])
        .to_string(),
    )
    .unwrap();
    use common::c_abi::*;
    let (mut c_client, mut out, mut error) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: valid NUL-terminated inputs, writable outputs; each string freed once.
    let (status, results) = unsafe {
        assert_eq!(
            ius_client_new(config.as_ptr(), &mut c_client, &mut error),
            0
        );
        let status = ius_update_user_statuses(c_client, items.as_ptr(), &mut out, &mut error);
        let results = std::ffi::CStr::from_ptr(out).to_string_lossy().into_owned();
        ius_string_free(out);
        ius_string_free(error);
        ius_client_free(c_client);
        (status, results)
    };
    assert_eq!(status, 107, "IUS_STATUS_PARTIAL: {results}");
    let results: Vec<Value> = serde_json::from_str(&results).unwrap();
    assert_eq!(results[0]["status"], "GRAPH", "{results:?}");
    assert_the_503("C", &results[0]["error"]);
}
