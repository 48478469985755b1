//! What a logger may do: the library holds none of its locks while it logs, so a slow logger or
//! one that calls back into the client or the outbox stalls nothing and deadlocks nothing. (A
//! process has one `log` logger: [`CallsBack`] serves every test here, each by its own message.)

mod common;

use std::sync::mpsc;
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use intune_user_status::{
    Client, ClientSecretCredential, FlushStop, Outbox, OutboxOptions, Target, UserStatusPatch,
};
use ius_emulator::{App, Config, Emulator, Fault, FaultRule, SeedEntry};

const TENANT: &str = "contoso.onmicrosoft.com";
const APP: &str = "11111111-1111-1111-1111-111111111111";
const SECRET: &str = "s3cret-value";
const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

/// The client the logger calls back into, and what that nested call returned.
static CLIENT: OnceLock<Client> = OnceLock::new();
static NESTED: OnceLock<Result<(), String>> = OnceLock::new();

/// The outbox the logger calls back into, and what its nested flush returned (its `stoppedBy`)
/// and how long it took.
static OUTBOX: OnceLock<Outbox> = OnceLock::new();
static NESTED_FLUSH: OnceLock<(Result<Option<FlushStop>, String>, Duration)> = OnceLock::new();

/// On the "token refresh failed" warning, reads a user status with the same client: a nested
/// call that needs the token cache. On the outbox's "credentials were refused" warning, flushes
/// that outbox again: a nested call that needs the flush lock.
struct CallsBack;

/// Installs [`CallsBack`] as the process's logger, once.
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&CallsBack).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

impl log::Log for CallsBack {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() == log::Level::Warn
            && record.args().to_string().contains("token refresh failed")
            && let Some(client) = CLIENT.get()
        {
            let nested = client
                .get_user_status(&Target::new("cfg-1", "u1"))
                .map(drop)
                .map_err(|err| err.to_string());
            let _ = NESTED.set(nested);
        }
        if record.level() == log::Level::Warn
            && record
                .args()
                .to_string()
                .contains("credentials were refused")
            && let Some(outbox) = OUTBOX.get()
        {
            let started = Instant::now();
            let nested = outbox
                .flush()
                .map(|report| report.stopped_by)
                .map_err(|err| err.to_string());
            let _ = NESTED_FLUSH.set((nested, started.elapsed()));
        }
    }

    fn flush(&self) {}
}

#[test]
fn a_logger_that_calls_back_into_the_client_during_a_token_refresh_does_not_deadlock() {
    install();
    let emu = Emulator::start(Config {
        apps: vec![App {
            tenant: TENANT.into(),
            client_id: APP.into(),
            secret: Some(SECRET.into()),
            certificate_pem: None,
        }],
        // Refreshed at half-life: after 1 s, while the token still works for another second.
        token_lifetime: Duration::from_secs(2),
        seed: vec![SeedEntry {
            collection: DIRECT.into(),
            entity: serde_json::json!({"id": "u1"}),
        }],
        ..Config::default()
    })
    .unwrap();
    let client = Client::builder()
        .base_url(emu.base_url())
        .credential(ClientSecretCredential::new(TENANT, APP, SECRET).authority_host(emu.base_url()))
        .build()
        .unwrap();
    let update = |client: &Client| {
        client.update_user_status(
            &Target::new("cfg-1", "u1"),
            &UserStatusPatch::new().devices_count(4),
        )
    };
    update(&client).unwrap();
    CLIENT.set(client.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    // The early refresh fails; the current token stays in use, with a warning.
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 400,
            retry_after: None,
        })
        .path_contains("/oauth2/"),
    );
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(update(&client).map(drop).map_err(|err| err.to_string()));
    });
    let outcome = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the update returned: no deadlock while the logger called back");
    assert_eq!(outcome, Ok(()));
    assert_eq!(
        NESTED.get(),
        Some(&Ok(())),
        "the logger saw the warning and its nested call succeeded"
    );
}

/// The WARN of a flush stopped by refused credentials comes once the flush let go of its lock: a
/// logger that flushes the same outbox then finds the hold that flush left (`stoppedBy` held), at
/// once. Logged under the lock, the nested flush waited for its own caller's lock until its
/// `flushTime` ran out (`stoppedBy` time), stalling the outer flush as long.
#[test]
fn a_logger_that_flushes_the_outbox_on_its_warning_finds_the_flush_lock_free() {
    install();
    let emu = common::emulator_with_statuses(["a", "b"]);
    let dir = common::fresh_folder("logging", "refused");
    let client = common::builder(&emu.base_url())
        .access_token("refused-token")
        .build()
        .unwrap();
    let outbox = Outbox::open(
        &client,
        dir.join("outbox.db"),
        OutboxOptions::new().flush_time(Duration::from_secs(5)),
    )
    .unwrap();
    for id in ["a", "b"] {
        outbox
            .enqueue(
                &Target::new("c1", id),
                &UserStatusPatch::new().devices_count(1),
            )
            .unwrap();
    }
    assert!(OUTBOX.set(outbox).is_ok());
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = OUTBOX.get().unwrap().flush();
        let _ = done.send(
            outcome
                .map(|report| report.stopped_by)
                .map_err(|err| err.to_string()),
        );
    });
    let outcome = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the flush returned while its logger flushed again");
    assert_eq!(outcome, Ok(Some(FlushStop::Auth)));
    let (nested, took) = NESTED_FLUSH.get().expect("the logger saw the WARN");
    assert_eq!(
        nested,
        &Ok(Some(FlushStop::Held)),
        "the nested flush found the hold, not a lock held (after {took:?})"
    );
    assert!(
        *took < Duration::from_secs(2),
        "the nested flush took {took:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
