//! Fakes of the three managed-identity endpoints a machine may have, on the
//! emulator's port, each issuing tokens its Graph accepts:
//!
//! | endpoint | path | `api-version` | proof | user-assigned id parameters |
//! |---|---|---|---|---|
//! | IMDS (Azure VMs) | `/metadata/identity/oauth2/token` | `2018-02-01` | `Metadata: true` | `client_id`, `object_id`, `msi_res_id` |
//! | App Service / Functions | `/msi/token` | `2019-08-01` | `X-IDENTITY-HEADER` = [`ManagedIdentity::identity_header`] | `client_id`, `principal_id`, `mi_res_id` |
//! | Azure Arc | `/arc/metadata/identity/oauth2/token` | `2019-11-01` | `Metadata: true`, then the key file (below) | none (system-assigned only) |
//!
//! Every request is a `GET` with `resource` equal to the expected scope
//! without `/.default` (`https://graph.microsoft.com` by default), at most
//! one id parameter, and no parameter the endpoint does not take (a client
//! that names an identity the way another endpoint does is told so, not
//! silently given the system-assigned identity). The identity asked for
//! must exist ([`ManagedIdentity::system_assigned`],
//! [`ManagedIdentity::user_assigned`]). Refusals are 400 with
//! `{"error","error_description"}` (App Service: `{"statusCode","message"}`).
//!
//! Azure Arc's challenge: a request without `Authorization` is answered
//! 401 with `WWW-Authenticate: Basic realm=<path>`, where `<path>` is a new
//! `<uuid>.key` file the emulator writes into
//! [`ManagedIdentity::arc_tokens_folder`] holding a random key; the same
//! request with `Authorization: Basic <key>` gets the token, and the key
//! file is removed. The realm names the file as the emulator does, or as
//! [`ManagedIdentity::arc_realm_folder`] says the client sees the folder.
//! [`crate::Emulator::set_arc_challenge_realm`] makes the challenge name
//! another path instead (to test that a client refuses it).
//!
//! Success answers carry `access_token`, `expires_on` (seconds since 1970,
//! as a string), `resource` and `token_type`; IMDS and Arc add `expires_in`,
//! `ext_expires_in`, `not_before` and `refresh_token` (empty), App Service
//! `client_id`. Requests are logged with the token requests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::identity::{Identity, parse_form};
use crate::message::{Request, RequestIds, Response};
use crate::sync::lock;

/// IMDS's token path (its host, 169.254.169.254, is the emulator's).
pub const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
/// App Service's token path (`IDENTITY_ENDPOINT` is the emulator's URL plus this).
pub const APP_SERVICE_PATH: &str = "/msi/token";
/// Azure Arc's token path (`IDENTITY_ENDPOINT` is the emulator's URL plus this).
pub const ARC_PATH: &str = "/arc/metadata/identity/oauth2/token";

/// The machine identities the managed-identity endpoints serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedIdentity {
    /// Whether the machine has a system-assigned identity. Default `true`.
    pub system_assigned: bool,
    /// The user-assigned identities attached to the machine.
    pub user_assigned: Vec<UserAssignedIdentity>,
    /// The value App Service's endpoint requires in `X-IDENTITY-HEADER`
    /// (the platform's `IDENTITY_HEADER`). Default
    /// `ius-emulator-identity-header`.
    pub identity_header: String,
    /// Where the Azure Arc endpoint writes its key files (created if
    /// missing, and then removed with the emulator once empty). Default:
    /// `ius-emulator-arc-tokens-<pid>` in the temporary folder. The SDK reads
    /// key files only from Arc's own tokens folder, so a client accepts these
    /// only in a test build (feature `test-seams`, `IUS_TEST_ARC_TOKENS_FOLDER`).
    pub arc_tokens_folder: PathBuf,
    /// How clients name [`arc_tokens_folder`](Self::arc_tokens_folder)
    /// when they see the file system by other names than the emulator does
    /// (a Windows program under Wine sees `<prefix>/drive_c/ius` as
    /// `C:\ius`): the challenge's realm is then this folder, its separator
    /// (`\` if it holds one, else `/`) and the key file's name. Default
    /// `None`: the folder's own path.
    pub arc_realm_folder: Option<String>,
}

impl Default for ManagedIdentity {
    fn default() -> Self {
        ManagedIdentity {
            system_assigned: true,
            user_assigned: Vec::new(),
            identity_header: "ius-emulator-identity-header".to_owned(),
            arc_tokens_folder: std::env::temp_dir()
                .join(format!("ius-emulator-arc-tokens-{}", std::process::id())),
            arc_realm_folder: None,
        }
    }
}

/// A user-assigned identity, by its three names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAssignedIdentity {
    /// Its client (application) id.
    pub client_id: String,
    /// Its object (principal) id.
    pub object_id: String,
    /// Its Azure resource id
    /// (`/subscriptions/.../userAssignedIdentities/...`).
    pub resource_id: String,
}

/// Whether `path` is one of the managed-identity token paths.
pub(crate) fn is_endpoint_path(path: &str) -> bool {
    [IMDS_PATH, APP_SERVICE_PATH, ARC_PATH].contains(&path)
}

/// The endpoints' state: the identities, and Azure Arc's outstanding keys.
#[derive(Debug)]
pub(crate) struct ManagedIdentities {
    config: Option<ManagedIdentity>,
    /// Keys Azure Arc's challenges handed out and not yet used.
    arc_keys: Mutex<HashMap<String, PathBuf>>,
    /// The realm the next challenges name instead of a key file, if set.
    arc_realm: Mutex<Option<String>>,
    /// Arc's folder did not exist before: it is removed (once empty) with the emulator.
    created_folder: bool,
}

/// Which endpoint a request is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Imds,
    AppService,
    Arc,
}

impl Kind {
    fn api_version(self) -> &'static str {
        match self {
            Kind::Imds => "2018-02-01",
            Kind::AppService => "2019-08-01",
            Kind::Arc => "2019-11-01",
        }
    }

    /// The parameters naming a user-assigned identity by client id, object
    /// id and resource id, in that order.
    fn id_parameters(self) -> &'static [&'static str] {
        match self {
            Kind::Imds => &["client_id", "object_id", "msi_res_id"],
            Kind::AppService => &["client_id", "principal_id", "mi_res_id"],
            Kind::Arc => &[],
        }
    }

    /// A refusal in the endpoint's error shape.
    fn refuse(self, status: u16, error: &str, description: &str) -> Response {
        let body = match self {
            Kind::AppService => json!({"statusCode": status, "message": description}),
            Kind::Imds | Kind::Arc => json!({"error": error, "error_description": description}),
        };
        json_response(status, &body)
    }
}

impl ManagedIdentities {
    /// The endpoints for `config` (`None`: not served); creates Arc's folder.
    pub(crate) fn new(config: Option<ManagedIdentity>) -> std::io::Result<Self> {
        let mut created_folder = false;
        if let Some(config) = &config {
            created_folder = !config.arc_tokens_folder.exists();
            std::fs::create_dir_all(&config.arc_tokens_folder)?;
        }
        Ok(ManagedIdentities {
            config,
            arc_keys: Mutex::new(HashMap::new()),
            arc_realm: Mutex::new(None),
            created_folder,
        })
    }

    /// Sets (or clears) the path Azure Arc's challenges name instead of a
    /// key file.
    pub(crate) fn set_arc_realm(&self, realm: Option<String>) {
        *lock(&self.arc_realm) = realm;
    }

    /// Answers a managed-identity token request (already logged).
    pub(crate) fn answer(&self, identity: &Identity, req: &Request, _ids: &RequestIds) -> Response {
        let kind = match req.path() {
            IMDS_PATH => Kind::Imds,
            APP_SERVICE_PATH => Kind::AppService,
            _ => Kind::Arc,
        };
        let Some(config) = &self.config else {
            return json_response(
                404,
                &json!({"error": "not_found", "error_description": "The emulator serves no managed identity (Config::managed_identity)."}),
            );
        };
        match self.issue(kind, config, identity, req) {
            Ok(response) | Err(response) => response,
        }
    }

    fn issue(
        &self,
        kind: Kind,
        config: &ManagedIdentity,
        identity: &Identity,
        req: &Request,
    ) -> Result<Response, Response> {
        let bad = |description: &str| kind.refuse(400, "invalid_request", description);
        if req.method != "GET" {
            return Err(kind.refuse(
                405,
                "invalid_request",
                &format!("The endpoint only accepts GET, not {}.", req.method),
            ));
        }
        match kind {
            Kind::AppService => {
                if req.header("x-identity-header") != Some(config.identity_header.as_str()) {
                    return Err(bad(
                        "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
                    ));
                }
            }
            Kind::Imds | Kind::Arc => {
                if !req
                    .header("metadata")
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
                {
                    return Err(bad("Required metadata header not specified"));
                }
            }
        }
        let query = parse_form(req.query().unwrap_or_default().as_bytes());
        let allowed: Vec<&str> = ["api-version", "resource"]
            .into_iter()
            .chain(kind.id_parameters().iter().copied())
            .collect();
        if let Some(unknown) = query.keys().find(|k| !allowed.contains(&k.as_str())) {
            if kind == Kind::Arc
                && ["client_id", "object_id", "msi_res_id"].contains(&unknown.as_str())
            {
                return Err(bad(
                    "User assigned identities are not supported by Azure Arc.",
                ));
            }
            return Err(bad(&format!(
                "Unexpected query parameter '{unknown}'; this endpoint takes {}.",
                allowed.join(", ")
            )));
        }
        let version = query.get("api-version").map(String::as_str).unwrap_or("");
        if version != kind.api_version() {
            return Err(bad(&format!(
                "Invalid or unsupported api-version '{version}'; expected {}.",
                kind.api_version()
            )));
        }
        let resource = query.get("resource").map(String::as_str).unwrap_or("");
        if resource != identity.resource() {
            return Err(kind.refuse(
                400,
                "invalid_resource",
                &format!(
                    "AADSTS500011: The resource principal named '{resource}' was not found. Expected '{}'.",
                    identity.resource()
                ),
            ));
        }
        let named: Vec<(usize, &String)> = kind
            .id_parameters()
            .iter()
            .enumerate()
            .filter_map(|(n, name)| query.get(*name).map(|value| (n, value)))
            .collect();
        let client_id = match named.as_slice() {
            [] if config.system_assigned => "system-assigned".to_owned(),
            [] => return Err(bad("Identity not found")),
            [(n, value)] => {
                let found = config.user_assigned.iter().find(|id| {
                    let names = [&id.client_id, &id.object_id, &id.resource_id];
                    names[*n].eq_ignore_ascii_case(value)
                });
                match found {
                    Some(id) => id.client_id.clone(),
                    None => return Err(bad("Identity not found")),
                }
            }
            _ => {
                return Err(bad(
                    "Multiple user assigned identities specified; give one of them.",
                ));
            }
        };
        if kind == Kind::Arc {
            self.arc_proof(config, req)?;
        }
        let lifetime = identity.lifetime().as_secs();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let token = identity.issue();
        let body = match kind {
            Kind::AppService => json!({
                "access_token": token,
                "expires_on": (now + lifetime).to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            }),
            Kind::Imds | Kind::Arc => json!({
                "access_token": token,
                "refresh_token": "",
                "expires_in": lifetime.to_string(),
                "expires_on": (now + lifetime).to_string(),
                "ext_expires_in": lifetime.to_string(),
                "not_before": now.to_string(),
                "resource": resource,
                "token_type": "Bearer",
            }),
        };
        Ok(json_response(200, &body))
    }

    /// Azure Arc's challenge: `Ok` once the request carries a key handed
    /// out here; else the 401 that hands one out (or refuses the one sent).
    fn arc_proof(&self, config: &ManagedIdentity, req: &Request) -> Result<(), Response> {
        let Some(authorization) = req.header("authorization") else {
            let realm = match lock(&self.arc_realm).clone() {
                Some(realm) => realm,
                None => self.write_key(config)?,
            };
            return Err(json_response(401, &json!({}))
                .header("WWW-Authenticate", format!("Basic realm={realm}")));
        };
        let key = authorization
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Basic"))
            .map(|(_, key)| key.trim());
        match key.and_then(|key| lock(&self.arc_keys).remove(key)) {
            Some(file) => {
                let _ = std::fs::remove_file(file);
                Ok(())
            }
            None => Err(Kind::Arc.refuse(
                401,
                "invalid_request",
                "The Basic authorization does not hold a key this agent handed out.",
            )),
        }
    }

    /// Writes a new key file; returns its path.
    fn write_key(&self, config: &ManagedIdentity) -> Result<String, Response> {
        let key = format!(
            "arc-key-{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let name = format!("{}.key", uuid::Uuid::new_v4());
        let file = config.arc_tokens_folder.join(&name);
        std::fs::write(&file, &key).map_err(|err| {
            Kind::Arc.refuse(
                500,
                "server_error",
                &format!("Cannot write the key file {}: {err}", file.display()),
            )
        })?;
        let realm = match &config.arc_realm_folder {
            Some(folder) => {
                let separator = if folder.contains('\\') { '\\' } else { '/' };
                format!("{}{separator}{name}", folder.trim_end_matches(separator))
            }
            None => file.display().to_string(),
        };
        lock(&self.arc_keys).insert(key, file);
        Ok(realm)
    }
}

impl Drop for ManagedIdentities {
    fn drop(&mut self) {
        // Unused key files go with the emulator, and the folder if it made it (`remove_dir`
        // leaves a folder that holds anything else).
        for file in lock(&self.arc_keys).values() {
            let _ = std::fs::remove_file(file);
        }
        if let (Some(config), true) = (&self.config, self.created_folder) {
            let _ = std::fs::remove_dir(&config.arc_tokens_folder);
        }
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    Response::with_body(
        status,
        "application/json; charset=utf-8",
        body.to_string().into_bytes(),
    )
}
