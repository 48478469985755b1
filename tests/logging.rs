//! What a logger may do: the library holds none of its locks while it logs, so a slow logger or
//! one that calls back into the client stalls nothing and deadlocks nothing. (One test per
//! process: a process has one `log` logger.)

use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use intune_user_status::{Client, ClientSecretCredential, Target, UserStatusPatch};
use ius_emulator::{App, Config, Emulator, Fault, FaultRule, SeedEntry};

const TENANT: &str = "contoso.onmicrosoft.com";
const APP: &str = "11111111-1111-1111-1111-111111111111";
const SECRET: &str = "s3cret-value";
const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

/// The client the logger calls back into, and what that nested call returned.
static CLIENT: OnceLock<Client> = OnceLock::new();
static NESTED: OnceLock<Result<(), String>> = OnceLock::new();

/// On the "token refresh failed" warning, reads a user status with the same client: a nested
/// call that needs the token cache.
struct CallsBack;

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
    }

    fn flush(&self) {}
}

#[test]
fn a_logger_that_calls_back_into_the_client_during_a_token_refresh_does_not_deadlock() {
    log::set_logger(&CallsBack).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
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
