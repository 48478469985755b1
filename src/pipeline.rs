//! The one request pipeline every operation goes through: auth, headers, the shared ureq agent, and
//! reading the whole response (so the connection returns to the pool).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::unversioned::transport::DefaultConnector;
use ureq::http::{HeaderMap, Method};

use crate::resolver::CachingResolver;
use crate::{Error, TokenProvider, TransportKind};

/// The largest response body accepted; a deviceConfigurationUserStatus is a few hundred bytes.
pub(crate) const MAX_BODY: u64 = 1024 * 1024;

const SDK_NAME: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// What to send: built by an operation, executed by [`Pipeline::send`].
pub(crate) struct Request<'a> {
    pub method: Method,
    pub url: String,
    /// Serialized once by the caller and borrowed, so a retry resends the same bytes.
    pub body: Option<&'a [u8]>,
}

/// A complete response: status, the headers operations need, and the whole body.
pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The `client-request-id` sent with the request.
    pub client_request_id: String,
}

impl Response {
    /// A response header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Shared by every clone of a [`Client`](crate::Client): one agent, so connections are reused.
pub(crate) struct Pipeline {
    agent: Agent,
    root: String,
    token: Arc<dyn TokenProvider>,
    sdk_version: String,
}

impl Pipeline {
    pub fn new(
        root: String,
        plain_http: bool,
        token: Arc<dyn TokenProvider>,
        connect_timeout: Duration,
        request_timeout: Duration,
        user_agent_suffix: Option<&str>,
        runtime_environment: &str,
    ) -> Pipeline {
        let user_agent = match user_agent_suffix {
            Some(suffix) => format!("{SDK_NAME} {suffix}"),
            None => SDK_NAME.to_owned(),
        };
        // Every default here is chosen, not inherited (see STYLE.md on ureq's defaults).
        let config = Agent::config_builder()
            // 4xx/5xx must come back as responses: their body is Graph's error and Retry-After.
            .http_status_as_error(false)
            // Only a loopback base URL may be plain http; nothing else (redirects included).
            .https_only(!plain_http)
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(request_timeout))
            // Redirects are not followed: a PATCH that is redirected is reported, never replayed
            // with the token to somewhere else.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // Proxies are opt-in configuration, not inherited from the environment.
            .proxy(None)
            .user_agent(user_agent)
            .accept("application/json")
            // Many agent threads share one client and one host.
            .max_idle_connections(32)
            .max_idle_connections_per_host(32)
            .build();
        Pipeline {
            agent: Agent::with_parts(
                config,
                DefaultConnector::new(),
                CachingResolver::default(),
            ),
            root,
            token,
            sdk_version: format!(
                "{SDK_NAME} (hostOS={}; hostArch={}; runtimeEnvironment={runtime_environment})",
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
        }
    }

    /// The service root (no version segment, no trailing slash).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Sends one request and reads its whole response.
    pub fn send(&self, request: &Request<'_>) -> Result<Response, Error> {
        let token = self.token.token()?;
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let mut builder = ureq::http::Request::builder()
            .method(request.method.clone())
            .uri(&request.url)
            .header("Authorization", format!("Bearer {}", token.secret()))
            .header("client-request-id", &client_request_id)
            .header("SdkVersion", &self.sdk_version);
        if request.body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let sent = match request.body {
            // A GET carries no body and so no Content-Length.
            Some(body) => builder.body(body).map(|req| self.agent.run(req)),
            None => builder.body(()).map(|req| self.agent.run(req)),
        };
        let mut response = sent
            .map_err(|err| transport(TransportKind::Io, err, &client_request_id))?
            .map_err(|err| map_error(err, started, &client_request_id))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|err| match err {
                ureq::Error::BodyExceedsLimit(_) => Error::UnexpectedResponse {
                    status,
                    reason: format!("body larger than {MAX_BODY} bytes"),
                    request_id: response_header(response.headers(), "request-id"),
                    client_request_id: client_request_id.clone(),
                },
                other => map_error(other, started, &client_request_id),
            })?;
        let (parts, _drained) = response.into_parts();
        Ok(Response {
            status,
            headers: parts.headers,
            body,
            client_request_id,
        })
    }
}

fn response_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn transport(kind: TransportKind, err: impl std::fmt::Display, client_request_id: &str) -> Error {
    Error::Transport {
        kind,
        message: err.to_string(),
        client_request_id: client_request_id.to_owned(),
    }
}

/// Sorts ureq's errors into the stages an operator can act on.
fn map_error(err: ureq::Error, started: Instant, client_request_id: &str) -> Error {
    use std::io::ErrorKind;
    let kind = match &err {
        ureq::Error::Timeout(stage) => {
            return Error::Timeout {
                stage: stage.to_string(),
                elapsed: started.elapsed(),
                client_request_id: client_request_id.to_owned(),
            };
        }
        ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => {
            return Error::Timeout {
                stage: "response".to_owned(),
                elapsed: started.elapsed(),
                client_request_id: client_request_id.to_owned(),
            };
        }
        ureq::Error::HostNotFound => TransportKind::Dns,
        ureq::Error::ConnectionFailed => TransportKind::Connect,
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            ) =>
        {
            TransportKind::Connect
        }
        ureq::Error::Tls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::TlsRequired
        | ureq::Error::RequireHttpsOnly(_) => TransportKind::Tls,
        _ => TransportKind::Io,
    };
    transport(kind, err, client_request_id)
}
