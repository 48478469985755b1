//! Microsoft's official Graph beta SDK for Python (`msgraph-beta-sdk`) against the emulator:
//! `compat/msgraph_beta_sdk_check.py` creates, updates, reads, lists, counts and deletes a user
//! status and meets a Graph-shaped 404; this test runs it against an in-process emulator and then
//! checks what the emulator received from it.
//!
//! It needs Python with `msgraph_beta` importable: the interpreter is `IUS_PYTHON` if set (`.ci/run`
//! sets it to a virtual environment it installs the SDK into), else `python3`. Without the SDK the
//! test prints one line saying what is missing and passes, unless `IUS_REQUIRE_TOOLS=1` (set by
//! `.ci/run`), where it fails.

use std::path::Path;
use std::process::Command;

use ius_emulator::{Config, Emulator};

/// How to install the SDK (the pinned version the check was written against).
const INSTALL: &str = "pip install -r emulator/compat/requirements.txt";

/// The interpreter to use, or None (after saying why) when the SDK is not installed.
fn python_with_the_sdk() -> Option<String> {
    let python = std::env::var("IUS_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let found = Command::new(&python)
        .args(["-c", "import msgraph_beta, kiota_abstractions"])
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return Some(python);
    }
    assert!(
        std::env::var("IUS_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "IUS_REQUIRE_TOOLS=1 but {python} cannot import msgraph_beta ({INSTALL})"
    );
    println!(
        "skipped: {python} cannot import msgraph_beta ({INSTALL}); not checked: Microsoft's Python SDK against the emulator"
    );
    None
}

#[test]
fn microsofts_python_sdk_creates_updates_reads_and_deletes_through_the_emulator() {
    let Some(python) = python_with_the_sdk() else {
        return;
    };
    let emu = Emulator::start(Config {
        token: Some("emulator-token".to_owned()),
        ..Config::default()
    })
    .expect("start the emulator");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/msgraph_beta_sdk_check.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(emu.base_url())
        .output()
        .expect("run the Python check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all work"), "{stdout}");

    // What the SDK sent: the documented path with the id percent-encoded, its token, and the
    // PATCH body in Graph's own property names.
    let requests = emu.requests();
    let path = "/beta/deviceManagement/deviceConfigurations/config%201%2Fx/userStatuses";
    let methods: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path()))
        .collect();
    let item = format!("{path}/u1");
    for expected in [
        ("POST", path),
        ("PATCH", item.as_str()),
        ("GET", item.as_str()),
        ("DELETE", item.as_str()),
    ] {
        assert!(methods.contains(&expected), "{expected:?} in {methods:?}");
    }
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer emulator-token"))
    );
    let patch = requests.iter().find(|r| r.method == "PATCH").unwrap();
    let body: serde_json::Value = serde_json::from_slice(&patch.body).expect("JSON");
    assert_eq!(body["status"], "nonCompliant", "{body}");
    assert_eq!(body["devicesCount"], 3, "{body}");
    emu.shutdown();
}
