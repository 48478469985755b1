//! What the `ius` tests share: the built binary run with a clean environment, an emulator to run
//! it against, and the error JSON it writes.

#![allow(dead_code)] // Each test file uses its own part.

use std::process::{Child, Command, Output, Stdio};

use ius_emulator::{App, Config, Emulator, RecordedRequest, SeedEntry};
use serde_json::{Value, json};

/// The token the emulators of these tests accept.
pub const TOKEN: &str = "test-token";
/// The direct collection of `cfg-1`.
pub const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-1/userStatuses";

/// The `ius` binary, with none of its environment variables set.
pub fn ius() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ius"));
    for name in ["IUS_CONFIG", "IUS_TOKEN", "IUS_BASE_URL"] {
        command.env_remove(name);
    }
    command.stdin(Stdio::null());
    command
}

/// A file in this test binary's scratch folder, removed first (with SQLite's companions).
pub fn scratch(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    for suffix in ["", "-wal", "-shm", "-flush"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// `ius --base-url EMULATOR --token TOKEN ARGS...`, to its end.
pub fn run(emu: &Emulator, args: &[&str]) -> Output {
    ius()
        .args(["--base-url", &emu.base_url(), "--token", TOKEN])
        .args(args)
        .output()
        .expect("run ius")
}

/// `ius --base-url EMULATOR --token TOKEN ARGS...` started, its standard streams piped.
pub fn spawn(emu: &Emulator, args: &[&str]) -> Child {
    ius()
        .args(["--base-url", &emu.base_url(), "--token", TOKEN])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ius")
}

/// An emulator whose token endpoint knows one app, `app-1` of tenant `contoso`, whose secret is
/// `the-right-one`.
pub fn app_emulator() -> Emulator {
    Emulator::start(Config {
        apps: vec![App {
            tenant: "contoso".into(),
            client_id: "app-1".into(),
            secret: Some("the-right-one".into()),
            certificate_pem: None,
        }],
        ..Config::default()
    })
    .expect("start the emulator")
}

/// Config JSON for [`app_emulator`]'s app, with `secret`.
pub fn app_config(emu: &Emulator, secret: &str) -> String {
    json!({
        "baseUrl": emu.base_url(),
        "authorityHost": emu.base_url(),
        "auth": {"tenantId": "contoso", "clientId": "app-1", "clientSecret": secret},
    })
    .to_string()
}

/// An emulator holding `s0` .. `s{count-1}` in `cfg-1`'s direct collection.
pub fn emulator(count: usize, config: Config) -> Emulator {
    let seed = (0..count)
        .map(|n| SeedEntry {
            collection: DIRECT.to_owned(),
            entity: json!({"id": format!("s{n}"), "devicesCount": 0}),
        })
        .collect();
    Emulator::start(Config {
        token: Some(TOKEN.into()),
        seed,
        ..config
    })
    .expect("start the emulator")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 on standard output")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 on standard error")
}

/// The one line of error JSON on standard error.
pub fn error_json(output: &Output) -> Value {
    let text = stderr(output);
    let mut lines = text.lines();
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no error JSON: {output:?}"));
    assert_eq!(lines.next(), None, "one line: {text}");
    serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {text}"))
}

/// The exit code.
pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

/// `{"target":...,"patch":...}` for `cfg-1`'s `status`.
pub fn item(status: &str, devices: i64) -> String {
    json!({
        "target": {"deviceConfigurationId": "cfg-1", "userStatusId": status},
        "patch": {"devicesCount": devices},
    })
    .to_string()
}

/// The `$batch` POSTs the emulator received.
pub fn batches(emu: &Emulator) -> Vec<RecordedRequest> {
    emu.wire_requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
        .collect()
}
