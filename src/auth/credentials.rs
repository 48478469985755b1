//! App-only tokens from the Microsoft identity platform (OAuth2 client credentials), with a client
//! secret, a certificate or a federated token (workload identity); and the [`Credential`] that
//! names every kind, managed identity included.
//!
//! The public types are descriptions: the client builder turns one into a cached
//! [`TokenProvider`] with its own HTTP agent, so token requests share the proxy, TLS and timeout
//! settings of Graph requests.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::debug;
use serde::Deserialize;
use ureq::Agent;
use ureq::http::Uri;
use zeroize::Zeroizing;

use crate::auth::AuthResult;
use crate::auth::TokenProvider;
use crate::auth::answer::{MAX_ANSWER_BYTES, read_answer, scrub};
use crate::auth::assertion::{AssertionAlgorithm, AssertionSigner};
use crate::auth::cache::{FreshToken, TokenCache, TokenSource};
use crate::auth::managed_identity::ManagedIdentityCredential;
use crate::auth::workload_identity::{WorkloadIdentityCredential, read_federated_token};
use crate::auth_error::AuthError;
use crate::cancel;
use crate::metrics;
use crate::retry::{RetryPolicy, Verdict, decide};
use crate::url::{Insecure, check_secure, never_proxied};
use crate::{Cloud, Error};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How a token request that failed transiently (5xx, 429, network) is retried: twice, after
/// 250 ms and then 500 ms (with the policy's jitter), within the call's budget.
const TOKEN_RETRY: RetryPolicy = RetryPolicy {
    max_retries: 2,
    base_delay: Duration::from_millis(250),
    max_delay: Duration::from_secs(1),
    max_total_wait: Duration::from_secs(2),
};

/// How a [`Client`](crate::Client) obtains app-only tokens for Graph. Give it to
/// [`ClientBuilder::credential`](crate::ClientBuilder::credential).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Credential {
    /// An app registration's client secret.
    ClientSecret(ClientSecretCredential),
    /// An app registration's certificate (a signed client assertion).
    ClientCertificate(ClientCertificateCredential),
    /// The machine's managed identity (Azure VMs, App Service, Azure Arc).
    ManagedIdentity(ManagedIdentityCredential),
    /// A federated token from the platform (workload identity federation).
    WorkloadIdentity(WorkloadIdentityCredential),
}

impl Credential {
    /// Requests tokens from this identity host instead of the client's cloud's, whichever kind of
    /// credential this is. A managed identity has none (its endpoint comes from the environment):
    /// [`ClientBuilder::build`](crate::ClientBuilder::build) refuses it there.
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        let url = Some(url.into());
        match &mut self {
            Credential::ClientSecret(credential) => credential.app.authority_host = url,
            Credential::ClientCertificate(credential) => credential.app.authority_host = url,
            Credential::ManagedIdentity(credential) => credential.authority_host = url,
            Credential::WorkloadIdentity(credential) => credential.authority_host = url,
        }
        self
    }

    /// Requests this scope instead of `{graph root}/.default`, whichever kind of credential this
    /// is (a managed identity asks for the scope's resource: the scope without `/.default`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        let scope = Some(scope.into());
        match &mut self {
            Credential::ClientSecret(credential) => credential.app.scope = scope,
            Credential::ClientCertificate(credential) => credential.app.scope = scope,
            Credential::ManagedIdentity(credential) => credential.scope = scope,
            Credential::WorkloadIdentity(credential) => credential.scope = scope,
        }
        self
    }
}

impl From<ClientSecretCredential> for Credential {
    fn from(credential: ClientSecretCredential) -> Credential {
        Credential::ClientSecret(credential)
    }
}

impl From<ClientCertificateCredential> for Credential {
    fn from(credential: ClientCertificateCredential) -> Credential {
        Credential::ClientCertificate(credential)
    }
}

impl From<ManagedIdentityCredential> for Credential {
    fn from(credential: ManagedIdentityCredential) -> Credential {
        Credential::ManagedIdentity(credential)
    }
}

impl From<WorkloadIdentityCredential> for Credential {
    fn from(credential: WorkloadIdentityCredential) -> Credential {
        Credential::WorkloadIdentity(credential)
    }
}

/// The parts every client-credentials request shares.
#[derive(Debug, Clone)]
struct App {
    tenant_id: String,
    client_id: String,
    authority_host: Option<String>,
    scope: Option<String>,
}

/// App-only authentication with a client secret.
///
/// ```
/// use intune_user_status::{Client, ClientSecretCredential, Cloud};
/// let credential = ClientSecretCredential::new(
///     "contoso.onmicrosoft.com",
///     "11111111-2222-3333-4444-555555555555",
///     "the-secret-value",
/// );
/// assert!(!format!("{credential:?}").contains("the-secret-value"));
/// let client = Client::builder().cloud(Cloud::China).credential(credential).build()?;
/// # Ok::<(), intune_user_status::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientSecretCredential {
    app: App,
    secret: Zeroizing<String>,
}

/// App-only authentication with a certificate registered on the app: each token request carries a
/// fresh client assertion signed with the certificate's RSA key.
#[derive(Clone)]
pub struct ClientCertificateCredential {
    app: App,
    signer: Arc<AssertionSigner>,
    algorithm: AssertionAlgorithm,
}

impl fmt::Debug for ClientSecretCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretCredential")
            .field("app", &self.app)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for ClientCertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificateCredential")
            .field("app", &self.app)
            .field("signer", &self.signer)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl App {
    fn new(tenant_id: impl Into<String>, client_id: impl Into<String>) -> App {
        App {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            authority_host: None,
            scope: None,
        }
    }
}

impl ClientSecretCredential {
    /// The app `client_id` in tenant `tenant_id` (a GUID or a domain such as
    /// `contoso.onmicrosoft.com`), authenticating with `client_secret`. Checked by
    /// [`ClientBuilder::build`](crate::ClientBuilder::build).
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> ClientSecretCredential {
        ClientSecretCredential {
            app: App::new(tenant_id, client_id),
            secret: Zeroizing::new(client_secret.into()),
        }
    }

    /// Requests tokens from this identity host (e.g. `https://login.microsoftonline.us`) instead of
    /// the client's cloud's. Plain `http` is accepted only for loopback hosts.
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.app.authority_host = Some(url.into());
        self
    }

    /// Requests this scope instead of `{graph root}/.default` for the client's cloud.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.app.scope = Some(scope.into());
        self
    }
}

impl ClientCertificateCredential {
    /// The app `client_id` in tenant `tenant_id`, authenticating with the certificate in
    /// `certificate_pem` (the first `CERTIFICATE` section) and its RSA key in `private_key_pem`
    /// (`PRIVATE KEY` or `RSA PRIVATE KEY`, not encrypted).
    ///
    /// # Errors
    /// [`Error::Config`] naming `certificatePem` or `privateKeyPem` when either cannot be read, the
    /// key is not RSA, or the certificate is not for that key.
    pub fn from_pem(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        certificate_pem: impl AsRef<[u8]>,
        private_key_pem: impl AsRef<[u8]>,
    ) -> Result<ClientCertificateCredential, Error> {
        let signer = AssertionSigner::from_pem(certificate_pem.as_ref(), private_key_pem.as_ref())?;
        Ok(ClientCertificateCredential {
            app: App::new(tenant_id, client_id),
            signer: Arc::new(signer),
            algorithm: AssertionAlgorithm::default(),
        })
    }

    /// Requests tokens from this identity host instead of the client's cloud's. Plain `http` is
    /// accepted only for loopback hosts.
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.app.authority_host = Some(url.into());
        self
    }

    /// Requests this scope instead of `{graph root}/.default` for the client's cloud.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.app.scope = Some(scope.into());
        self
    }

    /// Signs the client assertion with `algorithm` (default [`AssertionAlgorithm::Ps256`]).
    pub fn algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }
}

impl Credential {
    /// Checks the description and makes the client's cached token provider. `agent` is the
    /// client's own, so it must answer 4xx/5xx as responses (`http_status_as_error(false)`);
    /// `retry` is the client's policy (a managed-identity endpoint's answers are retried under it).
    pub(crate) fn into_provider(
        self,
        agent: Agent,
        cloud: Cloud,
        retry: RetryPolicy,
    ) -> Result<Arc<dyn TokenProvider>, Error> {
        let mut origins = Vec::new();
        let (app, proof) = match self {
            Credential::ClientSecret(credential) => {
                if credential.secret.is_empty() {
                    return Err(Error::config("clientSecret", "must not be empty"));
                }
                (credential.app, Proof::Secret(credential.secret))
            }
            Credential::ClientCertificate(credential) => (
                credential.app,
                Proof::Assertion(credential.signer, credential.algorithm),
            ),
            Credential::ManagedIdentity(credential) => {
                return credential.into_provider(agent, cloud, retry);
            }
            Credential::WorkloadIdentity(credential) => {
                let resolved = credential.resolve()?;
                origins = resolved.origins;
                let app = App {
                    tenant_id: resolved.tenant_id,
                    client_id: resolved.client_id,
                    authority_host: resolved.authority_host,
                    scope: resolved.scope,
                };
                (app, Proof::Federated(resolved.token_file))
            }
        };
        let source = ClientCredentials::new(agent, cloud, app, proof).map_err(|err| match err {
            // A value read from the environment: say which variable held it.
            Error::Config { field, reason } => {
                match origins.iter().find(|(named, _)| *named == field) {
                    Some((_, variable)) => {
                        Error::config(field, format!("{reason} (from {variable})"))
                    }
                    None => Error::Config { field, reason },
                }
            }
            other => other,
        })?;
        Ok(Arc::new(TokenCache::new(source)))
    }
}

/// What proves the app's identity in the token request.
enum Proof {
    Secret(Zeroizing<String>),
    Assertion(Arc<AssertionSigner>, AssertionAlgorithm),
    /// The file the platform writes its token to, read again for every request.
    Federated(PathBuf),
}

/// A [`TokenSource`] that runs the client-credentials grant.
pub(crate) struct ClientCredentials {
    agent: Agent,
    authority_host: String,
    tenant_id: String,
    client_id: String,
    scope: String,
    token_url: String,
    /// The authority host is loopback: token requests skip any proxy.
    direct: bool,
    proof: Proof,
    retry: RetryPolicy,
}

impl ClientCredentials {
    fn new(agent: Agent, cloud: Cloud, app: App, proof: Proof) -> Result<ClientCredentials, Error> {
        let tenant = app.tenant_id;
        // Tenant ids are GUIDs or DNS names (or `organizations`); anything else would change the path.
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(Error::config(
                "tenantId",
                format!("\"{tenant}\" is not a tenant id or domain (e.g. contoso.onmicrosoft.com)"),
            ));
        }
        if app.client_id.trim().is_empty() {
            return Err(Error::config("clientId", "must not be empty"));
        }
        let authority_host = match app.authority_host {
            Some(url) => check_authority_host(&url)?,
            None => cloud.authority_host().to_owned(),
        };
        let scope = match app.scope {
            Some(scope) if scope.trim().is_empty() => {
                return Err(Error::config("scope", "must not be empty"));
            }
            Some(scope) => scope,
            None => format!("{}/.default", cloud.graph_root()),
        };
        Ok(ClientCredentials {
            direct: authority_host
                .parse::<Uri>()
                .is_ok_and(|uri| never_proxied(&uri)),
            token_url: format!("{authority_host}/{tenant}/oauth2/v2.0/token"),
            agent,
            authority_host,
            tenant_id: tenant,
            client_id: app.client_id,
            scope,
            proof,
            retry: TOKEN_RETRY,
        })
    }

    /// One token request: no retries; it gives up at `deadline`.
    fn request(&self, deadline: Option<Instant>) -> AuthResult<FreshToken> {
        let assertion: Zeroizing<String>;
        let mut form = vec![
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        // Kept to scrub from error text, should the service ever echo it.
        let confidential = match &self.proof {
            Proof::Secret(secret) => {
                form.push(("client_secret", secret.as_str()));
                secret.as_str()
            }
            Proof::Assertion(signer, algorithm) => {
                assertion = Zeroizing::new(signer.sign(
                    *algorithm,
                    &self.client_id,
                    &self.token_url,
                    SystemTime::now(),
                )?);
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", assertion.as_str()));
                assertion.as_str()
            }
            Proof::Federated(path) => {
                // Read again every time: the platform rotates the token.
                assertion = read_federated_token(path)?;
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", assertion.as_str()));
                assertion.as_str()
            }
        };
        let started = Instant::now();
        let mut post = self.agent.post(&self.token_url);
        if self.direct {
            // Loopback never goes through a proxy (see url::never_proxied).
            post = post.config().proxy(None).build();
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(started);
            if left.is_zero() {
                return Err(self.timed_out());
            }
            // Never past the call's budget, however long the agent would wait.
            post = post.config().timeout_global(Some(left)).build();
        }
        let result = post.send_form(form);
        metrics::count_token_request(
            started,
            result.as_ref().map(|response| response.status().as_u16()),
        );
        let outcome = match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_ANSWER_BYTES)
                    .read_to_string();
                match body {
                    Ok(body) if status == 200 => self.parse_token(&body),
                    Ok(body) => Err(self.service_error(status, &body, confidential)),
                    Err(err) => Err(self.network_error(&err)),
                }
            }
            // Only an agent that turns statuses into errors gets here; the body is gone.
            Err(ureq::Error::StatusCode(status)) => {
                Err(self.service_error(status, "", confidential))
            }
            Err(err) => Err(self.network_error(&err)),
        };
        debug!(
            "token request: authority_host={} tenant={} client_id={} status={} elapsed={:?} expires_in={}",
            self.authority_host,
            self.tenant_id,
            self.client_id,
            match &outcome {
                Ok(_) => "200".to_owned(),
                Err(err) => err
                    .http_status
                    .map_or_else(|| "network error".to_owned(), |s| s.to_string()),
            },
            started.elapsed(),
            outcome
                .as_ref()
                .map_or_else(|_| "-".to_owned(), |t| t.expires_in.as_secs().to_string()),
        );
        outcome
    }

    fn failure(&self) -> Box<AuthError> {
        Box::new(AuthError::new(format!(
            "token request for client {} to {} failed",
            self.client_id, self.token_url
        )))
    }

    /// The call's time budget ran out before a token request could be sent.
    fn timed_out(&self) -> Box<AuthError> {
        let mut failure = self.failure();
        failure
            .message
            .push_str(": the call's total time budget ran out");
        failure
    }

    fn parse_token(&self, body: &str) -> AuthResult<FreshToken> {
        // The body holds the token: no part of it goes into an error.
        read_answer(body).map_err(|what| {
            let mut err = self.failure();
            err.message.push_str(&format!(": HTTP 200 but {what}"));
            err.http_status = Some(200);
            err
        })
    }

    fn service_error(&self, status: u16, body: &str, confidential: &str) -> Box<AuthError> {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: Option<String>,
            error_description: Option<String>,
            #[serde(default)]
            error_codes: Vec<u64>,
            trace_id: Option<String>,
            correlation_id: Option<String>,
        }
        let mut err = self.failure();
        err.http_status = Some(status);
        err.transient = status >= 500 || status == 429;
        // Every text the service sends back is scrubbed, whichever field echoes the secret.
        let scrubbed = |text: Option<String>| text.map(|text| scrub(text, &[confidential]));
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(parsed) => {
                let description = scrubbed(parsed.error_description);
                err.aadsts = parsed
                    .error_codes
                    .first()
                    .map(|code| format!("AADSTS{code}"))
                    .or_else(|| description.as_deref().and_then(aadsts_in));
                err.error = scrubbed(parsed.error);
                err.error_description = description;
                err.trace_id = scrubbed(parsed.trace_id);
                err.correlation_id = scrubbed(parsed.correlation_id);
            }
            // Not the identity platform's JSON (a proxy's page, say): show its start, scrubbed
            // before it is cut so that no part of the secret survives at the cut.
            Err(_) if !body.trim().is_empty() => {
                let start: String = scrub(body.to_owned(), &[confidential])
                    .chars()
                    .take(200)
                    .collect();
                err.message.push_str(&format!("; body: {start}"));
            }
            Err(_) => {}
        }
        err
    }

    fn network_error(&self, err: &ureq::Error) -> Box<AuthError> {
        let transient = matches!(
            err,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::HostNotFound
                | ureq::Error::ConnectionFailed
        );
        let mut failure = self.failure();
        failure.transient = transient;
        failure.message.push_str(&format!(": {err}"));
        failure
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self, deadline: Option<Instant>) -> AuthResult<FreshToken> {
        let mut retries = 0;
        let mut waited = Duration::ZERO;
        loop {
            let err = match self.request(deadline) {
                Err(err) if err.transient => err,
                outcome => return outcome,
            };
            // The same decision Graph requests get, under the token request's own policy.
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match decide(&self.retry, retries, None, waited, remaining) {
                Verdict::Retry(wait) => {
                    debug!("token request failed transiently, retrying in {wait:?}: {err}");
                    // An interrupt ends the wait; the caller sees its call was cancelled.
                    if cancel::sleep(wait).is_err() {
                        return Err(err);
                    }
                    waited += wait;
                    retries += 1;
                }
                Verdict::Exhausted | Verdict::OverBudget(_) => return Err(err),
            }
        }
    }
}

/// The client secret of [`read_token_answer`]'s credential.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) const FUZZ_SECRET: &str = "fuzz-client-secret-9d2c";

/// A token endpoint's answer (`status`, `body`) read as a secret credential reads it: a fresh
/// token, or the error the caller would see. For the fuzz targets (`crate::fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn read_token_answer(status: u16, body: &str) -> AuthResult<FreshToken> {
    static SOURCE: std::sync::OnceLock<ClientCredentials> = std::sync::OnceLock::new();
    let source = SOURCE.get_or_init(|| {
        let app = App::new("contoso.onmicrosoft.com", "app-id");
        let proof = Proof::Secret(Zeroizing::new(FUZZ_SECRET.to_owned()));
        ClientCredentials::new(Agent::new_with_defaults(), Cloud::Global, app, proof)
            .expect("a valid credential")
    });
    if status == 200 {
        source.parse_token(body)
    } else {
        Err(source.service_error(status, body, FUZZ_SECRET))
    }
}

/// The `AADSTS<digits>` code a description starts with or mentions.
fn aadsts_in(description: &str) -> Option<String> {
    let at = description.find("AADSTS")?;
    let digits = description[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count();
    (digits > 0).then(|| description[at..at + 6 + digits].to_owned())
}

/// Validates an authority host override; returns it without a trailing slash.
fn check_authority_host(url: &str) -> Result<String, Error> {
    let field = "authorityHost";
    let uri = Uri::from_str(url)
        .map_err(|err| Error::config(field, format!("\"{url}\" is not a URL ({err})")))?;
    check_secure(&uri).map_err(|insecure| {
        Error::config(
            field,
            match insecure {
                Insecure::NoHost => format!("\"{url}\" has no host"),
                Insecure::PlainHttp | Insecure::OtherScheme => {
                    format!("\"{url}\" must start with https:// (or http:// for a loopback host)")
                }
            },
        )
    })?;
    if uri.query().is_some() || url.contains('#') || !uri.path().trim_end_matches('/').is_empty() {
        return Err(Error::config(
            field,
            format!(
                "\"{url}\" must be a bare host such as https://login.microsoftonline.com, without a path or query"
            ),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::assertion::tests::{CERT, KEY_PKCS8, verify};
    use ring::signature::RSA_PSS_2048_8192_SHA256;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::thread;

    const TENANT: &str = "contoso.onmicrosoft.com";
    const SECRET: &str = "s3cr+t&=%/ é~";
    const TOKEN_JSON: &str = r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.fresh"}"#;
    const AADSTS_JSON: &str = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'app-id'.\r\nTrace ID: 0f4e\r\nCorrelation ID: 9a1b\r\nTimestamp: 2025-01-01 00:00:00Z","error_codes":[7000215],"timestamp":"2025-01-01 00:00:00Z","trace_id":"0f4e-trace","correlation_id":"9a1b-corr","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#;

    /// A request as the loopback server saw it.
    struct Seen {
        request_line: String,
        content_type: String,
        form: HashMap<String, String>,
    }

    /// Answers one connection per scripted `(status, body)` reply, then stops; returns what it saw.
    fn serve(replies: Vec<(u16, &'static str)>) -> (String, thread::JoinHandle<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("http://{}", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            replies
                .into_iter()
                .map(|(status, body)| {
                    let (mut stream, _) = listener.accept().unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    reader.read_line(&mut request_line).unwrap();
                    let (mut length, mut content_type) = (0, String::new());
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "content-type" => content_type = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut form = vec![0; length];
                    reader.read_exact(&mut form).unwrap();
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    stream.write_all(reply.as_bytes()).unwrap();
                    Seen {
                        request_line: request_line.trim_end().to_owned(),
                        content_type,
                        form: decode_form(&String::from_utf8(form).unwrap()),
                    }
                })
                .collect()
        });
        (host, handle)
    }

    fn decode_form(body: &str) -> HashMap<String, String> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .unwrap()
                .into_owned()
        };
        body.split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (decode(k), decode(v))
            })
            .collect()
    }

    fn agent() -> Agent {
        Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
    }

    fn secret_source(host: &str) -> ClientCredentials {
        let app = App {
            authority_host: Some(host.to_owned()),
            ..App::new(TENANT, "app-id")
        };
        let proof = Proof::Secret(Zeroizing::new(SECRET.to_owned()));
        let mut source = ClientCredentials::new(agent(), Cloud::UsGov, app, proof).unwrap();
        source.retry = TOKEN_RETRY.base_delay(Duration::from_millis(5));
        source
    }

    #[test]
    fn secret_flow_posts_the_form_and_caches_the_token() {
        let (host, server) = serve(vec![(200, TOKEN_JSON)]);
        let credential =
            ClientSecretCredential::new(TENANT, "app-id", SECRET).authority_host(&host);
        let provider = Credential::from(credential)
            .into_provider(agent(), Cloud::UsGov, RetryPolicy::default())
            .unwrap();
        assert_eq!(provider.token().unwrap().secret(), "eyJ0eXAi.fresh");
        assert_eq!(provider.token().unwrap().secret(), "eyJ0eXAi.fresh");

        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 1, "the second call is served from the cache");
        let request = &seen[0];
        assert_eq!(
            request.request_line,
            format!("POST /{TENANT}/oauth2/v2.0/token HTTP/1.1")
        );
        assert_eq!(request.content_type, "application/x-www-form-urlencoded");
        let expected: HashMap<String, String> = [
            ("client_id", "app-id"),
            ("scope", "https://graph.microsoft.us/.default"),
            ("grant_type", "client_credentials"),
            ("client_secret", SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(request.form, expected);
    }

    #[test]
    fn certificate_flow_sends_a_verifiable_assertion() {
        let (host, server) = serve(vec![(200, TOKEN_JSON)]);
        let credential = ClientCertificateCredential::from_pem(TENANT, "app-id", CERT, KEY_PKCS8)
            .unwrap()
            .authority_host(format!("{host}/"))
            .scope("api://custom/.default");
        let provider = Credential::from(credential)
            .into_provider(agent(), Cloud::Global, RetryPolicy::default())
            .unwrap();
        assert_eq!(provider.token().unwrap().secret(), "eyJ0eXAi.fresh");

        let form = &server.join().unwrap()[0].form;
        assert_eq!(form["client_id"], "app-id");
        assert_eq!(form["scope"], "api://custom/.default");
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_assertion_type"], JWT_BEARER);
        assert!(!form.contains_key("client_secret"));
        let (header, claims) = verify(&form["client_assertion"], &RSA_PSS_2048_8192_SHA256);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(claims["aud"], format!("{host}/{TENANT}/oauth2/v2.0/token"));
        assert_eq!(claims["iss"], "app-id");
        assert_eq!(claims["sub"], "app-id");
    }

    #[test]
    fn aadsts_error_is_parsed_and_not_retried() {
        let (host, server) = serve(vec![(401, AADSTS_JSON)]);
        let err = secret_source(&host).fetch(None).err().unwrap();
        assert_eq!(server.join().unwrap().len(), 1, "a 4xx is not retried");
        assert_eq!(err.http_status, Some(401));
        assert_eq!(err.error.as_deref(), Some("invalid_client"));
        assert_eq!(err.aadsts.as_deref(), Some("AADSTS7000215"));
        assert_eq!(err.trace_id.as_deref(), Some("0f4e-trace"));
        assert_eq!(err.correlation_id.as_deref(), Some("9a1b-corr"));
        assert!(!err.transient);
        let shown = err.to_string();
        assert!(
            shown.contains(
                "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided."
            ) && shown.contains("trace-id 0f4e-trace, correlation-id 9a1b-corr")
                && shown.contains("client app-id"),
            "{shown}"
        );
        assert!(!shown.contains(SECRET) && !format!("{err:?}").contains(SECRET));
    }

    #[test]
    fn aadsts_code_is_found_in_the_description_when_codes_are_missing() {
        let (host, server) = serve(vec![(
            400,
            r#"{"error":"invalid_request","error_description":"AADSTS900144: The request body must contain client_id."}"#,
        )]);
        let err = secret_source(&host).fetch(None).err().unwrap();
        server.join().unwrap();
        assert_eq!(err.aadsts.as_deref(), Some("AADSTS900144"));
    }

    #[test]
    fn a_5xx_is_retried() {
        let (host, server) = serve(vec![
            (500, r#"{"error":"temporarily_unavailable"}"#),
            (200, TOKEN_JSON),
        ]);
        let fresh = secret_source(&host).fetch(None).unwrap();
        assert_eq!(fresh.expires_in, Duration::from_secs(3599));
        assert_eq!(server.join().unwrap().len(), 2);
    }

    #[test]
    fn retries_stop_after_two() {
        let (host, server) = serve(vec![(503, "<html>busy</html>"); 3]);
        let err = secret_source(&host).fetch(None).err().unwrap();
        assert_eq!(server.join().unwrap().len(), 3);
        assert!(err.transient);
        assert_eq!(err.http_status, Some(503));
        assert!(err.to_string().contains("body: <html>busy</html>"), "{err}");
    }

    #[test]
    fn network_failures_are_transient() {
        // A port nobody listens on any more.
        let host = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let err = secret_source(&host).fetch(None).err().unwrap();
        assert!(err.transient && err.http_status.is_none(), "{err:?}");
    }

    #[test]
    fn odd_but_valid_answers_are_accepted_and_bad_ones_hide_the_body() {
        let long = format!(
            r#"{{"token_type":"Bearer","expires_in":3600,"access_token":"leaked{}"}}"#,
            "a".repeat(16 * 1024)
        );
        let (host, server) = serve(vec![
            (
                200,
                r#"{"token_type":"bearer","expires_in":"3600","access_token":"v1"}"#,
            ),
            (
                200,
                r#"{"token_type":"pop","expires_in":3600,"access_token":"leaked?"}"#,
            ),
            (
                200,
                r#"{"token_type":"Bearer","expires_in":3600,"access_token":"leaked\r\nX-Injected: 1"}"#,
            ),
            (200, Box::leak(long.into_boxed_str())),
        ]);
        let source = secret_source(&host);
        assert_eq!(source.fetch(None).unwrap().token.secret(), "v1");
        for why in ["no Bearer", "visible ASCII", "at most 16384 bytes"] {
            let err = source.fetch(None).err().unwrap();
            assert!(
                !err.transient
                    && !err.to_string().contains("leaked")
                    && err.to_string().contains(why),
                "{why}: {err}"
            );
        }
        server.join().unwrap();
    }

    #[test]
    fn build_time_checks_name_the_field() {
        let cases: [(Credential, &str); 6] = [
            (ClientSecretCredential::new("", "a", "s").into(), "tenantId"),
            (
                ClientSecretCredential::new("t/../x", "a", "s").into(),
                "tenantId",
            ),
            (
                ClientSecretCredential::new("t", " ", "s").into(),
                "clientId",
            ),
            (
                ClientSecretCredential::new("t", "a", "").into(),
                "clientSecret",
            ),
            (
                ClientSecretCredential::new("t", "a", "s")
                    .authority_host("http://login.example")
                    .into(),
                "authorityHost",
            ),
            (
                ClientSecretCredential::new("t", "a", "s").scope("").into(),
                "scope",
            ),
        ];
        for (credential, field) in cases {
            match credential.into_provider(agent(), Cloud::Global, RetryPolicy::default()) {
                Err(Error::Config { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {:?}", other.map(|_| ())),
            }
        }
        assert_eq!(
            check_authority_host("https://login.microsoftonline.us/").unwrap(),
            "https://login.microsoftonline.us"
        );
        assert!(check_authority_host("https://login.microsoftonline.com/tenant").is_err());
        assert!(check_authority_host("http://[::1]:8080").is_ok());
    }

    #[test]
    fn a_secret_echoed_in_any_field_or_cut_in_a_body_is_scrubbed() {
        let source = secret_source("http://127.0.0.1:9");
        let cut = format!("{}{SECRET}", "x".repeat(195));
        for body in [
            format!(r#"{{"error":"{SECRET}","trace_id":"{SECRET}","correlation_id":"{SECRET}"}}"#),
            format!(r#"{{"error_description":"echo {SECRET}"}}"#),
            cut,
        ] {
            let err = source.service_error(400, &body, SECRET);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains(&SECRET[..4]), "a cut secret: {shown}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let secret = ClientSecretCredential::new(TENANT, "app-id", SECRET);
        let cert =
            ClientCertificateCredential::from_pem(TENANT, "app-id", CERT, KEY_PKCS8).unwrap();
        let shown = format!(
            "{:?} {:?}",
            Credential::from(secret),
            Credential::from(cert)
        );
        assert!(!shown.contains(SECRET) && !shown.contains("MII"), "{shown}");
        assert!(
            shown.contains("app-id") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
