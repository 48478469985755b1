//! Edm.DateTimeOffset: validated on the way in, sent exactly as the caller wrote it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An ISO 8601 date and time with an offset, as Graph's `Edm.DateTimeOffset`.
///
/// The text is validated (it must carry `Z` or a `±hh:mm` offset) and then kept byte for byte, so
/// `2017-01-01T00:00:17.7769392-08:00` goes on the wire with all seven fractional digits that Graph
/// itself uses. Microsoft's Python SDK cuts them to six.
///
/// ```
/// use intune_user_status::DateTimeOffset;
/// let when: DateTimeOffset = "2017-01-01T00:00:17.7769392-08:00".parse().unwrap();
/// assert_eq!(when.as_str(), "2017-01-01T00:00:17.7769392-08:00");
/// assert!("2017-01-01T00:00:17".parse::<DateTimeOffset>().is_err()); // no offset
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DateTimeOffset {
    text: String,
}

impl DateTimeOffset {
    /// Validates `text` as ISO 8601 with an offset and keeps it as written.
    pub fn parse(text: &str) -> Result<DateTimeOffset, InvalidDateTime> {
        // RFC 3339 also allows a space between date and time; ISO 8601 and OData require `T`.
        let iso_separator = text.as_bytes().get(10) == Some(&b'T');
        if !iso_separator || OffsetDateTime::parse(text, &Rfc3339).is_err() {
            // A date-time that parses once `Z` is appended lacks only the offset: say so.
            let without_offset =
                iso_separator && OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339).is_ok();
            return Err(InvalidDateTime(if without_offset {
                "has no UTC offset; write Z or ±hh:mm, e.g. 2017-01-01T00:00:17.7769392-08:00"
            } else {
                "is not an ISO 8601 date and time such as 2017-01-01T00:00:17.7769392-08:00"
            }));
        }
        Ok(DateTimeOffset {
            text: text.to_owned(),
        })
    }

    /// The text exactly as the caller (or Graph) wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instant it denotes.
    pub fn to_offset_date_time(&self) -> OffsetDateTime {
        // Validated at construction, so this cannot fail.
        OffsetDateTime::parse(&self.text, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Why a date and time was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDateTime(&'static str);

impl fmt::Display for InvalidDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidDateTime {}

impl FromStr for DateTimeOffset {
    type Err = InvalidDateTime;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTimeOffset::parse(s)
    }
}

impl fmt::Display for DateTimeOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for DateTimeOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl Serialize for DateTimeOffset {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for DateTimeOffset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        DateTimeOffset::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_seven_fractional_digits_and_accepts_z() {
        for ok in [
            "2017-01-01T00:00:17.7769392-08:00",
            "0001-01-01T00:00:00Z",
            "2026-11-29T17:00:00+05:30",
        ] {
            assert_eq!(DateTimeOffset::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_missing_offset_and_garbage_with_distinct_reasons() {
        let no_offset = DateTimeOffset::parse("2017-01-01T00:00:17.7769392").unwrap_err();
        assert!(no_offset.to_string().contains("no UTC offset"));
        for bad in [
            "yesterday",
            "2017-13-01T00:00:00Z",
            "2017-01-01 00:00:00Z",
            "",
        ] {
            let err = DateTimeOffset::parse(bad).unwrap_err();
            assert!(err.to_string().contains("ISO 8601"), "{bad}: {err}");
        }
    }
}
