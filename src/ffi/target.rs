//! `target_json` -> [`Target`], `collection_json` -> [`Collection`], and the per-call options
//! they carry.

use serde_json::Value;

use super::error::{FfiError, parse_json};
use crate::target::TargetJson;
use crate::{ApiVersion, CallOptions, Collection, Error, Target};

/// Parses `target_json`. The route is written as the documentation page writes it; the core's
/// route rules ([`Target::from_route`]'s) decide what it names under the parent the keys give.
pub(crate) fn target_from_json(text: &str) -> Result<(Target, CallOptions), FfiError> {
    let value = parse_json(text, "target_json", Error::invalid)?;
    Ok(target_from_value(value, "target_json")?)
}

/// A target given as a parsed value (a bulk item's); `name` is the field a value that is not an
/// object is reported as.
fn target_from_value(value: Value, name: &str) -> Result<(Target, CallOptions), Error> {
    let (target, version) = Target::from_named_value(value, name)?;
    Ok((target, options(version)))
}

/// Parses `collection_json`: a `target_json` without `userStatusId`.
pub(crate) fn collection_from_json(text: &str) -> Result<(Collection, CallOptions), FfiError> {
    let value = parse_json(text, "collection_json", Error::invalid)?;
    let parts = TargetJson::parse(value, "collection_json", false)?;
    let collection =
        Collection::under(parts.parent, &parts.route, parts.certificate_id.as_deref())?;
    Ok((collection, options(parts.api_version)))
}

fn options(version: Option<ApiVersion>) -> CallOptions {
    match version {
        Some(version) => CallOptions::new().api_version(version),
        None => CallOptions::new(),
    }
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
