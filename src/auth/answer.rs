//! What a token endpoint answers, read once for every source: the identity platform's
//! `{token_type, access_token, expires_in}` and a managed-identity endpoint's
//! `{token_type, access_token, expires_on, expires_in?, resource}`. The answer holds the token,
//! so no part of it ever goes into an error; and text an endpoint sends back in an error is
//! scrubbed of the secrets the request carried.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use crate::auth::AccessToken;
use crate::auth::cache::FreshToken;

/// Token answers are a few KiB; anything far larger is not one.
pub(crate) const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Reads a 200 answer into a token and its lifetime; the error says what is wrong with it
/// (never what it holds). The lifetime is `expires_in` when given (relative, so a clock that is
/// off does not matter), else `expires_on` (seconds since 1970) less the time now.
pub(crate) fn read_answer(body: &str) -> Result<FreshToken, String> {
    #[derive(Deserialize)]
    struct Answer {
        token_type: String,
        access_token: String,
        // The identity platform's v2.0 endpoint answers numbers; v1.0, IMDS, App Service and
        // Azure Arc answer strings.
        expires_in: Option<Value>,
        expires_on: Option<Value>,
    }
    let parsed: Answer = serde_json::from_str(body).map_err(|_| {
        "not a token response (token_type, access_token, expires_in or expires_on)".to_owned()
    })?;
    if !parsed.token_type.eq_ignore_ascii_case("Bearer") || parsed.access_token.is_empty() {
        return Err("no Bearer access_token".to_owned());
    }
    // The same rule as for a caller's tokens: a line break would inject a header, and an
    // over-long token could not be sent.
    if let Some(why) = AccessToken::refusal(parsed.access_token.as_bytes()) {
        return Err(format!("its access_token {why}"));
    }
    let lifetime = match (&parsed.expires_in, &parsed.expires_on) {
        (Some(expires_in), _) => {
            seconds(expires_in).ok_or("expires_in is not a number of seconds")?
        }
        (None, Some(expires_on)) => {
            let at = seconds(expires_on).ok_or("expires_on is not a time in seconds since 1970")?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            at.saturating_sub(now)
        }
        (None, None) => return Err("it has neither expires_in nor expires_on".to_owned()),
    };
    Ok(FreshToken {
        token: AccessToken::new(parsed.access_token),
        expires_in: Duration::from_secs(lifetime),
    })
}

/// Whole seconds, written as a JSON number (a float is cut to whole seconds, as azure-identity's
/// `int()` does) or as a string of digits.
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            let float = n.as_f64()?;
            // `as` saturates: a float beyond u64 becomes its largest value, capped later.
            (float.is_finite() && float >= 0.0).then_some(float as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Removes every one of `secrets` from text an endpoint sent back, should it ever echo one.
pub(crate) fn scrub(text: String, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text, |text, secret| {
            if text.contains(secret) {
                text.replace(secret, "<redacted>")
            } else {
                text
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_identity_answers_give_their_lifetime_in_either_form() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let imds = format!(
            r#"{{"access_token":"at","refresh_token":"","expires_in":"3599","expires_on":"{}","not_before":"{now}","resource":"https://graph.microsoft.com","token_type":"Bearer"}}"#,
            now + 3599
        );
        assert_eq!(
            read_answer(&imds).unwrap().expires_in,
            Duration::from_secs(3599)
        );
        // App Service (2019-08-01) gives expires_on only, as a string; Arc's may be a number.
        for expires_on in [format!("\"{}\"", now + 600), (now + 600).to_string()] {
            let body = format!(
                r#"{{"access_token":"at","expires_on":{expires_on},"resource":"r","token_type":"Bearer","client_id":"c"}}"#
            );
            let lifetime = read_answer(&body).unwrap().expires_in.as_secs();
            assert!((598..=600).contains(&lifetime), "{lifetime}");
        }
        // A number written as a float (1.7e9), as azure-identity accepts it (`int(expires_on)`).
        let at = (now + 600) as f64;
        for expires_on in [format!("{at:.1}"), format!("{at:e}")] {
            let body = format!(
                r#"{{"access_token":"at","expires_on":{expires_on},"token_type":"Bearer"}}"#
            );
            let lifetime = read_answer(&body)
                .unwrap_or_else(|why| panic!("{expires_on}: {why}"))
                .expires_in
                .as_secs();
            assert!((598..=600).contains(&lifetime), "{expires_on}: {lifetime}");
        }
        // Already expired: a zero lifetime, fetched again on the next call.
        let past = r#"{"access_token":"at","expires_on":"1","token_type":"Bearer"}"#;
        assert_eq!(read_answer(past).unwrap().expires_in, Duration::ZERO);
    }

    #[test]
    fn bad_answers_say_what_is_wrong_without_the_token() {
        for (body, why) in [
            (
                r#"{"access_token":"leaked","token_type":"Bearer"}"#,
                "neither",
            ),
            (
                r#"{"access_token":"leaked","token_type":"Bearer","expires_on":"soon"}"#,
                "expires_on",
            ),
            (
                r#"{"access_token":"leaked","token_type":"Bearer","expires_on":-1.5}"#,
                "expires_on",
            ),
            (
                r#"{"access_token":"leaked","token_type":"Bearer","expires_on":"1.7e9"}"#,
                "expires_on",
            ),
            (
                r#"{"access_token":"leaked","token_type":"pop","expires_in":1}"#,
                "no Bearer",
            ),
            (
                r#"{"access_token":"leaked\nX: 1","token_type":"Bearer","expires_in":1}"#,
                "visible ASCII",
            ),
            ("leaked", "not a token response"),
        ] {
            let err = read_answer(body).err().unwrap();
            assert!(err.contains(why) && !err.contains("leaked"), "{why}: {err}");
        }
    }

    #[test]
    fn scrub_removes_every_secret() {
        assert_eq!(
            scrub("a k1 b k2 k1".to_owned(), &["k1", "k2", ""]),
            "a <redacted> b <redacted> <redacted>"
        );
    }
}
