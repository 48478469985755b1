//! The environment variables managed identity and workload identity read: captured once, when
//! the client is built (as Microsoft's libraries read them), from the process or from values the
//! caller gives instead. Values never reach `Debug` output: `IDENTITY_HEADER` is a secret.

use std::collections::BTreeMap;
use std::fmt;

/// App Service / Functions and Azure Arc: the local token endpoint.
pub(crate) const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// App Service / Functions: the secret the endpoint requires in `X-IDENTITY-HEADER`.
pub(crate) const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// Service Fabric (not supported): its endpoint's certificate thumbprint.
pub(crate) const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
/// Azure Arc: set beside `IDENTITY_ENDPOINT` by the Arc agent.
pub(crate) const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
/// AAD Pod Identity and others: replaces IMDS's host (`http://169.254.169.254`).
pub(crate) const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// Workload identity: the tenant of the app registration.
pub(crate) const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// Workload identity: the app registration (or user-assigned identity) to exchange for.
pub(crate) const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// Workload identity: the file the platform writes the federated token to.
pub(crate) const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// Workload identity: the identity host to ask instead of the cloud's.
pub(crate) const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Windows: where Azure Arc's agent keeps its key files (`%ProgramData%`).
pub(crate) const PROGRAM_DATA: &str = "ProgramData";
/// Windows: where Azure Arc's agent is installed (`%ProgramFiles%`).
pub(crate) const PROGRAM_FILES: &str = "ProgramFiles";

/// Every variable read, so a snapshot of the process holds these and nothing else.
const NAMES: [&str; 11] = [
    IDENTITY_ENDPOINT,
    IDENTITY_HEADER,
    IDENTITY_SERVER_THUMBPRINT,
    IMDS_ENDPOINT,
    AZURE_POD_IDENTITY_AUTHORITY_HOST,
    AZURE_TENANT_ID,
    AZURE_CLIENT_ID,
    AZURE_FEDERATED_TOKEN_FILE,
    AZURE_AUTHORITY_HOST,
    PROGRAM_DATA,
    PROGRAM_FILES,
];

/// Where a credential's environment comes from.
#[derive(Clone, Default)]
pub(crate) enum EnvSource {
    /// The process environment, read when the client is built.
    #[default]
    Process,
    /// Values the caller gave (tests, or a host that configures identity itself).
    Given(Environment),
}

impl EnvSource {
    /// The values to use, read now.
    pub(crate) fn read(&self) -> Environment {
        match self {
            EnvSource::Process => Environment::process(),
            EnvSource::Given(env) => env.clone(),
        }
    }
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvSource::Process => f.write_str("Process"),
            EnvSource::Given(env) => f.debug_tuple("Given").field(env).finish(),
        }
    }
}

/// A snapshot of the variables above.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The process's values of the variables above, now.
    pub(crate) fn process() -> Environment {
        Environment {
            vars: NAMES
                .iter()
                .filter_map(|name| {
                    // A value that is not Unicode is unusable as a URL, id or path here.
                    let value = std::env::var_os(name)?.into_string().ok()?;
                    Some(((*name).to_owned(), value))
                })
                .collect(),
        }
    }

    /// These values and no others.
    pub(crate) fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// The value of `name`; an empty value counts as unset (as Microsoft's libraries treat it).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: IDENTITY_HEADER's value is a secret.
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_unset_and_debug_shows_names_only() {
        let env = Environment::from_pairs([
            (IDENTITY_HEADER, "hdr-secret-value"),
            (IDENTITY_ENDPOINT, ""),
        ]);
        assert_eq!(env.get(IDENTITY_HEADER), Some("hdr-secret-value"));
        assert_eq!(env.get(IDENTITY_ENDPOINT), None);
        assert_eq!(env.get(IMDS_ENDPOINT), None);
        let shown = format!("{:?}", EnvSource::Given(env));
        assert!(
            !shown.contains("hdr-secret-value") && shown.contains(IDENTITY_HEADER),
            "{shown}"
        );
    }
}
