//! The one error type every operation returns.
//!
//! Errors are born typed in the layer that knows what went wrong (validation, Graph, transport).
//! [`ErrorKind`] sorts them: the C status code (`ffi::error`), the error JSON's `status`
//! (`error_json`) and the `ius` command's exit code are all derived from it.

use std::fmt;
use std::time::Duration;

use crate::auth_error::AuthError;

/// Everything that can go wrong when talking to Microsoft Graph through this crate.
///
/// Messages are written for an operator reading a log: they name the field or the HTTP status,
/// Graph's error code and the `request-id` Microsoft support asks for. Tokens and secrets never
/// appear in them.
///
/// [`kind`](Error::kind) sorts an error for programs; serialized (serde), an error is the error
/// JSON the C API writes, with only the keys that apply:
///
/// ```
/// use intune_user_status::{ErrorKind, UserStatusPatch};
/// let err = UserStatusPatch::from_json(r#"{"devicesCount":"three"}"#).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// let json = serde_json::to_value(&err).unwrap();
/// assert_eq!((&json["status"], &json["field"]), (&"INVALID_INPUT".into(), &"devicesCount".into()));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's input was rejected before anything was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The property, id or argument at fault, as Graph or the C API names it (`devicesCount`,
        /// `userStatusId`, `route`, ...).
        field: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The client configuration was rejected by [`ClientBuilder::build`](crate::ClientBuilder::build).
    #[error("invalid configuration {field}: {reason}")]
    Config {
        /// The setting at fault (`baseUrl`, `timeouts.connectMs`, ...).
        field: String,
        /// Why it was rejected.
        reason: String,
    },

    /// No access token could be obtained: the identity platform refused the app's credentials
    /// (see [`AuthError::aadsts`]), could not be reached, or a custom provider failed. Never
    /// contains a token, secret or assertion.
    #[error("authentication failed: {0}")]
    Auth(Box<AuthError>),

    /// Graph answered with an HTTP error status (4xx or 5xx).
    #[error("{0}")]
    Graph(Box<GraphError>),

    /// The request could not be sent or its response could not be read (connection refused or
    /// reset, DNS failure, TLS failure, ...).
    #[error("{kind} error: {message} (client-request-id {client_request_id})")]
    #[non_exhaustive]
    Transport {
        /// Which stage failed.
        kind: TransportKind,
        /// The underlying error, for the log.
        message: String,
        /// The `client-request-id` this SDK sent, to find the call in client-side logs.
        client_request_id: String,
        /// Requests actually sent, retries included.
        attempts: u32,
        /// True when the request got no answer at all because Graph could not be reached: the
        /// name did not resolve, no connection (or TLS session) could be made, or the connection
        /// was reset or closed before any response. False when a response began. An outbox flush
        /// whose every request of a batch ends so stops sending until its backoff has passed.
        no_answer: bool,
    },

    /// No complete response arrived within the configured time.
    #[error(
        "timed out after {elapsed:?} waiting for {stage} (client-request-id {client_request_id})"
    )]
    #[non_exhaustive]
    Timeout {
        /// What was being waited for (`connect`, `response`, ...).
        stage: String,
        /// How long the call ran before giving up.
        elapsed: Duration,
        /// The `client-request-id` this SDK sent.
        client_request_id: String,
        /// Requests actually sent, retries included.
        attempts: u32,
        /// True when the time ran out before a connection was made (resolving the name,
        /// connecting): Graph could not be reached. False when the time ran out on an open
        /// connection waiting for the answer, or before the request was sent at all.
        no_answer: bool,
    },

    /// The client held the request back (its pacing limit, or a 429 another thread received) for
    /// longer than the call's time budget allows, so it gave up without waiting.
    #[error(
        "throttled by the client: the next request could leave only in {:.3} s, past the call's time budget (client-request-id {client_request_id})",
        wait.as_secs_f64()
    )]
    #[non_exhaustive]
    Throttled {
        /// How long the request would have had to wait.
        wait: Duration,
        /// The `client-request-id` of the call.
        client_request_id: String,
        /// Requests actually sent, retries included.
        attempts: u32,
    },

    /// Graph answered, but not with something this operation can accept (a 2xx whose body is not the
    /// entity, an unexpected status such as a redirect that was not followed, a body over the size cap).
    #[error("unexpected response{}: {reason}{}", fmt_status(*status), fmt_ids(request_id.as_deref(), client_request_id))]
    #[non_exhaustive]
    UnexpectedResponse {
        /// The HTTP status received; 0 when the response was too malformed to have one.
        status: u16,
        /// What was wrong with it.
        reason: String,
        /// The `request-id` response header, when present.
        request_id: Option<String>,
        /// The `client-request-id` this SDK sent.
        client_request_id: String,
        /// Requests actually sent, retries included.
        attempts: u32,
    },

    /// The call was interrupted ([`Client::interrupt`](crate::Client::interrupt)) before it
    /// finished: whatever it waited on (a response, a `Retry-After` or backoff wait, the pacing
    /// gate, a token) was abandoned, and a request in flight had its connection closed, so whether
    /// Graph applied that request is unknown. Calls started after the interrupt are not affected.
    #[error(
        "cancelled by an interrupt while {stage}{}",
        fmt_request_id(client_request_id)
    )]
    #[non_exhaustive]
    Cancelled {
        /// What the call was doing (`waiting for the response`, `waiting at the pacing gate`, ...).
        stage: String,
        /// The `client-request-id` of the call (empty for a bulk item never sent).
        client_request_id: String,
        /// Requests actually sent, retries included (the abandoned one counts).
        attempts: u32,
    },

    /// The outbox is full ([`OutboxOptions::max_pending`](crate::OutboxOptions::max_pending)
    /// targets or [`max_bytes`](crate::OutboxOptions::max_bytes)): a report for a new target was
    /// refused and nothing was stored. Reports for targets already pending still merge.
    #[error("outbox full: {reason}")]
    OutboxFull {
        /// Which bound was reached.
        reason: String,
    },

    /// The outbox file could not be used: its folder is missing or not writable, it is not SQLite,
    /// not an outbox, from a newer version of this library, or the disk is full. The file was
    /// left as it was. In a flush, it may also keep a request from leaving (the file could not
    /// say until when Graph may apply it): `attempts` then counts the requests sent before it.
    #[error("outbox storage {path}: {reason}")]
    #[non_exhaustive]
    Storage {
        /// The outbox file.
        path: String,
        /// What went wrong.
        reason: String,
        /// Requests actually sent for the call before the file failed it, retries included
        /// (0 for every failure outside a call).
        attempts: u32,
    },
}

/// The stage at which a transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// The host name could not be resolved.
    Dns,
    /// No connection could be opened (refused, unreachable).
    Connect,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The connection failed while sending or receiving (reset, closed mid-body, malformed HTTP).
    Io,
}

/// What kind of failure an [`Error`] is, for programs that act on it: the C API's status code,
/// the error JSON's `status` and the `ius` command's exit code are each derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::InvalidInput`]: nothing was sent.
    InvalidInput,
    /// [`Error::Config`]: the client configuration was rejected.
    Config,
    /// [`Error::OutboxFull`].
    OutboxFull,
    /// [`Error::Storage`].
    Storage,
    /// [`Error::Cancelled`]: an interrupt ended the call.
    Cancelled,
    /// [`Error::Auth`]: no access token; nothing was sent to Graph.
    Auth,
    /// [`Error::Graph`] with any HTTP status but 429.
    Graph,
    /// Graph answered 429 ([`Error::Graph`]), or the client's own hold outlasted the call's
    /// budget ([`Error::Throttled`]).
    Throttled,
    /// [`Error::UnexpectedResponse`].
    UnexpectedResponse,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Transport`] with [`TransportKind::Dns`], [`Connect`](TransportKind::Connect) or
    /// [`Io`](TransportKind::Io).
    Network,
    /// [`Error::Transport`] with [`TransportKind::Tls`].
    Tls,
}

impl ErrorKind {
    /// Every kind, in the order of the C API's status codes.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidInput,
        ErrorKind::Config,
        ErrorKind::OutboxFull,
        ErrorKind::Storage,
        ErrorKind::Cancelled,
        ErrorKind::Auth,
        ErrorKind::Graph,
        ErrorKind::Throttled,
        ErrorKind::UnexpectedResponse,
        ErrorKind::Timeout,
        ErrorKind::Network,
        ErrorKind::Tls,
    ];

    /// The name the error JSON's `status` gives it, the C status constant's without its
    /// `IUS_STATUS_` prefix (a test in `ffi` holds the two together): `"INVALID_INPUT"`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "INVALID_INPUT",
            ErrorKind::Config => "CONFIG",
            ErrorKind::OutboxFull => "OUTBOX_FULL",
            ErrorKind::Storage => "STORAGE",
            ErrorKind::Cancelled => "CANCELLED",
            ErrorKind::Auth => "AUTH",
            ErrorKind::Graph => "GRAPH",
            ErrorKind::Throttled => "THROTTLED",
            ErrorKind::UnexpectedResponse => "UNEXPECTED_RESPONSE",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::Network => "NETWORK",
            ErrorKind::Tls => "TLS",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Dns => "DNS",
            TransportKind::Connect => "connect",
            TransportKind::Tls => "TLS",
            TransportKind::Io => "network",
        })
    }
}

/// An HTTP error answered by Graph, with everything support needs to trace it.
///
/// Program against [`code`](GraphError::code), never against the message: Graph documents codes
/// as stable and messages as free text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphError {
    /// The HTTP status (e.g. 404, 429, 503).
    pub status: u16,
    /// Graph's `error.code` (e.g. `ResourceNotFound`), when the body was Graph JSON.
    pub code: Option<String>,
    /// Graph's `error.message`, when the body was Graph JSON.
    pub message: Option<String>,
    /// The `request-id` Microsoft support asks for: from the response header, else from `innerError`.
    pub request_id: Option<String>,
    /// The `client-request-id` this SDK sent (echoed by Graph).
    pub client_request_id: String,
    /// `innerError.date`, or the `Date` header, when present.
    pub date: Option<String>,
    /// How long the service asked the caller to wait (`Retry-After`), when it said.
    pub retry_after: Option<Duration>,
    /// The body, when it was not Graph's error JSON (e.g. an HTML page from a proxy), cut to 4 KiB.
    pub raw_body: Option<String>,
    /// Requests actually sent, retries included.
    pub attempts: u32,
    /// Why retrying stopped before the retries ran out, e.g. a `Retry-After` past the budget.
    pub retry_stopped: Option<String>,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Graph answered HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(wait) = self.retry_after {
            write!(f, " (Retry-After {:.3} s)", wait.as_secs_f64())?;
        }
        if let Some(why) = &self.retry_stopped {
            write!(f, "; not retried: {why}")?;
        }
        if let Some(body) = &self.raw_body {
            let shown: String = body.chars().take(200).collect();
            write!(f, "; body: {shown}")?;
        }
        f.write_str(&fmt_ids(
            self.request_id.as_deref(),
            &self.client_request_id,
        ))?;
        if let Some(date) = &self.date {
            write!(f, " at {date}")?;
        }
        Ok(())
    }
}

fn fmt_status(status: u16) -> String {
    if status == 0 {
        String::new()
    } else {
        format!(": HTTP {status}")
    }
}

/// ` (client-request-id ...)`, or nothing for an item that was never sent.
fn fmt_request_id(client_request_id: &str) -> String {
    if client_request_id.is_empty() {
        String::new()
    } else {
        format!(" (client-request-id {client_request_id})")
    }
}

fn fmt_ids(request_id: Option<&str>, client_request_id: &str) -> String {
    match request_id {
        Some(id) => format!(" (request-id {id}, client-request-id {client_request_id})"),
        None => format!(" (client-request-id {client_request_id})"),
    }
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Names an invalid field as part of `outer` (`patch` + `devicesCount` ->
    /// `patch.devicesCount`; `patch` + `patch` stays `patch`). Other errors pass unchanged.
    pub(crate) fn within(self, outer: &str) -> Error {
        match self {
            Error::InvalidInput { field, reason } => Error::InvalidInput {
                field: if field == outer {
                    field
                } else {
                    format!("{outer}.{field}")
                },
                reason,
            },
            other => other,
        }
    }

    /// A STORAGE error about the outbox file at `path`, outside any request (no attempts).
    pub(crate) fn storage(path: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Storage {
            path: path.into(),
            reason: reason.into(),
            attempts: 0,
        }
    }

    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::Config { .. } => ErrorKind::Config,
            Error::Auth(_) => ErrorKind::Auth,
            Error::Graph(_) if self.is_throttled() => ErrorKind::Throttled,
            Error::Graph(_) => ErrorKind::Graph,
            // Exhaustive on purpose: a new transport kind must choose its kind here.
            Error::Transport { kind, .. } => match kind {
                TransportKind::Tls => ErrorKind::Tls,
                TransportKind::Dns | TransportKind::Connect | TransportKind::Io => {
                    ErrorKind::Network
                }
            },
            Error::Timeout { .. } => ErrorKind::Timeout,
            // The client's own hold (pacing, an earlier 429) outlasted the call's budget.
            Error::Throttled { .. } => ErrorKind::Throttled,
            Error::UnexpectedResponse { .. } => ErrorKind::UnexpectedResponse,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::OutboxFull { .. } => ErrorKind::OutboxFull,
            Error::Storage { .. } => ErrorKind::Storage,
        }
    }

    /// The token request's details, when no access token could be obtained.
    pub fn auth(&self) -> Option<&AuthError> {
        match self {
            Error::Auth(auth) => Some(auth),
            _ => None,
        }
    }

    /// The Graph error details, when Graph answered with an HTTP error.
    pub fn graph(&self) -> Option<&GraphError> {
        match self {
            Error::Graph(graph) => Some(graph),
            _ => None,
        }
    }

    /// The HTTP status of the response this error came from, if one arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Graph(graph) => Some(graph.status),
            Error::UnexpectedResponse { status, .. } => Some(*status).filter(|&status| status != 0),
            _ => None,
        }
    }

    /// The `request-id` Microsoft support asks for, when the service sent one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Graph(graph) => graph.request_id.as_deref(),
            Error::UnexpectedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The `client-request-id` this SDK sent, when a request was sent.
    pub fn client_request_id(&self) -> Option<&str> {
        match self {
            Error::Graph(graph) => Some(graph.client_request_id.as_str()),
            Error::Transport {
                client_request_id, ..
            }
            | Error::Timeout {
                client_request_id, ..
            }
            | Error::Throttled {
                client_request_id, ..
            }
            | Error::UnexpectedResponse {
                client_request_id, ..
            }
            | Error::Cancelled {
                client_request_id, ..
            } => Some(client_request_id.as_str()),
            _ => None,
        }
        // A bulk item whose turn never came was sent with no id.
        .filter(|id| !id.is_empty())
    }

    /// Requests actually sent for the call, retries included (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        match self {
            Error::Graph(graph) => graph.attempts,
            Error::Transport { attempts, .. }
            | Error::Timeout { attempts, .. }
            | Error::Throttled { attempts, .. }
            | Error::UnexpectedResponse { attempts, .. }
            | Error::Cancelled { attempts, .. }
            | Error::Storage { attempts, .. } => *attempts,
            Error::Auth(auth) => auth.attempts,
            _ => 0,
        }
    }

    /// How long the service (or the client's own hold) asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Graph(graph) => graph.retry_after,
            Error::Throttled { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    /// Why retrying stopped before the retries ran out (e.g. a `Retry-After` past
    /// `retry.maxDelayMs`), when it did.
    pub fn retry_stopped(&self) -> Option<&str> {
        self.graph()
            .and_then(|graph| graph.retry_stopped.as_deref())
    }

    /// True when the call was throttled: Graph answered 429, or the client could not send within
    /// the call's budget because of pacing or an earlier 429.
    pub fn is_throttled(&self) -> bool {
        matches!(self, Error::Throttled { .. }) || self.http_status() == Some(429)
    }

    /// An interrupt ended the call while it was at `stage`.
    pub(crate) fn cancelled(stage: &str, client_request_id: &str, attempts: u32) -> Error {
        Error::Cancelled {
            stage: stage.to_owned(),
            client_request_id: client_request_id.to_owned(),
            attempts,
        }
    }

    /// True when the request got no answer at all: Graph could not be reached (the `no_answer`
    /// of [`Error::Transport`] and [`Error::Timeout`], set where the failure is known).
    pub(crate) fn got_no_answer(&self) -> bool {
        matches!(
            self,
            Error::Transport {
                no_answer: true,
                ..
            } | Error::Timeout {
                no_answer: true,
                ..
            }
        )
    }

    /// True when an interrupt ended the call ([`Error::Cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }

    pub(crate) fn set_attempts(&mut self, count: u32) {
        match self {
            Error::Graph(graph) => graph.attempts = count,
            Error::Transport { attempts, .. }
            | Error::Timeout { attempts, .. }
            | Error::Throttled { attempts, .. }
            | Error::UnexpectedResponse { attempts, .. }
            | Error::Cancelled { attempts, .. }
            | Error::Storage { attempts, .. } => *attempts = count,
            Error::Auth(auth) => auth.attempts = count,
            _ => {}
        }
    }
}

impl From<AuthError> for Error {
    fn from(err: AuthError) -> Error {
        Error::from(Box::new(err))
    }
}

impl From<Box<AuthError>> for Error {
    fn from(err: Box<AuthError>) -> Error {
        Error::Auth(err)
    }
}
