//! Reading caller-supplied JSON values, with messages that name the kind of a wrong value, never
//! the value itself (it may be a secret).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::Error;

/// The JSON kind of a value, e.g. "a string" or "an integer".
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "an integer",
        Value::Number(_) => "a fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The string in `value`, or why it is not one.
pub(crate) fn string(value: Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(format!("must be a string, got {}", kind(&other))),
    }
}

/// The field an unknown or repeated `key` is reported under: the key, or `object` (the JSON
/// object holding it) when the key is empty, since an empty name names nothing.
pub(crate) fn unknown_key_field(object: &str, key: &str) -> String {
    if key.is_empty() {
        object.to_owned()
    } else {
        key.to_owned()
    }
}

/// Why caller JSON text was refused before its meaning was read.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// Not well-formed JSON.
    Syntax(serde_json::Error),
    /// An object names a key twice; the path names it (`timeouts.connectMs`), or the object
    /// holding it when the key is empty (`timeouts`; empty at the top level). serde_json would
    /// keep the last, so `{"devicesCount":-1,"devicesCount":3}` would send 3 unseen.
    DuplicateKey(String),
}

impl ParseError {
    /// The reason given for a duplicate key.
    pub(crate) const DUPLICATE: &'static str =
        "appears more than once in one object; give each key once";
}

/// Parses caller JSON text, refusing any object, at any depth, that names a key twice.
pub(crate) fn parse(text: &str) -> Result<Value, ParseError> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (_, Some(path)) => Err(ParseError::DuplicateKey(path)),
        (Ok(value), None) => Ok(value),
        (Err(err), None) => Err(ParseError::Syntax(err)),
    }
}

/// [`parse`] for a public reader of caller JSON that messages call `name` (`config_json`,
/// `item`): text that is not JSON is `rejected(name, why)`, an object naming a key twice
/// `rejected(its path, DUPLICATE)`, so the error's `field` says where.
pub(crate) fn parse_named(
    text: &str,
    name: &str,
    rejected: fn(String, String) -> Error,
) -> Result<Value, Error> {
    parse(text).map_err(|err| match err {
        ParseError::Syntax(err) => rejected(name.to_owned(), format!("is not valid JSON: {err}")),
        ParseError::DuplicateKey(key) => rejected(
            unknown_key_field(name, &key),
            ParseError::DUPLICATE.to_owned(),
        ),
    })
}

/// Builds a [`Value`] as serde_json's own does, but stops at a duplicate key, leaving its path in
/// `duplicate` (each enclosing object or array prefixes its part while the error unwinds).
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl Strict<'_> {
    fn prefix(&self, part: &str) {
        if let Some(path) = self.duplicate.borrow_mut().as_mut() {
            // An empty key names nothing: the path then ends at the object holding it.
            let sep = if path.is_empty() || path.starts_with('[') {
                ""
            } else {
                "."
            };
            *path = format!("{part}{sep}{path}");
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(err) => {
                    self.prefix(&format!("[{}]", items.len()));
                    return Err(err);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = match access.next_value_seed(self) {
                Ok(value) => value,
                Err(err) => {
                    self.prefix(&key);
                    return Err(err);
                }
            };
            if map.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom(ParseError::DUPLICATE));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(text: &str) -> Option<String> {
        match parse(text) {
            Err(ParseError::DuplicateKey(path)) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn a_key_given_twice_is_named_at_any_depth() {
        assert_eq!(
            duplicate(r#"{"devicesCount":-1,"devicesCount":3}"#).as_deref(),
            Some("devicesCount")
        );
        assert_eq!(
            duplicate(r#"{"timeouts":{"connectMs":1,"connectMs":2}}"#).as_deref(),
            Some("timeouts.connectMs")
        );
        assert_eq!(
            duplicate(r#"{"a":[{"b":1},{"c":{"d":1,"d":1}}]}"#).as_deref(),
            Some("a[1].c.d")
        );
        assert_eq!(
            parse(r#"{"a":{"x":1},"b":{"x":[1.5,null,true,"s"]},"n":-3,"u":18446744073709551615}"#)
                .unwrap(),
            serde_json::from_str::<Value>(
                r#"{"a":{"x":1},"b":{"x":[1.5,null,true,"s"]},"n":-3,"u":18446744073709551615}"#
            )
            .unwrap(),
            "the same value serde_json builds"
        );
        assert_eq!(duplicate(r#"{"":1,"":2}"#).as_deref(), Some(""));
        assert_eq!(
            duplicate(r#"{"t":{"":1,"":2}}"#).as_deref(),
            Some("t"),
            "an empty key is named by its object"
        );
        assert!(matches!(parse(r#"{"a":1} x"#), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("{"), Err(ParseError::Syntax(_))));
    }
}
