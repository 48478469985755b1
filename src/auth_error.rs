//! Why a token could not be obtained, with what Microsoft Entra support asks for. A leaf, so
//! that [`Error`](crate::Error) can hold it without importing the auth layer.

use std::fmt;

/// A token request that failed, as the Microsoft identity platform (or the network) reported it.
///
/// Program against [`aadsts`](AuthError::aadsts) or [`error`](AuthError::error), never against the
/// description. Nothing here ever holds the client secret, the client assertion or a token.
///
/// ```
/// use intune_user_status::{AuthError, Error};
/// // A custom token provider reports its own failures the same way.
/// let err: Error = AuthError::new("the agent's identity service is not running").into();
/// assert!(err.to_string().contains("identity service"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthError {
    /// What failed, for the operator: e.g. `token request to https://login.microsoftonline.com/contoso.onmicrosoft.com failed`.
    pub message: String,
    /// The OAuth `error` code, e.g. `invalid_client`, `unauthorized_client`.
    pub error: Option<String>,
    /// The service's `error_description` (its first line starts with the AADSTS code).
    pub error_description: Option<String>,
    /// The Microsoft Entra error code, e.g. `AADSTS7000215` (invalid client secret).
    pub aadsts: Option<String>,
    /// The `trace_id` Microsoft support asks for.
    pub trace_id: Option<String>,
    /// The `correlation_id` Microsoft support asks for.
    pub correlation_id: Option<String>,
    /// The token endpoint's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// True when trying again later may succeed (a 5xx, a 429, a network failure).
    pub transient: bool,
    /// The requests that carried the call to Graph before a retry found no token (0 when none
    /// did): what became of them is unknown, and Graph may still apply them.
    pub attempts: u32,
}

impl AuthError {
    /// A failure with only a message: for custom [`TokenProvider`](crate::TokenProvider)s.
    pub fn new(message: impl Into<String>) -> AuthError {
        AuthError {
            message: message.into(),
            error: None,
            error_description: None,
            aadsts: None,
            trace_id: None,
            correlation_id: None,
            http_status: None,
            transient: false,
            attempts: 0,
        }
    }

    /// The same failure, marked as worth retrying (or not).
    pub fn transient(mut self, transient: bool) -> AuthError {
        self.transient = transient;
        self
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(status) = self.http_status {
            write!(f, ": HTTP {status}")?;
        }
        if let Some(error) = &self.error {
            write!(f, " {error}")?;
        }
        // The description's first line names the AADSTS code and the cause; the rest repeats the ids.
        let summary = self
            .error_description
            .as_deref()
            .and_then(|d| d.lines().next());
        match (&self.aadsts, summary) {
            (Some(code), Some(summary)) if summary.starts_with(code.as_str()) => {
                write!(f, ": {summary}")?
            }
            (Some(code), Some(summary)) => write!(f, ": {code}: {summary}")?,
            (Some(code), None) => write!(f, ": {code}")?,
            (None, Some(summary)) => write!(f, ": {summary}")?,
            (None, None) => {}
        }
        match (&self.trace_id, &self.correlation_id) {
            (Some(trace), Some(correlation)) => {
                write!(f, " (trace-id {trace}, correlation-id {correlation})")
            }
            (Some(trace), None) => write!(f, " (trace-id {trace})"),
            (None, Some(correlation)) => write!(f, " (correlation-id {correlation})"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_code_and_ids_once() {
        let err = AuthError {
            error: Some("invalid_client".into()),
            error_description: Some(
                "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t\r\nCorrelation ID: c"
                    .into(),
            ),
            aadsts: Some("AADSTS7000215".into()),
            trace_id: Some("t-1".into()),
            correlation_id: Some("c-1".into()),
            http_status: Some(401),
            ..AuthError::new("token request to https://login.microsoftonline.com/contoso failed")
        };
        assert_eq!(
            err.to_string(),
            "token request to https://login.microsoftonline.com/contoso failed: HTTP 401 \
             invalid_client: AADSTS7000215: Invalid client secret provided. \
             (trace-id t-1, correlation-id c-1)"
        );
        assert_eq!(AuthError::new("no token").to_string(), "no token");
    }
}
