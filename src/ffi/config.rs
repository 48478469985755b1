//! `config_json` -> [`ClientBuilder`]: one match arm per key, checked by name and type only; the
//! builder owns every rule about the values.

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::FfiError;
use crate::{ApiVersion, Client, ClientBuilder, Cloud, Error, Pacing, RetryPolicy};

/// The keys `config_json` accepts, for the unknown-key message.
const KEYS: &str = "baseUrl, cloud, apiVersion, accessToken, timeouts, retry, pacing, proxy, \
                    useEnvProxy, tls, userAgent, fetchAfterNoContent";
const RETRY_KEYS: &str = "maxRetries, baseDelayMs, maxDelayMs, maxTotalMs";
const TIMEOUT_KEYS: &str = "connectMs, requestMs, totalMs";
const PACING_KEYS: &str = "requests, perSeconds";
const TLS_KEYS: &str = "platformVerifier, extraRootsPem";

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
            "pacing" => builder.pacing(pacing(value)?),
            // Never echoed: a proxy URL may carry a password.
            "proxy" => builder.proxy(string(&key, value)?),
            "useEnvProxy" => builder.use_env_proxy(boolean(&key, value)?),
            "tls" => tls(builder, value)?,
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
            "totalMs" => builder.total_timeout(millis(&field, &value)?),
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
            "maxTotalMs" => policy.max_total_wait(millis(&field, &value)?),
            _ => return Err(unknown(&field, RETRY_KEYS)),
        };
    }
    Ok(policy)
}

fn pacing(value: Value) -> Result<Pacing, Error> {
    let (mut requests, mut per) = (None, None);
    for (key, value) in object("pacing", value)? {
        let field = format!("pacing.{key}");
        match key.as_str() {
            "requests" => requests = Some(count(&field, &value)?),
            "perSeconds" => {
                per = Some(
                    value
                        .as_f64()
                        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                        .ok_or_else(|| {
                            Error::config(
                                &field,
                                format!(
                                    "must be a positive number of seconds, got {}",
                                    kind(&value)
                                ),
                            )
                        })?,
                )
            }
            _ => return Err(unknown(&field, PACING_KEYS)),
        }
    }
    match (requests, per) {
        (Some(requests), Some(per)) => Ok(Pacing::new(requests, per)),
        (None, _) => Err(Error::config("pacing.requests", "is required")),
        (_, None) => Err(Error::config("pacing.perSeconds", "is required")),
    }
}

fn tls(mut builder: ClientBuilder, value: Value) -> Result<ClientBuilder, Error> {
    for (key, value) in object("tls", value)? {
        let field = format!("tls.{key}");
        builder = match key.as_str() {
            "platformVerifier" => builder.tls_platform_verifier(boolean(&field, value)?),
            "extraRootsPem" => builder.extra_root_certificates_pem(string(&field, value)?),
            _ => return Err(unknown(&field, TLS_KEYS)),
        };
    }
    Ok(builder)
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

/// A duration in whole milliseconds; the builder judges zero and the upper limit.
fn millis(field: &str, value: &Value) -> Result<Duration, Error> {
    value.as_u64().map(Duration::from_millis).ok_or_else(|| {
        Error::config(
            field,
            format!(
                "must be a non-negative integer number of milliseconds, got {}",
                kind(value)
            ),
        )
    })
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
                "retry":{"maxRetries":2,"baseDelayMs":100,"maxDelayMs":1000,"maxTotalMs":5000},
                "timeouts":{"totalMs":9000},"pacing":{"requests":100,"perSeconds":20},
                "proxy":"http://user:pw@127.0.0.1:3128","useEnvProxy":false,
                "tls":{"platformVerifier":false},
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
            (
                r#"{"accessToken":"t","timeouts":{"totalMs":86400001}}"#,
                "timeouts.totalMs",
            ),
            (
                r#"{"accessToken":"t","pacing":{"requests":0,"perSeconds":1}}"#,
                "pacing.requests",
            ),
            (
                r#"{"accessToken":"t","pacing":{"requests":5}}"#,
                "pacing.perSeconds",
            ),
            (
                r#"{"accessToken":"t","pacing":{"requests":5,"perSeconds":-1}}"#,
                "pacing.perSeconds",
            ),
            (
                r#"{"accessToken":"t","tls":{"extraRootsPem":"junk"}}"#,
                "tls.extraRootsPem",
            ),
            (
                r#"{"accessToken":"t","tls":{"pinning":true}}"#,
                "tls.pinning",
            ),
            (r#"{"accessToken":"t","proxy":"gopher://u:pw@p"}"#, "proxy"),
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
