//! Managed identity: tokens from the machine's own identity endpoint, with no secret stored
//! anywhere. The endpoint is found from the environment when the client is built, as
//! Microsoft's libraries find it:
//!
//! - **App Service / Functions** (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`): `GET` with
//!   `api-version=2019-08-01` and the header's value in `X-IDENTITY-HEADER`;
//! - **Azure Arc** (`IDENTITY_ENDPOINT` and `IMDS_ENDPOINT`, or the Arc agent installed): `GET`
//!   with `api-version=2019-11-01` and `Metadata: true`, answered by a 401 whose Basic realm names
//!   a key file (`arc_key`), then the same `GET` with the file's contents;
//! - **IMDS** (Azure VMs and scale sets) otherwise: `GET http://169.254.169.254/metadata/identity/
//!   oauth2/token` (the host replaced by `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set) with
//!   `api-version=2018-02-01` and `Metadata: true`. Nothing answering within a second means there
//!   is no IMDS here, which is said at once.
//!
//! These endpoints are plain http on loopback or link-local addresses by design (`url`'s
//! [`Endpoint::ManagedIdentity`]) and never go through a proxy.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};

use log::debug;
use serde::Deserialize;
use ureq::Agent;
use ureq::http::Uri;
use zeroize::Zeroizing;

use crate::abortable;
use crate::auth::answer::{MAX_ANSWER_BYTES, read_answer, scrub};
use crate::auth::arc_key;
use crate::auth::cache::{FreshToken, TokenCache, TokenSource};
use crate::auth::environment::{
    AZURE_POD_IDENTITY_AUTHORITY_HOST, EnvSource, Environment, IDENTITY_ENDPOINT, IDENTITY_HEADER,
    IDENTITY_SERVER_THUMBPRINT, IMDS_ENDPOINT,
};
use crate::auth::{AuthResult, TokenProvider};
use crate::auth_error::AuthError;
use crate::cancel;
use crate::metrics;
use crate::retry::{RetryPolicy, Verdict, decide, parse_retry_after};
use crate::url::{Endpoint as UrlKind, check_endpoint};
use crate::{Cloud, Error};

/// IMDS's address, whose host `AZURE_POD_IDENTITY_AUTHORITY_HOST` replaces.
const IMDS_HOST: &str = "http://169.254.169.254";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
/// A connection to IMDS not made within this long, before it ever answered, means there is no
/// IMDS here.
const IMDS_CONNECT: Duration = Duration::from_secs(1);
/// IMDS answers 410 while it is being updated: asked again this often, this many times (70 s in
/// all, Microsoft's IMDS guidance and MSAL's `ImdsRetryPolicy`), within the call's budget.
const IMDS_GONE_WAIT: Duration = Duration::from_secs(10);
const IMDS_GONE_RETRIES: u32 = 7;

/// App-only authentication as the machine's managed identity (Azure VMs and scale sets, App
/// Service and Functions, servers joined to Azure Arc): no secret to store or rotate.
///
/// ```
/// use intune_user_status::{Client, ManagedIdentityCredential};
/// // The environment (IDENTITY_ENDPOINT, IDENTITY_HEADER, IMDS_ENDPOINT, ...) is read by `build`.
/// let system = ManagedIdentityCredential::system_assigned();
/// let user = ManagedIdentityCredential::user_assigned_client_id("11111111-2222-3333-4444-555555555555");
/// let client = Client::builder().credential(user).build()?;
/// # Ok::<(), intune_user_status::Error>(())
/// ```
#[derive(Clone)]
pub struct ManagedIdentityCredential {
    id: Option<UserAssignedId>,
    pub(super) scope: Option<String>,
    /// Set through [`Credential::authority_host`](crate::Credential::authority_host): refused,
    /// since the endpoint comes from the environment.
    pub(super) authority_host: Option<String>,
    environment: EnvSource,
}

/// Which user-assigned identity to ask for, by one of its three ids.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UserAssignedId {
    Client(String),
    Object(String),
    Resource(String),
}

impl UserAssignedId {
    /// The setting that names it, for errors (`config_json` spells it the same).
    fn field(&self) -> &'static str {
        match self {
            UserAssignedId::Client(_) => "clientId",
            UserAssignedId::Object(_) => "objectId",
            UserAssignedId::Resource(_) => "resourceId",
        }
    }

    fn value(&self) -> &str {
        match self {
            UserAssignedId::Client(id)
            | UserAssignedId::Object(id)
            | UserAssignedId::Resource(id) => id,
        }
    }
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids are not secrets; the environment shows its names only.
        f.debug_struct("ManagedIdentityCredential")
            .field("id", &self.id)
            .field("scope", &self.scope)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityCredential {
    /// The machine's (or app's) system-assigned identity.
    pub fn system_assigned() -> ManagedIdentityCredential {
        ManagedIdentityCredential::with_id(None)
    }

    /// A user-assigned identity, by its client (application) id.
    pub fn user_assigned_client_id(id: impl Into<String>) -> ManagedIdentityCredential {
        ManagedIdentityCredential::with_id(Some(UserAssignedId::Client(id.into())))
    }

    /// A user-assigned identity, by its object (principal) id.
    pub fn user_assigned_object_id(id: impl Into<String>) -> ManagedIdentityCredential {
        ManagedIdentityCredential::with_id(Some(UserAssignedId::Object(id.into())))
    }

    /// A user-assigned identity, by its Azure resource id
    /// (`/subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/...`).
    pub fn user_assigned_resource_id(id: impl Into<String>) -> ManagedIdentityCredential {
        ManagedIdentityCredential::with_id(Some(UserAssignedId::Resource(id.into())))
    }

    fn with_id(id: Option<UserAssignedId>) -> ManagedIdentityCredential {
        ManagedIdentityCredential {
            id,
            scope: None,
            authority_host: None,
            environment: EnvSource::Process,
        }
    }

    /// Asks for a token for this scope's resource (the scope without `/.default`) instead of the
    /// client's cloud's Graph root.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Tests only (feature `test-seams`, not an API): reads the environment from these
    /// `(name, value)` pairs instead of the process's, so tests running on parallel threads need
    /// not change the process environment.
    #[cfg(any(test, feature = "test-seams"))]
    #[doc(hidden)]
    pub fn environment<K: Into<String>, V: Into<std::ffi::OsString>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment = EnvSource::Given(Environment::from_pairs(vars));
        self
    }

    /// Finds the endpoint in the environment, checks the settings and makes the client's cached
    /// token provider. `retry` is the client's policy, which IMDS's answers are retried under.
    pub(crate) fn into_provider(
        self,
        agent: Agent,
        cloud: Cloud,
        retry: RetryPolicy,
    ) -> Result<Arc<dyn TokenProvider>, Error> {
        if self.authority_host.is_some() {
            return Err(Error::config(
                "authorityHost",
                "does not apply to managed identity: its endpoint comes from the environment",
            ));
        }
        let resource = match &self.scope {
            Some(scope) if scope.trim().is_empty() => {
                return Err(Error::config("scope", "must not be empty"));
            }
            Some(scope) => scope.trim_end_matches("/.default").to_owned(),
            None => cloud.graph_root().to_owned(),
        };
        if let Some(id) = &self.id
            && id.value().trim().is_empty()
        {
            return Err(Error::config(id.field(), "must not be empty"));
        }
        let env = self.environment.read();
        let endpoint = find_endpoint(
            &env,
            arc_key::agent_installed(&env),
            arc_key::tokens_folder(&env),
        )?;
        if let (Endpoint::Arc { .. }, Some(id)) = (&endpoint, &self.id) {
            return Err(Error::config(
                id.field(),
                "Azure Arc supports only the system-assigned identity; leave the user-assigned id out",
            ));
        }
        debug!(
            "managed identity: {} at {}",
            endpoint.name(),
            endpoint.url()
        );
        Ok(Arc::new(TokenCache::new(ManagedIdentitySource {
            agent,
            endpoint,
            resource,
            id: self.id,
            retry,
            gone_wait: gone_wait(&env),
            answered: AtomicBool::new(false),
        })))
    }
}

/// Where the machine's identity endpoint is, and what it needs.
enum Endpoint {
    AppService {
        url: String,
        header: Zeroizing<String>,
    },
    Arc {
        url: String,
        tokens_folder: PathBuf,
    },
    Imds {
        url: String,
    },
}

impl Endpoint {
    fn name(&self) -> &'static str {
        match self {
            Endpoint::AppService { .. } => "App Service",
            Endpoint::Arc { .. } => "Azure Arc",
            Endpoint::Imds { .. } => "IMDS",
        }
    }

    fn url(&self) -> &str {
        match self {
            Endpoint::AppService { url, .. }
            | Endpoint::Arc { url, .. }
            | Endpoint::Imds { url } => url,
        }
    }

    fn api_version(&self) -> &'static str {
        match self {
            Endpoint::AppService { .. } => "2019-08-01",
            Endpoint::Arc { .. } => "2019-11-01",
            Endpoint::Imds { .. } => "2018-02-01",
        }
    }

    /// The query parameter that names a user-assigned identity at this endpoint.
    fn id_parameter(&self, id: &UserAssignedId) -> &'static str {
        match (self, id) {
            (_, UserAssignedId::Client(_)) => "client_id",
            (Endpoint::AppService { .. }, UserAssignedId::Object(_)) => "principal_id",
            (_, UserAssignedId::Object(_)) => "object_id",
            (Endpoint::AppService { .. }, UserAssignedId::Resource(_)) => "mi_res_id",
            (_, UserAssignedId::Resource(_)) => "msi_res_id",
        }
    }

    /// Whether an answer with this status is worth asking again, and how.
    fn retry_for(&self, status: u16, retry_after: Option<Duration>) -> Retry {
        match (self, status) {
            // IMDS is being updated.
            (Endpoint::Imds { .. }, 410) => Retry::Gone,
            // Microsoft's IMDS guidance: 404 while an identity is being assigned, 408, 429, 5xx.
            (Endpoint::Imds { .. }, 404 | 408 | 429 | 500..=599) => Retry::Policy(retry_after),
            (_, 429 | 500..=599) => Retry::Policy(retry_after),
            _ => Retry::Never,
        }
    }
}

/// IMDS's wait after a 410: [`IMDS_GONE_WAIT`], or in a build with the test seams what
/// `IUS_TEST_IMDS_GONE_WAIT_MS` says, so tests need not wait 10 s.
fn gone_wait(env: &Environment) -> Duration {
    #[cfg(any(test, feature = "test-seams"))]
    if let Some(ms) = env
        .get(crate::auth::environment::IUS_TEST_IMDS_GONE_WAIT_MS)
        .and_then(|ms| ms.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    let _ = env;
    IMDS_GONE_WAIT
}

/// The endpoint the environment describes (`arc_installed`: the Arc agent is on this machine).
fn find_endpoint(
    env: &Environment,
    arc_installed: bool,
    tokens_folder: PathBuf,
) -> Result<Endpoint, Error> {
    if let Some(url) = env.get(IDENTITY_ENDPOINT) {
        if let Some(header) = env.get(IDENTITY_HEADER) {
            if env.get(IDENTITY_SERVER_THUMBPRINT).is_some() {
                return Err(Error::config(
                    IDENTITY_SERVER_THUMBPRINT,
                    "is set: Service Fabric's managed identity is not supported",
                ));
            }
            return Ok(Endpoint::AppService {
                url: checked_url(IDENTITY_ENDPOINT, url)?,
                header: Zeroizing::new(header.to_owned()),
            });
        }
        if env.get(IMDS_ENDPOINT).is_some() {
            return Ok(Endpoint::Arc {
                url: checked_url(IDENTITY_ENDPOINT, url)?,
                tokens_folder,
            });
        }
    }
    if arc_installed {
        return Ok(Endpoint::Arc {
            url: arc_key::DEFAULT_ENDPOINT.to_owned(),
            tokens_folder,
        });
    }
    let (variable, host) = match env.get(AZURE_POD_IDENTITY_AUTHORITY_HOST) {
        Some(host) => (AZURE_POD_IDENTITY_AUTHORITY_HOST, host),
        None => ("managedIdentity", IMDS_HOST),
    };
    let url = format!("{}{IMDS_PATH}", host.trim_end_matches('/'));
    Ok(Endpoint::Imds {
        url: checked_url(variable, &url)?,
    })
}

/// An endpoint URL from the environment, held to `url`'s rule for managed-identity endpoints.
fn checked_url(variable: &str, url: &str) -> Result<String, Error> {
    let uri = Uri::from_str(url)
        .map_err(|err| Error::config(variable, format!("\"{url}\" is not a URL ({err})")))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(Error::config(
            variable,
            "must not carry a user name or password",
        ));
    }
    check_endpoint(&uri, UrlKind::ManagedIdentity).map_err(|_| {
        Error::config(
            variable,
            format!(
                "\"{url}\" must be https://, or http:// to a loopback or link-local address (the machine's own endpoint)"
            ),
        )
    })?;
    if uri.query().is_some() || url.contains('#') {
        return Err(Error::config(
            variable,
            format!("\"{url}\" must not have a query or fragment"),
        ));
    }
    Ok(url.to_owned())
}

/// Whether a failed token request may go again.
enum Retry {
    Never,
    /// Under the client's retry policy, after the endpoint's `Retry-After` if it gave one.
    Policy(Option<Duration>),
    /// IMDS's 410: every [`IMDS_GONE_WAIT`], [`IMDS_GONE_RETRIES`] times.
    Gone,
}

/// A failed token request and whether it may go again.
struct Failure {
    error: Box<AuthError>,
    retry: Retry,
}

/// What one GET brought back.
struct Answered {
    status: u16,
    retry_after: Option<Duration>,
    challenge: Option<String>,
    body: String,
}

/// A [`TokenSource`] that asks the machine's identity endpoint.
struct ManagedIdentitySource {
    agent: Agent,
    endpoint: Endpoint,
    resource: String,
    id: Option<UserAssignedId>,
    retry: RetryPolicy,
    /// The wait after IMDS's 410 ([`IMDS_GONE_WAIT`] but in tests).
    gone_wait: Duration,
    /// The endpoint has answered (any status): from then on, a connection it refuses is a
    /// passing failure, retried under the client's policy, not a sign that there is none.
    answered: AtomicBool,
}

impl ManagedIdentitySource {
    /// "managed identity token request to {url} ({source}) failed".
    fn request_failed(&self) -> String {
        format!(
            "managed identity token request to {} ({}) failed",
            self.endpoint.url(),
            self.endpoint.name()
        )
    }

    fn failure(&self, what: impl fmt::Display, retry: Retry) -> Failure {
        self.failure_message(format!("{}: {what}", self.request_failed()), retry)
    }

    fn failure_message(&self, message: String, retry: Retry) -> Failure {
        Failure {
            error: Box::new(AuthError::new(message).transient(!matches!(retry, Retry::Never))),
            retry,
        }
    }

    /// One GET to the endpoint; `key` is Azure Arc's key, answering its challenge.
    fn send(&self, deadline: Option<Instant>, key: Option<&str>) -> Result<Answered, Failure> {
        let mut request = self
            .agent
            .get(self.endpoint.url())
            .query("api-version", self.endpoint.api_version())
            .query("resource", &self.resource);
        if let Some(id) = &self.id {
            request = request.query(self.endpoint.id_parameter(id), id.value());
        }
        request = match &self.endpoint {
            Endpoint::AppService { header, .. } => {
                request.header("X-IDENTITY-HEADER", header.as_str())
            }
            Endpoint::Arc { .. } | Endpoint::Imds { .. } => request.header("Metadata", "true"),
        };
        let authorization;
        if let Some(key) = key {
            authorization = Zeroizing::new(format!("Basic {key}"));
            request = request.header("Authorization", authorization.as_str());
        }
        // The machine's own endpoint: never through a proxy, and plain http by design (the
        // URL passed `url`'s rule for it when the client was built).
        let mut config = request.config().proxy(None).https_only(false);
        let mut connect = None;
        if matches!(self.endpoint, Endpoint::Imds { .. }) && !self.answered.load(Ordering::Relaxed)
        {
            // Probing: an IMDS that is there connects at once.
            connect = Some(IMDS_CONNECT);
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.failure("the call's total time budget ran out", Retry::Never));
            }
            connect = Some(connect.map_or(left, |connect| connect.min(left)));
            config = config.timeout_global(Some(left));
        }
        if connect.is_some() {
            config = config.timeout_connect(connect);
        }
        let started = Instant::now();
        let sent = config.build().call();
        metrics::count_token_request(
            started,
            sent.as_ref().map(|response| response.status().as_u16()),
        );
        let mut response = sent.map_err(|err| self.network_failure(&err))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        self.answered.store(true, Ordering::Relaxed);
        let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
        let challenge = header("www-authenticate");
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|err| self.network_failure(&err))?;
        Ok(Answered {
            status,
            retry_after,
            challenge,
            body,
        })
    }

    fn network_failure(&self, err: &ureq::Error) -> Failure {
        use std::io::ErrorKind;
        let refused = abortable::refused(err);
        let unanswered_connect = matches!(err, ureq::Error::Timeout(ureq::Timeout::Connect))
            || matches!(err, ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut);
        let imds = matches!(self.endpoint, Endpoint::Imds { .. });
        // Until the endpoint has answered once, nothing there means there is no managed identity
        // here, said at once (waiting out the client's retries would not make it appear; MSAL
        // retries no refused connection, azure-identity probes IMDS once). IMDS that does not
        // connect within its second counts as absent too.
        if !self.answered.load(Ordering::Relaxed) && (refused || (imds && unanswered_connect)) {
            let why = match &self.endpoint {
                Endpoint::Imds { .. } => format!(
                    "nothing answered within {} s ({err}); this is not an Azure VM, or its IMDS endpoint is blocked",
                    IMDS_CONNECT.as_secs()
                ),
                Endpoint::AppService { .. } => format!(
                    "nothing listens there ({err}); is this an App Service or Functions app with a managed identity?"
                ),
                Endpoint::Arc { .. } => format!(
                    "nothing listens there ({err}); is the Azure Arc agent (himds) running?"
                ),
            };
            return self.failure_message(
                format!(
                    "managed identity is unavailable: {} at {}: {why}",
                    self.endpoint.name(),
                    self.endpoint.url()
                ),
                Retry::Never,
            );
        }
        let transient = matches!(
            err,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::HostNotFound
                | ureq::Error::ConnectionFailed
        );
        let retry = if transient {
            Retry::Policy(None)
        } else {
            Retry::Never
        };
        self.failure(err, retry)
    }

    /// The wait before IMDS's 410 retry number `done + 1`, if there is one: every
    /// `gone_wait`, [`IMDS_GONE_RETRIES`] times, never past the call's budget (`remaining`), and
    /// none for a client that retries nothing.
    fn gone_retry(&self, done: u32, remaining: Option<Duration>) -> Option<Duration> {
        let wait = self.gone_wait;
        let allowed = self.retry.max_retries > 0 && done < IMDS_GONE_RETRIES;
        (allowed && remaining.is_none_or(|left| wait < left)).then_some(wait)
    }

    /// One token request, with Azure Arc's challenge answered.
    fn exchange(&self, deadline: Option<Instant>) -> Result<FreshToken, Failure> {
        let started = Instant::now();
        let mut key = None;
        let mut answered = self.send(deadline, None)?;
        if let (Endpoint::Arc { tokens_folder, .. }, 401) = (&self.endpoint, answered.status) {
            let realm = answered.challenge.as_deref().and_then(arc_key::realm);
            let realm = realm.ok_or_else(|| {
                self.failure(
                    "HTTP 401 without the challenge Azure Arc's agent sends (WWW-Authenticate: Basic realm=<key file>)",
                    Retry::Never,
                )
            })?;
            let read = arc_key::read_key(realm, tokens_folder)
                .map_err(|why| self.failure(why, Retry::Never))?;
            answered = self.send(deadline, Some(&read))?;
            key = Some(read);
        }
        let outcome = self.judge(&answered, key.as_deref().map(|key| key.as_str()));
        debug!(
            "managed identity token request: source={} url={} status={} elapsed={:?} expires_in={}",
            self.endpoint.name(),
            self.endpoint.url(),
            answered.status,
            started.elapsed(),
            outcome
                .as_ref()
                .map_or_else(|_| "-".to_owned(), |t| t.expires_in.as_secs().to_string()),
        );
        outcome
    }

    /// The token an answer holds, or why there is none.
    fn judge(&self, answered: &Answered, key: Option<&str>) -> Result<FreshToken, Failure> {
        if answered.status == 200 {
            return read_answer(&answered.body).map_err(|what| {
                let mut failure = self.failure(format!("HTTP 200 but {what}"), Retry::Never);
                failure.error.http_status = Some(200);
                failure
            });
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum ErrorBody {
            /// IMDS and Azure Arc: `{"error","error_description"}`.
            OAuth {
                error: String,
                error_description: Option<String>,
            },
            /// App Service: `{"statusCode","message"}` or `{"error":{"code","message"}}`.
            Message {
                message: String,
            },
            Nested {
                error: Nested,
            },
        }
        #[derive(Deserialize)]
        struct Nested {
            code: Option<String>,
            message: Option<String>,
        }
        // Text the endpoint sends back is scrubbed of what the request carried.
        let secrets = [
            key.unwrap_or_default(),
            match &self.endpoint {
                Endpoint::AppService { header, .. } => header.as_str(),
                _ => "",
            },
        ];
        let clean = |text: String| scrub(text, &secrets);
        let retry = self
            .endpoint
            .retry_for(answered.status, answered.retry_after);
        // The error's display adds the status: the message says only what it means here.
        let mut failure = match answered.status {
            401 if key.is_some() => {
                self.failure("Azure Arc refused the key file's contents", retry)
            }
            410 if matches!(self.endpoint, Endpoint::Imds { .. }) => {
                self.failure("IMDS is being updated", retry)
            }
            _ => self.failure_message(self.request_failed(), retry),
        };
        let error = &mut failure.error;
        error.http_status = Some(answered.status);
        match serde_json::from_str::<ErrorBody>(&answered.body) {
            Ok(ErrorBody::OAuth {
                error: code,
                error_description,
            }) => {
                error.error = Some(clean(code));
                error.error_description = error_description.map(clean);
            }
            Ok(ErrorBody::Message { message }) => error.error_description = Some(clean(message)),
            Ok(ErrorBody::Nested { error: nested }) => {
                error.error = nested.code.map(clean);
                error.error_description = nested.message.map(clean);
            }
            Err(_) if !answered.body.trim().is_empty() => {
                let start: String = clean(answered.body.clone()).chars().take(200).collect();
                error.message.push_str(&format!("; body: {start}"));
            }
            Err(_) => {}
        }
        Err(failure)
    }
}

impl TokenSource for ManagedIdentitySource {
    fn fetch(&self, deadline: Option<Instant>) -> AuthResult<FreshToken> {
        let (mut retries, mut waited) = (0, Duration::ZERO);
        let mut gone_retries = 0;
        loop {
            let failure = match self.exchange(deadline) {
                Ok(token) => return Ok(token),
                Err(failure) => failure,
            };
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let wait = match failure.retry {
                Retry::Never => None,
                Retry::Policy(asked) => {
                    match decide(&self.retry, retries, asked, waited, remaining) {
                        Verdict::Retry(wait) => {
                            retries += 1;
                            waited += wait;
                            Some(wait)
                        }
                        Verdict::Exhausted | Verdict::OverBudget(_) => None,
                    }
                }
                Retry::Gone => self
                    .gone_retry(gone_retries, remaining)
                    .inspect(|_| gone_retries += 1),
            };
            let Some(wait) = wait else {
                return Err(failure.error);
            };
            debug!(
                "managed identity token request failed, retrying in {wait:?}: {}",
                failure.error
            );
            // An interrupt ends the wait; the caller sees its call was cancelled.
            if cancel::sleep(wait).is_err() {
                return Err(failure.error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    fn found(pairs: &[(&str, &str)], arc_installed: bool) -> Result<Endpoint, Error> {
        find_endpoint(&env(pairs), arc_installed, PathBuf::from("/tokens"))
    }

    fn field(result: Result<Endpoint, Error>) -> String {
        match result {
            Err(Error::Config { field, .. }) => field,
            Err(other) => panic!("{other}"),
            Ok(endpoint) => panic!("found {}", endpoint.name()),
        }
    }

    #[test]
    fn the_environment_decides_the_endpoint_as_microsofts_libraries_do() {
        let app_service = found(
            &[
                (IDENTITY_ENDPOINT, "http://127.0.0.1:41000/msi/token"),
                (IDENTITY_HEADER, "h"),
                (IMDS_ENDPOINT, "http://127.0.0.1:40342"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(app_service.name(), "App Service");
        assert_eq!(app_service.url(), "http://127.0.0.1:41000/msi/token");

        let arc = found(
            &[
                (
                    IDENTITY_ENDPOINT,
                    "http://localhost:40342/metadata/identity/oauth2/token",
                ),
                (IMDS_ENDPOINT, "http://localhost:40342"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(arc.name(), "Azure Arc");
        let installed = found(&[], true).unwrap();
        assert_eq!(
            (installed.name(), installed.url()),
            ("Azure Arc", arc_key::DEFAULT_ENDPOINT)
        );

        let imds = found(&[], false).unwrap();
        assert_eq!(
            (imds.name(), imds.url()),
            (
                "IMDS",
                "http://169.254.169.254/metadata/identity/oauth2/token"
            )
        );
        let pod = found(
            &[(AZURE_POD_IDENTITY_AUTHORITY_HOST, "http://127.0.0.1:2579/")],
            false,
        )
        .unwrap();
        assert_eq!(
            pod.url(),
            "http://127.0.0.1:2579/metadata/identity/oauth2/token"
        );
        // IDENTITY_ENDPOINT alone describes neither: IMDS it is.
        let alone = found(&[(IDENTITY_ENDPOINT, "http://127.0.0.1:1/x")], false).unwrap();
        assert_eq!(alone.name(), "IMDS");
    }

    #[test]
    fn endpoints_off_the_machine_in_clear_are_refused_naming_the_variable() {
        assert_eq!(
            field(found(
                &[
                    (IDENTITY_ENDPOINT, "http://10.0.0.4/msi/token"),
                    (IDENTITY_HEADER, "h")
                ],
                false
            )),
            IDENTITY_ENDPOINT
        );
        assert_eq!(
            field(found(
                &[(AZURE_POD_IDENTITY_AUTHORITY_HOST, "http://nmi.example:2579")],
                false
            )),
            AZURE_POD_IDENTITY_AUTHORITY_HOST
        );
        assert_eq!(
            field(found(
                &[
                    (IDENTITY_ENDPOINT, "http://u:p@127.0.0.1/x"),
                    (IMDS_ENDPOINT, "x")
                ],
                false
            )),
            IDENTITY_ENDPOINT
        );
        assert_eq!(
            field(found(
                &[
                    (
                        IDENTITY_ENDPOINT,
                        "https://127.0.0.1:2377/metadata/identity/oauth2/token"
                    ),
                    (IDENTITY_HEADER, "h"),
                    (IDENTITY_SERVER_THUMBPRINT, "ab12"),
                ],
                false
            )),
            IDENTITY_SERVER_THUMBPRINT
        );
    }

    #[test]
    fn each_endpoint_names_a_user_assigned_identity_its_own_way() {
        let ids = [
            UserAssignedId::Client("c".into()),
            UserAssignedId::Object("o".into()),
            UserAssignedId::Resource("r".into()),
        ];
        let names = |endpoint: Endpoint| -> Vec<&'static str> {
            ids.iter().map(|id| endpoint.id_parameter(id)).collect()
        };
        assert_eq!(
            names(Endpoint::Imds { url: String::new() }),
            ["client_id", "object_id", "msi_res_id"]
        );
        assert_eq!(
            names(Endpoint::AppService {
                url: String::new(),
                header: Zeroizing::new(String::new())
            }),
            ["client_id", "principal_id", "mi_res_id"]
        );
    }

    #[test]
    fn the_header_and_the_key_are_scrubbed_from_whatever_the_endpoint_echoes() {
        let source = ManagedIdentitySource {
            agent: Agent::new_with_defaults(),
            endpoint: Endpoint::AppService {
                url: "http://127.0.0.1:1/msi/token".to_owned(),
                header: Zeroizing::new("hdr-secret-value".to_owned()),
            },
            resource: "https://graph.microsoft.com".to_owned(),
            id: None,
            retry: RetryPolicy::default(),
            gone_wait: IMDS_GONE_WAIT,
            answered: AtomicBool::new(false),
        };
        let echoes = [
            r#"{"statusCode":400,"message":"bad header hdr-secret-value"}"#.to_owned(),
            r#"{"error":"arc-key-secret","error_description":"hdr-secret-value"}"#.to_owned(),
            r#"{"error":{"code":"hdr-secret-value","message":"arc-key-secret"}}"#.to_owned(),
            // Not JSON, and cut at the display limit just after the secret begins.
            format!("{}hdr-secret-value", "x".repeat(190)),
        ];
        for body in echoes {
            let answered = Answered {
                status: 400,
                retry_after: None,
                challenge: None,
                body,
            };
            let err = source
                .judge(&answered, Some("arc-key-secret"))
                .err()
                .unwrap()
                .error;
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("hdr-secret") && !shown.contains("arc-key-secret"),
                "{shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    #[test]
    fn debug_shows_the_id_and_variable_names_but_no_value() {
        let credential = ManagedIdentityCredential::user_assigned_object_id("obj-1").environment([
            (IDENTITY_ENDPOINT, "http://127.0.0.1:1/msi/token"),
            (IDENTITY_HEADER, "hdr-secret-value"),
        ]);
        let shown = format!("{credential:?}");
        assert!(
            shown.contains("obj-1")
                && shown.contains(IDENTITY_HEADER)
                && !shown.contains("hdr-secret-value"),
            "{shown}"
        );
    }

    fn imds_source(retry: RetryPolicy) -> ManagedIdentitySource {
        ManagedIdentitySource {
            agent: Agent::new_with_defaults(),
            endpoint: Endpoint::Imds {
                url: format!("{IMDS_HOST}{IMDS_PATH}"),
            },
            resource: "https://graph.microsoft.com".to_owned(),
            id: None,
            retry,
            gone_wait: gone_wait(&Environment::default()),
            answered: AtomicBool::new(false),
        }
    }

    /// The 410 waits planned for a call with `remaining` of its budget left.
    fn gone_plan(source: &ManagedIdentitySource, remaining: Option<Duration>) -> Vec<Duration> {
        let mut plan: Vec<Duration> = Vec::new();
        while let Some(wait) = source.gone_retry(
            plan.len() as u32,
            remaining.map(|r| r.saturating_sub(plan.iter().sum())),
        ) {
            plan.push(wait);
            assert!(plan.len() <= 100, "the plan ends");
        }
        plan
    }

    #[test]
    fn imds_410_is_retried_every_ten_seconds_for_seventy_within_the_calls_budget() {
        // Microsoft's IMDS guidance (MSAL's ImdsRetryPolicy): 10 s apart, 7 times, 70 s.
        let source = imds_source(RetryPolicy::default());
        let plan = gone_plan(&source, None);
        assert_eq!(plan, vec![Duration::from_secs(10); 7]);
        assert!(plan.iter().sum::<Duration>() >= Duration::from_secs(70));
        // Whatever the client's own backoff.
        let quick = imds_source(RetryPolicy::default().base_delay(Duration::from_millis(10)));
        assert_eq!(gone_plan(&quick, None).len(), 7);
        // Never past the call's budget.
        let budget = gone_plan(&source, Some(Duration::from_secs(25)));
        assert_eq!(budget, vec![Duration::from_secs(10); 2]);
        // A client that retries nothing does not wait out a 410 either.
        assert!(gone_plan(&imds_source(RetryPolicy::none()), None).is_empty());
    }
}
