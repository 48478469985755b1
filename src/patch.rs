//! The change to send: only the properties the caller set, validated before anything is sent.

use serde::Serialize;
use serde_json::Value;

use crate::json;
use crate::model::ODATA_TYPE;
use crate::{ComplianceStatus, DateTimeOffset, Error, Target};

const PROPERTIES: &str = "@odata.type, id, userDisplayName, devicesCount, status, lastReportedDateTime, userPrincipalName";

/// A PATCH body for a deviceConfigurationUserStatus: only the properties set here go on the wire.
///
/// Build it in Rust:
/// ```
/// use intune_user_status::{ComplianceStatus, UserStatusPatch};
/// let patch = UserStatusPatch::new()
///     .status(ComplianceStatus::Compliant)
///     .devices_count(3);
/// assert_eq!(patch.to_json(), br#"{"devicesCount":3,"status":"compliant"}"#);
/// ```
/// or parse it from JSON, where every property is checked by name and type:
/// ```
/// use intune_user_status::UserStatusPatch;
/// let err = UserStatusPatch::from_json(r#"{"stauts":"compliant"}"#).unwrap_err();
/// assert!(err.to_string().contains("stauts"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserStatusPatch {
    #[serde(rename = "@odata.type", skip_serializing_if = "Option::is_none")]
    odata_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    // Some(None) sends an explicit null: both names are nullable in Graph's schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_display_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    devices_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ComplianceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_reported_date_time: Option<DateTimeOffset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_principal_name: Option<Option<String>>,
}

impl UserStatusPatch {
    /// An empty patch; set at least one property before sending it.
    pub fn new() -> UserStatusPatch {
        UserStatusPatch::default()
    }

    /// Sets `status`.
    pub fn status(mut self, status: ComplianceStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets `devicesCount`. A negative count is rejected when the patch is validated.
    pub fn devices_count(mut self, count: i32) -> Self {
        self.devices_count = Some(count);
        self
    }

    /// Sets `lastReportedDateTime`, sent exactly as written.
    pub fn last_reported_date_time(mut self, when: DateTimeOffset) -> Self {
        self.last_reported_date_time = Some(when);
        self
    }

    /// Sets `userDisplayName`.
    pub fn user_display_name(mut self, name: impl Into<String>) -> Self {
        self.user_display_name = Some(Some(name.into()));
        self
    }

    /// Sends `userDisplayName: null`, clearing it.
    pub fn clear_user_display_name(mut self) -> Self {
        self.user_display_name = Some(None);
        self
    }

    /// Sets `userPrincipalName`.
    pub fn user_principal_name(mut self, upn: impl Into<String>) -> Self {
        self.user_principal_name = Some(Some(upn.into()));
        self
    }

    /// Sends `userPrincipalName: null`, clearing it.
    pub fn clear_user_principal_name(mut self) -> Self {
        self.user_principal_name = Some(None);
        self
    }

    /// Sends `@odata.type: "#microsoft.graph.deviceConfigurationUserStatus"`, as the documentation's
    /// example does. Graph does not require it.
    pub fn with_odata_type(mut self) -> Self {
        self.odata_type = Some(ODATA_TYPE);
        self
    }

    /// Sends `id`; it must equal the target's user status id, or the update is rejected before sending.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The `id` this patch carries, if any.
    pub fn get_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The `status` this patch sets, if any.
    pub fn get_status(&self) -> Option<ComplianceStatus> {
        self.status
    }

    /// The `devicesCount` this patch sets, if any.
    pub fn get_devices_count(&self) -> Option<i32> {
        self.devices_count
    }

    /// Parses a patch from JSON text, checking every property by name, type and range.
    pub fn from_json(text: &str) -> Result<UserStatusPatch, Error> {
        let value: Value = serde_json::from_str(text)
            .map_err(|err| Error::invalid("patch", format!("is not valid JSON: {err}")))?;
        UserStatusPatch::from_value(value)
    }

    /// Builds a patch from a parsed JSON value, checking every property by name, type and range.
    ///
    /// A typo must never drop data silently, so an unknown property is an error, not ignored.
    pub fn from_value(value: Value) -> Result<UserStatusPatch, Error> {
        let Value::Object(map) = value else {
            return Err(Error::invalid(
                "patch",
                format!("must be a JSON object, got {}", json::kind(&value)),
            ));
        };
        let mut patch = UserStatusPatch::new();
        for (key, value) in map {
            match key.as_str() {
                "@odata.type" => {
                    let text = expect_string(&key, value)?;
                    if text != ODATA_TYPE {
                        return Err(Error::invalid(
                            key,
                            format!("must be \"{ODATA_TYPE}\", got \"{text}\""),
                        ));
                    }
                    patch.odata_type = Some(ODATA_TYPE);
                }
                "id" => patch.id = Some(expect_string(&key, value)?),
                "userDisplayName" => patch.user_display_name = Some(expect_nullable(&key, value)?),
                "userPrincipalName" => {
                    patch.user_principal_name = Some(expect_nullable(&key, value)?)
                }
                "devicesCount" => patch.devices_count = Some(expect_int32(&key, &value)?),
                "status" => {
                    let text = expect_string(&key, value)?;
                    let status = text
                        .parse()
                        .map_err(|err| Error::invalid(&key, format!("{err}")))?;
                    patch.status = Some(status);
                }
                "lastReportedDateTime" => {
                    let text = expect_string(&key, value)?;
                    let when = DateTimeOffset::parse(&text)
                        .map_err(|err| Error::invalid(&key, format!("\"{text}\" {err}")))?;
                    patch.last_reported_date_time = Some(when);
                }
                _ => {
                    return Err(Error::invalid(
                        &key,
                        format!(
                            "unknown property; a deviceConfigurationUserStatus patch may contain {PROPERTIES}"
                        ),
                    ));
                }
            }
        }
        patch.validate()?;
        Ok(patch)
    }

    /// Checks the rules a typed patch cannot express: at least one property, a non-negative count.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(count) = self.devices_count
            && count < 0
        {
            return Err(Error::invalid(
                "devicesCount",
                format!("must not be negative, got {count}"),
            ));
        }
        if self.user_display_name.is_none()
            && self.devices_count.is_none()
            && self.status.is_none()
            && self.last_reported_date_time.is_none()
            && self.user_principal_name.is_none()
        {
            return Err(Error::invalid(
                "patch",
                "is empty; set at least one of userDisplayName, devicesCount, status, \
                 lastReportedDateTime, userPrincipalName",
            ));
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and checks that an `id` in the patch is the target's: Graph
    /// cannot change an entity's key.
    pub(crate) fn validate_for(&self, target: &Target) -> Result<(), Error> {
        self.validate()?;
        if let Some(id) = self.get_id()
            && id != target.user_status_id()
        {
            return Err(Error::invalid(
                "id",
                format!(
                    "\"{id}\" differs from the target's user status id \"{}\"; the id cannot be changed",
                    target.user_status_id()
                ),
            ));
        }
        Ok(())
    }

    /// The body exactly as it goes on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, integers and enums into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn expect_string(key: &str, value: Value) -> Result<String, Error> {
    json::string(value).map_err(|reason| Error::invalid(key, reason))
}

fn expect_nullable(key: &str, value: Value) -> Result<Option<String>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        other => Err(Error::invalid(
            key,
            format!("must be a string or null, got {}", json::kind(&other)),
        )),
    }
}

fn expect_int32(key: &str, value: &Value) -> Result<i32, Error> {
    let Value::Number(number) = value else {
        return Err(Error::invalid(
            key,
            format!("must be an integer (Int32), got {}", json::kind(value)),
        ));
    };
    if let Some(wide) = number.as_i64() {
        return i32::try_from(wide).map_err(|_| {
            Error::invalid(
                key,
                format!("{wide} is outside the Int32 range -2147483648..=2147483647"),
            )
        });
    }
    let reason = if number.is_u64() {
        format!("{number} is outside the Int32 range -2147483648..=2147483647")
    } else {
        format!("must be an integer (Int32), got {number}")
    };
    Err(Error::invalid(key, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(json: &str) -> (String, String) {
        match UserStatusPatch::from_json(json).unwrap_err() {
            Error::InvalidInput { field, reason } => (field, reason),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn only_the_set_fields_go_on_the_wire_in_order() {
        let patch = UserStatusPatch::new()
            .with_odata_type()
            .clear_user_display_name()
            .last_reported_date_time("2017-01-01T00:00:17.7769392-08:00".parse().unwrap());
        assert_eq!(
            String::from_utf8(patch.to_json()).unwrap(),
            r##"{"@odata.type":"#microsoft.graph.deviceConfigurationUserStatus","userDisplayName":null,"lastReportedDateTime":"2017-01-01T00:00:17.7769392-08:00"}"##
        );
    }

    #[test]
    fn each_rule_names_the_field_and_the_reason() {
        let cases = [
            (r#"{"status":"bogus"}"#, "status", "not a complianceStatus"),
            (r#"{"devicesCount":"12"}"#, "devicesCount", "got a string"),
            (r#"{"devicesCount":2147483648}"#, "devicesCount", "Int32"),
            (r#"{"devicesCount":-2147483649}"#, "devicesCount", "Int32"),
            (r#"{"devicesCount":-1}"#, "devicesCount", "negative"),
            (r#"{"devicesCount":1.5}"#, "devicesCount", "integer"),
            (
                r#"{"devicesCount":18446744073709551616}"#,
                "devicesCount",
                "integer",
            ),
            (
                r#"{"lastReportedDateTime":"2017-01-01T00:00:17"}"#,
                "lastReportedDateTime",
                "offset",
            ),
            (
                r#"{"lastReportedDateTime":"soon"}"#,
                "lastReportedDateTime",
                "ISO 8601",
            ),
            (
                r#"{"userDisplayName":5}"#,
                "userDisplayName",
                "string or null",
            ),
            (r#"{"stauts":"compliant"}"#, "stauts", "unknown property"),
            (
                r##"{"@odata.type":"#microsoft.graph.user","status":"error"}"##,
                "@odata.type",
                "must be",
            ),
            (r#"{"id":"x"}"#, "patch", "empty"),
            ("{}", "patch", "empty"),
            ("[1]", "patch", "JSON object"),
            ("{", "patch", "not valid JSON"),
        ];
        for (json, field, reason) in cases {
            let (got_field, got_reason) = reject(json);
            assert_eq!(got_field, field, "{json}");
            assert!(got_reason.contains(reason), "{json}: {got_reason}");
        }
    }

    #[test]
    fn parsed_json_keeps_values_exactly() {
        let patch = UserStatusPatch::from_json(
            r#"{"devicesCount":2147483647,"status":"notAssigned","userPrincipalName":null}"#,
        )
        .unwrap();
        assert_eq!(
            patch.to_json(),
            br#"{"devicesCount":2147483647,"status":"notAssigned","userPrincipalName":null}"#
        );
    }
}
