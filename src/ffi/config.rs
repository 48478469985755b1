//! `config_json` -> [`Client`]: the core reads the JSON (`config_json.rs`); here only what is C's
//! own: text that is not JSON is `IUS_STATUS_INVALID_JSON`, the token callback is handed to the
//! core as the client's token provider, and the `SdkVersion` header names the C runtime.

use std::sync::Arc;

use super::error::{FfiError, parse_json};
use super::token::CallbackTokens;
use crate::config_json::{TokensFrom, read};
use crate::{Client, Error};

/// Builds the client `config_json` describes, its tokens from `callback` when given (the JSON
/// must then hold no credentials).
pub(crate) fn client_from_json(
    text: &str,
    callback: Option<CallbackTokens>,
) -> Result<Client, FfiError> {
    let value = parse_json(text, "config_json", Error::config)?;
    let tokens = match callback {
        Some(callback) => TokensFrom::Provider(Arc::new(callback)),
        None => TokensFrom::Json,
    };
    Ok(read(value, tokens)?.runtime_environment("C").build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::ius_status;
    use serde_json::Value;

    fn rejected(json: &str) -> (ius_status, Value) {
        let err = client_from_json(json, None).expect_err(json);
        (err.status(), serde_json::from_str(&err.to_json()).unwrap())
    }

    #[test]
    fn text_that_is_not_json_is_invalid_json_and_never_echoes_the_token() {
        let (status, value) = rejected(r#"{"accessToken":"s3cr3t-token" "#);
        assert_eq!(status, ius_status::InvalidJson);
        assert_eq!(value["field"], "config_json");
        assert!(!value.to_string().contains("s3cr3t"));
    }

    #[test]
    fn the_cores_errors_keep_their_json_paths() {
        for (json, field) in [
            (
                r#"{"accessToken":"t","timeouts":{"readMs":1}}"#,
                "timeouts.readMs",
            ),
            (
                r#"{"accessToken":"t","retry":{"maxRetries":1,"maxRetries":9}}"#,
                "retry.maxRetries",
            ),
            (
                r#"{"auth":{"managedIdentity":{"clientId":"a","objectId":"b"}}}"#,
                "auth.managedIdentity.objectId",
            ),
            (
                r#"{"auth":{"tenantId":"a/b","clientId":"app","clientSecret":"s"}}"#,
                "auth.tenantId",
            ),
        ] {
            let (status, value) = rejected(json);
            assert_eq!(status, ius_status::Config, "{json}: {value}");
            assert_eq!(value["field"], field, "{json}: {value}");
        }
        let client = client_from_json(r#"{"accessToken":"t","apiVersion":"v1.0"}"#, None).unwrap();
        assert_eq!(client.api_version(), crate::ApiVersion::V1_0);
    }
}
