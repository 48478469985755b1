//! What a valid `deviceConfigurationUserStatus` is: the checks on POST and
//! PATCH bodies (each error names the property), and how validated
//! properties become or change an entity.

use serde_json::{Map, Value};

use crate::store::{ODATA_TYPE, UserStatus};

/// The values of the `deviceComplianceStatus` enum.
const STATUSES: [&str; 8] = [
    "unknown",
    "notApplicable",
    "compliant",
    "remediated",
    "nonCompliant",
    "error",
    "conflict",
    "notAssigned",
];

/// Parses and validates a request body (POST or PATCH).
pub(crate) fn parse_body(body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not valid JSON: {e}."))?;
    validate(value)
}

/// Validates a user status given as JSON; returns its properties.
pub(crate) fn validate(value: Value) -> Result<Map<String, Value>, String> {
    let Value::Object(map) = value else {
        return Err(
            "The request body must be a JSON object representing a deviceConfigurationUserStatus."
                .to_owned(),
        );
    };
    for (name, value) in &map {
        validate_property(name, value)?;
    }
    Ok(map)
}

fn validate_property(name: &str, value: &Value) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("Invalid value for property '{name}': {why}."));
    match name {
        "@odata.type" => match value.as_str() {
            Some(ODATA_TYPE) => Ok(()),
            _ => invalid(&format!("expected '{ODATA_TYPE}', got {value}")),
        },
        "id" => match value.as_str() {
            Some(s) if !s.is_empty() => Ok(()),
            Some(_) => invalid("must not be empty"),
            None => invalid(&format!("expected a string, got {value}")),
        },
        "userDisplayName" | "userPrincipalName" => match value {
            Value::String(_) | Value::Null => Ok(()),
            _ => invalid(&format!("expected a string or null, got {value}")),
        },
        "devicesCount" => match value.as_i64().map(i32::try_from) {
            Some(Ok(_)) => Ok(()),
            _ => invalid(&format!("expected an Int32 integer, got {value}")),
        },
        "status" => match value.as_str() {
            Some(s) if STATUSES.contains(&s) => Ok(()),
            _ => invalid(&format!(
                "{value} is not a valid deviceComplianceStatus (one of {})",
                STATUSES.join(", ")
            )),
        },
        "lastReportedDateTime" => {
            let ok = value.as_str().is_some_and(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            });
            if ok {
                Ok(())
            } else {
                invalid(&format!(
                    "expected an ISO 8601 date-time with offset (e.g. 2024-01-31T12:00:00Z), got {value}"
                ))
            }
        }
        _ => Err(format!(
            "The property '{name}' does not exist on type 'microsoft.graph.deviceConfigurationUserStatus'. Make sure to only use property names that are defined by the type or mark the type as open type."
        )),
    }
}

/// A new entity from validated properties, defaults for the rest.
pub(crate) fn new_entity(props: Map<String, Value>) -> UserStatus {
    let id = match props.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let mut entity = UserStatus::with_defaults(id);
    apply(&mut entity, props);
    entity
}

/// Merges validated properties into an entity.
pub(crate) fn apply(entity: &mut UserStatus, props: Map<String, Value>) {
    for (name, value) in props {
        match (name.as_str(), value) {
            ("userDisplayName", v) => entity.user_display_name = v.as_str().map(str::to_owned),
            ("userPrincipalName", v) => entity.user_principal_name = v.as_str().map(str::to_owned),
            ("devicesCount", v) => {
                if let Some(n) = v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                    entity.devices_count = n;
                }
            }
            ("status", Value::String(s)) => entity.status = s,
            ("lastReportedDateTime", Value::String(s)) => entity.last_reported_date_time = s,
            // `id` is fixed at creation; `@odata.type` is constant.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_property() {
        let cases = [
            (serde_json::json!({"bogus": 1}), "bogus"),
            (serde_json::json!({"@odata.etag": "x"}), "@odata.etag"),
            (
                serde_json::json!({"@odata.type": "#microsoft.graph.user"}),
                "@odata.type",
            ),
            (serde_json::json!({"userDisplayName": 3}), "userDisplayName"),
            (
                serde_json::json!({"userPrincipalName": true}),
                "userPrincipalName",
            ),
            (serde_json::json!({"devicesCount": 1.5}), "devicesCount"),
            (
                serde_json::json!({"devicesCount": 2_147_483_648_i64}),
                "devicesCount",
            ),
            (serde_json::json!({"devicesCount": "1"}), "devicesCount"),
            (serde_json::json!({"status": "fine"}), "status"),
            (
                serde_json::json!({"lastReportedDateTime": "2024-01-01T00:00:00"}),
                "lastReportedDateTime",
            ),
            (serde_json::json!({"id": 5}), "id"),
        ];
        for (body, prop) in cases {
            let err = validate(body.clone()).unwrap_err();
            assert!(err.contains(&format!("'{prop}'")), "{body}: {err}");
        }
        assert!(validate(serde_json::json!([])).is_err());
    }

    #[test]
    fn accepts_valid_bodies() {
        let props = validate(serde_json::json!({
            "@odata.type": ODATA_TYPE,
            "id": "u1",
            "userDisplayName": null,
            "devicesCount": -2_147_483_648_i64,
            "status": "notAssigned",
            "lastReportedDateTime": "2024-05-01T10:11:12.1234567+02:00",
            "userPrincipalName": "a@b.c",
        }))
        .unwrap();
        let e = new_entity(props);
        assert_eq!(e.devices_count, i32::MIN);
        assert_eq!(
            e.last_reported_date_time,
            "2024-05-01T10:11:12.1234567+02:00"
        );
    }
}
