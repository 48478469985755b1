//! The client builder: collects and checks the settings, then hands them to [`Client::new`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ureq::http::Uri;

use crate::auth::Tokens;
use crate::client::{Client, ClientSettings};
use crate::limits::check_duration;
use crate::network::NetworkSettings;
use crate::pipeline::{Budget, PipelineSettings};
use crate::url::{Insecure, check_secure};
use crate::{
    ApiVersion, ClientSecretCredential, Cloud, Credential, Error, Pacing, RetryPolicy,
    TokenProvider,
};

/// Default time to open a connection (Microsoft's Python SDK uses the same).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time for one request, from sending to the last byte of the response (Microsoft's SDKs).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(100);

/// Builds a [`Client`]. Obtained from [`Client::builder`].
///
/// ```
/// use intune_user_status::{ApiVersion, Client, Cloud};
/// let client = Client::builder()
///     .cloud(Cloud::UsGov)
///     .api_version(ApiVersion::V1_0)
///     .access_token("eyJ0eXAi...")
///     .build()
///     .unwrap();
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    cloud: Cloud,
    base_url: Option<String>,
    api_version: ApiVersion,
    auth: Option<Tokens>,
    connect_timeout: Duration,
    request_timeout: Duration,
    user_agent_suffix: Option<String>,
    fetch_after_no_content: bool,
    runtime_environment: &'static str,
    retry: RetryPolicy,
    total_timeout: Option<Duration>,
    pacing: Option<Pacing>,
    network: NetworkSettings,
    /// Where config JSON put the credential's parts, when the builder was read from it.
    credential_paths: Option<FieldPaths>,
}

/// Where config JSON put a credential's parts: [`build`](ClientBuilder::build) names an error
/// about one (`tenantId`) by its path there (`auth.tenantId`), so the reader finds the key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldPaths {
    /// The object holding the parts (`auth`, `auth.managedIdentity`).
    pub object: &'static str,
    /// The parts' keys, as the credential names them in its errors.
    pub keys: &'static [&'static str],
}

impl FieldPaths {
    /// The error named by its path, when its field is one of the parts; any other unchanged.
    pub(crate) fn name(self, err: Error) -> Error {
        match err {
            Error::Config { field, reason } if self.keys.contains(&field.as_str()) => {
                Error::config(format!("{}.{field}", self.object), reason)
            }
            other => other,
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token provider is left out on purpose: it holds secrets.
        f.debug_struct("ClientBuilder")
            .field("cloud", &self.cloud)
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("user_agent_suffix", &self.user_agent_suffix)
            .field("fetch_after_no_content", &self.fetch_after_no_content)
            .field("retry", &self.retry)
            .field("total_timeout", &self.total_timeout)
            .field("pacing", &self.pacing)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            cloud: Cloud::Global,
            base_url: None,
            api_version: ApiVersion::Beta,
            auth: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            user_agent_suffix: None,
            fetch_after_no_content: false,
            runtime_environment: "Rust",
            retry: RetryPolicy::default(),
            total_timeout: None,
            pacing: None,
            network: NetworkSettings::default(),
            credential_paths: None,
        }
    }
}

impl ClientBuilder {
    /// The national cloud (default [`Cloud::Global`]): it selects the Graph root, the token
    /// authority and the token scope together. [`base_url`](Self::base_url) overrides the Graph
    /// root, and a credential's `authority_host` and `scope` override the other two.
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Talks to an explicit service root without the version segment instead of the cloud's, e.g.
    /// `http://127.0.0.1:8080` for the emulator; `/beta` or `/v1.0` is appended. Plain `http` is
    /// accepted only for loopback hosts; anything else must be `https`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API version used unless a call asks for another (default [`ApiVersion::Beta`]).
    pub fn api_version(mut self, version: ApiVersion) -> Self {
        self.api_version = version;
        self
    }

    /// Authenticates every request with this bearer token (a [`StaticToken`](crate::StaticToken)). An empty token,
    /// or one with anything but visible ASCII, is refused by [`build`](Self::build).
    pub fn access_token(self, token: impl Into<String>) -> Self {
        self.tokens(Tokens::Static(token.into()))
    }

    /// Authenticates every request with tokens from `provider`.
    pub fn token_provider(self, provider: impl TokenProvider + 'static) -> Self {
        self.tokens(Tokens::Provider(Arc::new(provider)))
    }

    /// Authenticates as an app: app-only tokens from the Microsoft identity platform of the
    /// client's cloud (or the credential's own authority host and scope), cached per client and
    /// refreshed 5 minutes before they expire. Token requests use this client's proxy, TLS and
    /// timeout settings. A [`ManagedIdentityCredential`](crate::ManagedIdentityCredential) asks
    /// the machine's own endpoint instead (never through the proxy; found from the environment
    /// by [`build`](Self::build)), a
    /// [`WorkloadIdentityCredential`](crate::WorkloadIdentityCredential) exchanges the platform's
    /// federated token; both share the same cache, refresh and 401 handling.
    ///
    /// ```
    /// use intune_user_status::{Client, ClientCertificateCredential, Cloud};
    /// # let (certificate_pem, key_pem) = (
    /// #     include_str!("../tests/fixtures/test-only-rsa-cert.pem"),
    /// #     include_str!("../tests/fixtures/test-only-rsa-key.pkcs8.pem"),
    /// # );
    /// let credential = ClientCertificateCredential::from_pem(
    ///     "contoso.onmicrosoft.com",
    ///     "11111111-2222-3333-4444-555555555555",
    ///     certificate_pem,
    ///     key_pem,
    /// )?;
    /// let client = Client::builder().cloud(Cloud::UsGov).credential(credential).build()?;
    /// # Ok::<(), intune_user_status::Error>(())
    /// ```
    pub fn credential(self, credential: impl Into<Credential>) -> Self {
        self.tokens(Tokens::Credential(credential.into()))
    }

    /// Authenticates as the app `client_id` of tenant `tenant_id` with a client secret; short for
    /// [`credential`](Self::credential) with a [`ClientSecretCredential`].
    pub fn client_secret(
        self,
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.credential(ClientSecretCredential::new(
            tenant_id,
            client_id,
            client_secret,
        ))
    }

    /// Time allowed to open a connection, TLS included (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for one request, until the last byte of its response (default 100 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// A budget for a whole call: every attempt, redirect and wait between retries (default: none,
    /// so a call is bounded by its attempts' timeouts and the retry policy's waits). A call never
    /// outlives it by more than a small margin, whatever the server does.
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.total_timeout = Some(timeout);
        self
    }

    /// How calls retry throttling, unavailability and failed connections (default
    /// [`RetryPolicy::default`]: 3 retries, as Microsoft's SDKs).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Paces every thread of this client to at most `pacing.requests` per `pacing.per` (default:
    /// no pacing). `Pacing::new(100, Duration::from_secs(20))` stays under Intune's write limit.
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = Some(pacing);
        self
    }

    /// Sends every request (Graph's and the token endpoint's) through this proxy, e.g.
    /// `http://user:password@proxy.contoso.example:3128` (an http CONNECT proxy; a `socks5://` one
    /// is refused when the client is built).
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.network.proxy = Some(url.into());
        self
    }

    /// Whether `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` are honoured when no proxy
    /// is given (default true).
    pub fn use_env_proxy(mut self, honour: bool) -> Self {
        self.network.use_env_proxy = honour;
        self
    }

    /// Verifies servers with the operating system's certificate verifier instead of the bundled
    /// Mozilla roots (default false), for machines whose administrators manage trust centrally.
    pub fn tls_platform_verifier(mut self, enabled: bool) -> Self {
        self.network.platform_verifier = enabled;
        self
    }

    /// Trusts these CA certificates (PEM) in addition to the bundled Mozilla roots, for networks
    /// that inspect TLS with their own CA.
    pub fn extra_root_certificates_pem(mut self, pem: impl Into<String>) -> Self {
        self.network.extra_roots_pem = Some(pem.into());
        self
    }

    /// Appended to the `User-Agent` header, e.g. `contoso-agent/4.2`, so the caller's traffic can be
    /// told apart in Graph's logs.
    pub fn user_agent_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.user_agent_suffix = Some(suffix.into());
        self
    }

    /// After a 204 No Content (what Intune answers in practice), GET the updated object so the call
    /// returns it (default off: one request per update). The GET shares the call's time budget; if
    /// it fails, the update still succeeded, so the call returns
    /// [`UpdateOutcome::NoContent`](crate::UpdateOutcome::NoContent) and logs a warning.
    pub fn fetch_after_no_content(mut self, fetch: bool) -> Self {
        self.fetch_after_no_content = fetch;
        self
    }

    /// Names the caller's runtime in the `SdkVersion` header (the C layer says `C`).
    pub(crate) fn runtime_environment(mut self, name: &'static str) -> Self {
        self.runtime_environment = name;
        self
    }

    /// [`token_provider`](Self::token_provider) for a provider already shared (the C token
    /// callback's).
    pub(crate) fn shared_token_provider(self, provider: Arc<dyn TokenProvider>) -> Self {
        self.tokens(Tokens::Provider(provider))
    }

    /// Where the tokens come from; a credential set after config JSON's names its own fields.
    fn tokens(mut self, tokens: Tokens) -> Self {
        self.auth = Some(tokens);
        self.credential_paths = None;
        self
    }

    /// Names the errors [`build`](Self::build) finds in the credential by where config JSON put
    /// its parts.
    pub(crate) fn credential_paths(mut self, paths: FieldPaths) -> Self {
        self.credential_paths = Some(paths);
        self
    }

    /// Checks the configuration and builds the client (and its one HTTP agent).
    pub fn build(self) -> Result<Client, Error> {
        match self.credential_paths {
            Some(paths) => self.build_checked().map_err(|err| paths.name(err)),
            None => self.build_checked(),
        }
    }

    fn build_checked(self) -> Result<Client, Error> {
        let auth = self.auth.ok_or_else(|| {
            Error::config(
                "accessToken",
                "no credentials: set an access token, a credential or a token provider",
            )
        })?;
        // A base URL (the emulator, a gateway) replaces only the Graph root: the cloud still
        // chooses the token authority and scope unless the credential overrides them.
        let cloud = self.cloud;
        let (root, plain_http) = match &self.base_url {
            None => (cloud.graph_root().to_owned(), false),
            Some(url) => check_base_url(url)?,
        };
        for (field, timeout) in [
            ("timeouts.connectMs", Some(self.connect_timeout)),
            ("timeouts.requestMs", Some(self.request_timeout)),
            ("timeouts.totalMs", self.total_timeout),
        ] {
            if let Some(timeout) = timeout {
                check_duration(field, timeout, false)?;
            }
        }
        if let Some(suffix) = &self.user_agent_suffix
            && (suffix.is_empty() || suffix.chars().any(|c| c.is_control() || !c.is_ascii()))
        {
            return Err(Error::config(
                "userAgent",
                "must be non-empty printable ASCII",
            ));
        }
        self.retry.validate("retry")?;
        if let Some(pacing) = &self.pacing {
            pacing.validate()?;
        }
        Client::new(ClientSettings {
            pipeline: PipelineSettings {
                root,
                plain_http,
                tokens: auth,
                cloud,
                retry: self.retry,
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                user_agent_suffix: self.user_agent_suffix.as_deref(),
                runtime_environment: self.runtime_environment,
                pacing: self.pacing,
                proxy: self.network.proxy()?,
                tls: self.network.tls()?,
            },
            api_version: self.api_version,
            fetch_after_no_content: self.fetch_after_no_content,
            budget: Budget {
                retry: self.retry,
                total: self.total_timeout,
            },
        })
    }
}

/// Client::builder lives here, beside what it returns, so the client never imports its builder.
impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

/// Validates a base URL; returns it without a trailing slash, and whether it is plain http.
fn check_base_url(url: &str) -> Result<(String, bool), Error> {
    let field = "baseUrl";
    let uri = Uri::from_str(url).map_err(|err| {
        Error::config(
            field,
            format!("\"{url}\" is not a URL ({err}); expected e.g. http://127.0.0.1:8080"),
        )
    })?;
    // Credentials in a URL would end up in logs and Debug output; they are never needed here.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(Error::config(
            field,
            "must not carry a user name or password; authenticate with a token or credential",
        ));
    }
    let plain_http = check_secure(&uri).map_err(|insecure| {
        Error::config(
            field,
            match insecure {
                Insecure::NoHost => format!("\"{url}\" has no host"),
                Insecure::PlainHttp => {
                    format!("\"{url}\" uses plain http; only loopback hosts may, use https")
                }
                Insecure::OtherScheme => {
                    format!("\"{url}\" must start with https:// (or http:// for a loopback host)")
                }
            },
        )
    })?;
    if uri.query().is_some() || url.contains('#') {
        return Err(Error::config(
            field,
            format!("\"{url}\" must not have a query or fragment"),
        ));
    }
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with("/beta") || trimmed.ends_with("/v1.0") {
        return Err(Error::config(
            field,
            format!(
                "\"{url}\" ends with a version segment; give the service root (e.g. https://graph.microsoft.com) and set apiVersion"
            ),
        ));
    }
    Ok((trimmed.to_owned(), plain_http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_rules() {
        assert_eq!(
            check_base_url("http://127.0.0.1:8080/").unwrap(),
            ("http://127.0.0.1:8080".to_owned(), true)
        );
        assert!(check_base_url("http://[::1]:80").unwrap().1);
        assert!(check_base_url("http://localhost:1").unwrap().1);
        assert!(!check_base_url("https://graph.example").unwrap().1);
        for bad in [
            "http://graph.microsoft.com",
            "http://10.0.0.1:80",
            "ftp://127.0.0.1",
            "https://graph.microsoft.com/beta",
            "https://graph.microsoft.com/v1.0/",
            "not a url",
            "https://h/?q=1",
            "https://user:pw@graph.example",
        ] {
            let err = check_base_url(bad).unwrap_err();
            assert!(
                matches!(&err, Error::Config { field, .. } if field == "baseUrl"),
                "{bad}: {err}"
            );
        }
    }
}
