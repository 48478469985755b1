//! The OData query options a collection GET honours, minimally:
//!
//! - `$top=N`: the page size (as Graph does for Intune collections); the
//!   next link keeps it.
//! - `$skiptoken`: where the next page starts (an opaque number the
//!   emulator put in `@odata.nextLink`).
//! - `$select=a,b`: only these properties, in Graph's property order
//!   (unknown names are `400`). Also on a single GET.
//! - `$filter`: comparisons `property eq|ne literal` joined by `and`, where
//!   a literal is a `'string'` (`''` for a quote), an integer or `null`
//!   (anything else is `400` saying so).
//!
//! Other options (`$count`, `$orderby`, `$expand`, `$search`, ...) are
//! ignored.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::odata::query_pairs;
use crate::store::UserStatus;

/// The properties of a `deviceConfigurationUserStatus`, in Graph's order.
const PROPERTIES: [&str; 6] = [
    "id",
    "userDisplayName",
    "devicesCount",
    "status",
    "lastReportedDateTime",
    "userPrincipalName",
];

/// The options of one collection or item GET.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// `$top`.
    pub(crate) top: Option<usize>,
    /// `$skiptoken`: continue after this store sequence number.
    pub(crate) after: u64,
    select: Option<Vec<&'static str>>,
    filter: Vec<Comparison>,
    /// The `$select` and `$filter` text as given, for the next link.
    select_text: Option<String>,
    filter_text: Option<String>,
}

#[derive(Debug, PartialEq)]
struct Comparison {
    property: &'static str,
    equal: bool,
    literal: Value,
}

/// Finds a property by name (case-insensitively, as OData does).
fn property(name: &str) -> Result<&'static str, String> {
    PROPERTIES
        .iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.deviceConfigurationUserStatus'."
            )
        })
}

impl Options {
    /// Parses a query string; the error is the `400` message.
    pub(crate) fn parse(query: &str) -> Result<Options, String> {
        let mut options = Options::default();
        for (name, value) in query_pairs(query) {
            match name.as_str() {
                "$top" => {
                    options.top = Some(value.parse().map_err(|_| {
                        format!("Invalid $top value '{value}': expected a non-negative integer.")
                    })?);
                }
                "$skiptoken" => {
                    options.after = value
                        .parse()
                        .map_err(|_| format!("Invalid $skiptoken value '{value}'."))?;
                }
                "$select" => {
                    let names = value
                        .split(',')
                        .map(|n| property(n.trim()))
                        .collect::<Result<Vec<_>, _>>()?;
                    options.select = Some(names);
                    options.select_text = Some(value);
                }
                "$filter" => {
                    options.filter = parse_filter(&value)?;
                    options.filter_text = Some(value);
                }
                _ => {}
            }
        }
        Ok(options)
    }

    /// Whether `entity` passes `$filter`.
    pub(crate) fn keeps(&self, entity: &UserStatus) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        let value = entity.to_value();
        self.filter
            .iter()
            .all(|c| (value[c.property] == c.literal) == c.equal)
    }

    /// The query of the page after store sequence `seq`, options kept.
    pub(crate) fn next_query(&self, seq: u64) -> String {
        let encode = |v: &str| crate::odata::encode_query_value(v);
        let mut parts = Vec::new();
        if let Some(top) = self.top {
            parts.push(format!("$top={top}"));
        }
        if let Some(select) = &self.select_text {
            parts.push(format!("$select={}", encode(select)));
        }
        if let Some(filter) = &self.filter_text {
            parts.push(format!("$filter={}", encode(filter)));
        }
        parts.push(format!("$skiptoken={seq}"));
        parts.join("&")
    }

    /// The entity as answered: every property, or only those selected.
    pub(crate) fn shape<'a>(&'a self, entity: &'a UserStatus) -> Shaped<'a> {
        Shaped {
            entity,
            select: self.select.as_deref(),
        }
    }
}

/// An entity with `$select` applied, serialized in Graph's order.
pub(crate) struct Shaped<'a> {
    entity: &'a UserStatus,
    select: Option<&'a [&'static str]>,
}

impl Serialize for Shaped<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(select) = self.select else {
            return self.entity.serialize(serializer);
        };
        let value = self.entity.to_value();
        let mut map = serializer.serialize_map(None)?;
        for name in PROPERTIES.iter().filter(|p| select.contains(p)) {
            map.serialize_entry(name, &value[*name])?;
        }
        map.end()
    }
}

fn unsupported(filter: &str) -> String {
    format!(
        "Unsupported $filter '{filter}': the emulator supports 'property eq|ne literal' comparisons joined by 'and', with a 'string', an integer or null."
    )
}

/// Parses `a eq 'x' and b ne 3`.
fn parse_filter(filter: &str) -> Result<Vec<Comparison>, String> {
    let tokens = tokenize(filter).ok_or_else(|| unsupported(filter))?;
    let mut comparisons = Vec::new();
    let mut rest = tokens.as_slice();
    loop {
        let [name, op, literal, tail @ ..] = rest else {
            return Err(unsupported(filter));
        };
        let equal = match op.to_ascii_lowercase().as_str() {
            "eq" => true,
            "ne" => false,
            _ => return Err(unsupported(filter)),
        };
        let literal = if let Some(text) = literal.strip_prefix('\'') {
            Value::String(text.to_owned())
        } else if literal == "null" {
            Value::Null
        } else {
            Value::from(literal.parse::<i64>().map_err(|_| unsupported(filter))?)
        };
        comparisons.push(Comparison {
            property: property(name)?,
            equal,
            literal,
        });
        match tail {
            [] => return Ok(comparisons),
            [and, more @ ..] if and.eq_ignore_ascii_case("and") => rest = more,
            _ => return Err(unsupported(filter)),
        }
    }
}

/// Splits on spaces outside quotes; a quoted string becomes `'` + its
/// unescaped text. `None` on an unterminated string.
fn tokenize(filter: &str) -> Option<Vec<String>> {
    let mut tokens = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut text = String::from("'");
            loop {
                match chars.next()? {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        text.push('\'');
                    }
                    '\'' => break,
                    other => text.push(other),
                }
            }
            tokens.push(text);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| **c != ' ') {
                word.push(c);
                chars.next();
            }
            tokens.push(word);
        }
    }
    Some(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compare_strings_numbers_and_null() {
        let f = parse_filter("status eq 'compliant' and devicesCount ne 2").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].literal, Value::from("compliant"));
        assert!(!f[1].equal);
        let f = parse_filter("userDisplayName eq 'O''Neil'").unwrap();
        assert_eq!(f[0].literal, Value::from("O'Neil"));
        assert_eq!(
            parse_filter("UserPrincipalName eq null").unwrap()[0].property,
            "userPrincipalName"
        );
        for bad in [
            "status",
            "status gt 'x'",
            "status eq 'x' or id eq 'y'",
            "status eq 'x",
            "startswith(status,'x')",
            "devicesCount eq 1.5",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(parse_filter("bogus eq 1").unwrap_err().contains("'bogus'"));
    }

    #[test]
    fn select_keeps_graph_order_and_next_query_keeps_options() {
        let o = Options::parse("$select=status,id&$top=2&$filter=status%20eq%20'x'").unwrap();
        let e = UserStatus::with_defaults("u1".into());
        assert_eq!(
            serde_json::to_string(&o.shape(&e)).unwrap(),
            r#"{"id":"u1","status":"unknown"}"#
        );
        assert_eq!(
            o.next_query(9),
            "$top=2&$select=status%2Cid&$filter=status%20eq%20%27x%27&$skiptoken=9"
        );
        assert!(Options::parse("$select=nope").is_err());
    }
}
