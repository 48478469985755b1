//! The one request pipeline every operation goes through: the pacing gate, auth, Graph's headers,
//! the shared ureq agent, redirects, and the retry loop. Responses are always read to the end, so
//! the connection returns to the pool.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::http::header::{AUTHORIZATION, CONTENT_TYPE};
use ureq::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, RustlsConnector};

use crate::abortable::{self, AbortableConnector, Unsent};
use crate::auth::Tokens;
use crate::cancel::{self, Signal, Watch};
use crate::coalesce::CoalescingConnector;
use crate::limits::{INPUT_BUFFER, MAX_HEADER_BLOCK, OUTPUT_BUFFER};
use crate::metrics::{AnswerClass, Collector, Operation, RetryCause};
use crate::pacing::{self, Gate, Pacing, Refused};
use crate::resolver::CachingResolver;
use crate::retry::{RetryPolicy, Verdict, decide, parse_retry_after, retryable_status};
use crate::tcp::TcpConnector;
use crate::url::{check_secure, never_proxied};
use crate::{AccessToken, Cloud, Error, TokenProvider, TransportKind};

/// The largest response body accepted; a deviceConfigurationUserStatus is a few hundred bytes.
pub(crate) const MAX_BODY: u64 = 1024 * 1024;

/// Redirects followed at most, as in Microsoft's SDKs.
pub(crate) const MAX_REDIRECTS: u32 = 5;

const SDK_NAME: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

// Graph's request headers, named once (http keeps names lower-case; the wire is case-blind).
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
const SDK_VERSION: HeaderName = HeaderName::from_static("sdkversion");
const RETRY_ATTEMPT: HeaderName = HeaderName::from_static("retry-attempt");

/// What to send: built by an operation, executed by [`Pipeline::execute`].
pub(crate) struct Request<'a> {
    /// What the request is for, as the metrics count it.
    pub operation: Operation,
    pub method: Method,
    pub url: String,
    /// Serialized once by the caller and borrowed, so every retry resends the same bytes.
    pub body: Option<&'a [u8]>,
    /// Whether sending it twice does no harm (everything but a create). A request that is not
    /// is resent only when Graph cannot have processed it: a 429, a 503, or a connection that
    /// failed before the request was written.
    pub idempotent: bool,
}

/// How one call may retry and how long it may take in all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub retry: RetryPolicy,
    pub total: Option<Duration>,
}

/// A complete response: status, headers, the whole body, and how it was obtained.
pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The `client-request-id` sent with every attempt of the call.
    pub client_request_id: String,
    /// Requests sent, retries included.
    pub attempts: u32,
    /// Time spent waiting between those requests (backoff and `Retry-After`).
    pub waited: Duration,
    /// Why retrying stopped early, when it did.
    pub retry_stopped: Option<String>,
    /// A 303 turned the request into a GET: the answer is not the operation's.
    pub redirected_to_get: bool,
    /// An earlier attempt of the call may have been applied though its answer was lost (a 504,
    /// or a connection lost after the request was sent).
    pub earlier_outcome_unknown: bool,
}

impl Response {
    /// A response header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Settings the pipeline is built from (checked by [`ClientBuilder`](crate::ClientBuilder)).
pub(crate) struct PipelineSettings<'a> {
    pub root: String,
    pub plain_http: bool,
    /// Made into the token provider with the pipeline's agent, so a credential's token requests
    /// share its proxy, TLS, resolver and timeouts.
    pub tokens: Tokens,
    /// Chooses a credential's token authority and scope unless it names its own.
    pub cloud: Cloud,
    /// The client's retry policy: a managed-identity endpoint's answers are retried under it.
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub user_agent_suffix: Option<&'a str>,
    pub runtime_environment: &'a str,
    pub pacing: Option<Pacing>,
    pub proxy: Option<ureq::Proxy>,
    pub tls: ureq::tls::TlsConfig,
}

/// Shared by every clone of a [`Client`](crate::Client): one agent (one connection pool) and one
/// pacing gate for all threads.
pub(crate) struct Pipeline {
    agent: Agent,
    root: String,
    token: Arc<dyn TokenProvider>,
    /// Built once: the same for every request of the client.
    sdk_version: HeaderValue,
    request_timeout: Duration,
    gate: Gate,
    /// `host:port` of the proxy, if any, to name it when it refuses (never its credentials).
    proxy: Option<String>,
    /// The client's cancellation signal: [`Client::interrupt`](crate::Client::interrupt).
    signal: Arc<Signal>,
    /// The client's metrics: [`Client::metrics`](crate::Client::metrics).
    metrics: Arc<Collector>,
}

/// One attempt's failure: whether it happened before any response (so an idempotent request may
/// be sent again), and whether the request may have reached Graph (a create is then not resent:
/// its outcome is unknown).
struct Failure {
    error: Error,
    before_response: bool,
    written: bool,
}

impl Pipeline {
    pub fn new(config: PipelineSettings<'_>) -> Result<Pipeline, Error> {
        let proxy_address = config
            .proxy
            .as_ref()
            .map(|proxy| (proxy.host().to_owned(), proxy.port()));
        let proxy = proxy_address
            .as_ref()
            .map(|(host, port)| format!("{host}:{port}"));
        let user_agent = match config.user_agent_suffix {
            Some(suffix) => format!("{SDK_NAME} {suffix}"),
            None => SDK_NAME.to_owned(),
        };
        // Every default here is chosen, not inherited: ureq's own would turn 4xx/5xx into errors,
        // set no timeouts and follow redirects by its own rules.
        let agent_config = Agent::config_builder()
            // 4xx/5xx must come back as responses: their body is Graph's error and Retry-After.
            .http_status_as_error(false)
            // Only a loopback base URL may be plain http; redirects are checked the same way.
            .https_only(!config.plain_http)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.request_timeout))
            // Redirects are followed here, not by ureq: ureq's same-host rule ignores scheme and
            // port, and it does not follow a 307/308 for PATCH.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // Chosen by NetworkSettings: explicit, from the environment, or none.
            .proxy(config.proxy)
            .tls_config(config.tls)
            .user_agent(user_agent)
            .accept("application/json")
            // Many agent threads share one client and one host.
            .max_idle_connections(32)
            .max_idle_connections_per_host(32)
            // Every layer of a connection (TCP, TLS, src/coalesce.rs) keeps buffers of these
            // sizes for as long as it is pooled: ureq's 128 KiB each made a pooled plain-http
            // connection hold 514 KiB. Graph's answers are small and stream through the input
            // buffer; a header block must fit it whole.
            .input_buffer_size(INPUT_BUFFER)
            .max_response_header_size(MAX_HEADER_BLOCK)
            .output_buffer_size(OUTPUT_BUFFER)
            .build();
        let agent = Agent::with_parts(
            agent_config,
            // ureq's default chain (a CONNECT proxy, TCP, TLS) with the SDK's TCP connector, whose
            // connect and reads an interrupt can end (src/tcp.rs).
            AbortableConnector(
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector)
                    .chain(RustlsConnector::default()),
            )
            .chain(CoalescingConnector),
            CachingResolver::new(DefaultResolver::default(), proxy_address),
        );
        let token = config
            .tokens
            .into_provider(&agent, config.cloud, config.retry)?;
        Ok(Pipeline {
            agent,
            root: config.root,
            token,
            sdk_version: HeaderValue::try_from(format!(
                "{SDK_NAME} (hostOS={}; hostArch={}; runtimeEnvironment={})",
                std::env::consts::OS,
                std::env::consts::ARCH,
                config.runtime_environment
            ))
            .unwrap_or(HeaderValue::from_static(SDK_NAME)),
            request_timeout: config.request_timeout,
            gate: Gate::new(config.pacing),
            proxy,
            signal: Signal::new(),
            metrics: Arc::default(),
        })
    }

    /// The client's metrics, shared by its clones and outboxes.
    pub fn metrics(&self) -> &Collector {
        &self.metrics
    }

    /// The client's cancellation signal, shared by its clones.
    pub fn signal(&self) -> &Arc<Signal> {
        &self.signal
    }

    /// What a call starting now watches: the client's signal.
    pub fn watch(&self) -> Watch {
        Watch::new(&self.signal)
    }

    /// How long one attempt may wait for its answer (`timeouts.requestMs`).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The service root (no version segment, no trailing slash).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The client-side rate limit, if any.
    pub fn pacing(&self) -> Option<Pacing> {
        self.gate.pacing()
    }

    /// Holds every request of the client for `wait` after a 429, direct or inside a batch
    /// (Graph throttles the app, not the request), never longer than the policy would wait once.
    pub fn hold_after_429(&self, wait: Duration, policy: &RetryPolicy) {
        let now = Instant::now();
        let extended = self.gate.hold_until(now, now + wait.min(policy.max_delay));
        self.metrics.held(extended);
    }

    /// Sends `request`, retrying as `budget` allows, and returns the final response, whatever
    /// its status; the operation decides what the status means. An interrupt of `watch` ends the
    /// call with [`Error::Cancelled`], whatever it waits on.
    pub fn execute(
        &self,
        request: &Request<'_>,
        budget: Budget,
        watch: &Watch,
    ) -> Result<Response, Error> {
        self.execute_counted(request, 1, budget, watch)
    }

    /// [`execute`](Self::execute) for a request the pacing gate counts as `count` requests (a
    /// `$batch` of `count` inner requests: Intune counts each).
    pub fn execute_counted(
        &self,
        request: &Request<'_>,
        count: u32,
        budget: Budget,
        watch: &Watch,
    ) -> Result<Response, Error> {
        let client_request_id = crate::request_id::new();
        let started = Instant::now();
        let deadline = budget.total.map(|total| started + total);
        let mut attempts = 0u32;
        // Retries the policy granted: a resend after re-authentication is not one of them.
        let mut retries = 0u32;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        let mut outcome_unknown = false;
        // The answer (or failure) a retry follows: what the call ends with when the client's own
        // gate refuses that retry, unless it was Graph's 429.
        let mut previous: Option<Result<Response, Failure>> = None;
        let cancelled =
            |stage: &str, attempts: u32| Err(Error::cancelled(stage, &client_request_id, attempts));
        // The token cache and sources count into this client's metrics through the thread.
        let _counted = self.metrics.enter();
        loop {
            if watch.cancelled() {
                return cancelled("about to send", attempts);
            }
            // A wait at the gate (pacing, another thread's 429) is a wait like any other: it
            // counts against the call's total budget and against retry.maxTotalMs.
            let waits_end = Instant::now() + budget.retry.max_total_wait.saturating_sub(waited);
            let admit_by = deadline.map_or(waits_end, |deadline| deadline.min(waits_end));
            let admission = match self.gate.admit_many(count, Some(admit_by), watch) {
                Ok(admission) => admission,
                Err(Refused::Wait(wait)) => {
                    // Graph throttled nothing: the call ends with the answer the retry followed
                    // (as a retry past the budget does), not THROTTLED.
                    if let Some(previous) = previous.take().filter(
                        |previous| !matches!(previous, Ok(response) if response.status == 429),
                    ) {
                        let why = pacing::refused_retry(wait);
                        return finish(previous, attempts, waited, Some(why), outcome_unknown);
                    }
                    return Err(Error::Throttled {
                        wait,
                        client_request_id: client_request_id.clone(),
                        attempts,
                    });
                }
                Err(Refused::Cancelled) => {
                    return cancelled("waiting at the pacing gate", attempts);
                }
            };
            waited += admission.waited;
            if !admission.paced.is_zero() {
                self.metrics.paced(admission.paced);
            }
            attempts += 1;
            // The token provider and the transport reach the call's watch through the thread.
            let entered = watch.enter();
            let token = match self.token_before(watch, deadline) {
                Ok(token) => token,
                Err(_) if watch.cancelled() => {
                    return cancelled("waiting for a token", attempts - 1);
                }
                Err(error) => {
                    let failure = token_failure(error, started, &client_request_id);
                    return finish(Err(failure), attempts - 1, waited, None, false);
                }
            };
            // A token that came after the interrupt (a callback cannot be interrupted) is not
            // used.
            if watch.cancelled() {
                return cancelled("waiting for a token", attempts - 1);
            }
            // What the layer above must do before the request leaves (the outbox writes until
            // when Graph may apply it); unable to, the request does not leave, and its error
            // counts the requests that left before it (their outcome may be unknown).
            if let Err(mut error) = watch.leaving(deadline) {
                error.set_attempts(attempts - 1);
                return Err(error);
            }
            let sent_at = Instant::now();
            let outcome = self.attempt(
                request,
                &token,
                &client_request_id,
                retries,
                (started, deadline, sent_at),
            );
            // Answered (or failed): the request's pacing slots start ageing now, and its socket
            // (perhaps pooled again) is no longer this call's to cut.
            drop(admission);
            cancel::unblock();
            // Kept back at its first write (the layer above could not note its departure):
            // nothing of it was written, as when kept back before.
            if outcome.is_err()
                && let Some(mut error) = watch.take_kept_back()
            {
                error.set_attempts(attempts - 1);
                return Err(error);
            }
            let abandoned = outcome.is_err() && watch.cancelled();
            self.count(request, &outcome, abandoned, sent_at);
            if let Err(failure) = &outcome
                && abandoned
            {
                // The interrupt shut the connection: the request was abandoned (or, when nothing
                // was written, the lookup or the connect was left to end alone: it carried
                // nothing, and counts as no attempt).
                if failure.written {
                    return cancelled("waiting for the response", attempts);
                }
                return cancelled(
                    "connecting or sending the request (nothing of it was written)",
                    attempts - 1,
                );
            }
            if !reauthenticated && matches!(&outcome, Ok(response) if response.status == 401) {
                // Graph refused the token (revoked, or expired early): drop it from the cache and
                // send once more with a fresh one. A provider that hands back the same token (a
                // static one) gets its 401 at once instead of a pointless second request.
                reauthenticated = true;
                self.token.invalidate(&token);
                match self.token_before(watch, deadline) {
                    Ok(fresh) if fresh != token => {
                        log::info!(
                            "{} {}: HTTP 401; sending once more with a fresh token (client-request-id {client_request_id})",
                            request.method,
                            path_of(&request.url)
                        );
                        self.metrics.retried(RetryCause::TokenRefresh);
                        // The resend follows this 401: what the call ends with if the client's
                        // own gate refuses it.
                        previous = Some(outcome);
                        continue;
                    }
                    Ok(_) => {}
                    Err(_) if watch.cancelled() => {
                        return cancelled("waiting for a fresh token after HTTP 401", attempts);
                    }
                    // The call failed for want of a token (an AUTH or transport error a caller
                    // retries later), not because of Graph's 401.
                    Err(error) => {
                        let failure = token_failure(error, started, &client_request_id);
                        return finish(Err(failure), attempts, waited, None, outcome_unknown);
                    }
                }
            }
            drop(entered);
            // Graph may have applied this attempt though no answer says so.
            let unknown = match &outcome {
                Ok(response) => response.status == 504,
                Err(failure) => failure.written,
            };
            let asked = match &outcome {
                // A create after a 504 is not sent again: it may have been applied.
                Ok(response)
                    if retryable_status(response.status)
                        && (request.idempotent || response.status != 504) =>
                {
                    Some(response.header("retry-after").and_then(parse_retry_after))
                }
                Err(failure)
                    if failure.before_response && (request.idempotent || !failure.written) =>
                {
                    Some(None)
                }
                _ => None,
            };
            let Some(asked) = asked else {
                let outcome = if unknown && !request.idempotent {
                    outcome
                        .map_err(Failure::outcome_unknown)
                        .map(|mut response| {
                            response.retry_stopped = Some(OUTCOME_UNKNOWN.to_owned());
                            response
                        })
                } else {
                    outcome
                };
                let retry_stopped = outcome
                    .as_ref()
                    .ok()
                    .and_then(|response| response.retry_stopped.clone());
                return finish(outcome, attempts, waited, retry_stopped, outcome_unknown);
            };
            outcome_unknown |= unknown;
            if let (Ok(response), Some(wait)) = (&outcome, asked)
                && response.status == 429
            {
                // Every thread of this client waits, whether or not this call retries; never
                // longer than the policy would wait once, whatever the service asked.
                self.hold_after_429(wait, &budget.retry);
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match decide(&budget.retry, retries, asked, waited, remaining) {
                Verdict::Retry(wait) => {
                    let why = match &outcome {
                        Ok(response) => format!("HTTP {}", response.status),
                        Err(failure) => failure.error.to_string(),
                    };
                    self.metrics.retried(match &outcome {
                        Ok(response) if response.status == 429 => RetryCause::TooManyRequests,
                        Ok(response) if response.status == 503 => RetryCause::ServiceUnavailable,
                        Ok(_) => RetryCause::GatewayTimeout,
                        Err(_) => RetryCause::Transport,
                    });
                    log::info!(
                        "{} {}: {why}; retry {} of {} in {:.3} s (client-request-id {client_request_id})",
                        request.method,
                        path_of(&request.url),
                        attempts,
                        budget.retry.max_retries,
                        wait.as_secs_f64()
                    );
                    if asked.is_none() && matches!(&outcome, Ok(response) if response.status == 429)
                    {
                        // Without a Retry-After the backoff is the hold (with one, it is set).
                        self.hold_after_429(wait, &budget.retry);
                    }
                    if watch.sleep(wait).is_err() {
                        return cancelled("waiting to retry (Retry-After or backoff)", attempts);
                    }
                    waited += wait;
                    retries += 1;
                    previous = Some(outcome);
                }
                Verdict::Exhausted => {
                    return finish(outcome, attempts, waited, None, outcome_unknown);
                }
                Verdict::OverBudget(why) => {
                    return finish(outcome, attempts, waited, Some(why), outcome_unknown);
                }
            }
        }
    }

    /// A token for the call watched by `watch`, fetched (when it must be) without the call's
    /// departure hook: the token endpoint's connections carry none of the call's requests.
    fn token_before(&self, watch: &Watch, deadline: Option<Instant>) -> Result<AccessToken, Error> {
        let _fetch = watch.enter_without_departure();
        self.token.token_before(deadline)
    }

    /// One attempt: send, follow redirects, read the whole response.
    fn attempt(
        &self,
        request: &Request<'_>,
        token: &AccessToken,
        client_request_id: &str,
        retry: u32,
        (call_started, deadline, sent_at): (Instant, Option<Instant>, Instant),
    ) -> Result<Response, Failure> {
        let mut authorization = String::with_capacity(7 + token.secret().len());
        authorization.push_str("Bearer ");
        authorization.push_str(token.secret());
        let mut method = request.method.clone();
        let mut body = request.body;
        let mut url = request.url.clone();
        let mut same_origin = true;
        let mut redirected_to_get = false;
        let mut redirects = 0;
        // One request timeout covers the attempt with all its redirect hops.
        let attempt_ends = sent_at + self.request_timeout;
        let (ends, bounded_by_total) = match deadline {
            Some(deadline) if deadline < attempt_ends => (deadline, true),
            _ => (attempt_ends, false),
        };
        let mut started = sent_at;
        loop {
            // The first hop of an unbounded attempt runs on the agent's own timeout, so the common
            // case needs no per-request configuration.
            let timeout = if redirects == 0 && !bounded_by_total {
                self.request_timeout
            } else {
                ends.saturating_duration_since(started)
            };
            // Built in place: http's builder moves the whole request through every header.
            let head = || -> Result<ureq::http::request::Parts, ureq::http::Error> {
                let (mut head, ()) = ureq::http::Request::new(()).into_parts();
                head.method = method.clone();
                head.uri = url.parse()?;
                let headers = &mut head.headers;
                headers.append(CLIENT_REQUEST_ID, HeaderValue::from_str(client_request_id)?);
                headers.append(SDK_VERSION, self.sdk_version.clone());
                // Authorization never goes to another scheme, host or port.
                if same_origin {
                    headers.append(AUTHORIZATION, HeaderValue::from_str(&authorization)?);
                }
                if retry > 0 {
                    headers.append(RETRY_ATTEMPT, HeaderValue::from(retry));
                }
                if body.is_some() {
                    headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Ok(head)
            };
            let context = ErrorContext {
                started: call_started,
                client_request_id,
                bounded_by_total,
                proxy: self.proxy.as_deref(),
            };
            let sent = head().map(|head| match body {
                // A GET carries no body and so no Content-Length.
                Some(bytes) => self.run(ureq::http::Request::from_parts(head, bytes), timeout),
                None => self.run(ureq::http::Request::from_parts(head, ()), timeout),
            });
            let mut response = sent
                .map_err(|err| Failure {
                    error: transport(TransportKind::Io, err, client_request_id, false),
                    before_response: false,
                    written: false,
                })?
                .map_err(|err| Failure {
                    before_response: nothing_answered(&err),
                    written: !unwritten(&err),
                    error: context.map(err, true),
                })?;
            let status = response.status().as_u16();
            let request_id = response
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Sized from Content-Length, so a small body is read without growing the buffer.
            let capacity = response
                .body()
                .content_length()
                .unwrap_or(1024)
                .min(MAX_BODY);
            let mut body_bytes = Vec::with_capacity(capacity as usize);
            let read = response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .reader()
                .read_to_end(&mut body_bytes)
                .map_err(ureq::Error::from);
            log::debug!(
                "{method} {} -> HTTP {status} request-id={} attempt={} took={:?}",
                path_of(&url),
                request_id.as_deref().unwrap_or("-"),
                retry + 1,
                started.elapsed()
            );
            read.map_err(|err| Failure {
                error: match err {
                    ureq::Error::BodyExceedsLimit(_) => Error::UnexpectedResponse {
                        status,
                        reason: format!("body larger than {MAX_BODY} bytes"),
                        request_id: request_id.clone(),
                        client_request_id: client_request_id.to_owned(),
                        attempts: 0,
                    },
                    // The response began: an answer, whatever broke it.
                    other => context.map(other, false),
                },
                before_response: false,
                written: true,
            })?;
            let (parts, _drained) = response.into_parts();
            let response = Response {
                status,
                headers: parts.headers,
                body: body_bytes,
                client_request_id: client_request_id.to_owned(),
                attempts: 0,
                waited: Duration::ZERO,
                retry_stopped: None,
                redirected_to_get,
                earlier_outcome_unknown: false,
            };
            if !matches!(status, 301 | 302 | 303 | 307 | 308) || redirects == MAX_REDIRECTS {
                return Ok(response);
            }
            let Some(location) = response.header("location") else {
                return Ok(response);
            };
            let next = follow(&url, location).map_err(|reason| Failure {
                error: Error::UnexpectedResponse {
                    status,
                    reason,
                    request_id: request_id.clone(),
                    client_request_id: client_request_id.to_owned(),
                    attempts: 0,
                },
                before_response: false,
                written: true,
            })?;
            same_origin = same_origin && origin(&next) == origin(&request.url);
            if status == 303 {
                // HTTP: "see other" is fetched with GET, whatever the first method was.
                method = Method::GET;
                body = None;
                redirected_to_get = true;
            }
            log::debug!(
                "HTTP {status}: following the redirect to {}",
                path_of(&next)
            );
            url = next;
            redirects += 1;
            started = Instant::now();
        }
    }

    /// Counts an attempt of `request` sent at `sent_at` in the client's metrics once it ended (a
    /// request the departure hook kept back at its first write was never written, and is not
    /// counted): sent, how it ended (`abandoned`: an interrupt shut it), how long it took, the
    /// bodies' bytes.
    fn count(
        &self,
        request: &Request<'_>,
        outcome: &Result<Response, Failure>,
        abandoned: bool,
        sent_at: Instant,
    ) {
        let sent = request.body.map_or(0, <[u8]>::len);
        let (class, sent, received) = match outcome {
            Ok(response) => (
                AnswerClass::of_status(response.status),
                sent,
                response.body.len(),
            ),
            Err(failure) => {
                let class = match &failure.error {
                    _ if abandoned => AnswerClass::Cancelled,
                    Error::Cancelled { .. } => AnswerClass::Cancelled,
                    Error::Timeout { .. } => AnswerClass::Timeout,
                    // An answer too large to read: its status says how it ended.
                    Error::UnexpectedResponse { status, .. } if *status != 0 => {
                        AnswerClass::of_status(*status)
                    }
                    _ => AnswerClass::Transport,
                };
                (class, if failure.written { sent } else { 0 }, 0)
            }
        };
        self.metrics.sent(request.operation);
        self.metrics
            .answered(request.operation, class, sent_at.elapsed());
        self.metrics.bytes(sent, received);
    }

    fn run(
        &self,
        request: ureq::http::Request<impl ureq::AsSendBody>,
        timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        // Loopback never goes through a proxy (see url::never_proxied).
        let direct = self.proxy.is_some() && never_proxied(request.uri());
        let shorter = timeout < self.request_timeout;
        let request = if direct || shorter {
            let mut config = self.agent.configure_request(request);
            if shorter {
                // The call's total budget leaves less than a full attempt.
                config = config.timeout_global(Some(timeout));
            }
            if direct {
                config = config.proxy(None);
            }
            config.build()
        } else {
            request
        };
        self.agent.run(request)
    }
}

/// Why a create is not sent again after a 504 or a connection lost once it was sent.
const OUTCOME_UNKNOWN: &str = "the outcome is unknown: Graph may have applied the request, so it \
     was not sent again (look it up before sending it once more)";

impl Failure {
    /// Says in the error that the request may have been applied.
    fn outcome_unknown(mut self) -> Failure {
        let note = format!("; {OUTCOME_UNKNOWN}");
        match &mut self.error {
            Error::Transport { message, .. } => message.push_str(&note),
            Error::Timeout { stage, .. } => stage.push_str(&note),
            Error::UnexpectedResponse { reason, .. } => reason.push_str(&note),
            _ => {}
        }
        self
    }
}

/// A token the call could not get, as the call's failure; nothing was sent with it.
fn token_failure(error: Error, started: Instant, client_request_id: &str) -> Failure {
    let error = match error {
        // A wait for another thread's refresh ran out of this call's budget.
        Error::Timeout { stage, .. } => Error::Timeout {
            stage,
            elapsed: started.elapsed(),
            client_request_id: client_request_id.to_owned(),
            attempts: 0,
            no_answer: false,
        },
        other => other,
    };
    Failure {
        error,
        before_response: false,
        written: false,
    }
}

/// Attaches the attempt count, the time waited (and why retrying stopped) to the call's final
/// result.
fn finish(
    outcome: Result<Response, Failure>,
    attempts: u32,
    waited: Duration,
    retry_stopped: Option<String>,
    earlier_outcome_unknown: bool,
) -> Result<Response, Error> {
    match outcome {
        Ok(mut response) => {
            response.attempts = attempts;
            response.waited = waited;
            response.retry_stopped = retry_stopped;
            response.earlier_outcome_unknown = earlier_outcome_unknown;
            Ok(response)
        }
        Err(mut failure) => {
            failure.error.set_attempts(attempts);
            Err(failure.error)
        }
    }
}

/// The path of a URL, for logs (ids are not secrets; the host is the client's).
fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|scheme_end| {
            url[scheme_end + 3..]
                .find('/')
                .map(|p| &url[scheme_end + 3 + p..])
        })
        .unwrap_or(url)
}

/// `scheme://host:port`, with the port made explicit, to compare origins.
pub(crate) fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((scheme, uri.host()?.to_ascii_lowercase(), port))
}

/// Resolves a `Location` against the current URL and checks it may be followed.
fn follow(current: &str, location: &str) -> Result<String, String> {
    let next = if location.starts_with("https://") || location.starts_with("http://") {
        location.to_owned()
    } else if let Some(path) = location.strip_prefix('/') {
        if path.starts_with('/') {
            return Err(format!(
                "redirect to a scheme-relative location \"{location}\""
            ));
        }
        let (scheme, host, port) = origin(current).ok_or("redirect from an unparsable URL")?;
        format!("{scheme}://{host}:{port}/{path}")
    } else {
        let base = current.rsplit_once('/').map_or(current, |(base, _)| base);
        format!("{base}/{location}")
    };
    let uri: Uri = next
        .parse()
        .map_err(|_| format!("redirect to an invalid location \"{location}\""))?;
    match check_secure(&uri) {
        Ok(_) => Ok(next),
        Err(_) => Err(format!(
            "redirect to \"{location}\" refused: only https (or http on loopback) is followed"
        )),
    }
}

/// Whether a failed send got no answer at all, so that sending again is safe and useful: the
/// connection was refused, reset, broken or closed before any response (a pooled connection the
/// server had closed). A response that began is an answer, never resent: a malformed status line,
/// a header block over the limit, a proxy's refusal; nor are DNS, TLS and timeouts retried.
fn nothing_answered(err: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match err {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// Whether a failed send certainly never wrote the request: the connection could not be made
/// (a proxy that refused the tunnel included: the request goes only through an open tunnel), or
/// the write of its first byte failed (`abortable::Unsent`). Anything else may have reached
/// Graph.
fn unwritten(err: &ureq::Error) -> bool {
    abortable::refused(err)
        || Unsent::is(err)
        || matches!(
            err,
            ureq::Error::HostNotFound
                | ureq::Error::ConnectProxyFailed(_)
                | ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect)
        )
}

/// What an attempt's transport error needs to be described.
#[derive(Clone, Copy)]
struct ErrorContext<'a> {
    /// When the call began: a timeout reports how long the whole call ran.
    started: Instant,
    client_request_id: &'a str,
    bounded_by_total: bool,
    /// The proxy's `host:port`, to name it when it refuses.
    proxy: Option<&'a str>,
}

impl ErrorContext<'_> {
    /// Sorts ureq's errors into the stages an operator can act on. `before_response`: no
    /// response had begun, so an error that shows Graph unreachable (refused, reset, DNS, a
    /// connect timeout, TLS) is marked `no_answer`.
    fn map(&self, err: ureq::Error, before_response: bool) -> Error {
        use std::io::ErrorKind;
        let unreached = before_response && (nothing_answered(&err) || unwritten(&err));
        let timeout = |stage: String| Error::Timeout {
            stage: if self.bounded_by_total {
                format!("{stage} (the call's total time budget ran out)")
            } else {
                stage
            },
            elapsed: self.started.elapsed(),
            client_request_id: self.client_request_id.to_owned(),
            attempts: 0,
            no_answer: unreached,
        };
        let kind = match &err {
            ureq::Error::Timeout(stage) => return timeout(stage.to_string()),
            // The server answered, but not in HTTP this client can read.
            ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
                return Error::UnexpectedResponse {
                    status: 0,
                    reason: format!("malformed response: {err}"),
                    request_id: None,
                    client_request_id: self.client_request_id.to_owned(),
                    attempts: 0,
                };
            }
            ureq::Error::ConnectProxyFailed(why) => {
                let proxy = self.proxy.unwrap_or("(from the environment)");
                let hint = if why.contains("407") {
                    "; it wants credentials: give them in the proxy URL (http://user:password@host:port)"
                } else {
                    ""
                };
                return transport(
                    TransportKind::Connect,
                    format!("the proxy {proxy} refused the connection: {why}{hint}"),
                    self.client_request_id,
                    unreached,
                );
            }
            ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => {
                return timeout("response".to_owned());
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
            // rustls reports handshake and certificate failures through the I/O stream.
            ureq::Error::Io(io)
                if Unsent::original(io)
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
            {
                TransportKind::Tls
            }
            _ => TransportKind::Io,
        };
        // A TLS session that cannot be made fails every request alike: Graph is out of reach.
        let no_answer = unreached || (before_response && kind == TransportKind::Tls);
        transport(kind, err, self.client_request_id, no_answer)
    }
}

fn transport(
    kind: TransportKind,
    err: impl std::fmt::Display,
    client_request_id: &str,
    no_answer: bool,
) -> Error {
    Error::Transport {
        kind,
        message: err.to_string(),
        client_request_id: client_request_id.to_owned(),
        attempts: 0,
        no_answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request the departure hook keeps back as its first byte is about to be written (the outbox
    /// could not write when it may land) was never written: the metrics count it neither as sent
    /// nor as answered, and the server read nothing of it.
    #[test]
    fn a_request_kept_back_at_its_first_write_is_not_counted_as_sent() {
        use crate::departure::Departure;
        use crate::metrics::Operation;
        use std::io::Read;
        use std::sync::atomic::{AtomicU32, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut read = Vec::new();
            let _ = conn.read_to_end(&mut read);
            read.len()
        });
        let client = crate::Client::builder()
            .base_url(&url)
            .access_token("t")
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        // Lets the request leave, then keeps it back at its first write.
        let runs = AtomicU32::new(0);
        let hook = Departure::new(move |_| {
            if runs.fetch_add(1, Ordering::Relaxed) == 0 {
                Ok(())
            } else {
                Err(Error::invalid("outbox", "kept back"))
            }
        });
        let options = crate::CallOptions::new()
            .watched_by(client.pipeline().watch().before_each_request(hook));
        let result = client.update_user_status_with(
            &crate::Target::new("c", "u"),
            &crate::UserStatusPatch::new().devices_count(1),
            &options,
        );
        assert!(
            matches!(result, Err(Error::InvalidInput { .. })),
            "{result:?}"
        );
        let counts = client.metrics().requests[Operation::Update];
        drop(client);
        assert_eq!(server.join().unwrap(), 0, "the request was written");
        assert_eq!(
            (
                counts.sent,
                counts.answered.iter().map(|(_, n)| n).sum::<u64>()
            ),
            (0, 0),
            "nothing was written, yet: {counts:?}"
        );
    }

    #[test]
    fn redirect_locations_resolve_and_insecure_ones_are_refused() {
        let here = "https://graph.example/beta/a/b";
        assert_eq!(
            follow(here, "/v1.0/x").unwrap(),
            "https://graph.example:443/v1.0/x"
        );
        assert_eq!(follow(here, "c").unwrap(), "https://graph.example/beta/a/c");
        assert_eq!(
            follow(here, "https://other.example/y").unwrap(),
            "https://other.example/y"
        );
        assert!(follow(here, "http://other.example/y").is_err());
        assert!(follow(here, "//other.example/y").is_err());
        assert!(follow("http://127.0.0.1:1/a", "http://127.0.0.1:2/b").is_ok());
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(origin("https://h/x"), origin("https://H:443/y"));
        assert_ne!(origin("http://h/x"), origin("https://h/x"));
        assert_ne!(
            origin("http://127.0.0.1:1/x"),
            origin("http://127.0.0.1:2/x")
        );
    }

    /// A name that does not resolve is a DNS error, and it is not sent again: only failures
    /// where nothing answered are retried (docs/reliability.md).
    #[test]
    fn a_dns_failure_is_reported_as_such_and_not_retried() {
        let err = ureq::Error::HostNotFound;
        assert!(!nothing_answered(&err), "a DNS failure is not retried");
        let context = ErrorContext {
            started: Instant::now(),
            client_request_id: "crid",
            bounded_by_total: false,
            proxy: None,
        };
        assert!(
            matches!(
                context.map(err, true),
                Error::Transport {
                    kind: TransportKind::Dns,
                    no_answer: true,
                    ..
                }
            ),
            "a DNS failure is named as one"
        );
        // What is retried, for contrast: a refused connection.
        let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert!(nothing_answered(&refused));
    }

    /// "No answer" is set where the failure is known, not read back from a stage's name: a
    /// reset once the response began is an answer that broke, a response timeout is an answer
    /// awaited on an open connection; refused, reset before any response, a connect timeout and
    /// DNS are no answer.
    #[test]
    fn only_failures_before_any_response_are_marked_no_answer() {
        use std::io::ErrorKind;
        let context = ErrorContext {
            started: Instant::now(),
            client_request_id: "crid",
            bounded_by_total: true,
            proxy: None,
        };
        let io = |kind: ErrorKind| ureq::Error::Io(kind.into());
        for err in [
            io(ErrorKind::ConnectionRefused),
            io(ErrorKind::ConnectionReset),
            ureq::Error::Timeout(ureq::Timeout::Connect),
            ureq::Error::Timeout(ureq::Timeout::Resolve),
            ureq::Error::HostNotFound,
        ] {
            let shown = format!("{err:?}");
            assert!(context.map(err, true).got_no_answer(), "{shown}");
        }
        assert!(
            !context
                .map(ureq::Error::Timeout(ureq::Timeout::RecvResponse), true)
                .got_no_answer()
        );
        let broken_body = context.map(io(ErrorKind::ConnectionReset), false);
        assert!(
            matches!(broken_body, Error::Transport { .. }) && !broken_body.got_no_answer(),
            "{broken_body:?}"
        );
    }
}
