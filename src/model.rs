//! What Graph returns: the deviceConfigurationUserStatus entity and its complianceStatus enum.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DateTimeOffset;

/// The `@odata.type` of the entity this crate updates.
pub const ODATA_TYPE: &str = "#microsoft.graph.deviceConfigurationUserStatus";

/// Graph's `complianceStatus` enum: the eight values both beta and v1.0 define.
///
/// ```
/// use intune_user_status::ComplianceStatus;
/// assert_eq!("notApplicable".parse(), Ok(ComplianceStatus::NotApplicable));
/// assert_eq!(ComplianceStatus::NonCompliant.as_str(), "nonCompliant");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComplianceStatus {
    /// `unknown`
    Unknown,
    /// `notApplicable`
    NotApplicable,
    /// `compliant`
    Compliant,
    /// `remediated`
    Remediated,
    /// `nonCompliant`
    NonCompliant,
    /// `error`
    Error,
    /// `conflict`
    Conflict,
    /// `notAssigned`
    NotAssigned,
}

impl ComplianceStatus {
    /// All eight values, in Graph's order.
    pub const ALL: [ComplianceStatus; 8] = [
        ComplianceStatus::Unknown,
        ComplianceStatus::NotApplicable,
        ComplianceStatus::Compliant,
        ComplianceStatus::Remediated,
        ComplianceStatus::NonCompliant,
        ComplianceStatus::Error,
        ComplianceStatus::Conflict,
        ComplianceStatus::NotAssigned,
    ];

    /// The value as Graph spells it on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ComplianceStatus::Unknown => "unknown",
            ComplianceStatus::NotApplicable => "notApplicable",
            ComplianceStatus::Compliant => "compliant",
            ComplianceStatus::Remediated => "remediated",
            ComplianceStatus::NonCompliant => "nonCompliant",
            ComplianceStatus::Error => "error",
            ComplianceStatus::Conflict => "conflict",
            ComplianceStatus::NotAssigned => "notAssigned",
        }
    }
}

/// A string that is not one of the eight `complianceStatus` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownComplianceStatus(pub String);

impl fmt::Display for UnknownComplianceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a complianceStatus; expected one of unknown, notApplicable, compliant, \
             remediated, nonCompliant, error, conflict, notAssigned",
            self.0
        )
    }
}

impl std::error::Error for UnknownComplianceStatus {}

impl FromStr for ComplianceStatus {
    type Err = UnknownComplianceStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Graph matches enum members exactly (camelCase); so do we.
        ComplianceStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownComplianceStatus(s.to_owned()))
    }
}

impl fmt::Display for ComplianceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ComplianceStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The `status` Graph reported: one of the eight known values, or a value Graph added after this
/// version was released, kept as sent rather than failing the whole call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatusValue {
    /// A value this version knows.
    Known(ComplianceStatus),
    /// A value this version does not know, exactly as Graph sent it.
    Unrecognized(String),
}

impl StatusValue {
    /// The known value, if it is one.
    pub fn known(&self) -> Option<ComplianceStatus> {
        match self {
            StatusValue::Known(status) => Some(*status),
            StatusValue::Unrecognized(_) => None,
        }
    }

    /// The value as Graph spelled it.
    pub fn as_str(&self) -> &str {
        match self {
            StatusValue::Known(status) => status.as_str(),
            StatusValue::Unrecognized(text) => text,
        }
    }
}

impl PartialEq<ComplianceStatus> for StatusValue {
    fn eq(&self, other: &ComplianceStatus) -> bool {
        self.known() == Some(*other)
    }
}

impl Serialize for StatusValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StatusValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(match text.parse() {
            Ok(status) => StatusValue::Known(status),
            Err(_) => StatusValue::Unrecognized(text.into_owned()),
        })
    }
}

/// A deviceConfigurationUserStatus as Graph returns it.
///
/// Every property is optional because Graph omits what a `$select` leaves out; annotations such as
/// `@odata.context` are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeviceConfigurationUserStatus {
    /// `@odata.type`, normally `#microsoft.graph.deviceConfigurationUserStatus`.
    #[serde(rename = "@odata.type", skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    /// The key of the entity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// User name of the DevicePolicyStatus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_display_name: Option<String>,
    /// Devices count for that user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices_count: Option<i32>,
    /// Compliance status of the policy report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusValue>,
    /// Last modified date time of the policy report, as Graph wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reported_date_time: Option<DateTimeOffset>,
    /// UserPrincipalName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_response_and_keeps_unknown_status() {
        let body = r##"{"@odata.context":"https://graph.microsoft.com/beta/$metadata#x/$entity",
            "@odata.type":"#microsoft.graph.deviceConfigurationUserStatus",
            "id":"7e32","userDisplayName":null,"devicesCount":12,"status":"quarantined",
            "lastReportedDateTime":"2017-01-01T00:00:17.7769392-08:00","userPrincipalName":"a@b"}"##;
        let entity: DeviceConfigurationUserStatus = serde_json::from_str(body).unwrap();
        assert_eq!(
            entity.status,
            Some(StatusValue::Unrecognized("quarantined".into()))
        );
        assert_eq!(entity.devices_count, Some(12));
        assert_eq!(entity.user_display_name, None);
        assert_eq!(
            entity.last_reported_date_time.unwrap().as_str(),
            "2017-01-01T00:00:17.7769392-08:00"
        );
    }

    #[test]
    fn every_status_round_trips() {
        for status in ComplianceStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert!("Compliant".parse::<ComplianceStatus>().is_err());
    }
}
