//! Builds the C library, the CMake project in `bindings-c/` and runs its C and C++ tests (CTest)
//! against in-process emulators: plainly, under valgrind, and with AddressSanitizer + UBSan.
//!
//! cmake, ctest, a C/C++ compiler, pkg-config and valgrind must be installed; a missing tool is a
//! failure with a message, never a silent skip (CI installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use ius_emulator::{Config, Emulator, PatchReturns, SeedEntry};
use serde_json::{Value, json};

const TOKEN: &str = "c-test-token";
const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";
/// The thread-test statuses each C/C++ test program writes (argv[1] picks the prefix).
const PREFIXES: [&str; 4] = ["shared", "static", "cpp-shared", "cpp-static"];
const THREADS: usize = 8;
const UPDATES_PER_THREAD: i64 = 25;

fn seed() -> Vec<SeedEntry> {
    let entry = |collection: &str, id: &str| SeedEntry {
        collection: collection.to_owned(),
        entity: json!({ "id": id, "userDisplayName": "seeded", "devicesCount": 0 }),
    };
    let mut seed = vec![
        entry(DIRECT, "s1"),
        entry(DIRECT, "odd id/\u{fc}?"),
        entry(
            "/deviceManagement/deviceConfigurations/c1/identityCertificate/rootCertificate/userStatuses",
            "r1",
        ),
        entry(
            "/deviceManagement/deviceConfigurations/c1/microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/cert1/userStatuses",
            "e1",
        ),
        entry(
            "/deviceManagement/windowsAutopilotDeploymentProfiles/p1/microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile/domainJoinConfiguration/userStatuses",
            "a1",
        ),
    ];
    for prefix in PREFIXES {
        for i in 0..THREADS {
            seed.push(entry(DIRECT, &format!("{prefix}-t{i}")));
        }
    }
    seed
}

fn emulator(patch_returns: PatchReturns) -> Emulator {
    Emulator::start(Config {
        token: Some(TOKEN.to_owned()),
        patch_returns,
        seed: seed(),
        ..Config::default()
    })
    .expect("start the emulator")
}

/// target/debug (or target/release): where cargo put this test and the library.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn run(what: &str, command: &mut Command) {
    let output = command.output().unwrap_or_else(|err| {
        panic!("{what}: could not run {command:?}: {err} (is it installed?)")
    });
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is required by the C API tests but was not found; install it (Debian: apt-get install -y {})",
        match tool {
            "cmake" | "ctest" => "cmake",
            "cc" | "c++" => "build-essential",
            other => other,
        }
    );
}

/// Builds the library with cargo (shared and static), then configures and builds `bindings-c`
/// into `target/<profile>/bindings-c/<name>` with `cmake_args`, and runs ctest against fresh
/// emulators. Returns the emulators for assertions on what they received.
fn build_and_ctest(
    name: &str,
    cmake_args: &[&str],
    ctest_filter: Option<&str>,
    env: &[(&str, &str)],
) -> (Emulator, Emulator) {
    for tool in ["cmake", "ctest", "cc", "c++", "pkg-config"] {
        require_tool(tool);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let profile = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "-p", "intune-user-status", "--lib"]);
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    run("cargo build of the library", &mut build);

    let build_dir = profile.join("bindings-c").join(name);
    let _ = std::fs::remove_dir_all(build_dir.join("stage"));
    run(
        "cmake configure",
        Command::new("cmake")
            .arg("-S")
            .arg(root.join("bindings-c"))
            .arg("-B")
            .arg(&build_dir)
            .arg(format!("-DIUS_LIB_DIR={}", profile.display()))
            .arg(format!(
                "-DIUS_INCLUDE_DIR={}",
                root.join("include").display()
            ))
            .arg(format!("-DIUS_VERSION={}", env!("CARGO_PKG_VERSION")))
            .args(cmake_args),
    );
    run(
        "cmake build",
        Command::new("cmake")
            .arg("--build")
            .arg(&build_dir)
            .args(["-j", "2"]),
    );

    let no_content = emulator(PatchReturns::NoContent);
    let ok = emulator(PatchReturns::Ok);
    let mut ctest = Command::new("ctest");
    ctest
        .arg("--test-dir")
        .arg(&build_dir)
        .args([
            "--output-on-failure",
            "--no-tests=error",
            "--timeout",
            "120",
        ])
        .env("IUS_TEST_BASE_URL", no_content.base_url())
        .env("IUS_TEST_BASE_URL_200", ok.base_url())
        .env("IUS_TEST_TOKEN", TOKEN)
        .env("IUS_TEST_VERSION", env!("CARGO_PKG_VERSION"));
    ctest.envs(env.iter().copied());
    if let Some(filter) = ctest_filter {
        ctest.args(["-R", filter]);
    }
    run(&format!("ctest ({name})"), &mut ctest);
    (no_content, ok)
}

fn count(emulator: &Emulator, method: &str, path: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path() == path)
        .count()
}

/// What every C test run must have left in the emulator, whichever way it was built.
fn assert_emulator_state(no_content: &Emulator, prefixes: &[&str]) {
    for prefix in prefixes {
        for i in 0..THREADS {
            let id = format!("{prefix}-t{i}");
            let stored: Value = no_content.user_status(DIRECT, &id).expect("seeded status");
            let is_c = !prefix.starts_with("cpp");
            if is_c {
                // Every update applied: the last count each thread wrote, then the read-back's status.
                assert_eq!(
                    stored["devicesCount"],
                    i as i64 * 1000 + UPDATES_PER_THREAD - 1,
                    "{id}"
                );
                assert_eq!(stored["userDisplayName"], format!("thread {i}"), "{id}");
                assert_eq!(stored["status"], "compliant", "{id}");
                let path = format!("/beta{DIRECT}/{id}");
                assert_eq!(
                    count(no_content, "PATCH", &path),
                    UPDATES_PER_THREAD as usize + 1,
                    "{path}: every update reached the server exactly once"
                );
            }
        }
    }
    let requests = no_content.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        let sdk = request.header("SdkVersion").unwrap_or_default();
        assert!(sdk.contains("runtimeEnvironment=C"), "{sdk}");
    }
    // The percent-encoded odd id reached its status, and the v1.0 and nested routes were used.
    let odd = no_content
        .user_status(DIRECT, "odd id/\u{fc}?")
        .expect("seeded");
    assert_eq!(odd["devicesCount"], 9);
    assert!(requests.iter().any(|r| r.path().starts_with("/v1.0/")));
    assert!(requests.iter().any(|r| {
        r.path()
            .contains("/rootCertificatesForServerValidation/cert1/")
    }));
    assert!(requests.iter().any(|r| {
        r.path()
            .contains("/domainJoinConfiguration/userStatuses/a1")
    }));
    // Input rejected by the library never reached the server.
    assert_eq!(count(no_content, "PATCH", &format!("/beta{DIRECT}/")), 0);
    assert!(
        !requests
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("colour"))
    );
}

#[test]
fn c_and_cpp_tests_pass_against_the_emulator() {
    let (no_content, ok) = build_and_ctest("plain", &[], None, &[]);
    assert_emulator_state(&no_content, &PREFIXES);
    // The 200 emulator holds what the C++ test wrote through a moved-into client.
    let stored = ok.user_status(DIRECT, "cpp-shared-t0").expect("seeded");
    assert_eq!(stored["devicesCount"], 77);
    assert!(
        ok.requests().iter().any(|r| r
            .header("User-Agent")
            .is_some_and(|ua| ua.ends_with(" c-tests/1.0"))),
        "userAgent reached the User-Agent header"
    );
    no_content.shutdown();
    ok.shutdown();
}

#[test]
fn c_tests_are_clean_under_valgrind() {
    require_tool("valgrind");
    let (no_content, ok) = build_and_ctest(
        "valgrind",
        &["-DIUS_VALGRIND=ON"],
        Some("^c_api_|^cpp_api_"),
        &[],
    );
    assert_emulator_state(&no_content, &PREFIXES);
    no_content.shutdown();
    ok.shutdown();
}

#[test]
fn c_tests_are_clean_under_address_and_undefined_sanitizers() {
    // Leaks are errors; UBSan stops at the first finding (also compiled with -fno-sanitize-recover).
    let (no_content, ok) = build_and_ctest(
        "sanitize",
        &["-DIUS_SANITIZE=ON"],
        Some("^c_api_|^cpp_api_"),
        &[
            (
                "ASAN_OPTIONS",
                "detect_leaks=1:abort_on_error=0:strict_string_checks=1",
            ),
            ("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"),
        ],
    );
    assert_emulator_state(&no_content, &PREFIXES);
    no_content.shutdown();
    ok.shutdown();
}
