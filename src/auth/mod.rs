//! Where bearer tokens come from: a fixed token, a caller's [`TokenProvider`], or app-only tokens
//! from the Microsoft identity platform (`credentials`, with signed assertions from `assertion`
//! and federated tokens for `workload_identity`) or from the machine's managed-identity endpoint
//! (`managed_identity`, with Azure Arc's key files in `arc_key`); what their endpoints answer
//! (`answer`), the environment the identity sources read (`environment`), the bounded read of a
//! file holding a secret (`secret_file`: Arc's key, a federated token) and the per-client cache
//! they share (`cache`). The token itself never reaches `Debug`, `Display` or an error.

mod answer;
mod arc_key;
mod assertion;
mod cache;
mod credentials;
mod environment;
mod managed_identity;
mod secret_file;
mod workload_identity;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use ureq::Agent;

use crate::auth_error::AuthError;
use crate::limits::MAX_TOKEN_BYTES;
use crate::retry::RetryPolicy;
use crate::{Cloud, Error};

pub use assertion::AssertionAlgorithm;
// The C layer's token callback is a TokenSource behind the same cache as the credentials.
pub(crate) use cache::{FreshToken, TokenCache, TokenSource};
pub use credentials::{ClientCertificateCredential, ClientSecretCredential, Credential};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use credentials::{FUZZ_SECRET, read_token_answer};
pub use managed_identity::ManagedIdentityCredential;
pub use workload_identity::WorkloadIdentityCredential;

/// Results inside the auth module: the error is boxed, as it is inside [`Error`].
pub(crate) type AuthResult<T> = Result<T, Box<AuthError>>;

/// Where a client's tokens come from: a ready provider, or a credential made into one when the
/// client is built (it needs the client's agent, so token requests share its proxy, TLS and
/// timeouts).
#[derive(Clone)]
pub(crate) enum Tokens {
    /// A fixed token, checked when the client is built.
    Static(String),
    Provider(Arc<dyn TokenProvider>),
    Credential(Credential),
}

impl Tokens {
    /// The client's token provider; a credential is checked here and gets its own cache
    /// (`retry` is the client's policy, which a managed-identity endpoint's answers follow).
    pub(crate) fn into_provider(
        self,
        agent: &Agent,
        cloud: Cloud,
        retry: RetryPolicy,
    ) -> Result<Arc<dyn TokenProvider>, Error> {
        match self {
            Tokens::Static(token) => match AccessToken::refusal(token.as_bytes()) {
                Some(reason) => Err(Error::config("accessToken", reason)),
                None => Ok(Arc::new(StaticToken::new(token))),
            },
            Tokens::Provider(provider) => Ok(provider),
            Tokens::Credential(credential) => credential.into_provider(agent.clone(), cloud, retry),
        }
    }
}

/// An OAuth bearer token. Its `Debug` output is redacted, so it can sit in structs that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a bearer token (without the `Bearer ` prefix).
    pub fn new(token: impl Into<String>) -> AccessToken {
        AccessToken(token.into())
    }

    /// The token text, for the `Authorization` header. Do not log it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Why `token` cannot go into an `Authorization` header, if it cannot: it is empty, longer
    /// than 16 KiB (a request's head lines must fit its connection's buffer), or holds something
    /// other than visible ASCII (a line break would inject a header). Never says what the token is.
    pub(crate) fn refusal(token: &[u8]) -> Option<&'static str> {
        if token.is_empty() {
            Some("must not be empty")
        } else if token.len() > MAX_TOKEN_BYTES {
            Some("must be at most 16384 bytes (16 KiB)")
        } else if !token.iter().all(u8::is_ascii_graphic) {
            Some("must be visible ASCII only (letters, digits, punctuation; no line breaks)")
        } else {
            None
        }
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Supplies bearer tokens to a [`Client`](crate::Client). Called on the calling thread before each
/// request is sent, so it must be cheap when a cached token is still valid; it blocks when it must
/// fetch a new one.
pub trait TokenProvider: Send + Sync {
    /// A token valid for Graph now. Errors should be [`Error::Auth`].
    fn token(&self) -> Result<AccessToken, Error>;

    /// Like [`token`](Self::token), but gives up once `deadline` (the call's total time budget)
    /// has passed, with [`Error::Timeout`]. The default ignores the deadline; providers that may
    /// block (a token request, a wait for another thread's refresh) should honour it.
    fn token_before(&self, deadline: Option<Instant>) -> Result<AccessToken, Error> {
        let _ = deadline;
        self.token()
    }

    /// Graph rejected `token` (401): drop it from any cache so the next [`token`](Self::token)
    /// fetches a new one. The default does nothing.
    fn invalidate(&self, _token: &AccessToken) {}
}

/// A fixed token the caller obtained elsewhere (an agent's own identity stack, a test).
#[derive(Clone)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// A provider that always answers `token`.
    pub fn new(token: impl Into<String>) -> StaticToken {
        StaticToken(AccessToken::new(token))
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticToken").field(&self.0).finish()
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> Result<AccessToken, Error> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let provider = StaticToken::new("eyJ0eXAiOi-secret");
        let shown = format!("{provider:?} {:?}", provider.token().unwrap());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
