//! Workload identity federation end to end against the emulator (the token endpoint, and the
//! emulator as the platform's OIDC issuer): the federated token on the wire, read again for every
//! token request as the platform rotates it, the environment's values, files that cannot be used,
//! refresh, one token for many threads, and logs and errors that never hold the assertion.
//!
//! The environment is given to each credential (`environment`, a test seam: feature
//! `test-seams`), never set on the process: tests run in parallel threads.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Scratch, update, updates_from_eight_threads};
use intune_user_status::{Client, Credential, Error, WorkloadIdentityCredential};
use ius_emulator::{Config, Emulator, FederatedCredential, RecordedRequest};

const TENANT: &str = "contoso.onmicrosoft.com";
const APP: &str = "33333333-aaaa-0000-0000-0000000000f1";
const ISSUER: &str = "https://oidc.prod-aks.example/cluster-7/";
const SUBJECT: &str = "system:serviceaccount:agents:intune-agent";
const HOUR: Duration = Duration::from_secs(3600);

/// Where the platform writes its token in `scratch`.
fn token_file(scratch: &Scratch) -> PathBuf {
    scratch.0.join("azure-identity-token")
}

fn emulator_with(lifetime: Duration) -> Emulator {
    Emulator::start(Config {
        federated_credentials: vec![FederatedCredential {
            tenant: TENANT.into(),
            client_id: APP.into(),
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
        }],
        token_lifetime: lifetime,
        seed: common::eight_statuses(),
        ..Config::default()
    })
    .unwrap()
}

fn emulator() -> Emulator {
    emulator_with(Duration::from_secs(3599))
}

/// The platform writes a fresh token about the agent's service account.
fn rotate(emu: &Emulator, file: &Path) -> String {
    let token = emu.mint_federated_token(ISSUER, SUBJECT, HOUR);
    // Written with a line break, as a mounted file may be: the client trims it.
    std::fs::write(file, format!("{token}\n")).unwrap();
    token
}

fn credential(emu: &Emulator, file: &Path) -> WorkloadIdentityCredential {
    WorkloadIdentityCredential::new(TENANT, APP, file).authority_host(emu.base_url())
}

fn client(emu: &Emulator, credential: impl Into<Credential>) -> Client {
    Client::builder()
        .base_url(emu.base_url())
        .credential(credential)
        .build()
        .unwrap()
}

/// A token request's form, decoded.
fn form(request: &RecordedRequest) -> HashMap<String, String> {
    request
        .body_str()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let decoded = percent_encoding::percent_decode_str(&v)
                .decode_utf8()
                .unwrap();
            (k.to_owned(), decoded.into_owned())
        })
        .collect()
}

#[test]
fn the_federated_token_is_the_client_assertion_and_is_read_again_after_rotation() {
    let scratch = Scratch::new("wi-rotate");
    let emu = emulator();
    let first = rotate(&emu, &token_file(&scratch));
    let client = client(&emu, credential(&emu, &token_file(&scratch)));
    update(&client, 0, 1).unwrap();
    // The platform rotates the file; Graph refuses the cached token (401), a new one is fetched.
    let second = rotate(&emu, &token_file(&scratch));
    assert_ne!(first, second);
    emu.expire_issued_tokens();
    update(&client, 0, 2).unwrap();

    let sent = emu.token_requests();
    assert_eq!(sent.len(), 2);
    for (request, assertion) in sent.iter().zip([&first, &second]) {
        assert_eq!(request.path(), format!("/{TENANT}/oauth2/v2.0/token"));
        let form = form(request);
        assert_eq!(form["client_id"], APP);
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(
            &form["client_assertion"], assertion,
            "the file's contents, trimmed"
        );
        assert!(!form.contains_key("client_secret"));
    }
    assert_eq!(
        emu.user_status(
            "/deviceManagement/deviceConfigurations/cfg-0/userStatuses",
            "u1"
        )
        .unwrap()["devicesCount"],
        2
    );
}

/// A name that is not Unicode: bytes that are no UTF-8 on Unix, an unpaired surrogate (which
/// NTFS allows) on Windows.
fn not_unicode(name: &str) -> std::ffi::OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut bytes = name.as_bytes().to_vec();
        bytes.extend([0xff, 0xfe]);
        std::ffi::OsString::from_vec(bytes)
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStringExt;
        let mut wide: Vec<u16> = name.encode_utf16().collect();
        wide.push(0xD800);
        std::ffi::OsString::from_wide(&wide)
    }
}

/// A path that is not Unicode is read as the system names it, given or from the environment.
#[test]
#[cfg_attr(
    windows,
    ignore = "Wine cannot make a file whose name has an unpaired surrogate (it names files in UTF-8 on the host: 'File not found'); NTFS can, so on Windows run it with --ignored"
)]
fn a_token_file_whose_path_is_not_unicode_is_read_where_it_is() {
    let scratch = Scratch::new("wi-bytes");
    let emu = emulator();
    let file = scratch.0.join(not_unicode("token-"));
    assert!(file.to_str().is_none(), "{}", file.display());
    let assertion = rotate(&emu, &file);
    let given = credential(&emu, &file);
    let from_env = WorkloadIdentityCredential::from_env().environment([
        ("AZURE_TENANT_ID", std::ffi::OsString::from(TENANT)),
        ("AZURE_CLIENT_ID", APP.into()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.clone().into_os_string()),
        ("AZURE_AUTHORITY_HOST", emu.base_url().into()),
    ]);
    for (n, credential) in [given, from_env].into_iter().enumerate() {
        update(&client(&emu, credential), n, 1).unwrap();
    }
    let sent = emu.token_requests();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|r| form(r)["client_assertion"] == assertion)
    );
}

#[test]
fn from_env_takes_every_value_from_the_environment_and_a_given_one_wins() {
    let scratch = Scratch::new("wi-env");
    let emu = emulator();
    rotate(&emu, &token_file(&scratch));
    let env = [
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_CLIENT_ID", "not-the-app".to_owned()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file(&scratch).display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", format!("{}/", emu.base_url())),
    ];
    let credential = WorkloadIdentityCredential::from_env()
        .client_id(APP)
        .environment(env);
    update(&client(&emu, credential), 1, 1).unwrap();
    let sent = emu.token_requests();
    assert_eq!(sent.len(), 1, "AZURE_AUTHORITY_HOST was the emulator");
    assert_eq!(form(&sent[0])["client_id"], APP);
}

#[test]
fn an_unusable_token_file_is_an_auth_error_naming_it_and_graph_sees_nothing() {
    let scratch = Scratch::new("wi-unusable");
    let emu = emulator();
    let missing = scratch.0.join("missing-token");
    let empty = scratch.0.join("empty-token");
    std::fs::write(&empty, " \n").unwrap();
    for (file, why) in [(&missing, "cannot be read"), (&empty, "is empty")] {
        let err = update(&client(&emu, credential(&emu, file)), 0, 1).unwrap_err();
        let auth = err
            .auth()
            .unwrap_or_else(|| panic!("an Auth error: {err:?}"));
        assert!(
            auth.message.contains(&file.display().to_string()) && auth.message.contains(why),
            "{err}"
        );
    }
    assert!(
        emu.token_requests().is_empty(),
        "no request without a token"
    );
    assert!(emu.requests().is_empty());
    // A token the issuer did not mint is refused by the token endpoint (AADSTS).
    std::fs::write(
        token_file(&scratch),
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln",
    )
    .unwrap();
    let err = update(&client(&emu, credential(&emu, &token_file(&scratch))), 0, 1).unwrap_err();
    assert_eq!(err.auth().unwrap().aadsts.as_deref(), Some("AADSTS700027"));
}

#[test]
fn missing_values_are_config_errors_naming_the_field_and_the_variable() {
    let none: [(&str, &str); 0] = [];
    let cases: [(WorkloadIdentityCredential, &str, &str); 4] = [
        (
            WorkloadIdentityCredential::from_env().environment(none),
            "tenantId",
            "AZURE_TENANT_ID",
        ),
        (
            WorkloadIdentityCredential::from_env().environment([
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ]),
            "clientId",
            "AZURE_CLIENT_ID",
        ),
        (
            WorkloadIdentityCredential::from_env().environment([
                ("AZURE_TENANT_ID", "a/b"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            ]),
            "tenantId",
            "from AZURE_TENANT_ID",
        ),
        (
            WorkloadIdentityCredential::new("t", "c", "/f").authority_host("http://login.example"),
            "authorityHost",
            "https://",
        ),
    ];
    for (credential, field, says) in cases {
        match Client::builder().credential(credential).build() {
            Err(Error::Config { field: got, reason }) => {
                assert_eq!(got, field, "{reason}");
                assert!(reason.contains(says), "{field}: {reason}");
            }
            other => panic!("{field}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn one_token_serves_eight_threads_and_is_refreshed_once_before_it_expires() {
    let scratch = Scratch::new("wi-threads");
    let emu = emulator_with(Duration::from_secs(2));
    rotate(&emu, &token_file(&scratch));
    let client = client(&emu, credential(&emu, &token_file(&scratch)));
    updates_from_eight_threads(&client, 6);
    assert_eq!(emu.token_requests().len(), 1, "one token for all threads");
    std::thread::sleep(Duration::from_millis(1100));
    updates_from_eight_threads(&client, 6);
    assert_eq!(emu.token_requests().len(), 2, "exactly one refresh");
}

#[test]
fn logs_errors_and_debug_never_hold_the_federated_token_or_an_access_token() {
    let captured = common::capture_logs();
    let scratch = Scratch::new("wi-secrecy");
    let emu = emulator();
    let mut shown = Vec::new();
    let mut assertions = vec![rotate(&emu, &token_file(&scratch))];
    let credential = credential(&emu, &token_file(&scratch));
    shown.push(format!("{credential:?}"));
    let client = client(&emu, credential);
    update(&client, 0, 1).unwrap();
    assertions.push(rotate(&emu, &token_file(&scratch)));
    emu.expire_issued_tokens();
    update(&client, 0, 2).unwrap();
    let err = update(&client, 99, 1).unwrap_err();
    shown.push(format!("{err} {err:?} {client:?}"));
    // Refused by the endpoint: a token about another subject.
    let foreign = emu.mint_federated_token(ISSUER, "system:serviceaccount:x:y", HOUR);
    std::fs::write(token_file(&scratch), &foreign).unwrap();
    assertions.push(foreign);
    let refused = client_for_file(&emu, &token_file(&scratch));
    let err = update(&refused, 0, 1).unwrap_err();
    assert_eq!(err.auth().unwrap().aadsts.as_deref(), Some("AADSTS700213"));
    shown.push(format!("{err} {err:?}"));

    let logs = captured.text();
    assert!(
        logs.contains("token request"),
        "token requests are logged: {logs}"
    );
    let everything = format!("{logs}\n{}", shown.join("\n"));
    for secret in assertions
        .iter()
        .map(String::as_str)
        .chain(["ius-emulator-at.", "eyJ"])
    {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

fn client_for_file(emu: &Emulator, file: &Path) -> Client {
    client(emu, credential(emu, file))
}
