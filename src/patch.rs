//! The change to send: only the properties the caller set, validated before anything is sent.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
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
        UserStatusPatch::parse(text).map_err(|err| match err {
            ParseError::Syntax(err) => Error::invalid("patch", format!("is not valid JSON: {err}")),
            ParseError::Invalid(err) => err,
        })
    }

    /// [`from_json`](Self::from_json) telling text that is not JSON apart from a patch that breaks
    /// a rule, for callers that report the two differently (the C layer).
    ///
    /// An object is read straight into its properties, with no map in between; the rules, their
    /// order and their messages are those of [`from_value`](Self::from_value).
    pub(crate) fn parse(text: &str) -> Result<UserStatusPatch, ParseError> {
        // serde_json's whitespace: after it, `{` starts an object, anything else is not one.
        if text
            .trim_start_matches([' ', '\n', '\t', '\r'])
            .starts_with('{')
        {
            let fields: Fields = serde_json::from_str(text).map_err(ParseError::Syntax)?;
            return fields.into_patch().map_err(ParseError::Invalid);
        }
        let value: Value = serde_json::from_str(text).map_err(ParseError::Syntax)?;
        UserStatusPatch::from_value(value).map_err(ParseError::Invalid)
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
        let mut fields = Fields::default();
        for (key, value) in map {
            fields.insert(&key, value);
        }
        fields.into_patch()
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

    /// Merges a later report into this one, property by property: what `later` sets wins, what it
    /// leaves out is kept.
    ///
    /// ```
    /// use intune_user_status::{ComplianceStatus, UserStatusPatch};
    /// let mut patch = UserStatusPatch::new().status(ComplianceStatus::Error).devices_count(1);
    /// patch.merge(&UserStatusPatch::new().devices_count(2));
    /// assert_eq!(patch, UserStatusPatch::new().status(ComplianceStatus::Error).devices_count(2));
    /// ```
    pub fn merge(&mut self, later: &UserStatusPatch) {
        fn take<T: Clone>(into: &mut Option<T>, from: &Option<T>) {
            if from.is_some() {
                into.clone_from(from);
            }
        }
        take(&mut self.odata_type, &later.odata_type);
        take(&mut self.id, &later.id);
        take(&mut self.user_display_name, &later.user_display_name);
        take(&mut self.devices_count, &later.devices_count);
        take(&mut self.status, &later.status);
        take(
            &mut self.last_reported_date_time,
            &later.last_reported_date_time,
        );
        take(&mut self.user_principal_name, &later.user_principal_name);
    }

    /// True when every property this patch sets is set to the same value in `state` (e.g. what
    /// Graph acknowledged), so sending it would change nothing. `@odata.type` and `id` describe
    /// the object rather than its state and are not compared.
    pub fn is_within(&self, state: &UserStatusPatch) -> bool {
        fn same<T: PartialEq>(mine: &Option<T>, theirs: &Option<T>) -> bool {
            mine.is_none() || mine == theirs
        }
        same(&self.user_display_name, &state.user_display_name)
            && same(&self.devices_count, &state.devices_count)
            && same(&self.status, &state.status)
            && same(
                &self.last_reported_date_time,
                &state.last_reported_date_time,
            )
            && same(&self.user_principal_name, &state.user_principal_name)
    }

    /// The body exactly as it goes on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        // Sized for a full patch, so the body is written without growing.
        let mut body = Vec::with_capacity(320);
        // Serializing plain strings, integers and enums into a Vec cannot fail.
        if serde_json::to_writer(&mut body, self).is_err() {
            body.clear();
        }
        body
    }
}

/// Why a patch's JSON text was refused: not JSON at all, or JSON that breaks a rule.
#[derive(Debug)]
pub(crate) enum ParseError {
    Syntax(serde_json::Error),
    Invalid(Error),
}

/// The properties a patch may hold, in the order their rules are checked: the byte order of their
/// names, the order in which [`UserStatusPatch::from_value`] meets them in a `serde_json::Map`.
const NAMES: [&str; 7] = [
    "@odata.type",
    "devicesCount",
    "id",
    "lastReportedDateTime",
    "status",
    "userDisplayName",
    "userPrincipalName",
];

/// A patch object as read, before any rule is checked: each known property's JSON value, the
/// first known name given twice (a repeat is refused, never resolved as a map would), and the
/// first unknown name in byte order, which is the one the rules would meet first.
#[derive(Default)]
struct Fields {
    values: [Option<Value>; NAMES.len()],
    repeated: Option<&'static str>,
    unknown: Option<String>,
}

impl Fields {
    fn insert(&mut self, key: &str, value: Value) {
        match NAMES.iter().position(|name| *name == key) {
            Some(index) => {
                if self.values[index].replace(value).is_some() && self.repeated.is_none() {
                    self.repeated = Some(NAMES[index]);
                }
            }
            None => {
                if self.unknown.as_deref().is_none_or(|first| key < first) {
                    self.unknown = Some(key.to_owned());
                }
            }
        }
    }

    /// Checks every property in name order (the first failure is the one reported), then the
    /// rules across properties.
    fn into_patch(self) -> Result<UserStatusPatch, Error> {
        // {"devicesCount":-1,"devicesCount":3} must not quietly send 3.
        if let Some(name) = self.repeated {
            return Err(Error::invalid(name, json::ParseError::DUPLICATE));
        }
        let mut patch = UserStatusPatch::new();
        let mut unknown = self.unknown;
        for (name, value) in NAMES.into_iter().zip(self.values) {
            if let Some(key) = unknown.take_if(|key| key.as_str() < name) {
                return Err(unknown_property(&key));
            }
            if let Some(value) = value {
                set(&mut patch, name, value)?;
            }
        }
        if let Some(key) = unknown {
            return Err(unknown_property(&key));
        }
        patch.validate()?;
        Ok(patch)
    }
}

fn unknown_property(key: &str) -> Error {
    Error::invalid(
        json::unknown_key_field("patch", key),
        format!(
            "unknown property \"{key}\"; a deviceConfigurationUserStatus patch may contain {PROPERTIES}"
        ),
    )
}

/// Checks one known property's value and sets it. Not inlined: one copy of the rules, not one per
/// name in the loop that calls it.
#[inline(never)]
fn set(patch: &mut UserStatusPatch, key: &str, value: Value) -> Result<(), Error> {
    match key {
        "@odata.type" => {
            let text = expect_string(key, value)?;
            if text != ODATA_TYPE {
                return Err(Error::invalid(
                    key,
                    format!("must be \"{ODATA_TYPE}\", got \"{text}\""),
                ));
            }
            patch.odata_type = Some(ODATA_TYPE);
        }
        "id" => patch.id = Some(expect_string(key, value)?),
        "userDisplayName" => patch.user_display_name = Some(expect_nullable(key, value)?),
        "userPrincipalName" => patch.user_principal_name = Some(expect_nullable(key, value)?),
        "devicesCount" => patch.devices_count = Some(expect_int32(key, &value)?),
        "status" => {
            let text = expect_string(key, value)?;
            let status = text
                .parse()
                .map_err(|err| Error::invalid(key, format!("{err}")))?;
            patch.status = Some(status);
        }
        "lastReportedDateTime" => {
            let text = expect_string(key, value)?;
            let when = DateTimeOffset::parse(&text)
                .map_err(|err| Error::invalid(key, format!("\"{text}\" {err}")))?;
            patch.last_reported_date_time = Some(when);
        }
        _ => return Err(unknown_property(key)),
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        // Keys are borrowed from the text where they can be; only an unknown one is copied.
        while let Some(key) = map.next_key::<Key<'de>>()? {
            fields.insert(key.as_str(), map.next_value()?);
        }
        Ok(fields)
    }
}

/// A property name, borrowed from the text unless it holds escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(key) => key,
            Key::Owned(key) => key,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a property name")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(key))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
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
            (r#"{"":1}"#, "patch", "unknown property \"\""),
            (r#"{"":"no","":"no"}"#, "patch", "unknown property \"\""),
            (
                r##"{"@odata.type":"#microsoft.graph.user","status":"error"}"##,
                "@odata.type",
                "must be",
            ),
            (r#"{"id":"x"}"#, "patch", "empty"),
            (
                r#"{"devicesCount":-1,"devicesCount":3}"#,
                "devicesCount",
                "more than once",
            ),
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
    fn text_is_read_as_the_map_reader_reads_it() {
        // The direct read must report what parsing into a map and checking it reports: the first
        // failing name in byte order, syntax errors first. (A repeated name is where they differ
        // on purpose: a map keeps the last value, the reader refuses the repeat; see
        // each_rule_names_the_field_and_the_reason.)
        let cases = [
            r#"{"stauts":"x","status":"bogus"}"#,
            r#"{"status":"bogus","stauts":"x"}"#,
            r#"{"zzz":1,"aaa":2,"devicesCount":-1}"#,
            r#"{"devicesCount":"1","aaa":2}"#,
            r#"{"status":"compliant","userDisplayName":[1,{"a":2}]}"#,
            r#"{"status":"compliant","id":{}}"#,
            r#"{"st\u0061tus":"compliant"}"#,
            r#"{"\u0041":1,"status":"error"}"#,
            r#"{"devicesCount":1e3}"#,
            r#"{"devicesCount":-0}"#,
            r#"{"status":"compliant"} x"#,
            r#"{"bogus":1,"status":"compliant""#,
            " \n{\"status\":\"remediated\"}\t",
            "\u{a0}{}",
            "null",
            r#""text""#,
            "",
        ];
        for text in cases {
            let direct = UserStatusPatch::from_json(text);
            let via_map = serde_json::from_str::<Value>(text)
                .map_err(|err| Error::invalid("patch", format!("is not valid JSON: {err}")))
                .and_then(UserStatusPatch::from_value);
            assert_eq!(format!("{direct:?}"), format!("{via_map:?}"), "{text}");
        }
    }

    #[test]
    fn names_are_in_byte_order() {
        assert!(
            NAMES.is_sorted(),
            "the rules must meet names as a map orders them"
        );
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
