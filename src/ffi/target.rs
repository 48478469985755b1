//! `target_json` -> [`Target`], `collection_json` -> [`Collection`], and the per-call options
//! they carry.

use serde_json::Value;

use super::error::{FfiError, parse_json};
use crate::json::{self, kind};
use crate::target::ParentId;
use crate::{CallOptions, Collection, Error, Target};

const KEYS: &str = "deviceConfigurationId, windowsAutopilotDeploymentProfileId, route, \
                    certificateId, userStatusId, apiVersion";

/// Parses `target_json`. The route is written as the documentation page writes it; the core's
/// route rules ([`Target::from_route`]'s) decide what it names under the parent the keys give.
pub(crate) fn target_from_json(text: &str) -> Result<(Target, CallOptions), FfiError> {
    let value = parse_json(text, "target_json", Error::invalid)?;
    Ok(target_from_value(value, "target_json")?)
}

/// A target given as a parsed value (a bulk item's); `name` is the field a value that is not an
/// object is reported as.
pub(crate) fn target_from_value(value: Value, name: &str) -> Result<(Target, CallOptions), Error> {
    let (parent, route, certificate, status, options) = parse(value, name, true)?;
    let status = status.ok_or_else(|| Error::invalid("userStatusId", "is required"))?;
    let target = Target::under(parent, &route, certificate.as_deref(), status)?;
    Ok((target, options))
}

/// Parses `collection_json`: a `target_json` without `userStatusId`.
pub(crate) fn collection_from_json(text: &str) -> Result<(Collection, CallOptions), FfiError> {
    let value = parse_json(text, "collection_json", Error::invalid)?;
    let (parent, route, certificate, _, options) = parse(value, "collection_json", false)?;
    let collection = Collection::under(parent, &route, certificate.as_deref())?;
    Ok((collection, options))
}

/// The parent, route, certificate id, user status id and options a target or collection names.
type Parts = (
    ParentId,
    String,
    Option<String>,
    Option<String>,
    CallOptions,
);

fn parse(value: Value, name: &str, with_status: bool) -> Result<Parts, Error> {
    let Value::Object(map) = value else {
        return Err(Error::invalid(
            name,
            format!("must be a JSON object, got {}", kind(&value)),
        ));
    };
    let mut configuration = None;
    let mut profile = None;
    let mut route = None;
    let mut certificate = None;
    let mut status = None;
    let mut options = CallOptions::new();
    for (key, value) in map {
        match key.as_str() {
            "deviceConfigurationId" => configuration = Some(string(&key, value)?),
            "windowsAutopilotDeploymentProfileId" => profile = Some(string(&key, value)?),
            "route" => route = Some(string(&key, value)?),
            "certificateId" => certificate = Some(string(&key, value)?),
            "userStatusId" if with_status => status = Some(string(&key, value)?),
            "userStatusId" => {
                return Err(Error::invalid(
                    key,
                    "a collection names no user status; leave userStatusId out",
                ));
            }
            "apiVersion" => options = options.api_version(string(&key, value)?.parse()?),
            _ => {
                return Err(Error::invalid(
                    json::unknown_key_field(name, &key),
                    format!("unknown key \"{key}\"; expected one of {KEYS}"),
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
    Ok((
        parent,
        route.unwrap_or_default(),
        certificate,
        status,
        options,
    ))
}

fn string(field: &str, value: Value) -> Result<String, Error> {
    json::string(value).map_err(|reason| Error::invalid(field, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiVersion, Route};

    #[test]
    fn routes_are_written_as_the_page_writes_them() {
        let (target, options) = target_from_json(
            r#"{"deviceConfigurationId":"c","route":"microsoft.graph.windowsWifiEnterpriseEAPConfiguration/rootCertificatesForServerValidation/{windows81TrustedRootCertificateId}","certificateId":"r","userStatusId":"s","apiVersion":"beta"}"#,
        )
        .unwrap();
        assert_eq!(target.route().and_then(Route::certificate_id), Some("r"));
        assert_eq!(options.api_version, Some(ApiVersion::Beta));
        let (target, _) = target_from_json(&format!(
            r#"{{"windowsAutopilotDeploymentProfileId":"p","route":"{}","userStatusId":"s"}}"#,
            Target::AUTOPILOT_ROUTE
        ))
        .unwrap();
        assert!(target.route().is_none());
        let (target, _) =
            target_from_json(r#"{"deviceConfigurationId":"c","route":"","userStatusId":"s"}"#)
                .unwrap();
        assert_eq!(target.route(), Some(&Route::Direct));
    }

    #[test]
    fn a_collection_is_a_target_without_its_user_status() {
        let (collection, _) = collection_from_json(
            r#"{"deviceConfigurationId":"c","route":"identityCertificate/rootCertificate"}"#,
        )
        .unwrap();
        assert_eq!(
            collection.target("s"),
            Target::with_route("c", Route::IdentityCertificateRootCertificate, "s")
        );
        for (json, field) in [
            (
                r#"{"deviceConfigurationId":"c","userStatusId":"s"}"#,
                "userStatusId",
            ),
            ("[]", "collection_json"),
            (
                r#"{"windowsAutopilotDeploymentProfileId":"p","route":"rootCertificate"}"#,
                "route",
            ),
        ] {
            let err = collection_from_json(json).unwrap_err();
            let value: Value = serde_json::from_str(&err.to_json()).unwrap();
            assert_eq!(value["field"], field, "{json}");
        }
    }

    #[test]
    fn bad_targets_name_the_field() {
        for (json, field) in [
            (
                r#"{"deviceConfigurationId":"c","userStatusId":"s","extra":1}"#,
                "extra",
            ),
            (r#"{"deviceConfigurationId":"c"}"#, "userStatusId"),
            (r#"{"userStatusId":"s"}"#, "deviceConfigurationId"),
            (
                r#"{"deviceConfigurationId":"c","windowsAutopilotDeploymentProfileId":"p","userStatusId":"s"}"#,
                "windowsAutopilotDeploymentProfileId",
            ),
            (
                r#"{"deviceConfigurationId":"c","route":"nope","userStatusId":"s"}"#,
                "route",
            ),
            (
                r#"{"deviceConfigurationId":"c","route":"rootCertificate","certificateId":"x","userStatusId":"s"}"#,
                "certificateId",
            ),
            (
                r#"{"windowsAutopilotDeploymentProfileId":"p","route":"rootCertificate","userStatusId":"s"}"#,
                "route",
            ),
            (
                r#"{"deviceConfigurationId":7,"userStatusId":"s"}"#,
                "deviceConfigurationId",
            ),
            (
                r#"{"deviceConfigurationId":"c","userStatusId":"s","apiVersion":"v9"}"#,
                "apiVersion",
            ),
            (r#""text""#, "target_json"),
            (r#"{"":"c","userStatusId":"s"}"#, "target_json"),
            (
                r#"{"deviceConfigurationId":"c","userStatusId":"s","userStatusId":"t"}"#,
                "userStatusId",
            ),
        ] {
            let err = target_from_json(json).expect_err(json);
            let value: Value = serde_json::from_str(&err.to_json()).unwrap();
            assert_eq!(value["status"], "INVALID_INPUT", "{json}");
            assert_eq!(value["field"], field, "{json}: {value}");
        }
    }
}
