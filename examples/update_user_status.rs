//! The main job: update one deviceConfigurationUserStatus.
//!
//! With no arguments it starts the bundled Graph emulator in-process, creates a user status there,
//! updates it and prints what went over the wire and what came back:
//!
//! ```text
//! cargo run --example update_user_status
//! ```
//!
//! With arguments it updates a user status on the service you name:
//!
//! ```text
//! cargo run --example update_user_status -- --base-url https://graph.microsoft.com --token "$TOKEN" \
//!     --config-id CONFIG --status-id STATUS --patch '{"status":"compliant","devicesCount":3}' \
//!     [--route identityCertificate] [--certificate-id ID] [--api-version v1.0]
//! ```
//! The token may also come from `IUS_TOKEN`. Instead of a token, `--auth managed-identity` uses the
//! machine's managed identity (an Azure VM's, App Service's or Azure Arc's, found from the
//! environment; `--identity-client-id ID` picks a user-assigned one) and `--auth workload-identity`
//! exchanges the platform's federated token (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE`). On error it prints the error and exits with status 1.

use std::process::ExitCode;

use intune_user_status::{
    ApiVersion, CallOptions, Client, ComplianceStatus, Error, ManagedIdentityCredential, Target,
    UpdateOutcome, UserStatusPatch, WorkloadIdentityCredential,
};
use ius_emulator::{Config, Emulator};

const USAGE: &str =
    "usage: update_user_status [--base-url URL (--token T | --auth managed-identity \
[--identity-client-id ID] | --auth workload-identity) --config-id X --status-id Y --patch JSON \
[--route R] [--certificate-id C] [--api-version beta|v1.0]]
With no arguments: a demonstration against the bundled emulator. The token may come from IUS_TOKEN;
managed and workload identity read the environment as Microsoft's libraries do.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.is_empty() {
        demo()
    } else {
        match Args::parse(&args) {
            Ok(args) => remote(args),
            Err(message) => {
                eprintln!("{message}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Against the in-process emulator: create, update, show the wire and the result.
fn demo() -> Result<(), Error> {
    let emulator = Emulator::start(Config {
        token: Some("emulator-token".into()),
        ..Config::default()
    })
    .expect("start the emulator on 127.0.0.1");
    let collection = "/deviceManagement/deviceConfigurations/wifi-policy-1/userStatuses";
    emulator
        .insert_user_status(
            collection,
            serde_json::json!({
                "id": "user-42",
                "userDisplayName": "Adele Vance",
                "userPrincipalName": "adele@contoso.example",
                "status": "unknown",
                "devicesCount": 0,
            }),
        )
        .expect("seed the emulator");
    println!("emulator listening on {}", emulator.base_url());
    println!("created user status user-42 under device configuration wifi-policy-1\n");

    let client = Client::builder()
        .base_url(emulator.base_url())
        .access_token("emulator-token")
        .build()?;
    let patch = UserStatusPatch::new()
        .status(ComplianceStatus::Compliant)
        .devices_count(3)
        .last_reported_date_time(
            "2026-11-29T17:00:17.7769392-08:00"
                .parse()
                .expect("a valid date"),
        );
    let outcome = client.update_user_status_with(
        &Target::new("wifi-policy-1", "user-42"),
        &patch,
        &CallOptions::new().fetch_after_no_content(true),
    )?;

    for request in emulator.requests() {
        println!("sent: {} {}", request.method, request.target);
        for (name, value) in &request.headers {
            let shown = if name.eq_ignore_ascii_case("authorization") {
                "Bearer <redacted>"
            } else {
                value
            };
            println!("      {name}: {shown}");
        }
        if !request.body.is_empty() {
            println!("      {}", request.body_str());
        }
    }
    println!();
    print_outcome(&outcome);
    emulator.shutdown();
    Ok(())
}

fn print_outcome(outcome: &UpdateOutcome) {
    match outcome {
        UpdateOutcome::NoContent => {
            println!("Graph answered 204 No Content: the update was applied")
        }
        UpdateOutcome::Updated(entity) => println!(
            "Graph answered 200 with the updated object:\n{}",
            serde_json::to_string_pretty(entity).unwrap_or_default()
        ),
        UpdateOutcome::Fetched(entity) => println!(
            "Graph answered 204 No Content; the object read back is:\n{}",
            serde_json::to_string_pretty(entity).unwrap_or_default()
        ),
    }
}

/// Where the example's tokens come from.
enum Auth {
    Token(String),
    /// The machine's managed identity; a user-assigned one by its client id.
    ManagedIdentity(Option<String>),
    WorkloadIdentity,
}

struct Args {
    base_url: String,
    auth: Auth,
    config_id: String,
    status_id: String,
    patch: String,
    route: Option<String>,
    certificate_id: Option<String>,
    api_version: Option<String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut found = std::collections::HashMap::new();
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            let name = match flag.as_str() {
                "--base-url"
                | "--token"
                | "--config-id"
                | "--status-id"
                | "--patch"
                | "--route"
                | "--certificate-id"
                | "--api-version"
                | "--auth"
                | "--identity-client-id" => flag.as_str(),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other}")),
            };
            let value = iter.next().ok_or(format!("{name} needs a value"))?;
            found.insert(name, value.clone());
        }
        let mut take = |name: &str| found.remove(name);
        let identity_client_id = take("--identity-client-id");
        let auth = match take("--auth").as_deref() {
            None | Some("token") => Auth::Token(
                take("--token")
                    .or_else(|| std::env::var("IUS_TOKEN").ok())
                    .ok_or("--token (or IUS_TOKEN) is required")?,
            ),
            Some("managed-identity") => Auth::ManagedIdentity(identity_client_id.clone()),
            Some("workload-identity") => Auth::WorkloadIdentity,
            Some(other) => {
                return Err(format!(
                    "--auth {other}: expected token, managed-identity or workload-identity"
                ));
            }
        };
        if identity_client_id.is_some() && !matches!(auth, Auth::ManagedIdentity(_)) {
            return Err("--identity-client-id goes with --auth managed-identity".to_owned());
        }
        let mut required = |name: &str| take(name).ok_or(format!("{name} is required"));
        Ok(Args {
            base_url: required("--base-url")?,
            config_id: required("--config-id")?,
            status_id: required("--status-id")?,
            patch: required("--patch")?,
            auth,
            route: take("--route"),
            certificate_id: take("--certificate-id"),
            api_version: take("--api-version"),
        })
    }
}

/// Against a service named on the command line.
fn remote(args: Args) -> Result<(), Error> {
    let builder = Client::builder().base_url(&args.base_url);
    let mut builder = match args.auth {
        Auth::Token(token) => builder.access_token(token),
        Auth::ManagedIdentity(None) => {
            builder.credential(ManagedIdentityCredential::system_assigned())
        }
        Auth::ManagedIdentity(Some(id)) => {
            builder.credential(ManagedIdentityCredential::user_assigned_client_id(id))
        }
        Auth::WorkloadIdentity => builder.credential(WorkloadIdentityCredential::from_env()),
    };
    if let Some(version) = &args.api_version {
        builder = builder.api_version(version.parse::<ApiVersion>()?);
    }
    let client = builder.build()?;
    let target = Target::from_route(
        args.config_id,
        args.route.as_deref().unwrap_or(""),
        args.certificate_id.as_deref(),
        args.status_id,
    )?;
    let patch = UserStatusPatch::from_json(&args.patch)?;
    let outcome = client.update_user_status(&target, &patch)?;
    print_outcome(&outcome);
    Ok(())
}
