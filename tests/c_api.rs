//! The C and C++ tests: `bindings-c/`'s programs, compiled by `c_build` (no cmake), run against
//! in-process emulators plainly, under valgrind and with AddressSanitizer + UBSan; then what the
//! servers received is checked here. Also: the shared object's exported symbols and SONAME, and
//! the CMake package (`cmake --install` and its consumers), the one test that needs cmake.
//!
//! A C/C++ compiler and valgrind must be installed; a missing one is a failure with a message.
//! Without cmake (or nm, readelf) the test that needs it prints one line and passes, unless
//! `IUS_REQUIRE_TOOLS=1` (`.ci/run` sets it). To add a C test program, see `tests/c_build/mod.rs`.
#![cfg(unix)]

mod c_build;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use c_build::{KINDS, SONAME, Suite, Variant};
use common::{TunnelProxy, proxied_tls, proxied_url};
use ius_emulator::{App, Config, Emulator, Fault, FaultRule, PatchReturns, SeedEntry, TlsIdentity};
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

/// Every fault emulator of one ctest run: (kind, scenario, emulator).
struct FaultEmulators(Vec<(&'static str, &'static str, Emulator)>);

impl FaultEmulators {
    fn start() -> FaultEmulators {
        FaultEmulators(
            KINDS
                .iter()
                .flat_map(|&kind| FAULT_SCENARIOS.iter().map(move |&s| (kind, s)))
                .map(|(kind, scenario)| (kind, scenario, fault_emulator(scenario)))
                .collect(),
        )
    }

    /// `IUS_FAULT_<KIND>_<SCENARIO>` = base URL, for ctest's environment.
    fn env(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(kind, scenario, emu)| {
                (
                    format!("IUS_FAULT_{}_{scenario}", kind.to_uppercase()),
                    emu.base_url(),
                )
            })
            .collect()
    }

    /// What each emulator must have seen from `test_c_faults`.
    fn assert_state(&self) {
        for (kind, scenario, emu) in &self.0 {
            let what = format!("{kind} {scenario}");
            match *scenario {
                "RETRY_AFTER" => assert_one_call(emu, 3, true, &what),
                "BACKOFF_503" | "RESET" => assert_one_call(emu, 2, true, &what),
                "PERSISTENT_503" => assert_one_call(emu, 3, false, &what),
                "LONG_RETRY_AFTER" | "STATUS_500" | "NO_ANSWER" | "OVERSIZED" => {
                    assert_one_call(emu, 1, false, &what)
                }
                "THROTTLE_UNPACED" => {
                    let throttled = assert_threads_applied(emu, &what);
                    assert!(throttled > 0, "{what}: the write limit was met");
                }
                "THROTTLE_PACED" => {
                    let throttled = assert_threads_applied(emu, &what);
                    assert_eq!(throttled, 0, "{what}: pacing kept under the write limit");
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
    fn start() -> OutboxEmulators {
        // One folder per run: the plain, valgrind and sanitizer runs go at once.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ius-c-outbox-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the outbox folder");
        let ids = ["o1", "o2", "r1", "t0", "t1", "t2", "t3"];
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
        }
    }

    fn shutdown(self) {
        for (_, emu) in self.emulators {
            emu.shutdown();
        }
    }
}

/// `test_c_interrupt`'s and `test_cpp_interrupt`'s emulator per build kind,
/// `IUS_INTERRUPT_<KIND>_URL`: the user statuses they update under `c1`, and the waits they
/// interrupt (a PATCH never answered, a Retry-After of 30 s).
struct InterruptEmulators(Vec<(&'static str, Emulator)>);

impl InterruptEmulators {
    fn start() -> InterruptEmulators {
        let ids = [
            "stall", "wait", "paced", "cb", "budget", "b0", "b1", "b2", "bretry", "bwait",
            "cppstall",
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
        }
    }

    fn shutdown(self) {
        for (_, emulator) in self.0 {
            emulator.shutdown();
        }
    }
}

/// Starts fresh servers, runs the suite's test programs against them and returns the servers
/// for assertions on what they received. `env` is added to the programs' environment.
fn run_against_servers(suite: &Suite, env: &[(&str, &str)]) -> Emulators {
    let no_content = emulator(PatchReturns::NoContent);
    let ok = emulator(PatchReturns::Ok);
    let faults = FaultEmulators::start();
    let auth = AuthEmulators::start();
    let network = NetworkServers::start();
    let bulk = BulkEmulators::start();
    let outbox = OutboxEmulators::start();
    let interrupt = InterruptEmulators::start();
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
    all.extend(interrupt.env());
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
        interrupt,
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
    /// One per build kind: `test_c_interrupt` and `test_cpp_interrupt`.
    interrupt: InterruptEmulators,
}

impl Emulators {
    /// What every C program should have left on the servers, whichever way it ran.
    fn assert_state(&self) {
        assert_emulator_state(&self.no_content, &PREFIXES);
        self.faults.assert_state();
        self.auth.assert_state();
        self.network.assert_state();
        self.bulk.assert_state();
        self.outbox.assert_state();
        self.interrupt.assert_state();
    }

    fn shutdown(self) {
        self.no_content.shutdown();
        self.ok.shutdown();
        self.faults.shutdown();
        self.auth.shutdown();
        self.network.shutdown();
        self.bulk.shutdown();
        self.outbox.shutdown();
        self.interrupt.shutdown();
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
    let suite = Suite::compile(Variant::Plain);
    let servers = run_against_servers(&suite, &[]);
    servers.assert_state();
    // The 200 emulator holds what the C++ test wrote through a moved-into client.
    let stored = servers
        .ok
        .user_status(DIRECT, "cpp-shared-t0")
        .expect("seeded");
    assert_eq!(stored["devicesCount"], 77);
    assert!(
        servers.ok.requests().iter().any(|r| r
            .header("User-Agent")
            .is_some_and(|ua| ua.ends_with(" c-tests/1.0"))),
        "userAgent reached the User-Agent header"
    );
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
    let header = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("include/intune_user_status.h"),
    )
    .unwrap();
    // Every `ius_name(` in the header: a function (callback typedefs are `(*ius_name)(`).
    let mut declared: Vec<&str> = header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '('))
        .filter_map(|word| word.split_once('(').map(|(name, _)| name))
        .filter(|name| name.starts_with("ius_"))
        .collect();
    declared.sort_unstable();
    declared.dedup();
    assert!(
        declared.len() >= 9,
        "functions found in the header: {declared:?}"
    );
    assert_eq!(
        exported,
        declared,
        "dynamic symbols of {}",
        shared.display()
    );
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
