//! Config JSON -> [`ClientBuilder`]: the C API's `config_json`, readable from Rust too (the `ius`
//! command's `--config`). One match arm per key, checked by name and type only; the builder owns
//! every rule about the values. Errors name the key by its path (`timeouts.connectMs`,
//! `auth.managedIdentity.objectId`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::FieldPaths;
use crate::json::{self, kind};
use crate::{
    ApiVersion, Client, ClientBuilder, ClientCertificateCredential, ClientSecretCredential, Cloud,
    Credential, Error, ManagedIdentityCredential, Pacing, RetryPolicy, TokenProvider,
    WorkloadIdentityCredential,
};

/// The keys `config_json` accepts, for the unknown-key message.
const KEYS: &str = "baseUrl, cloud, apiVersion, accessToken, auth, authorityHost, scope, timeouts, \
                    retry, pacing, proxy, useEnvProxy, tls, userAgent, fetchAfterNoContent";
/// The keys of an app's credentials in the `auth` object (beside `accessToken`, which the core
/// names as the top-level key). The core names a credential's parts without the prefix
/// (`tenantId`); [`FieldPaths`] adds `auth.` to those names.
const APP_KEYS: [&str; 6] = [
    "tenantId",
    "clientId",
    "clientSecret",
    "certificatePem",
    "privateKeyPem",
    "algorithm",
];
/// The identity sources, each the one key of `auth` when given, with an object of its own.
const MANAGED_IDENTITY: &str = "managedIdentity";
const WORKLOAD_IDENTITY: &str = "workloadIdentity";
/// The keys of `auth.managedIdentity`.
const MANAGED_IDENTITY_KEYS: [&str; 3] = ["clientId", "objectId", "resourceId"];
/// The keys of `auth.workloadIdentity`, each from its environment variable when absent.
const WORKLOAD_IDENTITY_KEYS: [&str; 4] = ["tenantId", "clientId", "tokenFile", "authorityHost"];
const RETRY_KEYS: &str = "maxRetries, baseDelayMs, maxDelayMs, maxTotalMs";
const TIMEOUT_KEYS: &str = "connectMs, requestMs, totalMs";
const PACING_KEYS: &str = "requests, perSeconds";
const TLS_KEYS: &str = "platformVerifier, extraRootsPem";

/// Where each credential's parts sit in config JSON.
const APP: FieldPaths = FieldPaths {
    object: "auth",
    keys: &APP_KEYS,
};
const MANAGED: FieldPaths = FieldPaths {
    object: "auth.managedIdentity",
    keys: &MANAGED_IDENTITY_KEYS,
};
const WORKLOAD: FieldPaths = FieldPaths {
    object: "auth.workloadIdentity",
    keys: &WORKLOAD_IDENTITY_KEYS,
};
/// As [`WORKLOAD`] when a top-level `authorityHost` replaced the nested one.
const WORKLOAD_TOP_LEVEL_HOST: FieldPaths = FieldPaths {
    object: "auth.workloadIdentity",
    keys: &["tenantId", "clientId", "tokenFile"],
};

/// Where a client's tokens come from.
pub(crate) enum TokensFrom {
    /// The JSON's `accessToken` or `auth`.
    Json,
    /// A provider given apart from the JSON (the C token callback); the JSON must then hold no
    /// credentials.
    Provider(Arc<dyn TokenProvider>),
}

impl ClientBuilder {
    /// Reads config JSON, the object the C API's `ius_client_new` takes (camelCase keys:
    /// `cloud`, `baseUrl`, `apiVersion`, `accessToken` or `auth`, `authorityHost`, `scope`,
    /// `timeouts`, `retry`, `pacing`, `proxy`, `useEnvProxy`, `tls`, `userAgent`,
    /// `fetchAfterNoContent`; `include/intune_user_status.h` says what each means), into a
    /// builder. Unknown keys, a key given twice and wrong types are [`Error::Config`] naming the
    /// key by its path (`timeouts.readMs`, `auth.managedIdentity.objectId`), as are the errors
    /// [`build`](Self::build) then finds in the credential's parts (`auth.tenantId`); text that
    /// is not JSON names `config_json`. Secrets are never echoed.
    ///
    /// ```
    /// use intune_user_status::{ApiVersion, ClientBuilder};
    /// let client = ClientBuilder::from_config_json(
    ///     r#"{"baseUrl":"http://127.0.0.1:8080","apiVersion":"v1.0","accessToken":"eyJ0eXAi..."}"#,
    /// )?
    /// .build()?;
    /// assert_eq!(client.api_version(), ApiVersion::V1_0);
    /// let err = ClientBuilder::from_config_json(r#"{"accessToken":"t","timeouts":{"readMs":1}}"#)
    ///     .unwrap_err();
    /// assert!(matches!(err, intune_user_status::Error::Config { field, .. } if field == "timeouts.readMs"));
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn from_config_json(text: &str) -> Result<ClientBuilder, Error> {
        let value = json::parse_named(text, "config_json", Error::config)?;
        read(value, TokensFrom::Json)
    }
}

/// Reads parsed config JSON into a builder.
pub(crate) fn read(value: Value, tokens: TokensFrom) -> Result<ClientBuilder, Error> {
    let Value::Object(map) = value else {
        return Err(Error::config(
            "config_json",
            format!("must be a JSON object, got {}", kind(&value)),
        ));
    };
    let mut builder = Client::builder();
    // Applied after the loop: authorityHost and scope refine the credential, in any key order.
    let mut access_token: Option<String> = None;
    let mut auth: Option<Value> = None;
    let mut overrides = Overrides::default();
    for (key, value) in map {
        builder = match key.as_str() {
            // Both may be given: the cloud chooses the token authority and scope, the base URL
            // replaces its Graph root (e.g. a gateway in a government cloud).
            "baseUrl" => builder.base_url(string(&key, value)?),
            "cloud" => builder.cloud(string(&key, value)?.parse::<Cloud>()?),
            "apiVersion" => {
                let version =
                    string(&key, value)?
                        .parse::<ApiVersion>()
                        .map_err(|err| match err {
                            // The same words, but here it is a configuration error.
                            Error::InvalidInput { reason, .. } => {
                                Error::config("apiVersion", reason)
                            }
                            other => other,
                        })?;
                builder.api_version(version)
            }
            // The value is never echoed, not even in a type error: it is a secret.
            "accessToken" => {
                access_token = Some(string(&key, value)?);
                builder
            }
            "auth" => {
                auth = Some(value);
                builder
            }
            "authorityHost" => {
                overrides.authority_host = Some(string(&key, value)?);
                builder
            }
            "scope" => {
                overrides.scope = Some(string(&key, value)?);
                builder
            }
            "timeouts" => timeouts(builder, value)?,
            "retry" => builder.retry_policy(retry(value)?),
            "pacing" => builder.pacing(pacing(value)?),
            // Never echoed: a proxy URL may carry a password.
            "proxy" => builder.proxy(string(&key, value)?),
            "useEnvProxy" => builder.use_env_proxy(boolean(&key, value)?),
            "tls" => tls(builder, value)?,
            "userAgent" => builder.user_agent_suffix(string(&key, value)?),
            "fetchAfterNoContent" => builder.fetch_after_no_content(boolean(&key, value)?),
            _ => return Err(unknown(&key, KEYS)),
        };
    }
    Ok(match (tokens, access_token, auth) {
        (TokensFrom::Provider(_), Some(_), _) => {
            return Err(Error::config(
                "accessToken",
                "must not be given with a token callback",
            ));
        }
        (TokensFrom::Provider(_), None, Some(_)) => {
            return Err(Error::config(
                "auth",
                "must not be given with a token callback",
            ));
        }
        (TokensFrom::Provider(provider), None, None) => {
            overrides.refuse("the token callback supplies the tokens")?;
            builder.shared_token_provider(provider)
        }
        (TokensFrom::Json, Some(_), Some(_)) => {
            return Err(Error::config(
                "auth",
                "give either auth or accessToken, not both",
            ));
        }
        (TokensFrom::Json, Some(token), None) => {
            overrides.refuse("accessToken is the token")?;
            builder.access_token(token)
        }
        (TokensFrom::Json, None, Some(auth)) => match credential(auth, overrides)? {
            Auth::Token(token) => builder.access_token(token),
            Auth::Credential(credential, paths) => {
                builder.credential(credential).credential_paths(paths)
            }
        },
        // The builder reports the missing credentials.
        (TokensFrom::Json, None, None) => {
            overrides.refuse("there is no auth credential")?;
            builder
        }
    })
}

/// Names a core error about an app credential's part by its config JSON path, `auth.{field}`.
fn in_auth(err: Error) -> Error {
    APP.name(err)
}

/// `authorityHost` and `scope`: they refine a credential, and mean nothing without one.
#[derive(Default)]
struct Overrides {
    authority_host: Option<String>,
    scope: Option<String>,
}

impl Overrides {
    /// Rejects the overrides when there is no credential to apply them to.
    fn refuse(&self, why: &str) -> Result<(), Error> {
        let given = [
            ("authorityHost", &self.authority_host),
            ("scope", &self.scope),
        ];
        match given.into_iter().find(|(_, value)| value.is_some()) {
            Some((field, _)) => Err(Error::config(
                field,
                format!(
                    "applies only to an auth credential (an app's, or an identity's); here {why}"
                ),
            )),
            None => Ok(()),
        }
    }
}

/// What the `auth` object describes.
enum Auth {
    Token(String),
    /// A credential, and where its parts sit in config JSON.
    Credential(Credential, FieldPaths),
}

/// `auth` -> a token or a core credential; the core checks the values (tenant, client, PEM).
/// Secrets (`accessToken`, `clientSecret`, `privateKeyPem`) are never echoed.
fn credential(value: Value, overrides: Overrides) -> Result<Auth, Error> {
    let mut map = object("auth", value)?;
    for source in [MANAGED_IDENTITY, WORKLOAD_IDENTITY] {
        let Some(value) = map.remove(source) else {
            continue;
        };
        if let Some(other) = map.keys().next() {
            return Err(Error::config(
                format!("auth.{other}"),
                format!("auth.{source} stands alone: give no other key in auth"),
            ));
        }
        let (mut credential, paths) = if source == MANAGED_IDENTITY {
            (managed_identity(value)?, MANAGED)
        } else {
            // A top-level authorityHost replaces the nested one (the core's
            // Credential::authority_host): errors about it name the top-level key.
            let paths = if overrides.authority_host.is_some() {
                WORKLOAD_TOP_LEVEL_HOST
            } else {
                WORKLOAD
            };
            (workload_identity(value)?, paths)
        };
        if let Some(host) = overrides.authority_host {
            credential = credential.authority_host(host);
        }
        if let Some(scope) = overrides.scope {
            credential = credential.scope(scope);
        }
        return Ok(Auth::Credential(credential, paths));
    }
    let known = [
        &["accessToken"][..],
        &APP_KEYS,
        &[MANAGED_IDENTITY, WORKLOAD_IDENTITY],
    ]
    .concat()
    .join(", ");
    let mut parts = std::collections::BTreeMap::new();
    for (key, value) in map {
        let field = format!("auth.{key}");
        if key != "accessToken" && !APP_KEYS.contains(&key.as_str()) {
            return Err(unknown(&field, &known));
        }
        parts.insert(key, string(&field, value)?);
    }
    let mut take = |key: &str| parts.remove(key);
    let token = take("accessToken");
    let tenant = take("tenantId");
    let client = take("clientId");
    let secret = take("clientSecret");
    let certificate = take("certificatePem");
    let key = take("privateKeyPem");
    let algorithm = take("algorithm");
    if let Some(token) = token {
        let others = [
            ("tenantId", &tenant),
            ("clientId", &client),
            ("clientSecret", &secret),
            ("certificatePem", &certificate),
            ("privateKeyPem", &key),
            ("algorithm", &algorithm),
        ];
        if let Some((other, _)) = others.into_iter().find(|(_, v)| v.is_some()) {
            return Err(Error::config(
                format!("auth.{other}"),
                "give either auth.accessToken or an app's credentials, not both",
            ));
        }
        overrides.refuse("auth.accessToken is the token")?;
        return Ok(Auth::Token(token));
    }
    let tenant = tenant.ok_or_else(|| Error::config("auth.tenantId", "is required"))?;
    let client = client.ok_or_else(|| Error::config("auth.clientId", "is required"))?;
    let mut credential: Credential = match (secret, certificate, key) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
            return Err(Error::config(
                "auth.clientSecret",
                "give either clientSecret or certificatePem and privateKeyPem, not both",
            ));
        }
        (Some(secret), None, None) => {
            if algorithm.is_some() {
                return Err(Error::config(
                    "auth.algorithm",
                    "applies only to a certificate credential",
                ));
            }
            ClientSecretCredential::new(tenant, client, secret).into()
        }
        (None, Some(certificate), Some(key)) => {
            let mut credential =
                ClientCertificateCredential::from_pem(tenant, client, certificate, key)
                    .map_err(in_auth)?;
            if let Some(algorithm) = algorithm {
                credential = credential.algorithm(algorithm.parse().map_err(in_auth)?);
            }
            credential.into()
        }
        (None, Some(_), None) => {
            return Err(Error::config(
                "auth.privateKeyPem",
                "is required with certificatePem",
            ));
        }
        (None, None, Some(_)) => {
            return Err(Error::config(
                "auth.certificatePem",
                "is required with privateKeyPem",
            ));
        }
        (None, None, None) => {
            return Err(Error::config(
                "auth",
                "needs accessToken, or tenantId and clientId with clientSecret or certificatePem and privateKeyPem",
            ));
        }
    };
    if let Some(host) = overrides.authority_host {
        credential = credential.authority_host(host);
    }
    if let Some(scope) = overrides.scope {
        credential = credential.scope(scope);
    }
    Ok(Auth::Credential(credential, APP))
}

/// `auth.managedIdentity`: `{}` (system-assigned) or one of `clientId`, `objectId`,
/// `resourceId` (user-assigned); the core finds the endpoint in the environment.
fn managed_identity(value: Value) -> Result<Credential, Error> {
    let mut id: Option<(String, String)> = None;
    for (key, value) in object("auth.managedIdentity", value)? {
        let field = format!("auth.managedIdentity.{key}");
        match key.as_str() {
            "clientId" | "objectId" | "resourceId" => {
                let value = string(&field, value)?;
                if let Some((first, _)) = &id {
                    return Err(Error::config(
                        field,
                        format!(
                            "give one of clientId, objectId and resourceId, not {first} and {key}"
                        ),
                    ));
                }
                id = Some((key, value));
            }
            _ => return Err(unknown(&field, &MANAGED_IDENTITY_KEYS.join(", "))),
        }
    }
    let credential = match id {
        None => ManagedIdentityCredential::system_assigned(),
        Some((key, value)) => match key.as_str() {
            "clientId" => ManagedIdentityCredential::user_assigned_client_id(value),
            "objectId" => ManagedIdentityCredential::user_assigned_object_id(value),
            _ => ManagedIdentityCredential::user_assigned_resource_id(value),
        },
    };
    Ok(credential.into())
}

/// `auth.workloadIdentity`: each part given, or from the environment (the core reads it).
fn workload_identity(value: Value) -> Result<Credential, Error> {
    let mut credential = WorkloadIdentityCredential::from_env();
    for (key, value) in object("auth.workloadIdentity", value)? {
        let field = format!("auth.workloadIdentity.{key}");
        credential = match key.as_str() {
            "tenantId" => credential.tenant_id(string(&field, value)?),
            "clientId" => credential.client_id(string(&field, value)?),
            "tokenFile" => credential.token_file(string(&field, value)?),
            "authorityHost" => credential.authority_host(string(&field, value)?),
            _ => return Err(unknown(&field, &WORKLOAD_IDENTITY_KEYS.join(", "))),
        };
    }
    Ok(credential.into())
}

fn timeouts(mut builder: ClientBuilder, value: Value) -> Result<ClientBuilder, Error> {
    let map = object("timeouts", value)?;
    for (key, value) in map {
        let field = format!("timeouts.{key}");
        builder = match key.as_str() {
            "connectMs" => builder.connect_timeout(millis(&field, &value)?),
            "requestMs" => builder.request_timeout(millis(&field, &value)?),
            "totalMs" => builder.total_timeout(millis(&field, &value)?),
            _ => return Err(unknown(&field, TIMEOUT_KEYS)),
        };
    }
    Ok(builder)
}

fn retry(value: Value) -> Result<RetryPolicy, Error> {
    let mut policy = RetryPolicy::default();
    for (key, value) in object("retry", value)? {
        let field = format!("retry.{key}");
        policy = match key.as_str() {
            "maxRetries" => policy.max_retries(count(&field, &value)?),
            "baseDelayMs" => policy.base_delay(millis(&field, &value)?),
            "maxDelayMs" => policy.max_delay(millis(&field, &value)?),
            "maxTotalMs" => policy.max_total_wait(millis(&field, &value)?),
            _ => return Err(unknown(&field, RETRY_KEYS)),
        };
    }
    Ok(policy)
}

fn pacing(value: Value) -> Result<Pacing, Error> {
    let (mut requests, mut per) = (None, None);
    for (key, value) in object("pacing", value)? {
        let field = format!("pacing.{key}");
        match key.as_str() {
            "requests" => requests = Some(count(&field, &value)?),
            "perSeconds" => {
                per = Some(
                    value
                        .as_f64()
                        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                        .ok_or_else(|| {
                            Error::config(
                                &field,
                                format!(
                                    "must be a positive number of seconds, got {}",
                                    kind(&value)
                                ),
                            )
                        })?,
                )
            }
            _ => return Err(unknown(&field, PACING_KEYS)),
        }
    }
    match (requests, per) {
        (Some(requests), Some(per)) => Ok(Pacing::new(requests, per)),
        (None, _) => Err(Error::config("pacing.requests", "is required")),
        (_, None) => Err(Error::config("pacing.perSeconds", "is required")),
    }
}

fn tls(mut builder: ClientBuilder, value: Value) -> Result<ClientBuilder, Error> {
    for (key, value) in object("tls", value)? {
        let field = format!("tls.{key}");
        builder = match key.as_str() {
            "platformVerifier" => builder.tls_platform_verifier(boolean(&field, value)?),
            "extraRootsPem" => builder.extra_root_certificates_pem(string(&field, value)?),
            _ => return Err(unknown(&field, TLS_KEYS)),
        };
    }
    Ok(builder)
}

/// A non-negative integer count; the builder checks the upper limit.
fn count(field: &str, value: &Value) -> Result<u32, Error> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            Error::config(
                field,
                format!("must be a non-negative integer, got {}", kind(value)),
            )
        })
}

/// A duration in whole milliseconds; the builder judges zero and the upper limit.
fn millis(field: &str, value: &Value) -> Result<Duration, Error> {
    value.as_u64().map(Duration::from_millis).ok_or_else(|| {
        Error::config(
            field,
            format!(
                "must be a non-negative integer number of milliseconds, got {}",
                kind(value)
            ),
        )
    })
}

fn string(field: &str, value: Value) -> Result<String, Error> {
    json::string(value).map_err(|reason| Error::config(field, reason))
}

fn boolean(field: &str, value: Value) -> Result<bool, Error> {
    value.as_bool().ok_or_else(|| {
        Error::config(
            field,
            format!("must be true or false, got {}", kind(&value)),
        )
    })
}

fn object(field: &str, value: Value) -> Result<Map<String, Value>, Error> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::config(
            field,
            format!("must be an object, got {}", kind(&other)),
        )),
    }
}

/// An unknown key, named by its path (`timeouts.readMs`); an empty key names the object holding
/// it (`timeouts`, or `config_json` at the top).
fn unknown(field: &str, known: &str) -> Error {
    let (object, key) = field.rsplit_once('.').unwrap_or(("config_json", field));
    let named = if key.is_empty() { object } else { field };
    Error::config(
        named,
        format!("unknown key \"{key}\"; expected one of {known}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn rejected(json: &str) -> (ErrorKind, Value) {
        let err = ClientBuilder::from_config_json(json)
            .and_then(ClientBuilder::build)
            .expect_err(json);
        (err.kind(), serde_json::to_value(&err).unwrap())
    }

    fn parsed(json: &str) -> ClientBuilder {
        ClientBuilder::from_config_json(json).unwrap_or_else(|err| panic!("{json}: {err}"))
    }

    #[test]
    fn every_key_is_accepted() {
        let builder = parsed(
            r#"{"baseUrl":"http://127.0.0.1:9","apiVersion":"v1.0","accessToken":"t",
                "timeouts":{"connectMs":1000,"requestMs":2000,"totalMs":9000},"userAgent":"agent/1",
                "retry":{"maxRetries":2,"baseDelayMs":100,"maxDelayMs":1000,"maxTotalMs":5000},
                "pacing":{"requests":100,"perSeconds":20},
                "proxy":"http://user:pw@127.0.0.1:3128","useEnvProxy":false,
                "tls":{"platformVerifier":true},
                "fetchAfterNoContent":true}"#,
        );
        // Every key reached the builder with its value (the Debug form shows them all, secrets
        // redacted).
        let shown = format!("{builder:?}");
        for setting in [
            r#"base_url: Some("http://127.0.0.1:9")"#,
            "api_version: V1_0",
            "connect_timeout: 1s",
            "request_timeout: 2s",
            "total_timeout: Some(9s)",
            r#"user_agent_suffix: Some("agent/1")"#,
            "max_retries: 2, base_delay: 100ms, max_delay: 1s, max_total_wait: 5s",
            "pacing: Some(Pacing { requests: 100, per: 20s })",
            r#"proxy: Some("<set>")"#,
            "use_env_proxy: false",
            "platform_verifier: true",
            "fetch_after_no_content: true",
        ] {
            assert!(shown.contains(setting), "{setting} missing from {shown}");
        }
        let client = builder.build().unwrap();
        assert_eq!(client.api_version(), ApiVersion::V1_0);
        for config in [
            r#"{"cloud":"usGovDoD","accessToken":"t"}"#,
            r#"{"auth":{"accessToken":"t"}}"#,
            r#"{"cloud":"usGov","auth":{"tenantId":"contoso.onmicrosoft.com","clientId":"app",
                "clientSecret":"s"},"authorityHost":"http://127.0.0.1:9","scope":"api://x/.default"}"#,
        ] {
            parsed(config).build().unwrap();
        }
        let certificate = serde_json::json!({
            "auth": {
                "tenantId": "contoso.onmicrosoft.com",
                "clientId": "app",
                "certificatePem": CERT,
                "privateKeyPem": KEY,
                "algorithm": "RS256",
            },
            "authorityHost": "https://login.microsoftonline.us",
        });
        parsed(&certificate.to_string()).build().unwrap();
    }

    #[test]
    fn identity_sources_are_accepted_and_their_errors_name_the_path() {
        for config in [
            r#"{"auth":{"managedIdentity":{}}}"#,
            r#"{"auth":{"managedIdentity":{"resourceId":"/subscriptions/s/x"}},"scope":"https://graph.microsoft.us/.default"}"#,
            r#"{"auth":{"workloadIdentity":{"tenantId":"t","clientId":"c","tokenFile":"/run/t",
                "authorityHost":"http://127.0.0.1:9"}}}"#,
            // The top-level authorityHost refines it as it does any credential (the core's rule,
            // as Credential::authority_host in Rust).
            r#"{"auth":{"workloadIdentity":{"tenantId":"t","clientId":"c","tokenFile":"/run/t"}},
                "authorityHost":"http://127.0.0.1:9"}"#,
        ] {
            parsed(config)
                .build()
                .unwrap_or_else(|err| panic!("{config}: {err}"));
        }
        let workload = r#""tenantId":"t","clientId":"c","tokenFile":"/run/t""#;
        let cases = [
            (
                r#"{"auth":{"managedIdentity":{"clientId":"a","objectId":"b"}}}"#.to_owned(),
                "auth.managedIdentity.objectId",
            ),
            (
                r#"{"auth":{"managedIdentity":{"principalId":"a"}}}"#.to_owned(),
                "auth.managedIdentity.principalId",
            ),
            (
                r#"{"auth":{"managedIdentity":{"clientId":" "}}}"#.to_owned(),
                "auth.managedIdentity.clientId",
            ),
            (
                r#"{"auth":{"managedIdentity":{"clientId":7}}}"#.to_owned(),
                "auth.managedIdentity.clientId",
            ),
            (r#"{"auth":{"managedIdentity":true}}"#.to_owned(), "auth.managedIdentity"),
            (
                r#"{"auth":{"managedIdentity":{},"tenantId":"t"}}"#.to_owned(),
                "auth.tenantId",
            ),
            (
                r#"{"auth":{"managedIdentity":{}},"authorityHost":"https://login.example"}"#
                    .to_owned(),
                "authorityHost",
            ),
            (r#"{"auth":{"managedIdentity":{}},"scope":""}"#.to_owned(), "scope"),
            (
                format!(r#"{{"auth":{{"workloadIdentity":{{{workload}}},"managedIdentity":{{}}}}}}"#),
                "auth.workloadIdentity",
            ),
            (
                r#"{"auth":{"workloadIdentity":{"tenantId":"a/b","clientId":"c","tokenFile":"/f"}}}"#
                    .to_owned(),
                "auth.workloadIdentity.tenantId",
            ),
            (
                format!(r#"{{"auth":{{"workloadIdentity":{{{workload},"authorityHost":"http://login.example"}}}}}}"#),
                "auth.workloadIdentity.authorityHost",
            ),
            (
                format!(r#"{{"auth":{{"workloadIdentity":{{{workload}}}}},"authorityHost":"http://login.example"}}"#),
                "authorityHost",
            ),
            // Arc's tokens folder guards which file is sent: no configuration moves it.
            (
                r#"{"auth":{"managedIdentity":{"arcTokensFolder":"/tmp"}}}"#.to_owned(),
                "auth.managedIdentity.arcTokensFolder",
            ),
            (
                format!(r#"{{"auth":{{"workloadIdentity":{{{workload},"tokenFile":""}}}}}}"#),
                "auth.workloadIdentity.tokenFile",
            ),
            (
                format!(r#"{{"auth":{{"workloadIdentity":{{{workload},"audience":"x"}}}}}}"#),
                "auth.workloadIdentity.audience",
            ),
            (r#"{"auth":{"workload":{}}}"#.to_owned(), "auth.workload"),
        ];
        for (json, field) in cases {
            let (status, value) = rejected(&json);
            assert_eq!(status, ErrorKind::Config, "{json}: {value}");
            assert_eq!(value["field"], field, "{json}: {value}");
        }
    }

    #[test]
    fn a_credential_set_after_the_json_names_its_own_fields() {
        let json = r#"{"auth":{"tenantId":"t","clientId":"app","clientSecret":"s"}}"#;
        let err = parsed(json)
            .credential(ClientSecretCredential::new("a/b", "app", "s"))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { field, .. } if field == "tenantId"),
            "not auth.tenantId: the JSON's credential was replaced: {err}"
        );
    }

    const CERT: &str = include_str!("../tests/fixtures/test-only-rsa-cert.pem");
    const KEY: &str = include_str!("../tests/fixtures/test-only-rsa-key.pkcs8.pem");

    #[test]
    fn bad_auth_names_the_field_and_never_echoes_a_secret() {
        let secret = "S3CR3T-value";
        let app = r#""tenantId":"contoso.onmicrosoft.com","clientId":"app""#;
        let cases = [
            (
                format!(r#"{{"accessToken":"{secret}","auth":{{"accessToken":"{secret}"}}}}"#),
                "auth",
            ),
            (
                format!(
                    r#"{{"auth":{{{app},"clientSecret":"{secret}","certificatePem":"x","privateKeyPem":"{secret}"}}}}"#
                ),
                "auth.clientSecret",
            ),
            (
                format!(
                    r#"{{"auth":{{{app},"clientSecret":"{secret}","privateKeyPem":"{secret}"}}}}"#
                ),
                "auth.clientSecret",
            ),
            (
                format!(r#"{{"auth":{{"accessToken":"{secret}","clientId":"app"}}}}"#),
                "auth.clientId",
            ),
            (
                format!(r#"{{"auth":{{{app},"password":"{secret}"}}}}"#),
                "auth.password",
            ),
            (
                format!(r#"{{"auth":{{"clientId":"a","clientSecret":"{secret}"}}}}"#),
                "auth.tenantId",
            ),
            (
                format!(r#"{{"auth":{{"tenantId":"t","clientSecret":"{secret}"}}}}"#),
                "auth.clientId",
            ),
            (format!(r#"{{"auth":{{{app}}}}}"#), "auth"),
            (r#"{"auth":"token"}"#.to_owned(), "auth"),
            (
                format!(r#"{{"auth":{{{app},"clientSecret":7}}}}"#),
                "auth.clientSecret",
            ),
            (
                format!(r#"{{"auth":{{{app},"clientSecret":""}}}}"#),
                "auth.clientSecret",
            ),
            (
                format!(
                    r#"{{"auth":{{"tenantId":"a/b","clientId":"app","clientSecret":"{secret}"}}}}"#
                ),
                "auth.tenantId",
            ),
            (
                format!(r#"{{"auth":{{{app},"clientSecret":"{secret}","algorithm":"RS256"}}}}"#),
                "auth.algorithm",
            ),
            (
                format!(
                    r#"{{"auth":{{{app},"certificatePem":"{secret}","privateKeyPem":"{secret}"}}}}"#
                ),
                "auth.privateKeyPem",
            ),
            (
                format!(r#"{{"auth":{{{app},"privateKeyPem":"{secret}"}}}}"#),
                "auth.certificatePem",
            ),
            (
                format!(
                    r#"{{"auth":{{{app},"clientSecret":"{secret}"}},"authorityHost":"http://login.example"}}"#
                ),
                "authorityHost",
            ),
            (
                format!(r#"{{"auth":{{{app},"clientSecret":"{secret}"}},"scope":""}}"#),
                "scope",
            ),
            (
                format!(r#"{{"accessToken":"{secret}","authorityHost":"https://login.example"}}"#),
                "authorityHost",
            ),
            (
                format!(r#"{{"auth":{{"accessToken":"{secret}"}},"scope":"api://x/.default"}}"#),
                "scope",
            ),
        ];
        for (json, field) in cases {
            let (status, value) = rejected(&json);
            assert_eq!(status, ErrorKind::Config, "{json}: {value}");
            assert_eq!(value["field"], field, "{json}: {value}");
            assert!(!value.to_string().contains(secret), "{json}: {value}");
        }
        let bad_algorithm = serde_json::json!({
            "auth": {"tenantId": "t", "clientId": "a", "certificatePem": CERT,
                     "privateKeyPem": KEY, "algorithm": "HS256"},
        });
        let (_, value) = rejected(&bad_algorithm.to_string());
        assert_eq!(value["field"], "auth.algorithm");
        assert!(!value.to_string().contains("PRIVATE KEY"));
    }

    #[test]
    fn bad_configs_name_the_field_and_never_echo_the_token() {
        let cases = [
            (r#"{"accessToken":"t","readTimeout":1}"#, "readTimeout"),
            (
                r#"{"accessToken":"t","timeouts":{"readMs":1}}"#,
                "timeouts.readMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"connectMs":0}}"#,
                "timeouts.connectMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"connectMs":-5}}"#,
                "timeouts.connectMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"requestMs":1.5}}"#,
                "timeouts.requestMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"requestMs":1e300}}"#,
                "timeouts.requestMs",
            ),
            (r#"{"accessToken":"t","timeouts":[]}"#, "timeouts"),
            (
                r#"{"accessToken":"t","retry":{"maxRetries":11}}"#,
                "retry.maxRetries",
            ),
            (
                r#"{"accessToken":"t","retry":{"maxRetries":-1}}"#,
                "retry.maxRetries",
            ),
            (
                r#"{"accessToken":"t","retry":{"jitter":true}}"#,
                "retry.jitter",
            ),
            (r#"{"accessToken":"t","cloud":"mars"}"#, "cloud"),
            (r#"{"accessToken":"t","apiVersion":"v2"}"#, "apiVersion"),
            (
                r#"{"accessToken":"t","baseUrl":"http://example.com"}"#,
                "baseUrl",
            ),
            (r#"{"accessToken":"t","userAgent":""}"#, "userAgent"),
            (
                r#"{"accessToken":"t","fetchAfterNoContent":"yes"}"#,
                "fetchAfterNoContent",
            ),
            (r#"{"accessToken":42}"#, "accessToken"),
            (
                r#"{"accessToken":"t","timeouts":{"totalMs":86400001}}"#,
                "timeouts.totalMs",
            ),
            (
                r#"{"accessToken":"t","pacing":{"requests":0,"perSeconds":1}}"#,
                "pacing.requests",
            ),
            (
                r#"{"accessToken":"t","pacing":{"requests":5}}"#,
                "pacing.perSeconds",
            ),
            (
                r#"{"accessToken":"t","pacing":{"requests":5,"perSeconds":-1}}"#,
                "pacing.perSeconds",
            ),
            (
                r#"{"accessToken":"t","tls":{"extraRootsPem":"junk"}}"#,
                "tls.extraRootsPem",
            ),
            (
                r#"{"accessToken":"t","tls":{"pinning":true}}"#,
                "tls.pinning",
            ),
            (r#"{"accessToken":"t","proxy":"gopher://u:pw@p"}"#, "proxy"),
            (r#"{}"#, "accessToken"),
            (r#"{"accessToken":"t","":1}"#, "config_json"),
            (r#"{"accessToken":"t","timeouts":{"":1}}"#, "timeouts"),
            (r#"{"accessToken":""}"#, "accessToken"),
            (r#"{"accessToken":"a\r\nX-Injected: 1"}"#, "accessToken"),
            (r#"{"auth":{"accessToken":"two words"}}"#, "accessToken"),
            (r#"[]"#, "config_json"),
            (
                r#"{"accessToken":"t","timeouts":{"connectMs":1000},"timeouts":{"totalMs":1}}"#,
                "timeouts",
            ),
            (
                r#"{"accessToken":"t","retry":{"maxRetries":1,"maxRetries":9}}"#,
                "retry.maxRetries",
            ),
            (
                r#"{"auth":{"tenantId":"t","clientId":"a","clientSecret":"x","clientSecret":"y"}}"#,
                "auth.clientSecret",
            ),
        ];
        for (json, field) in cases {
            let (status, value) = rejected(json);
            assert_eq!(status, ErrorKind::Config, "{json}: {value}");
            assert_eq!(value["field"], field, "{json}: {value}");
        }
        let (status, value) =
            rejected(r#"{"accessToken":"s3cr3t-token","accessToken":"s3cr3t-other"}"#);
        assert_eq!(
            (status, &value["field"]),
            (ErrorKind::Config, &"accessToken".into())
        );
        assert!(!value.to_string().contains("s3cr3t"));
        let (status, value) = rejected(r#"{"accessToken":"s3cr3t-token","bogus":true}"#);
        assert_eq!(status, ErrorKind::Config);
        assert!(!value.to_string().contains("s3cr3t"));
        // Not JSON: the C API calls it INVALID_JSON (ffi/config.rs); Rust, a configuration error.
        let (status, value) = rejected(r#"{"accessToken":"s3cr3t-token" "#);
        assert_eq!(
            (status, &value["field"]),
            (ErrorKind::Config, &"config_json".into())
        );
        assert!(!value.to_string().contains("s3cr3t"));
    }
}
