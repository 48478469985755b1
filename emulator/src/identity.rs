//! A fake of the Microsoft identity platform's token endpoint, for app-only
//! tokens (OAuth2 client credentials): `POST /{tenant}/oauth2/v2.0/token`.
//!
//! The request is form-encoded (`client_id`, `scope`,
//! `grant_type=client_credentials`, and either `client_secret` or
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! with `client_assertion`). Apps are registered in [`crate::Config::apps`].
//! A success answers
//! `{"token_type":"Bearer","expires_in":N,"ext_expires_in":N,"access_token":"..."}`
//! with an opaque random token that Graph requests then accept until it
//! expires.
//!
//! # Client assertions
//!
//! A compact JWS, base64url without padding. Header: `alg` `RS256` or
//! `PS256`, `typ` `JWT`, `x5t#S256` = base64url(SHA-256(DER)) of one of the
//! app's registered certificates, whose RSA key must verify the signature.
//! Claims: `aud` = the token endpoint URL as the client addressed it
//! (`http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`, from the Host
//! header; `https` when serving TLS), `iss` = `sub` = `client_id`, a `jti`
//! never seen before, `exp` after now, `nbf` (or else `iat`) at most 5
//! minutes ahead of now (clock skew), and `exp` at most 10 minutes after
//! `nbf` (or `iat`, or now when neither is given). Checks run in the order
//! of the table below; the `jti` is only remembered once everything else
//! passed, so a rejected assertion can be fixed and resent.
//!
//! For an app with [`crate::FederatedCredential`]s, an assertion whose
//! header names no certificate (`x5t#S256` or `x5t`) is a platform's token
//! (workload identity federation), checked as [`crate::federated`] lists.
//!
//! # Errors
//!
//! Shaped like Entra ID's: `{"error","error_description":"AADSTSn: ...\r\nTrace
//! ID: ...\r\nCorrelation ID: ...\r\nTimestamp: ...","error_codes":[n],
//! "timestamp","trace_id","correlation_id","error_uri"}`. The correlation id
//! is the request's `client-request-id` when that is a GUID (as Entra does).
//!
//! | condition | status | `error` | code |
//! |---|---|---|---|
//! | method other than POST | 400 | `invalid_request` | 900561 |
//! | tenant with no registered app | 400 | `invalid_request` | 90002 |
//! | body not form-encoded, or a parameter missing | 400 | `invalid_request` | 900144 |
//! | `grant_type` other than `client_credentials` | 400 | `unsupported_grant_type` | 70003 |
//! | `client_id` not registered in the tenant | 400 | `unauthorized_client` | 700016 |
//! | `scope` without the `/.default` suffix | 400 | `invalid_scope` | 1002012 |
//! | `scope` for another resource than [`crate::Config::expected_scope`] | 400 | `invalid_scope` | 70011 |
//! | neither (or both) `client_secret` and `client_assertion` | 401 | `invalid_client` | 7000218 |
//! | wrong `client_secret`, or the app has no secret | 401 | `invalid_client` | 7000215 |
//! | missing or wrong `client_assertion_type` | 400 | `invalid_request` | 900144 |
//! | malformed JWT: not three base64url parts, bad JSON, `typ` not JWT, `alg` not RS256/PS256, a header or claim missing | 401 | `invalid_client` | 50027 |
//! | `x5t#S256` names no registered certificate of the app ("The key was not found") | 401 | `invalid_client` | 700027 |
//! | signature does not verify | 401 | `invalid_client` | 700027 |
//! | `iss` or `sub` is not the `client_id` | 401 | `invalid_client` | 700021 |
//! | `aud` is not the token endpoint URL | 401 | `invalid_client` | 50013 |
//! | expired, not yet valid, or valid for over 10 minutes | 401 | `invalid_client` | 700024 |
//! | `jti` already used (replay) | 401 | `invalid_client` | 50013 |
//!
//! Entra uses 700027 both for an unknown key and a bad signature; the
//! descriptions tell them apart (`The key was not found` vs `did not match
//! the expected signature value`), as do those of the two 50013 cases
//! (`audience` vs `already been used`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use serde_json::{Map, Value};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use crate::federated::{self, FederatedCredential, Issuer};
use crate::log::RequestLog;
use crate::message::{Request, RequestIds, Response, utc_seconds};
use crate::sync::lock;

/// The only `client_assertion_type` accepted.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `rsaEncryption`, the only certificate key type Entra takes for assertions.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// How far ahead of the emulator's clock `nbf`/`iat` may be.
const CLOCK_SKEW_SECS: i64 = 300;
/// The longest assertion lifetime accepted.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 600;

/// An app registration the token endpoint knows.
///
/// An app with a `secret` can use the client secret flow; one with a
/// `certificate_pem` can use client assertions signed by that
/// certificate's key. Both may be set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct App {
    /// The tenant (directory) the app lives in, as it appears in the token
    /// URL: a GUID or a domain name (compared case-insensitively).
    pub tenant: String,
    /// The application (client) id (compared case-insensitively).
    pub client_id: String,
    /// The client secret, if the app has one.
    pub secret: Option<String>,
    /// The app's certificate(s), PEM: every `CERTIFICATE` block is
    /// registered (as Entra allows several keys, e.g. during rotation).
    /// Each must hold an RSA public key.
    pub certificate_pem: Option<String>,
}

/// What Graph's auth check makes of a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenState {
    /// Issued here and not expired.
    Valid,
    /// Issued here but expired.
    Expired,
    /// Never issued here.
    Unknown,
}

/// A registered certificate, reduced to what verification needs.
#[derive(Debug)]
struct RegisteredCert {
    /// base64url(SHA-256(DER)), as clients send in `x5t#S256`.
    x5t_s256: String,
    /// The PKCS#1 `RSAPublicKey` DER, as `ring` takes it.
    rsa_public_key: Vec<u8>,
}

#[derive(Debug)]
struct Registered {
    app: App,
    certs: Vec<RegisteredCert>,
    /// The platform tokens the app accepts (workload identity federation).
    federated: Vec<FederatedCredential>,
}

/// The token endpoint's state: registered apps, issued tokens, seen `jti`s
/// and its own request log.
#[derive(Debug)]
pub(crate) struct Identity {
    apps: Vec<Registered>,
    /// Graph accepts only tokens issued here even without apps (managed
    /// identity endpoints issue them).
    managed_identity: bool,
    lifetime: Duration,
    scope: String,
    /// The OIDC issuer whose tokens federated credentials accept.
    pub(crate) federated: Issuer,
    /// Issued access tokens and when each expires.
    issued: Mutex<HashMap<String, Instant>>,
    /// Every `jti` of an accepted assertion, for replay detection.
    jtis: Mutex<HashSet<String>>,
    /// Every token request received.
    pub(crate) log: RequestLog,
}

impl Identity {
    /// Parses the apps' certificates and attaches the federated credentials
    /// (registering an app that has only those); fails naming the app whose
    /// PEM is bad. `managed_identity`: the managed-identity endpoints issue
    /// tokens too.
    pub(crate) fn new(
        apps: Vec<App>,
        federated: Vec<FederatedCredential>,
        managed_identity: bool,
        lifetime: Duration,
        scope: String,
    ) -> Result<Self, String> {
        let mut apps = apps
            .into_iter()
            .map(|app| {
                let certs = match &app.certificate_pem {
                    None => Vec::new(),
                    Some(pem) => {
                        parse_certs(pem).map_err(|e| format!("app '{}': {e}", app.client_id))?
                    }
                };
                Ok(Registered {
                    app,
                    certs,
                    federated: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        for credential in federated {
            let same = |r: &Registered| {
                r.app.tenant.eq_ignore_ascii_case(&credential.tenant)
                    && r.app.client_id.eq_ignore_ascii_case(&credential.client_id)
            };
            let index = match apps.iter().position(same) {
                Some(index) => index,
                None => {
                    apps.push(Registered {
                        app: App {
                            tenant: credential.tenant.clone(),
                            client_id: credential.client_id.clone(),
                            ..App::default()
                        },
                        certs: Vec::new(),
                        federated: Vec::new(),
                    });
                    apps.len() - 1
                }
            };
            apps[index].federated.push(credential);
        }
        Ok(Identity {
            apps,
            managed_identity,
            lifetime,
            scope,
            federated: Issuer::default(),
            issued: Mutex::new(HashMap::new()),
            jtis: Mutex::new(HashSet::new()),
            log: RequestLog::default(),
        })
    }

    /// Whether any app is registered or the managed-identity endpoints are
    /// served (then Graph accepts only issued tokens, unless a static token
    /// is configured too).
    pub(crate) fn issues_tokens(&self) -> bool {
        !self.apps.is_empty() || self.managed_identity
    }

    /// The lifetime of issued tokens.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The one resource tokens are issued for: the expected scope without
    /// `/.default` (what managed-identity endpoints are asked for).
    pub(crate) fn resource(&self) -> &str {
        self.scope.trim_end_matches("/.default")
    }

    /// Whether `token` was issued here and is still valid.
    pub(crate) fn check(&self, token: &str) -> TokenState {
        match lock(&self.issued).get(token) {
            Some(expiry) if Instant::now() < *expiry => TokenState::Valid,
            Some(_) => TokenState::Expired,
            None => TokenState::Unknown,
        }
    }

    /// How many tokens were issued (expired ones included).
    pub(crate) fn issued_count(&self) -> usize {
        lock(&self.issued).len()
    }

    /// Makes every issued token expired as of now.
    pub(crate) fn expire_all(&self) {
        let now = Instant::now();
        for expiry in lock(&self.issued).values_mut() {
            *expiry = now;
        }
    }

    /// A new opaque access token that Graph accepts until it expires.
    pub(crate) fn issue(&self) -> String {
        // Opaque on purpose: clients must not parse access tokens.
        let token = format!(
            "ius-emulator-at.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        lock(&self.issued).insert(token.clone(), Instant::now() + self.lifetime);
        token
    }
}

/// Every certificate in `pem`, with its `x5t#S256` and RSA key.
fn parse_certs(pem: &str) -> Result<Vec<RegisteredCert>, String> {
    let mut certs = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| format!("bad certificate PEM: {e}"))?;
        let cert = Certificate::from_der(&der).map_err(|e| format!("bad certificate: {e}"))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
            return Err(format!(
                "the certificate's key is not RSA (algorithm {})",
                spki.algorithm.oid
            ));
        }
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the certificate's public key is not a whole number of bytes")?;
        certs.push(RegisteredCert {
            x5t_s256: URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &der)),
            rsa_public_key: key.to_vec(),
        });
    }
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the PEM".to_owned());
    }
    Ok(certs)
}

/// Whether `path` is `/{tenant}/oauth2/v2.0/token`.
pub(crate) fn is_token_path(path: &str) -> bool {
    token_tenant(path).is_some()
}

/// The tenant segment of a token endpoint path.
fn token_tenant(path: &str) -> Option<&str> {
    let mut segs = path.strip_prefix('/')?.split('/');
    let tenant = segs.next().filter(|t| !t.is_empty())?;
    let rest: Vec<&str> = segs.collect();
    let is_token = rest.len() == 3
        && rest[0].eq_ignore_ascii_case("oauth2")
        && rest[1].eq_ignore_ascii_case("v2.0")
        && rest[2].eq_ignore_ascii_case("token");
    is_token.then_some(tenant)
}

/// An Entra-shaped rejection.
struct Reject {
    status: u16,
    error: &'static str,
    code: u32,
    message: String,
}

fn reject(status: u16, error: &'static str, code: u32, message: impl Into<String>) -> Reject {
    Reject {
        status,
        error,
        code,
        message: message.into(),
    }
}

/// `invalid_client`, 401: what Entra answers for every credential problem.
fn bad_client(code: u32, message: impl Into<String>) -> Reject {
    reject(401, "invalid_client", code, message)
}

fn missing(param: &str) -> Reject {
    reject(
        400,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{param}'."),
    )
}

/// Answers a token request (already recorded in the token log); `base` is
/// `scheme://host` as the client addressed us (the assertion audience).
pub(crate) fn answer(identity: &Identity, req: &Request, ids: &RequestIds, base: &str) -> Response {
    match issue_for(identity, req, base) {
        Ok(token) => {
            let secs = identity.lifetime.as_secs();
            #[derive(Serialize)]
            struct Success {
                token_type: &'static str,
                expires_in: u64,
                ext_expires_in: u64,
                access_token: String,
            }
            let body = Success {
                token_type: "Bearer",
                expires_in: secs,
                ext_expires_in: secs,
                access_token: token,
            };
            json(200, ids, serde_json::to_vec(&body).unwrap_or_default())
        }
        Err(r) => error_response(ids, &r),
    }
}

fn issue_for(identity: &Identity, req: &Request, base: &str) -> Result<String, Reject> {
    if req.method != "POST" {
        return Err(reject(
            400,
            "invalid_request",
            900_561,
            format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                req.method
            ),
        ));
    }
    let tenant = token_tenant(req.path()).unwrap_or("");
    if !identity
        .apps
        .iter()
        .any(|r| r.app.tenant.eq_ignore_ascii_case(tenant))
    {
        return Err(reject(
            400,
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    // Entra does not read a body of another type: the first thing it then
    // misses is grant_type.
    let is_form = req.header("content-type").is_some_and(|v| {
        v.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    let form = if is_form {
        parse_form(&req.body)
    } else {
        HashMap::new()
    };
    let param = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let grant_type = param("grant_type").ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(reject(
            400,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = param("client_id").ok_or_else(|| missing("client_id"))?;
    let registered = identity
        .apps
        .iter()
        .find(|r| {
            r.app.tenant.eq_ignore_ascii_case(tenant)
                && r.app.client_id.eq_ignore_ascii_case(client_id)
        })
        .ok_or_else(|| {
            reject(
                400,
                "unauthorized_client",
                700_016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                ),
            )
        })?;
    let scope = param("scope").ok_or_else(|| missing("scope"))?;
    if !scope.ends_with("/.default") {
        return Err(reject(
            400,
            "invalid_scope",
            1_002_012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    if scope != identity.scope {
        return Err(reject(
            400,
            "invalid_scope",
            70_011,
            format!(
                "The provided value for the input parameter 'scope' isn't valid. The scope {scope} isn't valid. Expected {}.",
                identity.scope
            ),
        ));
    }
    match (param("client_secret"), param("client_assertion")) {
        (Some(secret), None) => {
            if registered.app.secret.as_deref() != Some(secret) {
                return Err(bad_client(
                    7_000_215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                ));
            }
        }
        (None, Some(assertion)) => {
            match param("client_assertion_type") {
                Some(JWT_BEARER) => {}
                Some(other) => {
                    return Err(reject(
                        400,
                        "invalid_request",
                        900_144,
                        format!(
                            "The value of 'client_assertion_type' ('{other}') is not supported; expected '{JWT_BEARER}'."
                        ),
                    ));
                }
                None => return Err(missing("client_assertion_type")),
            }
            // A token of the app's own making names the certificate that signed
            // it; a platform's token (workload identity federation) does not.
            if registered.federated.is_empty() || federated::names_a_certificate(assertion) {
                let audience = format!("{base}{}", req.path());
                verify_assertion(identity, registered, client_id, assertion, &audience)?;
            } else {
                identity
                    .federated
                    .verify(assertion, registered.federated.iter())
                    .map_err(|(code, message)| bad_client(code, message))?;
            }
        }
        (Some(_), Some(_)) => {
            return Err(bad_client(
                7_000_218,
                "The request body must contain only one of the following parameters: 'client_assertion' or 'client_secret'.",
            ));
        }
        (None, None) => {
            return Err(bad_client(
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
    }
    Ok(identity.issue())
}

/// Checks a client assertion; remembers its `jti` only if it is accepted.
fn verify_assertion(
    identity: &Identity,
    registered: &Registered,
    client_id: &str,
    jwt: &str,
    audience: &str,
) -> Result<(), Reject> {
    let malformed = |why: &str| {
        bad_client(
            50_027,
            format!("JWT token is invalid or malformed. [Reason - {why}]"),
        )
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header_b64, claims_b64, signature_b64] = parts[..] else {
        return Err(malformed("The token does not have three parts."));
    };
    let object = |part: &str, what: &str| -> Result<Map<String, Value>, Reject> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed(&format!("The {what} is not base64url without padding.")))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(malformed(&format!("The {what} is not a JSON object."))),
        }
    };
    let header = object(header_b64, "header")?;
    let claims = object(claims_b64, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| malformed("The signature is not base64url without padding."))?;
    let text = |map: &Map<String, Value>, name: &str| -> Result<String, Reject> {
        match map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(malformed(&format!(
                "The '{name}' is missing or not a string."
            ))),
        }
    };

    let typ = text(&header, "typ")?;
    if !typ.eq_ignore_ascii_case("JWT") {
        return Err(malformed(&format!("The 'typ' is '{typ}', not 'JWT'.")));
    }
    let alg = text(&header, "alg")?;
    let params: &'static dyn signature::VerificationAlgorithm = match alg.as_str() {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        _ => {
            return Err(malformed(&format!(
                "The 'alg' '{alg}' is not supported (RS256 or PS256)."
            )));
        }
    };
    let x5t = text(&header, "x5t#S256")?;
    let Some(cert) = registered.certs.iter().find(|c| c.x5t_s256 == x5t) else {
        return Err(bad_client(
            700_027,
            format!(
                "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '{x5t}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
            ),
        ));
    };
    let signed = &jwt[..header_b64.len() + 1 + claims_b64.len()];
    if signature::UnparsedPublicKey::new(params, &cert.rsa_public_key)
        .verify(signed.as_bytes(), &signature)
        .is_err()
    {
        return Err(bad_client(
            700_027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{x5t}']"
            ),
        ));
    }

    for name in ["iss", "sub"] {
        let value = text(&claims, name)?;
        if value != client_id {
            return Err(bad_client(
                700_021,
                format!(
                    "Client assertion application identifier doesn't match 'client_id' parameter. ('{name}' is '{value}', client_id is '{client_id}'.) Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
                ),
            ));
        }
    }
    // `aud` may be a string or an array of strings (RFC 7519 §4.1.3).
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(audience)),
        _ => return Err(malformed("The 'aud' is missing.")),
    };
    if !aud_ok {
        return Err(bad_client(
            50_013,
            format!(
                "Assertion failed audience validation: the 'aud' claim {} is not the token endpoint '{audience}'.",
                claims.get("aud").map(Value::to_string).unwrap_or_default()
            ),
        ));
    }
    let jti = text(&claims, "jti")?;
    let number = |name: &str| -> Result<Option<i64>, Reject> {
        match claims.get(name) {
            None => Ok(None),
            // NumericDate may carry a fraction; whole seconds are enough here.
            Some(v) => v
                .as_f64()
                .map(|f| Some(f.floor() as i64))
                .ok_or_else(|| malformed(&format!("The '{name}' is not a number."))),
        }
    };
    let exp = number("exp")?.ok_or_else(|| malformed("The 'exp' is missing."))?;
    let nbf = number("nbf")?;
    let iat = number("iat")?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let start = nbf.or(iat);
    let out_of_range = |why: &str| {
        bad_client(
            700_024,
            format!(
                "Client assertion is not within its valid time range. [Reason - {why}] Current time: {now}, assertion valid from {}, expiry time of assertion {exp}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                start.map_or("(not given)".to_owned(), |s| s.to_string())
            ),
        )
    };
    if exp <= now {
        return Err(out_of_range("The assertion has expired."));
    }
    if start.is_some_and(|s| s > now + CLOCK_SKEW_SECS) {
        return Err(out_of_range("The assertion is not yet valid."));
    }
    if exp - start.unwrap_or(now) > MAX_ASSERTION_LIFETIME_SECS {
        return Err(out_of_range(
            "The assertion's lifetime exceeds the allowed maximum of 10 minutes.",
        ));
    }
    if !lock(&identity.jtis).insert(jti.clone()) {
        return Err(bad_client(
            50_013,
            format!(
                "Assertion is invalid: the client assertion with jti '{jti}' has already been used."
            ),
        ));
    }
    Ok(())
}

/// Decoded `name=value` pairs of a form body or a query string (`+` is a
/// space); the first of repeated names wins.
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut form = HashMap::new();
    for pair in String::from_utf8_lossy(body).split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        form.entry(decode(name)).or_insert_with(|| decode(value));
    }
    form
}

fn json(status: u16, ids: &RequestIds, body: Vec<u8>) -> Response {
    Response::with_body(status, "application/json; charset=utf-8", body)
        .header("Cache-Control", "no-store, no-cache")
        .header("Pragma", "no-cache")
        .header("x-ms-request-id", ids.request_id.clone())
}

fn error_response(ids: &RequestIds, r: &Reject) -> Response {
    let timestamp = format!("{}Z", utc_seconds(time::OffsetDateTime::now_utc(), ' '));
    let trace_id = ids.request_id.clone();
    // Entra takes the client's client-request-id as the correlation id when
    // it is a GUID.
    let correlation_id = match uuid::Uuid::parse_str(&ids.client_request_id) {
        Ok(_) => ids.client_request_id.clone(),
        Err(_) => uuid::Uuid::new_v4().to_string(),
    };
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        error_description: String,
        error_codes: [u32; 1],
        timestamp: &'a str,
        trace_id: &'a str,
        correlation_id: &'a str,
        error_uri: String,
    }
    let body = Body {
        error: r.error,
        error_description: format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            r.code, r.message
        ),
        error_codes: [r.code],
        timestamp: &timestamp,
        trace_id: &trace_id,
        correlation_id: &correlation_id,
        error_uri: format!("https://login.microsoftonline.com/error?code={}", r.code),
    };
    json(r.status, ids, serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths() {
        assert!(is_token_path("/t1/oauth2/v2.0/token"));
        assert!(is_token_path("/contoso.onmicrosoft.com/OAuth2/V2.0/Token"));
        assert!(!is_token_path("//oauth2/v2.0/token"));
        assert!(!is_token_path("/t1/oauth2/token"));
        assert!(!is_token_path("/t1/oauth2/v2.0/token/x"));
        assert!(!is_token_path("/beta/deviceManagement"));
    }

    #[test]
    fn form_decoding() {
        let form = parse_form(b"a=1+2&b=%2F.default&a=3&c&=x");
        assert_eq!(form["a"], "1 2");
        assert_eq!(form["b"], "/.default");
        assert_eq!(form["c"], "");
    }

    #[test]
    fn rejects_non_rsa_and_empty_pem() {
        assert!(parse_certs("").is_err());
        assert!(
            parse_certs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }
}
