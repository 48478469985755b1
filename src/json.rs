//! Reading caller-supplied JSON values, with messages that name the kind of a wrong value, never
//! the value itself (it may be a secret).

use serde_json::Value;

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
