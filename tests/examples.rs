//! The README's main job, `cargo run --example update_user_status`, run as a user would: with no
//! arguments against the bundled emulator, and against a service named on the command line.

use std::path::PathBuf;
use std::process::Command;

use ius_emulator::{Config, Emulator, SeedEntry};

/// `target/<profile>/examples/<name>` (`.exe` on Windows), built by `cargo test` with the tests.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

#[test]
fn with_no_arguments_it_updates_a_status_in_the_bundled_emulator() {
    let out = Command::new(example("update_user_status"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(
        "sent: PATCH /beta/deviceManagement/deviceConfigurations/wifi-policy-1/userStatuses/user-42"
    ));
    assert!(stdout.contains("Bearer <redacted>") && !stdout.contains("emulator-token"));
    assert!(stdout.contains("Graph answered 204 No Content; the object read back is"));
    assert!(stdout.contains(r#""devicesCount": 3"#) && stdout.contains(r#""status": "compliant""#));
}

#[test]
fn against_a_named_service_it_updates_or_exits_non_zero_with_the_error() {
    let emu = Emulator::start(Config {
        token: Some("tk".into()),
        seed: vec![SeedEntry {
            collection: "/deviceManagement/deviceConfigurations/c/identityCertificate/userStatuses"
                .into(),
            entity: serde_json::json!({"id": "u"}),
        }],
        ..Config::default()
    })
    .unwrap();
    let run = |status: &str, patch: &str| {
        Command::new(example("update_user_status"))
            .args([
                "--base-url",
                &emu.base_url(),
                "--config-id",
                "c",
                "--status-id",
                status,
            ])
            .args(["--patch", patch, "--route", "identityCertificate"])
            .env("IUS_TOKEN", "tk")
            .output()
            .unwrap()
    };
    let ok = run("u", r#"{"devicesCount":7}"#);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("204 No Content"));
    let collection = "/deviceManagement/deviceConfigurations/c/identityCertificate/userStatuses";
    assert_eq!(emu.user_status(collection, "u").unwrap()["devicesCount"], 7);

    let missing = run("nope", r#"{"devicesCount":7}"#);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ResourceNotFound"));

    let invalid = run("u", r#"{"status":"bogus"}"#);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("invalid status"));
}

/// `cargo run --example outbox`: the agent loop rides out the emulator's first unreachable
/// flushes, then sends one merged write per status, and skips the unchanged reports after that.
#[cfg(feature = "outbox")]
#[test]
fn the_outbox_example_delivers_merged_reports_once_the_service_is_back() {
    let path = example("outbox");
    let out = Command::new(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("flush: sent 2 applied 0 retry later 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("flush: sent 2 applied 2 retry later 0 failed 0 pending 0"),
        "{stdout}"
    );
    assert!(stdout.contains("cycle 8: alice -> Skipped"), "{stdout}");
    // Two flushes while the service is down, then one write per status.
    assert!(
        stdout.contains("PATCH requests the service saw: 2 (for 16 reports)"),
        "{stdout}"
    );
    assert!(stdout.contains(r#""status":"compliant""#) && stdout.contains(r#""devicesCount":4"#));
}
