//! Which user status to update: the documented paths, and the URL each one builds.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use serde_json::{Map, Value};

use crate::limits::MAX_ID_BYTES;
use crate::{Error, json};

/// The keys of a target as JSON, for the unknown-key message.
const TARGET_KEYS: &str = "deviceConfigurationId, windowsAutopilotDeploymentProfileId, route, \
                           certificateId, userStatusId, apiVersion";

/// Graph API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ApiVersion {
    /// `/beta`: every documented path. The default, since most paths exist only here.
    #[default]
    Beta,
    /// `/v1.0`: the direct path only.
    V1_0,
}

impl ApiVersion {
    /// The URL segment: `beta` or `v1.0`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiVersion::Beta => "beta",
            ApiVersion::V1_0 => "v1.0",
        }
    }
}

impl FromStr for ApiVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "beta" => Ok(ApiVersion::Beta),
            "v1.0" => Ok(ApiVersion::V1_0),
            other => Err(Error::invalid(
                "apiVersion",
                format!("must be \"beta\" or \"v1.0\", got \"{other}\""),
            )),
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares [`Route`] and its table from one row per route: the variant, the template as the
/// documentation page writes it (with `{...Id}` where the route takes a certificate id), and the
/// API versions that serve it.
macro_rules! routes {
    ($(
        $(#[$doc:meta])*
        $variant:ident $({ $(#[$id_doc:meta])* $id:ident })? => $template:literal, [$($version:ident),+];
    )+) => {
        /// The navigation between a device configuration and its `userStatuses`: one variant for
        /// each path the documentation and the beta metadata list, and nothing else.
        ///
        /// Routes through a trusted root certificate collection carry that certificate's id.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Route {
            $( $(#[$doc])* $variant $({ $(#[$id_doc])* $id: String })?, )+
        }

        /// The variants without their ids, numbered in declaration order: a route's row in [`ROUTES`].
        #[derive(Clone, Copy)]
        enum RowIndex {
            $( $variant, )+
        }

        /// Every route's row, in declaration order.
        static ROUTES: &[RouteRow] = &[
            $( RouteRow {
                template: $template,
                versions: &[$(ApiVersion::$version),+],
                make: make_route!($variant $($id)?),
            }, )+
        ];

        impl Route {
            fn row(&self) -> &'static RouteRow {
                let index = match self {
                    $( Route::$variant { .. } => RowIndex::$variant, )+
                };
                &ROUTES[index as usize]
            }
        }
    };
}

/// A row's constructor: a certificate route takes the id [`Route::parse`] checked it has.
macro_rules! make_route {
    ($variant:ident) => {
        |_| Route::$variant
    };
    ($variant:ident $id:ident) => {
        |id: Option<String>| Route::$variant {
            $id: id.unwrap_or_default(),
        }
    };
}

routes! {
    /// `.../deviceConfigurations/{id}/userStatuses` (beta and v1.0).
    Direct => "", [Beta, V1_0];
    /// `rootCertificate`
    RootCertificate => "rootCertificate", [Beta];
    /// `identityCertificate`
    IdentityCertificate => "identityCertificate", [Beta];
    /// `identityCertificate/rootCertificate`
    IdentityCertificateRootCertificate => "identityCertificate/rootCertificate", [Beta];
    /// `microsoft.graph.iosScepCertificateProfile/rootCertificate`
    IosScepCertificateProfileRootCertificate =>
        "microsoft.graph.iosScepCertificateProfile/rootCertificate", [Beta];
    /// `microsoft.graph.windowsPhone81VpnConfiguration/identityCertificate`
    WindowsPhone81VpnIdentityCertificate =>
        "microsoft.graph.windowsPhone81VpnConfiguration/identityCertificate", [Beta];
    /// `microsoft.graph.macOSWiredNetworkConfiguration/rootCertificateForServerValidation`
    MacOsWiredNetworkRootCertificateForServerValidation =>
        "microsoft.graph.macOSWiredNetworkConfiguration/rootCertificateForServerValidation", [Beta];
    /// `microsoft.graph.macOSWiredNetworkConfiguration/identityCertificateForClientAuthentication`
    MacOsWiredNetworkIdentityCertificateForClientAuthentication =>
        "microsoft.graph.macOSWiredNetworkConfiguration/identityCertificateForClientAuthentication", [Beta];
    /// `microsoft.graph.windowsWifiEnterpriseEAPConfiguration/identityCertificateForClientAuthentication`
    WindowsWifiEnterpriseEapIdentityCertificateForClientAuthentication =>
        "microsoft.graph.windowsWifiEnterpriseEAPConfiguration/identityCertificateForClientAuthentication", [Beta];
    /// `microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/{windows81TrustedRootCertificateId}`
    WindowsWifiEnterpriseEapRootCertificatesForServerValidation {
        /// The windows81TrustedRootCertificate id.
        certificate_id
    } => "microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/{windows81TrustedRootCertificateId}", [Beta];
    /// `microsoft.graph.macOSScepCertificateProfile/rootCertificate` (an older revision of the page).
    MacOsScepCertificateProfileRootCertificate =>
        "microsoft.graph.macOSScepCertificateProfile/rootCertificate", [Beta];
    /// `microsoft.graph.windowsPhone81SCEPCertificateProfile/rootCertificate` (an older revision of the page).
    WindowsPhone81ScepCertificateProfileRootCertificate =>
        "microsoft.graph.windowsPhone81SCEPCertificateProfile/rootCertificate", [Beta];
    /// `microsoft.graph.iosEnterpriseWiFiConfiguration/rootCertificatesForServerValidation/{iosTrustedRootCertificateId}` (beta metadata).
    IosEnterpriseWiFiRootCertificatesForServerValidation {
        /// The iosTrustedRootCertificate id.
        certificate_id
    } => "microsoft.graph.iosEnterpriseWiFiConfiguration/rootCertificatesForServerValidation/{iosTrustedRootCertificateId}", [Beta];
    /// `microsoft.graph.macOSEnterpriseWiFiConfiguration/rootCertificatesForServerValidation/{macOSTrustedRootCertificateId}` (beta metadata).
    MacOsEnterpriseWiFiRootCertificatesForServerValidation {
        /// The macOSTrustedRootCertificate id.
        certificate_id
    } => "microsoft.graph.macOSEnterpriseWiFiConfiguration/rootCertificatesForServerValidation/{macOSTrustedRootCertificateId}", [Beta];
}

/// One route: what the page writes, what the URL holds, who serves it, and how to make it.
struct RouteRow {
    template: &'static str,
    versions: &'static [ApiVersion],
    make: fn(Option<String>) -> Route,
}

impl RouteRow {
    /// The fixed segments: the template without its `/{...Id}` placeholder.
    fn segments(&self) -> &'static str {
        self.template
            .split_once("/{")
            .map_or(self.template, |(segments, _)| segments)
    }

    /// The certificate id's name (`windows81TrustedRootCertificateId`), when the route takes one.
    fn certificate_placeholder(&self) -> Option<&'static str> {
        let (_, placeholder) = self.template.split_once("/{")?;
        placeholder.strip_suffix('}')
    }
}

/// The Autopilot route's fixed segments, under `windowsAutopilotDeploymentProfiles/{id}`.
const AUTOPILOT_ROUTE: &str =
    "microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile/domainJoinConfiguration";

impl Route {
    /// Every route's template as the documentation page writes it (`""` for the direct path), with
    /// `{...Id}` where the route takes a certificate id.
    pub fn templates() -> impl Iterator<Item = &'static str> {
        ROUTES.iter().map(|row| row.template)
    }

    /// The route as the documentation page writes it, e.g. `identityCertificate/rootCertificate`
    /// (`""` for the direct path).
    pub fn template(&self) -> &'static str {
        self.row().template
    }

    /// The certificate id, for routes through a trusted root certificate collection.
    pub fn certificate_id(&self) -> Option<&str> {
        match self {
            Route::WindowsWifiEnterpriseEapRootCertificatesForServerValidation {
                certificate_id,
            }
            | Route::IosEnterpriseWiFiRootCertificatesForServerValidation { certificate_id }
            | Route::MacOsEnterpriseWiFiRootCertificatesForServerValidation { certificate_id } => {
                Some(certificate_id)
            }
            _ => None,
        }
    }

    /// Parses a route as the page writes it. The trailing `/{...}` placeholder of a certificate
    /// route may be written or left out; its id comes from `certificate_id`, which must be given
    /// for those routes and only for them.
    ///
    /// ```
    /// use intune_user_status::Route;
    /// let route = Route::parse(
    ///     "microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/{windows81TrustedRootCertificateId}",
    ///     Some("cert-1"),
    /// ).unwrap();
    /// assert_eq!(route.certificate_id(), Some("cert-1"));
    /// assert_eq!(Route::parse("identityCertificate/rootCertificate", None).unwrap(),
    ///            Route::IdentityCertificateRootCertificate);
    /// ```
    pub fn parse(route: &str, certificate_id: Option<&str>) -> Result<Route, Error> {
        let trimmed = route.trim_matches('/');
        let row = ROUTES
            .iter()
            .find(|row| {
                trimmed == row.segments()
                    || (row.certificate_placeholder().is_some()
                        && trimmed
                            .strip_prefix(row.segments())
                            .and_then(|rest| rest.strip_prefix("/{"))
                            .is_some_and(|rest| rest.ends_with('}') && !rest.contains('/')))
            })
            .ok_or_else(|| {
                Error::invalid(
                    "route",
                    format!(
                        "\"{route}\" is not a documented route; expected \"\" (direct) or one of: {}",
                        ROUTES[1..]
                            .iter()
                            .map(|row| row.template)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        match (row.certificate_placeholder(), certificate_id) {
            (Some(placeholder), None) => Err(Error::invalid(
                "certificateId",
                format!("route \"{}\" needs the {placeholder}", row.segments()),
            )),
            (None, Some(_)) => Err(Error::invalid(
                "certificateId",
                format!(
                    "route \"{}\" takes no certificate id",
                    if row.template.is_empty() {
                        "(direct)"
                    } else {
                        row.segments()
                    }
                ),
            )),
            (_, id) => Ok((row.make)(id.map(str::to_owned))),
        }
    }
}

/// The user status to update: the parent (a device configuration and the route under it, or an
/// Autopilot deployment profile) and the user status id.
///
/// Ids are checked (not empty) and percent-encoded as exactly one path segment when the request is
/// built, so `/`, `?`, `#`, `%`, spaces and non-ASCII characters are all safe.
///
/// ```
/// use intune_user_status::{Route, Target};
/// let direct = Target::new("config-1", "status-1");
/// let nested = Target::with_route("config-1", Route::IdentityCertificate, "status-1");
/// let autopilot = Target::autopilot_domain_join("profile-1", "status-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    parent: Parent,
    user_status_id: String,
}

/// What a collection of user statuses hangs under (see [`Collection`](crate::Collection)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Parent {
    DeviceConfiguration { id: String, route: Route },
    AutopilotDomainJoin { profile_id: String },
}

/// What a parent id names: a device configuration or an Autopilot deployment profile.
pub(crate) enum ParentId {
    DeviceConfiguration(String),
    AutopilotProfile(String),
}

fn is_autopilot(route: &str) -> bool {
    route.trim_matches('/') == AUTOPILOT_ROUTE
}

/// RFC 3986 `unreserved` stays as is; everything else is escaped, so an id is always one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Target {
    /// The direct path: `/deviceManagement/deviceConfigurations/{id}/userStatuses/{id}`.
    pub fn new(
        device_configuration_id: impl Into<String>,
        user_status_id: impl Into<String>,
    ) -> Target {
        Target::with_route(device_configuration_id, Route::Direct, user_status_id)
    }

    /// A path under a device configuration, through `route`.
    pub fn with_route(
        device_configuration_id: impl Into<String>,
        route: Route,
        user_status_id: impl Into<String>,
    ) -> Target {
        Target {
            parent: Parent::DeviceConfiguration {
                id: device_configuration_id.into(),
                route,
            },
            user_status_id: user_status_id.into(),
        }
    }

    /// `/deviceManagement/windowsAutopilotDeploymentProfiles/{id}/microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile/domainJoinConfiguration/userStatuses/{id}` (beta).
    pub fn autopilot_domain_join(
        profile_id: impl Into<String>,
        user_status_id: impl Into<String>,
    ) -> Target {
        Target {
            parent: Parent::AutopilotDomainJoin {
                profile_id: profile_id.into(),
            },
            user_status_id: user_status_id.into(),
        }
    }

    /// Names a target from the route as the documentation page writes it, as the C API and
    /// command lines do: `""` for the direct path, any [`Route`] template, or
    /// [`Target::AUTOPILOT_ROUTE`] (then `parent_id` is the deployment profile's id).
    ///
    /// ```
    /// use intune_user_status::Target;
    /// let target = Target::from_route("cfg", "identityCertificate/rootCertificate", None, "u").unwrap();
    /// assert_eq!(target.route().unwrap().template(), "identityCertificate/rootCertificate");
    /// ```
    pub fn from_route(
        parent_id: impl Into<String>,
        route: &str,
        certificate_id: Option<&str>,
        user_status_id: impl Into<String>,
    ) -> Result<Target, Error> {
        let parent_id = parent_id.into();
        let parent = if is_autopilot(route) {
            ParentId::AutopilotProfile(parent_id)
        } else {
            ParentId::DeviceConfiguration(parent_id)
        };
        Target::under(parent, route, certificate_id, user_status_id)
    }

    /// The route rules, for every route: a device configuration takes any [`Route`] but not the
    /// Autopilot one; a deployment profile takes only the Autopilot route (or none), without a
    /// certificate id. The C API's `target_json` names the parent by its key, so it comes here.
    pub(crate) fn under(
        parent: ParentId,
        route: &str,
        certificate_id: Option<&str>,
        user_status_id: impl Into<String>,
    ) -> Result<Target, Error> {
        match parent {
            ParentId::DeviceConfiguration(id) => {
                if is_autopilot(route) {
                    return Err(Error::invalid(
                        "route",
                        "the Autopilot route is under windowsAutopilotDeploymentProfileId, not deviceConfigurationId",
                    ));
                }
                let route = Route::parse(route, certificate_id)?;
                Ok(Target::with_route(id, route, user_status_id))
            }
            ParentId::AutopilotProfile(id) => {
                if !route.is_empty() && !is_autopilot(route) {
                    return Err(Error::invalid(
                        "route",
                        format!(
                            "with windowsAutopilotDeploymentProfileId, route must be absent or \"{AUTOPILOT_ROUTE}\""
                        ),
                    ));
                }
                if certificate_id.is_some() {
                    return Err(Error::invalid(
                        "certificateId",
                        format!("route \"{AUTOPILOT_ROUTE}\" takes no certificate id"),
                    ));
                }
                Ok(Target::autopilot_domain_join(id, user_status_id))
            }
        }
    }

    /// The route template for the Autopilot path, as the C API's `target_json` names it.
    pub const AUTOPILOT_ROUTE: &'static str = AUTOPILOT_ROUTE;

    /// The user status id.
    pub fn user_status_id(&self) -> &str {
        &self.user_status_id
    }

    /// The route under the device configuration (`None` for the Autopilot path).
    pub fn route(&self) -> Option<&Route> {
        self.parent.route()
    }

    /// This target as `target_json` names it (the C API's shape, which [`Target::from_value`]
    /// reads back), with `apiVersion` set to `version`.
    ///
    /// ```
    /// use intune_user_status::{ApiVersion, Target};
    /// let target = Target::new("cfg", "u1");
    /// let json = target.to_value(ApiVersion::Beta);
    /// assert_eq!((&json["deviceConfigurationId"], &json["userStatusId"]), (&"cfg".into(), &"u1".into()));
    /// assert_eq!(json["apiVersion"], "beta");
    /// assert_eq!(Target::from_value(json).unwrap(), (target, Some(ApiVersion::Beta)));
    /// ```
    pub fn to_value(&self, version: ApiVersion) -> Value {
        let mut map = Map::new();
        match &self.parent {
            Parent::DeviceConfiguration { id, route } => {
                map.insert("deviceConfigurationId".into(), id.as_str().into());
                if *route != Route::Direct {
                    map.insert("route".into(), route.template().into());
                }
                if let Some(certificate_id) = route.certificate_id() {
                    map.insert("certificateId".into(), certificate_id.into());
                }
            }
            Parent::AutopilotDomainJoin { profile_id } => {
                map.insert(
                    "windowsAutopilotDeploymentProfileId".into(),
                    profile_id.as_str().into(),
                );
            }
        }
        map.insert("userStatusId".into(), self.user_status_id.as_str().into());
        map.insert("apiVersion".into(), version.as_str().into());
        Value::Object(map)
    }

    /// Reads a target named as the C API's `target_json` names it:
    /// `{"deviceConfigurationId","route","certificateId","userStatusId","apiVersion"}` (route
    /// as the documentation page writes it, absent or empty for the direct path) or
    /// `{"windowsAutopilotDeploymentProfileId","userStatusId","apiVersion"}`. Returns the target
    /// and the `apiVersion`, if given. Unknown keys are refused, naming the key.
    pub fn from_value(value: Value) -> Result<(Target, Option<ApiVersion>), Error> {
        Target::from_named_value(value, "target_json")
    }

    /// [`Target::from_value`], with `name` the field a value that is not an object is reported
    /// as (a bulk item's `target`).
    pub(crate) fn from_named_value(
        value: Value,
        name: &str,
    ) -> Result<(Target, Option<ApiVersion>), Error> {
        let parts = TargetJson::parse(value, name, true)?;
        let status = parts
            .user_status_id
            .ok_or_else(|| Error::invalid("userStatusId", "is required"))?;
        let target = Target::under(
            parts.parent,
            &parts.route,
            parts.certificate_id.as_deref(),
            status,
        )?;
        Ok((target, parts.api_version))
    }

    /// Checks the ids and the version, then appends
    /// `/{version}/deviceManagement/.../userStatuses/{id}` to `url` (the service root).
    pub(crate) fn write_url(&self, url: &mut String, version: ApiVersion) -> Result<(), Error> {
        self.parent.write_collection_url(url, version)?;
        url.push('/');
        push_id(url, "userStatusId", &self.user_status_id)
    }

    /// A target under `parent`.
    pub(crate) fn from_parent(parent: Parent, user_status_id: String) -> Target {
        Target {
            parent,
            user_status_id,
        }
    }

    /// Where the target's collection hangs.
    pub(crate) fn parent(&self) -> &Parent {
        &self.parent
    }
}

impl Parent {
    /// The route under the device configuration (`None` for the Autopilot path).
    pub(crate) fn route(&self) -> Option<&Route> {
        match self {
            Parent::DeviceConfiguration { route, .. } => Some(route),
            Parent::AutopilotDomainJoin { .. } => None,
        }
    }

    /// Checks the ids and the version, then appends `/{version}/deviceManagement/.../userStatuses`
    /// to `url` (the service root).
    pub(crate) fn write_collection_url(
        &self,
        url: &mut String,
        version: ApiVersion,
    ) -> Result<(), Error> {
        url.push('/');
        url.push_str(version.as_str());
        match self {
            Parent::DeviceConfiguration { id, route } => {
                let row = route.row();
                if !row.versions.contains(&version) {
                    return Err(Error::invalid(
                        "route",
                        format!(
                            "v1.0 serves only the direct path; \"{}\" exists in beta only",
                            row.template
                        ),
                    ));
                }
                url.push_str("/deviceManagement/deviceConfigurations/");
                push_id(url, "deviceConfigurationId", id)?;
                let segments = row.segments();
                if !segments.is_empty() {
                    url.push('/');
                    url.push_str(segments);
                }
                if let (Some(placeholder), Some(certificate_id)) =
                    (row.certificate_placeholder(), route.certificate_id())
                {
                    url.push('/');
                    push_id(url, placeholder, certificate_id)?;
                }
            }
            Parent::AutopilotDomainJoin { profile_id } => {
                if version == ApiVersion::V1_0 {
                    return Err(Error::invalid(
                        "route",
                        format!(
                            "v1.0 serves only the direct path; \"{AUTOPILOT_ROUTE}\" exists in beta only"
                        ),
                    ));
                }
                url.push_str("/deviceManagement/windowsAutopilotDeploymentProfiles/");
                push_id(url, "windowsAutopilotDeploymentProfileId", profile_id)?;
                url.push('/');
                url.push_str(AUTOPILOT_ROUTE);
            }
        }
        url.push_str("/userStatuses");
        Ok(())
    }
}

fn push_id(url: &mut String, field: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "must be at most {MAX_ID_BYTES} bytes, got {} (Graph's ids are GUIDs)",
                id.len()
            ),
        ));
    }
    // Servers and proxies resolve dot segments (RFC 3986), even percent-encoded: `..` would
    // address the parent resource instead.
    if id == "." || id == ".." {
        return Err(Error::invalid(
            field,
            format!("\"{id}\" is a dot segment, which cannot name a resource"),
        ));
    }
    url.extend(utf8_percent_encode(id, SEGMENT));
    Ok(())
}

/// The keys of a `target_json` (or, without `userStatusId`, a `collection_json`): one reader for
/// the C API's targets, bulk items, outbox rows and collections.
pub(crate) struct TargetJson {
    pub(crate) parent: ParentId,
    /// As the documentation page writes it; empty for the direct path.
    pub(crate) route: String,
    pub(crate) certificate_id: Option<String>,
    pub(crate) user_status_id: Option<String>,
    pub(crate) api_version: Option<ApiVersion>,
}

impl TargetJson {
    /// Reads the keys of `value`; `name` is what a value that is not an object is reported as, and
    /// `with_status` whether `userStatusId` may be given (a collection names none).
    pub(crate) fn parse(value: Value, name: &str, with_status: bool) -> Result<TargetJson, Error> {
        let Value::Object(map) = value else {
            return Err(Error::invalid(
                name,
                format!("must be a JSON object, got {}", json::kind(&value)),
            ));
        };
        let mut configuration = None;
        let mut profile = None;
        let mut route = None;
        let mut certificate_id = None;
        let mut user_status_id = None;
        let mut api_version = None;
        let string = |key: &str, value| json::string(value).map_err(|why| Error::invalid(key, why));
        for (key, value) in map {
            match key.as_str() {
                "deviceConfigurationId" => configuration = Some(string(&key, value)?),
                "windowsAutopilotDeploymentProfileId" => profile = Some(string(&key, value)?),
                "route" => route = Some(string(&key, value)?),
                "certificateId" => certificate_id = Some(string(&key, value)?),
                "userStatusId" if with_status => user_status_id = Some(string(&key, value)?),
                "userStatusId" => {
                    return Err(Error::invalid(
                        key,
                        "a collection names no user status; leave userStatusId out",
                    ));
                }
                "apiVersion" => api_version = Some(string(&key, value)?.parse()?),
                _ => {
                    return Err(Error::invalid(
                        json::unknown_key_field(name, &key),
                        format!("unknown key \"{key}\"; expected one of {TARGET_KEYS}"),
                    ));
                }
            }
        }
        let parent = match (configuration, profile) {
            (Some(configuration), None) => ParentId::DeviceConfiguration(configuration),
            (None, Some(profile)) => ParentId::AutopilotProfile(profile),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "windowsAutopilotDeploymentProfileId",
                    "give either deviceConfigurationId or windowsAutopilotDeploymentProfileId, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "deviceConfigurationId",
                    "is required (or windowsAutopilotDeploymentProfileId for the Autopilot route)",
                ));
            }
        };
        Ok(TargetJson {
            parent,
            route: route.unwrap_or_default(),
            certificate_id,
            user_status_id,
            api_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(target: &Target, version: ApiVersion) -> Result<String, Error> {
        let mut url = String::new();
        target.write_url(&mut url, version).map(|()| url)
    }

    #[test]
    fn every_template_parses_back_to_its_route() {
        for (index, template) in Route::templates().enumerate() {
            let id = template.contains('{').then_some("c");
            let route = Route::parse(template, id).unwrap();
            assert!(std::ptr::eq(route.row(), &ROUTES[index]));
            assert_eq!(route.template(), template);
        }
    }

    #[test]
    fn ids_are_one_encoded_segment() {
        let target = Target::new("a/b?c#d%e f", "é✓");
        assert_eq!(
            url(&target, ApiVersion::Beta).unwrap(),
            "/beta/deviceManagement/deviceConfigurations/a%2Fb%3Fc%23d%25e%20f/userStatuses/%C3%A9%E2%9C%93"
        );
    }

    #[test]
    fn dot_segments_are_refused() {
        for id in [".", ".."] {
            let err = url(&Target::new("c", id), ApiVersion::Beta).unwrap_err();
            assert!(err.to_string().contains("userStatusId"), "{err}");
            assert!(url(&Target::new(id, "u"), ApiVersion::Beta).is_err());
        }
        assert!(url(&Target::new("c", "..."), ApiVersion::Beta).is_ok());
    }

    #[test]
    fn v1_accepts_only_the_direct_path() {
        let nested = Target::with_route("c", Route::RootCertificate, "u");
        assert!(url(&nested, ApiVersion::V1_0).is_err());
        assert!(url(&Target::autopilot_domain_join("p", "u"), ApiVersion::V1_0).is_err());
        assert_eq!(
            url(&Target::new("c", "u"), ApiVersion::V1_0).unwrap(),
            "/v1.0/deviceManagement/deviceConfigurations/c/userStatuses/u"
        );
    }

    #[test]
    fn unknown_routes_and_misplaced_certificate_ids_are_rejected() {
        assert!(Route::parse("rootCertificates", None).is_err());
        assert!(Route::parse("rootCertificate", Some("x")).is_err());
        assert!(
            Route::parse(
                "microsoft.graph.iosEnterpriseWiFiConfiguration/rootCertificatesForServerValidation",
                None
            )
            .is_err()
        );
    }
}
