//! `target_json` -> [`Target`] and the per-call options it carries.

use serde_json::Value;

use super::error::FfiError;
use crate::json::{self, kind};
use crate::target::ParentId;
use crate::{CallOptions, Error, Target};

const KEYS: &str = "deviceConfigurationId, windowsAutopilotDeploymentProfileId, route, \
                    certificateId, userStatusId, apiVersion";

/// Parses `target_json`. The route is written as the documentation page writes it; the core's
/// route rules ([`Target::from_route`]'s) decide what it names under the parent the keys give.
pub(crate) fn target_from_json(text: &str) -> Result<(Target, CallOptions), FfiError> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| FfiError::invalid_json("target_json", &err))?;
    let Value::Object(map) = value else {
        return Err(Error::invalid(
            "target_json",
            format!("must be a JSON object, got {}", kind(&value)),
        )
        .into());
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
            "userStatusId" => status = Some(string(&key, value)?),
            "apiVersion" => options = options.api_version(string(&key, value)?.parse()?),
            _ => {
                return Err(
                    Error::invalid(key, format!("unknown key; expected one of {KEYS}")).into(),
                );
            }
        }
    }
    let status = status.ok_or_else(|| Error::invalid("userStatusId", "is required"))?;
    let parent = match (configuration, profile) {
        (Some(configuration), None) => ParentId::DeviceConfiguration(configuration),
        (None, Some(profile)) => ParentId::AutopilotProfile(profile),
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "windowsAutopilotDeploymentProfileId",
                "give either deviceConfigurationId or windowsAutopilotDeploymentProfileId, not both",
            )
            .into());
        }
        (None, None) => {
            return Err(Error::invalid(
                "deviceConfigurationId",
                "is required (or windowsAutopilotDeploymentProfileId for the Autopilot route)",
            )
            .into());
        }
    };
    let route = route.unwrap_or_default();
    let target = Target::under(parent, &route, certificate.as_deref(), status)?;
    Ok((target, options))
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
        ] {
            let err = target_from_json(json).expect_err(json);
            let value: Value = serde_json::from_str(&err.to_json()).unwrap();
            assert_eq!(value["status"], "INVALID_INPUT", "{json}");
            assert_eq!(value["field"], field, "{json}: {value}");
        }
    }
}
