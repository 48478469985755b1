//! The C and C++ tests: `bindings-c/`'s programs, compiled by `c_build` (no cmake), run against
//! in-process emulators plainly, built with clang, under valgrind and with AddressSanitizer +
//! UBSan; then what the servers received is checked here. Also: the shared object's exported
//! symbols and SONAME, and the CMake package (`cmake --install` and its consumers).
//!
//! A C/C++ compiler and valgrind must be installed; a missing one is a failure with a message.
//! Without cmake (or nm, readelf, clang) the test that needs it prints one line and passes, unless
//! `IUS_REQUIRE_TOOLS=1` (`.ci/run` sets it). To add a C test program, see `tests/c_build/mod.rs`.
#![cfg(unix)]

mod c_build;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use c_build::{KINDS, SONAME, Suite, Variant};
use common::{TunnelProxy, proxied_tls, proxied_url};
use ius_emulator::{
    App, Config, Emulator, Fault, FaultRule, FederatedCredential, ManagedIdentity, PatchReturns,
    RecordedRequest, SeedEntry, TlsIdentity, UserAssignedIdentity,
};
use serde_json::{Value, json};

const TOKEN: &str = "c-test-token";
const DIRECT: &str = "/deviceManagement/deviceConfigurations/c1/userStatuses";
/// The thread-test statuses `test_c_api` writes (argv[1] picks the prefix).
const PREFIXES: [&str; 2] = ["shared", "static"];
/// The status `test_cpp_api` writes on the 200 emulator, per build kind (argv[1] is
/// `cpp-{kind}`).
const CPP_STATUSES: [&str; 2] = ["cpp-shared-t0", "cpp-static-t0"];
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
    seed.extend(CPP_STATUSES.map(|id| entry(DIRECT, id)));
    seed
}

/// User statuses `ids` on the direct path under `c1`, each with `devicesCount` 0.
fn direct_statuses<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> Vec<SeedEntry> {
    ids.into_iter()
        .map(|id| SeedEntry {
            collection: DIRECT.to_owned(),
            entity: json!({ "id": id.as_ref(), "devicesCount": 0 }),
        })
        .collect()
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

/// `test_c_faults`'s scenarios: each runs against its own emulator, named to the program by the
/// environment variable `IUS_FAULT_<KIND>_<SCENARIO>`.
const FAULT_SCENARIOS: [&str; 10] = [
    "RETRY_AFTER",
    "BACKOFF_503",
    "LONG_RETRY_AFTER",
    "PERSISTENT_503",
    "STATUS_500",
    "RESET",
    "NO_ANSWER",
    "OVERSIZED",
    "THROTTLE_UNPACED",
    "THROTTLE_PACED",
];
/// The throttling scenarios' threads and updates per thread (statuses `t0` ..).
const FAULT_THREADS: usize = 4;
const FAULT_UPDATES_PER_THREAD: i64 = 8;

fn status_fault(status: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
    }
}

/// The emulator for one fault scenario: its fault plan or write throttling, and the statuses
/// `c1/u1` (single calls) and `c1/t0` .. (threads).
fn fault_emulator(scenario: &str) -> Emulator {
    let next = |n: u32, fault: Fault| FaultRule::next(n, fault).method("PATCH");
    let always = |fault: Fault| FaultRule::always(fault).method("PATCH");
    let (faults, throttle_writes) = match scenario {
        "RETRY_AFTER" => (vec![next(2, status_fault(429, Some("0.2")))], None),
        "BACKOFF_503" => (vec![next(1, status_fault(503, None))], None),
        "LONG_RETRY_AFTER" => (vec![always(status_fault(429, Some("30")))], None),
        "PERSISTENT_503" => (vec![always(status_fault(503, None))], None),
        "STATUS_500" => (vec![next(1, status_fault(500, None))], None),
        "RESET" => (vec![next(1, Fault::Reset)], None),
        "NO_ANSWER" => (vec![always(Fault::NoAnswer)], None),
        "OVERSIZED" => (vec![next(1, Fault::Oversized { bytes: 2 << 20 })], None),
        // Intune's write limit, scaled down: 10 writes per second.
        "THROTTLE_UNPACED" | "THROTTLE_PACED" => (vec![], Some((10, Duration::from_secs(1)))),
        other => unreachable!("unknown fault scenario {other}"),
    };
    let ids = std::iter::once("u1".to_owned()).chain((0..FAULT_THREADS).map(|t| format!("t{t}")));
    Emulator::start(Config {
        token: Some(TOKEN.to_owned()),
        seed: direct_statuses(ids),
        faults,
        throttle_writes,
        ..Config::default()
    })
    .expect("start a fault emulator")
}

/// How far past its stated figure a time in the C fault scenarios may run: the plain, clang and
/// sanitizer builds as `tests/reliability.rs` allows. Valgrind runs every instruction many times
/// slower: on the loaded development machine the largest excess seen under valgrind was 0.95 s
/// on the program's own clock (the first timed call, after its warm-up) and 0.68 s between the
/// emulator's arrivals (without the warm-up a first call ran 6.3 s over, with the four C suites
/// running at once). The C program gets the margin as `IUS_TIMING_MARGIN_MS` for the times it
/// measures itself.
fn timing_margin(variant: Variant) -> Duration {
    match variant {
        Variant::Plain | Variant::Clang | Variant::Sanitize => Duration::from_millis(250),
        Variant::Valgrind => Duration::from_millis(4000),
        // Wine translates every socket call; its margin is the valgrind run's halved, not measured
        // on its own.
        Variant::Wine => Duration::from_millis(2000),
    }
}

/// Asserts that `took` lies within `low ..= high + margin`, and prints how far it ran past `high`
/// (as `tests/reliability.rs` does).
fn assert_took(what: &str, took: Duration, low_ms: u64, high_ms: u64, margin: Duration) {
    let (low, high) = (
        Duration::from_millis(low_ms),
        Duration::from_millis(high_ms),
    );
    let excess = took.as_secs_f64() - high.as_secs_f64();
    println!("timing C {what} excess_ms={:.1}", excess * 1e3);
    assert!(
        took >= low && took <= high + margin,
        "{what}: took {took:?}, want {low:?} ..= {high:?} + {margin:?}"
    );
}

/// The time from each recorded request's arrival to the next one's, in ms bounds: asserts each
/// gap within its `(low, high)`.
fn assert_gaps(emu: &Emulator, bounds: &[(u64, u64)], margin: Duration, what: &str) {
    let requests = emu.requests();
    assert_eq!(requests.len(), bounds.len() + 1, "{what}");
    for (pair, (low, high)) in requests.windows(2).zip(bounds) {
        let gap = pair[1].received.duration_since(pair[0].received);
        assert_took(what, gap, *low, *high, margin);
    }
}

/// From the first request's arrival to the last one's.
fn span(emu: &Emulator) -> Duration {
    let requests = emu.requests();
    let (first, last) = (requests.first().unwrap(), requests.last().unwrap());
    last.received.duration_since(first.received)
}

/// Every fault emulator of one ctest run: (kind, scenario, emulator), and the timing margin of
/// the variant that runs against them.
struct FaultEmulators(Vec<(&'static str, &'static str, Emulator)>, Duration);

impl FaultEmulators {
    fn start(variant: Variant) -> FaultEmulators {
        FaultEmulators(
            KINDS
                .iter()
                .flat_map(|&kind| FAULT_SCENARIOS.iter().map(move |&s| (kind, s)))
                .map(|(kind, scenario)| (kind, scenario, fault_emulator(scenario)))
                .collect(),
            timing_margin(variant),
        )
    }

    /// `IUS_FAULT_<KIND>_<SCENARIO>` = base URL, and `IUS_TIMING_MARGIN_MS`, for the programs'
    /// environment.
    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<_> = self
            .0
            .iter()
            .map(|(kind, scenario, emu)| {
                (
                    format!("IUS_FAULT_{}_{scenario}", kind.to_uppercase()),
                    emu.base_url(),
                )
            })
            .collect();
        env.push((
            "IUS_TIMING_MARGIN_MS".to_owned(),
            self.1.as_millis().to_string(),
        ));
        env
    }

    /// What each emulator must have seen from `test_c_faults`, and when: the waits between
    /// attempts as `test_c_faults.c` configures them (docs/reliability.md, "The fault matrix").
    fn assert_state(&self) {
        let margin = self.1;
        for (kind, scenario, emu) in &self.0 {
            let what = format!("{kind} {scenario}");
            match *scenario {
                "RETRY_AFTER" => {
                    assert_one_call(emu, 3, true, &what);
                    assert_gaps(emu, &[(200, 200), (200, 200)], margin, &what);
                }
                // One backoff of 50 ms, ±20%.
                "BACKOFF_503" | "RESET" => {
                    assert_one_call(emu, 2, true, &what);
                    assert_gaps(emu, &[(40, 60)], margin, &what);
                }
                // 20 ms then 40 ms, ±20%.
                "PERSISTENT_503" => {
                    assert_one_call(emu, 3, false, &what);
                    assert_gaps(emu, &[(16, 24), (32, 48)], margin, &what);
                }
                "LONG_RETRY_AFTER" | "STATUS_500" | "NO_ANSWER" | "OVERSIZED" => {
                    assert_one_call(emu, 1, false, &what)
                }
                "THROTTLE_UNPACED" => {
                    let throttled = assert_threads_applied(emu, &what);
                    assert!(throttled > 0, "{what}: the write limit was met");
                    // 32 writes at 10 per second: writes 11, 21 and 31 each wait a window; each round of 429s holds
                    // the client for the emulator's whole-second Retry-After, three after the
                    // first 10 writes.
                    assert_took(&what, span(emu), 2990, 3000, margin);
                }
                "THROTTLE_PACED" => {
                    let throttled = assert_threads_applied(emu, &what);
                    assert_eq!(throttled, 0, "{what}: pacing kept under the write limit");
                    // Writes 11, 21 and 31 each wait a window after an answer (less 10 ms: a
                    // write is recorded on arrival, a moment before the window counts it).
                    assert_took(&what, span(emu), 2990, 3000, margin);
                }
                other => unreachable!("unknown fault scenario {other}"),
            }
        }
    }

    fn shutdown(self) {
        for (_, _, emu) in self.0 {
            emu.shutdown();
        }
    }
}

/// The emulator saw one call of `attempts` requests: the same PATCH each time, with the same
/// `client-request-id` and `Retry-Attempt: N` on the Nth retry only; and whether it was applied.
fn assert_one_call(emu: &Emulator, attempts: usize, applied: bool, what: &str) {
    let requests = emu.requests();
    assert_eq!(requests.len(), attempts, "{what}: attempts sent");
    let id = requests[0]
        .header("client-request-id")
        .unwrap_or_else(|| panic!("{what}: no client-request-id"));
    let path = format!("/beta{DIRECT}/u1");
    for (n, request) in requests.iter().enumerate() {
        assert_eq!(
            (request.method.as_str(), request.path()),
            ("PATCH", path.as_str()),
            "{what}"
        );
        assert_eq!(request.header("client-request-id"), Some(id), "{what}");
        let retry_attempt = n.to_string();
        assert_eq!(
            request.header("retry-attempt"),
            (n > 0).then_some(retry_attempt.as_str()),
            "{what}: request {n}"
        );
        assert_eq!(
            request.body_str(),
            r#"{"devicesCount":9}"#,
            "{what}: same bytes resent"
        );
        let sdk = request.header("SdkVersion").unwrap_or_default();
        assert!(sdk.contains("runtimeEnvironment=C"), "{what}: {sdk}");
    }
    let stored = emu.user_status(DIRECT, "u1").expect("seeded");
    assert_eq!(
        stored["devicesCount"],
        if applied { 9 } else { 0 },
        "{what}: applied"
    );
}

/// Every thread's last update landed, and every 429 was followed by exactly one retry. Returns
/// how many writes the emulator throttled.
fn assert_threads_applied(emu: &Emulator, what: &str) -> usize {
    for t in 0..FAULT_THREADS {
        let stored = emu.user_status(DIRECT, &format!("t{t}")).expect("seeded");
        assert_eq!(
            stored["devicesCount"], FAULT_UPDATES_PER_THREAD,
            "{what}: t{t}"
        );
    }
    let throttled = emu.throttled_count();
    let requests = emu.requests();
    let updates = FAULT_THREADS * FAULT_UPDATES_PER_THREAD as usize;
    assert_eq!(requests.len(), updates + throttled, "{what}: requests");
    let retries = requests
        .iter()
        .filter(|r| r.header("retry-attempt").is_some())
        .count();
    assert_eq!(retries, throttled, "{what}: one retry per 429");
    throttled
}

/// `test_c_auth`'s tenant and apps (test-only credentials; the certificate is the emulator's
/// test fixture).
const AUTH_TENANT: &str = "contoso.onmicrosoft.com";
const SECRET_APP: &str = "11111111-0000-0000-0000-00000000c0de";
const LOG_APP: &str = "22222222-0000-0000-0000-00000000c0de";
const WRONG_APP: &str = "33333333-0000-0000-0000-00000000c0de";
const CERT_APP: &str = "44444444-0000-0000-0000-00000000c0de";
const AUTH_SECRET: &str = "c-test-client-secret~value";
const AUTH_THREADS: usize = 4;
const AUTH_UPDATES_PER_THREAD: i64 = 10;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("emulator/tests/fixtures")
        .join(name)
}

/// One emulator per build kind for `test_c_auth`: the apps' token endpoint and Graph, which
/// accepts the issued tokens and [`TOKEN`] (what the token callbacks hand out).
struct AuthEmulators(Vec<(&'static str, Emulator)>);

impl AuthEmulators {
    fn start() -> AuthEmulators {
        let certificate = std::fs::read_to_string(fixture("test-only-app-cert.pem")).unwrap();
        let app = |client_id: &str, secret: bool| App {
            tenant: AUTH_TENANT.to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.then(|| AUTH_SECRET.to_owned()),
            certificate_pem: (!secret).then(|| certificate.clone()),
        };
        let mut ids: Vec<String> = ["cert-1", "wrong-1", "cb-1", "cb-2", "cb-3", "cbfail-1"]
            .into_iter()
            .chain(["log-1", "log-2"])
            .map(str::to_owned)
            .collect();
        for prefix in ["secret", "cb"] {
            ids.extend((0..AUTH_THREADS).map(|t| format!("{prefix}-t{t}")));
        }
        AuthEmulators(
            KINDS
                .iter()
                .map(|&kind| {
                    let emu = Emulator::start(Config {
                        token: Some(TOKEN.to_owned()),
                        apps: vec![
                            app(SECRET_APP, true),
                            app(LOG_APP, true),
                            app(WRONG_APP, true),
                            app(CERT_APP, false),
                        ],
                        seed: direct_statuses(&ids),
                        ..Config::default()
                    })
                    .expect("start an auth emulator");
                    (kind, emu)
                })
                .collect(),
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .0
            .iter()
            .map(|(kind, emu)| {
                (
                    format!("IUS_AUTH_{}_URL", kind.to_uppercase()),
                    emu.base_url(),
                )
            })
            .collect();
        for (name, value) in [
            ("IUS_AUTH_TENANT", AUTH_TENANT.to_owned()),
            ("IUS_AUTH_SECRET_APP", SECRET_APP.to_owned()),
            ("IUS_AUTH_LOG_APP", LOG_APP.to_owned()),
            ("IUS_AUTH_WRONG_APP", WRONG_APP.to_owned()),
            ("IUS_AUTH_CERT_APP", CERT_APP.to_owned()),
            ("IUS_AUTH_SECRET", AUTH_SECRET.to_owned()),
            (
                "IUS_AUTH_CERT_FILE",
                fixture("test-only-app-cert.pem").display().to_string(),
            ),
            (
                "IUS_AUTH_KEY_FILE",
                fixture("test-only-app-key.pkcs8.pem").display().to_string(),
            ),
        ] {
            env.push((name.to_owned(), value));
        }
        env
    }

    /// What each emulator must have seen from `test_c_auth`.
    fn assert_state(&self) {
        for (kind, emu) in &self.0 {
            let tokens = emu.token_requests();
            let for_app = |app: &str| -> Vec<std::collections::HashMap<String, String>> {
                tokens
                    .iter()
                    .map(|r| form(&r.body_str()))
                    .filter(|f| f.get("client_id").map(String::as_str) == Some(app))
                    .collect()
            };
            // One token for every update of every thread; one per other app.
            let secret = for_app(SECRET_APP);
            assert_eq!(secret.len(), 1, "{kind}: token requests of the secret app");
            assert_eq!(secret[0]["client_secret"], AUTH_SECRET);
            assert_eq!(secret[0]["scope"], "https://graph.microsoft.com/.default");
            assert_eq!(for_app(LOG_APP).len(), 1, "{kind}: log app");
            assert_eq!(for_app(WRONG_APP).len(), 1, "{kind}: a 401 is not retried");
            let cert = for_app(CERT_APP);
            assert_eq!(cert.len(), 1, "{kind}: certificate app");
            assert!(
                cert[0].contains_key("client_assertion") && !cert[0].contains_key("client_secret")
            );
            assert_eq!(
                emu.issued_tokens(),
                3,
                "{kind}: secret, log and certificate apps"
            );

            let requests = emu.requests();
            let patches = |id: &str| -> Vec<_> {
                let path = format!("/beta{DIRECT}/{id}");
                requests
                    .iter()
                    .filter(|r| r.method == "PATCH" && r.path() == path)
                    .collect()
            };
            // Every thread's updates landed, all with the one issued token.
            let mut authorizations = std::collections::HashSet::new();
            for t in 0..AUTH_THREADS {
                let id = format!("secret-t{t}");
                let sent = patches(&id);
                assert_eq!(sent.len(), AUTH_UPDATES_PER_THREAD as usize, "{kind}: {id}");
                authorizations.extend(sent.iter().map(|r| r.header("Authorization").unwrap_or("")));
                let stored = emu.user_status(DIRECT, &id).expect("seeded");
                assert_eq!(
                    stored["devicesCount"], AUTH_UPDATES_PER_THREAD,
                    "{kind}: {id}"
                );
            }
            assert_eq!(authorizations.len(), 1, "{kind}: one token for all threads");
            let only = authorizations.into_iter().next().unwrap_or_default();
            assert!(
                only.starts_with("Bearer ") && !only.ends_with(TOKEN),
                "{kind}: the issued token, not the static one"
            );
            assert_eq!(patches("cert-1").len(), 2, "{kind}: certificate updates");
            // Failed authentication sends nothing to Graph.
            assert!(patches("wrong-1").is_empty(), "{kind}: wrong secret");
            assert!(patches("cbfail-1").is_empty(), "{kind}: failing callback");
            // The refused first token, then the good one: two PATCHes for one update.
            assert_eq!(patches("cb-2").len(), 2, "{kind}: 401 then a fresh token");
        }
    }

    fn shutdown(self) {
        for (_, emu) in self.0 {
            emu.shutdown();
        }
    }
}

/// A form body's fields (the token requests' values here need no percent-decoding beyond `~`).
fn form(body: &str) -> std::collections::HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.replace("%7E", "~")
                    .replace("%2F", "/")
                    .replace("%3A", ":"),
            )
        })
        .collect()
}

/// `test_c_network`'s app on its token endpoint (test-only credentials).
const NET_APP: &str = "55555555-0000-0000-0000-00000000c0de";
const NET_SECRET: &str = "c-network-client-secret~value";
/// base64("agent:s3cret"), the credentials `test_c_network` puts in the proxy URL.
const PROXY_BASIC: &str = "Basic YWdlbnQ6czNjcmV0";

/// One build kind's servers for `test_c_network`.
struct NetworkSet {
    kind: &'static str,
    /// HTTPS with the test-only server certificate (signed by `test-only-ca.pem`); status `u1`.
    https: Emulator,
    /// HTTPS as `graph.proxied.test` (loopback never goes through a proxy, and the proxy maps
    /// `.test` names to loopback), any bearer token; statuses `p1` (static token) and `p2`
    /// (client secret).
    graph: Emulator,
    /// The token endpoint of [`NET_APP`], HTTPS as `login.proxied.test`; a host of its own, so
    /// the proxy sees both.
    login: Emulator,
    /// The CONNECT proxy both `p1` and `p2`'s clients use.
    proxy: TunnelProxy,
}

/// One [`NetworkSet`] per build kind.
struct NetworkServers(Vec<NetworkSet>);

impl NetworkServers {
    fn start() -> NetworkServers {
        let read = |name: &str| std::fs::read_to_string(fixture(name)).unwrap();
        let seeded = |ids: &[&str]| direct_statuses(ids);
        NetworkServers(
            KINDS
                .iter()
                .map(|&kind| NetworkSet {
                    kind,
                    https: Emulator::start(Config {
                        token: Some(TOKEN.to_owned()),
                        seed: seeded(&["u1"]),
                        tls: Some(TlsIdentity {
                            certificate_chain_pem: read("test-only-server-cert.pem"),
                            private_key_pem: read("test-only-server-key.pem"),
                        }),
                        ..Config::default()
                    })
                    .expect("start an HTTPS emulator"),
                    // No token and no apps: Graph accepts any bearer token, the static one and
                    // the one `login` issues.
                    graph: Emulator::start(Config {
                        seed: seeded(&["p1", "p2"]),
                        tls: Some(proxied_tls()),
                        ..Config::default()
                    })
                    .expect("start a Graph emulator"),
                    login: Emulator::start(Config {
                        apps: vec![App {
                            tenant: AUTH_TENANT.to_owned(),
                            client_id: NET_APP.to_owned(),
                            secret: Some(NET_SECRET.to_owned()),
                            certificate_pem: None,
                        }],
                        tls: Some(proxied_tls()),
                        ..Config::default()
                    })
                    .expect("start a token emulator"),
                    proxy: TunnelProxy::start(),
                })
                .collect(),
        )
    }

    /// `IUS_NET_<KIND>_{HTTPS,GRAPH,LOGIN,PROXY}_URL`, the CA file and the app, for ctest.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for set in &self.0 {
            let kind = set.kind.to_uppercase();
            env.push((format!("IUS_NET_{kind}_HTTPS_URL"), set.https.base_url()));
            env.push((
                format!("IUS_NET_{kind}_GRAPH_URL"),
                proxied_url("graph.proxied.test", &set.graph),
            ));
            env.push((
                format!("IUS_NET_{kind}_LOGIN_URL"),
                proxied_url("login.proxied.test", &set.login),
            ));
            env.push((format!("IUS_NET_{kind}_PROXY_URL"), set.proxy.url.clone()));
        }
        for (name, value) in [
            (
                "IUS_NET_CA_FILE",
                fixture("test-only-ca.pem").display().to_string(),
            ),
            ("IUS_NET_TENANT", AUTH_TENANT.to_owned()),
            ("IUS_NET_APP", NET_APP.to_owned()),
            ("IUS_NET_SECRET", NET_SECRET.to_owned()),
        ] {
            env.push((name.to_owned(), value));
        }
        env
    }

    /// What the servers must have seen from `test_c_network`.
    fn assert_state(&self) {
        for NetworkSet {
            kind,
            https,
            graph,
            login,
            proxy,
        } in &self.0
        {
            // HTTPS: the refused handshake sent nothing; the update with the CA landed.
            let requests = https.requests();
            assert_eq!(requests.len(), 1, "{kind}: one request over HTTPS");
            assert_eq!(requests[0].method, "PATCH", "{kind}");
            let stored = https.user_status(DIRECT, "u1").expect("seeded");
            assert_eq!(stored["devicesCount"], 4, "{kind}: HTTPS update");

            // Both updates landed, each with its own client's token.
            let authorization = |id: &str| -> Vec<String> {
                let path = format!("/beta{DIRECT}/{id}");
                graph
                    .requests()
                    .iter()
                    .filter(|r| r.method == "PATCH" && r.path() == path)
                    .map(|r| r.header("Authorization").unwrap_or("").to_owned())
                    .collect()
            };
            assert_eq!(
                authorization("p1"),
                [format!("Bearer {TOKEN}")],
                "{kind}: p1"
            );
            let p2 = authorization("p2");
            assert!(
                p2.len() == 1 && p2[0].starts_with("Bearer ius-emulator-at."),
                "{kind}: p2 carried the token `login` issued: {p2:?}"
            );
            for (id, count) in [("p1", 2), ("p2", 3)] {
                let stored = graph.user_status(DIRECT, id).expect("seeded");
                assert_eq!(stored["devicesCount"], count, "{kind}: {id}");
            }
            let tokens = login.token_requests();
            assert_eq!(tokens.len(), 1, "{kind}: one token request");
            let token_form = form(&tokens[0].body_str());
            assert_eq!(token_form["client_id"], NET_APP, "{kind}");
            assert_eq!(token_form["client_secret"], NET_SECRET, "{kind}");
            assert!(
                login.requests().is_empty(),
                "{kind}: no Graph request to login"
            );

            // Every connection went through the proxy, tunnelled and with the credentials.
            let seen = proxy.seen();
            let graph_connect = format!(
                "CONNECT {} ",
                proxied_url("graph.proxied.test", graph).replace("https://", "")
            );
            let login_connect = format!(
                "CONNECT {} ",
                proxied_url("login.proxied.test", login).replace("https://", "")
            );
            let to = |connect: &str| seen.iter().filter(|s| s.starts_with(connect)).count();
            assert!(
                to(&graph_connect) >= 2,
                "{kind}: both clients reached Graph through the proxy: {seen:?}"
            );
            assert!(
                to(&login_connect) >= 1,
                "{kind}: the token request went through the proxy: {seen:?}"
            );
            assert_eq!(
                to(&graph_connect) + to(&login_connect),
                seen.len(),
                "{kind}: nothing else went through the proxy: {seen:?}"
            );
            for head in &seen {
                let lower = head.to_ascii_lowercase();
                assert!(
                    lower.contains("proxy-authorization:") && head.contains(PROXY_BASIC),
                    "{kind}: the proxy credentials on every CONNECT: {seen:?}"
                );
            }
        }
    }

    fn shutdown(self) {
        for set in self.0 {
            set.https.shutdown();
            set.graph.shutdown();
            set.login.shutdown();
        }
    }
}

/// `test_c_bulk`'s emulators, per build kind: `IUS_BULK_<KIND>_URL` holds `c1/b0..b44`,
/// `c1/hot` (its first PATCH answers 429 with Retry-After 0.2; the first envelope answers 503),
/// `c1/missing` absent, `c1/v1`,
/// `c1/v2` and `pg/p0..p5`; `IUS_BULK_<KIND>_ELSEWHERE_URL` pages one entity at a time with next
/// links based on a decoy emulator, which must receive nothing.
struct BulkEmulators(Vec<(&'static str, Emulator, Emulator, Emulator)>);

const PAGED: &str = "/deviceManagement/deviceConfigurations/pg/userStatuses";

impl BulkEmulators {
    fn start() -> BulkEmulators {
        let entry = |collection: &str, id: String| SeedEntry {
            collection: collection.to_owned(),
            entity: json!({ "id": id, "devicesCount": 0 }),
        };
        let sets = KINDS.iter().map(|&kind| {
            let mut seed: Vec<SeedEntry> =
                (0..45).map(|n| entry(DIRECT, format!("b{n}"))).collect();
            for id in ["hot", "v1", "v2"] {
                seed.push(entry(DIRECT, id.to_owned()));
            }
            seed.extend((0..6).map(|n| entry(PAGED, format!("p{n}"))));
            let bulk = Emulator::start(Config {
                token: Some(TOKEN.to_owned()),
                seed,
                batch_shuffle_seed: Some(11),
                faults: vec![
                    FaultRule::next(1, status_fault(429, Some("0.2")))
                        .method("PATCH")
                        .path_contains("/userStatuses/hot"),
                    // The first envelope answers 503: the whole batch goes again.
                    FaultRule::next(1, status_fault(503, Some("0.05"))).path_contains("/$batch"),
                ],
                ..Config::default()
            })
            .expect("start the bulk emulator");
            let decoy = Emulator::start(Config::default()).expect("start the decoy");
            let elsewhere = Emulator::start(Config {
                token: Some(TOKEN.to_owned()),
                seed: (0..2).map(|n| entry(PAGED, format!("p{n}"))).collect(),
                page_size: 1,
                next_link_base: Some(decoy.base_url()),
                ..Config::default()
            })
            .expect("start the elsewhere emulator");
            (kind, bulk, elsewhere, decoy)
        });
        BulkEmulators(sets.collect())
    }

    fn env(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .flat_map(|(kind, bulk, elsewhere, _)| {
                let kind = kind.to_uppercase();
                [
                    (format!("IUS_BULK_{kind}_URL"), bulk.base_url()),
                    (
                        format!("IUS_BULK_{kind}_ELSEWHERE_URL"),
                        elsewhere.base_url(),
                    ),
                ]
            })
            .collect()
    }

    /// What `test_c_bulk` must have sent: the chunking, only valid items, the throttled item
    /// again alone, one batch per version, nothing to the other host.
    fn assert_state(&self) {
        for (kind, bulk, elsewhere, decoy) in &self.0 {
            let wire = bulk.wire_requests();
            let batches: Vec<_> = wire
                .iter()
                .filter(|r| r.method == "POST" && r.path().ends_with("/$batch"))
                .collect();
            let ids = |batch: &ius_emulator::RecordedRequest| -> Vec<String> {
                let envelope: Value = serde_json::from_slice(&batch.body).unwrap();
                envelope["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        r["url"]
                            .as_str()
                            .unwrap()
                            .rsplit('/')
                            .next()
                            .unwrap()
                            .to_owned()
                    })
                    .collect()
            };
            assert_eq!(
                batches[0].body, batches[1].body,
                "{kind}: the 503 batch again, whole"
            );
            assert_eq!(batches[1].header("retry-attempt"), Some("1"), "{kind}");
            let batches = &batches[1..];
            let sizes: Vec<usize> = batches[..3].iter().map(|b| ids(b).len()).collect();
            assert_eq!(sizes, [20, 20, 5], "{kind}: 45 items as 20, 20, 5");
            assert_eq!(
                ids(batches[3]),
                ["b0", "b1"],
                "{kind}: only the valid items"
            );
            assert_eq!(ids(batches[4]), ["hot", "missing", "b2"], "{kind}");
            assert_eq!(ids(batches[5]), ["hot"], "{kind}: the throttled item alone");
            let v1: Vec<_> = batches
                .iter()
                .filter(|b| b.target == "/v1.0/$batch")
                .collect();
            assert_eq!(v1.len(), 1, "{kind}");
            assert_eq!(ids(v1[0]), ["v1"], "{kind}");
            assert!(
                bulk.batch_items()
                    .iter()
                    .all(|r| !r.target.contains("never-")),
                "{kind}: invalid items were never sent"
            );
            assert_eq!(
                bulk.user_status(DIRECT, "b44").unwrap()["devicesCount"],
                144
            );
            assert_eq!(bulk.user_status(DIRECT, "hot").unwrap()["devicesCount"], 7);
            assert_eq!(
                bulk.user_status(DIRECT, "v1").unwrap()["status"],
                "compliant"
            );
            assert!(bulk.user_status(PAGED, "made").is_none(), "{kind}: deleted");
            assert!(batches.iter().all(|b| {
                b.header("SdkVersion")
                    .is_some_and(|v| v.contains("runtimeEnvironment=C"))
            }));
            assert_eq!(elsewhere.requests().len(), 1, "{kind}: one page read");
            assert!(
                decoy.requests().is_empty(),
                "{kind}: nothing reached the other host"
            );
        }
    }

    fn shutdown(self) {
        for (_, bulk, elsewhere, decoy) in self.0 {
            bulk.shutdown();
            elsewhere.shutdown();
            decoy.shutdown();
        }
    }
}

/// `test_c_outbox`'s emulators, one per build kind, and the folder for its files.
struct OutboxEmulators {
    emulators: Vec<(&'static str, Emulator)>,
    dir: PathBuf,
}

impl OutboxEmulators {
    fn start(suite: &Suite) -> OutboxEmulators {
        // One folder per run: the plain, valgrind and sanitizer runs go at once.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = suite.scratch_dir(&format!("ius-c-outbox-{}-{run}", std::process::id()));
        let ids = ["o1", "o2", "r1", "cb1", "t0", "t1", "t2", "t3", "h1"];
        let emulators = KINDS
            .iter()
            .map(|&kind| {
                let emu = Emulator::start(Config {
                    token: Some(TOKEN.to_owned()),
                    seed: direct_statuses(ids),
                    ..Config::default()
                })
                .expect("start an outbox emulator");
                (kind, emu)
            })
            .collect();
        OutboxEmulators { emulators, dir }
    }

    /// `IUS_OUTBOX_<KIND>_URL` and `IUS_OUTBOX_DIR`, for ctest.
    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<_> = self
            .emulators
            .iter()
            .map(|(kind, emu)| {
                (
                    format!("IUS_OUTBOX_{}_URL", kind.to_uppercase()),
                    emu.base_url(),
                )
            })
            .collect();
        env.push(("IUS_OUTBOX_DIR".to_owned(), self.dir.display().to_string()));
        env
    }

    /// What `test_c_outbox` delivered: merged reports once each, the threads' last values,
    /// nothing from the full outbox or invalid input.
    fn assert_state(&self) {
        for (kind, emu) in &self.emulators {
            let o1 = emu.user_status(DIRECT, "o1").expect("seeded");
            assert_eq!(
                (&o1["devicesCount"], &o1["status"]),
                (&json!(1), &json!("compliant")),
                "{kind}"
            );
            let o1_path = format!("/beta{DIRECT}/o1");
            let o1_writes: Vec<_> = emu
                .requests()
                .into_iter()
                .filter(|r| r.method == "PATCH" && r.path() == o1_path)
                .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
                .collect();
            assert_eq!(
                o1_writes,
                [json!({"devicesCount": 1, "status": "compliant"})],
                "{kind}: one merged write"
            );
            assert_eq!(
                count(emu, "PATCH", &format!("/v1.0{DIRECT}/o2")),
                1,
                "{kind}"
            );
            assert_eq!(
                emu.user_status(DIRECT, "o2").unwrap()["devicesCount"],
                2,
                "{kind}"
            );
            // Enqueued while offline, delivered once after the restart.
            assert_eq!(
                emu.user_status(DIRECT, "r1").unwrap()["devicesCount"],
                5,
                "{kind}"
            );
            assert_eq!(
                count(emu, "PATCH", &format!("/beta{DIRECT}/r1")),
                1,
                "{kind}"
            );
            for t in 0..4 {
                let id = format!("t{t}");
                assert_eq!(
                    emu.user_status(DIRECT, &id).unwrap()["devicesCount"],
                    25,
                    "{kind} {id}"
                );
                assert_eq!(
                    count(emu, "PATCH", &format!("/beta{DIRECT}/{id}")),
                    1,
                    "{kind} {id}"
                );
            }
            assert!(
                !emu.requests().iter().any(|r| r.path().ends_with("/o3")),
                "{kind}: full outbox sent nothing"
            );
            // Through the callback client's outbox after the client was freed, then another's.
            let cb1: Vec<_> = emu
                .requests()
                .into_iter()
                .filter(|r| r.method == "PATCH" && r.path() == format!("/beta{DIRECT}/cb1"))
                .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
                .collect();
            assert_eq!(
                cb1,
                [json!({"devicesCount": 7}), json!({"devicesCount": 8})],
                "{kind}"
            );
        }
    }

    fn shutdown(self) {
        for (_, emu) in self.emulators {
            emu.shutdown();
        }
    }
}

/// `test_c_identity`'s user-assigned identity, App Service header and workload app (test-only).
const UAI_CLIENT: &str = "66666666-0000-0000-0000-00000000c0de";
const UAI_OBJECT: &str = "77777777-0000-0000-0000-00000000c0de";
const IDENTITY_HEADER: &str = "c-test-identity-header~value";
const WORKLOAD_APP: &str = "88888888-0000-0000-0000-00000000c0de";
const WORKLOAD_ISSUER: &str = "https://oidc.c-tests.example/";
const WORKLOAD_SUBJECT: &str = "system:serviceaccount:agents:c-test";

/// One build kind's emulator for `test_c_identity`, its Arc folder, its two federated tokens and
/// the file the program writes them to; and the emulators of the scenarios that need their own:
/// IMDS answering 410 three times (`gone`), 500 twice (`errors`), tokens of 8 s for threads and
/// refresh (`short`), and Azure Arc naming a key file outside its folder (`outside`).
struct IdentitySet {
    kind: &'static str,
    emu: Emulator,
    federated: [String; 2],
    gone: Emulator,
    errors: Emulator,
    short: Emulator,
    outside: Emulator,
}

/// The secret in the file `outside` names (never to be read or sent).
const OUTSIDE_SECRET: &str = "c-test-outside-key-never-sent";
/// How long `short`'s tokens live: refreshed at half their life.
const SHORT_LIFETIME: Duration = Duration::from_secs(8);

/// An emulator serving the system-assigned managed identity, its Arc key files in `arc_dir`
/// (named in its challenges as `suite`'s programs see them), with 8 seeded statuses (`t0` ..
/// `t7`) and the id `one`.
fn identity_scenario(
    suite: &Suite,
    arc_dir: PathBuf,
    lifetime: Duration,
    faults: Vec<FaultRule>,
) -> Emulator {
    let ids = (0..8).map(|t| format!("t{t}")).chain(["one".to_owned()]);
    Emulator::start(Config {
        managed_identity: Some(ManagedIdentity {
            arc_realm_folder: Some(suite.program_path(&arc_dir)),
            arc_tokens_folder: arc_dir,
            ..ManagedIdentity::default()
        }),
        token_lifetime: lifetime,
        faults,
        seed: direct_statuses(ids),
        ..Config::default()
    })
    .expect("start an identity scenario emulator")
}

/// `test_c_identity`'s emulators (managed identity and a federated credential), one per build
/// kind, and the folder for their files.
struct IdentityEmulators {
    sets: Vec<IdentitySet>,
    dir: PathBuf,
}

impl IdentityEmulators {
    /// For `suite`'s programs: under Wine the files go to the prefix's C: drive and Arc's
    /// challenges name them by their `C:\` paths, as Windows' Arc agent does.
    fn start(suite: &Suite) -> IdentityEmulators {
        // One folder per run: the plain, valgrind and sanitizer runs go at once.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = suite.scratch_dir(&format!("ius-c-identity-{}-{run}", std::process::id()));
        let ids = [
            "mi-system",
            "mi-object",
            "mi-app",
            "mi-arc",
            "mi-none",
            "wi-1",
            "wi-2",
            "wi-3",
        ];
        let sets = KINDS
            .iter()
            .map(|&kind| {
                let emu = Emulator::start(Config {
                    managed_identity: Some(ManagedIdentity {
                        system_assigned: true,
                        user_assigned: vec![UserAssignedIdentity {
                            client_id: UAI_CLIENT.to_owned(),
                            object_id: UAI_OBJECT.to_owned(),
                            resource_id: "/subscriptions/s/providers/x/uai".to_owned(),
                        }],
                        identity_header: IDENTITY_HEADER.to_owned(),
                        arc_tokens_folder: dir.join(format!("arc-{kind}")),
                        arc_realm_folder: Some(
                            suite.program_path(&dir.join(format!("arc-{kind}"))),
                        ),
                    }),
                    federated_credentials: vec![FederatedCredential {
                        tenant: AUTH_TENANT.to_owned(),
                        client_id: WORKLOAD_APP.to_owned(),
                        issuer: WORKLOAD_ISSUER.to_owned(),
                        subject: WORKLOAD_SUBJECT.to_owned(),
                    }],
                    seed: direct_statuses(ids),
                    ..Config::default()
                })
                .expect("start an identity emulator");
                let hour = Duration::from_secs(3600);
                let federated = [0, 1]
                    .map(|_| emu.mint_federated_token(WORKLOAD_ISSUER, WORKLOAD_SUBJECT, hour));
                let imds_status = |n: u32, status: u16| {
                    vec![
                        FaultRule::next(n, status_fault(status, None))
                            .path_contains("/metadata/identity/"),
                    ]
                };
                let arc_dir = |name: &str| dir.join(format!("arc-{name}-{kind}"));
                let gone = identity_scenario(suite, arc_dir("gone"), hour, imds_status(3, 410));
                let errors = identity_scenario(suite, arc_dir("errors"), hour, imds_status(2, 500));
                let short = identity_scenario(suite, arc_dir("short"), SHORT_LIFETIME, vec![]);
                let outside = identity_scenario(suite, arc_dir("outside"), hour, vec![]);
                let secret = dir.join(format!("outside-{kind}.key"));
                std::fs::write(&secret, OUTSIDE_SECRET).expect("write the outside key file");
                outside.set_arc_challenge_realm(Some(&suite.program_path(&secret)));
                IdentitySet {
                    kind,
                    emu,
                    federated,
                    gone,
                    errors,
                    short,
                    outside,
                }
            })
            .collect();
        IdentityEmulators { sets, dir }
    }

    /// `IUS_IDENTITY_<KIND>_{URL,ARC_DIR,GONE_URL,ERRORS_URL,SHORT_URL,OUTSIDE_URL,
    /// OUTSIDE_ARC_DIR,FEDERATED_1,FEDERATED_2,TOKEN_FILE}` and the shared values, for the program.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for set in &self.sets {
            let kind = set.kind.to_uppercase();
            let mut add = |name: &str, value: String| {
                env.push((format!("IUS_IDENTITY_{kind}_{name}"), value));
            };
            let path = |name: String| self.dir.join(name).display().to_string();
            add("URL", set.emu.base_url());
            add("ARC_DIR", path(format!("arc-{}", set.kind)));
            add("GONE_URL", set.gone.base_url());
            add("ERRORS_URL", set.errors.base_url());
            add("SHORT_URL", set.short.base_url());
            add("OUTSIDE_URL", set.outside.base_url());
            add("OUTSIDE_ARC_DIR", path(format!("arc-outside-{}", set.kind)));
            add("FEDERATED_1", set.federated[0].clone());
            add("FEDERATED_2", set.federated[1].clone());
            add("TOKEN_FILE", path(format!("token-{}", set.kind)));
        }
        for (name, value) in [
            ("IUS_IDENTITY_OUTSIDE_SECRET", OUTSIDE_SECRET),
            ("IUS_IDENTITY_HEADER", IDENTITY_HEADER),
            ("IUS_IDENTITY_UAI_CLIENT", UAI_CLIENT),
            ("IUS_IDENTITY_UAI_OBJECT", UAI_OBJECT),
            ("IUS_IDENTITY_TENANT", AUTH_TENANT),
            ("IUS_IDENTITY_APP", WORKLOAD_APP),
        ] {
            env.push((name.to_owned(), value.to_owned()));
        }
        env
    }

    /// What `test_c_identity` must have sent: each identity by its own name with each endpoint's
    /// proof, Arc's key, the federated token before and after rotation; Graph got what the
    /// tokens allowed and nothing after a failure.
    fn assert_state(&self) {
        for IdentitySet {
            kind,
            emu,
            federated,
            gone,
            errors,
            short,
            outside,
        } in &self.sets
        {
            assert_identity_scenarios(kind, gone, errors, short, outside);
            let tokens = emu.token_requests();
            let at = |path: &str| -> Vec<&RecordedRequest> {
                tokens.iter().filter(|r| r.path() == path).collect()
            };
            let query = |r: &RecordedRequest| -> Vec<(String, String)> {
                r.target
                    .split_once('?')
                    .map_or("", |(_, q)| q)
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":").replace("%2F", "/")))
                    .collect()
            };
            let pairs = |expected: &[(&str, &str)]| -> Vec<(String, String)> {
                expected
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            };
            let resource = ("resource", "https://graph.microsoft.com");
            // IMDS: the system-assigned identity, then the user-assigned one by object id; the
            // refused port never reached the emulator.
            let imds = at("/metadata/identity/oauth2/token");
            assert_eq!(imds.len(), 2, "{kind}: IMDS");
            assert_eq!(
                query(imds[0]),
                pairs(&[("api-version", "2018-02-01"), resource]),
                "{kind}"
            );
            assert_eq!(
                query(imds[1]),
                pairs(&[
                    ("api-version", "2018-02-01"),
                    resource,
                    ("object_id", UAI_OBJECT)
                ]),
                "{kind}"
            );
            assert!(imds.iter().all(|r| r.header("Metadata") == Some("true")));
            let app = at("/msi/token");
            assert_eq!(app.len(), 1, "{kind}: App Service");
            assert_eq!(app[0].header("X-IDENTITY-HEADER"), Some(IDENTITY_HEADER));
            assert_eq!(
                query(app[0]),
                pairs(&[
                    ("api-version", "2019-08-01"),
                    resource,
                    ("client_id", UAI_CLIENT)
                ]),
                "{kind}"
            );
            let arc = at("/arc/metadata/identity/oauth2/token");
            assert_eq!(arc.len(), 2, "{kind}: Arc's challenge, then the key");
            assert_eq!(arc[0].header("Authorization"), None);
            assert!(
                arc[1]
                    .header("Authorization")
                    .is_some_and(|a| a.starts_with("Basic arc-key-")),
                "{kind}"
            );
            let exchanged: Vec<String> = at(&format!("/{AUTH_TENANT}/oauth2/v2.0/token"))
                .iter()
                .map(|r| {
                    form(&r.body_str())
                        .remove("client_assertion")
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(
                exchanged,
                [&federated[0], &federated[1], &federated[1]].map(String::clone),
                "{kind}: the federated token, the rotated one, and it again with a top-level authorityHost"
            );
            assert_eq!(emu.user_status(DIRECT, "wi-3").unwrap()["devicesCount"], 1);
            for id in ["mi-system", "mi-object", "mi-app", "mi-arc"] {
                let stored = emu.user_status(DIRECT, id).expect("seeded");
                assert_eq!(stored["devicesCount"], 1, "{kind}: {id}");
            }
            assert_eq!(
                emu.user_status(DIRECT, "wi-1").unwrap()["devicesCount"],
                2,
                "{kind}"
            );
            let patches = |id: &str| count(emu, "PATCH", &format!("/beta{DIRECT}/{id}"));
            assert_eq!(patches("wi-1"), 3, "{kind}: one, then 401 and once more");
            assert_eq!(
                patches("mi-none") + patches("wi-2"),
                0,
                "{kind}: failures sent nothing"
            );
        }
    }

    fn shutdown(self) {
        for set in self.sets {
            for emu in [set.emu, set.gone, set.errors, set.short, set.outside] {
                emu.shutdown();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `test_c_identity`'s scenarios must have sent: IMDS asked again after three 410s and
/// after two 500s, a new token after a 401; one token for eight threads, refreshed once before
/// it expired; Arc's challenge naming a file outside its folder answered with nothing.
fn assert_identity_scenarios(
    kind: &str,
    gone: &Emulator,
    errors: &Emulator,
    short: &Emulator,
    outside: &Emulator,
) {
    assert_eq!(
        gone.token_requests().len(),
        4,
        "{kind}: three 410s, then the token"
    );
    assert_eq!(gone.user_status(DIRECT, "one").unwrap()["devicesCount"], 1);
    // 500 twice, then the token; Graph's 401 (expired tokens), one more token.
    assert_eq!(
        errors.token_requests().len(),
        4,
        "{kind}: 500, 500, token, token"
    );
    let patches = count(errors, "PATCH", &format!("/beta{DIRECT}/one"));
    assert_eq!(patches, 3, "{kind}: one, then 401 and once more");
    assert_eq!(
        errors.user_status(DIRECT, "one").unwrap()["devicesCount"],
        2
    );
    // Eight threads, one token; after half its life, exactly one refresh.
    assert_eq!(
        short.token_requests().len(),
        2,
        "{kind}: one token, one refresh"
    );
    let tokens: std::collections::HashSet<String> = short
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        tokens.len(),
        2,
        "{kind}: the first token, then the refreshed one"
    );
    for t in 0..8 {
        let stored = short.user_status(DIRECT, &format!("t{t}")).unwrap();
        assert_eq!(stored["devicesCount"], 6, "{kind}: t{t}");
    }
    // The challenge only: no key sent, Graph never asked.
    let challenged = outside.token_requests();
    assert_eq!(challenged.len(), 1, "{kind}: the challenge, unanswered");
    assert_eq!(challenged[0].header("Authorization"), None);
    assert!(outside.requests().is_empty(), "{kind}: Graph saw nothing");
}

/// `test_c_interrupt`'s and `test_cpp_interrupt`'s emulator per build kind,
/// `IUS_INTERRUPT_<KIND>_URL`: the user statuses they update (directly, in bulk and through an
/// outbox) under `c1`, and the waits they interrupt (a PATCH never answered, a Retry-After of
/// 30 s).
struct InterruptEmulators(Vec<(&'static str, Emulator)>);

impl InterruptEmulators {
    fn start() -> InterruptEmulators {
        let ids = [
            "stall",
            "wait",
            "paced",
            "cb",
            "budget",
            "b0",
            "b1",
            "b2",
            "bretry",
            "bwait",
            "cppstall",
            // The outbox's.
            "ob0",
            "ob1",
            "ostall",
            "oa",
            "owait",
            "olock0",
            "olock1",
            "cppob",
            "cppostall",
        ];
        let on = |id: &str, fault: Fault| {
            FaultRule::next(1, fault).path_contains(format!("/userStatuses/{id}"))
        };
        let emulators = KINDS.iter().map(|&kind| {
            let emulator = Emulator::start(Config {
                token: Some(TOKEN.to_owned()),
                seed: direct_statuses(ids),
                faults: vec![
                    on("stall", Fault::NoAnswer),
                    on("cppstall", Fault::NoAnswer),
                    on("wait", status_fault(503, Some("30"))),
                    on("bretry", status_fault(503, Some("0.01"))),
                    on("bwait", status_fault(503, Some("30"))),
                    on("ostall", Fault::NoAnswer),
                    on("owait", status_fault(503, Some("30"))),
                    on("olock0", Fault::NoAnswer),
                    on("cppostall", Fault::NoAnswer),
                ],
                ..Config::default()
            })
            .expect("start the interrupt emulator");
            (kind, emulator)
        });
        InterruptEmulators(emulators.collect())
    }

    fn env(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(kind, emulator)| {
                (
                    format!("IUS_INTERRUPT_{}_URL", kind.to_uppercase()),
                    emulator.base_url(),
                )
            })
            .collect()
    }

    /// What the programs left: each interrupted update was sent once and not again, and the
    /// update after it was applied.
    fn assert_state(&self) {
        for (kind, emulator) in &self.0 {
            let patches = |id: &str| count(emulator, "PATCH", &format!("/beta{DIRECT}/{id}"));
            for (id, sent, last) in [
                ("stall", 2, 2),
                ("wait", 2, 2),
                ("paced", 2, 3),
                ("cb", 1, 3),
                ("cppstall", 3, 3),
            ] {
                assert_eq!(patches(id), sent, "{kind}: PATCHes of {id}");
                let stored = emulator.user_status(DIRECT, id).expect("seeded");
                assert_eq!(stored["devicesCount"], last, "{kind}: {id}");
            }
            let bwait = emulator
                .batch_items()
                .iter()
                .filter(|r| r.target.ends_with("/bwait"))
                .count();
            assert_eq!(bwait, 1, "{kind}: the interrupted item was not sent again");
            let stored = emulator.user_status(DIRECT, "bwait").expect("seeded");
            assert_eq!(stored["devicesCount"], 2, "{kind}: the update after it");
            // The outbox's: each abandoned report was sent again by the next flush (those of a
            // stalled batch applied before the stall too: an unknown outcome), each delivered.
            let items = emulator.batch_items();
            for (id, sent) in [
                ("ob0", 2),
                ("ob1", 2),
                ("ostall", 2),
                ("oa", 1),
                ("owait", 2),
                ("olock0", 2),
                ("olock1", 1),
                ("cppob", 2),
                ("cppostall", 2),
            ] {
                let carried = items
                    .iter()
                    .filter(|r| r.target.ends_with(&format!("/{id}")))
                    .count();
                assert_eq!(carried, sent, "{kind}: batch items of {id}");
                let stored = emulator.user_status(DIRECT, id).expect("seeded");
                assert_eq!(stored["devicesCount"], 1, "{kind}: {id}");
            }
        }
    }

    fn shutdown(self) {
        for (_, emulator) in self.0 {
            emulator.shutdown();
        }
    }
}

/// `test_c_metrics`'s app (test-only credentials; the secret is [`AUTH_SECRET`]).
const METRICS_APP: &str = "55555555-0000-0000-0000-00000000c0de";
/// The body of each PATCH of `test_c_metrics`'s known sequence.
const METRICS_BODY: &str = r#"{"devicesCount":1}"#;

/// `test_c_metrics`'s emulator per build kind, `IUS_METRICS_<KIND>_URL`: `c1/throttled` answers
/// its first PATCH 429 with Retry-After 0.2, `c1/refused` its first 401; the app's token
/// endpoint; and the bytes of the three error bodies the known sequence receives.
struct MetricsEmulators {
    emulators: Vec<(&'static str, Emulator)>,
    received: u64,
}

impl MetricsEmulators {
    fn start() -> MetricsEmulators {
        let ids = [
            "throttled",
            "refused",
            "ok0",
            "ok1",
            "ok2",
            "ok3",
            "ok4",
            "m0",
            "m1",
        ];
        let config = || {
            let on = |id: &str, fault: Fault| {
                FaultRule::next(1, fault).path_contains(format!("/userStatuses/{id}"))
            };
            Config {
                token: Some(TOKEN.to_owned()),
                apps: vec![App {
                    tenant: AUTH_TENANT.to_owned(),
                    client_id: METRICS_APP.to_owned(),
                    secret: Some(AUTH_SECRET.to_owned()),
                    certificate_pem: None,
                }],
                seed: direct_statuses(ids),
                faults: vec![
                    on("throttled", status_fault(429, Some("0.2"))),
                    on("refused", status_fault(401, None)),
                ],
                ..Config::default()
            }
        };
        // The error bodies, asked of an emulator like theirs by a plain client.
        let sample = Emulator::start(config()).expect("start a metrics emulator");
        let received = ["throttled", "missing", "refused"]
            .iter()
            .map(|id| {
                let path = format!("/beta{DIRECT}/{id}");
                common::answer_bytes(&sample.base_url(), &path, TOKEN, METRICS_BODY)
            })
            .sum();
        sample.shutdown();
        let emulators = KINDS.iter().map(|&kind| {
            let emulator = Emulator::start(config()).expect("start a metrics emulator");
            (kind, emulator)
        });
        MetricsEmulators {
            emulators: emulators.collect(),
            received,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .emulators
            .iter()
            .map(|(kind, emulator)| {
                (
                    format!("IUS_METRICS_{}_URL", kind.to_uppercase()),
                    emulator.base_url(),
                )
            })
            .collect();
        env.push(("IUS_METRICS_APP".to_owned(), METRICS_APP.to_owned()));
        env.push(("IUS_METRICS_RECEIVED".to_owned(), self.received.to_string()));
        env
    }

    /// What the program sent, as its metrics counted it: two PATCHes of the throttled and the
    /// refused status, one of each other, two tokens, one `$batch` of three items.
    fn assert_state(&self) {
        for (kind, emulator) in &self.emulators {
            let patches = |id: &str| count(emulator, "PATCH", &format!("/beta{DIRECT}/{id}"));
            for (id, sent) in [("throttled", 2), ("refused", 2), ("missing", 1), ("ok4", 1)] {
                assert_eq!(patches(id), sent, "{kind}: PATCHes of {id}");
            }
            assert_eq!(emulator.token_requests().len(), 2, "{kind}: tokens");
            assert_eq!(emulator.batch_items().len(), 3, "{kind}: bulk items");
        }
    }

    fn shutdown(self) {
        for (_, emulator) in self.emulators {
            emulator.shutdown();
        }
    }
}

/// Starts fresh servers, runs the suite's test programs against them and returns the servers
/// for assertions on what they received. `env` is added to the programs' environment.
fn run_against_servers(suite: &Suite, env: &[(&str, &str)]) -> Emulators {
    let no_content = emulator(PatchReturns::NoContent);
    let ok = emulator(PatchReturns::Ok);
    let faults = FaultEmulators::start(suite.variant());
    let auth = AuthEmulators::start();
    let network = NetworkServers::start();
    let bulk = BulkEmulators::start();
    let outbox = OutboxEmulators::start(suite);
    let identity = IdentityEmulators::start(suite);
    let interrupt = InterruptEmulators::start();
    let metrics = MetricsEmulators::start();
    let mut all: Vec<(String, String)> = [
        ("IUS_TEST_BASE_URL", no_content.base_url()),
        ("IUS_TEST_BASE_URL_200", ok.base_url()),
        ("IUS_TEST_TOKEN", TOKEN.to_owned()),
        ("IUS_TEST_VERSION", env!("CARGO_PKG_VERSION").to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    all.extend(faults.env());
    all.extend(auth.env());
    all.extend(network.env());
    all.extend(bulk.env());
    all.extend(outbox.env());
    all.extend(identity.env());
    all.extend(interrupt.env());
    all.extend(metrics.env());
    all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    suite.run(&all);
    Emulators {
        no_content,
        ok,
        faults,
        auth,
        network,
        bulk,
        outbox,
        identity,
        interrupt,
        metrics,
    }
}

/// The servers of one run of the test programs.
struct Emulators {
    /// PATCH answers 204: the C and C++ API tests.
    no_content: Emulator,
    /// PATCH answers 200.
    ok: Emulator,
    /// One per fault scenario and build kind: `test_c_faults`.
    faults: FaultEmulators,
    /// One per build kind: `test_c_auth`.
    auth: AuthEmulators,
    /// One set per build kind: `test_c_network`.
    network: NetworkServers,
    /// One set per build kind: `test_c_bulk`.
    bulk: BulkEmulators,
    /// One per build kind: `test_c_outbox`.
    outbox: OutboxEmulators,
    /// One per build kind: `test_c_identity`.
    identity: IdentityEmulators,
    /// One per build kind: `test_c_interrupt` and `test_cpp_interrupt`.
    interrupt: InterruptEmulators,
    /// One per build kind: `test_c_metrics`.
    metrics: MetricsEmulators,
}

impl Emulators {
    /// What every C program should have left on the servers, whichever way it ran.
    fn assert_state(&self) {
        assert_emulator_state(&self.no_content);
        assert_cpp_state(&self.no_content, &self.ok);
        self.faults.assert_state();
        self.auth.assert_state();
        self.network.assert_state();
        self.bulk.assert_state();
        self.outbox.assert_state();
        self.identity.assert_state();
        self.interrupt.assert_state();
        self.metrics.assert_state();
    }

    fn shutdown(self) {
        self.no_content.shutdown();
        self.ok.shutdown();
        self.faults.shutdown();
        self.auth.shutdown();
        self.network.shutdown();
        self.bulk.shutdown();
        self.outbox.shutdown();
        self.identity.shutdown();
        self.interrupt.shutdown();
        self.metrics.shutdown();
    }
}

fn count(emulator: &Emulator, method: &str, path: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path() == path)
        .count()
}

/// What every C test run must have left in the emulator, whichever way it was built.
fn assert_emulator_state(no_content: &Emulator) {
    for prefix in PREFIXES {
        for i in 0..THREADS {
            let id = format!("{prefix}-t{i}");
            let stored: Value = no_content.user_status(DIRECT, &id).expect("seeded status");
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

/// What `test_cpp_api` wrote, per build kind: through the move-assigned client to the 200
/// emulator, its `update_at` and the two updates around the log callback (3 PATCHes of 77); and
/// through the token-source client moved into another, 21 then 22 to `s1` once each.
fn assert_cpp_state(no_content: &Emulator, ok: &Emulator) {
    for id in CPP_STATUSES {
        let path = format!("/beta{DIRECT}/{id}");
        assert_eq!(
            patch_bodies(ok, &path),
            [r#"{"devicesCount":77}"#; 3],
            "{path}"
        );
        assert_eq!(ok.user_status(DIRECT, id).unwrap()["devicesCount"], 77);
        assert_eq!(count(no_content, "PATCH", &path), 0, "{path}");
    }
    let to_s1 = patch_bodies(no_content, &format!("/beta{DIRECT}/s1"));
    for body in [r#"{"devicesCount":21}"#, r#"{"devicesCount":22}"#] {
        let sent = to_s1.iter().filter(|b| *b == body).count();
        assert_eq!(sent, KINDS.len(), "{body} once per build kind");
    }
}

/// The bodies of the PATCHes `emulator` received at `path`, in order.
fn patch_bodies(emulator: &Emulator, path: &str) -> Vec<String> {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path() == path)
        .map(|r| r.body_str())
        .collect()
}

#[test]
fn c_and_cpp_tests_pass_against_the_emulator() {
    let suite = Suite::compile(Variant::Plain);
    let servers = run_against_servers(&suite, &[]);
    servers.assert_state();
    assert_user_agent(&servers);
    servers.shutdown();
    run_the_c_example_with_identity(&suite);
    stop_the_c_service_example(&suite);
}

/// `examples/service_stop.c` stops while each of its workers waits on an update Graph answers
/// only after 30 s: the interrupt ends them, the joins return and the client is freed at once.
fn stop_the_c_service_example(suite: &Suite) {
    let example = suite.built("examples/service_stop.c");
    let emu = Emulator::start(Config {
        token: Some(TOKEN.to_owned()),
        seed: direct_statuses(["stop"]),
        ..Config::default()
    })
    .expect("start the example's emulator");
    emu.add_fault(FaultRule::always(Fault::Latency(Duration::from_secs(30))).method("PATCH"));
    let started = std::time::Instant::now();
    let out = Command::new(&example)
        .args([&emu.base_url(), TOKEN, "c1", "stop", "3", "1"])
        .output()
        .expect("run the service example");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("stopped 3 workers"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(5),
        "the service took {took:?} to stop"
    );
    assert_eq!(
        emu.requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        3,
        "each worker's one update was in flight"
    );
    emu.shutdown();
}

/// The same programs cross-built for Windows with mingw-w64, linked to the DLL (through its
/// import library) and to the static library, run under Wine against this process's
/// emulators; the outbox files go to a `C:\` folder.
#[test]
#[ignore = "run by .ci/windows, which cross-builds the Windows libraries (needs mingw-w64 and Wine)"]
fn c_and_cpp_tests_pass_under_wine() {
    let suite = Suite::compile(Variant::Wine);
    let servers = run_against_servers(&suite, &[]);
    servers.assert_state();
    assert_user_agent(&servers);
    servers.shutdown();
}

/// The C tests' `userAgent` reached the 200 emulator's User-Agent header.
fn assert_user_agent(servers: &Emulators) {
    assert!(
        servers.ok.requests().iter().any(|r| r
            .header("User-Agent")
            .is_some_and(|ua| ua.ends_with(" c-tests/1.0"))),
        "userAgent reached the User-Agent header"
    );
}

/// The C example's `--auth managed-identity` and `--auth workload-identity`, run as a user would,
/// with only the platform's variables in its environment.
fn run_the_c_example_with_identity(suite: &Suite) {
    let example = suite.built("examples/update_user_status.c");
    let dir = std::env::temp_dir().join(format!("ius-c-example-{}", std::process::id()));
    let emu = Emulator::start(Config {
        managed_identity: Some(ManagedIdentity {
            arc_tokens_folder: dir.join("arc"),
            ..ManagedIdentity::default()
        }),
        federated_credentials: vec![FederatedCredential {
            tenant: AUTH_TENANT.to_owned(),
            client_id: WORKLOAD_APP.to_owned(),
            issuer: WORKLOAD_ISSUER.to_owned(),
            subject: WORKLOAD_SUBJECT.to_owned(),
        }],
        seed: direct_statuses(["ex"]),
        ..Config::default()
    })
    .expect("start the example's emulator");
    let token_file = dir.join("federated-token");
    let federated =
        emu.mint_federated_token(WORKLOAD_ISSUER, WORKLOAD_SUBJECT, Duration::from_secs(600));
    std::fs::write(&token_file, &federated).unwrap();
    let run = |auth: &str, env: &[(&str, String)], count: u32| {
        Command::new(&example)
            .args(["--auth", auth, &emu.base_url(), "c1", "ex"])
            .arg(format!(r#"{{"devicesCount":{count}}}"#))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run the C example")
    };
    let imds = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url())];
    let workload = [
        ("AZURE_TENANT_ID", AUTH_TENANT.to_owned()),
        ("AZURE_CLIENT_ID", WORKLOAD_APP.to_owned()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", emu.base_url()),
    ];
    for (auth, env, count) in [
        ("managed-identity", &imds[..], 4),
        ("workload-identity", &workload[..], 5),
    ] {
        let out = run(auth, env, count);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("updated (Graph answered 204 No Content)"),
            "--auth {auth}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            emu.user_status(DIRECT, "ex").unwrap()["devicesCount"],
            count
        );
    }
    let sent = emu.token_requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].path(), "/metadata/identity/oauth2/token");
    assert_eq!(
        form(&sent[1].body_str()).remove("client_assertion"),
        Some(federated)
    );
    // Nothing in the environment for workload identity: the configuration error, exit 1.
    let out = run("workload-identity", &[], 6);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AZURE_TENANT_ID"));
    emu.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

/// The same programs compiled by clang and clang++ (docs/testing.md says clang works as gcc does):
/// needs clang, else one line says it was not checked (a failure with `IUS_REQUIRE_TOOLS=1`).
#[test]
fn c_and_cpp_tests_pass_built_with_clang() {
    if !c_build::optional_tools(
        &["clang", "clang++"],
        "clang",
        "the C tests built with clang",
    ) {
        return;
    }
    let suite = Suite::compile(Variant::Clang);
    let servers = run_against_servers(&suite, &[]);
    servers.assert_state();
    servers.shutdown();
}

#[test]
fn c_tests_are_clean_under_valgrind() {
    let suite = Suite::compile(Variant::Valgrind);
    let servers = run_against_servers(&suite, &[]);
    servers.assert_state();
    servers.shutdown();
}

#[test]
fn c_tests_are_clean_under_address_and_undefined_sanitizers() {
    // Leaks are errors; UBSan stops at the first finding (also compiled with -fno-sanitize-recover).
    let suite = Suite::compile(Variant::Sanitize);
    let servers = run_against_servers(
        &suite,
        &[
            (
                "ASAN_OPTIONS",
                "detect_leaks=1:abort_on_error=0:strict_string_checks=1",
            ),
            ("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"),
        ],
    );
    servers.assert_state();
    servers.shutdown();
}

/// `cmake --install` lays out the versioned library and its links, and programs built with
/// `find_package` and with pkg-config against that copy link and run (shared and static).
#[test]
fn cmake_package_installs_and_its_consumers_build() {
    let Some(stage) = c_build::cmake_package() else {
        return;
    };
    assert_symlink_chain(&stage.join("lib"));
    for header in ["intune_user_status.h", "intune_user_status.hpp"] {
        let installed = std::fs::read(stage.join("include").join(header)).expect(header);
        let source = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("include")
                .join(header),
        );
        assert_eq!(
            Some(installed),
            source.ok(),
            "{header} installed as checked in"
        );
    }
    assert!(stage.join("lib/libintune_user_status.a").is_file());
    let pc = std::fs::read_to_string(stage.join("lib/pkgconfig/intune_user_status.pc")).unwrap();
    assert!(
        pc.contains(concat!("Version: ", env!("CARGO_PKG_VERSION"))),
        "{pc}"
    );
}

/// The Windows layout of `cmake --install` (the DLL in `bin/`, its import library and the static
/// library side by side in `lib/`, the headers, pkg-config and CMake files), and consumers built
/// with mingw-w64 through `find_package` (`IMPORTED_IMPLIB`) and pkg-config, run under Wine.
#[test]
#[ignore = "run by .ci/windows, which cross-builds the Windows libraries (needs mingw-w64, Wine, cmake)"]
fn windows_cmake_package_installs_and_its_consumers_build() {
    let stage = c_build::wine::cmake_package();
    for file in [
        "bin/intune_user_status.dll",
        "lib/libintune_user_status.dll.a",
        "lib/libintune_user_status.a",
        "include/intune_user_status.h",
        "include/intune_user_status.hpp",
        "lib/cmake/IntuneUserStatus/IntuneUserStatusConfig.cmake",
    ] {
        assert!(stage.join(file).is_file(), "{file} installed");
    }
    assert!(!stage.join("lib/libintune_user_status.so").exists());
    let pc = std::fs::read_to_string(stage.join("lib/pkgconfig/intune_user_status.pc")).unwrap();
    assert!(
        pc.contains(concat!("Version: ", env!("CARGO_PKG_VERSION"))) && pc.contains("-lws2_32"),
        "{pc}"
    );
}

/// `libintune_user_status.so` -> `.so.<major>` -> `.so.<version>`, a regular file.
fn assert_symlink_chain(lib: &Path) {
    let full = concat!("libintune_user_status.so.", env!("CARGO_PKG_VERSION"));
    for (link, target) in [("libintune_user_status.so", SONAME), (SONAME, full)] {
        let found = std::fs::read_link(lib.join(link))
            .unwrap_or_else(|err| panic!("{link} is not a symlink: {err}"));
        assert_eq!(found, Path::new(target), "{link}");
    }
    let real = std::fs::symlink_metadata(lib.join(full)).expect(full);
    assert!(real.is_file(), "{full} is the library itself");
}

/// The shared object exports exactly the functions the header declares, nothing else.
#[test]
fn shared_object_exports_only_the_header_functions() {
    if !c_build::optional_tools(&["nm"], "binutils", "the exported symbols") {
        return;
    }
    let shared = c_build::build_library();
    let listing = c_build::run(
        "nm -D --defined-only",
        Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&shared),
    );
    let mut exported: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    exported.sort_unstable();
    assert_eq!(
        exported,
        header_functions(),
        "dynamic symbols of {}",
        shared.display()
    );
}

/// The DLL's export table names exactly the functions the header declares, nothing else.
#[test]
#[ignore = "run by .ci/windows, which cross-builds the Windows libraries (needs mingw-w64)"]
fn windows_dll_exports_only_the_header_functions() {
    let dll = c_build::wine::lib_dir().join(c_build::wine::DLL);
    let mut exported = c_build::wine::exported_names(&dll);
    exported.sort_unstable();
    assert_eq!(exported, header_functions(), "exports of {}", dll.display());
}

/// The functions `include/intune_user_status.h` declares, sorted.
fn header_functions() -> Vec<String> {
    let header = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("include/intune_user_status.h"),
    )
    .unwrap();
    // Every `ius_name(` in the header: a function (callback typedefs are `(*ius_name)(`).
    let mut declared: Vec<String> = header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '('))
        .filter_map(|word| word.split_once('(').map(|(name, _)| name))
        .filter(|name| name.starts_with("ius_"))
        .map(str::to_owned)
        .collect();
    declared.sort_unstable();
    declared.dedup();
    assert!(
        declared.len() >= 9,
        "functions found in the header: {declared:?}"
    );
    declared
}

/// The shared object names the ABI's major version as its SONAME.
#[test]
fn shared_object_has_the_abi_major_version_as_soname() {
    if !c_build::optional_tools(&["readelf"], "binutils", "the SONAME") {
        return;
    }
    let shared = c_build::build_library();
    let dynamic = c_build::run("readelf -d", Command::new("readelf").arg("-d").arg(&shared));
    let soname: Vec<&str> = dynamic.lines().filter(|l| l.contains("(SONAME)")).collect();
    assert_eq!(soname.len(), 1, "{dynamic}");
    assert!(soname[0].ends_with(&format!("[{SONAME}]")), "{}", soname[0]);
}
