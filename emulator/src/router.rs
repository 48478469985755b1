//! Maps a request path to one of the 15 `userStatuses` collections.
//!
//! Fixed segments match case-insensitively (as Graph does); parameter
//! segments are percent-decoded one by one, so an encoded `/` stays inside
//! its id.

use percent_encoding::percent_decode_str;

/// One segment of a route pattern.
#[derive(Debug, Clone, Copy)]
enum Segment {
    /// A fixed name, matched case-insensitively.
    Fixed(&'static str),
    /// A key (an id), matched by any non-empty decoded value.
    Key,
}

use Segment::{Fixed, Key};

const DEVICE_MANAGEMENT: Segment = Fixed("deviceManagement");
const DEVICE_CONFIGURATIONS: Segment = Fixed("deviceConfigurations");
const USER_STATUSES: Segment = Fixed("userStatuses");

/// The 15 collection patterns, after the version segment. Index + 1 is the
/// route number used as part of the store key.
const ROUTES: [&[Segment]; 15] = [
    &[DEVICE_MANAGEMENT, DEVICE_CONFIGURATIONS, Key, USER_STATUSES],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("rootCertificate"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("identityCertificate"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("identityCertificate"),
        Fixed("rootCertificate"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.iosScepCertificateProfile"),
        Fixed("rootCertificate"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.windowsPhone81VpnConfiguration"),
        Fixed("identityCertificate"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.macOSWiredNetworkConfiguration"),
        Fixed("rootCertificateForServerValidation"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.macOSWiredNetworkConfiguration"),
        Fixed("identityCertificateForClientAuthentication"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.windowsWifiEnterpriseEAPConfiguration"),
        Fixed("identityCertificateForClientAuthentication"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.windowsWifiEnterpriseEAPConfiguration"),
        Fixed("rootCertificatesForServerValidation"),
        Key,
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.macOSScepCertificateProfile"),
        Fixed("rootCertificate"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.windowsPhone81SCEPCertificateProfile"),
        Fixed("rootCertificate"),
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.iosEnterpriseWiFiConfiguration"),
        Fixed("rootCertificatesForServerValidation"),
        Key,
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        DEVICE_CONFIGURATIONS,
        Key,
        Fixed("microsoft.graph.macOSEnterpriseWiFiConfiguration"),
        Fixed("rootCertificatesForServerValidation"),
        Key,
        USER_STATUSES,
    ],
    &[
        DEVICE_MANAGEMENT,
        Fixed("windowsAutopilotDeploymentProfiles"),
        Key,
        Fixed("microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile"),
        Fixed("domainJoinConfiguration"),
        USER_STATUSES,
    ],
];

/// The API version named by the first path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    /// `/beta`: serves every route.
    Beta,
    /// `/v1.0`: serves route 1 only.
    V1,
}

impl ApiVersion {
    /// The segment as Graph spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApiVersion::Beta => "beta",
            ApiVersion::V1 => "v1.0",
        }
    }

    fn routes(self) -> std::ops::RangeInclusive<usize> {
        match self {
            ApiVersion::Beta => 1..=ROUTES.len(),
            ApiVersion::V1 => 1..=1,
        }
    }
}

/// Identifies one collection in the store: the route and its decoded keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CollectionKey {
    /// 1-based route number.
    pub(crate) route: usize,
    /// Decoded key segments, in path order.
    pub(crate) ids: Vec<String>,
}

impl CollectionKey {
    /// The OData context path of this collection, e.g.
    /// `deviceManagement/deviceConfigurations('c1')/userStatuses`.
    pub(crate) fn context_path(&self) -> String {
        let mut out = String::new();
        let mut ids = self.ids.iter();
        for seg in ROUTES[self.route - 1] {
            match seg {
                Fixed(name) => {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str(name);
                }
                Key => {
                    let id = ids.next().map(String::as_str).unwrap_or("");
                    out.push_str("('");
                    // OData doubles quotes inside string literals.
                    out.push_str(&id.replace('\'', "''"));
                    out.push_str("')");
                }
            }
        }
        out
    }
}

/// A successfully matched Graph path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteMatch {
    /// The version segment.
    pub(crate) version: ApiVersion,
    /// The collection addressed.
    pub(crate) collection: CollectionKey,
    /// The decoded user status id, when the path addresses an item.
    pub(crate) item: Option<String>,
    /// The raw (still encoded) path of the collection, version included.
    pub(crate) collection_path: String,
}

/// Why a path matched no route: the first segment that could not be resolved
/// (as Graph reports it, raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownSegment(pub(crate) String);

/// Decodes one key segment; empty and non-UTF-8 values do not match.
fn decode(seg: &str) -> Option<String> {
    let decoded = percent_decode_str(seg).decode_utf8().ok()?;
    (!decoded.is_empty()).then(|| decoded.into_owned())
}

/// Matches a path (no query string) such as
/// `/beta/deviceManagement/deviceConfigurations/c1/userStatuses/u1`.
pub(crate) fn match_path(path: &str) -> Result<RouteMatch, UnknownSegment> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let segs: Vec<&str> = rest.split('/').collect();
    let version = match segs[0] {
        v if v.eq_ignore_ascii_case("beta") => ApiVersion::Beta,
        v if v.eq_ignore_ascii_case("v1.0") => ApiVersion::V1,
        other => return Err(UnknownSegment(other.to_owned())),
    };
    let tail = &segs[1..];
    // Deepest prefix any route matched, so the error names the segment at
    // which the path went wrong, like Graph does.
    let mut deepest = 0;
    for route in version.routes() {
        let pattern = ROUTES[route - 1];
        let mut ids = Vec::new();
        let mut matched = 0;
        for (seg, pat) in tail.iter().zip(pattern.iter()) {
            let ok = match pat {
                Fixed(name) => seg.eq_ignore_ascii_case(name),
                Key => match decode(seg) {
                    Some(id) => {
                        ids.push(id);
                        true
                    }
                    None => false,
                },
            };
            if !ok {
                break;
            }
            matched += 1;
        }
        deepest = deepest.max(matched);
        if matched != pattern.len() || tail.len() > pattern.len() + 1 {
            continue;
        }
        let item = match tail.get(pattern.len()) {
            None => None,
            Some(seg) => match decode(seg) {
                Some(id) => Some(id),
                None => {
                    deepest = deepest.max(pattern.len());
                    continue;
                }
            },
        };
        let collection_path = format!("/{}", segs[..=pattern.len()].join("/"));
        return Ok(RouteMatch {
            version,
            collection: CollectionKey { route, ids },
            item,
            collection_path,
        });
    }
    // A path that stopped short names its last segment; one that diverged
    // names the first segment that no route accepted.
    let bad = tail
        .get(deepest)
        .or_else(|| segs.last())
        .copied()
        .unwrap_or("");
    Err(UnknownSegment(bad.to_owned()))
}

/// Resolves a version-less collection path as used by seeds and the library
/// API (e.g. `/deviceManagement/deviceConfigurations/c1/userStatuses`).
pub(crate) fn collection_key(collection: &str) -> Result<CollectionKey, String> {
    let trimmed = collection.trim_start_matches('/');
    match match_path(&format!("/beta/{trimmed}")) {
        Ok(m) if m.item.is_none() => Ok(m.collection),
        Ok(_) => Err(format!(
            "'{collection}' addresses a user status, not a userStatuses collection"
        )),
        Err(UnknownSegment(seg)) => Err(format!(
            "'{collection}' is not a userStatuses collection (bad segment '{seg}')"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_route_1_case_insensitively() {
        let m =
            match_path("/V1.0/devicemanagement/DEVICECONFIGURATIONS/c%2F1/userstatuses/x").unwrap();
        assert_eq!(m.version, ApiVersion::V1);
        assert_eq!(m.collection.route, 1);
        assert_eq!(m.collection.ids, vec!["c/1".to_owned()]);
        assert_eq!(m.item.as_deref(), Some("x"));
        assert_eq!(
            m.collection_path,
            "/V1.0/devicemanagement/DEVICECONFIGURATIONS/c%2F1/userstatuses"
        );
    }

    #[test]
    fn every_beta_route_matches_and_v1_only_route_1() {
        for (i, pattern) in ROUTES.iter().enumerate() {
            let path: Vec<String> = pattern
                .iter()
                .map(|s| match s {
                    Fixed(n) => (*n).to_owned(),
                    Key => "k".to_owned(),
                })
                .collect();
            let path = path.join("/");
            let m = match_path(&format!("/beta/{path}")).unwrap();
            assert_eq!(m.collection.route, i + 1);
            assert!(m.item.is_none());
            let v1 = match_path(&format!("/v1.0/{path}"));
            assert_eq!(v1.is_ok(), i == 0, "route {}", i + 1);
        }
    }

    #[test]
    fn unknown_segment_is_named() {
        let e = match_path("/beta/deviceManagement/deviceConfigurations/c1/bogus/userStatuses")
            .unwrap_err();
        assert_eq!(e.0, "bogus");
        assert_eq!(match_path("/v2/x").unwrap_err().0, "v2");
        let e = match_path("/beta/deviceManagement/deviceConfigurations/c1").unwrap_err();
        assert_eq!(e.0, "c1");
    }

    #[test]
    fn empty_ids_do_not_match() {
        assert!(match_path("/beta/deviceManagement/deviceConfigurations//userStatuses").is_err());
        assert!(match_path("/beta/deviceManagement/deviceConfigurations/c/userStatuses/").is_err());
    }

    #[test]
    fn context_path_quotes_ids() {
        let key = CollectionKey {
            route: 10,
            ids: vec!["c'1".into(), "r".into()],
        };
        assert_eq!(
            key.context_path(),
            "deviceManagement/deviceConfigurations('c''1')/microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation('r')/userStatuses"
        );
    }
}
