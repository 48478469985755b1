//! Workload identity federation (Kubernetes, GitHub Actions, any OIDC issuer an app trusts): the
//! platform writes a short-lived token of its own to a file, and the client exchanges it for a
//! Graph token with the client-credentials request, the token as the client assertion. The file
//! is read again for every token request, since the platform rotates it (hourly on AKS).

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::Error;
use crate::auth::AuthResult;
#[cfg(any(test, feature = "test-seams"))]
use crate::auth::environment::Environment;
use crate::auth::environment::{
    AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID, EnvSource,
};
use crate::auth::secret_file::{Unusable, read_secret};
use crate::auth_error::AuthError;

/// App-only authentication with a federated token from the platform (workload identity
/// federation): no secret to store or rotate.
///
/// ```
/// use intune_user_status::{Client, WorkloadIdentityCredential};
/// // On AKS with workload identity, the webhook sets AZURE_TENANT_ID, AZURE_CLIENT_ID,
/// // AZURE_FEDERATED_TOKEN_FILE (and AZURE_AUTHORITY_HOST); they are read by `build`.
/// let from_env = WorkloadIdentityCredential::from_env();
/// // Or named outright, e.g. for a GitHub Actions token saved to a file:
/// let named = WorkloadIdentityCredential::new(
///     "contoso.onmicrosoft.com",
///     "11111111-2222-3333-4444-555555555555",
///     "/var/run/secrets/azure/tokens/azure-identity-token",
/// );
/// let client = Client::builder().credential(named).build()?;
/// # Ok::<(), intune_user_status::Error>(())
/// ```
#[derive(Clone)]
pub struct WorkloadIdentityCredential {
    tenant_id: Option<String>,
    client_id: Option<String>,
    token_file: Option<PathBuf>,
    pub(super) authority_host: Option<String>,
    pub(super) scope: Option<String>,
    /// Where the values not given come from; `None`: nowhere (the cloud's authority).
    environment: Option<EnvSource>,
}

impl fmt::Debug for WorkloadIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The file's path is not a secret; its contents are never held here.
        f.debug_struct("WorkloadIdentityCredential")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("token_file", &self.token_file)
            .field("authority_host", &self.authority_host)
            .field("scope", &self.scope)
            .field("environment", &self.environment)
            .finish()
    }
}

/// A workload identity's values, each given or read from the environment.
pub(super) struct Resolved {
    pub(super) tenant_id: String,
    pub(super) client_id: String,
    pub(super) token_file: PathBuf,
    pub(super) authority_host: Option<String>,
    pub(super) scope: Option<String>,
    /// The variable each field's value came from, for the error that names it.
    pub(super) origins: Vec<(&'static str, &'static str)>,
}

impl WorkloadIdentityCredential {
    /// Every value from the process environment, read when the client is built:
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` (required), and
    /// `AZURE_AUTHORITY_HOST` (else the client's cloud's). A value set with the methods below
    /// wins over its variable.
    pub fn from_env() -> WorkloadIdentityCredential {
        WorkloadIdentityCredential {
            tenant_id: None,
            client_id: None,
            token_file: None,
            authority_host: None,
            scope: None,
            environment: Some(EnvSource::Process),
        }
    }

    /// The app `client_id` in tenant `tenant_id`, exchanging the token the platform writes to
    /// `token_file`. Reads no environment variable.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> WorkloadIdentityCredential {
        WorkloadIdentityCredential {
            tenant_id: Some(tenant_id.into()),
            client_id: Some(client_id.into()),
            token_file: Some(token_file.into()),
            authority_host: None,
            scope: None,
            environment: None,
        }
    }

    /// The tenant (a GUID or a domain), instead of `AZURE_TENANT_ID`.
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The app registration's (or user-assigned identity's) client id, instead of
    /// `AZURE_CLIENT_ID`.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The file holding the platform's token, instead of `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// Requests tokens from this identity host instead of `AZURE_AUTHORITY_HOST` or the
    /// client's cloud's. Plain `http` is accepted only for loopback hosts.
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.authority_host = Some(url.into());
        self
    }

    /// Requests this scope instead of `{graph root}/.default` for the client's cloud.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Tests only (feature `test-seams`, not an API): reads the values not given from these
    /// `(name, value)` pairs instead of the process environment, so tests running on parallel
    /// threads need not change the process environment.
    #[cfg(any(test, feature = "test-seams"))]
    #[doc(hidden)]
    pub fn environment<K: Into<String>, V: Into<std::ffi::OsString>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment = Some(EnvSource::Given(Environment::from_pairs(vars)));
        self
    }

    /// The values to use: each given one, else its variable's; a required one missing is a
    /// [`Error::Config`] naming it and its variable.
    pub(super) fn resolve(self) -> Result<Resolved, Error> {
        let env = self.environment.as_ref().map(EnvSource::read);
        let mut origins = Vec::new();
        let mut pick = |given: Option<String>, field: &'static str, var: &'static str| {
            given.or_else(|| {
                let value = env.as_ref()?.get(var)?.to_owned();
                origins.push((field, var));
                Some(value)
            })
        };
        let tenant_id = pick(self.tenant_id, "tenantId", AZURE_TENANT_ID);
        let client_id = pick(self.client_id, "clientId", AZURE_CLIENT_ID);
        let authority_host = pick(self.authority_host, "authorityHost", AZURE_AUTHORITY_HOST);
        // A path as the system names it: it need not be Unicode.
        let token_file = self.token_file.or_else(|| {
            let path = env.as_ref()?.get_os(AZURE_FEDERATED_TOKEN_FILE)?;
            origins.push(("tokenFile", AZURE_FEDERATED_TOKEN_FILE));
            Some(PathBuf::from(path))
        });
        let required = |field: &str, var: &str| {
            Error::config(
                field,
                format!("is required for workload identity: give it, or set {var}"),
            )
        };
        let tenant_id = tenant_id.ok_or_else(|| required("tenantId", AZURE_TENANT_ID))?;
        let client_id = client_id.ok_or_else(|| required("clientId", AZURE_CLIENT_ID))?;
        let token_file =
            token_file.ok_or_else(|| required("tokenFile", AZURE_FEDERATED_TOKEN_FILE))?;
        if token_file
            .to_str()
            .is_some_and(|path| path.trim().is_empty())
        {
            return Err(Error::config("tokenFile", "must not be empty"));
        }
        Ok(Resolved {
            tenant_id,
            client_id,
            token_file,
            authority_host,
            scope: self.scope,
            origins,
        })
    }
}

/// The largest federated token file read; a platform's token is a few KiB.
const MAX_FEDERATED_TOKEN_BYTES: u64 = 64 * 1024;

/// The platform's token from `path`, trimmed; an unreadable, empty or oversized file is an error
/// naming the path (never the contents).
pub(super) fn read_federated_token(path: &Path) -> AuthResult<Zeroizing<String>> {
    File::open(path)
        .map_err(Unusable::Read)
        .and_then(|file| read_secret(file, MAX_FEDERATED_TOKEN_BYTES))
        .map_err(|why| {
            Box::new(AuthError::new(format!(
                "workload identity: the federated token file {} {why}",
                path.display()
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<Resolved, Error>) -> String {
        match result {
            Err(Error::Config { field, reason }) => format!("{field}: {reason}"),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("resolved"),
        }
    }

    #[test]
    fn given_values_win_and_the_environment_fills_the_gaps() {
        let resolved = WorkloadIdentityCredential::from_env()
            .client_id("given-client")
            .environment([
                (AZURE_TENANT_ID, "env-tenant"),
                (AZURE_CLIENT_ID, "env-client"),
                (AZURE_FEDERATED_TOKEN_FILE, "/run/token"),
                (AZURE_AUTHORITY_HOST, "https://login.microsoftonline.us/"),
            ])
            .resolve()
            .unwrap();
        assert_eq!(resolved.tenant_id, "env-tenant");
        assert_eq!(resolved.client_id, "given-client");
        assert_eq!(resolved.token_file, PathBuf::from("/run/token"));
        assert_eq!(
            resolved.authority_host.as_deref(),
            Some("https://login.microsoftonline.us/")
        );
        assert!(resolved.origins.contains(&("tenantId", AZURE_TENANT_ID)));
        assert!(
            !resolved
                .origins
                .iter()
                .any(|(field, _)| *field == "clientId")
        );
    }

    #[test]
    fn a_missing_value_names_the_field_and_its_variable() {
        let none: [(&str, &str); 0] = [];
        let missing = field_of(
            WorkloadIdentityCredential::from_env()
                .environment(none)
                .resolve(),
        );
        assert!(
            missing.starts_with("tenantId: ") && missing.contains(AZURE_TENANT_ID),
            "{missing}"
        );
        let no_file = field_of(
            WorkloadIdentityCredential::from_env()
                .environment([(AZURE_TENANT_ID, "t"), (AZURE_CLIENT_ID, "c")])
                .resolve(),
        );
        assert!(
            no_file.starts_with("tokenFile: ") && no_file.contains(AZURE_FEDERATED_TOKEN_FILE),
            "{no_file}"
        );
        // `new` reads nothing from the environment.
        let named = WorkloadIdentityCredential::new("t", "c", "/f")
            .resolve()
            .unwrap();
        assert!(named.authority_host.is_none() && named.origins.is_empty());
        assert!(
            field_of(WorkloadIdentityCredential::new("t", "c", " ").resolve())
                .starts_with("tokenFile")
        );
    }
}
