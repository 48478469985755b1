//! Where bearer tokens come from: a fixed token, a caller's [`TokenProvider`], or app-only tokens
//! from the Microsoft identity platform (`credentials`, with signed assertions from `assertion`
//! and federated tokens for `workload_identity`) or from the machine's managed-identity endpoint
//! (`managed_identity`, with Azure Arc's key files in `arc_key`); what their endpoints answer
//! (`answer`), the environment the identity sources read (`environment`), the bounded read of a
//! file holding a secret (`secret_file`: Arc's key, a federated token), the per-client cache
//! they share (`cache`) and the token type and provider trait they all use (`token`). The token
//! itself never reaches `Debug`, `Display` or an error.

mod answer;
mod arc_key;
mod assertion;
mod cache;
mod credentials;
mod environment;
mod managed_identity;
mod secret_file;
mod token;
mod workload_identity;

use std::sync::Arc;

use ureq::Agent;

use crate::retry::RetryPolicy;
use crate::{Cloud, Error};

pub use assertion::AssertionAlgorithm;
// The C layer's token callback is a TokenSource behind the same cache as the credentials.
pub(crate) use cache::{FreshToken, TokenCache, TokenSource};
pub use credentials::{ClientCertificateCredential, ClientSecretCredential, Credential};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use credentials::{FUZZ_SECRET, read_token_answer};
pub use managed_identity::ManagedIdentityCredential;
pub(crate) use token::AuthResult;
pub use token::{AccessToken, StaticToken, TokenProvider};
pub use workload_identity::WorkloadIdentityCredential;

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
