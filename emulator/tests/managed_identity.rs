//! The managed-identity endpoints (IMDS, App Service, Azure Arc) and the
//! federated exchange of workload identity, on the wire: what each accepts,
//! what it refuses and why, and that their tokens work on Graph.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Resp, request};
use ius_emulator::{Config, Emulator, FederatedCredential, ManagedIdentity, UserAssignedIdentity};
use serde_json::json;

const RESOURCE: &str = "https%3A%2F%2Fgraph.microsoft.com";
const HEADER: &str = "test-only-identity-header";
const C1: &str = "/beta/deviceManagement/deviceConfigurations/c1/userStatuses";
const TENANT: &str = "contoso.onmicrosoft.com";
const APP: &str = "aaaaaaaa-0000-0000-0000-00000000f00d";
const ISSUER: &str = "https://oidc.test.example/cluster-1";
const SUBJECT: &str = "system:serviceaccount:agents:intune";

fn folder(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ius-emu-arc-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

fn start(arc_folder: PathBuf) -> Emulator {
    Emulator::start(Config {
        managed_identity: Some(ManagedIdentity {
            system_assigned: true,
            user_assigned: vec![UserAssignedIdentity {
                client_id: "uai-client".into(),
                object_id: "uai-object".into(),
                resource_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai".into(),
            }],
            identity_header: HEADER.into(),
            arc_tokens_folder: arc_folder,
            arc_realm_folder: None,
        }),
        federated_credentials: vec![FederatedCredential {
            tenant: TENANT.into(),
            client_id: APP.into(),
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
        }],
        ..Config::default()
    })
    .unwrap()
}

fn get(emu: &Emulator, path_and_query: &str, headers: &[(&str, &str)]) -> Resp {
    request(
        "GET",
        &format!("{}{path_and_query}", emu.base_url()),
        None,
        headers,
    )
}

fn imds(emu: &Emulator, extra: &str, headers: &[(&str, &str)]) -> Resp {
    get(
        emu,
        &format!(
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource={RESOURCE}{extra}"
        ),
        headers,
    )
}

/// A Graph read with `token`: 404 (the status does not exist) means the
/// token was accepted, 401 that it was not.
fn graph_status(emu: &Emulator, token: &str) -> u16 {
    request(
        "GET",
        &format!("{}{C1}/u1", emu.base_url()),
        None,
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .status
}

#[test]
fn imds_issues_tokens_graph_accepts_for_the_system_and_each_user_assigned_name() {
    let emu = start(folder("imds"));
    let meta = [("Metadata", "true")];
    for extra in [
        "",
        "&client_id=uai-client",
        "&object_id=uai-object",
        "&msi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fuai",
    ] {
        let resp = imds(&emu, extra, &meta);
        assert_eq!(resp.status, 200, "{extra}: {}", resp.body);
        let body = resp.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["resource"], "https://graph.microsoft.com");
        assert_eq!(body["expires_in"], "3599");
        assert!(body["expires_on"].as_str().unwrap().parse::<u64>().is_ok());
        assert_ne!(
            graph_status(&emu, body["access_token"].as_str().unwrap()),
            401
        );
    }
    // Graph now takes only issued tokens.
    assert_eq!(graph_status(&emu, "made-up"), 401);
    assert_eq!(
        emu.token_requests().len(),
        4,
        "logged with the token requests"
    );
    assert!(
        emu.requests()
            .iter()
            .all(|r| r.path().starts_with("/beta/"))
    );
}

#[test]
fn imds_refuses_what_a_client_gets_wrong_saying_what() {
    let emu = start(folder("imds-bad"));
    let meta = [("Metadata", "true")];
    let cases: [(Resp, &str); 6] = [
        (imds(&emu, "", &[]), "metadata header"),
        (
            get(
                &emu,
                &format!(
                    "/metadata/identity/oauth2/token?api-version=2019-11-01&resource={RESOURCE}"
                ),
                &meta,
            ),
            "api-version",
        ),
        (
            get(
                &emu,
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.us",
                &meta,
            ),
            "AADSTS500011",
        ),
        (imds(&emu, "&client_id=nobody", &meta), "Identity not found"),
        // App Service's names for the ids are not IMDS's.
        (
            imds(&emu, "&principal_id=uai-object", &meta),
            "principal_id",
        ),
        (
            imds(&emu, "&client_id=uai-client&object_id=uai-object", &meta),
            "Multiple",
        ),
    ];
    for (resp, why) in cases {
        assert_eq!(resp.status, 400, "{why}: {}", resp.body);
        let description = resp.json()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(description.contains(why), "{why}: {description}");
    }
}

#[test]
fn app_service_needs_its_header_and_names_ids_its_own_way() {
    let emu = start(folder("app"));
    let path = format!("/msi/token?api-version=2019-08-01&resource={RESOURCE}");
    let ok = get(
        &emu,
        &format!("{path}&principal_id=uai-object"),
        &[("X-IDENTITY-HEADER", HEADER)],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let body = ok.json();
    assert_eq!(body["client_id"], "uai-client");
    assert!(
        body.get("expires_in").is_none(),
        "App Service gives expires_on only"
    );
    assert_ne!(
        graph_status(&emu, body["access_token"].as_str().unwrap()),
        401
    );
    for (resp, why) in [
        (
            get(&emu, &path, &[("X-IDENTITY-HEADER", "wrong")]),
            "X-IDENTITY-HEADER",
        ),
        (
            get(&emu, &path, &[("Metadata", "true")]),
            "X-IDENTITY-HEADER",
        ),
        (
            get(
                &emu,
                &format!("{path}&object_id=uai-object"),
                &[("X-IDENTITY-HEADER", HEADER)],
            ),
            "object_id",
        ),
    ] {
        assert_eq!(resp.status, 400, "{why}");
        assert!(
            resp.json()["message"].as_str().unwrap().contains(why),
            "{}",
            resp.body
        );
    }
}

#[test]
fn azure_arc_challenges_with_a_key_file_and_takes_its_contents_once() {
    let tokens = folder("arc");
    let emu = start(tokens.clone());
    let path =
        format!("/arc/metadata/identity/oauth2/token?api-version=2019-11-01&resource={RESOURCE}");
    let meta = ("Metadata", "true");
    let challenge = get(&emu, &path, &[meta]);
    assert_eq!(challenge.status, 401);
    let realm = challenge
        .header("WWW-Authenticate")
        .and_then(|h| h.strip_prefix("Basic realm="))
        .expect("a Basic realm")
        .to_owned();
    let file = PathBuf::from(&realm);
    assert_eq!(file.parent(), Some(tokens.as_path()));
    assert_eq!(file.extension().unwrap(), "key");
    let key = std::fs::read_to_string(&file).unwrap();

    let wrong = get(&emu, &path, &[meta, ("Authorization", "Basic not-the-key")]);
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.header("WWW-Authenticate").is_none(),
        "no new challenge"
    );
    let ok = get(
        &emu,
        &path,
        &[meta, ("Authorization", &format!("Basic {key}"))],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_ne!(
        graph_status(&emu, ok.json()["access_token"].as_str().unwrap()),
        401
    );
    assert!(!file.exists(), "the key file is removed once used");
    let again = get(
        &emu,
        &path,
        &[meta, ("Authorization", &format!("Basic {key}"))],
    );
    assert_eq!(again.status, 401, "a key is good once");

    // User-assigned identities are not Arc's; a realm can be set to test clients.
    let user = get(&emu, &format!("{path}&client_id=uai-client"), &[meta]);
    assert_eq!(user.status, 400);
    assert!(
        user.body.contains("not supported by Azure Arc"),
        "{}",
        user.body
    );
    emu.set_arc_challenge_realm(Some("/etc/passwd"));
    let odd = get(&emu, &path, &[meta]);
    assert_eq!(
        odd.header("WWW-Authenticate"),
        Some("Basic realm=/etc/passwd")
    );
    emu.shutdown();
    let _ = std::fs::remove_dir_all(tokens);
}

#[test]
fn azure_arc_names_its_key_file_as_the_client_sees_the_folder_when_told() {
    let path =
        format!("/arc/metadata/identity/oauth2/token?api-version=2019-11-01&resource={RESOURCE}");
    for (seen, separator) in [(r"C:\ius\arc", '\\'), ("/seen/arc/", '/')] {
        let tokens = folder("arc-seen");
        let emu = Emulator::start(Config {
            managed_identity: Some(ManagedIdentity {
                arc_tokens_folder: tokens.clone(),
                arc_realm_folder: Some(seen.to_owned()),
                ..ManagedIdentity::default()
            }),
            ..Config::default()
        })
        .unwrap();
        let challenge = get(&emu, &path, &[("Metadata", "true")]);
        let realm = challenge
            .header("WWW-Authenticate")
            .and_then(|h| h.strip_prefix("Basic realm="))
            .expect("a Basic realm")
            .to_owned();
        let (folder_part, name) = realm.rsplit_once(separator).unwrap();
        assert_eq!(folder_part, seen.trim_end_matches(separator), "{realm}");
        assert!(name.ends_with(".key"), "{realm}");
        // The file is where the emulator keeps it, under the name the realm gives.
        let key = std::fs::read_to_string(tokens.join(name)).unwrap();
        let ok = get(
            &emu,
            &path,
            &[
                ("Metadata", "true"),
                ("Authorization", &format!("Basic {key}")),
            ],
        );
        assert_eq!(ok.status, 200, "{}", ok.body);
        emu.shutdown();
        let _ = std::fs::remove_dir_all(tokens);
    }
}

#[test]
fn faults_on_a_path_filter_reach_the_managed_identity_endpoints() {
    let emu = start(folder("faults"));
    emu.add_fault(
        ius_emulator::FaultRule::next(
            1,
            ius_emulator::Fault::Status {
                status: 410,
                retry_after: None,
            },
        )
        .path_contains("/metadata/identity/"),
    );
    // A rule without a path filter stays with Graph.
    emu.add_fault(ius_emulator::FaultRule::always(
        ius_emulator::Fault::Status {
            status: 503,
            retry_after: None,
        },
    ));
    let meta = [("Metadata", "true")];
    assert_eq!(imds(&emu, "", &meta).status, 410);
    assert_eq!(imds(&emu, "", &meta).status, 200);
    assert_eq!(emu.token_requests().len(), 2, "both attempts logged");
}

#[test]
fn without_managed_identity_the_endpoints_answer_404() {
    let emu = Emulator::start(Config::default()).unwrap();
    assert_eq!(imds(&emu, "", &[("Metadata", "true")]).status, 404);
}

/// A client-credentials request with `assertion` as the client assertion.
fn exchange(emu: &Emulator, assertion: &str) -> Resp {
    let form = format!(
        "client_id={APP}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let mut req = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{}/{TENANT}/oauth2/v2.0/token", emu.base_url()))
        .header("Content-Type", "application/x-www-form-urlencoded");
    req = req.header("Accept", "application/json");
    let mut resp = common::agent().run(req.body(form).unwrap()).unwrap();
    Resp {
        status: resp.status().as_u16(),
        headers: Vec::new(),
        body: resp.body_mut().read_to_string().unwrap(),
    }
}

#[test]
fn a_federated_token_is_exchanged_only_for_its_issuer_and_subject_while_it_lives() {
    let emu = start(folder("fed"));
    let hour = Duration::from_secs(3600);
    let ok = exchange(&emu, &emu.mint_federated_token(ISSUER, SUBJECT, hour));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_ne!(
        graph_status(&emu, ok.json()["access_token"].as_str().unwrap()),
        401
    );
    let code = |resp: Resp| {
        assert_eq!(resp.status, 401, "{}", resp.body);
        resp.json()["error_codes"][0].as_u64().unwrap()
    };
    assert_eq!(
        code(exchange(
            &emu,
            &emu.mint_federated_token("https://other", SUBJECT, hour)
        )),
        700_211
    );
    assert_eq!(
        code(exchange(
            &emu,
            &emu.mint_federated_token(ISSUER, "system:serviceaccount:x:y", hour)
        )),
        700_213
    );
    assert_eq!(
        code(exchange(
            &emu,
            &emu.mint_federated_token(ISSUER, SUBJECT, Duration::ZERO)
        )),
        700_024
    );
    // Not minted here: a forged token with the right claims.
    let real = emu.mint_federated_token(ISSUER, SUBJECT, hour);
    let forged = format!("{}.c2lnbmF0dXJl", real.rsplit_once('.').unwrap().0);
    assert_eq!(code(exchange(&emu, &forged)), 700_027);

    // The admin endpoint mints the same kind of token.
    let minted = request(
        "POST",
        &format!("{}/_emulator/federated-tokens", emu.base_url()),
        Some(&json!({"subject": SUBJECT, "issuer": ISSUER}).to_string()),
        &[],
    );
    assert_eq!(minted.status, 200, "{}", minted.body);
    let token = minted.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(exchange(&emu, &token).status, 200);
}
