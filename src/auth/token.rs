//! The token every source hands out and the trait a source of them implements: what the
//! credentials, the identity sources and the cache share (they import it from here, never from
//! `auth`'s `mod.rs`).

use std::fmt;
use std::time::Instant;

use crate::Error;
use crate::auth_error::AuthError;
use crate::limits::MAX_TOKEN_BYTES;

/// Results inside the auth module: the error is boxed, as it is inside [`Error`].
pub(crate) type AuthResult<T> = Result<T, Box<AuthError>>;

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
///
/// [`Client::interrupt`](crate::Client::interrupt) cannot end a custom provider's own wait: a call
/// interrupted while its provider runs returns [`Error::Cancelled`] once the provider returns (the
/// token is not used). Bound the provider's waits, e.g. by the `deadline` of
/// [`token_before`](Self::token_before).
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
