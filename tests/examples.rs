//! The README's main job, `cargo run --example update_user_status`, run as a user would: with no
//! arguments against the bundled emulator, and against a service named on the command line.

use std::path::PathBuf;
use std::process::Command;

use std::time::Duration;

use ius_emulator::{
    Config, Emulator, FederatedCredential, ManagedIdentity, SeedEntry, UserAssignedIdentity,
};

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

/// What a program needs from its environment to start at all, whatever it is asked to do: on
/// Windows, `SystemRoot` (Winsock's providers are found through it) and `PATH` (where DLLs are
/// found: under Wine, the test-only `ProcessPrng` stand-in); nothing on Unix.
fn platform_env() -> Vec<(String, String)> {
    let names: &[&str] = if cfg!(windows) {
        &["SystemRoot", "PATH"]
    } else {
        &[]
    };
    names
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
        .collect()
}

#[test]
fn with_auth_managed_or_workload_identity_it_gets_its_token_from_the_environment() {
    let tokens = std::env::temp_dir().join(format!("ius-example-identity-{}", std::process::id()));
    let emu = Emulator::start(Config {
        managed_identity: Some(ManagedIdentity {
            user_assigned: vec![UserAssignedIdentity {
                client_id: "uai-1".into(),
                ..UserAssignedIdentity::default()
            }],
            arc_tokens_folder: tokens.clone(),
            ..ManagedIdentity::default()
        }),
        federated_credentials: vec![FederatedCredential {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "app-1".into(),
            issuer: "https://oidc.example".into(),
            subject: "agent".into(),
        }],
        seed: vec![SeedEntry {
            collection: "/deviceManagement/deviceConfigurations/c/userStatuses".into(),
            entity: serde_json::json!({"id": "u"}),
        }],
        ..Config::default()
    })
    .unwrap();
    let token_file = tokens.join("federated-token");
    std::fs::write(
        &token_file,
        emu.mint_federated_token("https://oidc.example", "agent", Duration::from_secs(600)),
    )
    .unwrap();
    let run = |auth: &[&str], env: &[(&str, String)], count: u32| {
        Command::new(example("update_user_status"))
            .args([
                "--base-url",
                &emu.base_url(),
                "--config-id",
                "c",
                "--status-id",
                "u",
            ])
            .args(["--patch", &format!(r#"{{"devicesCount":{count}}}"#)])
            .args(auth)
            // Only what the test gives: the identity variables of this process are not the child's.
            .env_clear()
            .envs(platform_env())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap()
    };
    let imds = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url())];
    let out = run(
        &[
            "--auth",
            "managed-identity",
            "--identity-client-id",
            "uai-1",
        ],
        &imds,
        4,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = emu.token_requests();
    assert!(
        sent[0].target.contains("client_id=uai-1"),
        "{}",
        sent[0].target
    );
    let workload = [
        ("AZURE_TENANT_ID", "contoso.onmicrosoft.com".to_owned()),
        ("AZURE_CLIENT_ID", "app-1".to_owned()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.base_url()),
    ];
    let out = run(&["--auth", "workload-identity"], &workload, 5);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(emu.token_requests().len(), 2);
    let collection = "/deviceManagement/deviceConfigurations/c/userStatuses";
    assert_eq!(emu.user_status(collection, "u").unwrap()["devicesCount"], 5);
    // Nothing in the environment for workload identity: a configuration error, exit 1.
    let out = run(&["--auth", "workload-identity"], &[], 6);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AZURE_TENANT_ID"));
    let _ = std::fs::remove_dir_all(tokens);
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
