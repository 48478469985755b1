//! `config_json` -> [`ClientBuilder`]: one match arm per key, checked by name and type only; the
//! builder owns every rule about the values.

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::FfiError;
use crate::{ApiVersion, Client, ClientBuilder, Cloud, Error, RetryPolicy};

/// The keys `config_json` accepts, for the unknown-key message.
const KEYS: &str =
    "baseUrl, cloud, apiVersion, accessToken, timeouts, retry, userAgent, fetchAfterNoContent";
const RETRY_KEYS: &str = "maxRetries, baseDelayMs, maxDelayMs, maxTotalWaitMs";
const TIMEOUT_KEYS: &str = "connectMs, requestMs";

/// Parses `config_json` into a builder that names the C runtime in the `SdkVersion` header.
pub(crate) fn builder_from_json(text: &str) -> Result<ClientBuilder, FfiError> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| FfiError::invalid_json("config_json", &err))?;
    let Value::Object(map) = value else {
        return Err(Error::config(
            "config_json",
            format!("must be a JSON object, got {}", kind(&value)),
        )
        .into());
    };
    let mut builder = Client::builder().runtime_environment("C");
    let mut root: Option<&'static str> = None;
    for (key, value) in map {
        builder = match key.as_str() {
            "baseUrl" => {
                one_root(&mut root, "baseUrl")?;
                builder.base_url(string(&key, value)?)
            }
            "cloud" => {
                one_root(&mut root, "cloud")?;
                builder.cloud(string(&key, value)?.parse::<Cloud>()?)
            }
            "apiVersion" => {
                let version =
                    string(&key, value)?
                        .parse::<ApiVersion>()
                        .map_err(|err| match err {
                            // The same words, but here it is a configuration error.
                            Error::InvalidInput { reason, .. } => {
                                Error::config("apiVersion", reason)
                            }
                            other => other,
                        })?;
                builder.api_version(version)
            }
            // The value is never echoed, not even in a type error: it is a secret.
            "accessToken" => builder.access_token(string(&key, value)?),
            "timeouts" => timeouts(builder, value)?,
            "retry" => builder.retry_policy(retry(value)?),
            "userAgent" => builder.user_agent_suffix(string(&key, value)?),
            "fetchAfterNoContent" => builder.fetch_after_no_content(boolean(&key, value)?),
            _ => return Err(unknown(&key, KEYS).into()),
        };
    }
    Ok(builder)
}

fn timeouts(mut builder: ClientBuilder, value: Value) -> Result<ClientBuilder, Error> {
    let map = object("timeouts", value)?;
    for (key, value) in map {
        let field = format!("timeouts.{key}");
        builder = match key.as_str() {
            "connectMs" => builder.connect_timeout(millis(&field, &value)?),
            "requestMs" => builder.request_timeout(millis(&field, &value)?),
            _ => return Err(unknown(&field, TIMEOUT_KEYS)),
        };
    }
    Ok(builder)
}

fn retry(value: Value) -> Result<RetryPolicy, Error> {
    let mut policy = RetryPolicy::default();
    for (key, value) in object("retry", value)? {
        let field = format!("retry.{key}");
        policy = match key.as_str() {
            "maxRetries" => policy.max_retries(count(&field, &value)?),
            "baseDelayMs" => policy.base_delay(millis(&field, &value)?),
            "maxDelayMs" => policy.max_delay(millis(&field, &value)?),
            "maxTotalWaitMs" => policy.max_total_wait(millis(&field, &value)?),
            _ => return Err(unknown(&field, RETRY_KEYS)),
        };
    }
    Ok(policy)
}

/// A non-negative integer count; the builder checks the upper limit.
fn count(field: &str, value: &Value) -> Result<u32, Error> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            Error::config(
                field,
                format!("must be a non-negative integer, got {}", kind(value)),
            )
        })
}

/// The longest timeout accepted: one day. Longer values would overflow deadline arithmetic in the
/// HTTP stack and no Graph call legitimately waits that long.
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// A duration in whole milliseconds; zero is passed on for the builder to judge.
fn millis(field: &str, value: &Value) -> Result<Duration, Error> {
    match value.as_u64() {
        Some(ms) if ms <= MAX_TIMEOUT_MS => Ok(Duration::from_millis(ms)),
        _ => Err(Error::config(
            field,
            format!(
                "must be a positive integer number of milliseconds up to {MAX_TIMEOUT_MS}, got {}",
                kind(value)
            ),
        )),
    }
}

fn one_root(seen: &mut Option<&'static str>, key: &'static str) -> Result<(), Error> {
    match seen.replace(key) {
        Some(_) => Err(Error::config(key, "give either baseUrl or cloud, not both")),
        None => Ok(()),
    }
}

fn string(field: &str, value: Value) -> Result<String, Error> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(Error::config(
            field,
            format!("must be a string, got {}", kind(&other)),
        )),
    }
}

fn boolean(field: &str, value: Value) -> Result<bool, Error> {
    value.as_bool().ok_or_else(|| {
        Error::config(
            field,
            format!("must be true or false, got {}", kind(&value)),
        )
    })
}

fn object(field: &str, value: Value) -> Result<Map<String, Value>, Error> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::config(
            field,
            format!("must be an object, got {}", kind(&other)),
        )),
    }
}

fn unknown(field: &str, known: &str) -> Error {
    Error::config(field, format!("unknown key; expected one of {known}"))
}

/// The JSON kind of a value, for messages that must not echo the value itself.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::ius_status;

    fn rejected(json: &str) -> (ius_status, Value) {
        let err = builder_from_json(json)
            .and_then(|b| b.build().map_err(FfiError::from))
            .expect_err(json);
        (err.status(), serde_json::from_str(&err.to_json()).unwrap())
    }

    #[test]
    fn every_key_is_accepted() {
        let builder = builder_from_json(
            r#"{"baseUrl":"http://127.0.0.1:9","apiVersion":"v1.0","accessToken":"t",
                "timeouts":{"connectMs":1000,"requestMs":2000},"userAgent":"agent/1",
                "retry":{"maxRetries":2,"baseDelayMs":100,"maxDelayMs":1000,"maxTotalWaitMs":5000},
                "fetchAfterNoContent":true}"#,
        )
        .unwrap();
        let client = builder.build().unwrap();
        assert_eq!(client.api_version(), ApiVersion::V1_0);
        builder_from_json(r#"{"cloud":"usGovDoD","accessToken":"t"}"#)
            .unwrap()
            .build()
            .unwrap();
    }

    #[test]
    fn bad_configs_name_the_field_and_never_echo_the_token() {
        let cases = [
            (r#"{"accessToken":"t","readTimeout":1}"#, "readTimeout"),
            (
                r#"{"accessToken":"t","timeouts":{"readMs":1}}"#,
                "timeouts.readMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"connectMs":0}}"#,
                "timeouts.connectMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"connectMs":-5}}"#,
                "timeouts.connectMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"requestMs":1.5}}"#,
                "timeouts.requestMs",
            ),
            (
                r#"{"accessToken":"t","timeouts":{"requestMs":1e300}}"#,
                "timeouts.requestMs",
            ),
            (r#"{"accessToken":"t","timeouts":[]}"#, "timeouts"),
            (
                r#"{"accessToken":"t","retry":{"maxRetries":11}}"#,
                "retry.maxRetries",
            ),
            (
                r#"{"accessToken":"t","retry":{"maxRetries":-1}}"#,
                "retry.maxRetries",
            ),
            (
                r#"{"accessToken":"t","retry":{"jitter":true}}"#,
                "retry.jitter",
            ),
            (
                r#"{"accessToken":"t","baseUrl":"http://127.0.0.1:1","cloud":"global"}"#,
                "cloud",
            ),
            (r#"{"accessToken":"t","cloud":"mars"}"#, "cloud"),
            (r#"{"accessToken":"t","apiVersion":"v2"}"#, "apiVersion"),
            (
                r#"{"accessToken":"t","baseUrl":"http://example.com"}"#,
                "baseUrl",
            ),
            (r#"{"accessToken":"t","userAgent":""}"#, "userAgent"),
            (
                r#"{"accessToken":"t","fetchAfterNoContent":"yes"}"#,
                "fetchAfterNoContent",
            ),
            (r#"{"accessToken":42}"#, "accessToken"),
            (r#"{}"#, "accessToken"),
            (r#"[]"#, "config_json"),
        ];
        for (json, field) in cases {
            let (status, value) = rejected(json);
            assert_eq!(status, ius_status::Config, "{json}: {value}");
            assert_eq!(value["field"], field, "{json}: {value}");
        }
        let (status, value) = rejected(r#"{"accessToken":"s3cr3t-token","bogus":true}"#);
        assert_eq!(status, ius_status::Config);
        assert!(!value.to_string().contains("s3cr3t"));
        let (status, value) = rejected(r#"{"accessToken":"s3cr3t-token" "#);
        assert_eq!(status, ius_status::InvalidJson);
        assert!(!value.to_string().contains("s3cr3t"));
    }
}
