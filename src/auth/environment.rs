//! The environment variables managed identity and workload identity read: captured once, when
//! the client is built (as Microsoft's libraries read them), from the process (or, in tests, from
//! values a test gives instead). Values never reach `Debug` output: `IDENTITY_HEADER` is a secret.
//! Values are kept as the operating system gave them, so a path need not be Unicode.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
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

/// Tests only (feature `test-seams`): the folder that stands in for Azure Arc's tokens folder.
#[cfg(any(test, feature = "test-seams"))]
pub(crate) const IUS_TEST_ARC_TOKENS_FOLDER: &str = "IUS_TEST_ARC_TOKENS_FOLDER";
/// Tests only (feature `test-seams`): IMDS's wait after a 410, in milliseconds, instead of 10 s.
#[cfg(any(test, feature = "test-seams"))]
pub(crate) const IUS_TEST_IMDS_GONE_WAIT_MS: &str = "IUS_TEST_IMDS_GONE_WAIT_MS";

/// The variables only a build with the test seams reads; none in a build that ships.
#[cfg(any(test, feature = "test-seams"))]
const TEST_NAMES: [&str; 2] = [IUS_TEST_ARC_TOKENS_FOLDER, IUS_TEST_IMDS_GONE_WAIT_MS];
#[cfg(not(any(test, feature = "test-seams")))]
const TEST_NAMES: [&str; 0] = [];

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
    /// Values a test gave (the credentials' hidden `environment`, feature `test-seams`), so
    /// tests need not change the environment of a process whose other threads read it.
    #[cfg(any(test, feature = "test-seams"))]
    Given(Environment),
}

impl EnvSource {
    /// The values to use, read now.
    pub(crate) fn read(&self) -> Environment {
        match self {
            EnvSource::Process => Environment::process(),
            #[cfg(any(test, feature = "test-seams"))]
            EnvSource::Given(env) => env.clone(),
        }
    }
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvSource::Process => f.write_str("Process"),
            #[cfg(any(test, feature = "test-seams"))]
            EnvSource::Given(env) => f.debug_tuple("Given").field(env).finish(),
        }
    }
}

/// A snapshot of the variables above.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Environment {
    vars: BTreeMap<String, OsString>,
}

impl Environment {
    /// The process's values of the variables above, now.
    pub(crate) fn process() -> Environment {
        Environment {
            vars: NAMES
                .iter()
                .chain(TEST_NAMES.iter())
                .filter_map(|name| Some(((*name).to_owned(), std::env::var_os(name)?)))
                .collect(),
        }
    }

    /// These values and no others.
    #[cfg(any(test, feature = "test-seams"))]
    pub(crate) fn from_pairs<K: Into<String>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// The value of `name` as text (a URL, an id); an empty value counts as unset (as
    /// Microsoft's libraries treat it), and so does one that is not Unicode, which no URL or id is.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.get_os(name).and_then(OsStr::to_str)
    }

    /// The value of `name` as the system gave it (a path); empty counts as unset.
    pub(crate) fn get_os(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(name)
            .map(OsString::as_os_str)
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
