//! Managed identity end to end against the emulator's IMDS, App Service and Azure Arc endpoints:
//! what goes over the wire for each identity, Arc's challenge and the key files it must refuse,
//! IMDS's retries and its absence, one token for many threads, refresh before expiry and after a
//! 401, configuration errors, no proxy, and logs and errors that never hold a secret.
//!
//! The environment is given to each credential (`environment`, a test seam: feature
//! `test-seams`), never set on the process: tests run in parallel threads.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Scratch, update, updates_from_eight_threads};
use intune_user_status::{
    Client, ClientBuilder, Credential, Error, ManagedIdentityCredential, RetryPolicy,
};
use ius_emulator::{
    Config, Emulator, Fault, FaultRule, ManagedIdentity, RecordedRequest, SeedEntry,
    UserAssignedIdentity,
};

const HEADER: &str = "test-only-identity-header-7d41";
const UAI_CLIENT: &str = "11111111-aaaa-0000-0000-000000000001";
const UAI_OBJECT: &str = "22222222-aaaa-0000-0000-000000000002";
const UAI_RESOURCE: &str = "/subscriptions/s1/resourceGroups/g1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/agent";
const DIRECT: &str = "/deviceManagement/deviceConfigurations/cfg-0/userStatuses";

/// An emulator serving the managed-identity endpoints (Arc's key files in `tokens`), with 8
/// seeded user statuses and tokens of `lifetime`.
fn emulator_with(tokens: &Path, lifetime: Duration) -> Emulator {
    Emulator::start(Config {
        managed_identity: Some(ManagedIdentity {
            system_assigned: true,
            user_assigned: vec![UserAssignedIdentity {
                client_id: UAI_CLIENT.into(),
                object_id: UAI_OBJECT.into(),
                resource_id: UAI_RESOURCE.into(),
            }],
            identity_header: HEADER.into(),
            arc_tokens_folder: tokens.to_owned(),
            arc_realm_folder: None,
        }),
        token_lifetime: lifetime,
        seed: common::eight_statuses(),
        ..Config::default()
    })
    .unwrap()
}

fn emulator(tokens: &Path) -> Emulator {
    emulator_with(tokens, Duration::from_secs(3599))
}

/// IMDS's wait after a 410 in these tests (the test seam; 10 s in a real build).
const GONE_WAIT_MS: u64 = 20;

/// IMDS at `url` (`AZURE_POD_IDENTITY_AUTHORITY_HOST`), waiting [`GONE_WAIT_MS`] after a 410.
fn imds_at(url: &str, credential: ManagedIdentityCredential) -> ManagedIdentityCredential {
    credential.environment([
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", url.to_owned()),
        ("IUS_TEST_IMDS_GONE_WAIT_MS", GONE_WAIT_MS.to_string()),
    ])
}

/// IMDS at the emulator.
fn imds(emu: &Emulator, credential: ManagedIdentityCredential) -> ManagedIdentityCredential {
    imds_at(&emu.base_url(), credential)
}

/// A loopback URL nobody listens on any more.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn app_service(emu: &Emulator, header: &str) -> ManagedIdentityCredential {
    ManagedIdentityCredential::system_assigned().environment([
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", emu.base_url())),
        ("IDENTITY_HEADER", header.to_owned()),
    ])
}

/// Azure Arc at the emulator, its tokens folder `tokens` (the test seam standing in for the
/// agent's own folder).
fn arc(emu: &Emulator, tokens: &Path) -> ManagedIdentityCredential {
    ManagedIdentityCredential::system_assigned().environment([
        (
            "IDENTITY_ENDPOINT",
            format!("{}/arc/metadata/identity/oauth2/token", emu.base_url()).into(),
        ),
        ("IMDS_ENDPOINT", emu.base_url().into()),
        ("IUS_TEST_ARC_TOKENS_FOLDER", tokens.as_os_str().to_owned()),
    ])
}

/// A client of the emulator's Graph; retries wait 10 ms, so the retry tests stay quick.
fn client_with(emu: &Emulator, credential: impl Into<Credential>) -> ClientBuilder {
    Client::builder()
        .base_url(emu.base_url())
        .credential(credential)
        .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(10)))
}

/// The query parameters of a recorded request, decoded.
fn query(request: &RecordedRequest) -> Vec<(String, String)> {
    let query = request.target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decoded = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .unwrap();
            (k.to_owned(), decoded.into_owned())
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn imds_is_asked_for_the_system_and_each_user_assigned_identity_by_its_own_name() {
    let scratch = Scratch::new("mi-imds");
    let emu = emulator(&scratch.0);
    let cases = [
        (ManagedIdentityCredential::system_assigned(), None),
        (
            ManagedIdentityCredential::user_assigned_client_id(UAI_CLIENT),
            Some(("client_id", UAI_CLIENT)),
        ),
        (
            ManagedIdentityCredential::user_assigned_object_id(UAI_OBJECT),
            Some(("object_id", UAI_OBJECT)),
        ),
        (
            ManagedIdentityCredential::user_assigned_resource_id(UAI_RESOURCE),
            Some(("msi_res_id", UAI_RESOURCE)),
        ),
    ];
    for (n, (credential, id)) in cases.into_iter().enumerate() {
        emu.clear_token_requests();
        let client = client_with(&emu, imds(&emu, credential)).build().unwrap();
        update(&client, n, 7).unwrap();
        let sent = emu.token_requests();
        assert_eq!(sent.len(), 1, "{id:?}");
        let request = &sent[0];
        assert_eq!(request.method, "GET");
        assert_eq!(request.path(), "/metadata/identity/oauth2/token");
        assert_eq!(request.header("Metadata"), Some("true"));
        assert_eq!(request.header("X-IDENTITY-HEADER"), None);
        let mut expected = vec![
            ("api-version", "2018-02-01"),
            ("resource", "https://graph.microsoft.com"),
        ];
        expected.extend(id);
        assert_eq!(query(request), pairs(&expected), "{id:?}");
        let stored = emu
            .user_status(&DIRECT.replace("cfg-0", &format!("cfg-{n}")), "u1")
            .unwrap();
        assert_eq!(stored["devicesCount"], 7);
    }
}

#[test]
fn a_scope_asks_for_its_resource() {
    let scratch = Scratch::new("mi-scope");
    let emu = Emulator::start(Config {
        managed_identity: Some(ManagedIdentity {
            arc_tokens_folder: scratch.0.clone(),
            ..ManagedIdentity::default()
        }),
        expected_scope: "https://graph.microsoft.us/.default".into(),
        seed: vec![SeedEntry {
            collection: DIRECT.into(),
            entity: serde_json::json!({"id": "u1"}),
        }],
        ..Config::default()
    })
    .unwrap();
    let credential = Credential::from(imds(&emu, ManagedIdentityCredential::system_assigned()))
        .scope("https://graph.microsoft.us/.default");
    update(&client_with(&emu, credential).build().unwrap(), 0, 1).unwrap();
    let sent = emu.token_requests();
    assert!(
        query(&sent[0]).contains(&("resource".into(), "https://graph.microsoft.us".into())),
        "{}",
        sent[0].target
    );
}

#[test]
fn app_service_is_asked_with_its_header_and_its_names_for_the_ids() {
    let scratch = Scratch::new("mi-app");
    let emu = emulator(&scratch.0);
    let client = client_with(&emu, app_service(&emu, HEADER))
        .build()
        .unwrap();
    update(&client, 0, 3).unwrap();
    let by_object = ManagedIdentityCredential::user_assigned_object_id(UAI_OBJECT).environment([
        ("IDENTITY_ENDPOINT", format!("{}/msi/token", emu.base_url())),
        ("IDENTITY_HEADER", HEADER.to_owned()),
    ]);
    update(&client_with(&emu, by_object).build().unwrap(), 1, 3).unwrap();
    let sent = emu.token_requests();
    assert_eq!(sent.len(), 2);
    for request in &sent {
        assert_eq!(request.path(), "/msi/token");
        assert_eq!(request.header("X-IDENTITY-HEADER"), Some(HEADER));
        assert_eq!(request.header("Metadata"), None);
    }
    assert_eq!(
        query(&sent[1]),
        pairs(&[
            ("api-version", "2019-08-01"),
            ("resource", "https://graph.microsoft.com"),
            ("principal_id", UAI_OBJECT),
        ])
    );
    // The wrong header: the endpoint refuses, Graph sees nothing, the header is not echoed.
    emu.clear_requests();
    let wrong = client_with(&emu, app_service(&emu, "wrong-header-value"))
        .build()
        .unwrap();
    let err = update(&wrong, 0, 4).unwrap_err();
    let auth = err.auth().expect("an Auth error");
    assert_eq!(auth.http_status, Some(400));
    assert!(!auth.transient);
    assert!(err.to_string().contains("App Service"), "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-header-value"));
    assert!(emu.requests().is_empty());
}

#[test]
fn azure_arc_answers_its_challenge_with_the_key_file_it_names() {
    let scratch = Scratch::new("mi-arc");
    let emu = emulator(&scratch.0);
    let client = client_with(&emu, arc(&emu, &scratch.0)).build().unwrap();
    update(&client, 0, 5).unwrap();
    let sent = emu.token_requests();
    assert_eq!(sent.len(), 2, "the challenge, then the answer");
    for request in &sent {
        assert_eq!(request.path(), "/arc/metadata/identity/oauth2/token");
        assert_eq!(request.header("Metadata"), Some("true"));
        assert_eq!(
            query(request),
            pairs(&[
                ("api-version", "2019-11-01"),
                ("resource", "https://graph.microsoft.com"),
            ])
        );
    }
    assert_eq!(sent[0].header("Authorization"), None);
    let basic = sent[1].header("Authorization").expect("the key");
    assert!(basic.starts_with("Basic arc-key-"), "{basic}");
    assert_eq!(
        emu.user_status(DIRECT, "u1").unwrap()["devicesCount"],
        5,
        "the token worked on Graph"
    );
}

/// A FIFO: opening it to read blocks until a writer comes, so a client that read it would hang.
#[cfg(unix)]
fn fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

#[test]
fn an_arc_challenge_naming_a_file_outside_the_tokens_folder_is_refused_without_reading_it() {
    let scratch = Scratch::new("mi-arc-outside");
    let tokens = scratch.0.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let emu = std::sync::Arc::new(emulator(&tokens));
    let outside = scratch.0.join("elsewhere.key");
    // On Unix a FIFO, which a client that opened it to read would wait on for good.
    #[cfg(unix)]
    fifo(&outside);
    #[cfg(windows)]
    std::fs::write(&outside, "not-for-the-endpoint").unwrap();
    let inside_link = tokens.join("link.key");
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&outside, &inside_link);
    #[cfg(windows)]
    let linked = std::os::windows::fs::symlink_file(&outside, &inside_link);
    let roundabout = format!("{}/../elsewhere.key", tokens.display());
    let not_key = tokens.join("notes.txt");
    std::fs::write(&not_key, "k").unwrap();
    let big = tokens.join("big.key");
    std::fs::write(&big, "k".repeat(4097)).unwrap();
    // Each realm with the rules that may refuse it.
    let mut cases: Vec<(String, &[&str])> = vec![
        (outside.display().to_string(), &["not a file inside"]),
        (roundabout, &["not a file inside"]),
        (not_key.display().to_string(), &["does not end in .key"]),
        (big.display().to_string(), &["larger than 4096 bytes"]),
    ];
    // Resolved, the link leads outside. Wine keeps a link as the host's, with the Windows path
    // as its target, which then resolves to nothing: refused all the same, before any read.
    let link_rules: &[&str] = if cfg!(windows) {
        &["not a file inside", "cannot be resolved"]
    } else {
        &["not a file inside"]
    };
    match linked {
        Ok(()) => cases.push((inside_link.display().to_string(), link_rules)),
        // Windows lets only privileged accounts (or developer mode) make one; Wine and Unix do.
        Err(err) if cfg!(windows) => println!("not checked: a link in the folder ({err})"),
        Err(err) => panic!("a symbolic link: {err}"),
    }
    for (realm, rules) in cases {
        emu.clear_token_requests();
        emu.set_arc_challenge_realm(Some(&realm));
        let client = client_with(&emu, arc(&emu, &tokens)).build().unwrap();
        // On a thread: a client that opened the FIFO would block there for good.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(update(&client, 0, 1).map_err(|e| e.to_string()));
        });
        let err = outcome
            .recv_timeout(Duration::from_secs(10))
            .expect("refused at once, the file never opened")
            .unwrap_err();
        assert!(
            rules.iter().any(|rule| err.contains(rule))
                && err.contains("Azure Arc")
                && !err.contains("not-for-the-endpoint"),
            "{realm}: {err}"
        );
        let sent = emu.token_requests();
        assert_eq!(sent.len(), 1, "{realm}: no answer to the challenge");
        assert!(emu.requests().is_empty(), "Graph saw nothing");
    }
}

/// A system-assigned IMDS client that retries once after 10 ms.
fn one_retry_client(emu: &Emulator) -> Client {
    client_with(emu, imds(emu, ManagedIdentityCredential::system_assigned()))
        .retry_policy(
            RetryPolicy::default()
                .max_retries(1)
                .base_delay(Duration::from_millis(10)),
        )
        .build()
        .unwrap()
}

#[test]
fn imds_410_is_waited_out_and_5xx_retried_under_the_clients_policy() {
    let scratch = Scratch::new("mi-imds-retry");
    let emu = emulator(&scratch.0);
    let status = |status| Fault::Status {
        status,
        retry_after: None,
    };
    let on_imds = |n, status_code| {
        FaultRule::next(n, status(status_code)).path_contains("/metadata/identity/")
    };
    // 410 three times: more than this client's one retry, as 410 has a budget of its own.
    emu.add_fault(on_imds(3, 410));
    let one_retry = one_retry_client(&emu);
    update(&one_retry, 0, 1).unwrap();
    assert_eq!(emu.token_requests().len(), 4, "three 410s, then the token");

    emu.clear_token_requests();
    emu.add_fault(on_imds(2, 500));
    let client = client_with(
        &emu,
        imds(&emu, ManagedIdentityCredential::system_assigned()),
    )
    .build()
    .unwrap();
    update(&client, 1, 1).unwrap();
    assert_eq!(emu.token_requests().len(), 3, "500 twice, then the token");

    // More 500s than retries: the endpoint's status, marked transient.
    emu.clear_token_requests();
    emu.add_fault(on_imds(10, 500));
    let fresh = one_retry_client(&emu);
    let err = update(&fresh, 2, 1).unwrap_err();
    let auth = err.auth().expect("an Auth error");
    assert_eq!((auth.http_status, auth.transient), (Some(500), true));
    assert_eq!(emu.token_requests().len(), 2, "the first try and one retry");
    emu.clear_faults();
    // A 400 (an identity not assigned here) is not retried.
    emu.clear_token_requests();
    let nobody = client_with(
        &emu,
        imds(
            &emu,
            ManagedIdentityCredential::user_assigned_client_id("nobody"),
        ),
    )
    .build()
    .unwrap();
    let err = update(&nobody, 3, 1).unwrap_err();
    let auth = err.auth().expect("an Auth error");
    assert_eq!(
        auth.error_description.as_deref(),
        Some("Identity not found")
    );
    assert_eq!(emu.token_requests().len(), 1);
}

#[test]
fn imds_410_is_retried_at_its_own_interval_seven_times() {
    let scratch = Scratch::new("mi-imds-gone");
    let emu = emulator(&scratch.0);
    let gone = |rule: FaultRule| rule.path_contains("/metadata/identity/").method("GET");
    let status = Fault::Status {
        status: 410,
        retry_after: None,
    };
    emu.add_fault(gone(FaultRule::next(3, status.clone())));
    let client = client_with(
        &emu,
        imds(&emu, ManagedIdentityCredential::system_assigned()),
    )
    .build()
    .unwrap();
    let started = Instant::now();
    update(&client, 0, 1).unwrap();
    assert_eq!(emu.token_requests().len(), 4, "three 410s, then the token");
    assert!(started.elapsed() >= Duration::from_millis(3 * GONE_WAIT_MS));

    // IMDS still being updated after seven retries: the error says so, naming the status once.
    emu.clear_token_requests();
    emu.add_fault(gone(FaultRule::always(status)));
    let fresh = client_with(
        &emu,
        imds(&emu, ManagedIdentityCredential::system_assigned()),
    )
    .build()
    .unwrap();
    let err = update(&fresh, 1, 1).unwrap_err();
    assert_eq!(
        emu.token_requests().len(),
        8,
        "the first try and seven retries"
    );
    let auth = err.auth().expect("an Auth error");
    assert_eq!((auth.http_status, auth.transient), (Some(410), true));
    let shown = err.to_string();
    assert_eq!(shown.matches("410").count(), 1, "{shown}");
    assert!(shown.contains("IMDS is being updated"), "{shown}");
}

#[test]
fn an_interrupt_ends_an_imds_retry_wait_within_half_a_second() {
    let scratch = Scratch::new("mi-imds-interrupt");
    let emu = emulator(&scratch.0);
    let on_imds = |status, retry_after: Option<&str>| {
        FaultRule::always(Fault::Status {
            status,
            retry_after: retry_after.map(str::to_owned),
        })
        .path_contains("/metadata/identity/")
    };
    // IMDS's own 10 s wait after a 410 (no test seam here), and a 500 asking for 30 s.
    for (status, retry_after) in [(410, None), (500, Some("30"))] {
        emu.clear_faults();
        emu.clear_token_requests();
        emu.add_fault(on_imds(status, retry_after));
        let credential = ManagedIdentityCredential::system_assigned()
            .environment([("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url())]);
        let client = Client::builder()
            .base_url(emu.base_url())
            .credential(credential)
            .build()
            .unwrap();
        let worker = {
            let client = client.clone();
            std::thread::spawn(move || update(&client, 0, 1))
        };
        let give_up = Instant::now() + Duration::from_secs(10);
        while emu.token_requests().is_empty() {
            assert!(Instant::now() < give_up, "{status}: IMDS was never asked");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Inside the retry wait by now.
        std::thread::sleep(Duration::from_millis(200));
        let interrupted = Instant::now();
        client.interrupt();
        let result = worker.join().unwrap();
        let took = interrupted.elapsed();
        assert!(
            matches!(result, Err(Error::Cancelled { .. })),
            "{status}: {result:?}"
        );
        assert!(took < Duration::from_millis(500), "{status}: took {took:?}");
        assert_eq!(
            emu.token_requests().len(),
            1,
            "{status}: not asked again after the interrupt"
        );
        // A call started afterwards is not affected.
        emu.clear_faults();
        update(&client, 0, 2).unwrap();
        assert_eq!(emu.token_requests().len(), 2, "{status}");
    }
}

/// Answers one IMDS token request on `listener` with what the emulator's IMDS at `imds` answers
/// (a token its Graph takes), then closes the connection.
fn relay_one_imds_request(listener: std::net::TcpListener, imds: std::net::SocketAddr) {
    use std::io::{BufRead, BufReader, Read, Write};
    let (client, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() <= 2 {
            break;
        }
        if !line.to_ascii_lowercase().starts_with("connection:") {
            head.push_str(&line);
        }
    }
    let mut upstream = std::net::TcpStream::connect(imds).unwrap();
    write!(upstream, "{head}Connection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).unwrap();
    (&client).write_all(&answer).unwrap();
}

#[test]
fn imds_that_answered_once_is_retried_after_a_refused_connection() {
    let scratch = Scratch::new("mi-imds-back");
    let emu = emulator(&scratch.0);
    // IMDS is a listener of the test's, which it can close, relaying to the emulator's.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let imds_addr = emu.addr();
    let first = std::thread::spawn(move || relay_one_imds_request(listener, imds_addr));
    let client = client_with(
        &emu,
        imds_at(
            &format!("http://{addr}"),
            ManagedIdentityCredential::system_assigned(),
        ),
    )
    .retry_policy(RetryPolicy::default().base_delay(Duration::from_millis(1500)))
    .build()
    .unwrap();
    update(&client, 0, 1).unwrap();
    first.join().unwrap();
    // IMDS is gone for a moment (its listener closed: the next connection is refused), and back
    // well before the client's retry; Graph refuses the token, so a new one is fetched.
    let back = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        relay_one_imds_request(std::net::TcpListener::bind(addr).unwrap(), imds_addr);
    });
    emu.expire_issued_tokens();
    let started = Instant::now();
    update(&client, 0, 2).unwrap();
    let took = started.elapsed();
    back.join().unwrap();
    assert_eq!(emu.token_requests().len(), 2, "one token, then one more");
    // The refused connection was retried after the client's backoff (1.5 s, jitter +-20%).
    assert!(took >= Duration::from_millis(1100), "took {took:?}");
}

/// Updates once with `client`, which must fail with "managed identity is unavailable" naming
/// `source`, not marked transient; returns how long that took.
fn fails_as_unavailable(client: &Client, source: &str) -> Duration {
    let started = Instant::now();
    let err = update(client, 0, 1).unwrap_err();
    let took = started.elapsed();
    let auth = err.auth().expect("an Auth error");
    assert!(
        auth.message.contains("managed identity is unavailable")
            && auth.message.contains(source)
            && !auth.transient,
        "{err}"
    );
    took
}

#[test]
fn a_refused_app_service_or_arc_endpoint_is_unavailable_at_once() {
    let closed = closed_port();
    let scratch = Scratch::new("mi-refused");
    let app = ManagedIdentityCredential::system_assigned().environment([
        ("IDENTITY_ENDPOINT", format!("{closed}/msi/token")),
        ("IDENTITY_HEADER", HEADER.to_owned()),
    ]);
    let arc = ManagedIdentityCredential::system_assigned().environment([
        (
            "IDENTITY_ENDPOINT",
            format!("{closed}/arc/metadata/identity/oauth2/token").into(),
        ),
        ("IMDS_ENDPOINT", closed.clone().into()),
        (
            "IUS_TEST_ARC_TOKENS_FOLDER",
            scratch.0.clone().into_os_string(),
        ),
    ]);
    for (credential, name) in [(app, "App Service"), (arc, "Azure Arc")] {
        // The default policy, which would wait 3 s and more before each retry.
        let client = Client::builder()
            .base_url(&closed)
            .credential(credential)
            .build()
            .unwrap();
        let took = fails_as_unavailable(&client, name);
        assert!(took < Duration::from_secs(1), "{name} took {took:?}");
    }
}

/// Marked, not left out, where it cannot run: the count of such tests is printed under Wine.
#[cfg(not(unix))]
#[test]
#[ignore = "needs a connection attempt that is never answered: Linux drops one past a full listen backlog (listen(fd, 0)), Windows refuses it (WSAECONNREFUSED), and loopback has no other address that stays silent"]
fn no_connection_within_a_second_means_no_imds() {}

#[cfg(unix)]
#[test]
fn no_connection_within_a_second_means_no_imds() {
    let Some((url, _listener, _queued)) = common::unanswered_listener() else {
        // Linux drops connection requests past a full backlog; another kernel may answer them.
        if cfg!(target_os = "linux") {
            panic!("a full backlog was answered");
        }
        println!("this kernel answered every connection: no unanswered listener to test with");
        return;
    };
    let client = Client::builder()
        .base_url(&url)
        .credential(imds_at(&url, ManagedIdentityCredential::system_assigned()))
        .connect_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let took = fails_as_unavailable(&client, "IMDS");
    // IMDS's own 1 s, not the client's 30 s connect timeout, and no retry.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
}

#[test]
fn no_imds_fails_at_once_as_unavailable() {
    let closed = closed_port();
    let client = Client::builder()
        .base_url(&closed)
        .credential(imds_at(
            &closed,
            ManagedIdentityCredential::system_assigned(),
        ))
        .build()
        .unwrap();
    let took = fails_as_unavailable(&client, "IMDS");
    // The default policy would have waited 3 s and more before a retry.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn one_token_serves_eight_threads_and_is_refreshed_once_before_it_expires() {
    let scratch = Scratch::new("mi-threads");
    // A 2 s token is refreshed at half its life.
    let emu = emulator_with(&scratch.0, Duration::from_secs(2));
    let client = client_with(
        &emu,
        imds(&emu, ManagedIdentityCredential::system_assigned()),
    )
    .build()
    .unwrap();
    updates_from_eight_threads(&client, 6);
    assert_eq!(emu.token_requests().len(), 1, "one token for all threads");
    std::thread::sleep(Duration::from_millis(1100));
    updates_from_eight_threads(&client, 6);
    assert_eq!(emu.token_requests().len(), 2, "exactly one refresh");
    let tokens: std::collections::HashSet<_> = emu
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(tokens.len(), 2, "the first token, then the refreshed one");
}

#[test]
fn a_401_fetches_a_new_token_once_and_sends_again() {
    let scratch = Scratch::new("mi-401");
    let emu = emulator(&scratch.0);
    for credential in [
        imds(&emu, ManagedIdentityCredential::system_assigned()),
        app_service(&emu, HEADER),
        arc(&emu, &scratch.0),
    ] {
        emu.clear_token_requests();
        let client = client_with(&emu, credential).build().unwrap();
        update(&client, 0, 1).unwrap();
        let first = emu.token_requests().len();
        emu.expire_issued_tokens();
        emu.clear_requests();
        update(&client, 0, 2).unwrap();
        assert_eq!(emu.token_requests().len(), 2 * first, "one more token");
        let requests = emu.requests();
        assert_eq!(requests.len(), 2, "the refused request and one more");
        assert_ne!(
            requests[0].header("authorization"),
            requests[1].header("authorization")
        );
    }
}

#[test]
fn managed_identity_requests_never_go_through_the_proxy() {
    let scratch = Scratch::new("mi-proxy");
    let emu = emulator(&scratch.0);
    let proxy = common::TunnelProxy::start();
    for credential in [
        imds(&emu, ManagedIdentityCredential::system_assigned()),
        app_service(&emu, HEADER),
        arc(&emu, &scratch.0),
    ] {
        let client = client_with(&emu, credential)
            .proxy(&proxy.url)
            .build()
            .unwrap();
        update(&client, 0, 1).unwrap();
    }
    assert_eq!(emu.token_requests().len(), 4);
    assert_eq!(
        proxy.seen(),
        Vec::<String>::new(),
        "nothing through the proxy"
    );
}

#[test]
fn configuration_errors_name_the_setting() {
    let scratch = Scratch::new("mi-config");
    let emu = emulator(&scratch.0);
    let arc_env = [
        (
            "IDENTITY_ENDPOINT",
            "http://127.0.0.1:40342/metadata/identity/oauth2/token",
        ),
        ("IMDS_ENDPOINT", "http://127.0.0.1:40342"),
    ];
    let cases: [(Credential, &str); 6] = [
        (
            ManagedIdentityCredential::user_assigned_client_id(UAI_CLIENT)
                .environment(arc_env)
                .into(),
            "clientId",
        ),
        (
            ManagedIdentityCredential::user_assigned_object_id(" ").into(),
            "objectId",
        ),
        (
            Credential::from(ManagedIdentityCredential::system_assigned())
                .authority_host("https://login.microsoftonline.com"),
            "authorityHost",
        ),
        (
            Credential::from(ManagedIdentityCredential::system_assigned()).scope(""),
            "scope",
        ),
        (
            ManagedIdentityCredential::system_assigned()
                .environment([
                    (
                        "IDENTITY_ENDPOINT",
                        "http://identity.example:8081/msi/token",
                    ),
                    ("IDENTITY_HEADER", HEADER),
                ])
                .into(),
            "IDENTITY_ENDPOINT",
        ),
        (
            ManagedIdentityCredential::system_assigned()
                .environment([("AZURE_POD_IDENTITY_AUTHORITY_HOST", "ftp://127.0.0.1")])
                .into(),
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        ),
    ];
    for (credential, field) in cases {
        match client_with(&emu, credential).build() {
            Err(Error::Config { field: got, reason }) => {
                assert_eq!(got, field, "{reason}");
                assert!(!reason.contains(HEADER), "{reason}");
            }
            other => panic!("{field}: {:?}", other.map(|_| ())),
        }
    }
    assert!(emu.token_requests().is_empty(), "nothing is asked at build");
}

#[test]
fn logs_errors_and_debug_never_hold_the_identity_header_the_arc_key_or_a_token() {
    let captured = common::capture_logs();
    let scratch = Scratch::new("mi-secrecy");
    let emu = emulator(&scratch.0);
    let mut shown = Vec::new();
    for credential in [
        app_service(&emu, HEADER),
        arc(&emu, &scratch.0),
        imds(
            &emu,
            ManagedIdentityCredential::user_assigned_client_id(UAI_CLIENT),
        ),
    ] {
        shown.push(format!("{credential:?}"));
        let client = client_with(&emu, credential).build().unwrap();
        update(&client, 0, 1).unwrap();
        emu.expire_issued_tokens();
        update(&client, 0, 2).unwrap(); // 401, a new token, again
        let err = update(&client, 99, 1).unwrap_err(); // 404
        shown.push(format!("{err} {err:?} {client:?}"));
    }
    // Failures: a wrong header, a key the agent refuses, and 500s from IMDS and Arc.
    let wrong = client_with(&emu, app_service(&emu, "wrong-header-value"))
        .build()
        .unwrap();
    let err = update(&wrong, 0, 1).unwrap_err();
    shown.push(format!("{err} {err:?}"));
    let stale = scratch.0.join("stale.key");
    std::fs::write(&stale, "stale-arc-key-value").unwrap();
    emu.set_arc_challenge_realm(Some(&stale.display().to_string()));
    let refused = client_with(&emu, arc(&emu, &scratch.0)).build().unwrap();
    let err = update(&refused, 0, 1).unwrap_err();
    assert!(err.to_string().contains("refused the key file"), "{err}");
    shown.push(format!("{err} {err:?}"));
    emu.set_arc_challenge_realm(None);
    emu.add_fault(
        FaultRule::always(Fault::Status {
            status: 500,
            retry_after: None,
        })
        .path_contains("/metadata/identity/"),
    );
    for credential in [
        arc(&emu, &scratch.0),
        imds(&emu, ManagedIdentityCredential::system_assigned()),
    ] {
        let client = client_with(&emu, credential)
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        let err = update(&client, 0, 1).unwrap_err();
        shown.push(format!("{err} {err:?}"));
    }

    let keys: Vec<String> = emu
        .token_requests()
        .iter()
        .filter_map(|r| {
            r.header("Authorization")?
                .strip_prefix("Basic ")
                .map(str::to_owned)
        })
        .collect();
    assert!(!keys.is_empty(), "Arc's keys were sent");
    let logs = captured.text();
    assert!(
        logs.contains("managed identity token request: source=Azure Arc"),
        "token requests are logged: {logs}"
    );
    let everything = format!("{logs}\n{}", shown.join("\n"));
    let mut secrets = vec![
        HEADER.to_owned(),
        "wrong-header-value".into(),
        "stale-arc-key-value".into(),
        "ius-emulator-at.".into(),
    ];
    secrets.extend(keys);
    for secret in secrets {
        assert!(
            !everything.contains(&secret),
            "{secret} leaked:\n{everything}"
        );
    }
}
