//! `Client::interrupt` against the emulator: a call blocked on each kind of wait (a stalled
//! response, a Retry-After wait, the pacing gate, another thread's token refresh, a bulk item's
//! retry) returns `Error::Cancelled` within half a second, the abandoned connection is closed,
//! and a call started afterwards succeeds.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{builder, client, emulator};
use intune_user_status::{
    BulkItem, CallOptions, Client, ClientSecretCredential, Credential, Error, Pacing, Target,
    UpdateOutcome, UserStatusPatch,
};
use ius_emulator::{App, Config, Emulator, Fault, FaultRule, PatchReturns, SeedEntry};

const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";
/// How soon an interrupted call must return.
const PROMPTLY: Duration = Duration::from_millis(500);

fn patch(count: i32) -> UserStatusPatch {
    UserStatusPatch::new().devices_count(count)
}

/// Waits (at most 10 s) until `condition` holds.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `call` on its own thread; once `blocked` holds (and a moment more, so the call is inside
/// its wait), interrupts `client` and returns what the call returned and how long after the
/// interrupt it did.
fn interrupt_during<T: Send + 'static>(
    client: &Client,
    blocked: impl Fn() -> bool,
    call: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (done, outcome) = mpsc::channel();
    let worker = thread::spawn(move || done.send(call()).unwrap());
    wait_until("the call is blocked", blocked);
    thread::sleep(Duration::from_millis(200));
    let interrupted = Instant::now();
    client.interrupt();
    let value = outcome
        .recv_timeout(Duration::from_secs(10))
        .expect("the interrupted call returned");
    let took = interrupted.elapsed();
    worker.join().unwrap();
    (value, took)
}

/// The stage of a `Cancelled` error, or a panic naming what came instead.
fn cancelled_stage<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Cancelled { stage, .. }) => stage,
        other => panic!("expected Cancelled, got {other:?}"),
    }
}

fn patches(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count()
}

#[test]
fn a_stalled_response_is_abandoned_its_connection_closed_and_the_next_call_succeeds() {
    for fault in [Fault::NoAnswer, Fault::StallAfterHeaders] {
        let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
        emu.add_fault(FaultRule::next(1, fault.clone()).method("PATCH"));
        let client = client(&emu.base_url());
        let worker = client.clone();
        let (result, took) = interrupt_during(
            // Any clone interrupts the calls of all of them.
            &client.clone(),
            || patches(&emu) == 1,
            move || worker.update_user_status(&Target::new("cfg-1", "u1"), &patch(1)),
        );
        assert!(
            took < PROMPTLY,
            "{fault:?}: returned {took:?} after the interrupt"
        );
        let attempts = result.as_ref().map_err(Error::attempts).err();
        let stage = cancelled_stage(result);
        assert!(stage.contains("response"), "{fault:?}: {stage}");
        assert_eq!(attempts, Some(1), "{fault:?}");
        wait_until("the emulator saw the connection closed", || {
            emu.connections_closed() == 1
        });
        assert_eq!(
            patches(&emu),
            1,
            "{fault:?}: the abandoned request is not resent"
        );

        let outcome = client
            .update_user_status(&Target::new("cfg-1", "u1"), &patch(2))
            .unwrap();
        assert_eq!(outcome, UpdateOutcome::NoContent);
        assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 2);
        assert_eq!(
            emu.connections_accepted(),
            2,
            "{fault:?}: the next call opened a connection of its own"
        );
    }
}

#[test]
fn a_retry_after_wait_ends_at_the_interrupt_and_nothing_more_is_sent() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("30".into()),
            },
        )
        .method("PATCH"),
    );
    let client = client(&emu.base_url());
    let worker = client.clone();
    let (result, took) = interrupt_during(
        &client,
        || patches(&emu) == 1,
        move || worker.update_user_status(&Target::new("cfg-1", "u1"), &patch(1)),
    );
    assert!(took < PROMPTLY, "returned {took:?} after the interrupt");
    let stage = cancelled_stage(result);
    assert!(stage.contains("Retry-After"), "{stage}");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(patches(&emu), 1, "no retry after the interrupt");
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch(2))
        .unwrap();
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 2);
}

#[test]
fn a_wait_at_the_pacing_gate_ends_at_the_interrupt_and_later_calls_keep_the_pace() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let window = Duration::from_secs(2);
    let client = builder(&emu.base_url())
        .pacing(Pacing::new(1, window))
        .build()
        .unwrap();
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch(1))
        .unwrap();
    let worker = client.clone();
    let started = Instant::now();
    let (result, took) = interrupt_during(
        &client,
        || true,
        move || worker.update_user_status(&Target::new("cfg-1", "u1"), &patch(2)),
    );
    assert!(took < PROMPTLY, "returned {took:?} after the interrupt");
    let stage = cancelled_stage(result);
    assert!(stage.contains("pacing"), "{stage}");
    assert!(started.elapsed() < window, "ended before its slot opened");
    assert_eq!(patches(&emu), 1, "the interrupted update was never sent");
    // A later call waits for its slot and goes.
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch(3))
        .unwrap();
    assert_eq!(patches(&emu), 2);
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 3);
}

const TENANT: &str = "contoso.onmicrosoft.com";
const APP: &str = "11111111-1111-1111-1111-111111111111";
const SECRET: &str = "s3cret";

#[test]
fn a_token_request_and_a_wait_for_it_both_end_at_the_interrupt() {
    let emu = Emulator::start(Config {
        apps: vec![App {
            tenant: TENANT.into(),
            client_id: APP.into(),
            secret: Some(SECRET.into()),
            certificate_pem: None,
        }],
        seed: vec![SeedEntry {
            collection: DIRECT.into(),
            entity: serde_json::json!({"id": "u1"}),
        }],
        ..Config::default()
    })
    .unwrap();
    // The first token request is never answered.
    emu.add_fault(FaultRule::next(1, Fault::NoAnswer).path_contains("/token"));
    let client = Client::builder()
        .base_url(emu.base_url())
        .credential(Credential::from(
            ClientSecretCredential::new(TENANT, APP, SECRET).authority_host(emu.base_url()),
        ))
        .build()
        .unwrap();
    // One thread fetches the token (blocked on the token endpoint's socket), the other waits for
    // that fetch.
    let fetching = {
        let client = client.clone();
        thread::spawn(move || client.update_user_status(&Target::new("cfg-1", "u1"), &patch(1)))
    };
    wait_until("the token was asked for", || {
        emu.token_requests().len() == 1
    });
    let worker = client.clone();
    let (waiting, took) = interrupt_during(
        &client,
        || true,
        move || worker.update_user_status(&Target::new("cfg-1", "u1"), &patch(2)),
    );
    assert!(
        took < PROMPTLY,
        "the waiter returned {took:?} after the interrupt"
    );
    let stage = cancelled_stage(waiting);
    assert!(stage.contains("token"), "{stage}");
    let fetched = fetching.join().unwrap();
    let stage = cancelled_stage(fetched);
    assert!(stage.contains("token"), "{stage}");
    assert_eq!(patches(&emu), 0, "nothing reached Graph");
    wait_until("the token request's connection closed", || {
        emu.connections_closed() >= 1
    });
    // A call started afterwards fetches a token of its own and updates.
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch(3))
        .unwrap();
    assert_eq!(emu.token_requests().len(), 2);
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 3);
}

/// An emulator with `count` user statuses `s0`, `s1`, ... in the direct collection.
fn emulator_with(count: usize) -> Emulator {
    let emu = emulator(PatchReturns::NoContent, &[]);
    for n in 0..count {
        emu.insert_user_status(DIRECT, serde_json::json!({"id": format!("s{n}")}))
            .unwrap();
    }
    emu
}

fn items(count: usize) -> Vec<BulkItem> {
    (0..count)
        .map(|n| BulkItem::new(Target::new("cfg-1", format!("s{n}")), patch(n as i32 + 1)))
        .collect()
}

#[test]
fn an_interrupted_bulk_call_keeps_finished_results_and_cancels_the_rest() {
    let emu = emulator_with(25);
    // Item 21 (in the second batch) is to wait 30 s (a 503: a 429 would hold the whole client,
    // the later call included).
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("30".into()),
            },
        )
        .path_contains("/userStatuses/s21"),
    );
    let client = client(&emu.base_url());
    let worker = client.clone();
    let (results, took) = interrupt_during(
        &client,
        || emu.batch_items().len() == 25,
        move || worker.update_user_statuses_detailed(&items(25), &CallOptions::new()),
    );
    assert!(took < PROMPTLY, "returned {took:?} after the interrupt");
    for (n, item) in results.iter().enumerate() {
        if n == 21 {
            assert!(
                matches!(&item.result, Err(Error::Cancelled { .. })),
                "{:?}",
                item.result
            );
            assert_eq!(item.attempts, 1);
        } else {
            assert_eq!(item.result.as_ref().ok(), Some(&UpdateOutcome::NoContent));
            assert_eq!(item.attempts, 1, "item {n}");
        }
    }
    thread::sleep(Duration::from_millis(200));
    assert_eq!(emu.batch_items().len(), 25, "item 21 was not sent again");
    let later = client.update_user_statuses(&items(25)[21..22]);
    assert!(later[0].is_ok(), "{later:?}");
}

#[test]
fn a_bulk_call_whose_batch_stalls_cancels_that_batch_and_closes_its_connection() {
    let emu = emulator_with(3);
    emu.add_fault(FaultRule::next(1, Fault::NoAnswer).path_contains("$batch"));
    let client = client(&emu.base_url());
    let worker = client.clone();
    let (results, took) = interrupt_during(
        &client,
        || !emu.requests().is_empty(),
        move || worker.update_user_statuses(&items(3)),
    );
    assert!(took < PROMPTLY, "returned {took:?} after the interrupt");
    for result in results {
        assert!(matches!(result, Err(Error::Cancelled { .. })), "{result:?}");
    }
    wait_until("the connection closed", || emu.connections_closed() == 1);
    assert!(
        client
            .update_user_statuses(&items(3))
            .iter()
            .all(Result::is_ok)
    );
}

#[test]
fn a_retried_bulk_item_that_succeeds_carries_its_attempts() {
    let emu = emulator_with(3);
    emu.add_fault(
        FaultRule::next(
            1,
            Fault::Status {
                status: 503,
                retry_after: Some("0.01".into()),
            },
        )
        .path_contains("/userStatuses/s1"),
    );
    let results =
        client(&emu.base_url()).update_user_statuses_detailed(&items(3), &CallOptions::new());
    let attempts: Vec<u32> = results.iter().map(|item| item.attempts).collect();
    assert_eq!(attempts, [1, 2, 1]);
    assert!(results.iter().all(|item| item.result.is_ok()));
}

#[test]
fn an_interrupt_with_no_call_in_progress_changes_nothing() {
    let emu = emulator(PatchReturns::NoContent, &[DIRECT]);
    let client = client(&emu.base_url());
    client.interrupt();
    client.interrupt();
    client
        .update_user_status(&Target::new("cfg-1", "u1"), &patch(4))
        .unwrap();
    assert_eq!(emu.user_status(DIRECT, "u1").unwrap()["devicesCount"], 4);
}
