//! Microsoft's national clouds: each one's Graph root and token authority.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Microsoft's Graph deployments (national clouds), each with its own Graph root and token host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cloud {
    /// `https://graph.microsoft.com` (the default).
    #[default]
    Global,
    /// US Government L4: `https://graph.microsoft.us`.
    UsGov,
    /// US Government L5 (DoD): `https://dod-graph.microsoft.us`.
    UsGovDoD,
    /// China, operated by 21Vianet: `https://microsoftgraph.chinacloudapi.cn`.
    China,
}

impl Cloud {
    /// The Graph service root, without a version segment.
    pub const fn graph_root(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDoD => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The Microsoft identity platform host that issues tokens for this cloud.
    pub const fn authority_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDoD => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The name the C API's `cloud` key uses: `global`, `usGov`, `usGovDoD`, `china`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usGov",
            Cloud::UsGovDoD => "usGovDoD",
            Cloud::China => "china",
        }
    }
}

impl FromStr for Cloud {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Cloud::Global, Cloud::UsGov, Cloud::UsGovDoD, Cloud::China]
            .into_iter()
            .find(|cloud| cloud.as_str() == s)
            .ok_or_else(|| {
                Error::config(
                    "cloud",
                    format!("must be one of global, usGov, usGovDoD, china; got \"{s}\""),
                )
            })
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
